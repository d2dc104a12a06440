"""Latency statistics of one benchmark: median, p5, p95, mean, std, spread, a noisy flag.

Samples are per-inference latencies in microseconds, in the order they were taken.

**Noisy.** A shared or throttling machine makes the same model run slower for a while. To
tell a reader when a figure may not repeat, the samples are cut into :data:`BLOCKS`
consecutive blocks and the median of each block is taken; ``drift`` is (largest block
median - smallest) / overall median. When ``drift`` exceeds :data:`NOISY_DRIFT` (10%) the
statistics are flagged ``noisy``: a second run could well disagree by that much at the
median. The min-max ``spread`` (max - min) / median is reported next to it.

Summaries that arrive without the samples (Android's ``benchmark_model`` prints count,
mean, std, min and max only) are built with :meth:`LatencyStats.from_summary`; their
median and percentiles are None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Consecutive blocks whose medians are compared to detect drift.
BLOCKS = 5
#: Relative drift of block medians above which a run is called noisy.
NOISY_DRIFT = 0.10


@dataclass(frozen=True)
class LatencyStats:
    """Per-inference latency statistics, in microseconds.

    Attributes:
        n: inferences measured (warm-up excluded).
        median_us, p5_us, p95_us: percentiles (linear interpolation); None when only a
            summary was available.
        mean_us, std_us: mean and population standard deviation.
        min_us, max_us: extremes.
        block_medians_us: medians of :data:`BLOCKS` consecutive blocks (empty if unknown).
        noisy: the block medians differ by more than :data:`NOISY_DRIFT` of the median.
    """

    n: int
    median_us: float | None
    p5_us: float | None
    p95_us: float | None
    mean_us: float
    std_us: float
    min_us: float
    max_us: float
    block_medians_us: tuple[float, ...] = ()
    noisy: bool = False

    @classmethod
    def from_samples(cls, samples_us: Sequence[float], blocks: int = BLOCKS) -> LatencyStats:
        """Statistics of raw per-inference latencies (microseconds, in time order)."""
        x = np.asarray(list(samples_us), dtype=np.float64)
        if x.size == 0:
            raise ValueError("No latency samples to summarize. Received: samples_us=[]")
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValueError(f"Latencies must be finite and >= 0. Received: {x[:10].tolist()}")
        median = float(np.median(x))
        k = max(1, min(int(blocks), x.size // 3))  # at least 3 samples per block
        block_medians = tuple(float(np.median(b)) for b in np.array_split(x, k))
        drift = (max(block_medians) - min(block_medians)) / median if median > 0 else 0.0
        return cls(
            n=int(x.size),
            median_us=median,
            p5_us=float(np.percentile(x, 5)),
            p95_us=float(np.percentile(x, 95)),
            mean_us=float(x.mean()),
            std_us=float(x.std()),
            min_us=float(x.min()),
            max_us=float(x.max()),
            block_medians_us=block_medians,
            noisy=bool(drift > NOISY_DRIFT),
        )

    @classmethod
    def from_summary(
        cls, n: int, mean_us: float, std_us: float, min_us: float, max_us: float
    ) -> LatencyStats:
        """Statistics known only as a summary (no samples: no median, no percentiles).

        Flagged noisy when the std exceeds :data:`NOISY_DRIFT` of the mean (the only
        dispersion such a summary gives).
        """
        return cls(
            n=int(n),
            median_us=None,
            p5_us=None,
            p95_us=None,
            mean_us=float(mean_us),
            std_us=float(std_us),
            min_us=float(min_us),
            max_us=float(max_us),
            noisy=bool(mean_us > 0 and std_us / mean_us > NOISY_DRIFT),
        )

    @property
    def center_us(self) -> float:
        """The figure to quote: the median, or the mean when no median is known."""
        return self.median_us if self.median_us is not None else self.mean_us

    @property
    def spread(self) -> float:
        """(max - min) / center: the min-max spread relative to the quoted figure."""
        c = self.center_us
        return (self.max_us - self.min_us) / c if c > 0 else 0.0

    @property
    def drift(self) -> float | None:
        """(largest - smallest block median) / median, or None without samples."""
        if not self.block_medians_us or not self.median_us:
            return None
        return (max(self.block_medians_us) - min(self.block_medians_us)) / self.median_us

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``spread`` and ``drift``, JSON-ready."""
        d = asdict(self)
        d["block_medians_us"] = list(self.block_medians_us)
        d["spread"] = self.spread
        d["drift"] = self.drift
        return d


def relative_difference(a: float, b: float) -> float:
    """|a - b| / min(a, b): how far apart two latencies are, relative to the faster one."""
    lo = min(a, b)
    if lo <= 0:
        return float("inf") if a != b else 0.0
    return abs(a - b) / lo
