"""Quantization-aware training: effkeras vs PTQ vs tensorflow-model-optimization.

    .venv/bin/python benchmarks/qat.py [--datasets mnist cifar10] [--archs cnn mobilenet]
        [--float-epochs 5] [--qat-epochs 2] [--cifar-train 10000] [--cifar-test 2000]
        [--data-dir ../shared/data] [--results OUT.json] [--json OUT.json]

For each dataset and architecture (a conv+BN+ReLU CNN and a depthwise-separable
MobileNet-style model, benchmarks/_qat_models.py) it

1. trains the float Keras 3 model and measures its test accuracy;
2. converts it to float32 .tflite and to int8 with post-training quantization
   (effkeras.convert.to_tflite with 500 representative training images);
3. fine-tunes it with effkeras QAT (effkeras.quantize.quantize_model; batch norm
   folded, trained with batch statistics, frozen only with --freeze-bn-epoch) and
   converts it with no representative data;
4. runs the same fine-tuning with tensorflow-model-optimization in a child process
   (benchmarks/_tfmot_qat.py, tf_keras, same architecture, float weights, data, epochs,
   optimizer and batch size);
5. measures every int8 model's accuracy in LiteRT (built-in kernels, which TFLM
   matches), and the median training step time of float vs QAT for each library,
   float and QAT steps timed interleaved in one process.
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
from _machine import default_data_dir  # noqa: E402

sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import results  # noqa: E402
from _machine import machine_lines as machine  # noqa: E402
from _qat_models import BUILDERS, median, timed_steps  # noqa: E402


def litert_accuracy(data: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from effkeras.runtime import LiteRTRunner

    probs = LiteRTRunner(data, kernels="builtin").predict(x)
    return float(np.mean(probs.argmax(-1) == y))


def run_one(ds, arch: str, args) -> dict:
    import keras

    from effkeras.callbacks import FreezeBatchNorm
    from effkeras.convert import to_tflite
    from effkeras.quantize import quantize_model

    build = BUILDERS[arch]
    x, y, xt, yt = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    row = {"dataset": ds.name, "arch": arch, "train": len(x), "test": len(xt),
           "float_epochs": args.float_epochs, "qat_epochs": args.qat_epochs}
    t0 = time.time()
    keras.utils.set_random_seed(0)
    model = build(keras, x.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=args.float_epochs, batch_size=args.batch_size, verbose=0)
    row["float_acc"] = float(np.mean(model.predict(xt, verbose=0).argmax(-1) == yt))
    float_tflite = to_tflite(model)
    row["float_bytes"] = len(float_tflite)
    calib = x[:500]
    ptq = to_tflite(model, quantize="int8", representative_data=calib)
    row["ptq_bytes"] = len(ptq)
    row["ptq_acc"] = litert_accuracy(ptq, xt, yt)
    weights = model.get_weights()
    row["float_train_s"] = round(time.time() - t0, 1)

    # effkeras QAT
    t0 = time.time()
    qat = quantize_model(model, calibration_data=calib)
    qat.compile(keras.optimizers.Adam(args.qat_lr), "sparse_categorical_crossentropy")
    callbacks = []
    if args.freeze_bn_epoch is not None:
        callbacks.append(FreezeBatchNorm(epoch=args.freeze_bn_epoch))
    qat.fit(x, y, epochs=args.qat_epochs, batch_size=args.batch_size, verbose=0,
            callbacks=callbacks)
    qat_tflite = to_tflite(qat, quantize="int8")
    row["qat_bytes"] = len(qat_tflite)
    row["qat_acc"] = litert_accuracy(qat_tflite, xt, yt)
    row["qat_keras_acc"] = float(np.mean(qat.predict(xt, verbose=0).argmax(-1) == yt))
    row["qat_train_s"] = round(time.time() - t0, 1)

    # step time, float vs effkeras QAT, interleaved
    def float_clone():
        m = build(keras, x.shape[1:])
        m.set_weights(weights)
        return m

    def qat_clone():
        return quantize_model(float_clone(), calibration_data=calib[:64])

    float_ms, qat_ms = [], []
    for _ in range(args.timing_rounds):
        float_ms += timed_steps(keras, float_clone, x, y, args.timing_steps, args.batch_size)
        qat_ms += timed_steps(keras, qat_clone, x, y, args.timing_steps, args.batch_size)
    row["float_ms"], row["qat_ms"] = median(float_ms), median(qat_ms)

    # tensorflow-model-optimization, same run, in a child process
    with tempfile.TemporaryDirectory(prefix="effkeras_tfmot_") as tmp:
        npz = os.path.join(tmp, "in.npz")
        np.savez(npz, x_train=x, y_train=y, n_weights=len(weights),
                 **{f"w{i}": w for i, w in enumerate(weights)})
        cmd = [sys.executable, os.path.join(HERE, "_tfmot_qat.py"), npz, tmp, "--arch", arch,
               "--epochs", str(args.qat_epochs), "--batch-size", str(args.batch_size),
               "--lr", str(args.qat_lr), "--timing-steps", str(args.timing_steps),
               "--timing-rounds", str(args.timing_rounds)]
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            row["tfmot_error"] = proc.stderr[-1500:]
        else:
            with open(os.path.join(tmp, "tfmot_qat.tflite"), "rb") as f:
                tfmot_tflite = f.read()
            with open(os.path.join(tmp, "tfmot.json")) as f:
                info = json.load(f)
            row["tfmot_bytes"] = len(tfmot_tflite)
            row["tfmot_acc"] = litert_accuracy(tfmot_tflite, xt, yt)
            row["tfmot_float_ms"], row["tfmot_qat_ms"] = info["float_ms"], info["qat_ms"]
            row["tfmot_version"] = info["tfmot"]
        row["tfmot_s"] = round(time.time() - t0, 1)
    return row


TITLE = "QAT: effkeras vs PTQ vs tfmot"


def _span(values) -> str:
    v = sorted(values)
    return f"{v[0]:+.2f} pt" if len(v) == 1 else f"{v[0]:+.2f} to {v[-1]:+.2f} pt"


def headline(rows: list[dict]) -> list[dict]:
    """QAT against float (MNIST, 0.3 pt), against tfmot, and its step time (1.3x float)."""
    out = []
    mnist = [100 * (r["qat_acc"] - r["float_acc"]) for r in rows if r["dataset"] == "mnist"]
    if mnist:
        out.append(results.headline_row("QAT int8 vs float (MNIST)", _span(mnist), "within 0.3 pt",
                                        "yes" if all(abs(g) <= 0.3 for g in mnist) else "no"))
    vs = {}
    for r in rows:
        if "tfmot_acc" in r:
            vs.setdefault(r["dataset"], []).append(100 * (r["qat_acc"] - r["tfmot_acc"]))
    if vs:
        ok = [g >= 0 for gs in vs.values() for g in gs]
        out.append(results.headline_row(
            "QAT int8 vs tfmot QAT int8", "; ".join(f"{d} {_span(g)}" for d, g in vs.items()), "at least tfmot",
            "yes" if all(ok) else ("partly" if any(ok) else "no")))
    steps = sorted(r["qat_ms"] / r["float_ms"] for r in rows)
    tf = sorted(r["tfmot_qat_ms"] / r["tfmot_float_ms"] for r in rows if "tfmot_acc" in r)
    out.append(results.headline_row(
        "QAT step time vs float", f"effkeras {steps[0]:.2f}-{steps[-1]:.2f}x"
        + (f" (tfmot {tf[0]:.2f}-{tf[-1]:.2f}x its own)" if tf else ""), "<= 1.3x",
        "yes" if steps[-1] <= 1.3 else ("partly" if steps[0] <= 1.3 else "no")))
    return out


def markdown(rows: list[dict], args, header: list[str]) -> str:
    out = [f"## {TITLE} (`.venv/bin/python benchmarks/qat.py "
           f"{' '.join(args.argv)}`)", "", *header, ""]
    out += ["| dataset (train/test) | model | float acc | PTQ int8 | effkeras QAT int8 | "
            "tfmot QAT int8 | QAT - float | float / int8 KB | step ms float / QAT (x) "
            "effkeras | tfmot (tf_keras) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tf_acc = f"{r['tfmot_acc']:.4f}" if "tfmot_acc" in r else "failed"
        tf_ms = (f"{r['tfmot_float_ms']:.1f} / {r['tfmot_qat_ms']:.1f} "
                 f"({r['tfmot_qat_ms'] / r['tfmot_float_ms']:.2f}x)" if "tfmot_acc" in r else "-")
        out.append(
            f"| {r['dataset']} ({r['train']}/{r['test']}) | {r['arch']} | {r['float_acc']:.4f} | "
            f"{r['ptq_acc']:.4f} | {r['qat_acc']:.4f} | {tf_acc} | "
            f"{100 * (r['qat_acc'] - r['float_acc']):+.2f} pt | "
            f"{r['float_bytes'] / 1024:.1f} / {r['qat_bytes'] / 1024:.1f} | "
            f"{r['float_ms']:.1f} / {r['qat_ms']:.1f} ({r['qat_ms'] / r['float_ms']:.2f}x) | "
            f"{tf_ms} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--archs", nargs="+", default=list(BUILDERS))
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--float-epochs", type=int, default=5)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--qat-lr", type=float, default=5e-4)
    parser.add_argument("--freeze-bn-epoch", type=int, default=None,
                        help="FreezeBatchNorm(epoch=N) for effkeras QAT (default: never)")
    parser.add_argument("--mnist-train", type=int, default=None)
    parser.add_argument("--mnist-test", type=int, default=None)
    parser.add_argument("--cifar-train", type=int, default=10000)
    parser.add_argument("--cifar-test", type=int, default=2000)
    parser.add_argument("--timing-steps", type=int, default=40)
    parser.add_argument("--timing-rounds", type=int, default=3)
    parser.add_argument("--results", help="write the results file here (benchmarks/results/qat.json)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    args.argv = argv

    from effkeras.data import load_dataset

    header = machine()
    print("\n".join(header), flush=True)
    rows = []
    for name in args.datasets:
        limits = ((args.mnist_train, args.mnist_test) if name == "mnist"
                  else (args.cifar_train, args.cifar_test))
        ds = load_dataset(name, args.data_dir, limit_train=limits[0], limit_test=limits[1])
        for arch in args.archs:
            row = run_one(ds, arch, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)
    text = markdown(rows, args, header)
    print(text)
    if args.results:
        results.save(args.results, results.build(
            "qat", title=TITLE, markdown=text, headline=headline(rows), raw=rows,
            script_command="benchmarks/qat.py " + " ".join(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
