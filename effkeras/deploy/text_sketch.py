"""An Arduino sketch that classifies text: the C projector in front of a TFLM model.

:func:`text_sketch` writes what :func:`~effkeras.deploy.arduino_sketch` writes (model C
array, ``model_settings.h`` with the measured arena, ``efk_checksum.h``), with its own
``.ino`` and README, plus the C projector (:mod:`effkeras.deploy.c_featurizer`):

- ``efk_projector.h`` / ``efk_projector.c`` (C99) and ``efk_projector_config.h`` (the
  projector's settings);
- ``efk_text_settings.h``: the maximum line length, the int8 values of projection values
  -1, 0 and +1 in the model's input quantization, and a sample text whose Python
  projection is ``kSampleInput``.

The sketch reads lines from Serial (115200 baud). Each line (``\\r\\n`` or ``\\n``; at most
``max_text_bytes`` bytes, the rest dropped and reported as ``truncated=1``) is projected,
run through the model and answered with one line::

    EFK READY proto=1 name=sms board=nano33ble fnv_ok=1 projector_ok=1 max_text_bytes=256
    EFK CLASS argmax=1 label=spam score=0.996094 tokens=12 bytes=58 truncated=0
        project_us=310 invoke_us=900 input_fnv=1c2d3e4f

``projector_ok`` says that at start-up the C projector reproduced, for the sample text,
the exact input the Python projector made on the host; ``input_fnv`` (FNV-1a 32 of the
input tensor's bytes) lets a host check any line the same way
(:func:`expected_input_fnv`). The board has no Unicode tables: send text normalized as
the projector's ``normalization`` says (nothing to do for ``"none"``).

The projector comes from the model file: ``effkeras.convert.to_tflite`` stores it in the
.tflite metadata (entry ``"effkeras.projector"``, :func:`~effkeras.deploy.featurizer.read_projector`),
so ``text_sketch("model.tflite", "sms_text")`` needs nothing else; for a file converted
without it pass ``projector=`` or store it with
:func:`~effkeras.deploy.featurizer.attach_projector`.

Nothing here imports TensorFlow, Keras or the training side (:mod:`effkeras.text`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

import numpy as np

from effkeras.convert.c_array import fnv1a32
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.deploy.arduino import (
    MODEL_ARRAY_NAME,
    SketchInfo,
    _check_sketch_name,
    _token,
    arduino_sketch,
    check_arduino_library,
)
from effkeras.deploy.c_featurizer import CONFIG_HEADER, c_sources, config_header
from effkeras.deploy.featurizer import (
    PROJECTOR_METADATA,
    Projector,
    check_projection_model,
    read_projector,
)
from effkeras.errors import EffkerasError, InvalidModelError, OutputExistsError
from effkeras.runtime.quant import quantize
from effkeras.runtime.tflm_ops import TFLM_OPS

TEXT_SETTINGS_HEADER = "efk_text_settings.h"
DEFAULT_SAMPLE_TEXT = "Hello from effkeras! Call 0800 now to WIN a prize."


@dataclass(frozen=True)
class TextSketchInfo:
    """What :func:`text_sketch` wrote.

    Attributes:
        sketch: the :class:`~effkeras.deploy.SketchInfo` of the model part (arena, ops,
            board, checksums); its ``files`` are this sketch's files.
        projector: the projector compiled in.
        sample_text: the self-test text; ``sample_input`` its projection in the model's
            input dtype (``kSampleInput``).
        max_text_bytes: the longest line the sketch projects.
        ram_bytes: RAM the sketch adds to the arena for the projector and the line buffer.
    """

    sketch: SketchInfo
    projector: Projector
    sample_text: str
    sample_input: np.ndarray
    max_text_bytes: int
    ram_bytes: int

    @property
    def path(self) -> str:
        return self.sketch.path

    @property
    def files(self) -> list[str]:
        return self.sketch.files

    @property
    def ino_path(self) -> str:
        return self.sketch.ino_path


def projection_to_input(projection: np.ndarray, tflite: Any) -> np.ndarray:
    """Projection values -> the model's input tensor, exactly as the sketch writes it."""
    model = tflite if isinstance(tflite, TFLiteModel) else read_tflite(tflite)
    inp = model.inputs[0]
    values = np.asarray(projection).astype(np.float32).reshape(inp.shape)
    return np.ascontiguousarray(quantize(values, inp).astype(inp.numpy_dtype))


def expected_input_fnv(text: str | bytes, projector: Projector | None, tflite: Any) -> int:
    """``input_fnv`` the sketch must print for ``text`` (the line's bytes as sent).

    ``projector`` None: the one stored in ``tflite`` (see :func:`model_projector`).
    """
    model = read_tflite(tflite)
    projector = model_projector(model, projector)
    return fnv1a32(projection_to_input(projector.project(text), model).tobytes())


def model_projector(tflite: Any, projector: Projector | None = None) -> Projector:
    """The projector a text sketch compiles in: the model file's, or ``projector``.

    Args:
        tflite: the projection model (bytes, path or :class:`~effkeras.convert.TFLiteModel`).
        projector: None to take the one stored in the file's metadata; otherwise it must
            equal the stored one, if the file has one.

    Raises:
        InvalidModelError: the file stores no projector and none is given, or the given
            one disagrees with the stored one.
        TypeError: ``projector`` is not a Projector.
    """
    if projector is not None and not isinstance(projector, Projector):
        raise TypeError(
            f"projector must be an effkeras.text.Projector (or None to use the model's). "
            f"Received: {type(projector).__name__}"
        )
    model = read_tflite(tflite)
    stored = read_projector(model)
    if projector is None:
        if stored is None:
            raise InvalidModelError(
                f"{model.source} stores no projector (no {PROJECTOR_METADATA!r} metadata entry), "
                f"so the text sketch cannot tell how to featurize text for it. Pass "
                f"projector=Projector(...) (the one the model was trained with), or convert "
                f"with effkeras.convert.to_tflite(model, ..., projector=p) or store it with "
                f"effkeras.deploy.featurizer.attach_projector(tflite_bytes, p)."
            )
        return stored
    if stored is not None and stored != projector:
        raise InvalidModelError(
            f"projector={projector!r} disagrees with the projector stored in "
            f"{model.source} ({PROJECTOR_METADATA!r} metadata): {stored!r}. Leave projector "
            f"out to use the model's, or re-attach the right one with "
            f"effkeras.deploy.featurizer.attach_projector."
        )
    return projector


def _c_bytes_literal(data: bytes) -> str:
    """A C string literal of exactly these bytes (octal escapes outside printable ASCII)."""
    out = []
    for b in data:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F and b != 0x3F:  # no '?': avoids trigraphs
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _text_settings(
    projector: Projector, model: TFLiteModel, sample: bytes, max_text_bytes: int
) -> str:
    inp = model.inputs[0]
    if inp.dtype == "INT8":
        levels = quantize(np.array([-1.0, 0.0, 1.0], np.float32), inp).astype(np.int8)
        q = inp.quantization
        exact = bool(
            np.allclose(
                (levels.astype(np.float64) - q.zero_points[0]) * q.scales[0], [-1, 0, 1], atol=1e-6
            )
        )
        note = f"// Input scale {float(q.scales[0]):.9g}, zero point {int(q.zero_points[0])}: " + (
            "-1, 0, +1 are represented exactly."
            if exact
            else "NOT exact; calibrate with effkeras.text.calibration_data."
        )
    else:
        levels = np.array([-1, 0, 1], np.int8)
        note = "// Float32 input: the sketch writes -1.0f, 0.0f, 1.0f (this table is unused)."
    return "\n".join(
        [
            "// Generated by effkeras (effkeras.deploy.text_sketch). Do not edit.",
            "#ifndef EFFKERAS_EFK_TEXT_SETTINGS_H_",
            "#define EFFKERAS_EFK_TEXT_SETTINGS_H_",
            "",
            "#include <stdint.h>",
            "",
            "// The longest line (in bytes) the sketch projects; longer lines are truncated.",
            f"constexpr int kMaxTextBytes = {max_text_bytes};",
            "",
            "// Projection value v in {-1, 0, 1} -> model input: kProjectionToInput[v + 1].",
            note,
            f"constexpr int8_t kProjectionToInput[3] = {{{', '.join(str(int(v)) for v in levels)}}};",
            "",
            "// Self-test at start-up: projecting this text must give kSampleInput.",
            f"constexpr char kSampleText[] = {_c_bytes_literal(sample)};",
            f"constexpr unsigned int kSampleTextBytes = {len(sample)};",
            "",
            "#endif  // EFFKERAS_EFK_TEXT_SETTINGS_H_",
            "",
        ]
    )


def _readme(
    info: SketchInfo, projector: Projector, max_text_bytes: int, ram_bytes: int, sketch_name: str
) -> str:
    fqbn = info.board.fqbn or "<vendor:arch:board>"
    norm = (
        "nothing: the board lowercases ASCII itself"
        if projector.normalization == "none"
        else f"`{projector.normalization}` (effkeras.text.normalize_text) before sending"
    )
    return f"""# {sketch_name}: text classification on {info.board.title}

Generated by effkeras (`effkeras.deploy.text_sketch`). Do not edit; regenerate instead.

The board hashes each line of text into the projection `{projector!r}`
with the C projector (`efk_projector.c`, bit-exact with the Python one) and runs the
int8 model ({info.model_bytes} bytes, sha256 `{info.sha256}`, ops: {", ".join(info.ops)})
with TensorFlow Lite Micro.

## Build and flash

Install the `Arduino_TensorFlowLite` library (tflite-micro-arduino-examples), then:

    arduino-cli compile --fqbn {fqbn} {sketch_name}
    arduino-cli upload  --fqbn {fqbn} -p /dev/ttyACM0 {sketch_name}

Memory: tensor arena {info.arena_size} bytes (`kTensorArenaSize`; TFLM measured
{info.arena_bytes} bytes on a 64-bit host) plus {ram_bytes} bytes for the projector
buffers and the line buffer.

## Use

Open the serial monitor at 115200 baud with "newline" line endings and type a message.
Text must be UTF-8, normalized as the model was trained: {norm}. Lines longer than
{max_text_bytes} bytes are truncated. Answers:

    EFK READY proto=1 name={info.name} board={_token(info.board.name)} fnv_ok=1 projector_ok=1 max_text_bytes={max_text_bytes}
    EFK CLASS argmax=<i> label=<label> score=<probability> tokens=<n> bytes=<n> truncated=0|1 project_us=<us> invoke_us=<us> input_fnv=<hex>

`projector_ok=1` means the C projector reproduced the host's projection of the built-in
sample text exactly; `input_fnv` is the FNV-1a 32 hash of the model input, which
`effkeras.deploy.text_sketch.expected_input_fnv(line, projector, tflite)` recomputes on
the host.
"""


def text_sketch(
    tflite: Any,
    out_dir: str | os.PathLike,
    projector: Projector | None = None,
    board: Any = "nano33ble",
    *,
    name: str | None = None,
    labels: list[str] | None = None,
    force: bool = False,
    arena_size: int | None = None,
    sample_text: str = DEFAULT_SAMPLE_TEXT,
    max_text_bytes: int = 256,
) -> TextSketchInfo:
    """Write an Arduino sketch that reads text from Serial and prints the predicted class.

    Args:
        tflite: the model whose input is ``projector``'s output (int8 or float32 input
            and output, e.g. ``to_tflite(build_sgnn(...), quantize="int8",
            representative_data=calibration_data(x), io_dtype="int8")``), as bytes, a
            path or a :class:`~effkeras.convert.TFLiteModel`.
        out_dir: the sketch folder (its name becomes the ``.ino``'s).
        projector: the :class:`~effkeras.text.Projector` the model was trained with; None
            (default) takes the one ``to_tflite`` stored in the file's metadata. Given
            for a file that stores one, it must be the same.
        board: a board name or :class:`~effkeras.boards.Board`.
        name: the model name the board reports; defaults to the folder name.
        labels: one label per class, printed with each answer.
        force: overwrite an existing folder's files.
        arena_size: ``kTensorArenaSize``; default: measured plus margin.
        sample_text: the start-up self-test text (its projection is ``kSampleInput``).
        max_text_bytes: the line buffer (longer lines are truncated), 1 to 65535.

    Returns:
        A :class:`TextSketchInfo`.

    Raises:
        InvalidModelError: the file stores no projector and none is given, or a different
            one; the model's input does not hold the projector's output, or its I/O is not
            int8 or float32.
        plus the errors of :func:`~effkeras.deploy.arduino_sketch` (unsupported ops, board
        fit, existing folder).
    """
    if (
        isinstance(max_text_bytes, bool)
        or not isinstance(max_text_bytes, int)
        or not 1 <= max_text_bytes <= 65535
    ):
        raise EffkerasError(
            f"max_text_bytes must be an integer in [1, 65535]. Received: max_text_bytes={max_text_bytes!r}"
        )
    out_dir = os.fspath(out_dir)
    sketch_name = _check_sketch_name(out_dir)
    if os.path.exists(out_dir) and not force:
        raise OutputExistsError(
            f"{out_dir} exists. Pass force=True to overwrite the sketch, or choose another folder."
        )
    if projector is not None and not isinstance(projector, Projector):
        raise TypeError(
            f"projector must be an effkeras.text.Projector (or None to use the model's). "
            f"Received: {type(projector).__name__}"
        )
    model = read_tflite(tflite)
    check_arduino_library(model)  # a compressed file is refused before the projector checks
    if len(model.inputs) != 1 or not model.outputs:
        raise InvalidModelError(
            f"The text sketch feeds models with one input. Received: {len(model.inputs)} inputs"
        )
    inp, out = model.inputs[0], model.outputs[0]
    # A given projector that cannot feed the model is named as such before it is compared
    # with the one the file stores.
    if projector is not None:
        check_projection_model(model, projector)
    projector = model_projector(model, projector)
    check_projection_model(model, projector)
    for kind, t in (("input", inp), ("output", out)):
        if t.dtype not in ("INT8", "FLOAT32"):
            raise InvalidModelError(
                f"The text sketch handles int8 or float32 {kind}s. Received: {kind} dtype "
                f"{t.dtype}. Convert with io_dtype='int8'."
            )
    sample = projector.to_bytes(sample_text)
    if len(sample) > max_text_bytes:
        raise EffkerasError(
            f"sample_text must fit max_text_bytes={max_text_bytes}. Received: {len(sample)} bytes"
        )
    sample_projection = projector.project(sample)
    fixed = projection_to_input(sample_projection, model)

    info = arduino_sketch(
        model,
        out_dir,
        board,
        name=name,
        labels=labels,
        force=force,
        arena_size=arena_size,
        sample=fixed,
    )
    ops = info.ops
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
            f"// {sketch_name}: text classification ({info.name}) on {info.board.title} with TFLM.",
            f"// Generated by effkeras {__version__}. Do not edit: regenerate with text_sketch().",
            "//",
            f"// Projector: {projector!r}",
            f"// Model: {info.model_bytes} bytes, sha256 {info.sha256}",
            f"// Ops ({len(ops)}): {', '.join(ops)}",
            "// Serial: 115200 baud; send a line of text, get 'EFK CLASS ...' (README.md).",
        ]
    )
    template = (
        resources.files("effkeras.deploy")
        .joinpath("templates", "text_sketch.ino.tmpl")
        .read_text("utf-8")
    )
    ino = Template(template).substitute(
        header_comment=header_comment,
        model_header=f"{MODEL_ARRAY_NAME}.h",
        array_name=f"g_{MODEL_ARRAY_NAME}_data",
        len_name=f"g_{MODEL_ARRAY_NAME}_data_len",
        op_count=len(ops),
        resolver_lines=resolver_lines,
    )
    features = projector.features
    ram_bytes = int(np.prod(projector.output_shape)) + 4 * features + max_text_bytes + 1
    extra = {
        **c_sources(),
        CONFIG_HEADER: config_header(projector),
        TEXT_SETTINGS_HEADER: _text_settings(projector, model, sample, max_text_bytes),
    }
    files = list(info.files)
    with open(info.ino_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(ino)
    readme = os.path.join(out_dir, "README.md")
    with open(readme, "w", encoding="utf-8", newline="\n") as f:
        f.write(_readme(info, projector, max_text_bytes, ram_bytes, sketch_name))
    for filename, text in extra.items():
        path = os.path.join(out_dir, filename)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        files.append(path)
    sketch = SketchInfo(**{**info.__dict__, "files": files})
    return TextSketchInfo(
        sketch=sketch,
        projector=projector,
        sample_text=sample_text,
        sample_input=fixed,
        max_text_bytes=max_text_bytes,
        ram_bytes=ram_bytes,
    )
