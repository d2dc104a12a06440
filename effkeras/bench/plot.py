"""A PNG of size, latency and accuracy across models, for the README and the notebooks.

Left panel: latency against size (both log scales). Right panel: accuracy against
latency, marker area proportional to size. Accuracies come from the caller
(``accuracies={"model.tflite": 0.97}``, keyed by file name or full path) or from each
model's JSON sidecar (``model.json`` next to ``model.tflite``, as ``effkeras demo``
writes it: ``scores.accuracy_litert``, else ``accuracy_tflm``, else ``accuracy``).
Models with no accuracy appear in the left panel only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from effkeras.bench.result import BenchResult
from effkeras.errors import BenchConfigError

_SIDECAR_KEYS = ("accuracy_litert", "accuracy_tflm", "accuracy")


def sidecar_accuracy(model_path: str) -> float | None:
    """The accuracy in a model's JSON sidecar, or None (no sidecar or no accuracy in it)."""
    if not model_path.endswith(".tflite"):
        return None
    path = model_path[: -len(".tflite")] + ".json"
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    for scope in (data.get("scores") or {}, data):
        for key in _SIDECAR_KEYS:
            if isinstance(scope.get(key), int | float):
                return float(scope[key])
    return None


def _accuracy_for(result: BenchResult, accuracies: Mapping[str, float] | None) -> float | None:
    if accuracies:
        for key in (result.model, result.name, os.path.splitext(result.name)[0]):
            if key in accuracies:
                return float(accuracies[key])
    return sidecar_accuracy(result.model)


def plot_tradeoff(
    results: Sequence[BenchResult],
    path: str,
    accuracies: Mapping[str, float] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Write the size / latency / accuracy PNG.

    Args:
        results: one :class:`BenchResult` per model (one target, e.g. from ``compare``).
        path: the .png to write.
        accuracies: model file name (or path, or name without .tflite) -> accuracy in
            [0, 1]; missing ones are read from sidecars.
        title: figure title (default: the target).

    Returns:
        ``{"path", "points": [{name, size_bytes, latency_ms, accuracy}]}``.
    """
    if not results:
        raise BenchConfigError("Nothing to plot. Received: results=[]")
    if accuracies:
        for k, v in accuracies.items():
            if not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
                raise BenchConfigError(
                    f"Accuracies are fractions in [0, 1]. Received: {k}={v!r}"
                )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BenchConfigError(
            "Plotting needs matplotlib: pip install matplotlib (or effkeras[plots])."
        ) from None
    points = [
        {"name": r.name, "size_bytes": r.size_bytes, "latency_ms": r.latency_ms,
         "accuracy": _accuracy_for(r, accuracies)}
        for r in results
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for p in points:
        if p["latency_ms"] is None:
            continue
        ax1.scatter(p["size_bytes"] / 1000, p["latency_ms"], s=40)
        ax1.annotate(p["name"], (p["size_bytes"] / 1000, p["latency_ms"]), fontsize=8,
                     xytext=(4, 4), textcoords="offset points")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("model size (KB)")
    ax1.set_ylabel("latency (ms)")
    ax1.set_title("latency vs size")
    ax1.grid(True, which="both", alpha=0.3)
    with_acc = [p for p in points if p["accuracy"] is not None and p["latency_ms"] is not None]
    biggest = max(p["size_bytes"] for p in points) or 1
    for p in with_acc:
        ax2.scatter(p["latency_ms"], 100 * p["accuracy"],
                    s=30 + 400 * p["size_bytes"] / biggest, alpha=0.6)
        ax2.annotate(f"{p['name']}\n{p['size_bytes'] / 1000:.1f} KB",
                     (p["latency_ms"], 100 * p["accuracy"]), fontsize=8, xytext=(4, 4),
                     textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_xlabel("latency (ms)")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_title("accuracy vs latency (area ~ size)")
    ax2.grid(True, which="both", alpha=0.3)
    if not with_acc:
        ax2.text(0.5, 0.5, "no accuracies given\n(pass them or add sidecars)",
                 ha="center", va="center", transform=ax2.transAxes)
    fig.suptitle(title or f"target {results[0].target}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"path": path, "points": points}
