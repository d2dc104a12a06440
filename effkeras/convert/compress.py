"""TFLM look-up-table compression of clustered weights, and what such a file needs to run.

A clustered model (:mod:`effkeras.cluster`) converted to int8 holds at most ``k`` distinct
values in each output channel of each kernel. :func:`compress_tflite` hands those filters
to the tflite-micro package's compressor (``tflite_micro.compression``): each becomes a
table of its values plus ``ceil(log2(k))``-bit indices, and a ``TFLM_DECODE`` custom
operator before each consumer expands it at run time. Only TensorFlow Lite Micro runs such
a file, and only a TFLM with the DECODE kernel.

The decoded weights live in the tensor arena for the one operator that reads them, so
compression trades flash for RAM: measure the arena (``effkeras.profile``) after it.

:func:`cluster_filters` does the clustering after the fact, on any int8 file: each output
channel's int8 values are replaced by ``k`` shared int8 values (optimal 1-D k-means of that
channel's values), so :func:`compress_tflite` then stores ``log2(k)``-bit indices. Scales
and biases are unchanged; it is lossy, and without fine-tuning.

:func:`tflm_requirements` reads any file and says what it needs of TFLM (DECODE, the
older metadata-based compression, int4 weights) and whether the 2023 Arduino library runs
it; :func:`check_tflm_library` raises a clear error instead of producing a sketch that
cannot run.

Needs numpy and the schema; :func:`compress_tflite` also needs the tflite-micro package,
never TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.errors import ConversionError, UnsupportedOpsError

#: the custom operator tflite_micro.compression inserts
DECODE_OP = "TFLM_DECODE"
#: the metadata entry of TFLM's first (2024) compression scheme, with USE_TFLM_COMPRESSION
LEGACY_COMPRESSION_METADATA = "COMPRESSION_METADATA"
#: operators whose filter (input 1) is compressed
FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
#: the index widths TFLM's LUT decoder takes
MAX_INDEX_BITS = 7
#: what a DECODE file needs, in words (for messages and reports)
DECODE_NEEDS = (
    "TensorFlow Lite Micro with the DECODE kernel (custom operator TFLM_DECODE: upstream "
    "tflite-micro since October 2025, tensorflow/tflite-micro PR #3132; register it with "
    "MicroMutableOpResolver::AddDecode()); the tflite-micro Python package runs it (checked "
    "with 0.dev20261023182759)"
)
ARDUINO_2023 = (
    "The Arduino_TensorFlowLite library 2.4.0-ALPHA (2023-12; TFLM synced 2023-02-27) has "
    "no DECODE kernel and no compression"
)


@dataclass(frozen=True)
class CompressedTensor:
    """One filter :func:`compression_plan` looked at."""

    tensor: int
    name: str
    op: str
    axis: int | None
    unique: int
    index_bits: int
    bytes_before: int
    bytes_after: int
    compress: bool
    reason: str = ""


def _unique_per_slice(values: np.ndarray, axis: int | None) -> int:
    if axis is None:
        return int(np.unique(values).size)
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    return max(int(np.unique(row).size) for row in moved)


def compression_plan(
    tflite: bytes | TFLiteModel, max_index_bits: int = MAX_INDEX_BITS
) -> list[CompressedTensor]:
    """Which filters LUT compression would shrink, with index width and sizes.

    Int8 filters only (what the tests check against TFLM). A filter quantized per channel
    gets one value table per channel (along its quantized dimension), a per-tensor one a
    single table. It is compressed when its values fit
    ``2**max_index_bits`` entries a table and the result (indices, tables and the
    16-byte header) is smaller than the int8 data.
    """
    if not isinstance(max_index_bits, int) or not 1 <= max_index_bits <= MAX_INDEX_BITS:
        raise ConversionError(
            f"max_index_bits must be an integer from 1 to {MAX_INDEX_BITS} (TFLM's LUT "
            f"decoder). Received: max_index_bits={max_index_bits!r}"
        )
    model = read_tflite(tflite)
    seen: set[int] = set()
    plan = []
    for op in model.ops:
        if op.name not in FILTER_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        index = op.inputs[1]
        if index in seen:
            continue
        seen.add(index)
        t = model.tensors[index]
        if not t.is_constant or t.dtype != "INT8":  # the one type checked end to end here
            plan.append(CompressedTensor(index, t.name, op.name, None, 0, 0, t.nbytes, t.nbytes,
                                         False, f"a {'constant' if t.is_constant else 'computed'} "
                                         f"{t.dtype} tensor, not int8 weights"))
            continue
        values = model.tensor_data(t)
        q = t.quantization
        axis = int(q.axis) if q is not None and q.per_channel else None
        if axis is not None and axis not in (0, len(t.shape) - 1):
            axis = None  # TFLM's decoder takes tables along the first or last axis only
        unique = _unique_per_slice(values, axis)
        bits = max(1, math.ceil(math.log2(unique))) if unique > 1 else 1
        tables = 1 if axis is None else t.shape[axis]
        after = (t.size * bits + 7) // 8 + tables * unique * values.itemsize + 16
        if bits > max_index_bits:
            reason = (f"{unique} distinct values a {'channel' if axis is not None else 'tensor'} "
                      f"need {bits}-bit indices (more than {max_index_bits}); cluster it first")
        elif after >= t.nbytes:
            reason = f"{after} bytes compressed, not smaller than {t.nbytes}"
        else:
            reason = ""
        plan.append(CompressedTensor(index, t.name, op.name, axis, unique, bits, t.nbytes,
                                     after, not reason, reason))
    return plan


def _kmeans_1d(values: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Optimal k-means of sorted distinct ``values`` weighted by ``counts``: the segment
    (0..k-1) of each value, by dynamic programming over contiguous segments."""
    n = values.size
    c = np.concatenate([[0.0], np.cumsum(counts)])
    s1 = np.concatenate([[0.0], np.cumsum(counts * values)])
    s2 = np.concatenate([[0.0], np.cumsum(counts * values * values)])
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    with np.errstate(divide="ignore", invalid="ignore"):
        w = c[j] - c[i]
        cost = np.where(j > i, s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / np.where(w > 0, w, 1), np.inf)
    best = cost[0].copy()  # best[j]: first j values in one segment
    choice = []
    for _ in range(1, k):
        total = best[:, None] + cost  # [i, j]: the first i values in m-1 segments, then [i, j)
        arg = np.argmin(total, axis=0)
        choice.append(arg)
        best = total[arg, np.arange(n + 1)]
    labels = np.empty(n, np.int64)
    end = n
    for m in range(k - 1, -1, -1):
        start = int(choice[m - 1][end]) if m > 0 else 0
        labels[start:end] = m
        end = start
    return labels


def _cluster_slice(q: np.ndarray, k: int) -> np.ndarray:
    """``q`` (int8 values) with at most ``k`` distinct values, each the rounded mean of its cluster."""
    values, inverse, counts = np.unique(q, return_inverse=True, return_counts=True)
    if values.size <= k:
        return q
    v, cnt = values.astype(np.float64), counts.astype(np.float64)
    labels = _kmeans_1d(v, cnt, k)
    centers = np.zeros(k)
    np.add.at(centers, labels, v * cnt)
    sizes = np.bincount(labels, weights=cnt, minlength=k)
    centers = np.clip(np.round(centers / np.where(sizes > 0, sizes, 1)), -127, 127)
    return centers[labels][inverse.ravel()].reshape(q.shape).astype(np.int8)


def cluster_filters(tflite: bytes | bytearray, k: int, *, keep: Iterable[int | str] = ()) -> bytes:
    """Share ``k`` int8 values in each output channel of each filter (post-training clustering).

    The int8 filter of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED is clustered
    along its quantized dimension (a per-tensor filter as a whole): the channel's values
    are split into ``k`` groups by exact 1-D k-means (least squared error, which is the
    real weights' error, the channel's scale being one number), and each value replaced by
    its group's mean rounded to an integer. Scales, zero points, biases and every other
    tensor are unchanged, so the file runs anywhere the int8 one does, and
    :func:`compress_tflite` then stores ``ceil(log2(k))``-bit indices.

    Args:
        tflite: an int8 .tflite flatbuffer.
        k: values a channel, 2 to ``2**MAX_INDEX_BITS`` (128).
        keep: operators to leave as they are: operator indices (negative: from the last
            such operator) or filter tensor names.

    Returns:
        The clustered int8 flatbuffer (same size: it is the compression that shrinks it).

    Raises:
        ConversionError: a bad ``k`` or ``keep``, or no int8 filter to cluster.
    """
    from effkeras.convert.flatbuffer import schema
    from effkeras.convert.int4 import _int4_filter_ops, _pack, resolve_filter_ops

    if not isinstance(tflite, bytes | bytearray):
        raise ConversionError(f"cluster_filters takes the .tflite bytes. Received: {type(tflite).__name__}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 2 <= k <= 2**MAX_INDEX_BITS:
        raise ConversionError(
            f"k (values a channel) must be an integer from 2 to {2**MAX_INDEX_BITS} "
            f"(TFLM's LUT decoder takes indices of 1 to {MAX_INDEX_BITS} bits). Received: k={k!r}")
    k = int(k)
    parsed = read_tflite(bytes(tflite))
    skip = resolve_filter_ops(parsed, keep, "keep")
    targets = sorted({f for i, f in _int4_filter_ops(parsed) if i not in skip
                      and parsed.tensors[f].dtype == "INT8" and parsed.tensors[f].is_constant})
    if not targets:
        raise ConversionError("cluster_filters found no int8 filter of CONV_2D, DEPTHWISE_CONV_2D "
                              "or FULLY_CONNECTED to cluster (all kept, absent, or not int8).")
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if any(b.offset for b in model.buffers or []):
        raise ConversionError("cluster_filters does not rewrite models whose weights are stored "
                              "after the flatbuffer (buffer offsets; models over 2 GB).")
    for f in targets:
        t = parsed.tensors[f]
        q = parsed.tensor_data(t)
        axis = int(t.quantization.axis) if t.quantization is not None and t.quantization.per_channel else None
        if axis is None:
            out = _cluster_slice(q, k)
        else:
            moved = np.moveaxis(q, axis, 0)
            out = np.moveaxis(np.stack([_cluster_slice(row, k) for row in moved]), 0, axis)
        model.buffers[t.buffer].data = np.frombuffer(np.ascontiguousarray(out, np.int8).tobytes(), np.uint8)
    return _pack(model, len(tflite))


def compress_tflite(tflite: bytes | bytearray, *, max_index_bits: int = MAX_INDEX_BITS) -> bytes:
    """LUT-compress the filters of a (clustered) .tflite for TensorFlow Lite Micro.

    Args:
        tflite: a .tflite flatbuffer, typically int8 from a model clustered with
            :func:`effkeras.cluster.cluster_weights` and stripped.
        max_index_bits: widest index to use (1-7); filters needing more stay as they are.

    Returns:
        The compressed flatbuffer, with a ``TFLM_DECODE`` operator before each consumer of
        a compressed filter. It runs only in a TFLM with the DECODE kernel
        (:func:`tflm_requirements`); outputs equal the uncompressed file's.

    Raises:
        ConversionError: no filter can be compressed (the model is not clustered), the
            file is compressed already, or the tflite-micro package lacks
            ``tflite_micro.compression``.
    """
    if not isinstance(tflite, bytes | bytearray):
        raise ConversionError(
            f"compress_tflite takes the .tflite bytes. Received: {type(tflite).__name__}"
        )
    parsed = read_tflite(bytes(tflite))
    if tflm_requirements(parsed).decode_ops:
        raise ConversionError("The model is LUT-compressed already (it has TFLM_DECODE operators).")
    plan = compression_plan(parsed, max_index_bits)
    todo = [p for p in plan if p.compress]
    if not todo:
        detail = "; ".join(f"{p.name[:40]!r} ({p.op}): {p.reason}" for p in plan[:3])
        raise ConversionError(
            "No weight of this model can be LUT-compressed: compression needs few distinct "
            "values per kernel (per channel), as after effkeras.cluster.cluster_weights(..., "
            "number_of_clusters=16) and strip_clustering. "
            + (f"Found: {detail}." if detail else "It has no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED.")
        )
    try:
        from tflite_micro import compression
        from tflite_micro.tensorflow.lite.micro.compression import spec
    except ImportError as exc:  # pragma: no cover - depends on the installed package
        raise ConversionError(
            f"LUT compression needs the tflite-micro package with tflite_micro.compression "
            f"(2025 or newer): pip install -U tflite-micro. ({exc})"
        ) from None
    builder = compression.SpecBuilder()
    for p in todo:
        mode = spec.PerTensor() if p.axis is None else spec.PerChannel(axis=p.axis)
        builder.add_tensor(subgraph=0, tensor=p.tensor).with_lut(index_bitwidth=p.index_bits, mode=mode)
    chatter = io.StringIO()  # the compressor prints index-width notes to stderr
    with warnings.catch_warnings(), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore")
        try:
            out = bytes(compression.compress(bytes(tflite), builder.build()))
        except Exception as exc:
            raise ConversionError(
                f"tflite_micro.compression failed: {type(exc).__name__}: {str(exc)[:400]}"
            ) from None
    return _clear_encoded_quantization(out)


def _clear_encoded_quantization(data: bytes) -> bytes:
    """Drop the quantization the compressor leaves on encoded tensors (DECODE input 0).

    They hold packed indices (UINT8 bytes), but the tflite-micro package
    (0.dev20261023182759) keeps the original per-channel scales on them, which no longer
    match their shape; TFLM ignores them, the file check refuses them.
    """
    from effkeras.convert.flatbuffer import schema
    from effkeras.convert.int4 import _pack

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    codes = model.operatorCodes or []
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            code = codes[op.opcodeIndex]
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            if custom == DECODE_OP and op.inputs is not None and len(op.inputs):
                sg.tensors[int(op.inputs[0])].quantization = None
    return _pack(model, len(data))


@dataclass(frozen=True)
class TFLMRequirements:
    """What a .tflite file needs of TensorFlow Lite Micro.

    Attributes:
        decode_ops: number of ``TFLM_DECODE`` operators (LUT-compressed tensors).
        legacy_compression: the file carries TFLM's older ``COMPRESSION_METADATA`` entry
            (a TFLM built with ``USE_TFLM_COMPRESSION``).
        int4_ops: operators with an INT4 input (conv, depthwise, fully connected).
        int4_elsewhere: other operators with an INT4 input (no TFLM kernel takes them).
    """

    decode_ops: int
    legacy_compression: bool
    int4_ops: tuple[str, ...]
    int4_elsewhere: tuple[str, ...]

    @property
    def needs(self) -> str:
        """The TFLM the file needs, in words."""
        if self.decode_ops:
            return DECODE_NEEDS
        if self.legacy_compression:
            return ("TensorFlow Lite Micro built with USE_TFLM_COMPRESSION (the 2024 "
                    "metadata-based compression)")
        if self.int4_ops:
            return "TensorFlow Lite Micro with int4 filters (2023 or newer)"
        return "any TensorFlow Lite Micro"

    @property
    def arduino_2023(self) -> bool:
        """Whether the 2023 Arduino library (in ../shared/tflm) can run the file."""
        return not (self.decode_ops or self.legacy_compression or self.int4_elsewhere)

    def to_dict(self) -> dict[str, Any]:
        return {"decode_ops": self.decode_ops, "legacy_compression": self.legacy_compression,
                "int4_ops": list(self.int4_ops), "int4_elsewhere": list(self.int4_elsewhere),
                "needs": self.needs, "arduino_2023": self.arduino_2023}


def tflm_requirements(tflite: bytes | TFLiteModel | str) -> TFLMRequirements:
    """What ``tflite`` needs of TFLM: DECODE, legacy compression, int4 kernels."""
    model = read_tflite(tflite)
    decode = sum(1 for op in model.ops if op.is_custom and op.name == DECODE_OP)
    int4_ok, int4_other = [], []
    for op in model.ops:
        if any(i >= 0 and model.tensors[i].dtype == "INT4" for i in op.inputs):
            (int4_ok if op.name in FILTER_OPS else int4_other).append(op.name)
    return TFLMRequirements(
        decode_ops=decode,
        legacy_compression=LEGACY_COMPRESSION_METADATA in model.metadata,
        int4_ops=tuple(int4_ok),
        int4_elsewhere=tuple(int4_other),
    )


def check_tflm_library(tflite: bytes | TFLiteModel | str, library: str = "arduino-2023") -> None:
    """Raise :class:`~effkeras.errors.UnsupportedOpsError` if ``library`` cannot run the file.

    Args:
        tflite: the model.
        library: ``"arduino-2023"`` (the Arduino_TensorFlowLite library effkeras's
            sketches build with) or ``"decode"`` (a TFLM with the DECODE kernel, e.g. the
            tflite-micro Python package).
    """
    if library not in ("arduino-2023", "decode"):
        raise ConversionError(
            f"library must be 'arduino-2023' or 'decode'. Received: library={library!r}"
        )
    req = tflm_requirements(tflite)
    if req.int4_elsewhere:
        raise UnsupportedOpsError(
            f"INT4 tensors feed {', '.join(sorted(set(req.int4_elsewhere)))}; TFLM takes int4 "
            f"only as the filter of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED.",
            sorted(set(req.int4_elsewhere)),
        )
    if library == "arduino-2023" and not req.arduino_2023:
        what = (f"{req.decode_ops} TFLM_DECODE operator(s) (LUT-compressed weights)"
                if req.decode_ops else "TFLM's metadata-based weight compression")
        raise UnsupportedOpsError(
            f"This model uses {what}. It needs {req.needs}. {ARDUINO_2023}, so it cannot "
            f"run this file: use the uncompressed file (to_tflite without compress=True) for "
            f"the Arduino library, or build against a newer TFLM.",
            [DECODE_OP] if req.decode_ops else [LEGACY_COMPRESSION_METADATA],
        )
