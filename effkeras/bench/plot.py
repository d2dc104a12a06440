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
    groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write the size / latency / accuracy PNG.

    Every model is a numbered point in both panels; the key under the panels gives each
    number's name, size and accuracy (names never overlap, however many models).

    Args:
        results: one :class:`BenchResult` per model (one target, e.g. from ``compare``).
        path: the .png to write.
        accuracies: model file name (or path, or name without .tflite) -> accuracy in
            [0, 1]; missing ones are read from sidecars.
        title: figure title (default: the target).
        groups: model file name (or path, or name without .tflite) -> group label; points
            of one group share a colour and the legend names the groups.

    Returns:
        ``{"path", "points": [{index, name, size_bytes, latency_ms, accuracy, group}]}``.
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
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    except ImportError:
        raise BenchConfigError(
            "Plotting needs matplotlib: pip install matplotlib (or effkeras[plots])."
        ) from None
    points = [
        {"index": i + 1, "name": r.name, "size_bytes": r.size_bytes, "latency_ms": r.latency_ms,
         "accuracy": _accuracy_for(r, accuracies), "group": _lookup(r, groups)}
        for i, r in enumerate(results)
    ]
    group_names = list(dict.fromkeys(p["group"] for p in points))
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    colour = {g: cycle[i % len(cycle)] for i, g in enumerate(group_names)}
    n_key = len(points)
    fig = plt.figure(figsize=(11, 4.6 + 0.2 * ((n_key + 1) // 2)))
    grid = fig.add_gridspec(2, 2, height_ratios=[4.2, 0.2 * ((n_key + 1) // 2) + 0.4])
    ax1, ax2, key = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    seen: set = set()
    for p in points:
        if p["latency_ms"] is None:
            continue
        label = p["group"] if p["group"] is not None and p["group"] not in seen else None
        seen.add(p["group"])
        ax1.scatter(p["size_bytes"] / 1000, p["latency_ms"], s=40, color=colour[p["group"]], label=label)
        ax1.annotate(str(p["index"]), (p["size_bytes"] / 1000, p["latency_ms"]), fontsize=8,
                     xytext=(4, 3), textcoords="offset points")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("model size (KB)")
    ax1.set_ylabel("latency (ms)")
    ax1.set_title("latency vs size")
    ax1.grid(True, which="both", alpha=0.3)
    if any(g is not None for g in group_names):
        ax1.legend(fontsize=8, loc="upper left")
    with_acc = [p for p in points if p["accuracy"] is not None and p["latency_ms"] is not None]
    biggest = max(p["size_bytes"] for p in points) or 1
    for p in with_acc:
        ax2.scatter(p["latency_ms"], 100 * p["accuracy"], s=30 + 400 * p["size_bytes"] / biggest,
                    alpha=0.6, color=colour[p["group"]])
        ax2.annotate(str(p["index"]), (p["latency_ms"], 100 * p["accuracy"]), fontsize=8,
                     xytext=(4, 3), textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_xlabel("latency (ms)")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_title("accuracy vs latency (area ~ size)")
    ax2.grid(True, which="both", alpha=0.3)
    for axis in (ax1.xaxis, ax1.yaxis, ax2.xaxis):  # the log-scaled axes: plain 1-2-5 ticks
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    if not with_acc:
        ax2.text(0.5, 0.5, "no accuracies given\n(pass them or add sidecars)",
                 ha="center", va="center", transform=ax2.transAxes)
    key.axis("off")
    half = (n_key + 1) // 2
    for i, p in enumerate(points):
        acc = "-" if p["accuracy"] is None else f"{100 * p['accuracy']:.2f}%"
        lat = "-" if p["latency_ms"] is None else f"{p['latency_ms']:.3f} ms"
        key.text(0.0 if i < half else 0.5, 1.0 - (i % half) / max(half, 1),
                 f"{p['index']:>2}  {p['name']}  ({p['size_bytes'] / 1000:.1f} KB, {lat}, {acc})",
                 fontsize=8, va="top", transform=key.transAxes, color=colour[p["group"]])
    fig.suptitle(title or f"target {results[0].target}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"path": path, "points": points}


def _lookup(result: BenchResult, table: Mapping[str, str] | None) -> str | None:
    if table:
        for key in (result.model, result.name, os.path.splitext(result.name)[0]):
            if key in table:
                return table[key]
    return None
