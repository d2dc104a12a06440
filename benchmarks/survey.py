"""Survey suite: the survey's CIFAR-10 width-multiplier CNN, its recipe against effkeras's.

Two halves:

1. Training (``benchmarks/survey_train.py``, any Keras backend; the full run used JAX on a GPU):
   the survey recipe (ReLU then BN, augmentation, Adam 1e-3, L2 2e-4) at widths 0.05,
   0.25, 0.5, 1.0 and the width-1.4 teacher; effkeras's float students (Conv->BN->ReLU,
   same augmentation, logits distillation from the teacher with keras.distillation), then
   channel pruning (effkeras.prune, stripped: the channels are removed).
2. This script (host, TensorFlow backend): rebuilds those models from their weights,
   converts the survey models with the survey's PTQ (100 calibration images), runs
   effkeras's int8 stage on the pruned students (effkeras.quantize with batch-norm
   folding: calibrated PTQ, then a short QAT fine-tune on the host), evaluates every
   .tflite with LiteRT on the JPEG CIFAR-10 test set, measures the TFLM arena and the
   nano33ble estimate, writes a BENCHMARKS.md section and tflite_models/ entries.

    .venv/bin/python benchmarks/survey.py --weights build/survey/weights --data ../shared/data \\
        --results tflite_models/survey/results.json --models tflite_models
    .venv/bin/python benchmarks/survey.py --smoke           # CI: tiny, random data, < 1 min

``main(argv)`` is the entry point the bench runner calls.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import results  # noqa: E402
import survey_models as sm  # noqa: E402
from _usage import BadInput, run_main  # noqa: E402


def tag(width: float) -> str:
    return str(width).replace(".", "")


# ---------------------------------------------------------------------------- host stages


def evaluate(tflite: bytes, x_u8: np.ndarray, y: np.ndarray) -> float:
    from effkeras.runtime import LiteRTRunner

    out = LiteRTRunner(tflite, num_threads=2).predict(sm.scale(x_u8))
    return float(np.mean(np.argmax(out, -1) == y))


def micro_facts(tflite: bytes) -> dict:
    """TFLM arena (bytes, this 64-bit host) and the nano33ble latency estimate (ms)."""
    import effkeras.bench
    from effkeras.runtime import measure_arena

    facts = {"arena_bytes": None, "nano33ble_ms": None}
    try:
        facts["arena_bytes"] = int(measure_arena(tflite))
    except Exception as exc:  # report, never hide
        facts["arena_error"] = f"{type(exc).__name__}: {exc}"[:200]
    try:
        r = effkeras.bench.measure(tflite, target="estimate:nano33ble")
        facts["nano33ble_ms"] = round(r.estimate_us / 1000.0, 1)
    except Exception as exc:
        facts["estimate_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return facts


def load_host_data(weights_dir: str, data_dir: str, limit_test: int | None = None):
    """CIFAR-10 as uint8 arrays, decoded once into ``weights_dir/cifar10_u8_host.npz``."""
    cache = os.path.join(weights_dir, "cifar10_u8_host.npz")
    if os.path.isfile(cache):
        d = np.load(cache)
        x_tr, y_tr, x_te, y_te = d["xtr"], d["ytr"], d["xte"], d["yte"]
    else:
        x_tr, y_tr, x_te, y_te = sm.load_cifar10_uint8(data_dir)
        np.savez(cache, xtr=x_tr, ytr=y_tr, xte=x_te, yte=y_te)
    if limit_test:
        x_te, y_te = x_te[:limit_test], y_te[:limit_test]
    return x_tr, y_tr, x_te, y_te


def load_meta(weights_dir: str) -> dict:
    """The training scripts' per-job JSON files, by file stem."""
    meta = {}
    for fn in os.listdir(weights_dir):
        if fn.endswith(".json") and not fn.endswith(".model.json"):
            with open(os.path.join(weights_dir, fn)) as f:
                meta[fn[:-5]] = json.load(f)
    return meta


def folded_quant_model(model, x_tr, per_channel: bool = True):
    """``model`` + softmax through effkeras.quantize with BN folded, calibrated on 500 images
    (``per_channel=False``: one weight scale per kernel)."""
    from effkeras.quantize import quantize_model

    return quantize_model(sm.with_softmax(model), fold_batchnorm=True, calibration_data=sm.scale(x_tr[:500]),
                          per_channel=per_channel)


def effkeras_ptq(model, x_tr) -> bytes:
    """effkeras.quantize PTQ with BN folding (calibrated on 500 images), int8 I/O."""
    from effkeras.convert import to_tflite

    return to_tflite(folded_quant_model(model, x_tr), quantize="int8", io_dtype="int8", strip_names=True)


def effkeras_qat(model, x_tr, y_tr, qat_samples: int, qat_epochs: int, seed: int = 0,
                 per_channel: bool = True) -> bytes:
    """effkeras.quantize QAT with BN folding (calibrated on 500 images), ``qat_epochs`` on
    ``qat_samples`` augmented training images chosen by ``seed``; int8 I/O; ``per_channel=False``:
    one weight scale per kernel."""
    import keras

    import effkeras.callbacks
    from effkeras.convert import to_tflite

    keras.utils.set_random_seed(seed)  # each repeat (seed) shuffles differently, reproducibly
    qat = folded_quant_model(model, x_tr, per_channel)
    qat.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x_tr))[:qat_samples]
    freeze = max(1, qat_epochs - 1)
    for e in range(qat_epochs):
        qat.fit(
            sm.scale(sm.augment(x_tr[idx], rng)), y_tr[idx], batch_size=128,
            epochs=e + 1, initial_epoch=e, verbose=0,
            callbacks=[effkeras.callbacks.FreezeBatchNorm(epoch=freeze),
                       effkeras.callbacks.FreezeQuantRanges(epoch=freeze)],
        )
    return to_tflite(qat, quantize="int8", io_dtype="int8", strip_names=True)


SCOPES = ("all", "head")
SELECTION_SAMPLES = 5000


def selection_set(x_tr, y_tr, seed: int = 0):
    """The images candidates are chosen on: 5,000 training images (unaugmented) outside the
    host fine-tuning subsets (QAT and host pruning take the first images of the same
    seed-``seed`` permutation), so every candidate saw them equally, in its main training
    only. The test set only reports; it never chooses."""
    order = np.random.default_rng(seed).permutation(len(x_tr))
    idx = order[-SELECTION_SAMPLES:]
    return x_tr[idx], y_tr[idx]


def student_text(st: dict | None) -> str:
    """How a float student was trained (its ``optimize`` job's ``student`` record)."""
    st = st or {}
    tw = st.get("teacher_width")
    if st.get("distill_loss") == "kl":
        text = (f"distilled with effkeras.distill (T=4 KL, student_loss_weight=0.5) from the width-{tw} "
                f"distilled student for {st.get('epochs')} epochs (cosine lr)")
        if st.get("init"):
            text += ", warm-started from the Keras-default-distilled student of the same width"
        return text
    return (f"distilled from the width-{tw or 1.4} teacher for {st.get('epochs') or 40} epochs with "
            "keras.distillation.LogitsDistillation's default loss (not a KL divergence: see effkeras.distill)")


def describe(c) -> str:
    scope = c["scope"]
    if scope == "all":
        what = f"all layers {c['sparsity']:.0%}"
    elif scope == "head":
        what = f"head {c['sparsity']:.0%}"
    else:
        what = "per layer " + "/".join(f"{float(v):.0%}" for v in scope[4:].split("-"))
    kd = {"kl": "KL-distilled", "keras-default": "Keras-default-distilled"}.get(c.get("student_kd"), "")
    after = f", then KL-distilled {c['kd_epochs']} epochs" if c.get("kd_epochs") else ""
    return f"from width {c['source_width']}{' ' + kd if kd else ''} student, {what}{after}"


def discover_candidates(wdir, meta, x_tr, y_tr, sel) -> list[dict]:
    """Every pruned student of survey_train.py (``optimize`` jobs on the distilled
    students), with its int8 size and its selection-set accuracy (each measured once;
    :func:`run_width` keeps those of its width or wider)."""
    import survey_train as st

    out = []
    for _key, job in sorted(meta.items()):
        parts = str(job.get("job", "")).split(":")
        if parts[0] != "optimize" or job.get("source", "distill") != "distill":
            continue
        src = float(job.get("width", parts[1]))
        scope = job.get("scope", "all")
        kd = int(job.get("kd_epochs") or 0)
        stem = st.optimize_tag(src, float(job["sparsity"]), "distill", scope, kd) + "_float"
        if not os.path.isfile(os.path.join(wdir, f"{stem}.weights.h5")):
            continue
        small = sm.load_saved(wdir, stem)
        ptq_bytes = effkeras_ptq(small, x_tr)
        logits = small.predict(sm.scale(sel[0]), batch_size=500, verbose=0)
        out.append({
            "stem": stem, "source_width": src, "sparsity": float(job["sparsity"]), "scope": scope,
            "params": int(small.count_params()), "int8_bytes": len(ptq_bytes),
            "prune_epochs": job.get("prune_epochs"),
            "student": job.get("student", {}), "kd_epochs": kd,
            "student_kd": job.get("student", {}).get("distill_loss", "keras-default"),
            "pruned_float_acc": job.get("stripped_float_accuracy"),
            "selection_acc": float(np.mean(np.argmax(logits, -1) == sel[1])),
        })
    return out


def pick_candidate(candidates, budget):
    """The candidate with the best selection-set accuracy within ``budget`` bytes, else
    the smallest one (None without candidates)."""
    fits = [c for c in candidates if c["int8_bytes"] <= budget]
    if fits:
        return max(fits, key=lambda c: c["selection_acc"])
    return min(candidates, key=lambda c: c["int8_bytes"]) if candidates else None


def finish_candidate(cand, wdir, x_tr, y_tr, x_te, y_te, sel, args) -> dict:
    """PTQ and QAT int8 of one candidate; the int8 model is chosen on the selection set."""
    from effkeras.convert import to_tflite

    if cand is None:
        return {}
    small = sm.load_saved(wdir, cand["stem"])
    p_float = to_tflite(sm.with_softmax(small))
    ptq_bytes = effkeras_ptq(small, x_tr)
    eff = {**cand, "label": describe(cand), "pruned_float_bytes": len(p_float),
           "pruned_float_acc": evaluate(p_float, x_te, y_te),
           "ptq_bytes": len(ptq_bytes), "ptq_acc": evaluate(ptq_bytes, x_te, y_te)}
    best, how, acc = ptq_bytes, "effkeras PTQ (BN folded)", eff["ptq_acc"]
    q = repeated_qat(small, x_tr, y_tr, x_te, y_te, args)
    qat_bytes = q.pop("qat_tflite", None)
    eff.update(q)
    if qat_bytes is not None and evaluate(qat_bytes, *sel) >= evaluate(ptq_bytes, *sel):
        best, how, acc = qat_bytes, "effkeras QAT (BN folded)", eff["qat_acc"]
    eff.update(int8_bytes=len(best), int8_acc=acc, int8_method=how, **micro_facts(best))
    eff["_tflite"] = best
    return eff


def median_run(runs: list[dict]) -> dict:
    """The median of repeated int8 runs (dicts with ``"acc"``, the test accuracy): the lower
    median for an even count, with every run's accuracy, sorted, under ``"accs"``."""
    ordered = sorted(runs, key=lambda r: r["acc"])
    return {**ordered[(len(ordered) - 1) // 2], "accs": [r["acc"] for r in ordered]}


def repeated_qat(model, x_tr, y_tr, x_te, y_te, args, per_channel: bool = True) -> dict:
    """``args.qat_repeats`` QAT runs (seeds 0..N-1: sample subset, augmentation, shuffling) of
    effkeras (:func:`effkeras_qat`) and of tfmot on the same images per seed, both with one
    weight scale per kernel when ``per_channel=False``. Returns ``qat_tflite/qat_bytes/qat_acc/
    qat_accs`` (the median run) and ``tfmot_bytes/tfmot_acc/tfmot_accs`` or ``qat_error``/``tfmot_error``."""
    out: dict = {}
    if args.qat_epochs <= 0:
        return out
    runs, tf_runs = [], []
    for seed in range(args.qat_repeats):
        if "qat_error" not in out:
            try:
                q = effkeras_qat(model, x_tr, y_tr, args.qat_samples, args.qat_epochs, seed, per_channel)
                runs.append({"tflite": q, "acc": evaluate(q, x_te, y_te)})
            except Exception as exc:  # report, never hide
                out["qat_error"] = f"{type(exc).__name__}: {exc}"[:300]
        if "tfmot_error" not in out:
            tf = tfmot_qat(model, x_tr, y_tr, args.qat_samples, args.qat_epochs, seed=seed, per_channel=per_channel)
            if "tfmot_tflite" in tf:
                tf_runs.append({"tflite": tf["tfmot_tflite"], "acc": evaluate(tf["tfmot_tflite"], x_te, y_te)})
            elif "tfmot_error" in tf:
                out["tfmot_error"] = tf["tfmot_error"]
    if runs and "qat_error" not in out:
        m = median_run(runs)
        out.update(qat_tflite=m["tflite"], qat_bytes=len(m["tflite"]), qat_acc=m["acc"], qat_accs=m["accs"])
    if tf_runs and "tfmot_error" not in out:
        m = median_run(tf_runs)
        out.update(tfmot_bytes=len(m["tflite"]), tfmot_acc=m["acc"], tfmot_accs=m["accs"])
    return out


def spread(d: dict, key: str) -> str:
    """``d[key]`` as a percentage, with the range of its repeated runs (``d[key + "s"]``) when
    there was more than one: ``81.51% (81.30-81.62, 3 runs)``."""
    if key not in d:
        return "-"
    accs = d.get(key + "s") or []
    if len(accs) < 2:
        return _pct(d[key])
    return f"{_pct(d[key])} ({100 * accs[0]:.2f}-{100 * accs[-1]:.2f}, {len(accs)} runs)"


def met(survey, eff, size_key="int8_bytes") -> bool:
    """The target: the survey recipe's int8 accuracy at no more than half its int8 size."""
    return bool("int8_acc" in eff and eff["int8_acc"] >= survey["int8_acc"]
                and eff["int8_bytes"] * 2 <= survey[size_key])


def tfmot_qat(model, x_tr, y_tr, qat_samples: int, qat_epochs: int, seed: int = 0, per_channel: bool = True) -> dict:
    """tfmot QAT of the same float (logits) model, on the same images as
    :func:`effkeras_qat`, in a tf_keras child process (``benchmarks/_tfmot_functional.py``, which
    rebuilds the graph from ``model.get_config()`` and checks its logits; ``per_channel=False``:
    the default 8-bit scheme with ``disable_per_axis=True``). Returns
    ``{"tfmot_tflite": bytes}`` or ``{"tfmot_error": text}``."""
    import subprocess

    if qat_epochs <= 0:
        return {}
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x_tr))[:qat_samples]
    arrays = {f"x{e}": sm.scale(sm.augment(x_tr[idx], rng)) for e in range(qat_epochs)}
    weights: dict = {}
    for layer in model.layers:
        ws = layer.get_weights()
        weights[f"n::{layer.name}"] = len(ws)
        weights.update({f"w::{layer.name}::{i}": w for i, w in enumerate(ws)})
    probe = sm.scale(x_tr[:16])
    with tempfile.TemporaryDirectory(prefix="tfmot_qat_") as tmp:
        npz = os.path.join(tmp, "in.npz")
        np.savez(npz, config=json.dumps(model.get_config()), y=np.asarray(y_tr[idx]), probe_x=probe,
                 probe_logits=model.predict(probe, verbose=0), **weights, **arrays)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [sys.executable, os.path.join(HERE, "_tfmot_functional.py"), npz, tmp, "--epochs", str(qat_epochs),
               "--seed", str(seed)] + ([] if per_channel else ["--per-tensor"])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        out = os.path.join(tmp, "tfmot_qat_int8.tflite")
        if proc.returncode != 0 or not os.path.isfile(out):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"tfmot_error": f"rc={proc.returncode}: {tail[0][:200]}"}
        with open(out, "rb") as f:
            data = f.read()
    from effkeras.convert import read_tflite

    floats = read_tflite(data).float_ops()
    if floats:  # e.g. tfmot's per-tensor scheme leaves folded convolutions in float
        kinds = sorted({op.name for op in floats})
        return {"tfmot_error": f"not full-int8: {len(floats)} float op(s) ({', '.join(kinds)}), {len(data):,} B"}
    return {"tfmot_tflite": data}


def run_width(width, wdir, x_tr, y_tr, x_te, y_te, args, meta, sel, pruned) -> dict:
    from effkeras.convert import strip_tensor_names, to_tflite

    t = tag(width)
    row: dict = {"width": width}
    # (a) the survey recipe: float and PTQ int8 calibrated on 100 training images
    survey = sm.survey_cnn(width, order="relu_bn")
    survey.load_weights(os.path.join(wdir, f"survey_{t}.weights.h5"))
    exp = sm.with_softmax(survey)
    s_float = to_tflite(exp)
    s_int8 = to_tflite(exp, quantize="int8", representative_data=sm.scale(x_tr[:100]), io_dtype="int8")
    row["survey"] = {
        "epochs": meta.get(f"survey_{t}", {}).get("epochs"),
        "float_bytes": len(s_float), "float_acc": evaluate(s_float, x_te, y_te),
        "int8_bytes": len(s_int8), "int8_acc": evaluate(s_int8, x_te, y_te),
        "int8_bytes_names_stripped": len(strip_tensor_names(s_int8)),
        **micro_facts(s_int8),
    }
    # (b) effkeras: distilled float student, then the pruned one through QAT
    student = sm.survey_cnn(width, order="bn_relu")
    student.load_weights(os.path.join(wdir, f"distill_{t}.weights.h5"))
    d_float = to_tflite(sm.with_softmax(student))
    dmeta = meta.get(f"distill_{t}", {})
    eff = {
        "distill_epochs": dmeta.get("epochs"),
        "student": {"distill_loss": dmeta.get("distill_loss", "keras-default"), "epochs": dmeta.get("epochs"),
                    "init": dmeta.get("init"), "teacher_width": dmeta.get("teacher_width", 1.4)},
        "float_bytes": len(d_float), "float_acc": evaluate(d_float, x_te, y_te),
    }
    budget = row["survey"]["int8_bytes"] // 2
    candidates = [c for c in pruned if c["source_width"] >= width]
    eff["candidates"] = candidates
    eff["budget_bytes"] = budget
    # the recipe: pruned from the student of the same width (every layer, the head only,
    # or per layer)
    same = [c for c in candidates if c["source_width"] == width]
    eff.update(finish_candidate(pick_candidate(same, budget), wdir, x_tr, y_tr, x_te, y_te, sel, args))
    row["effkeras"] = eff
    row["target_met"] = met(row["survey"], eff)
    # the same test against the survey's file with its tensor names stripped as well
    row["target_met_names_stripped"] = met(row["survey"], eff, "int8_bytes_names_stripped")
    # any candidate within the budget, also those pruned per layer from a wider student
    best = pick_candidate(candidates, budget)
    if best is not None and best["stem"] != eff.get("stem") and best["int8_bytes"] <= budget:
        wide = finish_candidate(best, wdir, x_tr, y_tr, x_te, y_te, sel, args)
        row["effkeras_budget"] = wide
        row["budget_target_met"] = met(row["survey"], wide)
        row["budget_target_met_names_stripped"] = met(row["survey"], wide, "int8_bytes_names_stripped")
    return row


# ---------------------------------------------------------------------------- reporting


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def _b(v):
    return "-" if v is None else f"{v:,}"


TITLE = "Survey suite: CIFAR-10 width-multiplier CNN, survey recipe vs effkeras"


def headline(rows) -> list[dict]:
    """The suite's rows of the headline table: the half-size target per width, QAT against tfmot."""
    each = [f"width {r['width']}: {r['effkeras']['int8_bytes'] / 1000:.1f} KB {_pct(r['effkeras']['int8_acc'])} vs "
            f"{r['survey']['int8_bytes'] / 1000:.1f} KB {_pct(r['survey']['int8_acc'])}"
            for r in rows if "int8_bytes" in r["effkeras"]]
    hits = [bool(r["target_met"]) for r in rows]
    out = [results.headline_row(
        "survey CIFAR-10 CNN: effkeras vs the survey's recipe, same width", "; ".join(each) or "no effkeras model",
        "the survey's int8 accuracy at half its size, every width",
        "yes" if all(hits) and each else ("partly" if any(hits) else "no"))]
    gaps = sorted(100 * (ee["qat_acc"] - ee["tfmot_acc"]) for r in rows
                  for ee in (r["effkeras"], r.get("effkeras_budget", {})) if "qat_acc" in ee and "tfmot_acc" in ee)
    if gaps:
        out.append(results.headline_row(
            "survey CIFAR-10 CNN: effkeras QAT vs tfmot QAT of the same pruned models",
            f"{gaps[0]:+.1f} to {gaps[-1]:+.1f} pt ({len(gaps)} models, medians of the QAT runs)", "at least tfmot",
            "yes" if gaps[0] >= 0 else ("partly" if gaps[-1] >= 0 else "no")))
    return out


def _file_cell(ee: dict) -> str:
    return "-" if "int8_bytes" not in ee else f"{ee['int8_bytes'] / 1000:.1f} KB, {_pct(ee['int8_acc'])}"


def summary(rows) -> dict:
    """One line a width: the survey recipe's int8 file beside effkeras's two."""
    out = []
    cell = _file_cell
    for r in rows:
        s, e, b = r["survey"], r["effkeras"], r.get("effkeras_budget", {})
        out.append([str(r["width"]), f"{s['int8_bytes'] / 1000:.1f} KB, {_pct(s['int8_acc'])}", cell(e), cell(b),
                    "met" if r["target_met"] else "not met"])
    return {"title": "int8 files per width (LiteRT accuracy on the test set):",
            "columns": ["width", "survey recipe", "effkeras, same width", "effkeras, within half the size",
                        "target (same width)"],
            "rows": out}


def markdown(rows, info) -> str:
    L = [f"## {TITLE} (`{info['command']}`)", ""]
    L += [f"- run: **{info['mode']}**; {info['when']}", f"- host: `{info['machine']}`; training: {info['training']}",
          f"- data: {info['data']}", ""]
    L += ["| width | recipe | float KB | float acc | int8 KB | int8 acc | arena KB | nano33ble ms | int8 how | target |",
          "|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        s, e = r["survey"], r["effkeras"]
        L.append(f"| {r['width']} | survey (ReLU->BN, aug, PTQ 100 img) | {s['float_bytes'] / 1000:.1f} | {_pct(s['float_acc'])} "
                 f"| {s['int8_bytes'] / 1000:.1f} | {_pct(s['int8_acc'])} | {_b(s.get('arena_bytes') and round(s['arena_bytes'] / 1000, 1))} "
                 f"| {_b(s.get('nano33ble_ms'))} | converter PTQ | |")
        for label, ee, ok in (("same width", e, r["target_met"]),
                              ("within budget", r.get("effkeras_budget", {}), r.get("budget_target_met"))):
            if "int8_bytes" not in ee:
                continue
            L.append(f"| {r['width']} | effkeras, {label}: distill, {ee['label']}, int8 | {ee['pruned_float_bytes'] / 1000:.1f} "
                     f"| {_pct(ee['pruned_float_acc'])} | {ee['int8_bytes'] / 1000:.1f} | {_pct(ee['int8_acc'])} "
                     f"| {_b(ee.get('arena_bytes') and round(ee['arena_bytes'] / 1000, 1))} | {_b(ee.get('nano33ble_ms'))} "
                     f"| {ee['int8_method']} | {'met' if ok else '**not met**'} |")
    L += ["", "Rows: *same width* is the issue's recipe (the student of the same width, distilled, channel-pruned "
          "in every layer, in the head only or per layer (`effkeras.prune.prune_low_magnitude(..., "
          "layer_schedules=...)`), int8 with BN folded); *within budget* is the best effkeras model within half "
          "the survey file's size, also from wider distilled students. Candidates are chosen on "
          f"{SELECTION_SAMPLES:,} training images (unaugmented, none of them in the host QAT subset), PTQ vs "
          "QAT too; the test set only reports."]
    L += ["", "effkeras files are written with `to_tflite(strip_names=True)` (intermediate tensors "
          "renamed t<index>; the survey's converter output keeps Keras scope names). The same target "
          "against the survey files with their names stripped too: " + "; ".join(
              f"width {r['width']}: {r['survey']['int8_bytes_names_stripped'] / 1000:.1f} KB, same width "
              f"{'met' if r.get('target_met_names_stripped') else 'not met'}, within budget "
              + ("-" if "effkeras_budget" not in r else
                 ("met" if r.get("budget_target_met_names_stripped") else "not met"))
              for r in rows) + "."]
    L += ["", "int8 stage side by side with tensorflow-model-optimization: the same pruned float model, QAT on "
          "the same augmented images, epochs, batch and learning rate (tfmot 8-bit default scheme on tf_keras, in a "
          "child process); LiteRT accuracy on the test set:", "",
          "| width | model | effkeras PTQ | effkeras QAT (BN folded) | tfmot QAT | effkeras / tfmot int8 B |",
          "|---:|---|---:|---:|---:|---|"]
    for r in rows:
        for ee in (r["effkeras"], r.get("effkeras_budget", {})):
            if "int8_bytes" not in ee:
                continue
            tfm = spread(ee, "tfmot_acc") if "tfmot_acc" in ee else ee.get("tfmot_error", "-")
            L.append(f"| {r['width']} | {ee['label']} | {_pct(ee.get('ptq_acc'))} | {spread(ee, 'qat_acc')} | {tfm} "
                     f"| {_b(ee.get('qat_bytes'))} / {_b(ee.get('tfmot_bytes'))} |")
    cands: dict[str, dict] = {}
    for r in rows:
        for c in r["effkeras"].get("candidates", []):
            cands.setdefault(c["stem"], c)
    budgets = [(r["width"], r["effkeras"].get("budget_bytes") or r["survey"]["int8_bytes"] // 2) for r in rows]
    L += ["", f"Every pruned candidate (float accuracy on the {info['test_samples']:,} test images, Keras; "
          "selection accuracy on the training subset; int8 bytes of its effkeras PTQ file; which half-size "
          "budgets it fits):", "",
          "| candidate | params | int8 B | selection acc | pruned float acc | fits half of width |",
          "|---|---:|---:|---:|---:|---|"]
    for c in sorted(cands.values(), key=lambda c: -c["int8_bytes"]):
        fits = ", ".join(str(w) for w, b in budgets if c["source_width"] >= w and c["int8_bytes"] <= b) or "-"
        L.append(f"| {describe(c)} | {_b(c['params'])} | {_b(c['int8_bytes'])} | {_pct(c['selection_acc'])} "
                 f"| {_pct(c['pruned_float_acc'])} | {fits} |")
    L += ["", "Distilled students before pruning (float, test set): " + "; ".join(
        f"width {r['width']}: {_pct(r['effkeras']['float_acc'])} ({r['effkeras']['float_bytes'] / 1000:.1f} KB; "
        f"{student_text(r['effkeras'].get('student'))})"
        for r in rows) + "."]
    L += ["", *info["notes"]]
    return "\n".join(L)


def write_models(rows, folder: str, info) -> list[str]:
    """Write the chosen int8 models and their sidecars into ``folder``; this suite's files
    from an earlier run that this run does not write again (a width whose best model within
    budget is now the same-width one) are removed, so the folder is exactly this run's."""
    import glob

    os.makedirs(folder, exist_ok=True)
    for old in glob.glob(os.path.join(folder, "survey_w*_effkeras*_int8.*")):
        if old.endswith((".tflite", ".json")):
            os.remove(old)
    written = []
    for r in rows:
        for kind, e, ok in (("", r["effkeras"], r["target_met"]),
                            ("_budget", r.get("effkeras_budget", {}), r.get("budget_target_met"))):
            if "_tflite" not in e:
                continue
            name = f"survey_w{tag(r['width'])}_effkeras{kind}_int8"
            with open(os.path.join(folder, name + ".tflite"), "wb") as f:
                f.write(e["_tflite"])
            side = {
                "name": name,
                "suite": "survey",
                "command": info["command"],
                "mode": info["mode"],
                "recipe": (f"survey CNN (Conv->BN->ReLU) of width {e['source_width']}; augmentation "
                           f"(flip, translate 3 px); {student_text(e.get('student'))}; channel pruning {e['label']} "
                           f"({e.get('prune_epochs')} epochs, stripped); {e['int8_method']} "
                           f"(QAT: {info['qat']}); tensor names stripped"),
                "dataset": "CIFAR-10 JPEG (../shared/data/cifar10_jpg), inputs scaled to [-1, 1]",
                "accuracy": round(e["int8_acc"], 4),
                "test_samples": info["test_samples"],
                "size_bytes": e["int8_bytes"],
                "arena_bytes": e.get("arena_bytes"),
                "nano33ble_estimate_ms": e.get("nano33ble_ms"),
                "float_accuracy_pruned": round(e["pruned_float_acc"], 4),
                "survey_width": r["width"],
                "survey_int8_accuracy": round(r["survey"]["int8_acc"], 4),
                "survey_int8_size_bytes": r["survey"]["int8_bytes"],
                "target_met": bool(ok),
                "io": "int8 input and output",
            }
            with open(os.path.join(folder, name + ".json"), "w") as f:
                json.dump(side, f, indent=1)
                f.write("\n")
            written.append(name)
    return written


# ---------------------------------------------------------------------------- entry


def smoke_weights(out: str, data: str) -> None:  # noqa: D401
    """Train every stage for one epoch on a tiny subset, in this process (TF backend)."""
    import survey_train as st

    common = ["--data", data, "--out", out, "--epochs", "1", "--prune-epochs", "1", "--qat-epochs", "0",
              "--limit-train", "128", "--limit-test", "64", "--teacher-width", "0.05"]
    st.decode_cache(st.parse(common + ["--plan", "prune"]))
    for job in ("teacher", "survey:0.05", "distill:0.05", "optimize:0.05:0.5:distill",
                "optimize:0.05:0.5:distill:head", "optimize:0.05:0.3:distill:per-0.5-0.5-0-0-0.3-0.5-0.5"):
        st.run_job(st.parse(common + ["--job", job]))
    # pruning followed by KL distillation of the pruned model
    st.run_job(st.parse(common + ["--job", "optimize:0.05:0.4:distill:head", "--kd-epochs", "1"]))


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny run on random data (CI)")
    p.add_argument("--weights", default="build/survey/weights", help="survey_train.py outputs")
    p.add_argument("--data", default=os.environ.get("EFFKERAS_DATA_DIR", "../shared/data"))
    p.add_argument("--widths", default=",".join(str(w) for w in sm.WIDTHS))
    p.add_argument("--qat-samples", type=int, default=10000)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--qat-repeats", type=int, default=1,
                   help="QAT runs per model (seeds 0..N-1), effkeras and tfmot; the median run is reported")
    p.add_argument("--limit-test", type=int)
    p.add_argument("--results", help="write the results file here (tflite_models/survey/results.json)")
    p.add_argument("--models", help="folder for the int8 models and their sidecars (tflite_models)")
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--training", default="see the JSON files beside the weights")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="only rewrite the --results file from the results (or --json) file of an earlier run")
    args = p.parse_args(argv)
    if args.qat_repeats < 1:
        p.error(f"--qat-repeats must be 1 or more (QAT runs per model). Received: {args.qat_repeats}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.render:
        if not os.path.isfile(args.render):
            raise BadInput(f"--render needs the --json file of an earlier run. Received: {args.render!r}")
        with open(args.render) as f:
            saved = json.load(f)
        saved = saved.get("raw") or saved  # a results file keeps the raw rows under "raw"
        if not isinstance(saved, dict) or "rows" not in saved or "info" not in saved:
            raise BadInput(f"--render needs a file with the raw rows of an earlier run. Received: {args.render!r}")
        save_results(args.results, saved["rows"], saved["info"])
        return 0
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    t0 = time.time()
    tmp = None
    if args.smoke:
        tmp = tempfile.mkdtemp(prefix="survey_smoke_")
        args.widths, args.qat_samples, args.qat_repeats = "0.05", 128, 2  # 2: proves the median path runs
        real = os.path.isfile(os.path.join(args.data, "cifar10_jpg", "cifar10_test_jpg.tar.gz"))
        smoke_weights(tmp, "random")
        args.weights = tmp
        d = np.load(os.path.join(tmp, "cifar10_u8.npz"))
        x_tr, y_tr, x_te, y_te = d["xtr"], d["ytr"], d["xte"], d["yte"]
        data_note = f"random CIFAR-shaped data, 128 train / 64 test (real data {'present' if real else 'absent'}; not used)"
    else:
        x_tr, y_tr, x_te, y_te = load_host_data(args.weights, args.data, args.limit_test)
        data_note = (f"CIFAR-10 JPEG, {len(x_tr):,} train / {len(x_te):,} test images "
                     f"(lossy: compare rows side by side, not with published CIFAR-10 numbers)")
    meta = load_meta(args.weights)
    sel = selection_set(x_tr, y_tr)
    pruned = discover_candidates(args.weights, meta, x_tr, y_tr, sel)
    rows = [run_width(float(w), args.weights, x_tr, y_tr, x_te, y_te, args, meta, sel, pruned)
            for w in args.widths.split(",")]
    teacher = meta.get("teacher", {})
    info = {
        "command": "benchmarks/survey.py --smoke" if args.smoke else "benchmarks/survey.py " + " ".join(argv or sys.argv[1:]),
        "mode": "smoke (1 epoch per stage on random data: the numbers mean nothing)" if args.smoke else "full",
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": " ".join(platform.uname()[:3]) + f", {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "training": args.training,
        "data": data_note,
        "qat": (f"{args.qat_epochs} epoch(s) on {args.qat_samples} augmented training images, on the host CPU, "
                f"median of {args.qat_repeats} run(s)"),
        "test_samples": int(len(x_te)),
        "notes": [
            f"- teacher (width 1.4, survey recipe): float {_pct(teacher.get('float_test_accuracy'))} after "
            f"{teacher.get('epochs')} epochs (Keras evaluation, same test images).",
            f"- Accuracy: one training run per float model; the QAT stage ran {args.qat_repeats} time(s) per model "
            "(seeds 0..N-1: training subset, augmentation and shuffling), effkeras and tfmot alike: the int8 "
            "accuracy quoted is the median run's (its file is the QAT candidate), the range of all runs beside it; "
            "sizes are exact .tflite bytes; arena: exact TFLM arena on this 64-bit host (add a margin on a 32-bit Cortex-M); nano33ble: effkeras's estimate, not a measurement.",
        ],
    }
    for r in rows:
        r["survey"]["float_acc"] = round(r["survey"]["float_acc"], 4)
    save_results(args.results, rows, info)
    if args.models:
        print("models:", write_models(rows, args.models, info))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "rows": [{k: ({kk: vv for kk, vv in v.items() if kk != "_tflite"}
                                                   if isinstance(v, dict) else v) for k, v in r.items()}
                                              for r in rows]}, f, indent=1, default=str)
    print(f"survey suite done in {time.time() - t0:.0f}s")
    return 0


def save_results(path: str | None, rows, info) -> None:
    """Print the run's Markdown; with ``path``, write the suite's results file."""
    md = markdown(rows, info)
    print(md)
    if path:
        raw = {"info": info, "rows": [{k: ({kk: vv for kk, vv in v.items() if kk != "_tflite"}
                                          if isinstance(v, dict) else v) for k, v in r.items()} for r in rows]}
        results.save(path, results.build("survey", title=TITLE, markdown=md, headline=headline(rows),
                                         summary=summary(rows), script_command=info["command"], raw=raw,
                                         date=info["when"]))


if __name__ == "__main__":
    run_main(main)
