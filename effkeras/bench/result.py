"""What one benchmark of one model on one target produced: :class:`BenchResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from effkeras.bench.stats import LatencyStats


@dataclass
class BenchResult:
    """One model measured (or estimated) on one target.

    Attributes:
        model: where the model came from (a path or ``<bytes>``).
        sha256, size_bytes: of the .tflite flatbuffer.
        target: the canonical target string (e.g. ``litert:xnnpack``).
        kind: ``litert``, ``tflm``, ``android``, ``serial`` or ``estimate``.
        threads, runs, warmup: the settings used.
        stats: per-inference latency statistics (microseconds); None for an estimate.
        first_inference_us: the first inference after loading (cold caches, lazy
            packing of weights), when the target reports it.
        init_us: loading the model and allocating tensors, when reported.
        peak_rss_bytes: peak resident memory of the process that ran the model (host:
            the child process's peak resident set size, i.e. Python + numpy + runtime +
            model; Android: benchmark_model's "Peak memory footprint" overall figure).
            On Linux this is VmHWM (getrusage's ru_maxrss would carry the parent's size
            across exec).
        model_rss_bytes: host only: that peak minus the child's RSS just before the
            model was loaded, i.e. what loading, allocating and running the model added.
        arena_bytes: TFLM: the smallest arena that runs the model on this host
            (``measure_arena``); serial: ``arena_used`` that the board reported.
        estimate_us: the estimated latency (estimate target), else None.
        details: target-specific facts (estimate breakdown, device and board info, the
            raw benchmark_model output tail, ...).
        notes: things a reader must know about this figure (noisy, mismatches...).
        samples_us: the raw per-inference latencies, when known.
    """

    model: str
    sha256: str
    size_bytes: int
    target: str
    kind: str
    threads: int = 1
    runs: int = 0
    warmup: int = 0
    stats: LatencyStats | None = None
    first_inference_us: float | None = None
    init_us: float | None = None
    peak_rss_bytes: int | None = None
    model_rss_bytes: int | None = None
    arena_bytes: int | None = None
    estimate_us: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    samples_us: list[float] = field(default_factory=list)

    @property
    def latency_us(self) -> float | None:
        """The figure to quote: median (or mean when only a summary exists) or estimate."""
        if self.stats is not None:
            return self.stats.center_us
        return self.estimate_us

    @property
    def latency_ms(self) -> float | None:
        us = self.latency_us
        return None if us is None else us / 1000.0

    @property
    def noisy(self) -> bool:
        """The measurement drifted (see :mod:`effkeras.bench.stats`)."""
        return bool(self.stats is not None and self.stats.noisy)

    @property
    def name(self) -> str:
        """A short label: the file name without folders."""
        return self.model.replace("\\", "/").rsplit("/", 1)[-1]

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """Every field, JSON-ready; ``samples=False`` leaves out the raw latencies."""
        d: dict[str, Any] = {
            "model": self.model,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "target": self.target,
            "kind": self.kind,
            "threads": self.threads,
            "runs": self.runs,
            "warmup": self.warmup,
            "latency_us": self.latency_us,
            "noisy": self.noisy,
            "stats": self.stats.to_dict() if self.stats is not None else None,
            "first_inference_us": self.first_inference_us,
            "init_us": self.init_us,
            "peak_rss_bytes": self.peak_rss_bytes,
            "model_rss_bytes": self.model_rss_bytes,
            "arena_bytes": self.arena_bytes,
            "estimate_us": self.estimate_us,
            "details": self.details,
            "notes": list(self.notes),
        }
        if samples:
            d["samples_us"] = list(self.samples_us)
        return d
