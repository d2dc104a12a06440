"""Sparsity of a converted model, read from the .tflite flatbuffer (no TensorFlow needed).

``sparsity_report(tflite)`` finds each kernel tensor (the filter input of CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, CONV_3D and TRANSPOSE_CONV), counts its zeros (in int8
for quantized models, float otherwise; sparse-format tensors are decoded first), and
gives the model's dense size and gzip size: pruning does not make a dense .tflite
smaller, but it compresses, and that is what an app download or an OTA update pays for.
The counting lives in :mod:`effkeras.convert.weights`, shared with :func:`effkeras.profile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.convert.weights import constant_sources, gzip_size, kernel_tensor, weight_stats


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
                + (f"  sparse-encoded, {r['stored_bytes']} B" if r["encoding"] == "sparse" else "")
            )
        lines.append(
            f"size {self.size_bytes} B, gzip {self.gzip_bytes} B "
            f"({100 * self.gzip_ratio:.0f}%), weight sparsity {100 * self.sparsity:.1f}%"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def sparsity_report(tflite: bytes | str | TFLiteModel) -> SparsityReport:
    """Zeros per weight tensor, dense size and gzip size of a .tflite model.

    Args:
        tflite: .tflite bytes, a path, or a :class:`~effkeras.convert.TFLiteModel`.

    Returns:
        A :class:`SparsityReport`; ``layers`` has one row per kernel (filter) tensor:
        ``{op, tensor, dtype, shape, elements, zeros, sparsity, stored_bytes, encoding}``.
        Tensors stored in TFLite's sparse format (``to_tflite(..., sparse=True)``) are
        decoded to count their zeros; they have ``encoding="sparse"`` and are counted in
        ``sparse_tensors``. See :mod:`effkeras.convert.weights` for what counts as zero.
    """
    model = read_tflite(tflite)
    raw = model.data
    sources = constant_sources(model)
    rows, seen = [], set()
    for op in model.ops:
        tensor = kernel_tensor(model, op, sources)
        if tensor is None or tensor.index in seen:
            continue
        seen.add(tensor.index)
        rows.append({"op": op.name, **weight_stats(model, tensor).to_dict()})
    return SparsityReport(
        size_bytes=len(raw),
        gzip_bytes=gzip_size(raw),
        weight_elements=int(sum(r["elements"] for r in rows)),
        zero_elements=int(sum(r["zeros"] for r in rows)),
        layers=rows,
        sparse_tensors=sum(1 for r in rows if r["encoding"] == "sparse"),
    )
