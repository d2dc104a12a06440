"""How a pruning mask is computed from a weight: unstructured, block, N:M, channel.

A structure is a small object (passed by instance or by name, as larq passes
quantizers): ``structure.mask(weight, sparsity) -> (mask, threshold)`` with numpy arrays.
Masks are computed from ``|weight * old_mask|``, so a pruned weight stays pruned.

Kernel layouts (Keras, channels last): Dense ``(in, out)``, ConvND ``(*k, in, out)``,
DepthwiseConv2D ``(kh, kw, in, multiplier)``. The last axis is the output channel, the
one before it the input channel.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from effkeras.errors import PruningError


def _kth_smallest(values: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Indices of the ``k`` smallest values (stable, so ties go in order), and the
    threshold: the smallest value kept (weights below it are pruned)."""
    order = np.argsort(values, kind="stable")
    if k < values.size:
        threshold = float(values[order[k]])
    else:
        threshold = float(values.max()) if values.size else 0.0
    return order[:k], threshold


@keras.saving.register_keras_serializable(package="effkeras")
class Structure:
    """Base class: which groups of weights are removed together."""

    name = "structure"

    def check(self, shape: tuple[int, ...], where: str) -> None:
        """Raise :class:`PruningError` if a weight of ``shape`` cannot take this structure."""

    def mask(self, weight: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Structure:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.get_config())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="effkeras")
class Unstructured(Structure):
    """Zero the ``sparsity`` fraction of weights with the smallest magnitude."""

    name = "unstructured"

    def mask(self, weight: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
        flat = np.abs(weight).ravel()
        k = int(round(sparsity * flat.size))
        idx, threshold = _kth_smallest(flat, k)
        mask = np.ones(flat.size, dtype=np.float32)
        mask[idx] = 0.0
        return mask.reshape(weight.shape), threshold


@keras.saving.register_keras_serializable(package="effkeras")
class Block(Structure):
    """Zero whole ``block_size`` blocks of the kernel seen as a ``(-1, out)`` matrix.

    Blocks are ranked by the average (``pooling="AVG"``) or largest (``"MAX"``)
    magnitude of their weights; partial blocks at the edges count as blocks.
    """

    name = "block"

    def __init__(self, block_size: tuple[int, int] = (1, 4), pooling: str = "AVG"):
        size = tuple(block_size) if isinstance(block_size, list | tuple) else None
        if size is None or len(size) != 2 or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in size
        ):
            raise PruningError(
                f"block_size must be two positive integers (rows, cols), e.g. (1, 4). "
                f"Received: block_size={block_size!r}"
            )
        if pooling not in ("AVG", "MAX"):
            raise PruningError(
                f"block_pooling_type must be 'AVG' or 'MAX'. Received: {pooling!r}"
            )
        self.block_size = (int(size[0]), int(size[1]))
        self.pooling = pooling

    def check(self, shape: tuple[int, ...], where: str) -> None:
        if len(shape) < 2:
            raise PruningError(f"Block pruning needs a weight of rank >= 2; {where} has {shape}.")

    def mask(self, weight: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
        shape = weight.shape
        mat = np.abs(weight).reshape(-1, shape[-1])
        r, c = self.block_size
        rows, cols = -(-mat.shape[0] // r) * r, -(-mat.shape[1] // c) * c
        padded = np.full((rows, cols), np.nan, dtype=np.float64)
        padded[: mat.shape[0], : mat.shape[1]] = mat
        blocks = padded.reshape(rows // r, r, cols // c, c).transpose(0, 2, 1, 3)
        blocks = blocks.reshape(rows // r, cols // c, r * c)
        pool = np.nanmean if self.pooling == "AVG" else np.nanmax
        scores = pool(blocks, axis=-1).ravel()
        k = int(round(sparsity * scores.size))
        idx, threshold = _kth_smallest(scores, k)
        keep = np.ones(scores.size, dtype=np.float32)
        keep[idx] = 0.0
        keep = keep.reshape(rows // r, cols // c)
        full = np.repeat(np.repeat(keep, r, axis=0), c, axis=1)
        return full[: mat.shape[0], : mat.shape[1]].reshape(shape), threshold

    def get_config(self) -> dict[str, Any]:
        return {"block_size": list(self.block_size), "pooling": self.pooling}


@keras.saving.register_keras_serializable(package="effkeras")
class NByM(Structure):
    """Keep the ``n`` largest of every ``m`` consecutive input-channel weights ("2:4").

    Groups run along the input-channel axis (the second to last), which is contiguous
    in TFLite's OHWI/OI layouts, so that axis must be a multiple of ``m``. The sparsity
    is always ``1 - n/m``; a schedule only decides when the mask is applied.
    """

    name = "n:m"

    def __init__(self, n: int = 2, m: int = 4):
        for key, v in (("n", n), ("m", m)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PruningError(f"N:M sparsity needs integers n >= 1, m > n. Received: {key}={v!r}")
        if n >= m:
            raise PruningError(
                f"N:M sparsity keeps n of every m weights, so n < m, e.g. (2, 4). "
                f"Received: n={n}, m={m}"
            )
        self.n, self.m = int(n), int(m)

    def check(self, shape: tuple[int, ...], where: str) -> None:
        if len(shape) < 2 or shape[-2] % self.m:
            got = shape[-2] if len(shape) >= 2 else None
            raise PruningError(
                f"{self.n}:{self.m} sparsity groups {self.m} input channels, so {where} needs "
                f"a multiple of {self.m} input channels. Received: kernel shape {tuple(shape)} "
                f"({got} input channels). Leave this layer unpruned (prune the others with "
                f"prune_low_magnitude(layer) in a clone_function) or use structure='unstructured'."
            )

    def mask(self, weight: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
        self.check(weight.shape, "this weight")
        moved = np.moveaxis(np.abs(weight), -2, -1)
        groups = moved.reshape(-1, self.m)
        order = np.argsort(groups, axis=1, kind="stable")[:, : self.m - self.n]
        keep = np.ones_like(groups, dtype=np.float32)
        np.put_along_axis(keep, order, 0.0, axis=1)
        threshold = float(groups[keep == 1].min()) if keep.any() else 0.0
        mask = np.moveaxis(keep.reshape(moved.shape), -1, -2)
        return np.ascontiguousarray(mask), threshold

    def get_config(self) -> dict[str, Any]:
        return {"n": self.n, "m": self.m}


@keras.saving.register_keras_serializable(package="effkeras")
class Channel(Structure):
    """Zero whole output channels (filters, units) with the smallest norm.

    ``norm="l2"`` (default) or ``"l1"`` of each filter ranks them (Li et al. 2017).
    At least one channel always survives. :func:`~effkeras.prune.strip_pruning` then
    removes the zero filters and the input channels of the layers that consume them.
    """

    name = "channel"

    def __init__(self, norm: str = "l2"):
        if norm not in ("l1", "l2"):
            raise PruningError(f"norm must be 'l1' or 'l2'. Received: norm={norm!r}")
        self.norm = norm

    def scores(self, weight: np.ndarray) -> np.ndarray:
        """One score per output channel (last axis)."""
        mat = np.abs(weight.reshape(-1, weight.shape[-1]).astype(np.float64))
        return mat.sum(axis=0) if self.norm == "l1" else np.sqrt((mat**2).sum(axis=0))

    @staticmethod
    def keep_from_scores(scores: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
        k = min(int(round(sparsity * scores.size)), scores.size - 1)
        idx, threshold = _kth_smallest(scores, k)
        keep = np.ones(scores.size, dtype=np.float32)
        keep[idx] = 0.0
        return keep, threshold

    def mask(self, weight: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
        keep, threshold = self.keep_from_scores(self.scores(weight), sparsity)
        return np.broadcast_to(keep, weight.shape).astype(np.float32), threshold

    def get_config(self) -> dict[str, Any]:
        return {"norm": self.norm}


_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def get(
    structure: Any = None,
    block_size: Any = (1, 1),
    block_pooling_type: str = "AVG",
    sparsity_m_by_n: Any = None,
) -> Structure:
    """Resolve a structure from ``structure`` or the tfmot-style arguments.

    ``structure`` is a :class:`Structure`, a name (``"unstructured"``, ``"channel"``,
    ``"block"``, ``"2:4"``) or a serialized config; ``block_size`` other than ``(1, 1)``
    means :class:`Block`, ``sparsity_m_by_n=(2, 4)`` means :class:`NByM` (keep 2 of 4).
    """
    block = tuple(block_size) if isinstance(block_size, list | tuple) else block_size
    tfmot_args = []
    if block != (1, 1):
        tfmot_args.append(f"block_size={block_size!r}")
    if sparsity_m_by_n is not None:
        tfmot_args.append(f"sparsity_m_by_n={sparsity_m_by_n!r}")
    if len(tfmot_args) > 1 or (tfmot_args and structure is not None):
        raise PruningError(
            f"Give one pruning structure. Received: structure={structure!r} with "
            f"{', '.join(tfmot_args)}. Use either structure=... or block_size=... or "
            f"sparsity_m_by_n=..."
        )
    if sparsity_m_by_n is not None:
        pair = tuple(sparsity_m_by_n) if isinstance(sparsity_m_by_n, list | tuple) else ()
        if len(pair) != 2:
            raise PruningError(
                f"sparsity_m_by_n must be a pair (m, n): keep m of every n, e.g. (2, 4). "
                f"Received: sparsity_m_by_n={sparsity_m_by_n!r}"
            )
        return NByM(*pair)
    if block != (1, 1):
        return Block(block, block_pooling_type)
    if structure is None:
        return Unstructured()
    if isinstance(structure, Structure):
        return structure
    if isinstance(structure, dict):
        obj = keras.saving.deserialize_keras_object(structure)
        if isinstance(obj, Structure):
            return obj
    if isinstance(structure, str):
        key = structure.lower()
        match = _NM.match(key)
        if match:
            return NByM(int(match.group(1)), int(match.group(2)))
        named = {"unstructured": Unstructured, "channel": Channel, "filter": Channel, "block": Block}
        if key in named:
            return named[key]()
    raise PruningError(
        f"Unknown pruning structure. Received: structure={structure!r}. Use 'unstructured', "
        f"'channel', 'block' (or block_size=(1, 4)), '2:4' (or sparsity_m_by_n=(2, 4)), or an "
        f"instance of effkeras.prune.Unstructured / Block / NByM / Channel."
    )
