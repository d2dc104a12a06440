"""Architectures: every keras.applications family on CIFAR-10, float vs PTQ vs effkeras QAT vs tfmot QAT.

Issue 20 item 8. For each family (the builders in :data:`FAMILIES`: the smallest width
multiplier, ``weights=None``, 10 classes, at ``--size`` pixels) this script

1. trains the float Keras 3 model from scratch on the CIFAR-10 JPEG training images
   (``--train`` of them, class-balanced; random horizontal flips; Adam ``--lr``, compiled
   ``model.fit``; batch-norm momentum 0.9 so that the moving statistics, which PTQ and
   conversion use, follow a short training);
2. converts it to float32 .tflite and, with post-training quantization
   (``effkeras.convert.to_tflite(quantize="int8", representative_data=256 images)``), to int8;
3. fine-tunes the same float weights with effkeras QAT (``effkeras.quantize.quantize_model``,
   batch norm folded, calibrated on the same 256 images) for ``--qat-epochs`` and converts it;
4. runs the same fine-tuning with tensorflow-model-optimization in a child process
   (``benchmarks/_tfmot_applications.py``: tf_keras builds the same application, loads the
   float weights layer by layer, ``tfmot.quantization.keras.quantize_model``, same data,
   epochs, optimizer and batch); where tfmot cannot quantize a family, its error is recorded;
5. scores every file on the ``--test`` test images in LiteRT (built-in kernels), counts the
   float operators left in each int8 file, and times the files side by side (LiteRT
   XNNPACK, 1 thread, interleaved rounds: ``effkeras.bench.compare``).

Each family runs in its own child process (``--one FAMILY``), which writes
``OUT/FAMILY.json``; ``--resume`` keeps the rows already in OUT, so a long run can be
continued or split across machines, and ``--merge`` only renders the results file.

    .venv/bin/python benchmarks/architectures.py --results benchmarks/results/architectures.json
    .venv/bin/python benchmarks/architectures.py --quick   # smoke: two families, 256 images
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
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import results  # noqa: E402
from _machine import ROOT, default_data_dir  # noqa: E402
from _machine import machine_lines as machine  # noqa: E402

TITLE = "Architectures: keras.applications families on CIFAR-10, float vs PTQ vs effkeras QAT vs tfmot QAT"
BN_MOMENTUM = 0.9
CALIBRATION = 256
SIZE_GOAL = 0.27

#: family -> (keras.applications constructor, keyword arguments). The same names exist in
#: tf_keras.applications, which the tfmot child builds from this table.
FAMILIES: dict[str, tuple[str, dict]] = {
    "MobileNet": ("MobileNet", {"alpha": 0.25}),
    "MobileNetV2": ("MobileNetV2", {"alpha": 0.35}),
    "MobileNetV3Small": ("MobileNetV3Small", {"alpha": 0.75}),
    "MobileNetV3SmallMinimalistic": ("MobileNetV3Small", {"alpha": 0.75, "minimalistic": True}),
    "MobileNetV3Large": ("MobileNetV3Large", {"alpha": 0.75}),
    "MobileNetV3LargeMinimalistic": ("MobileNetV3Large", {"alpha": 0.75, "minimalistic": True}),
    "EfficientNetB0": ("EfficientNetB0", {}),
    "EfficientNetB1": ("EfficientNetB1", {}),
    "EfficientNetB2": ("EfficientNetB2", {}),
    "EfficientNetV2B0": ("EfficientNetV2B0", {}),
    "EfficientNetV2B1": ("EfficientNetV2B1", {}),
    "EfficientNetV2B2": ("EfficientNetV2B2", {}),
    "ResNet50": ("ResNet50", {}),
    "ResNet50V2": ("ResNet50V2", {}),
    "DenseNet121": ("DenseNet121", {}),
    "NASNetMobile": ("NASNetMobile", {}),
}

#: families whose graph starts with its own Rescaling (inputs in [0, 255]); the rest get [0, 1]
PIXELS = ("MobileNetV3", "EfficientNet")


def build(k, family: str, size: int):
    """``family`` from the Keras module ``k`` (keras or tf_keras), BN momentum set to 0.9."""
    ctor, kwargs = FAMILIES[family]
    k.utils.set_random_seed(0)
    model = getattr(k.applications, ctor)(input_shape=(size, size, 3), weights=None, classes=10, **kwargs)
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def scale_images(family: str, x: np.ndarray) -> np.ndarray:
    x = x.astype("float32")
    return x if family.startswith(PIXELS) else x / 255.0


def flipped(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = out[flip, :, ::-1]
    return out


def weights_by_layer(model) -> dict[str, np.ndarray]:
    """Every weighted layer's weights as ``ORDER:LAYER/INDEX`` arrays, in layer order (the
    tfmot child loads them by name, or by order where tf_keras names a layer differently,
    as in MobileNetV3: ``Conv/BatchNorm`` in tf_keras, ``conv_bn`` in Keras 3)."""
    out = {}
    weighted = [layer for layer in model.layers if layer.get_weights()]
    for n, layer in enumerate(weighted):
        for i, w in enumerate(layer.get_weights()):
            out[f"{n:04d}:{layer.name}/{i}"] = w
    return out


def load_weights(model, saved) -> list[str]:
    """Set ``model``'s weights from :func:`weights_by_layer` arrays (a dict or an .npz): by
    layer name where the names agree, else by the weighted layer's order; shapes are checked
    either way. Returns the problems found (empty: every layer loaded)."""
    by_name: dict[str, dict[int, np.ndarray]] = {}
    by_order: dict[int, dict[int, np.ndarray]] = {}
    for key in (saved.files if hasattr(saved, "files") else saved):
        order, rest = key.split(":", 1)
        name, i = rest.rsplit("/", 1)
        by_name.setdefault(name, {})[int(i)] = saved[key]
        by_order.setdefault(int(order), {})[int(i)] = saved[key]
    weighted = [layer for layer in model.layers if layer.get_weights()]
    problems = []
    if len(weighted) != len(by_order):
        problems.append(f"{len(weighted)} weighted layers in the model, {len(by_order)} saved")
    for n, layer in enumerate(weighted):
        src = by_name.get(layer.name) or by_order.get(n, {})
        arrays = [src[i] for i in sorted(src)]
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(a.shape) for a in arrays] != shapes:
            problems.append(f"{layer.name}: saved {[a.shape for a in arrays]}, model {shapes}")
            continue
        layer.set_weights(arrays)
    return problems


def litert_accuracy(data: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from effkeras.runtime import LiteRTRunner

    probs = LiteRTRunner(data, kernels="builtin").predict(x)
    return float(np.mean(probs.argmax(-1) == y))


def file_contents(data: bytes) -> dict[str, int]:
    """Where an int8 file's bytes go: constant tensors, quantization parameters (a float32
    scale and an int64 zero point per channel, the flatbuffer's types), tensor names, rest."""
    from effkeras.convert import read_tflite

    m = read_tflite(data)
    const = sum(t.nbytes for t in m.tensors if t.is_constant)
    quant = 12 * sum(len((t.to_dict().get("quantization") or {}).get("scales") or []) for t in m.tensors)
    names = sum(len(t.name.encode()) for t in m.tensors)
    return {"constants": const, "quantization": quant, "names": names, "rest": len(data) - const - quant - names}


def float_ops(data: bytes) -> int:
    from effkeras.convert import read_tflite

    return len(read_tflite(data).float_ops())


# ---------------------------------------------------------------------------- one family (child)


def run_family(args) -> dict:
    """Steps 1-4 for ``args.one``; writes OUT/FAMILY.json and the .tflite files."""
    import keras

    from effkeras.convert import to_tflite
    from effkeras.quantize import quantize_model

    family = args.one
    data = np.load(args.npz)
    x, y = scale_images(family, data["x_train"]), data["y_train"]
    xt, yt = scale_images(family, data["x_test"]), data["y_test"]
    out_dir = args.out
    row: dict = {"family": family, "size": args.size, "train": len(x), "test": len(xt),
                 "float_epochs": args.float_epochs, "qat_epochs": args.qat_epochs}
    rng = np.random.default_rng(0)

    t0 = time.time()
    model = build(keras, family, args.size)
    row["params"] = int(model.count_params())
    model.compile(keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy", jit_compile=False)
    for _ in range(args.float_epochs):
        model.fit(flipped(x, rng), y, epochs=1, batch_size=args.batch_size, verbose=0)
    row["float_train_s"] = round(time.time() - t0, 1)
    row["float_keras_acc"] = float(np.mean(model.predict(xt, batch_size=256, verbose=0).argmax(-1) == yt))
    weights = [np.copy(w) for w in model.get_weights()]
    np.savez(os.path.join(out_dir, f"{family}_weights.npz"), **weights_by_layer(model))
    calib = x[:CALIBRATION]

    files = {}
    t0 = time.time()
    files["float"] = to_tflite(model)
    files["ptq"] = to_tflite(model, quantize="int8", representative_data=calib)
    row["convert_s"] = round(time.time() - t0, 1)

    t0 = time.time()
    try:
        qat = quantize_model(model, calibration_data=calib)
        qat.compile(keras.optimizers.Adam(args.qat_lr), "sparse_categorical_crossentropy", jit_compile=False)
        hist = qat.fit(flipped(x, np.random.default_rng(1)), y, epochs=args.qat_epochs, batch_size=args.batch_size, verbose=0)
        row["qat_loss"] = [float(v) for v in hist.history["loss"]]
        files["qat"] = to_tflite(qat, quantize="int8")
        row["qat_keras_acc"] = float(np.mean(qat.predict(xt, batch_size=256, verbose=0).argmax(-1) == yt))
    except Exception as exc:  # recorded: the table says which family failed and why
        row["qat_error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
    row["qat_s"] = round(time.time() - t0, 1)
    if not all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True)):
        row["qat_error"] = "quantize_model changed the float model's weights"

    for kind, blob in files.items():
        with open(os.path.join(out_dir, f"{family}_{kind}.tflite"), "wb") as f:
            f.write(blob)
        row[f"{kind}_bytes"] = len(blob)
        row[f"{kind}_acc"] = litert_accuracy(blob, xt, yt)
        if kind != "float":
            row[f"{kind}_float_ops"] = float_ops(blob)
    return row


def run_control(args) -> dict:
    """PTQ after one more float epoch: the float weights of ``args.control`` (FAMILY_weights.npz)
    trained ``--qat-epochs`` more in float with what the QAT epoch used (the same flipped
    images, Adam at ``--qat-lr``, batch), then converted with PTQ. QAT's epoch is also more
    training; against this control, QAT - PTQ is the quantization effect alone."""
    import keras

    from effkeras.convert import to_tflite

    family = args.control
    data = np.load(args.npz)
    x, y = scale_images(family, data["x_train"]), data["y_train"]
    xt, yt = scale_images(family, data["x_test"]), data["y_test"]
    model = build(keras, family, args.size)
    problems = load_weights(model, np.load(os.path.join(args.out, f"{family}_weights.npz")))
    if problems:
        raise RuntimeError(f"{family}: saved float weights do not fit: {problems[:3]}")
    t0 = time.time()
    model.compile(keras.optimizers.Adam(args.qat_lr), "sparse_categorical_crossentropy", jit_compile=False)
    model.fit(flipped(x, np.random.default_rng(1)), y, epochs=args.qat_epochs, batch_size=args.batch_size, verbose=0)
    blob = to_tflite(model, quantize="int8", representative_data=x[:CALIBRATION])
    return {"ptq_more_acc": litert_accuracy(blob, xt, yt), "ptq_more_float_acc": float(
        np.mean(model.predict(xt, batch_size=256, verbose=0).argmax(-1) == yt)), "control_s": round(time.time() - t0, 1)}


def run_tfmot(family: str, args, out_dir: str) -> dict:
    """Step 4 in a tf_keras child; the tfmot figures or its error."""
    cmd = [sys.executable, os.path.join(HERE, "_tfmot_applications.py"), args.npz, out_dir, "--family", family,
           "--size", str(args.size), "--epochs", str(args.qat_epochs), "--batch-size", str(args.batch_size),
           "--lr", str(args.qat_lr)]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    row: dict = {"tfmot_s": round(time.time() - t0, 1)}
    path = os.path.join(out_dir, f"{family}_tfmot.tflite")
    info = os.path.join(out_dir, f"{family}_tfmot.json")
    if proc.returncode != 0 or not os.path.isfile(path):
        err = os.path.isfile(info) and json.load(open(info)).get("error")
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        row["tfmot_error"] = err or (tail[-1][:400] if tail else f"exit {proc.returncode}")
        return row
    with open(path, "rb") as f:
        blob = f.read()
    data = np.load(args.npz)
    xt, yt = scale_images(family, data["x_test"]), data["y_test"]
    row.update(tfmot_bytes=len(blob), tfmot_acc=litert_accuracy(blob, xt, yt), tfmot_float_ops=float_ops(blob),
               tfmot_version=json.load(open(info)).get("tfmot"))
    return row


def time_files(family: str, out_dir: str, runs: int) -> dict:
    """Median LiteRT (XNNPACK, 1 thread) latency of every file of ``family``, interleaved."""
    from effkeras.bench import compare

    kinds = [k for k in ("float", "ptq", "qat", "tfmot") if os.path.isfile(os.path.join(out_dir, f"{family}_{k}.tflite"))]
    res = compare([os.path.join(out_dir, f"{family}_{k}.tflite") for k in kinds], "litert", runs=runs,
                  warmup=max(2, runs // 10), rounds=3)
    return {f"{k}_ms": round(r.latency_ms, 3) for k, r in zip(kinds, res, strict=True)}


# ---------------------------------------------------------------------------- report


def _acc(r: dict, kind: str) -> str:
    if f"{kind}_acc" in r:
        return f"{r[f'{kind}_acc']:.2%}"
    return "failed" if f"{kind}_error" in r else "-"


def markdown(rows: list[dict], args, header: list[str]) -> str:
    out = [f"## {TITLE}", "", *header, f"- command: `benchmarks/architectures.py {' '.join(args.argv)}`", ""]
    out += ["| family (params) | float | PTQ int8 | PTQ int8 after the QAT epoch in float | effkeras QAT int8 | "
            "tfmot QAT int8 | QAT - PTQ (same weights / same training) | "
            "QAT - tfmot | float / int8 KB (x) | float ops left PTQ / QAT / tfmot | LiteRT ms float / PTQ / QAT / tfmot |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        def d(a, b, r=r):
            return f"{100 * (r[f'{a}_acc'] - r[f'{b}_acc']):+.2f} pt" if f"{a}_acc" in r and f"{b}_acc" in r else "-"
        ratio = (f"{r['float_bytes'] / 1024:,.0f} / {r['qat_bytes'] / 1024:,.0f} ({r['qat_bytes'] / r['float_bytes']:.3f}x)"
                 if "qat_bytes" in r else f"{r['float_bytes'] / 1024:,.0f} / -")
        fops = " / ".join(str(r.get(f"{k}_float_ops", "-")) for k in ("ptq", "qat", "tfmot"))
        ms = " / ".join(f"{r[f'{k}_ms']:.2f}" if f"{k}_ms" in r else "-" for k in ("float", "ptq", "qat", "tfmot"))
        out.append(f"| {r['family']} ({r['params'] / 1e6:.2f} M) | {r['float_acc']:.2%} | {_acc(r, 'ptq')} | "
                   f"{_acc(r, 'ptq_more')} | {_acc(r, 'qat')} | {_acc(r, 'tfmot')} | {d('qat', 'ptq')} / "
                   f"{d('qat', 'ptq_more')} | {d('qat', 'tfmot')} | {ratio} | "
                   f"{fops} | {ms} |")
    out += [""]
    errors = [(r["family"], k, r[f"{k}_error"]) for r in rows for k in ("qat", "tfmot") if f"{k}_error" in r]
    if errors:
        out += ["Failures, as raised:", ""]
        out += [f"- {fam}, {'effkeras QAT' if k == 'qat' else 'tfmot QAT'}: `{e.replace('`', '')}`" for fam, k, e in errors]
        out += [""]
    contents = [(r["family"], r["contents"]) for r in rows if r.get("contents")]
    if contents:
        out += ["Where the effkeras QAT int8 file's bytes go (the size ratio's floor is 0.25x only when the "
                "weights are nearly all of the file):", "",
                "| family | file KB | weights | quantization parameters | tensor names | rest |",
                "|---|---:|---:|---:|---:|---:|"]
        for fam, c in contents:
            total = sum(c.values())
            out.append(f"| {fam} | {total / 1024:,.0f} | " + " | ".join(
                f"{c[k] / total:.1%}" for k in ("constants", "quantization", "names", "rest")) + " |")
        out += [""]
    budget = rows[0]
    out += [f"- Budget of this run: {budget['train']:,} training and {budget['test']:,} test images at "
            f"{budget['size']} px, {budget['float_epochs']} float epochs and {budget['qat_epochs']} QAT epoch(s) "
            "a family, on the machine above. At this budget the float models are far from trained, so the QAT "
            "columns also include the extra training of the QAT epoch: a gain of QAT over PTQ here is not a "
            "measure of quantization loss alone. Standard error of an accuracy on "
            f"{budget['test']:,} images: up to {50 / budget['test'] ** 0.5:.1f} points.",
            "- Training time per family (s): "
            + ", ".join(f"{r['family']} float {r['float_train_s']:.0f} / QAT {r.get('qat_s', 0):.0f} / "
                        f"tfmot {r.get('tfmot_s', 0):.0f}" for r in rows) + "."]
    if getattr(args, "run_command", None):
        out += [f"- The rows were measured by `{args.run_command}`."]
    return "\n".join(out) + "\n"


def headline(rows: list[dict]) -> list[dict]:
    def verdict(ok: list[bool]) -> str:
        return "yes" if ok and all(ok) else ("partly" if any(ok) else "no")

    both = [r for r in rows if "qat_acc" in r]
    vs_ptq = [100 * (r["qat_acc"] - r["ptq_acc"]) for r in both]
    vs_tf = [100 * (r["qat_acc"] - r["tfmot_acc"]) for r in both if "tfmot_acc" in r]
    ratio = [r["qat_bytes"] / r["float_bytes"] for r in both]
    full = [r for r in both if r.get("qat_float_ops") == 0]
    out = [
        results.headline_row(
            "effkeras QAT full int8 on every family", f"{len(full)} of {len(rows)} families",
            f"all {len(FAMILIES)}", verdict([r.get("qat_float_ops") == 0 for r in rows])),
        results.headline_row(
            "QAT int8 vs PTQ int8 of the same float weights (the QAT epoch is also more training)",
            f"{sum(v >= 0 for v in vs_ptq)} of {len(vs_ptq)} at least PTQ ({min(vs_ptq):+.2f} to {max(vs_ptq):+.2f} pt)"
            if vs_ptq else "no QAT result", "at least PTQ on every family", verdict([v >= 0 for v in vs_ptq])),
    ]
    more = [100 * (r["qat_acc"] - r["ptq_more_acc"]) for r in both if "ptq_more_acc" in r]
    if more:
        out.append(results.headline_row(
            "QAT int8 vs PTQ int8 after the same extra float training",
            f"{sum(v >= 0 for v in more)} of {len(more)} at least PTQ ({min(more):+.2f} to {max(more):+.2f} pt)",
            "at least PTQ on every family", verdict([v >= 0 for v in more])))
    n_tf = sum("tfmot_acc" in r for r in rows)
    out.append(results.headline_row(
        "QAT int8 vs tfmot QAT int8",
        (f"{sum(v >= 0 for v in vs_tf)} of {len(vs_tf)} at least tfmot ({min(vs_tf):+.2f} to {max(vs_tf):+.2f} pt); "
         if vs_tf else "") + f"tfmot failed on {len(rows) - n_tf} of {len(rows)}",
        "at least tfmot where tfmot runs", verdict([v >= 0 for v in vs_tf])))
    if ratio:
        out.append(results.headline_row(
            "int8 size vs float .tflite", f"{min(ratio):.3f}-{max(ratio):.3f}x", f"<= {SIZE_GOAL}x",
            verdict([v <= SIZE_GOAL for v in ratio])))
    return out


# ---------------------------------------------------------------------------- main


def load_data(args) -> str:
    """CIFAR-10 (class-balanced subsets, uint8) into a .npz the children read."""
    from survey_models import load_cifar10_uint8

    x, y, xt, yt = load_cifar10_uint8(args.data, args.train, args.test)
    if args.size != 32:
        import tensorflow as tf

        x = tf.image.resize(x, (args.size, args.size)).numpy().round().clip(0, 255).astype("uint8")
        xt = tf.image.resize(xt, (args.size, args.size)).numpy().round().clip(0, 255).astype("uint8")
    path = os.path.join(args.out, "data.npz")
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES), metavar="FAMILY")
    p.add_argument("--data", default=default_data_dir(), help="folder with cifar10_jpg/ (default ../shared/data)")
    p.add_argument("--size", type=int, default=32, help="input pixels (32-96)")
    p.add_argument("--train", type=int, default=5000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--float-epochs", type=int, default=3)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--runs", type=int, default=30, help="timed LiteRT inferences a file")
    p.add_argument("--no-tfmot", action="store_true")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "architectures"))
    p.add_argument("--resume", action="store_true", help="keep the families already in OUT")
    p.add_argument("--merge", action="store_true", help="only render the rows already in OUT")
    p.add_argument("--run-command", help="with --merge: the command that measured the rows (for the notes)")
    p.add_argument("--quick", action="store_true", help="smoke: 2 families, 256/128 images, 1 epoch")
    p.add_argument("--results", help="write the results file here")
    p.add_argument("--control", metavar="FAMILY",
                   help="add to FAMILY's finished row in OUT: PTQ after the QAT epoch's training in float")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--npz", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = argv
    if args.control:  # adds the control to a finished family's row
        path = os.path.join(args.out, f"{args.control}.json")
        if not os.path.isfile(path) or not os.path.isfile(os.path.join(args.out, f"{args.control}_weights.npz")):
            p.error(f"--control {args.control}: no finished row and float weights of that family in {args.out} "
                    "(run the family first, or pass its --out)")
        if args.npz is None:
            args.npz = os.path.join(args.out, "data.npz")
        extra = run_control(args)
        row = json.load(open(path))
        row.update(extra)
        with open(path, "w") as f:
            json.dump(row, f)
        print(json.dumps({"family": args.control, **extra}), flush=True)
        return 0
    if args.one:
        os.makedirs(args.out, exist_ok=True)
        row = run_family(args)
        with open(os.path.join(args.out, f"{args.one}.json"), "w") as f:
            json.dump(row, f)
        return 0
    if not 32 <= args.size <= 96:
        p.error(f"--size must be 32 to 96 pixels. Received: {args.size}")
    if args.quick:
        args.families = [f for f in args.families if f in ("MobileNet", "MobileNetV3SmallMinimalistic")] or args.families[:1]
        args.train, args.test, args.float_epochs, args.qat_epochs, args.runs = 256, 128, 1, 1, 5
        if args.out == os.path.join(ROOT, "build", "architectures"):
            args.out = tempfile.mkdtemp(prefix="effkeras_arch_")
    os.makedirs(args.out, exist_ok=True)
    header = machine()
    print("\n".join(header), flush=True)
    if not args.merge:
        try:
            args.npz = load_data(args)
        except FileNotFoundError as exc:
            p.error(f"{exc}: pass --data DIR, the folder holding cifar10_jpg/ (see ../shared/data/README.md)")
        for family in args.families:
            done = os.path.join(args.out, f"{family}.json")
            if args.resume and os.path.isfile(done):
                continue
            t0 = time.time()
            cmd = [sys.executable, os.path.abspath(__file__), "--one", family, "--npz", args.npz, "--out", args.out,
                   "--size", str(args.size), "--float-epochs", str(args.float_epochs),
                   "--qat-epochs", str(args.qat_epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                   "--qat-lr", str(args.qat_lr)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{family}: the effkeras child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}",
                      file=sys.stderr, flush=True)
                continue
            control = subprocess.run([*cmd[:2], "--control", family, *cmd[4:]], capture_output=True, text=True)
            if control.returncode != 0:
                print(f"{family}: the control child failed (exit {control.returncode}):\n{control.stderr[-2000:]}",
                      file=sys.stderr, flush=True)
            with open(done) as f:
                row = json.load(f)
            if not args.no_tfmot:
                row.update(run_tfmot(family, args, args.out))
            row.update(time_files(family, args.out, args.runs))
            qat_file = os.path.join(args.out, f"{family}_qat.tflite")
            if os.path.isfile(qat_file):
                row["contents"] = file_contents(open(qat_file, "rb").read())
            row["wall_s"] = round(time.time() - t0, 1)
            with open(done, "w") as f:
                json.dump(row, f)
            print(json.dumps(row), flush=True)
    rows = [json.load(open(os.path.join(args.out, f"{f}.json"))) for f in FAMILIES
            if f in args.families and os.path.isfile(os.path.join(args.out, f"{f}.json"))]
    for row in rows:
        qat_file = os.path.join(args.out, f"{row['family']}_qat.tflite")
        if "contents" not in row and os.path.isfile(qat_file):
            row["contents"] = file_contents(open(qat_file, "rb").read())
    if not rows:
        print("architectures: error: no family finished", file=sys.stderr)
        return 1
    text = markdown(rows, args, header)
    print(text)
    if args.results:
        results.save(args.results, results.build(
            "architectures", title=TITLE, markdown=text, headline=headline(rows), raw=rows,
            script_command="benchmarks/architectures.py " + " ".join(argv)))
    return 0 if len(rows) == len(args.families) else 1


if __name__ == "__main__":
    sys.exit(main())
