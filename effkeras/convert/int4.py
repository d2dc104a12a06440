"""int4 weights: rewrite an int8 .tflite whose weights lie in [-7, 7] to INT4 tensors.

A model trained with 4-bit weights (integers in [-7, 7] times a per-channel scale) and
exported as an ordinary int8 file still spends a byte a weight. :func:`to_int4` rewrites
the weight (filter) input of every ``CONV_2D``, ``DEPTHWISE_CONV_2D`` and
``FULLY_CONNECTED`` whose values all lie in [-7, 7] to ``TensorType.INT4``, two values a
byte, and raises each such operator to the version the TFLite converter gives an int4
filter (CONV_2D 7, DEPTHWISE_CONV_2D 7, FULLY_CONNECTED 10). Scales, zero points, bias and
activations are unchanged, so the file computes exactly what the int8 one did.

:func:`requantize_int4` is the lossy counterpart for any int8 file (post-training, no
fine-tuning): each filter is requantized to 4 bits with a new per-channel scale, its int32
bias requantized to match (bias scale = input scale x filter scale), and packed the same
way; filters named in ``keep_int8`` stay int8 (mixed precision).

Packing (:func:`pack_int4`), as both runtimes unpack it: the values in row-major order,
element ``2i`` in the low nibble of byte ``i`` and element ``2i + 1`` in its high nibble,
two's complement; an odd count leaves the last high nibble 0. This is
``tflite::tensor_utils::UnpackDenseInt4IntoInt8`` (kernels/internal/
portable_tensor_utils.cc), which LiteRT's and TFLite Micro's conv, depthwise and fully
connected kernels call (the 2023 Arduino library included), and what the TFLite
converter itself writes for ``FakeQuant(num_bits=4)`` weights.

Needs numpy and the schema only, never TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from effkeras.convert.flatbuffer import (
    TFLITE_IDENTIFIER,
    TensorInfo,
    TFLiteModel,
    read_tflite,
    schema,
)
from effkeras.errors import ConversionError, InvalidModelError

#: the operators whose filter (input 1) may be INT4, and the version that needs
INT4_OP_VERSIONS = {"CONV_2D": 7, "DEPTHWISE_CONV_2D": 7, "FULLY_CONNECTED": 10}
INT4_MIN, INT4_MAX = -7, 7


def pack_int4(values: np.ndarray) -> bytes:
    """Pack integers in [-8, 7] two a byte, low nibble first (row-major order)."""
    v = np.asarray(values).ravel()
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ConversionError(
            f"int4 holds values in [-8, 7]. Received values in [{int(v.min())}, {int(v.max())}]."
        )
    nibbles = (v.astype(np.int64) & 0x0F).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_int4(data: bytes | np.ndarray, count: int) -> np.ndarray:
    """The ``count`` int8 values packed by :func:`pack_int4` (sign-extended nibbles)."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    raw = raw.astype(np.uint8).ravel()
    if raw.size != (count + 1) // 2:
        raise InvalidModelError(
            f"{count} int4 values need {(count + 1) // 2} bytes. Received: {raw.size} bytes."
        )
    low = (raw & 0x0F).astype(np.int8)
    high = (raw >> 4).astype(np.int8)
    out = np.empty(raw.size * 2, np.int8)
    out[0::2], out[1::2] = low, high
    out = np.where(out > 7, out - 16, out).astype(np.int8)
    return out[:count]


def tensor_values(model: TFLiteModel | bytes, tensor: TensorInfo | int) -> np.ndarray | None:
    """The constant data of a tensor as integers of its shape, INT4 tensors unpacked."""
    model = read_tflite(model)
    t = model.tensors[tensor] if isinstance(tensor, int) else tensor
    if t.dtype != "INT4":
        return model.tensor_data(t)
    raw = model._buffer_bytes(t.buffer) if t.buffer else None
    if raw is None or raw.size == 0:
        return None
    return unpack_int4(raw, t.size).reshape(t.shape)


@dataclass(frozen=True)
class Int4Weight:
    """One weight tensor :func:`to_int4` looked at."""

    op: str
    tensor: int
    name: str
    converted: bool
    reason: str = ""


def int4_plan(tflite: bytes | TFLiteModel) -> list[Int4Weight]:
    """Which filter tensors of the int4-capable operators can become INT4, and why not."""
    model = read_tflite(tflite)
    users: dict[int, set[int]] = {}  # buffer -> tensors that use it
    for t in model.tensors:
        if t.buffer:
            users.setdefault(t.buffer, set()).add(t.index)
    filters: dict[int, str] = {}
    for op in model.ops:
        if op.name in INT4_OP_VERSIONS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            filters.setdefault(op.inputs[1], op.name)
    plan = []
    for index, op_name in filters.items():
        t = model.tensors[index]
        reason = ""
        if t.dtype == "INT4":
            reason = "already INT4"
        elif t.dtype != "INT8" or not t.is_constant:
            reason = f"a {'constant ' if t.is_constant else 'computed '}{t.dtype} tensor, not int8 weights"
        elif t.quantization is None or np.any(t.quantization.zero_points != 0):
            reason = "not symmetric (zero point is not 0)"
        else:
            v = model.tensor_data(t)
            if v.min() < INT4_MIN or v.max() > INT4_MAX:
                reason = f"values in [{int(v.min())}, {int(v.max())}], outside [{INT4_MIN}, {INT4_MAX}]"
            elif not users[t.buffer] <= set(filters):
                reason = "its buffer is shared with a tensor that is not a filter"
        plan.append(Int4Weight(op_name, index, t.name, not reason, reason))
    return plan


def to_int4(tflite: bytes | bytearray, *, strict: bool = True) -> bytes:
    """Rewrite int8 filters with values in [-7, 7] to INT4 (two values a byte).

    Args:
        tflite: an int8 .tflite flatbuffer (e.g. from a model trained with 4-bit weights).
        strict: raise if an int8 filter of a CONV_2D, DEPTHWISE_CONV_2D or
            FULLY_CONNECTED has values outside [-7, 7] (a model that was not trained
            for 4 bits); with ``strict=False`` such filters stay int8.

    Returns:
        The rewritten flatbuffer: the same operators, scales, biases and activations.

    Raises:
        InvalidModelError: ``tflite`` is not a valid .tflite flatbuffer.
        ConversionError: no filter can become INT4, or (``strict``) one cannot.
    """
    if not isinstance(tflite, bytes | bytearray):
        raise InvalidModelError(f"to_int4 takes the .tflite bytes. Received: {type(tflite).__name__}")
    parsed = read_tflite(bytes(tflite))
    plan = int4_plan(parsed)
    todo = [p for p in plan if p.converted]
    refused = [p for p in plan if not p.converted and p.reason != "already INT4"]
    if not todo or (strict and refused):
        detail = "; ".join(f"tensor {p.tensor} {p.name[:40]!r} ({p.op}): {p.reason}"
                           for p in (refused or plan)[:4])
        raise ConversionError(
            "to_int4 rewrites int8 filters whose values all lie in [-7, 7] (a model trained "
            "with 4-bit weights). "
            + (f"Could not rewrite: {detail}." if detail else "The model has no CONV_2D, "
               "DEPTHWISE_CONV_2D or FULLY_CONNECTED filter.")
            + (" Pass strict=False to keep those int8." if todo else "")
        )
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if any(b.offset for b in model.buffers or []):
        raise InvalidModelError(
            "to_int4 does not rewrite models whose weights are stored after the flatbuffer "
            "(buffer offsets; models over 2 GB)."
        )
    sg = model.subgraphs[0]
    done_buffers: set[int] = set()
    for p in todo:
        t = sg.tensors[p.tensor]
        if t.buffer not in done_buffers:
            values = parsed.tensor_data(p.tensor)
            model.buffers[t.buffer].data = np.frombuffer(pack_int4(values), np.uint8)
            done_buffers.add(t.buffer)
        t.type = schema.TensorType.INT4
    converted = {p.tensor for p in todo}
    for op in sg.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = _OP_BY_CODE.get(builtin)
        if name in INT4_OP_VERSIONS and op.inputs is not None and len(op.inputs) > 1:
            if int(op.inputs[1]) in converted:
                code.version = max(int(code.version), INT4_OP_VERSIONS[name])
    return _pack(model, len(tflite))


#: how :func:`requantize_int4` picks each channel's 4-bit scale
SCALE_METHODS = ("max", "mse")
#: clipping ratios ``scale="mse"`` tries (scale = ratio x max|w| / 7)
MSE_RATIOS = tuple(float(r) for r in np.round(np.linspace(0.5, 1.0, 51), 4))


def _int4_filter_ops(model: TFLiteModel) -> list[tuple[int, int]]:
    """``(op index, filter tensor)`` of every int4-capable operator, in execution order."""
    return [(op.index, op.inputs[1]) for op in model.ops
            if op.name in INT4_OP_VERSIONS and len(op.inputs) > 1 and op.inputs[1] >= 0]


def resolve_filter_ops(model: TFLiteModel, selection: Iterable[int | str], argument: str) -> set[int]:
    """Operator indices named by ``selection``: operator indices, or filter tensor names.

    Negative indices count from the last int4-capable operator (``-1``: the last
    CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED). Anything that names no such operator
    raises :class:`~effkeras.errors.ConversionError` saying what ``argument`` accepts.
    """
    if isinstance(selection, str | int):
        selection = (selection,)
    items = tuple(selection)
    pairs = _int4_filter_ops(model)
    by_op = {i: t for i, t in pairs}
    by_name: dict[str, list[int]] = {}
    for i, t in pairs:
        by_name.setdefault(model.tensors[t].name, []).append(i)
    chosen: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str | np.integer):
            bad = item
        elif isinstance(item, str):
            if item in by_name:
                chosen.update(by_name[item])
                continue
            bad = item
        else:
            k = int(item)
            if k < 0 and -len(pairs) <= k:
                chosen.add(pairs[k][0])
                continue
            if k in by_op:
                chosen.add(k)
                continue
            bad = item
        raise ConversionError(
            f"{argument} takes operator indices of CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED "
            f"({', '.join(str(i) for i, _ in pairs) or 'none in this model'}; negative: from the "
            f"last of them) or their filter tensor names. Received: {argument}={items!r} "
            f"({bad!r} names no such operator)"
        )
    return chosen


def _channel_scales(w: np.ndarray, axis: int | None, method: str) -> np.ndarray:
    """The 4-bit step of each slice along ``axis`` (or of the whole tensor) of real weights."""
    moved = (w.reshape(1, -1) if axis is None else
             np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).astype(np.float64)
    peak = np.abs(moved).max(axis=1)
    if method == "max":
        return peak / INT4_MAX
    best = peak / INT4_MAX
    best_err = np.full(peak.shape, np.inf)
    for ratio in MSE_RATIOS:
        s = np.where(peak > 0, peak * ratio / INT4_MAX, 1.0)[:, None]
        err = ((np.clip(np.round(moved / s), INT4_MIN, INT4_MAX) * s - moved) ** 2).sum(axis=1)
        better = err < best_err
        best = np.where(better, s[:, 0], best)
        best_err = np.where(better, err, best_err)
    return best


def requantize_int4(
    tflite: bytes | bytearray,
    *,
    keep_int8: Iterable[int | str] = (),
    per_channel: bool = True,
    scale: str = "max",
) -> bytes:
    """Requantize the int8 filters of an int8 .tflite to 4 bits (lossy, post-training).

    Each filter of a CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED gets a new 4-bit
    step ``s4`` per output channel (``per_channel``) or per tensor, from its real values
    ``w = q8 * s8``: ``s4 = max|w| / 7`` (``scale="max"``), or the clipped step
    ``r * max|w| / 7`` with the ``r`` in [0.5, 1] that minimizes the squared error of that
    channel's weights (``scale="mse"``); ``q4 = clip(round(w / s4), -7, 7)``. The int32
    bias is requantized to the new bias scale (input scale x ``s4``):
    ``b4 = round(b8 * s8 / s4)``. The filters are then packed INT4 as :func:`to_int4`
    packs them, and the operators raised to the versions int4 needs. Activations and
    every other tensor are unchanged. A channel whose weights already lie on a 4-bit grid
    that reaches +-7 keeps its values and scale exactly.

    Args:
        tflite: an int8 .tflite flatbuffer (symmetric int8 filters, int32 biases).
        keep_int8: operators to leave int8 (mixed precision): operator indices (negative
            ones count from the last int4-capable operator, so ``(0, -1)`` keeps the
            first conv and the last dense layer) or filter tensor names.
        per_channel: one 4-bit step per output channel (the TFLite quantization axis of
            the filter); ``False``: one step for the whole filter.
        scale: ``"max"`` or ``"mse"`` (see above).

    Returns:
        The rewritten flatbuffer.

    Raises:
        InvalidModelError: ``tflite`` is not a valid .tflite flatbuffer.
        ConversionError: a bad argument, or no filter left to requantize.
    """
    if not isinstance(tflite, bytes | bytearray):
        raise InvalidModelError(
            f"requantize_int4 takes the .tflite bytes. Received: {type(tflite).__name__}")
    if scale not in SCALE_METHODS:
        raise ConversionError(f"scale must be one of {SCALE_METHODS}. Received: scale={scale!r}")
    if not isinstance(per_channel, bool):
        raise ConversionError(f"per_channel must be True or False. Received: per_channel={per_channel!r}")
    parsed = read_tflite(bytes(tflite))
    keep = resolve_filter_ops(parsed, keep_int8, "keep_int8")
    users: dict[int, list[int]] = {}  # buffer -> tensors using it
    for t in parsed.tensors:
        if t.buffer:
            users.setdefault(t.buffer, []).append(t.index)
    consumers: dict[int, int] = {}  # tensor -> how many operator inputs read it
    for op in parsed.ops:
        for i in op.inputs:
            if i >= 0:
                consumers[i] = consumers.get(i, 0) + 1
    todo, refused = [], []
    for op_index, f in _int4_filter_ops(parsed):
        if op_index in keep:
            continue
        op, t = parsed.ops[op_index], parsed.tensors[f]
        bias = parsed.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        inp = parsed.tensors[op.inputs[0]]
        q = t.quantization
        if t.dtype != "INT8" or not t.is_constant:
            reason = f"a {'constant ' if t.is_constant else 'computed '}{t.dtype} filter, not int8 weights"
        elif q is None or np.any(q.zero_points != 0):
            reason = "filter not symmetric (zero point is not 0)"
        elif inp.quantization is None or inp.quantization.per_channel:
            reason = "input not quantized per tensor"
        elif bias is not None and (bias.dtype != "INT32" or not bias.is_constant
                                   or bias.quantization is None):
            reason = f"bias is a {bias.dtype} tensor, not a constant quantized int32 one"
        elif len(users[t.buffer]) > 1 or consumers.get(f, 0) > 1 or (
                bias is not None and (len(users[bias.buffer]) > 1 or consumers.get(bias.index, 0) > 1)):
            reason = "filter or bias shared with another operator"
        else:
            todo.append((op_index, f, bias))
            continue
        refused.append(f"operator {op_index} ({op.name}) {t.name[:40]!r}: {reason}")
    if refused or not todo:
        raise ConversionError(
            "requantize_int4 rewrites symmetric int8 filters with int32 biases. "
            + (f"Cannot requantize: {'; '.join(refused[:4])}. Name those operators in keep_int8."
               if refused else "Every int4-capable operator is kept int8 or absent: nothing to do.")
        )
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if any(b.offset for b in model.buffers or []):
        raise InvalidModelError(
            "requantize_int4 does not rewrite models whose weights are stored after the "
            "flatbuffer (buffer offsets; models over 2 GB).")
    sg = model.subgraphs[0]
    for op_index, f, bias in todo:
        t = parsed.tensors[f]
        q8 = parsed.tensor_data(t).astype(np.float64)
        s8 = t.quantization.scales.astype(np.float64)
        axis = int(t.quantization.axis) if t.quantization.per_channel else None
        shape = [1] * q8.ndim
        if axis is not None:
            shape[axis] = -1
        w = q8 * s8.reshape(shape)
        s4 = _channel_scales(w, axis if per_channel else None, scale)
        s4 = np.where(s4 > 0, s4, s8 if s8.size == s4.size else s8.max()).astype(np.float32)
        s4 = s4.astype(np.float64)
        out_axis = axis if per_channel and axis is not None else None
        s4_b = s4.reshape(shape) if out_axis is not None else s4.reshape([1] * q8.ndim)
        q4 = np.clip(np.round(w / s4_b), INT4_MIN, INT4_MAX).astype(np.int8)
        ft = sg.tensors[f]
        model.buffers[ft.buffer].data = np.frombuffer(pack_int4(q4), np.uint8)
        ft.type = schema.TensorType.INT4
        ft.quantization.scale = [float(v) for v in s4.astype(np.float32)]
        ft.quantization.zeroPoint = [0] * s4.size
        ft.quantization.quantizedDimension = out_axis if out_axis is not None else 0
        if bias is not None:
            s_in = float(parsed.tensors[parsed.ops[op_index].inputs[0]].quantization.scales[0])
            b8 = parsed.tensor_data(bias).astype(np.float64)
            s8_c = np.broadcast_to(s8, b8.shape)
            s4_c = np.broadcast_to(s4.astype(np.float32).astype(np.float64), b8.shape)
            b4 = np.clip(np.round(b8 * s8_c / s4_c), -(2**31), 2**31 - 1).astype("<i4")
            bt = sg.tensors[bias.index]
            model.buffers[bt.buffer].data = np.frombuffer(b4.tobytes(), np.uint8)
            bscale = (s_in * s4.astype(np.float32).astype(np.float64)).astype(np.float32)
            bt.quantization.scale = [float(v) for v in bscale]
            bt.quantization.zeroPoint = [0] * bscale.size
            bt.quantization.quantizedDimension = 0
        code = model.operatorCodes[sg.operators[op_index].opcodeIndex]
        code.version = max(int(code.version), INT4_OP_VERSIONS[parsed.ops[op_index].name])
    return _pack(model, len(tflite))


_OP_BY_CODE = {getattr(schema.BuiltinOperator, n): n for n in INT4_OP_VERSIONS}


def _pack(model: Any, size_hint: int) -> bytes:
    import flatbuffers

    from effkeras.convert.names import _aligned

    model.buffers = [_aligned(b) for b in model.buffers or []]
    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    out = bytes(builder.Output())
    read_tflite(out)
    return out
