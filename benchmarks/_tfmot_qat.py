"""Child process of benchmarks/qat.py: the same QAT run with tensorflow-model-optimization.

tfmot only works with Keras 2 (``tf_keras``), which must be selected before TensorFlow is
imported, so it runs in its own process (``TF_USE_LEGACY_KERAS=1``). The parent passes the
training data and the trained float weights in a temporary .npz; this process rebuilds the
same architecture in tf_keras, loads the weights, runs ``tfmot.quantization.keras.
quantize_model``, trains it as the parent trains the effkeras QAT model, converts it to
int8 (no representative data: the fake-quant ranges are in the graph) and writes the
.tflite plus a JSON of step times. Float and QAT training steps are timed interleaved.

    TF_USE_LEGACY_KERAS=1 python benchmarks/_tfmot_qat.py IN.npz OUT_DIR --arch cnn --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("npz")
    parser.add_argument("out_dir")
    parser.add_argument("--arch", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--timing-steps", type=int, default=40)
    parser.add_argument("--timing-rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _qat_models import BUILDERS, median, timed_steps

    data = np.load(args.npz)
    x, y = data["x_train"], data["y_train"]
    weights = [data[f"w{i}"] for i in range(int(data["n_weights"]))]
    build = BUILDERS[args.arch]

    def float_model():
        tf_keras.utils.set_random_seed(0)
        model = build(tf_keras, x.shape[1:])
        model.set_weights(weights)
        return model

    def qat_model():
        return tfmot.quantization.keras.quantize_model(float_model())

    # Step time, float vs QAT, interleaved in the same process.
    float_ms, qat_ms = [], []
    for _ in range(args.timing_rounds):
        float_ms += timed_steps(tf_keras, float_model, x, y, args.timing_steps, args.batch_size)
        qat_ms += timed_steps(tf_keras, qat_model, x, y, args.timing_steps, args.batch_size)

    qat = qat_model()
    qat.compile(tf_keras.optimizers.Adam(args.lr), "sparse_categorical_crossentropy")
    qat.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    tflite = converter.convert()
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "tfmot_qat.tflite"), "wb") as f:
        f.write(tflite)
    with open(os.path.join(args.out_dir, "tfmot.json"), "w") as f:
        json.dump({"float_ms": median(float_ms), "qat_ms": median(qat_ms),
                   "tfmot": tfmot.__version__, "tf_keras": tf_keras.__version__}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
