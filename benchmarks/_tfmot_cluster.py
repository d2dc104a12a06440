"""Child process of benchmarks/below_int8_train.py: the same clustering run with
tensorflow-model-optimization.

tfmot only works with Keras 2 (``tf_keras``), which must be selected before TensorFlow is
imported, so it runs in its own process (``TF_USE_LEGACY_KERAS=1``). The parent passes the
training images and the float ResNet-8's weights in a temporary .npz (:func:`input_arrays`);
this process rebuilds the same folded ResNet-8 in tf_keras (Conv2D with bias and fused ReLU,
no BatchNormalization, the parent's layer names), loads the weights and follows the parent's
recipe with tfmot's API:

1. ``tfmot.clustering.keras.cluster_weights`` layer by layer (``clone_model`` with a
   ``clone_function``, as tfmot documents): KMEANS_PLUS_PLUS, ``k`` centroids per output
   channel on the convolutions, ``k_edge`` per channel on ``stem``, ``k_edge`` per tensor on
   ``logits`` (tfmot's k-means++ only seeds the centroids: no Lloyd iterations);
2. fine-tuned ``--epochs`` epochs as the parent: a fresh ``survey_models.augment`` epoch at a
   time (``np.random.default_rng(seed)``), inputs ``x / 127.5 - 1``, Adam with
   ``CosineDecay(lr, all steps, alpha=0.05)``, batch 128, sparse cross-entropy on logits;
3. ``strip_clustering``; int8 post-training quantization with ``tf.lite`` (``xcal`` for
   calibration, softmax appended, int8 input and output, TFLITE_BUILTINS_INT8, tensor names
   stripped with effkeras) -> ``tfmot_cluster_ptq.tflite``;
4. with ``--cqat-epochs`` > 0: cluster-preserving QAT (``quantize_annotate_model`` +
   ``quantize_apply`` with ``Default8BitClusterPreserveQuantizeScheme``) of the stripped
   model with the softmax (trained with cross-entropy on the probabilities), the same
   optimizer recipe at ``lr / 10``, converted (int8 I/O, no representative data: the ranges
   are in the graph) -> ``tfmot_cqat.tflite``.

Seen with tfmot 0.8.1 / TF 2.21 on this model (512-image run): every layer wraps (per
channel too); tf.lite quantizes the FULLY_CONNECTED filter per channel in the PTQ file (10
scales: the per-tensor clustered 16 values stay <= 16 a row), per tensor in the CQAT file, and
the CQAT file has one extra QUANTIZE (after the average pool). CQAT logs "Gradients do not
exist for variables [... /kernel:0]": its kernels are rebuilt from the centroids, which train.

``tfmot_cluster.json`` holds the per-epoch loss/accuracy and seconds, seconds per phase, the
unique values per output channel of each kernel after the strip and of each int8 filter in
the two files, the versions, and the text of any error (then the exit status is 1).

    TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/_tfmot_cluster.py IN.npz OUT_DIR \\
        --epochs 6 --lr 3e-4 --k 8 --k-edge 16 --cqat-epochs 1 --seed 0

From the parent (Keras 3, ``float_model`` the rebuilt float ResNet-8)::

    np.savez(path, **input_arrays(float_model, xtr, ytr, xtr[:200]))
    argv, env = child_command(path, out_dir, epochs=..., lr=..., cqat_epochs=...)
    subprocess.run(argv, env=env, check=False)   # then read out_dir/tfmot_cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = ("stem", "s0_a", "s0_b", "s1_a", "s1_b", "s1_proj", "s2_a", "s2_b", "s2_proj", "logits")
EDGE_PER_CHANNEL = "stem"  # k_edge centroids per output channel
EDGE_PER_TENSOR = "logits"  # k_edge centroids for the whole kernel (int8 dense: one scale)
WIDTHS = (16, 32, 64)
BATCH = 128
ALPHA = 0.05


# ---------------------------------------------------------------------------- for the parent


def input_arrays(model, xtr, ytr, xcal) -> dict:
    """The arrays of this child's IN.npz: ``xtr`` (uint8 N,32,32,3), ``ytr`` (int64), ``xcal``
    (uint8) and ``NAME/kernel``, ``NAME/bias`` of each layer of :data:`LAYERS` of ``model`` (the
    parent's Keras 3 ``resnet8_folded``), in Keras layout."""
    import numpy as np

    out = {"xtr": np.asarray(xtr, np.uint8), "ytr": np.asarray(ytr, np.int64),
           "xcal": np.asarray(xcal, np.uint8)}
    for name in LAYERS:
        weights = model.get_layer(name).get_weights()
        if len(weights) != 2:
            raise ValueError(f"layer {name!r} has {len(weights)} weights; expected kernel and bias "
                             "(the folded ResNet-8 of below_int8_train.resnet8_folded)")
        out[f"{name}/kernel"], out[f"{name}/bias"] = (np.asarray(w, np.float32) for w in weights)
    return out


def child_command(in_npz: str, out_dir: str, *, epochs: int, lr: float, k: int = 8, k_edge: int = 16,
                  cqat_epochs: int = 0, seed: int = 0, python: str | None = None) -> tuple[list[str], dict]:
    """``(argv, env)`` that run this child (``env``: the caller's with ``TF_USE_LEGACY_KERAS=1``)."""
    argv = [python or sys.executable, os.path.join(HERE, "_tfmot_cluster.py"), in_npz, out_dir,
            "--epochs", str(epochs), "--lr", repr(float(lr)), "--k", str(k), "--k-edge", str(k_edge),
            "--cqat-epochs", str(cqat_epochs), "--seed", str(seed)]
    return argv, {**os.environ, "TF_USE_LEGACY_KERAS": "1"}


# ---------------------------------------------------------------------------- in the child


def resnet8_folded(tf_keras, widths=WIDTHS):
    """below_int8_train.resnet8_folded in tf_keras: Conv2D (bias) + ReLU, logits out."""
    layers = tf_keras.layers

    def conv(x, f, k=3, s=1, relu=True, name=None):
        return layers.Conv2D(f, k, strides=s, padding="same", activation="relu" if relu else None,
                             name=name)(x)

    inp = tf_keras.Input((32, 32, 3), name="image")
    x = conv(inp, widths[0], name="stem")
    for i, f in enumerate(widths):
        s = 1 if i == 0 else 2
        y = conv(x, f, s=s, name=f"s{i}_a")
        y = conv(y, f, relu=False, name=f"s{i}_b")
        if i > 0:
            x = conv(x, f, k=1, s=s, relu=False, name=f"s{i}_proj")
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.AveragePooling2D(int(x.shape[1]))(x)
    x = layers.Flatten()(x)
    out = layers.Dense(10, name="logits")(x)
    return tf_keras.Model(inp, out, name="resnet8_folded")


def with_softmax(tf_keras, model):
    out = tf_keras.layers.Softmax(name="softmax")(model.output)
    return tf_keras.Model(model.input, out, name=model.name + "_softmax")


def scale(x_u8):
    import numpy as np

    return x_u8.astype(np.float32) / 127.5 - 1.0


def max_unique_per_channel(kernel, axis: int = -1) -> int:
    """Most distinct values in one output channel of ``kernel`` (``axis``: the channel axis)."""
    import numpy as np

    k = np.moveaxis(np.asarray(kernel), axis, 0).reshape(np.shape(kernel)[axis], -1)
    return int(max(len(np.unique(row)) for row in k))


def tflite_filters(tflite: bytes) -> list[dict]:
    """Each CONV_2D / FULLY_CONNECTED filter (op input 1) of ``tflite``: shape, distinct int8
    values in its worst output channel (axis 0) and in all, number of scales."""
    from effkeras.convert import read_tflite

    m = read_tflite(tflite)
    out = []
    for op in m.ops:
        if op.name not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        t = m.tensors[op.inputs[1]]
        q = m.tensor_data(t)
        out.append({"op": op.name, "shape": [int(d) for d in q.shape], "dtype": str(q.dtype),
                    "max_unique_per_channel": max_unique_per_channel(q, 0),
                    "unique": int(len(set(q.ravel().tolist()))),
                    "scales": int(len(t.quantization.scales)) if t.quantization is not None else 0})
    return out


def train(tf_keras, model, x_u8, y, epochs: int, lr: float, rng, log: list, from_logits: bool) -> None:
    """``epochs`` epochs of the parent's recipe, one freshly augmented epoch a ``fit``."""
    import numpy as np
    import survey_models as sm

    steps = epochs * int(np.ceil(len(x_u8) / BATCH))
    schedule = tf_keras.optimizers.schedules.CosineDecay(lr, steps, alpha=ALPHA)
    model.compile(optimizer=tf_keras.optimizers.Adam(schedule),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])
    for e in range(epochs):
        t = time.time()
        h = model.fit(scale(sm.augment(x_u8, rng)), y, batch_size=BATCH, epochs=e + 1, initial_epoch=e,
                      verbose=0, shuffle=True)
        row = {k: float(v[-1]) for k, v in h.history.items()} | {"epoch": e + 1, "s": time.time() - t}
        log.append(row)
        print(f"epoch {e + 1}/{epochs} {row['s']:.0f} s " + " ".join(
            f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "s")), flush=True)


def convert(tf, model, representative=None) -> bytes:
    """int8 .tflite of ``model`` with int8 input and output: post-training quantization with
    ``representative`` (builtin int8 kernels only), or, without it, a QAT model converted from
    the ranges in its graph (tf.lite refuses TFLITE_BUILTINS_INT8 without representative data)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative is not None:
        def data():
            for i in range(len(representative)):
                yield [representative[i:i + 1]]
        converter.representative_dataset = data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def error_text(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(tb[-6:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("npz")
    parser.add_argument("out_dir")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--k", type=int, default=8, help="centroids per output channel")
    parser.add_argument("--k-edge", type=int, default=16, help="centroids on stem (per channel), logits (all)")
    parser.add_argument("--cqat-epochs", type=int, default=0, help="cluster-preserving QAT epochs (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("tensorflow was imported before TF_USE_LEGACY_KERAS=1 was set; run this file as a "
                         "child process: TF_USE_LEGACY_KERAS=1 python benchmarks/_tfmot_cluster.py ...")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sys.path.insert(0, HERE)
    from effkeras.convert import strip_tensor_names

    os.makedirs(args.out_dir, exist_ok=True)
    info: dict = {"args": vars(args), "tfmot": tfmot.__version__, "tensorflow": tf.__version__,
                  "tf_keras": tf_keras.__version__, "seconds": {}, "errors": {}}

    def save():
        with open(os.path.join(args.out_dir, "tfmot_cluster.json"), "w") as f:
            json.dump(info, f, indent=1)

    def phase(name, fn):
        """Run ``fn``, timing it; an exception is recorded under ``errors[name]`` (None back)."""
        t = time.time()
        try:
            return fn()
        except Exception as exc:  # report, never hide
            info["errors"][name] = error_text(exc)
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None
        finally:
            info["seconds"][name] = time.time() - t
            save()

    started = time.time()
    data = np.load(args.npz)
    xtr, ytr, xcal = data["xtr"], data["ytr"].astype(np.int64), data["xcal"]
    info["n_train"], info["n_cal"] = int(len(xtr)), int(len(xcal))
    clustering = tfmot.clustering.keras
    kmeanspp = clustering.CentroidInitialization.KMEANS_PLUS_PLUS

    def build():
        tf_keras.utils.set_random_seed(args.seed)
        model = resnet8_folded(tf_keras)
        for name in LAYERS:
            model.get_layer(name).set_weights([data[f"{name}/kernel"], data[f"{name}/bias"]])
        return model

    def cluster_layer(layer):
        if layer.name == EDGE_PER_TENSOR:
            return clustering.cluster_weights(layer, number_of_clusters=args.k_edge,
                                              cluster_centroids_init=kmeanspp, cluster_per_channel=False)
        if layer.name in LAYERS:
            k = args.k_edge if layer.name == EDGE_PER_CHANNEL else args.k
            return clustering.cluster_weights(layer, number_of_clusters=k, cluster_centroids_init=kmeanspp,
                                              cluster_per_channel=True)
        return layer

    def cluster(model):
        clustered = tf_keras.models.clone_model(model, clone_function=cluster_layer)
        info["wrapped_layers"] = {la.layer.name: type(la).__name__ for la in clustered.layers
                                  if type(la).__name__.startswith("ClusterWeights")}
        missing = sorted(set(LAYERS) - set(info["wrapped_layers"]))
        if missing:  # tfmot leaves a Conv2D with too few weights a channel unwrapped
            raise ValueError(f"cluster_weights left {missing} unclustered (k={args.k}, k_edge={args.k_edge})")
        return clustered

    def accuracy(model):
        p = model.predict(scale(xtr[:512]), batch_size=256, verbose=0)
        return float(np.mean(np.argmax(p, -1) == ytr[:512]))

    rng = np.random.default_rng(args.seed)
    float_model = phase("build", build)
    if float_model is not None:
        # before clustering: tfmot's wrapper replaces the wrapped layer's kernel attribute, so the
        # float model no longer runs once its layers are wrapped
        info["train_accuracy_float_512"] = accuracy(float_model)
    clustered = phase("cluster", lambda: cluster(float_model)) if float_model is not None else None
    stripped = None
    if clustered is not None:
        info["train_accuracy_clustered_before_512"] = accuracy(clustered)
        info["epochs"] = []
        done = phase("fine_tune", lambda: train(tf_keras, clustered, xtr, ytr, args.epochs, args.lr, rng,
                                                info["epochs"], from_logits=True) or True)
        if done:
            stripped = phase("strip", lambda: clustering.strip_clustering(clustered))
    if stripped is not None:
        info["train_accuracy_stripped_512"] = accuracy(stripped)
        info["max_unique_per_channel"] = {
            name: max_unique_per_channel(stripped.get_layer(name).get_weights()[0]) for name in LAYERS}
        info["unique_per_tensor"] = {
            name: int(len(np.unique(stripped.get_layer(name).get_weights()[0]))) for name in LAYERS}
        print(f"after strip: unique values a channel {info['max_unique_per_channel']}", flush=True)

        def ptq():
            raw = convert(tf, with_softmax(tf_keras, stripped), scale(xcal))
            out = strip_tensor_names(raw)
            with open(os.path.join(args.out_dir, "tfmot_cluster_ptq.tflite"), "wb") as f:
                f.write(out)
            info["ptq"] = {"bytes": len(out), "bytes_with_names": len(raw), "filters": tflite_filters(out)}

        phase("ptq_convert", ptq)
        if args.cqat_epochs > 0:
            quant = tfmot.quantization.keras
            scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme()
            cqat = phase("cqat_apply", lambda: quant.quantize_apply(
                quant.quantize_annotate_model(with_softmax(tf_keras, stripped)), scheme))
            if cqat is not None:
                info["cqat_epochs"] = []
                done = phase("cqat_train", lambda: train(tf_keras, cqat, xtr, ytr, args.cqat_epochs,
                                                         args.lr / 10, rng, info["cqat_epochs"],
                                                         from_logits=False) or True)
                if done:
                    info["train_accuracy_cqat_512"] = accuracy(cqat)

                    def cqat_convert():
                        raw = convert(tf, cqat)
                        out = strip_tensor_names(raw)
                        with open(os.path.join(args.out_dir, "tfmot_cqat.tflite"), "wb") as f:
                            f.write(out)
                        info["cqat"] = {"bytes": len(out), "bytes_with_names": len(raw),
                                        "filters": tflite_filters(out)}

                    phase("cqat_convert", cqat_convert)
    info["seconds"]["total"] = time.time() - started
    save()
    if info["errors"]:
        for name, text in info["errors"].items():
            print(f"--- {name}\n{text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
