"""Sparsity of a converted model, read from the .tflite flatbuffer (no TensorFlow needed).

``sparsity_report(tflite)`` finds each weight tensor (the filter input of CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED), counts its zeros (in int8 for quantized models,
float otherwise), and gives the model's dense size and gzip size: pruning does not make
a dense .tflite smaller, but it compresses, and that is what an app download or an OTA
update pays for.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from effkeras.convert.flatbuffer import TFLiteModel, read_tflite

_WEIGHT_INPUT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "CONV_3D": 1,
                 "TRANSPOSE_CONV": 1}  # fmt: skip


@dataclass
class SparsityReport:
    """What :func:`sparsity_report` measured."""

    size_bytes: int
    gzip_bytes: int
    weight_elements: int
    zero_elements: int
    layers: list[dict[str, Any]] = field(default_factory=list)
    sparse_tensors: int = 0

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over all weight tensors."""
        return self.zero_elements / max(self.weight_elements, 1)

    @property
    def gzip_ratio(self) -> float:
        return self.gzip_bytes / max(self.size_bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "gzip_bytes": self.gzip_bytes,
            "gzip_ratio": self.gzip_ratio,
            "weight_elements": self.weight_elements,
            "zero_elements": self.zero_elements,
            "sparsity": self.sparsity,
            "sparse_tensors": self.sparse_tensors,
            "layers": [dict(r) for r in self.layers],
        }

    def table(self) -> str:
        lines = [f"{'op':<20}{'weight':<40}{'dtype':<9}{'elements':>10}{'zeros':>8}"]
        for r in self.layers:
            lines.append(
                f"{r['op']:<20}{r['tensor'][:38]:<40}{r['dtype']:<9}{r['elements']:>10}"
                f"{100 * r['sparsity']:>7.1f}%"
            )
        lines.append(
            f"size {self.size_bytes} B, gzip {self.gzip_bytes} B "
            f"({100 * self.gzip_ratio:.0f}%), weight sparsity {100 * self.sparsity:.1f}%"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _sparse_tensor_count(model: TFLiteModel) -> int:
    """How many tensors the converter stored in TFLite's sparse format."""
    tensors = model._model.subgraphs[0].tensors or []
    return sum(1 for t in tensors if getattr(t, "sparsity", None) is not None)


def sparsity_report(tflite: bytes | str | TFLiteModel) -> SparsityReport:
    """Zeros per weight tensor, dense size and gzip size of a .tflite model.

    Args:
        tflite: .tflite bytes, a path, or a :class:`~effkeras.convert.TFLiteModel`.

    Returns:
        A :class:`SparsityReport`; ``layers`` has one row per weight tensor:
        ``{op, tensor, dtype, shape, elements, zeros, sparsity}``. Tensors stored in
        TFLite's sparse format (``EXPERIMENTAL_SPARSITY``) are counted in
        ``sparse_tensors`` and reported from their dense shape with unknown zeros (-1).
    """
    model = read_tflite(tflite)
    raw = model.data
    rows, seen = [], set()
    # A weight can reach its op through DEQUANTIZE (float16 / sparse models).
    producer = {o: op for op in model.ops for o in op.outputs}
    for op in model.ops:
        pos = _WEIGHT_INPUT.get(op.name)
        if pos is None or len(op.inputs) <= pos or op.inputs[pos] < 0:
            continue
        index = op.inputs[pos]
        src = producer.get(index)
        if src is not None and src.name in ("DEQUANTIZE", "DENSIFY") and src.inputs:
            index = src.inputs[0]
        if index in seen:
            continue
        seen.add(index)
        tensor = model.tensors[index]
        if not tensor.is_constant:
            continue
        data = model.tensor_data(tensor)
        sparse_format = data is None or data.size != tensor.size
        zeros = -1 if sparse_format else int((data == 0).sum())
        rows.append(
            {
                "op": op.name,
                "tensor": tensor.name,
                "dtype": tensor.dtype,
                "shape": list(tensor.shape),
                "elements": int(tensor.size),
                "zeros": zeros,
                "sparsity": zeros / tensor.size if zeros >= 0 else float("nan"),
            }
        )
    known = [r for r in rows if r["zeros"] >= 0]
    return SparsityReport(
        size_bytes=len(raw),
        gzip_bytes=len(gzip.compress(raw, compresslevel=9, mtime=0)),
        weight_elements=int(sum(r["elements"] for r in known)),
        zero_elements=int(sum(r["zeros"] for r in known)),
        layers=rows,
        sparse_tensors=_sparse_tensor_count(model),
    )

