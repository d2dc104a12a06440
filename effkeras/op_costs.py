"""What each op of a .tflite graph costs: MACs, elementwise ops, params, kernel sparsity.

Counted from the tensor shapes and constant tensors of a :class:`~effkeras.convert.TFLiteModel`,
for one invocation of the graph; the formulas and what counts as a parameter are the
conventions in the :mod:`effkeras.profiling` module docstring. :func:`op_macs` is public
(the latency estimate of :mod:`effkeras.bench` uses it); ``_layers`` gives the per-op rows
of a :class:`~effkeras.profiling.ProfileReport`.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from effkeras.convert.flatbuffer import OpInfo, TensorInfo, TFLiteModel
from effkeras.convert.weights import constant_sources, kernel_tensor, weight_stats

__all__ = ["op_macs"]

#: Ops whose inputs at these positions are weights (the rest are data or shape args).
_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
    "CONV_3D": (1, 2),
}
#: Constant inputs of these dtypes are shape/axis/index arguments, not parameters.
_ARGUMENT_DTYPES = {"INT32", "INT64", "BOOL"}
#: Ops that only move or reinterpret data: no arithmetic at all.
_DATA_MOVEMENT = {
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "CONCATENATION",
    "PACK",
    "UNPACK",
    "SPLIT",
    "SPLIT_V",
    "SLICE",
    "STRIDED_SLICE",
    "TRANSPOSE",
    "PAD",
    "PADV2",
    "GATHER",
    "GATHER_ND",
    "SHAPE",
    "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "BROADCAST_TO",
    "TILE",
    "FILL",
    "ZEROS_LIKE",
    "ONES_LIKE",
    "CAST",
    "DENSIFY",
}
_POOLS = {"MAX_POOL_2D", "AVERAGE_POOL_2D", "L2_POOL_2D"}
_REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "ARG_MAX", "ARG_MIN"}
_MAC_OPS = frozenset(
    ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D")
)


# ---- per-op cost ---------------------------------------------------------------------
def _size(shape: Iterable[int]) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64)) if shape else 1


def op_macs(model: TFLiteModel, op: OpInfo) -> int:
    """Multiply-accumulates of one op, from its tensor shapes (0 for non-MAC ops).

    See the :mod:`effkeras.profiling` module docstring for the formula of each op.
    """
    t = model.tensors

    def shape(pos: int) -> tuple[int, ...] | None:
        if pos >= len(op.inputs) or op.inputs[pos] < 0:
            return None
        return t[op.inputs[pos]].shape

    out = t[op.outputs[0]].shape if op.outputs and op.outputs[0] >= 0 else ()
    name = op.name
    if name == "CONV_2D":
        w = shape(1)  # (out_c, k_h, k_w, in_c / groups)
        return _size(out) * w[1] * w[2] * w[3] if w and len(w) == 4 else 0
    if name == "DEPTHWISE_CONV_2D":
        w = shape(1)  # (1, k_h, k_w, out_c)
        return _size(out) * w[1] * w[2] if w and len(w) == 4 else 0
    if name == "FULLY_CONNECTED":
        w = shape(1)  # (units, in_features)
        return _size(out) * w[-1] if w else 0
    if name == "TRANSPOSE_CONV":
        w, x = shape(1), shape(2)  # (out_c, k_h, k_w, in_c), (batch, in_h, in_w, in_c)
        if not w or not x or len(w) != 4:
            return 0
        return _size(x) * w[0] * w[1] * w[2]
    if name == "BATCH_MATMUL":
        a = shape(0)
        if not a or len(a) < 2:
            return 0
        k = a[-2] if op.options.get("adjX") else a[-1]
        return _size(out) * k
    if name == "CONV_3D":
        w = shape(1)  # (k_d, k_h, k_w, in_c, out_c)
        return _size(out) * w[0] * w[1] * w[2] * w[3] if w and len(w) == 5 else 0
    return 0


def _elementwise_ops(model: TFLiteModel, op: OpInfo) -> int:
    """Non-MAC arithmetic of one op (see :mod:`effkeras.profiling`); 0 for MAC ops."""
    name = op.name
    if name in _MAC_OPS or name in _DATA_MOVEMENT or not op.outputs or op.outputs[0] < 0:
        return 0
    out = _size(model.tensors[op.outputs[0]].shape)
    if name in _POOLS:
        return out * int(op.options.get("filterHeight", 1)) * int(op.options.get("filterWidth", 1))
    if name in _REDUCTIONS and op.inputs and op.inputs[0] >= 0:
        return _size(model.tensors[op.inputs[0]].shape)
    return out


def _weight_tensors(model: TFLiteModel, op: OpInfo, deq: dict[int, int]) -> list[TensorInfo]:
    """The constant weight inputs of one op (see "Params" in :mod:`effkeras.profiling`)."""
    if op.name in ("QUANTIZE", "DEQUANTIZE", "DENSIFY"):
        return []
    positions = _WEIGHT_INPUTS.get(op.name)
    found = []
    for pos, idx in enumerate(op.inputs):
        if idx < 0:
            continue
        tensor = model.tensors[deq.get(idx, idx)]
        if not tensor.is_constant:
            continue
        if positions is not None:
            if pos in positions:
                found.append(tensor)
        elif tensor.dtype not in _ARGUMENT_DTYPES:
            found.append(tensor)
    return found


# ---- per-op rows ---------------------------------------------------------------------
def _kernel_row(model: TFLiteModel, op: OpInfo, sources: dict[int, int]) -> dict[str, Any]:
    kernel = kernel_tensor(model, op, sources)
    if kernel is None:
        keys = ("elements", "zeros", "sparsity", "encoding", "stored_bytes")
        return {f"weight_{k}": None for k in keys}
    stats = weight_stats(model, kernel)
    return {
        "weight_elements": stats.elements,
        "weight_zeros": stats.zeros,
        "weight_sparsity": stats.sparsity,
        "weight_encoding": stats.encoding,
        "weight_stored_bytes": stats.stored_bytes,
        "_kernel": kernel.index,
    }


def _layers(model: TFLiteModel) -> tuple[list[dict[str, Any]], int]:
    """Per-op rows and the model's params (each weight tensor counted once)."""
    deq = constant_sources(model)
    rows = []
    seen: set[int] = set()
    for op in model.ops:
        weights = _weight_tensors(model, op, deq)
        seen.update(w.index for w in weights)
        out = model.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
        act = op.options.get("fusedActivationFunction")
        rows.append(
            {
                "index": op.index,
                "op": op.name,
                "output_shape": [int(d) for d in out.shape] if out is not None else [],
                "output_dtype": out.dtype if out is not None else None,
                "params": int(sum(w.size for w in weights)),
                "macs": int(op_macs(model, op)),
                "elementwise_ops": int(_elementwise_ops(model, op)),
                "fused_activation": act if isinstance(act, str) and act != "NONE" else None,
                **_kernel_row(model, op, deq),
            }
        )
    params = int(sum(model.tensors[i].size for i in seen))
    return rows, params
