"""Reading a search's trials back, and writing trials.json, pareto.json, pareto.png.

Works on the files a search leaves in its keras-tuner project folder (``trial_<id>/``
with keras-tuner's ``trial.json``, effkeras' ``effkeras_trial.json``, ``attempts.jsonl``
and ``model.tflite``), so it runs in the process that supervises parallel workers and
imports neither TensorFlow, Keras nor keras-tuner.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

from effkeras.tune.pareto import non_dominated_sort

__all__ = ["OBJECTIVES", "collect_trials", "pareto_trials", "plot_pareto", "progress_line", "write_json"]

RECORD_FILE = "effkeras_trial.json"
ATTEMPTS_FILE = "attempts.jsonl"
MODEL_FILE = "model.tflite"

#: (trial key, direction) of the Pareto front's objectives
OBJECTIVES = (("val_int8_accuracy", "max"), ("size_bytes", "min"), ("latency_ms", "min"))


def write_json(path: str, obj: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(tmp, path)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _attempts(trial_dir: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(trial_dir, ATTEMPTS_FILE)) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def _sort_key(trial_dir: str) -> tuple[int, str]:
    tid = os.path.basename(trial_dir)[len("trial_"):]
    return (int(tid), tid) if tid.isdigit() else (1 << 30, tid)


def collect_trials(project_dir: str) -> list[dict[str, Any]]:
    """One dict per trial of a search, in trial order.

    Keys: ``trial_id``, ``status`` (keras-tuner's: COMPLETED, FAILED, RUNNING, ...),
    ``feasible`` (True, False, or None when not measured), ``reasons``, ``stage``
    (``precheck``: stopped before training; ``trained``; ``abandoned``; ``started``),
    ``trained``, ``hyperparameters``, ``val_int8_accuracy``, ``val_keras_accuracy``,
    ``size_bytes``, ``arena_bytes`` (with the 32-bit margin), ``latency_ms``, ``macs``,
    ``qat``, ``pruning``, ``worker`` (the tuner id of the last attempt), ``attempts``
    (every run: worker, pid, start time), ``seconds``, ``precheck_matches``, ``model``
    (path of its .tflite or None) and ``message`` (the error of a failed trial).
    """
    out = []
    for d in sorted(glob.glob(os.path.join(project_dir, "trial_*")), key=_sort_key):
        kt = _read_json(os.path.join(d, "trial.json")) or {}
        rec = _read_json(os.path.join(d, RECORD_FILE)) or {}
        attempts = _attempts(d)
        figures = rec.get("figures") or rec.get("precheck") or {}
        status = str(kt.get("status") or "UNKNOWN")
        message = kt.get("message")
        if message:
            lines = [line for line in str(message).strip().splitlines() if line.strip()]
            message = lines[-1] if lines else None
        model = os.path.join(d, MODEL_FILE)
        out.append({
            "trial_id": str(kt.get("trial_id") or rec.get("trial_id") or os.path.basename(d)[6:]),
            "status": status,
            "feasible": rec.get("feasible"),
            "reasons": list(rec.get("reasons") or []),
            "stage": rec.get("stage", "not started"),
            "trained": bool(rec.get("trained")),
            "hyperparameters": rec.get("hyperparameters")
            or (kt.get("hyperparameters") or {}).get("values", {}),
            "val_int8_accuracy": rec.get("val_int8_accuracy"),
            "val_keras_accuracy": rec.get("val_keras_accuracy"),
            "size_bytes": figures.get("size_bytes"),
            "arena_bytes": figures.get("arena_with_margin"),
            "arena_host_bytes": figures.get("arena_bytes"),
            "latency_ms": figures.get("latency_ms"),
            "macs": figures.get("macs"),
            "qat": rec.get("qat"),
            "pruning": rec.get("pruning"),
            "worker": (attempts[-1]["worker"] if attempts else rec.get("worker")),
            "attempts": attempts,
            "seconds": rec.get("seconds"),
            "precheck_seconds": rec.get("precheck_seconds"),
            "precheck_matches": rec.get("precheck_matches"),
            "model": model if os.path.exists(model) else None,
            "message": message,
        })
    return out


def pareto_trials(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feasible, trained, non-dominated trials (:data:`OBJECTIVES`), most accurate first."""
    ok = [t for t in trials if t["status"] == "COMPLETED" and t["feasible"] and t["trained"]
          and all(t.get(k) is not None for k, _ in OBJECTIVES)]
    ranks = non_dominated_sort([[t[k] for k, _ in OBJECTIVES] for t in ok], [d for _, d in OBJECTIVES])
    front = [t for t, r in zip(ok, ranks, strict=True) if r == 0]
    return sorted(front, key=lambda t: (-t["val_int8_accuracy"], t["size_bytes"], t["latency_ms"]))


def plot_pareto(trials: list[dict[str, Any]], front: list[dict[str, Any]], path: str, title: str) -> None:
    """Accuracy against .tflite size: feasible trials, the front (a line), infeasible ones (x).

    Infeasible trials were not trained (or failed the final check): they are drawn at their
    size on the bottom edge, with an ``x``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = [t for t in trials if t["feasible"] and t["val_int8_accuracy"] is not None]
    bad = [t for t in trials if t["feasible"] is False and t["size_bytes"] is not None]
    if ok:
        ax.scatter([t["size_bytes"] / 1024 for t in ok], [t["val_int8_accuracy"] for t in ok],
                   c="tab:blue", label="feasible", zorder=2)
    if front:  # a front in three objectives is no line in two: markers, labelled
        ax.scatter([t["size_bytes"] / 1024 for t in front], [t["val_int8_accuracy"] for t in front],
                   s=80, facecolors="none", edgecolors="tab:orange", linewidths=2,
                   label="Pareto front (accuracy, size, latency)", zorder=3)
        for t in front:
            ax.annotate(f"{t['trial_id']} ({t['latency_ms']:.2g} ms)",
                        (t["size_bytes"] / 1024, t["val_int8_accuracy"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    if bad:
        ax.scatter([t["size_bytes"] / 1024 for t in bad], [0.0] * len(bad), marker="x", c="tab:red",
                   label="infeasible (not trained)", zorder=2)
    ax.set_xlabel(".tflite size (KiB)")
    ax.set_ylabel("int8 validation accuracy (LiteRT)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def progress_line(trial_id: str, record: dict[str, Any], status: str = "") -> str:
    """One line about a finished trial, e.g. ``trial 3 [worker1] | int8 acc 0.912 | 7,412 B | ...``."""
    who = f"trial {trial_id} [{record.get('worker', '?')}]"
    failed = status.replace("TrialStatus.", "") not in ("", "COMPLETED")
    if record.get("stage") == "abandoned" or (failed and not record.get("reasons")):
        why = "; ".join(record.get("reasons") or []) or "error (see trials.json)"
        return f"{who} | FAILED: {why}"
    fig = record.get("figures") or record.get("precheck") or {}
    parts = [who]
    if record.get("val_int8_accuracy") is not None:
        parts.append(f"int8 acc {record['val_int8_accuracy']:.3f}")
    if fig:
        arena = fig.get("arena_with_margin")
        parts += [f"{fig['size_bytes']:,} B", f"arena {arena:,} B" if arena else "arena ?",
                  f"{fig['latency_ms']:.2f} ms"]
    if record.get("feasible"):
        parts.append("fits")
    elif record.get("feasible") is False:
        when = "precheck, not trained" if record.get("stage") == "precheck" else "after training"
        parts.append(f"INFEASIBLE ({when}): {'; '.join(record.get('reasons', []))}")
    parts.append(f"{record.get('seconds') or 0:.1f} s")
    return " | ".join(parts)
