"""Pruning benchmark for BENCHMARKS.md: effkeras.prune against tensorflow-model-optimization.

    .venv/bin/python benchmarks/prune.py [--datasets mnist,cifar10] [--quick]
                                    [--results OUT.json] [--json OUT.json]

For each dataset (MNIST: 10k train / 10k test; CIFAR-10: a 10k / 2k subset by default,
decoded from JPEG, so slightly lossy) it trains a small CNN (benchmarks/_prune_common.ARCHS)
in float with Keras 3, then, from those same float weights, with the same data, epochs,
optimizer and schedules:

- effkeras (Keras 3): a float control fine-tuned as long as the pruned models, and
  unstructured pruning to 50/75/80/90% and 2:4, each stripped, converted to int8
  (effkeras.convert.to_tflite) and scored in Keras (float) and with LiteRT (int8); gzip
  -9 sizes of the float, int8 and pruned int8 .tflite; channel pruning to 50% with
  ``strip_pruning`` removing the filters: MACs and LiteRT latency before/after
  (effkeras.bench.compare, 1 thread, interleaved);
- tfmot (tf_keras, in a child process, benchmarks/_tfmot_prune.py): the float control and the
  same pruning runs, accuracy of the stripped model;
- training step time, float vs pruned, each framework timed interleaved in its own
  process (median ms per step over several rounds, callbacks included).

Prints the machine (uname -a, CPU model, nproc) and the date; ``--quick`` is a smoke test
on a fraction of the data and must not be quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import results as results_file  # noqa: E402
from _machine import default_data_dir, machine  # noqa: E402
from _prune_common import (  # noqa: E402
    CONFIGS,
    TIMED,
    build,
    interleaved_step_ms,
    kernel_sparsity,
    make_schedule,
    schedule_args,
)

DATA_DIR = default_data_dir()
SETTINGS = {
    "mnist": {"limit_train": 10_000, "limit_test": 10_000, "float_epochs": 4,
              "finetune_epochs": 3},
    "cifar10": {"limit_train": 10_000, "limit_test": 2_000, "float_epochs": 10,
                "finetune_epochs": 4},
}  # fmt: skip
QUICK = {"limit_train": 1_024, "limit_test": 512, "float_epochs": 1, "finetune_epochs": 1}


def tflite_accuracy(data: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a batch-1 .tflite with float I/O, on LiteRT's default kernels."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    correct = 0
    for i in range(len(x)):
        interp.set_tensor(inp, x[i : i + 1])
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out)) == y[i])
    return correct / len(x)


def run_tfmot(settings: dict, x, y, xt, yt, weights) -> dict:
    with tempfile.TemporaryDirectory(prefix="effkeras_bench_prune_") as tmp:
        npz, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.json")
        np.savez(npz, x_train=x, y_train=y, x_test=xt, y_test=yt, n_weights=len(weights),
                 settings=json.dumps(settings), **{f"w{i}": w for i, w in enumerate(weights)})  # fmt: skip
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [sys.executable, os.path.join(HERE, "_tfmot_prune.py"), npz, out]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"tfmot child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def run_dataset(name: str, quick: bool, log, overrides: dict | None = None) -> dict:
    import keras

    import effkeras
    import effkeras.prune as prune
    from effkeras.bench import compare
    from effkeras.convert import to_tflite
    from effkeras.data import load_dataset

    cfg = {**SETTINGS[name], **(QUICK if quick else {}), **(overrides or {})}
    ds = load_dataset(name, DATA_DIR, limit_train=cfg["limit_train"], limit_test=cfg["limit_test"])
    x, y = ds.x_train.astype("float32"), ds.y_train.astype("int64")
    xt, yt = ds.x_test.astype("float32"), ds.y_test.astype("int64")
    batch = 64
    steps_per_epoch = -(-len(x) // batch)
    settings = {
        "arch": name, "seed": 0, "batch_size": batch, "float_lr": 1e-3, "finetune_lr": 5e-4,
        "finetune_epochs": cfg["finetune_epochs"], "frequency": max(1, steps_per_epoch // 8),
        "timing_steps": 20 if quick else 60, "timing_rounds": 2 if quick else 4,
    }  # fmt: skip
    steps = settings["finetune_epochs"] * steps_per_epoch
    result: dict = {"dataset": name, "train": len(x), "test": len(xt), "settings": settings,
                    "float_epochs": cfg["float_epochs"], "runs": {}}  # fmt: skip
    rep = x[np.random.default_rng(0).permutation(len(x))[:300]]

    def compile_(model, lr):
        model.compile(keras.optimizers.Adam(lr),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])  # fmt: skip
        return model

    def float_model(weights=None):
        keras.utils.set_random_seed(settings["seed"])
        model = build(keras, name, x.shape[1:])
        if weights is not None:
            model.set_weights(weights)
        return model

    def pruned(structure, sparsity, weights):
        schedule = make_schedule(prune, schedule_args(structure, sparsity, steps,
                                                      settings["frequency"]))  # fmt: skip
        return prune.prune_low_magnitude(float_model(weights), schedule, structure=structure)

    def evaluate(model):
        return float(compile_(model, 1e-3).evaluate(xt, yt, batch_size=256, verbose=0)[1])

    # Float training (the shared starting point).
    t0 = time.perf_counter()
    base = compile_(float_model(), settings["float_lr"])
    base.fit(x, y, batch_size=batch, epochs=cfg["float_epochs"], verbose=0, shuffle=True)
    weights = base.get_weights()
    result["float_pretrain"] = {"accuracy": evaluate(base), "train_s": time.perf_counter() - t0}
    log(f"{name}: float {result['float_pretrain']}")

    # tfmot, in its own process, before effkeras's runs (sequential: 2 cores).
    result["tfmot"] = run_tfmot(settings, x, y, xt, yt, weights)
    log(f"{name}: tfmot done, step {result['tfmot']['step_ms']}")

    # Step time, effkeras: float vs pruned, interleaved.
    structure, sparsity = next((c[1], c[2]) for c in CONFIGS if c[0] == TIMED)
    result["step_ms"] = interleaved_step_ms(
        keras,
        {"float": (compile_(float_model(weights), settings["finetune_lr"]), []),
         "pruned": (compile_(pruned(structure, sparsity, weights), settings["finetune_lr"]),
                    [prune.UpdatePruningStep()])},
        x, y, batch, settings["timing_steps"], settings["timing_rounds"],
    )  # fmt: skip
    log(f"{name}: effkeras step {result['step_ms']}")

    # Float control: fine-tuned as long as the pruned models.
    ef = result["runs"]
    t0 = time.perf_counter()
    control = compile_(float_model(weights), settings["finetune_lr"])
    control.fit(x, y, batch_size=batch, epochs=settings["finetune_epochs"], verbose=0)
    float_tfl = to_tflite(control)
    int8_tfl = to_tflite(control, quantize="int8", representative_data=rep)
    ef["float"] = {
        "accuracy": evaluate(control), "train_s": time.perf_counter() - t0,
        "tflite_float_bytes": len(float_tfl), "tflite_float_gzip": effkeras.profile(
            float_tfl, "nano33ble").gzip_size_bytes,
        "int8_accuracy": tflite_accuracy(int8_tfl, xt, yt),
        "tflite_int8_bytes": len(int8_tfl),
        "tflite_int8_gzip": effkeras.profile(int8_tfl, "nano33ble").gzip_size_bytes,
    }  # fmt: skip
    log(f"{name}: control {ef['float']}")

    for run, structure, sparsity in CONFIGS:
        t0 = time.perf_counter()
        model = compile_(pruned(structure, sparsity, weights), settings["finetune_lr"])
        model.fit(x, y, batch_size=batch, epochs=settings["finetune_epochs"], verbose=0,
                  callbacks=[prune.UpdatePruningStep()])  # fmt: skip
        train_s = time.perf_counter() - t0
        stripped = prune.strip_pruning(model)
        tfl = to_tflite(stripped, quantize="int8", representative_data=rep)
        report = effkeras.profile(tfl, "nano33ble")
        ef[run] = {
            "accuracy": evaluate(stripped), "train_s": train_s,
            "sparsity": kernel_sparsity(stripped),
            "int8_accuracy": tflite_accuracy(tfl, xt, yt), "tflite_int8_bytes": len(tfl),
            "tflite_int8_gzip": report.gzip_size_bytes,
            "int8_weight_sparsity": report.weight_sparsity,
        }  # fmt: skip
        log(f"{name}: {run} {ef[run]}")

    # Channel pruning to 50%: filters removed by strip_pruning.
    t0 = time.perf_counter()
    args = schedule_args("unstructured", 0.5, steps, settings["frequency"])
    model = prune.prune_low_magnitude(float_model(weights), make_schedule(prune, args),
                                      structure="channel")  # fmt: skip
    compile_(model, settings["finetune_lr"])
    model.fit(x, y, batch_size=batch, epochs=settings["finetune_epochs"], verbose=0,
              callbacks=[prune.UpdatePruningStep()])  # fmt: skip
    small = prune.strip_pruning(model)
    small_f = to_tflite(small)
    small_i8 = to_tflite(small, quantize="int8", representative_data=rep)
    keys = ("float_before", "float_after", "int8_before", "int8_after")
    latency, noisy = {}, {}
    for target in ("litert", "litert:builtin"):
        timing = compare([float_tfl, small_f, int8_tfl, small_i8], target, threads=1)
        latency[target] = {k: r.latency_ms for k, r in zip(keys, timing, strict=True)}
        noisy[target] = {k: r.noisy for k, r in zip(keys, timing, strict=True)}
    ef["channel 50%"] = {
        "accuracy": evaluate(small), "train_s": time.perf_counter() - t0,
        "int8_accuracy": tflite_accuracy(small_i8, xt, yt),
        "macs_before": effkeras.profile(int8_tfl, "nano33ble").macs,
        "macs_after": effkeras.profile(small_i8, "nano33ble").macs,
        "params_before": int(control.count_params()), "params_after": int(small.count_params()),
        "latency_ms": latency, "noisy": noisy,
        "tflite_int8_gzip": effkeras.profile(small_i8, "nano33ble").gzip_size_bytes,
    }  # fmt: skip
    log(f"{name}: channel {ef['channel 50%']}")
    return result


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


TITLE = "Pruning: effkeras.prune vs tensorflow-model-optimization"


def headline(results: list[dict]) -> list[dict]:
    """Step time, accuracy against tfmot, channel-pruning speed-up, and pruned + int8 gzip size."""
    row = results_file.headline_row
    out = []
    step = {r["dataset"]: r["step_ms"]["pruned"]["median_ms"] / r["step_ms"]["float"]["median_ms"] for r in results}
    out.append(row("pruning step time vs float", ", ".join(f"{d} {v:.2f}x" for d, v in step.items()), "<= 1.15x",
                   "yes" if max(step.values()) <= 1.15 else ("partly" if min(step.values()) <= 1.15 else "no")))
    gaps, noise = [], []
    for r in results:
        ef, tm, n = r["runs"], r["tfmot"]["runs"], r["test"]
        for name, _, _ in CONFIGS:
            if name.startswith("unstructured") or name == "2:4":
                p = ef[name]["accuracy"]
                gaps.append(100 * (p - tm[name]["accuracy"]))
                noise.append(200 * (2 * p * (1 - p) / n) ** 0.5)  # 2 standard errors of a difference
    ok = [g >= -z for g, z in zip(gaps, noise, strict=True)]
    out.append(row("pruning accuracy vs tfmot (unstructured 50-90%, 2:4)",
                   f"effkeras - tfmot {min(gaps):+.2f} to {max(gaps):+.2f} pt over {len(gaps)} runs",
                   "not below tfmot by more than 2 standard errors", "yes" if all(ok) else "no"))
    for r in results:
        c, f = r["runs"]["channel 50%"], r["runs"]["float"]
        lat = c["latency_ms"]
        speed = {f"{t} {k}": lat[t][f"{k}_before"] / lat[t][f"{k}_after"] for t in lat for k in ("float", "int8")}
        lost = 100 * (f["accuracy"] - c["accuracy"])
        fast = [v >= 1.6 for v in speed.values()]
        out.append(row(f"channel pruning 50% ({r['dataset']})",
                       f"{c['macs_before'] / c['macs_after']:.2f}x fewer MACs; "
                       + ", ".join(f"{k} {v:.2f}x" for k, v in speed.items()) + f"; {-lost:+.2f} pt",
                       "1.6x faster at < 1 pt lost",
                       "yes" if all(fast) and lost < 1 else ("partly" if any(fast) and lost < 1 else "no")))
        e80 = r["runs"]["unstructured 80%"]
        ratio = f["tflite_float_gzip"] / e80["tflite_int8_gzip"]
        diff = 100 * (e80["int8_accuracy"] - f["accuracy"])
        out.append(row(f"pruned 80% + int8, gzip ({r['dataset']})", f"{ratio:.1f}x smaller than float gzip, "
                       f"{diff:+.2f} pt", "10x within 1 pt",
                       "yes" if ratio >= 10 and diff > -1 else ("partly" if ratio >= 10 or diff > -1 else "no")))
    return out


def markdown(results: list[dict], info: dict, command: str, quick: bool) -> str:
    lines = [f"## {TITLE} (`{command}`)", ""]
    lines += [f"- machine: `{info['uname']}`", f"- CPU: {info['cpu']}; nproc: {info['nproc']}",
              f"- Python {info['python']}; date: {info['date']}",
              f"- run: {'QUICK smoke test, not for quoting' if quick else 'full (as below)'}",
              ""]  # fmt: skip
    for r in results:
        s = r["settings"]
        ef, tm = r["runs"], r["tfmot"]["runs"]
        lines.append(
            f"### {r['dataset']}: {r['train']} train / {r['test']} test images; float "
            f"{r['float_epochs']} epochs (Adam {s['float_lr']:g}), then every run below "
            f"{s['finetune_epochs']} epochs from those weights (Adam {s['finetune_lr']:g}, "
            f"batch {s['batch_size']}, pruning frequency {s['frequency']} steps)"
        )
        lines.append("")
        lines.append("| run | effkeras acc % (Keras) | effkeras int8 acc % (LiteRT) | "
                     "tfmot acc % (tf_keras) | effkeras kernel sparsity | int8 .tflite B | "
                     "int8 gzip -9 B |")  # fmt: skip
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        f = ef["float"]
        lines.append(f"| float (control) | {_pct(f['accuracy'])} | {_pct(f['int8_accuracy'])} | "
                     f"{_pct(tm['float']['accuracy'])} | 0 | {f['tflite_int8_bytes']:,} | "
                     f"{f['tflite_int8_gzip']:,} |")  # fmt: skip
        for name, _, _ in CONFIGS:
            e, t = ef[name], tm[name]
            lines.append(
                f"| {name} | {_pct(e['accuracy'])} | {_pct(e['int8_accuracy'])} | "
                f"{_pct(t['accuracy'])} (sparsity {t['sparsity']:.3f}) | {e['sparsity']:.3f} | "
                f"{e['tflite_int8_bytes']:,} | {e['tflite_int8_gzip']:,} |"
            )
        lines.append("")
        lines.append(f"Float .tflite: {f['tflite_float_bytes']:,} B, gzip -9 "
                     f"{f['tflite_float_gzip']:,} B (float pre-training alone: "
                     f"{_pct(r['float_pretrain']['accuracy'])}%).")  # fmt: skip
        e80 = ef["unstructured 80%"]
        ratio = f["tflite_float_gzip"] / e80["tflite_int8_gzip"]
        diff = 100 * (e80["int8_accuracy"] - f["accuracy"])
        lines.append(f"Pruned 80% + int8: gzip {e80['tflite_int8_gzip']:,} B = **{ratio:.1f}x** "
                     f"smaller than the float .tflite's gzip; int8 accuracy "
                     f"{_pct(e80['int8_accuracy'])}% vs float {_pct(f['accuracy'])}% "
                     f"(pruned int8 minus float: **{diff:+.2f} points**).")  # fmt: skip
        lines.append("")
        es, ts = r["step_ms"], r["tfmot"]["step_ms"]
        lines.append(f"Training step ({TIMED} schedule vs float, median ms/step, "
                     f"{es['float']['steps']} steps each in {s['timing_rounds']} interleaved "
                     f"rounds after a warm-up round, callbacks included):")  # fmt: skip
        lines.append("")
        lines.append("| framework | float ms/step | pruned ms/step | pruned/float |")
        lines.append("|---|---:|---:|---:|")
        for label, d in (("effkeras (Keras 3)", es), ("tfmot (tf_keras)", ts)):
            lines.append(f"| {label} | {d['float']['median_ms']:.2f} | "
                         f"{d['pruned']['median_ms']:.2f} | "
                         f"{d['pruned']['median_ms'] / d['float']['median_ms']:.2f}x |")  # fmt: skip
        lines.append("")
        c = ef["channel 50%"]
        lat = c["latency_ms"]
        lines.append(
            f"Channel pruning to 50% (structure='channel', filters removed by strip_pruning): "
            f"MACs {c['macs_before']:,} -> {c['macs_after']:,} "
            f"({c['macs_before'] / c['macs_after']:.2f}x fewer); params {c['params_before']:,} "
            f"-> {c['params_after']:,}; accuracy {_pct(c['accuracy'])}% (Keras), "
            f"{_pct(c['int8_accuracy'])}% (int8) vs control {_pct(f['accuracy'])}% / "
            f"{_pct(f['int8_accuracy'])}%."
        )
        lines.append("")
        lines.append("| target, 1 thread, interleaved | model | before ms | after ms | speed-up |")
        lines.append("|---|---|---:|---:|---:|")
        for target in lat:
            for kind in ("float", "int8"):
                b, a = lat[target][f"{kind}_before"], lat[target][f"{kind}_after"]
                noisy = any(c["noisy"][target][f"{kind}_{w}"] for w in ("before", "after"))
                mark = " (noisy)" if noisy else ""
                name = "litert (XNNPACK)" if target == "litert" else target
                lines.append(f"| {name} | {kind} | {b:.4f} | {a:.4f} | {b / a:.2f}x{mark} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist,cifar10")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--float-epochs", type=int, help="override the float training epochs")
    parser.add_argument("--finetune-epochs", type=int,
                        help="override the epochs of every fine-tuning/pruning run")  # fmt: skip
    parser.add_argument("--results", help="write the results file here (benchmarks/results/prune.json)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    info = machine()

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    log(json.dumps(info))
    overrides = {k: v for k, v in (("float_epochs", args.float_epochs),
                                   ("finetune_epochs", args.finetune_epochs)) if v is not None}  # fmt: skip
    results = [run_dataset(d, args.quick, log, overrides) for d in args.datasets.split(",")]
    command = ".venv/bin/python benchmarks/prune.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(results, info, command.strip(), args.quick)
    print(text)
    if args.results:
        results_file.save(args.results, results_file.build(
            "prune", title=TITLE, markdown=text, headline=headline(results), script_command=command.strip(),
            raw={"machine": info, "results": results}, date=info["date"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
