"""int4 weights: rewrite an int8 .tflite whose weights lie in [-7, 7] to INT4 tensors.

A model trained with 4-bit weights (integers in [-7, 7] times a per-channel scale) and
exported as an ordinary int8 file still spends a byte a weight. :func:`to_int4` rewrites
the weight (filter) input of every ``CONV_2D``, ``DEPTHWISE_CONV_2D`` and
``FULLY_CONNECTED`` whose values all lie in [-7, 7] to ``TensorType.INT4``, two values a
byte, and raises each such operator to the version the TFLite converter gives an int4
filter (CONV_2D 7, DEPTHWISE_CONV_2D 7, FULLY_CONNECTED 10). Scales, zero points, bias and
activations are unchanged, so the file computes exactly what the int8 one did.

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
