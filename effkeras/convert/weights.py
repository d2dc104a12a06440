"""Weight tensors of a .tflite model: which they are, their zeros, TFLite's sparse format.

Shared by :func:`effkeras.profile` and :func:`effkeras.prune.sparsity_report`; needs
numpy and the flatbuffer schema only, never TensorFlow.

- The **kernel** of an op is its filter/weight input (``CONV_2D``, ``DEPTHWISE_CONV_2D``,
  ``FULLY_CONNECTED``, ``CONV_3D``, ``TRANSPOSE_CONV``), followed back through
  ``DEQUANTIZE`` (float16 weights) and ``DENSIFY`` (sparse-format weights) to the
  constant stored in the file.
- A weight is **zero** when its stored value equals the tensor's zero point (0 for float,
  and for int8 weights, which TFLite quantizes symmetrically; a per-channel zero point is
  honoured along its axis).
- **Sparse-format** tensors (``to_tflite(..., sparse=True)``, i.e.
  ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``) store only their non-zero values plus a
  CSR-like index per dimension (``SparsityParameters``); :func:`dense_values` decodes them
  (traversal order, block maps and every index width), as LiteRT's ``DENSIFY`` does.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import numpy as np

from effkeras.convert.flatbuffer import OpInfo, TensorInfo, TFLiteModel, schema
from effkeras.errors import InvalidModelError

__all__ = ["KERNEL_INPUT", "WeightStats", "constant_sources", "dense_values", "gzip_size",
           "is_sparse_encoded", "kernel_tensor", "stored_bytes", "weight_stats"]  # fmt: skip

#: Op name -> position of its kernel (filter) input.
KERNEL_INPUT: dict[str, int] = {
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 1,
    "FULLY_CONNECTED": 1,
    "CONV_3D": 1,
    "TRANSPOSE_CONV": 1,
}
#: Ops that turn a stored constant into the weight an op reads, once, at load time.
WEIGHT_DECODERS = frozenset(("DEQUANTIZE", "DENSIFY"))


def gzip_size(data: bytes) -> int:
    """Bytes of ``data`` after ``gzip -9`` (no timestamp, so the figure is reproducible).

    A pruned model's .tflite is no smaller than the dense one, but its zeros compress:
    this is what an app download or an over-the-air update pays for.
    """
    return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))


def _sparsity_params(model: TFLiteModel, tensor: TensorInfo) -> Any:
    return model._model.subgraphs[0].tensors[tensor.index].sparsity


def is_sparse_encoded(model: TFLiteModel, tensor: TensorInfo) -> bool:
    """True when the tensor is stored in TFLite's sparse format."""
    return _sparsity_params(model, tensor) is not None


def constant_sources(model: TFLiteModel) -> dict[int, int]:
    """Output of a DEQUANTIZE/DENSIFY chain starting at a constant -> that constant."""
    producer = {o: op for op in model.ops if op.name in WEIGHT_DECODERS for o in op.outputs}
    found: dict[int, int] = {}
    for out in producer:
        index, hops = out, 0
        while index in producer and producer[index].inputs and hops < 8:
            index, hops = producer[index].inputs[0], hops + 1
        if index >= 0 and model.tensors[index].is_constant:
            found[out] = index
    return found


def kernel_tensor(
    model: TFLiteModel, op: OpInfo, sources: dict[int, int] | None = None
) -> TensorInfo | None:
    """The constant kernel an op reads (see the module docstring), or None."""
    pos = KERNEL_INPUT.get(op.name)
    if pos is None or len(op.inputs) <= pos or op.inputs[pos] < 0:
        return None
    sources = constant_sources(model) if sources is None else sources
    tensor = model.tensors[sources.get(op.inputs[pos], op.inputs[pos])]
    return tensor if tensor.is_constant else None


def _index_vector(kind: int, vector: Any) -> np.ndarray:
    if kind == schema.SparseIndexVector.NONE or vector is None or vector.values is None:
        return np.zeros(0, np.int64)
    return np.asarray(vector.values, dtype=np.int64).reshape(-1)


def stored_bytes(model: TFLiteModel, tensor: TensorInfo) -> int:
    """Bytes the tensor takes in the file: its buffer plus, if sparse, its index arrays."""
    total = int(tensor.nbytes)
    params = _sparsity_params(model, tensor)
    if params is not None:
        width = {schema.SparseIndexVector.Int32Vector: 4, schema.SparseIndexVector.Uint16Vector: 2,
                 schema.SparseIndexVector.Uint8Vector: 1}  # fmt: skip
        for dim in params.dimMetadata or []:
            for kind, vec in ((dim.arraySegmentsType, dim.arraySegments),
                              (dim.arrayIndicesType, dim.arrayIndices)):  # fmt: skip
                total += width.get(kind, 0) * _index_vector(kind, vec).size
    return total


def dense_values(model: TFLiteModel, tensor: TensorInfo) -> np.ndarray | None:
    """The tensor's constant values in its dense shape (sparse format decoded), or None.

    Raises:
        InvalidModelError: the sparse-format metadata does not match the stored values.
    """
    raw = model.tensor_data(tensor)
    params = _sparsity_params(model, tensor)
    if raw is None or params is None:
        return raw
    values = np.asarray(raw).reshape(-1)
    shape = tuple(int(d) for d in tensor.shape)
    rank = len(shape)
    order = [int(i) for i in (params.traversalOrder if params.traversalOrder is not None else [])]
    block_map = [int(i) for i in (params.blockMap if params.blockMap is not None else [])]
    dims = list(params.dimMetadata or [])
    bad = (
        f"Tensor {tensor.name!r} has inconsistent sparse-format metadata (traversal order "
        f"{order}, block map {block_map}, {len(dims)} dimensions, shape {list(shape)})"
    )
    if len(order) != len(dims) or len(order) != rank + len(block_map):
        raise InvalidModelError(bad + ".")
    # Walk the index tree level by level, in traversal order, keeping every path at once:
    # ``columns`` holds each path's index per level, ``prev`` its position in the level.
    columns: list[np.ndarray] = []
    prev = np.zeros(1, np.int64)
    for dim in dims:
        if dim.format == schema.DimensionType.DENSE:
            n = int(dim.denseSize)
            columns = [np.repeat(c, n) for c in columns]
            here = np.tile(np.arange(n, dtype=np.int64), prev.size)
            prev = np.repeat(prev, n) * n + here
        else:
            seg = _index_vector(dim.arraySegmentsType, dim.arraySegments)
            ind = _index_vector(dim.arrayIndicesType, dim.arrayIndices)
            if prev.size and int(prev.max()) + 1 >= seg.size:
                raise InvalidModelError(bad + ": array segments too short.")
            start, stop = seg[prev], seg[prev + 1]
            counts = stop - start
            if (counts < 0).any() or (stop.max(initial=0) > ind.size):
                raise InvalidModelError(bad + ": array segments out of range.")
            owner = np.repeat(np.arange(prev.size), counts)
            pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            pos = pos + start[owner]
            columns = [c[owner] for c in columns]
            here = ind[pos]
            prev = pos
        columns.append(here)
    if prev.size != values.size:
        raise InvalidModelError(bad + f": {prev.size} indexed values, {values.size} stored.")
    orig = [np.zeros(prev.size, np.int64) for _ in range(rank)]
    for level, dim_index in enumerate(order):
        if dim_index < rank:
            orig[dim_index] = columns[level]
        else:
            block = dim_index - rank
            size = int(dims[rank + block].denseSize)
            orig[block_map[block]] = orig[block_map[block]] * size + columns[level]
    dense = np.zeros(shape, dtype=values.dtype)
    if values.size:
        if any((o >= s).any() for o, s in zip(orig, shape, strict=True)):
            raise InvalidModelError(bad + ": an index lies outside the shape.")
        dense[tuple(orig)] = values
    return dense


@dataclass(frozen=True)
class WeightStats:
    """Zeros of one constant weight tensor."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    elements: int
    zeros: int
    stored_bytes: int
    encoding: str  # "dense" or "sparse"

    @property
    def sparsity(self) -> float:
        return self.zeros / max(self.elements, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "elements": self.elements,
            "zeros": self.zeros,
            "sparsity": self.sparsity,
            "stored_bytes": self.stored_bytes,
            "encoding": self.encoding,
        }


def _zero_count(values: np.ndarray, tensor: TensorInfo) -> int:
    q = tensor.quantization
    if q is None or not np.issubdtype(values.dtype, np.integer) or not q.zero_points.any():
        return int((values == 0).sum())
    zp = q.zero_points
    if zp.size > 1 and values.ndim > q.axis and values.shape[q.axis] == zp.size:
        shape = [1] * values.ndim
        shape[q.axis] = zp.size
        return int((values == zp.reshape(shape)).sum())
    return int((values == zp[0]).sum())


def weight_stats(model: TFLiteModel, tensor: TensorInfo) -> WeightStats:
    """Elements, zeros (see the module docstring), stored bytes and encoding of a tensor."""
    values = dense_values(model, tensor)
    zeros = 0 if values is None else _zero_count(values, tensor)
    return WeightStats(
        index=tensor.index,
        name=tensor.name,
        dtype=tensor.dtype,
        shape=tuple(int(d) for d in tensor.shape),
        elements=int(tensor.size),
        zeros=zeros,
        stored_bytes=stored_bytes(model, tensor),
        encoding="sparse" if is_sparse_encoded(model, tensor) else "dense",
    )
