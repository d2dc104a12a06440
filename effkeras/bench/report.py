"""Benchmark results for people (text tables) and programs (JSON, CSV)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Any

from effkeras.bench.result import BenchResult

CSV_FIELDS = (
    "model", "sha256", "size_bytes", "target", "threads", "runs", "warmup", "latency_ms",
    "median_ms", "p5_ms", "p95_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "spread",
    "noisy", "first_inference_ms", "init_ms", "peak_rss_bytes", "model_rss_bytes",
    "arena_bytes", "estimate_ms", "ratio_to_first",
)


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def row(result: BenchResult, first: BenchResult | None = None) -> dict[str, Any]:
    """One flat row of figures (milliseconds) for a result; ``first`` adds the ratio."""
    s = result.stats
    ratio = None
    if first is not None and first.latency_us and result.latency_us is not None:
        ratio = result.latency_us / first.latency_us
    return {
        "model": result.model,
        "sha256": result.sha256,
        "size_bytes": result.size_bytes,
        "target": result.target,
        "threads": result.threads,
        "runs": result.runs,
        "warmup": result.warmup,
        "latency_ms": result.latency_ms,
        "median_ms": _ms(s.median_us) if s else None,
        "p5_ms": _ms(s.p5_us) if s else None,
        "p95_ms": _ms(s.p95_us) if s else None,
        "mean_ms": _ms(s.mean_us) if s else None,
        "std_ms": _ms(s.std_us) if s else None,
        "min_ms": _ms(s.min_us) if s else None,
        "max_ms": _ms(s.max_us) if s else None,
        "spread": s.spread if s else None,
        "noisy": result.noisy,
        "first_inference_ms": _ms(result.first_inference_us),
        "init_ms": _ms(result.init_us),
        "peak_rss_bytes": result.peak_rss_bytes,
        "model_rss_bytes": result.model_rss_bytes,
        "arena_bytes": result.arena_bytes,
        "estimate_ms": _ms(result.estimate_us),
        "ratio_to_first": ratio,
    }


def format_table(results: Sequence[BenchResult], ratios: bool = False) -> str:
    """A text table, one line per result; ``ratios`` adds latency relative to the first.

    Columns: median (or mean*, or estimate~), p5, p95, std in ms; min-max spread;
    first inference ms; peak RSS MiB (host child process / phone); TFLM or board arena.
    A ``!`` after the median marks a noisy result (see effkeras.bench.stats).
    """
    head = (f"{'model':28s} {'target':22s} {'thr':>3s} {'size KB':>8s} {'median ms':>10s} "
            f"{'p5':>8s} {'p95':>8s} {'std':>7s} {'spread':>7s} {'first ms':>9s} "
            f"{'peak MiB':>8s} {'arena B':>8s}")
    if ratios:
        head += f" {'x first':>8s}"
    lines = [head, "-" * len(head)]
    first = results[0] if results else None
    notes: list[str] = []
    for r in results:
        s = r.stats
        if s is None:
            center = _fmt(r.latency_ms) + "~"
        elif s.median_us is None:
            center = _fmt(r.latency_ms) + "*"
        else:
            center = _fmt(r.latency_ms) + ("!" if r.noisy else "")
        line = (
            f"{r.name[:28]:28s} {r.target[:22]:22s} {r.threads:>3d} "
            f"{r.size_bytes / 1000:>8.1f} {center:>10s} "
            f"{_fmt(_ms(s.p5_us) if s else None):>8s} {_fmt(_ms(s.p95_us) if s else None):>8s} "
            f"{_fmt(_ms(s.std_us) if s else None):>7s} "
            f"{_fmt(s.spread if s else None, '.0%'):>7s} "
            f"{_fmt(_ms(r.first_inference_us)):>9s} {_mib(r.peak_rss_bytes):>8s} "
            f"{'-' if r.arena_bytes is None else format(r.arena_bytes, ','):>8s}"
        )
        if ratios:
            ratio = row(r, first)["ratio_to_first"]
            line += f" {_fmt(ratio, '.2f'):>8s}"
        lines.append(line)
        notes += [f"{r.name} ({r.target}): {n}" for n in r.notes]
    marks = []
    if any(r.stats is None for r in results):
        marks.append("~ estimate, not a measurement")
    if any(r.stats is not None and r.stats.median_us is None for r in results):
        marks.append("* mean (no median reported)")
    if any(r.noisy for r in results):
        marks.append("! noisy")
    if marks:
        lines.append("(" + "; ".join(marks) + ")")
    lines += [f"note: {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)


def to_json(results: Sequence[BenchResult], samples: bool = True, indent: int | None = 2) -> str:
    """The results as a JSON list (``samples=False`` drops the raw latencies)."""
    return json.dumps([r.to_dict(samples=samples) for r in results], indent=indent,
                      default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def write_csv(results: Sequence[BenchResult], path: str) -> str:
    """One CSV row per result (columns :data:`CSV_FIELDS`, milliseconds); returns the path."""
    first = results[0] if results else None
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            writer.writerow({k: ("" if v is None else v) for k, v in row(r, first).items()})
    return path
