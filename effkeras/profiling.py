"""Profile a model for a microcontroller: size, params, MACs, ops, exact TFLM arena, board fit.

:func:`profile` takes .tflite bytes, a path to a .tflite file, a
:class:`~effkeras.convert.TFLiteModel`, a Keras model or a path to a ``.keras``/``.h5``
file (Keras models are converted first with :func:`effkeras.convert.to_tflite`), and
returns a :class:`ProfileReport`.

Conventions:

- **MACs** (multiply-accumulates) are counted from tensor shapes, for one invocation of
  the converted graph (its batch size, 1 for microcontrollers), for the ops that do
  multiply-accumulate work:

  - ``CONV_2D``: ``batch * out_h * out_w * out_c * k_h * k_w * in_c_per_group`` (the
    filter's last dimension, so grouped convolutions count right);
  - ``DEPTHWISE_CONV_2D``: ``batch * out_h * out_w * out_c * k_h * k_w`` (each output
    channel reads one input channel);
  - ``FULLY_CONNECTED``: ``rows * units * in_features`` (rows = batch, or all leading
    dimensions with ``keep_num_dims``);
  - ``TRANSPOSE_CONV``: ``batch * in_h * in_w * in_c * k_h * k_w * out_c`` (every input
    pixel is scattered through the whole filter);
  - ``BATCH_MATMUL``: ``output elements * K`` (the contracted dimension);
  - ``CONV_3D``: ``output elements * k_d * k_h * k_w * in_c``.

  Every other op (elementwise arithmetic, activations, pooling, softmax, reshapes,
  quantize/dequantize) counts **0 MACs**. Their cheaper work is reported separately as
  ``elementwise_ops``: one per output element for elementwise ops and activations, one
  per window element for pooling, one per input element for reductions, and none for
  pure data movement (reshape, transpose, concatenation, pad, slicing, ...).
- **Params** of an op are the elements of its constant *weight* inputs: filter and bias
  of convolutions and fully connected layers, constant operands of arithmetic ops
  (e.g. an unfolded batch norm's MUL/ADD). Integer shape, axis and padding arguments
  (the shape of a RESHAPE, the axes of a MEAN) are not parameters. A float16 weight
  that a DEQUANTIZE expands at load time counts once, at the op that consumes it. The
  model's ``params`` counts each constant tensor once, even when several ops share it.
  The converter folds batch norm into the convolution before it, so a converted model
  has fewer parameters than Keras's ``count_params()`` (gamma, beta, mean and variance
  become the folded bias). ``constant_elements`` counts every constant tensor, shape
  arguments included.
- **Arena**: ``arena_bytes`` is the smallest tensor arena (16-byte steps) with which
  TFLite Micro really loads and runs the model on this 64-bit host
  (:func:`effkeras.runtime.tflm.measure_arena`: it starts from the recording
  allocator's total and searches upward, because that total leaves out a few bytes of
  temporary allocations made while kernels prepare); ``arena_recorded_bytes`` is the
  recording allocator's total itself (:meth:`~effkeras.runtime.TFLMRunner.arena_bytes`).
  ``arena_with_margin`` adds the margin of :func:`effkeras.runtime.tflm.arena_with_margin`
  for a 32-bit board to ``arena_bytes`` and is the RAM a board needs. The RAM the
  Arduino core and the stack take is not counted.
- **Flash** a board needs is the model size plus the board's ``program_flash_kb``
  estimate (core + TFLM runtime; see :mod:`effkeras.boards`).
- **Compression and sparsity**: ``gzip_size_bytes`` is the .tflite after ``gzip -9`` (what
  a download or an over-the-air update moves; a pruned model's dense .tflite is no
  smaller, but its zeros compress). ``weight_sparsity`` is the fraction of exact zeros
  in the kernels (the filter input of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
  CONV_3D, TRANSPOSE_CONV; biases are not pruned and not counted), each kernel counted
  once; per op, ``weight_sparsity`` in its row. A weight is zero when it equals its
  zero point (0 for int8 weights). Kernels stored in TFLite's sparse format
  (``to_tflite(..., sparse=True)``) are decoded to count them, have
  ``weight_encoding="sparse"`` and ``weight_stored_bytes`` below their dense size, and
  are counted in ``sparse_tensors``; such a model needs LiteRT's built-in kernels
  (XNNPACK refuses it) and TFLite Micro cannot run it at all (no ``DENSIFY`` kernel:
  ``arena_error`` says so). See :mod:`effkeras.convert.weights`.

The per-op counting (MACs, elementwise ops, params, kernel rows) is in
:mod:`effkeras.op_costs` and the flash/RAM check in :mod:`effkeras.board_fit`; this module
loads the model, measures the arena and assembles the report. :func:`op_macs` and
:func:`board_fit` stay importable from here.

This module imports neither TensorFlow nor Keras; converting a Keras model does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from effkeras.board_fit import _fit_text, board_fit
from effkeras.boards import BOARDS, Board, get_board
from effkeras.convert.flatbuffer import TensorInfo, TFLiteModel, read_tflite
from effkeras.convert.weights import gzip_size
from effkeras.errors import ConversionError, EffkerasError, InvalidModelError
from effkeras.op_costs import _layers, op_macs
from effkeras.runtime.isolate import run_in_child

__all__ = ["ProfileReport", "board_fit", "op_macs", "profile"]

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


# ---- the report ----------------------------------------------------------------------
@dataclass
class ProfileReport:
    """What :func:`profile` found out about a model. See the module docstring for units.

    Attributes:
        source: where the model came from (a path, ``<bytes>`` or ``<keras:name>``).
        size_bytes, sha256: of the .tflite flatbuffer.
        gzip_size_bytes: the .tflite after ``gzip -9``.
        weight_elements, weight_zeros: elements and exact zeros of all kernels.
        weight_sparsity: ``weight_zeros / weight_elements`` (0.0 without kernels).
        sparse_tensors: kernels stored in TFLite's sparse format.
        params: elements of constant weight tensors, each counted once.
        constant_elements: elements of every constant tensor (shape arguments included).
        macs: multiply-accumulates for one invocation.
        elementwise_ops: non-MAC arithmetic (elementwise, pooling, reductions).
        ops: op name -> count.
        arena_bytes: the smallest TFLM arena that runs the model on this host, or None
            (see ``arena_error``).
        arena_recorded_bytes: the TFLM recording allocator's total, or None.
        arena_with_margin: the arena a 32-bit board needs, or None.
        arena_error: why the arena was not measured, or None.
        tflm_unsupported_ops: ops TFLite Micro has no kernel for.
        inputs, outputs: ``{name, shape, dtype, scale, zero_point}`` each.
        is_full_integer: no op computes in float.
        layers: one row per op: ``{index, op, output_shape, output_dtype, params, macs,
            elementwise_ops, fused_activation, weight_elements, weight_zeros,
            weight_sparsity, weight_encoding, weight_stored_bytes}`` (the ``weight_*``
            keys describe the op's kernel; None for ops without one).
        boards: one :func:`board_fit` dict per board checked.
        conversion: how a Keras model was converted (``{"quantize": ..., ...}``), or None.
        isolated: whether TFLM ran in a child process.
    """

    source: str
    size_bytes: int
    sha256: str
    params: int
    constant_elements: int
    macs: int
    elementwise_ops: int
    ops: dict[str, int]
    arena_bytes: int | None
    arena_recorded_bytes: int | None
    arena_with_margin: int | None
    arena_error: str | None
    tflm_unsupported_ops: list[str]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    is_full_integer: bool
    layers: list[dict[str, Any]]
    boards: list[dict[str, Any]] = field(default_factory=list)
    conversion: dict[str, Any] | None = None
    isolated: bool = False
    gzip_size_bytes: int = 0
    weight_elements: int = 0
    weight_zeros: int = 0
    sparse_tensors: int = 0
    target_arena_bytes: int | None = None
    target: dict[str, Any] | None = None
    tflm_needs: dict[str, Any] | None = None
    arduino_library_problems: list[str] = field(default_factory=list)

    @property
    def arena_source(self) -> str:
        """Which arena the board fit used: ``"target-32bit"`` (measured on the emulated
        Cortex-M4F, :func:`profile` with ``arena="target"``) or ``"host-64bit"`` (TFLM on
        this host, plus the 32-bit margin)."""
        return "target-32bit" if self.target_arena_bytes is not None else "host-64bit"

    @property
    def weight_sparsity(self) -> float:
        """Fraction of exact zeros over all kernels (see the module docstring)."""
        return self.weight_zeros / self.weight_elements if self.weight_elements else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Every field, in JSON-serializable Python types."""
        return {
            "source": self.source,
            "size_bytes": self.size_bytes,
            "gzip_size_bytes": self.gzip_size_bytes,
            "sha256": self.sha256,
            "params": self.params,
            "constant_elements": self.constant_elements,
            "macs": self.macs,
            "elementwise_ops": self.elementwise_ops,
            "weight_elements": self.weight_elements,
            "weight_zeros": self.weight_zeros,
            "weight_sparsity": self.weight_sparsity,
            "sparse_tensors": self.sparse_tensors,
            "ops": dict(self.ops),
            "arena_bytes": self.arena_bytes,
            "arena_recorded_bytes": self.arena_recorded_bytes,
            "arena_with_margin": self.arena_with_margin,
            "arena_error": self.arena_error,
            "arena_source": self.arena_source,
            "fit_arena_bytes": self.fit_arena_bytes,
            "target_arena_bytes": self.target_arena_bytes,
            "target": dict(self.target) if self.target else None,
            "tflm_needs": dict(self.tflm_needs) if self.tflm_needs else None,
            "arduino_library_problems": list(self.arduino_library_problems),
            "tflm_unsupported_ops": list(self.tflm_unsupported_ops),
            "inputs": [dict(s) for s in self.inputs],
            "outputs": [dict(s) for s in self.outputs],
            "is_full_integer": self.is_full_integer,
            "layers": [dict(r) for r in self.layers],
            "boards": [dict(b) for b in self.boards],
            "conversion": dict(self.conversion) if self.conversion is not None else None,
            "isolated": self.isolated,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def board(self, board: str | Board | None = None) -> dict[str, Any]:
        """The :func:`board_fit` dict for one board (the one profiled for, by default).

        A board name or :class:`Board` not checked by :func:`profile` is checked now from
        the report's size and arena.
        """
        if board is None:
            if len(self.boards) != 1:
                raise EffkerasError(
                    f"This report covers {len(self.boards)} boards "
                    f"({', '.join(b['name'] for b in self.boards)}); name one. "
                    f"Received: board=None"
                )
            return self.boards[0]
        if isinstance(board, str):
            for entry in self.boards:
                if entry["name"] == board:
                    return entry
        return board_fit(board, self.size_bytes, self.fit_arena_bytes)

    @property
    def fit_arena_bytes(self) -> int | None:
        """The RAM the board fit counts for the arena: the 32-bit target's figure (16-byte
        rounded) when measured, else the host's plus margin (``arena_with_margin``)."""
        if self.target_arena_bytes is not None:
            return (self.target_arena_bytes + 15) // 16 * 16
        return self.arena_with_margin

    def fits(self, board: str | Board | None = None) -> bool:
        """True when the model fits the board's flash and RAM.

        False when it does not, and also when the arena could not be measured (RAM fit
        unknown): a model is never claimed to fit unchecked.
        """
        return self.board(board)["fits"] is True

    def fit_line(self, board: str | Board | None = None) -> str:
        """One sentence on the fit, e.g. "fits on Arduino Nano 33 BLE Sense: flash 35%..."."""
        return _fit_text(self.board(board))

    def table(self) -> str:
        """A human-readable report: per-layer table, totals, I/O, arena and board fit."""
        lines = [f"Model: {self.source} ({self.size_bytes:,} bytes, sha256 {self.sha256[:16]})"]
        if self.conversion is not None:
            c = self.conversion
            lines.append(
                f"Converted from Keras: quantize={c.get('quantize')!r}, "
                f"representative samples: {c.get('representative_samples')}"
            )
        rows = [("#", "op", "output shape", "params", "MACs", "zeros", "activation")]
        for r in self.layers:
            zeros = "-"
            if r.get("weight_sparsity") is not None:
                zeros = f"{100 * r['weight_sparsity']:.1f}%"
                if r.get("weight_encoding") == "sparse":
                    zeros += " (sparse)"
            rows.append(
                (
                    str(r["index"]),
                    r["op"],
                    "x".join(str(d) for d in r["output_shape"]) or "scalar",
                    f"{r['params']:,}",
                    f"{r['macs']:,}",
                    zeros,
                    r["fused_activation"] or "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        right = {0, 3, 4, 5}
        for k, row in enumerate(rows):
            cells = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
            if k == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines.append(
            f"Total: {self.params:,} params, {self.macs:,} MACs "
            f"(+ {self.elementwise_ops:,} elementwise ops), {len(self.layers)} ops"
        )
        lines.append(
            f"Size: {self.size_bytes:,} bytes, gzip -9 {self.gzip_size_bytes:,} bytes "
            f"({100 * self.gzip_size_bytes / max(self.size_bytes, 1):.0f}%); kernel weight "
            f"sparsity {100 * self.weight_sparsity:.1f}% ({self.weight_zeros:,} of "
            f"{self.weight_elements:,} zero)"
        )
        if self.sparse_tensors:
            lines.append(
                f"Sparse format: {self.sparse_tensors} kernel(s) stored as TFLite sparse "
                f"tensors (DENSIFY at load): LiteRT built-in kernels only; TFLite Micro "
                f"cannot run this model"
            )
        lines.append("Ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.ops.items())))
        for kind, specs in (("Input", self.inputs), ("Output", self.outputs)):
            for s in specs:
                q = (
                    f" scale {s['scale']:.6g} zero_point {s['zero_point']}"
                    if isinstance(s["scale"], float)
                    else ""
                )
                lines.append(f"{kind}: {s['name']!r} {s['dtype']} {s['shape']}{q}")
        lines.append(f"Full integer: {'yes' if self.is_full_integer else 'no'}")
        if self.arena_bytes is not None:
            recorded = (
                f" (recording allocator total {self.arena_recorded_bytes:,})"
                if self.arena_recorded_bytes is not None
                else ""
            )
            if self.target_arena_bytes is not None:
                t = self.target or {}
                lines.append(
                    f"TFLM arena: {self.target_arena_bytes:,} bytes on the 32-bit target "
                    f"(measured: {t.get('title', 'emulated board')}, {t.get('core', '')}, "
                    f"Arduino_TensorFlowLite {t.get('library_version', '?')}); the board fit "
                    f"uses it. On this 64-bit host: {self.arena_bytes:,} bytes{recorded}."
                )
            else:
                lines.append(
                    f"TFLM arena: {self.arena_bytes:,} bytes, the smallest that runs on this "
                    f"64-bit host{recorded}; {self.arena_with_margin:,} bytes with the margin "
                    f"for a 32-bit board, which the board fit uses (the 32-bit target's own "
                    f"figure: profile --arena target)"
                )
        else:
            lines.append(f"TFLM arena: not measured: {self.arena_error}")
        if self.tflm_needs and self.tflm_needs.get("needs") != "any TensorFlow Lite Micro":
            lines.append(f"Needs: {self.tflm_needs['needs']}"
                         + ("" if self.tflm_needs.get("arduino_2023") else
                            " (not the 2023 Arduino_TensorFlowLite library)"))
        for problem in self.arduino_library_problems:
            lines.append(f"Warning: {problem}.")
        for entry in self.boards:
            lines.append(_fit_text(entry))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ---- profile -------------------------------------------------------------------------
def _is_keras_path(model: Any) -> bool:
    return isinstance(model, str | os.PathLike) and os.fspath(model).lower().endswith(
        _KERAS_SUFFIXES
    )


def _count(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


def _load(
    model: Any, quantize: str | None, representative_data: Any
) -> tuple[TFLiteModel, dict[str, Any] | None]:
    """The model as a TFLiteModel, converting a Keras model (or .keras file) first."""
    tflite_like = isinstance(model, bytes | bytearray | memoryview | TFLiteModel) or (
        isinstance(model, str | os.PathLike) and not _is_keras_path(model)
    )
    if tflite_like:
        if quantize is not None or representative_data is not None:
            raise ConversionError(
                f"quantize and representative_data apply to Keras models only; this model "
                f"is already a .tflite. Received: quantize={quantize!r}, "
                f"representative_data={type(representative_data).__name__}. Drop them, or "
                f"pass the Keras model."
            )
        return read_tflite(model), None
    from effkeras.convert.converter import to_tflite  # imports TensorFlow

    data = to_tflite(model, quantize=quantize, representative_data=representative_data)
    if _is_keras_path(model):
        source = os.fspath(model)
    else:
        source = f"<keras:{getattr(model, 'name', type(model).__name__)}>"
    conversion = {
        "from": "keras",
        "quantize": quantize,
        "representative_samples": _count(representative_data),
    }
    return TFLiteModel(data, source=source), conversion


def _unsupported_hint(ops: Iterable[str]) -> str:
    """Advice for ops TFLM lacks (effkeras.runtime.tflm_ops), or "" without that module."""
    try:
        from effkeras.runtime.tflm_ops import unsupported_hint as hint
    except ImportError:  # pragma: no cover - only before tflm_ops exists
        return ""
    return hint(ops)


def _unsupported_ops(model: TFLiteModel) -> list[str] | None:
    """Ops TFLM lacks, from effkeras.runtime.tflm_ops; None if that module is missing."""
    try:
        from effkeras.runtime.tflm_ops import tflm_unsupported_ops
    except ImportError:  # pragma: no cover - only before tflm_ops exists
        return None
    return sorted(tflm_unsupported_ops(model))


def _measure(model: TFLiteModel) -> dict[str, Any]:
    """{"arena_bytes": n, "arena_recorded_bytes": m} or {"error": ..., "missing_ops": [...]}.

    Both runtimes must really prepare the model, each in a child process (memory and time
    limits): TFLM measures the arena, and LiteRT, whose verifier and allocator check what
    TFLM does not, allocates and invokes it. Only then is there an arena to report.
    """
    from effkeras.runtime.litert import _probe as litert_probe
    from effkeras.runtime.litert import lacks_kernel
    from effkeras.runtime.tflm import run_isolated

    result = run_isolated(model)
    if "arena_bytes" not in result:
        return result
    for kernels in ("reference", "builtin"):
        try:
            run_in_child("LiteRT could not prepare the model", litert_probe, model, kernels,
                         source=model.source)
            break
        except InvalidModelError as exc:
            if kernels == "reference" and lacks_kernel(exc):
                continue  # e.g. int4 filters: the reference resolver lags the builtin one
            return {"error": f"TFLite Micro prepared the model, but {exc}"}
    return result


def _io_spec(t: TensorInfo) -> dict[str, Any]:
    q = t.quantization
    if q is None:
        scale: Any = None
        zero_point: Any = None
    elif q.per_channel:
        scale = [float(s) for s in q.scales]
        zero_point = [int(z) for z in q.zero_points]
    else:
        scale = float(q.scales[0])
        zero_point = int(q.zero_points[0])
    return {
        "name": t.name,
        "shape": [int(d) for d in t.shape],
        "dtype": t.dtype,
        "scale": scale,
        "zero_point": zero_point,
    }


def profile(
    model_or_tflite: Any,
    board: str | Board | None = None,
    *,
    quantize: str | None = None,
    representative_data: Any = None,
    isolate: bool = False,
    arena: str = "host",
    tflm_lib: str | os.PathLike | None = None,
) -> ProfileReport:
    """Size, params, MACs, ops, exact TFLite Micro arena and board fit of a model.

    Args:
        model_or_tflite: .tflite bytes, a path to a .tflite file, a
            :class:`~effkeras.convert.TFLiteModel`, a ``keras.Model`` or a path to a
            ``.keras``/``.h5`` file (Keras models are converted with
            :func:`effkeras.convert.to_tflite`; that needs TensorFlow).
        board: a board name (see :data:`effkeras.BOARDS`), a :class:`~effkeras.Board`
            (e.g. from :func:`effkeras.custom_board`), or None to check every board in
            the table.
        quantize: for a Keras model, the ``to_tflite`` quantization mode (None, "float16",
            "dynamic", "int8", "int16x8").
        representative_data: for a Keras model with ``quantize="int8"``/``"int16x8"``,
            the calibration inputs.
        isolate: kept for compatibility: the runtimes now always prepare the model in
            child processes (memory and time limits), so a corrupt or hostile file cannot
            crash this one, and the report says "fits" only when both LiteRT and TFLM
            prepared and ran it.
        arena: ``"host"`` (default): the arena TFLM needs on this 64-bit host, plus the
            margin of :func:`effkeras.runtime.tflm.arena_with_margin` for a 32-bit board.
            ``"target"``: also build the model's sketch for the emulated Cortex-M4F
            (``arm-none-eabi-g++`` and the Arduino library, see ``tflm_lib``), run it in
            QEMU and use the arena the 32-bit target reports (``arena_used_bytes()``) for
            the board fit: exact for a Cortex-M4F build, and smaller than the host's.
        tflm_lib: with ``arena="target"``, the Arduino_TensorFlowLite folder (default
            ``$EFFKERAS_TFLM_LIB``, then ``~/Arduino/libraries/Arduino_TensorFlowLite``).

    Returns:
        A :class:`ProfileReport`; ``.table()`` for people, ``.to_dict()``/``.to_json()``
        for programs, ``.fits(board)``.

    Raises:
        InvalidModelError: the input is not a readable model.
        UnknownBoardError: ``board`` is not a known board name.
        ConversionError: ``quantize``/``representative_data`` given with a .tflite, or the
            Keras model could not be converted.
    """
    if arena not in ("host", "target"):
        raise ValueError(f"arena must be 'host' or 'target'. Received: arena={arena!r}")
    boards: list[str | Board] = list(BOARDS) if board is None else [get_board(board)]
    tm, conversion = _load(model_or_tflite, quantize, representative_data)

    layers, params = _layers(tm)
    kernels: dict[int, dict[str, Any]] = {}
    for row in layers:
        index = row.pop("_kernel", None)
        if index is not None:
            kernels[index] = row
    unsupported = _unsupported_ops(tm) or []
    arena_host: int | None = None
    recorded: int | None = None
    error: str | None = None
    if unsupported:
        error = (
            f"TFLite Micro has no kernel for {', '.join(unsupported)}; replace the layers "
            f"that produce them (see effkeras.runtime.tflm_ops)." + _unsupported_hint(unsupported)
        )
    else:
        result = _measure(tm)
        if "arena_bytes" in result:
            arena_host = int(result["arena_bytes"])
            if result.get("arena_recorded_bytes") is not None:
                recorded = int(result["arena_recorded_bytes"])
        else:
            error = str(result.get("error", "TFLite Micro could not run the model"))
            unsupported = sorted(result.get("missing_ops") or [])

    from effkeras.convert.compress import tflm_requirements
    from effkeras.runtime.tflm import arena_with_margin
    from effkeras.runtime.tflm_ops import arduino_library_problems

    margin = arena_with_margin(arena_host) if arena_host is not None else None
    fit_arena = margin
    target_arena = target = None
    if arena == "target" and arena_host is not None:
        from effkeras.bench.qemu import run_qemu

        run = run_qemu(tm, runs=1, warmup=0, compare=0, tflm_lib=tflm_lib)
        target_arena = run.arena_bytes
        fit_arena = (target_arena + 15) // 16 * 16
        target = {"board": run.build.board.name, "title": run.build.board.title,
                  "core": run.build.board.core, "library_version": run.build.library_version,
                  "text": run.build.text, "data": run.build.data, "bss": run.build.bss,
                  "instructions_per_inference": run.instructions}
    arena = arena_host
    return ProfileReport(
        source=tm.source,
        size_bytes=tm.size_bytes,
        sha256=tm.sha256,
        params=params,
        constant_elements=tm.params,
        macs=int(sum(r["macs"] for r in layers)),
        elementwise_ops=int(sum(r["elementwise_ops"] for r in layers)),
        ops={k: int(v) for k, v in tm.op_counts.items()},
        arena_bytes=arena,
        arena_recorded_bytes=recorded,
        arena_with_margin=margin,
        arena_error=error,
        tflm_unsupported_ops=list(unsupported),
        inputs=[_io_spec(t) for t in tm.inputs],
        outputs=[_io_spec(t) for t in tm.outputs],
        is_full_integer=bool(tm.is_full_integer),
        layers=layers,
        boards=[board_fit(b, tm.size_bytes, fit_arena) for b in boards],
        conversion=conversion,
        isolated=True,
        gzip_size_bytes=gzip_size(tm.data),
        weight_elements=int(sum(r["weight_elements"] for r in kernels.values())),
        weight_zeros=int(sum(r["weight_zeros"] for r in kernels.values())),
        sparse_tensors=sum(1 for r in kernels.values() if r["weight_encoding"] == "sparse"),
        target_arena_bytes=target_arena,
        target=target,
        tflm_needs=tflm_requirements(tm).to_dict(),
        arduino_library_problems=arduino_library_problems(tm),
    )
