"""An Arduino sketch folder that runs a .tflite model with TensorFlow Lite Micro.

:func:`arduino_sketch` writes a folder that opens in the Arduino IDE (or compiles with
``arduino-cli``) with the ``Arduino_TensorFlowLite`` library:

- ``<folder>.ino``: setup/loop in the shape of TFLM's examples (hello_world,
  person_detection): ``tflite::GetModel``, the schema version check, a
  ``MicroMutableOpResolver<N>`` that registers exactly the N ops the model uses (generated
  from the flatbuffer with :mod:`effkeras.runtime.tflm_ops`), an
  ``alignas(16) uint8_t tensor_arena[kTensorArenaSize]``, ``MicroInterpreter``,
  ``AllocateTensors`` and ``arena_used_bytes()``; plus the serial benchmark protocol of
  :mod:`effkeras.deploy.protocol`;
- ``model.h`` / ``model.cpp``: the model as a C array (Arduino compiles ``.cpp``, not
  ``.cc``, in a sketch folder);
- ``model_settings.h``: shapes, dtypes, scales, zero points, the arena size (the arena TFLM
  measured on the host plus :data:`~effkeras.runtime.tflm.ARENA_MARGIN`), labels, a fixed
  sample input, sha256, length and checksum of the model;
- ``efk_checksum.h``, ``efk_tflm_port.cpp`` (``DebugLog`` and ``tflite::InitializeTarget``,
  which the library defines only for the Nano 33 BLE) and ``README.md`` (install, compile,
  flash, protocol).

The model is checked first: a file the 2023 Arduino library cannot run (LUT-compressed
with ``TFLM_DECODE`` operators, :func:`effkeras.convert.compress.compress_tflite`) raises
:class:`UnsupportedOpsError` (:func:`check_arduino_library`), ops TFLM lacks raise :class:`UnsupportedOpsError`, a model or
arena too large for the board raises :class:`BoardFitError`. Only the arena measurement
runs TFLM (the tflite-micro package); nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

import numpy as np

from effkeras.boards import Board, get_board
from effkeras.convert.c_array import CArrayFiles, io_comment_lines, parse_c_array, to_c_array
from effkeras.convert.flatbuffer import TensorInfo, TFLiteModel, read_tflite
from effkeras.deploy import protocol
from effkeras.errors import (
    BoardFitError,
    EffkerasError,
    InvalidModelError,
    OutputExistsError,
    UnsupportedOpsError,
)
from effkeras.runtime.tflm_ops import (
    RECENT_OPS,
    TFLM_OPS,
    tflm_unsupported_ops,
    unsupported_hint,
)

#: Name of the C array files inside the sketch (``model.h``, ``model.cpp``, ``g_model_data``).
MODEL_ARRAY_NAME = "model"
DEMO_INTERVAL_MS = 2000

# Input/output dtypes the sketch handles, with their C element type.
_C_TYPES = {"FLOAT32": "float", "INT8": "int8_t", "UINT8": "uint8_t", "INT16": "int16_t"}
_OUTPUT_TYPES = {*_C_TYPES, "INT32"}

# Arduino sketch folder names: letters, digits, '_', '.', '-'; at most 63 characters.
_SKETCH_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,62}$")


@dataclass(frozen=True)
class SketchInfo:
    """What :func:`arduino_sketch` wrote and measured.

    Attributes:
        path: the sketch folder.
        files: every file written, the ``.ino`` first.
        arena_bytes: the arena TFLM measured on this (64-bit) host, in bytes.
        arena_size: ``kTensorArenaSize`` compiled into the sketch.
        ops: the distinct ops registered with the resolver, sorted.
        board: the target board.
        name: the model name the board reports (``INFO name=``).
        model_bytes, sha256, checksum: size, sha256 and FNV-1a 32 hash of the model.
        expected_argmax: argmax of output 0 that TFLM gave on the host for the fixed input.
        labels: class labels compiled in (protocol-safe), or None.
    """

    path: str
    files: list[str]
    arena_bytes: int
    arena_size: int
    ops: list[str]
    board: Board
    name: str = ""
    model_bytes: int = 0
    sha256: str = ""
    checksum: int = 0
    expected_argmax: int = 0
    labels: list[str] | None = field(default=None)

    @property
    def ino_path(self) -> str:
        return self.files[0]

    def expected_info(self) -> dict[str, Any]:
        """The INFO fields the board must report for this sketch (see
        :func:`effkeras.deploy.protocol.info_mismatches`)."""
        return {
            "proto": protocol.PROTOCOL_VERSION,
            "name": self.name,
            "bytes": self.model_bytes,
            "sha256": self.sha256[:16],
            "fnv": self.checksum,
            "arena_size": self.arena_size,
            "ops": len(self.ops),
            "board": _token(self.board.name),
            "expected_argmax": self.expected_argmax,
        }


def _token(text: str) -> str:
    """A protocol value: no spaces or '=' (see effkeras.deploy.protocol)."""
    token = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(text))
    return token or "_"


def _template(name: str) -> Template:
    text = resources.files("effkeras.deploy").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _c_float(value: float) -> str:
    if not np.isfinite(value):
        raise InvalidModelError(f"A quantization scale is not finite. Received: {value!r}")
    text = f"{float(value):.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def _c_values(values: np.ndarray, dtype: str, per_line: int = 12) -> str:
    flat = values.reshape(-1)
    if dtype == "FLOAT32":
        items = [_c_float(float(v)) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    lines = [
        "    " + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)
    ]
    return "\n".join(lines)


def _tensor_params(t: TensorInfo) -> tuple[float, int]:
    q = t.quantization
    if q is None:
        return 0.0, 0
    return float(q.scales[0]), int(q.zero_points[0])


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _check_io(model: TFLiteModel) -> tuple[TensorInfo, TensorInfo]:
    if len(model.inputs) != 1:
        raise InvalidModelError(
            f"The sketch feeds models with exactly one input; {model.source} has "
            f"{len(model.inputs)}. Export a single-input model."
        )
    if not model.outputs:
        raise InvalidModelError(f"{model.source} has no outputs.")
    inp, out = model.inputs[0], model.outputs[0]
    if inp.dtype not in _C_TYPES:
        raise InvalidModelError(
            f"The sketch handles float32, int8, uint8 and int16 inputs. Received: input "
            f"dtype {inp.dtype}. Convert with io_dtype='int8' (or float32 I/O)."
        )
    if out.dtype not in _OUTPUT_TYPES:
        raise InvalidModelError(
            f"The sketch handles float32, int8, uint8, int16 and int32 outputs. Received: "
            f"output dtype {out.dtype}."
        )
    for kind, t in (("input", inp), ("output", out)):
        if t.quantization is not None and t.quantization.per_channel:
            raise InvalidModelError(
                f"The model's {kind} {t.name!r} is quantized per channel; the sketch expects "
                f"one scale and zero point for it."
            )
        if any(d <= 0 for d in t.shape):
            raise InvalidModelError(
                f"The model's {kind} {t.name!r} has an unknown or empty dimension "
                f"{list(t.shape)}; TFLM needs static shapes."
            )
    return inp, out


def _fixed_input(inp: TensorInfo, sample: Any) -> np.ndarray:
    from effkeras.runtime.quant import quantize

    if sample is None:
        real = np.zeros(inp.shape, np.float32)
    else:
        real = np.asarray(sample)
        if real.size != inp.size:
            raise InvalidModelError(
                f"sample must have {inp.size} elements (input shape {list(inp.shape)}). "
                f"Received: shape {list(real.shape)}"
            )
        real = real.reshape(inp.shape)
    return np.ascontiguousarray(quantize(real, inp).astype(inp.numpy_dtype).reshape(inp.shape))


def check_arduino_library(model: TFLiteModel) -> None:
    """Refuse a file the 2023 Arduino_TensorFlowLite library cannot run, before any file is written.

    The sketches build against that library (2.4.0-ALPHA, in ``../shared/tflm``); it has no
    DECODE kernel, so a LUT-compressed file (``compress_tflite``, ``to_tflite(...,
    compress=True)``, ``effkeras convert --compress``) would only fail on the board. The
    test is :func:`effkeras.convert.compress.check_tflm_library`; this adds the file, the
    decoded tensors and what to do. There is no override: effkeras writes sketches for the
    2023 library only.

    Raises:
        UnsupportedOpsError: the file needs a newer TFLM (``.ops`` names what it needs).
    """
    from effkeras.convert.compress import DECODE_OP, check_tflm_library, tflm_requirements

    try:
        check_tflm_library(model, "arduino-2023")
    except UnsupportedOpsError as exc:
        req = tflm_requirements(model)
        if not (req.decode_ops or req.legacy_compression):
            raise UnsupportedOpsError(f"{model.source}: no sketch written. {exc}", exc.ops) from None
        decoded = [model.tensors[op.outputs[0]].name for op in model.ops
                   if op.is_custom and op.name == DECODE_OP and op.outputs]
        tensors = f" (decoding {', '.join(repr(n) for n in decoded)})" if decoded else ""
        raise UnsupportedOpsError(
            f"{model.source} is compressed{tensors}, so no sketch was written. {exc} For "
            f"a sketch, export it without --compress, e.g. with int4 weights (effkeras "
            f"convert --int4, to_tflite(..., int4=True)), which the 2023 library runs; with "
            f"an upstream TFLM, register MicroMutableOpResolver::AddDecode() in your own "
            f"sketch (effkeras's sketches target the 2023 library).",
            exc.ops,
        ) from None


def _check_sketch_name(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    if not _SKETCH_NAME_RE.match(name) or name.endswith("."):
        suggestion = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip(".")[:63] or "sketch"
        raise EffkerasError(
            f"An Arduino sketch folder name may hold only letters, digits, '_', '.' and '-' "
            f"(at most 63 characters) and the .ino takes its name. Received: {name!r}. "
            f"Try {suggestion!r}."
        )
    return name


def _check_labels(labels: Any, out: TensorInfo) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not hasattr(labels, "__len__"):
        raise EffkerasError(f"labels must be a list of strings. Received: labels={labels!r}")
    n_classes = int(out.shape[-1]) if out.shape else 1
    if len(labels) != n_classes:
        raise EffkerasError(
            f"labels must have one entry per class of the output ({n_classes}, output shape "
            f"{list(out.shape)}). Received: {len(labels)} labels"
        )
    return [_token(str(label)) for label in labels]


def _check_flash(model: TFLiteModel, board: Board) -> None:
    need = model.size_bytes + board.program_flash_kb * 1024
    if need > board.flash_bytes:
        raise BoardFitError(
            f"The model does not fit {board.title}'s flash: {model.size_bytes:,} model bytes + "
            f"{board.program_flash_kb} KiB estimated for the core and TFLM = {need:,} bytes, "
            f"{need - board.flash_bytes:,} bytes more than its {board.flash_kb} KiB "
            f"({board.flash_bytes:,} bytes). Shrink the model (int8 quantization, pruning, "
            f"fewer filters) or pick a board with more flash."
        )


def _check_ram(arena_size: int, arena_bytes: int, board: Board) -> None:
    if arena_size > board.ram_bytes:
        raise BoardFitError(
            f"The tensor arena does not fit {board.title}'s RAM: kTensorArenaSize "
            f"{arena_size:,} bytes (measured {arena_bytes:,} on the host plus margin) is "
            f"{arena_size - board.ram_bytes:,} bytes more than its {board.ram_kb} KiB "
            f"({board.ram_bytes:,} bytes). Reduce the activations (smaller input, fewer "
            f"channels, int8 instead of float) or pick a board with more RAM."
        )


def _settings_header(
    *,
    model: TFLiteModel,
    carray: CArrayFiles,
    name: str,
    board: Board,
    inp: TensorInfo,
    out: TensorInfo,
    fixed: np.ndarray,
    sample_given: bool,
    expected_argmax: int,
    arena_bytes: int,
    arena_size: int,
    arena_given: bool,
    labels: list[str] | None,
    op_count: int,
) -> str:
    from effkeras import __version__
    from effkeras.runtime.tflm import ARENA_MARGIN, ARENA_MARGIN_BYTES

    in_scale, in_zp = _tensor_params(inp)
    out_scale, out_zp = _tensor_params(out)
    if arena_given:
        arena_note = (
            f"// Set by the caller (arena_size={arena_size}); TFLM measured {arena_bytes} bytes\n"
            f"// on the 64-bit host."
        )
    else:
        arena_note = (
            f"// TFLM measured {arena_bytes} bytes on the 64-bit host (measure_arena);\n"
            f"// a 32-bit Cortex-M usually needs less (smaller pointers and structs); this\n"
            f"// adds {ARENA_MARGIN:.0%} + {ARENA_MARGIN_BYTES} bytes, rounded up to 16: "
            f"arena_with_margin({arena_bytes}) = {arena_size}."
        )
    n_labels = len(labels) if labels else 0
    label_items = ", ".join(_c_string(label) for label in labels) if labels else '""'
    io_lines = "\n".join("// " + line for line in io_comment_lines(model))
    in_dims = ", ".join(str(d) for d in inp.shape) or "1"
    out_dims = ", ".join(str(d) for d in out.shape) or "1"
    lines = [
        f"// Generated by effkeras {__version__}. Do not edit: regenerate with arduino_sketch().",
        "//",
        f"// Model {name!s}: {model.size_bytes} bytes, sha256 {model.sha256}",
        io_lines,
        "",
        "#ifndef EFFKERAS_MODEL_SETTINGS_H_",
        "#define EFFKERAS_MODEL_SETTINGS_H_",
        "",
        "#include <stdint.h>",
        "",
        "// ---- The model ----",
        f"constexpr char kModelName[] = {_c_string(name)};",
        f"constexpr char kModelSha256[] = {_c_string(model.sha256)};",
        f"constexpr char kModelSha256Prefix[] = {_c_string(model.sha256[:16])};",
        f"constexpr unsigned int kModelBytes = {model.size_bytes};  // == {carray.len_name}",
        f"// FNV-1a 32-bit hash of {carray.array_name} (efk_checksum.h recomputes it).",
        f"constexpr uint32_t kModelChecksum = 0x{carray.checksum:08x}u;",
        f"constexpr int kOpCount = {op_count};  // distinct ops, as in MicroMutableOpResolver<N>",
        f"constexpr char kBoardName[] = {_c_string(_token(board.name))};",
        "",
        "// ---- Tensor arena ----",
        arena_note,
        f"constexpr int kTensorArenaSize = {arena_size};",
        f"constexpr int kHostArenaBytes = {arena_bytes};",
        "",
        "// ---- Input 0 ----",
        f"constexpr char kInputDtype[] = {_c_string(inp.dtype.lower())};",
        f"constexpr int kInputDims = {max(len(inp.shape), 1)};",
        f"constexpr int kInputShape[kInputDims] = {{{in_dims}}};",
        f"constexpr int kInputElements = {inp.size};",
        f"constexpr int kInputBytes = {inp.size * inp.numpy_dtype.itemsize};",
        f"constexpr float kInputScale = {_c_float(in_scale)};  // 0: not quantized",
        f"constexpr int kInputZeroPoint = {in_zp};",
        "",
        "// ---- Output 0 ----",
        f"constexpr int kNumOutputs = {len(model.outputs)};",
        f"constexpr char kOutputDtype[] = {_c_string(out.dtype.lower())};",
        f"constexpr int kOutputDims = {max(len(out.shape), 1)};",
        f"constexpr int kOutputShape[kOutputDims] = {{{out_dims}}};",
        f"constexpr int kOutputElements = {out.size};",
        f"constexpr int kOutputBytes = {out.size * out.numpy_dtype.itemsize};",
        f"constexpr float kOutputScale = {_c_float(out_scale)};  // 0: not quantized",
        f"constexpr int kOutputZeroPoint = {out_zp};",
        "",
        "// ---- Labels (one per element of output 0; none when kNumLabels is 0) ----",
        f"constexpr int kNumLabels = {n_labels};",
        f"const char* const kLabels[{max(n_labels, 1)}] = {{{label_items}}};",
        "",
        "// ---- The fixed input of BENCH and the demo ----",
        "// "
        + (
            "The sample given to arduino_sketch(), in the input's dtype."
            if sample_given
            else "Zeros (real value 0: the input's zero point when quantized)."
        ),
        f"// TFLM on the host gives argmax {expected_argmax} of output 0 for it.",
        f"constexpr int kExpectedArgmax = {expected_argmax};",
        f"alignas(16) const {_C_TYPES[inp.dtype]} kSampleInput[kInputElements] = {{",
        _c_values(fixed, inp.dtype),
        "};",
        "",
        "// ---- Serial protocol (README.md) ----",
        f"constexpr unsigned long kSerialBaudRate = {protocol.BAUD};",
        f"constexpr unsigned int kProtocolVersion = {protocol.PROTOCOL_VERSION};",
        f"constexpr long kMaxBench = {protocol.MAX_BENCH};",
        f"constexpr unsigned long kRunTimeoutMs = {protocol.RUN_TIMEOUT_MS};",
        f"constexpr unsigned long kDemoIntervalMs = {DEMO_INTERVAL_MS};",
        f"constexpr int kLineBufferSize = {protocol.LINE_BUFFER};",
        "",
        "#endif  // EFFKERAS_MODEL_SETTINGS_H_",
        "",
    ]
    return "\n".join(lines)


def _check_written_model(source_path: str, model: TFLiteModel) -> None:
    """The array the sketch compiles must be the given file's bytes, byte for byte."""
    with open(source_path, encoding="utf-8") as f:
        written = parse_c_array(f.read())
    if written != model.data:
        first = next((i for i, (a, b) in enumerate(zip(written, model.data, strict=False)) if a != b),
                     min(len(written), len(model.data)))
        raise EffkerasError(
            f"{source_path} does not hold the bytes of {model.source}: {len(written)} bytes written "
            f"vs {len(model.data)} given, first difference at byte {first}. This is a bug in effkeras; "
            "please report it with the model file."
        )


def _tensor_desc(t: TensorInfo) -> str:
    scale, zp = _tensor_params(t)
    quant = f"scale {scale:.9g}, zero point {zp}" if t.quantization else "not quantized"
    return f"`{t.dtype.lower()}` {list(t.shape)}, {quant}"


def arduino_sketch(
    tflite: Any,
    out_dir: str | os.PathLike,
    board: str | Board = "nano33ble",
    *,
    name: str | None = None,
    labels: list[str] | None = None,
    force: bool = False,
    arena_size: int | None = None,
    sample: Any = None,
) -> SketchInfo:
    """Write an Arduino sketch folder that runs ``tflite`` with TensorFlow Lite Micro.

    Args:
        tflite: .tflite bytes, a path or a :class:`~effkeras.convert.TFLiteModel`. A
            full-integer model with int8 I/O is what the sketch is tuned for; float32,
            uint8 and int16 I/O work too.
        out_dir: the sketch folder; its name becomes ``<name>.ino`` (letters, digits,
            ``_``, ``.``, ``-``).
        board: a board name from :data:`effkeras.boards.BOARDS` or a
            :class:`~effkeras.boards.Board` (e.g. :func:`~effkeras.boards.custom_board`).
        name: the model name the board reports; defaults to the folder name.
        labels: one label per element of output 0, printed with each result.
        force: replace the files of an existing folder.
        arena_size: ``kTensorArenaSize`` to compile in; by default the arena measured
            with TFLM on this host plus the margin (``arena_with_margin``). Must not be
            below the measured arena.
        sample: the fixed input of ``BENCH`` and the demo, in real (float) values or
            already in the input's dtype; zeros by default.

    Returns:
        A :class:`SketchInfo` (folder, files, measured and used arena, ops, board).

    Raises:
        OutputExistsError: ``out_dir`` exists and ``force`` is False.
        UnsupportedOpsError: TFLM has no kernel for some op (``.ops`` names them), or the
            file is LUT-compressed (``TFLM_DECODE``), which the 2023 Arduino library cannot
            run (:func:`check_arduino_library`); nothing is written then.
        BoardFitError: the model (plus the runtime) exceeds the board's flash, or the
            arena its RAM; the message says by how many bytes.
        InvalidModelError: the model is not one the sketch can feed (several inputs,
            unsupported I/O dtype, dynamic shapes).
    """
    out_dir = os.fspath(out_dir)
    sketch_name = _check_sketch_name(out_dir)
    if os.path.exists(out_dir) and not force:
        raise OutputExistsError(
            f"{out_dir} exists. Pass force=True (CLI: --force) to overwrite the sketch, or "
            f"choose another folder."
        )
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExistsError(f"{out_dir} exists and is not a folder; choose another path.")
    model = read_tflite(tflite)
    check_arduino_library(model)
    board_obj = get_board(board)
    missing = tflm_unsupported_ops(model)
    if missing:
        raise UnsupportedOpsError(
            f"TensorFlow Lite Micro has no kernel for {', '.join(missing)} in {model.source}, "
            f"so no sketch can run it. Replace the layers that produce them "
            f"(effkeras.runtime.tflm_ops.TFLM_OPS lists the ops TFLM has)."
            + unsupported_hint(missing),
            missing,
        )
    inp, out = _check_io(model)
    safe_labels = _check_labels(labels, out)
    _check_flash(model, board_obj)
    fixed = _fixed_input(inp, sample)

    from effkeras.runtime.tflm import TFLMRunner, arena_with_margin, measure_arena

    outputs = TFLMRunner(model).invoke_raw([fixed])
    arena_bytes = measure_arena(model)
    expected_argmax = int(np.argmax(np.asarray(outputs[0]).reshape(-1)))
    if arena_size is None:
        used_arena = arena_with_margin(arena_bytes)
    else:
        if isinstance(arena_size, bool) or not isinstance(arena_size, int | np.integer):
            raise EffkerasError(f"arena_size must be an integer. Received: arena_size={arena_size!r}")
        if arena_size < arena_bytes:
            raise EffkerasError(
                f"arena_size must be at least the {arena_bytes} bytes TFLM measured for this "
                f"model. Received: arena_size={arena_size}. Leave it None for the measured "
                f"size plus margin."
            )
        used_arena = int(arena_size)
    _check_ram(used_arena, arena_bytes, board_obj)

    model_name = _token(name if name is not None else sketch_name)
    ops = model.op_names
    carray = to_c_array(model, MODEL_ARRAY_NAME, source_ext=".cpp")
    settings = _settings_header(
        model=model,
        carray=carray,
        name=model_name,
        board=board_obj,
        inp=inp,
        out=out,
        fixed=fixed,
        sample_given=sample is not None,
        expected_argmax=expected_argmax,
        arena_bytes=arena_bytes,
        arena_size=used_arena,
        arena_given=arena_size is not None,
        labels=safe_labels,
        op_count=len(ops),
    )
    resolver_lines = "\n".join(
        f"  if (micro_op_resolver.{TFLM_OPS[op]}() != kTfLiteOk) {{\n"
        f'    SetupFailed("add_op_{op}");\n'
        f"    return;\n"
        f"  }}"
        for op in ops
    )
    from effkeras import __version__

    header_comment = "\n".join(
        [
            f"// {sketch_name}: {model_name} on {board_obj.title} with TensorFlow Lite Micro.",
            f"// Generated by effkeras {__version__}. Do not edit: regenerate with arduino_sketch().",
            "//",
            f"// Model: {model.size_bytes} bytes, sha256 {model.sha256}",
            f"// Ops ({len(ops)}): {', '.join(ops)}",
            f"// Serial: {protocol.BAUD} baud; commands INFO, BENCH <n>, RUN, DEMO 0|1 (README.md).",
        ]
    )
    ino = _template("sketch.ino.tmpl").substitute(
        header_comment=header_comment,
        model_header=carray.header_name,
        array_name=carray.array_name,
        len_name=carray.len_name,
        op_count=len(ops),
        resolver_lines=resolver_lines,
    )
    templates = resources.files("effkeras.deploy").joinpath("templates")
    checksum_h = templates.joinpath("efk_checksum.h").read_text("utf-8")
    port_cpp = templates.joinpath("efk_tflm_port.cpp").read_text("utf-8")
    readme = _readme(
        sketch_name=sketch_name,
        model_name=model_name,
        model=model,
        carray=carray,
        board=board_obj,
        ops=ops,
        inp=inp,
        out=out,
        arena_bytes=arena_bytes,
        arena_size=used_arena,
        expected_argmax=expected_argmax,
    )

    os.makedirs(out_dir, exist_ok=True)
    contents = [
        (f"{sketch_name}.ino", ino),
        (carray.header_name, carray.header),
        (carray.source_name, carray.source),
        ("model_settings.h", settings),
        ("efk_checksum.h", checksum_h),
        ("efk_tflm_port.cpp", port_cpp),
        ("README.md", readme),
    ]
    files = []
    for filename, text in contents:
        path = os.path.join(out_dir, filename)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        files.append(path)
    _check_written_model(os.path.join(out_dir, carray.source_name), model)
    return SketchInfo(
        path=out_dir,
        files=files,
        arena_bytes=arena_bytes,
        arena_size=used_arena,
        ops=ops,
        board=board_obj,
        name=model_name,
        model_bytes=model.size_bytes,
        sha256=model.sha256,
        checksum=carray.checksum,
        expected_argmax=expected_argmax,
        labels=safe_labels,
    )


def _readme(
    *,
    sketch_name: str,
    model_name: str,
    model: TFLiteModel,
    carray: CArrayFiles,
    board: Board,
    ops: list[str],
    inp: TensorInfo,
    out: TensorInfo,
    arena_bytes: int,
    arena_size: int,
    expected_argmax: int,
) -> str:
    from effkeras import __version__
    from effkeras.runtime.tflm import ARENA_MARGIN, ARENA_MARGIN_BYTES, arena_with_margin
    from effkeras.runtime.tflm_ops import arduino_library_problems

    fqbn = board.fqbn or "<vendor:arch:board>"
    core_package = ":".join(fqbn.split(":")[:2]) if board.fqbn else "<vendor:arch>"
    notes = []
    recent = sorted(set(ops) & RECENT_OPS)
    if recent:
        notes.append(
            f"This model uses {', '.join(recent)}, registered only by recent TFLM: if the "
            f"sketch fails to compile with 'has no member named Add...', update the library."
        )
    for problem in arduino_library_problems(model):
        notes.append(f"**Warning**: {problem}.")
    if "FLOAT32" in (inp.dtype, out.dtype):
        notes.append(
            "The model has float32 input or output: it runs, but a full-integer model with "
            "int8 I/O (`to_tflite(..., quantize='int8', io_dtype='int8')`) is smaller and "
            "faster on a microcontroller."
        )
    if arena_size == arena_with_margin(arena_bytes):
        arena_desc = (
            f"{arena_size} bytes (`kTensorArenaSize`): measured {arena_bytes} bytes with TFLM "
            f"on a 64-bit host, plus {ARENA_MARGIN * 100:g}% and {ARENA_MARGIN_BYTES} bytes "
            f"for the 32-bit board, rounded up to 16"
        )
    else:
        arena_desc = (
            f"{arena_size} bytes (`kTensorArenaSize`, set by the caller); TFLM measured "
            f"{arena_bytes} bytes on a 64-bit host"
        )
    from effkeras.deploy.build import TFLM_SYNC_DATES, build_status, library_notes

    library_row = (
        "written for Arduino_TensorFlowLite 2.4.0-ALPHA (TFLM sources of "
        f"{TFLM_SYNC_DATES['2.4.0-ALPHA']}), the library effkeras's CI builds every "
        "generated sketch against (`effkeras build`) and runs on an emulated Cortex-M4 "
        "(`effkeras bench MODEL --target qemu`)"
    )
    if build_status(board.name).startswith("unsupported"):
        library_row += f"; not for {board.title} (see *Install the library*)"
    return _template("README.md.tmpl").substitute(
        library_row=library_row,
        board_library_notes=library_notes(board.name).replace("{sketch}", sketch_name),
        sketch_name=sketch_name,
        model_name=model_name,
        board_title=board.title,
        board_name=_token(board.name),
        version=__version__,
        model_files=f"{carray.header_name}` / `{carray.source_name}",
        model_header=carray.header_name,
        model_source=carray.source_name,
        model_bytes=model.size_bytes,
        sha256=model.sha256,
        sha256_prefix=model.sha256[:16],
        checksum=f"0x{carray.checksum:08x}",
        checksum_hex=f"{carray.checksum:08x}",
        op_count=len(ops),
        op_list=", ".join(f"{op} (`{TFLM_OPS[op]}`)" for op in ops),
        input_desc=_tensor_desc(inp),
        output_desc=_tensor_desc(out),
        input_spec=f"{inp.dtype.lower()}:{_shape_text(inp.shape)}",
        output_spec=f"{out.dtype.lower()}:{_shape_text(out.shape)}",
        output_dtype=out.dtype.lower(),
        input_bytes=inp.size * inp.numpy_dtype.itemsize,
        arena_size=arena_size,
        arena_desc=arena_desc,
        fqbn=fqbn,
        core_package=core_package,
        flash_kb=board.flash_kb,
        ram_kb=board.ram_kb,
        baud=protocol.BAUD,
        proto=protocol.PROTOCOL_VERSION,
        max_bench=protocol.MAX_BENCH,
        run_timeout_ms=protocol.RUN_TIMEOUT_MS,
        demo_interval_ms=DEMO_INTERVAL_MS,
        expected_argmax=expected_argmax,
        notes="".join(f"\n{note}\n" for note in notes),
    )
