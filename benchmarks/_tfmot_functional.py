"""Child process of the benchmark suites: tfmot QAT of any plain Keras 3 functional model.

tensorflow-model-optimization needs Keras 2 (``tf_keras``, selected before TensorFlow is
imported), so the suites run it here, on the same float model effkeras quantizes: the parent
passes the Keras 3 model's ``get_config()`` (JSON), each layer's weights and the QAT images
in a .npz; this rebuilds the graph layer by layer in tf_keras, checks that it computes the
same logits on probe images (exit 3 if not), appends a softmax (as the
effkeras export does), runs ``tfmot.quantization.keras.quantize_model`` and ``fit`` with the
given epochs/batch/learning rate, and writes ``tfmot_qat_int8.tflite`` (int8 input and
output) and ``tfmot.json``.

Layers it rebuilds: InputLayer, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Add,
AveragePooling2D, MaxPooling2D, GlobalAveragePooling2D, Flatten, Dropout, Dense, Softmax;
anything else exits with code 2 naming the layer.

    TF_USE_LEGACY_KERAS=1 python benchmarks/_tfmot_functional.py IN.npz OUT_DIR --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Keras 3 config keys each layer class keeps when rebuilt in tf_keras
KEYS = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "dilation_rate", "use_bias", "activation"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate", "use_bias",
                        "activation"),
    "BatchNormalization": ("axis", "momentum", "epsilon", "center", "scale"),
    "ReLU": ("max_value", "negative_slope", "threshold"),
    "Add": (),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "GlobalAveragePooling2D": (),
    "Flatten": (),
    "Dropout": ("rate",),
    "Dense": ("units", "activation", "use_bias"),
    "Softmax": ("axis",),
}


def _inbound(layer_cfg) -> list[str]:
    """Names of the layers feeding ``layer_cfg`` (Keras 3 functional config format)."""
    names = []
    for node in layer_cfg.get("inbound_nodes", []):
        for arg in node.get("args", []):
            for t in arg if isinstance(arg, list) else [arg]:
                if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__":
                    names.append(t["config"]["keras_history"][0])
    return names


def rebuild(tf_keras, config: dict):
    """The tf_keras twin of a Keras 3 functional model config (same layer names)."""
    L = tf_keras.layers
    tensors = {}
    for lc in config["layers"]:
        cls, cfg = lc["class_name"], lc["config"]
        name = cfg["name"]
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            tensors[name] = L.Input(tuple(shape[1:]), name=name)
            continue
        if cls not in KEYS:
            raise SystemExit(f"_tfmot_functional: layer {name!r} is a {cls}, which this child cannot rebuild "
                             f"(supported: {', '.join(KEYS)})")
        kwargs = {k: cfg[k] for k in KEYS[cls] if k in cfg}
        if isinstance(kwargs.get("activation"), dict):
            kwargs["activation"] = kwargs["activation"].get("config", {}).get("name", "linear")
        layer = getattr(L, cls)(name=name, **kwargs)
        inputs = [tensors[n] for n in _inbound(lc)]
        tensors[name] = layer(inputs if cls == "Add" else inputs[0])
    ins = [tensors[n[0]] for n in config["input_layers"]] if isinstance(config["input_layers"][0], list) \
        else [tensors[config["input_layers"][0]]]
    outs = [tensors[n[0]] for n in config["output_layers"]] if isinstance(config["output_layers"][0], list) \
        else [tensors[config["output_layers"][0]]]
    return tf_keras.Model(ins[0], outs[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("npz")
    parser.add_argument("out_dir")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0, help="tf_keras seed (shuffling) of this QAT run")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one weight scale per kernel (Default8BitQuantizeScheme(disable_per_axis=True))")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    data = np.load(args.npz)
    config = json.loads(str(data["config"]))
    tf_keras.utils.set_random_seed(args.seed)
    body = rebuild(tf_keras, config)
    for layer in body.layers:
        n = int(data[f"n::{layer.name}"]) if f"n::{layer.name}" in data else 0
        if n:
            layer.set_weights([data[f"w::{layer.name}::{i}"] for i in range(n)])
    # the rebuilt float model must compute what the parent's does, or the comparison is void
    diff = float(np.max(np.abs(body.predict(data["probe_x"], verbose=0) - data["probe_logits"])))
    if diff > 1e-3:
        print(f"_tfmot_functional: the tf_keras rebuild differs from the Keras 3 model by {diff:.3g} "
              "on the probe images; not comparing", file=sys.stderr)
        return 3
    model = tf_keras.Model(body.input, tf_keras.layers.Softmax(name="softmax")(body.output))
    if args.per_tensor:
        q = tfmot.quantization.keras
        qat = q.quantize_apply(q.quantize_annotate_model(model),
                               scheme=q.default_8bit.Default8BitQuantizeScheme(disable_per_axis=True))
    else:
        qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile(tf_keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy")
    t = time.time()
    for e in range(args.epochs):
        qat.fit(data[f"x{e}"], data["y"], batch_size=args.batch_size, epochs=1, verbose=0)
    seconds = time.time() - t
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    tflite = converter.convert()
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "tfmot_qat_int8.tflite"), "wb") as f:
        f.write(tflite)
    with open(os.path.join(args.out_dir, "tfmot.json"), "w") as f:
        json.dump({"qat_seconds": round(seconds, 1), "tfmot": tfmot.__version__,
                   "tf_keras": tf_keras.__version__}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
