"""Child process of benchmarks/architectures.py: tfmot QAT of the same keras.applications family.

tfmot only works with Keras 2 (``tf_keras``), selected before TensorFlow is imported, so it
runs in its own process. It builds the same family with ``tf_keras.applications`` (the
builder table and BN momentum of architectures.py), loads the float weights the parent
trained layer by layer by name (``LAYER/INDEX`` arrays in FAMILY_weights.npz), runs
``tfmot.quantization.keras.quantize_model``, trains it as the parent trains the effkeras
QAT model (same images, flips, epochs, optimizer, batch) and converts it with
``Optimize.DEFAULT`` (the fake-quant ranges are in the graph). It writes
OUT/FAMILY_tfmot.tflite and OUT/FAMILY_tfmot.json; when tfmot cannot quantize the family,
the JSON holds the error and the process exits 1.

    TF_USE_LEGACY_KERAS=1 python benchmarks/_tfmot_applications.py DATA.npz OUT --family MobileNet --size 32
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("npz")
    p.add_argument("out_dir")
    p.add_argument("--family", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from architectures import build, flipped, load_weights, scale_images

    info_path = os.path.join(args.out_dir, f"{args.family}_tfmot.json")
    info = {"tfmot": tfmot.__version__, "tf_keras": tf_keras.__version__}
    data = np.load(args.npz)
    x, y = scale_images(args.family, data["x_train"]), data["y_train"]
    saved = np.load(os.path.join(args.out_dir, f"{args.family}_weights.npz"))
    model = build(tf_keras, args.family, args.size)
    problems = load_weights(model, saved)
    if problems:
        info["error"] = f"float weights do not fit the tf_keras model: {'; '.join(problems[:3])}"
        json.dump(info, open(info_path, "w"))
        return 1
    try:
        qat = tfmot.quantization.keras.quantize_model(model)
    except Exception as exc:  # tfmot's own refusal: the parent's table names it
        info["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        json.dump(info, open(info_path, "w"))
        return 1
    qat.compile(tf_keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy")
    qat.fit(flipped(x, np.random.default_rng(1)), y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        tflite = converter.convert()
    except Exception as exc:
        info["error"] = f"conversion: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        json.dump(info, open(info_path, "w"))
        return 1
    with open(os.path.join(args.out_dir, f"{args.family}_tfmot.tflite"), "wb") as f:
        f.write(tflite)
    json.dump(info, open(info_path, "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
