"""Child process of bench/survey.py: tfmot QAT of an effkeras-pruned survey student.

Both libraries can quantize the same (channel-pruned, stripped) Conv->BN->ReLU float model
with QAT, so the survey suite runs tensorflow-model-optimization on it too, with the same
data, epochs, batch and learning rate as the effkeras QAT stage. tfmot needs Keras 2
(``tf_keras``), selected before TensorFlow is imported, hence this separate process. The
parent passes the filter counts, the float weights (in layer order) and the QAT data in a
.npz; this writes ``tfmot_qat_int8.tflite`` (int8 input and output) and ``tfmot.json``.

    TF_USE_LEGACY_KERAS=1 python bench/_tfmot_survey.py IN.npz OUT_DIR --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build(tf_keras, filters, dense):
    """The survey CNN (Conv without bias -> BN -> ReLU) with explicit sizes, ending in softmax."""
    L = tf_keras.layers
    inp = L.Input((32, 32, 3))
    x = inp
    for i, f in enumerate(filters):
        x = L.Conv2D(int(f), 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        if i % 2 == 1:
            x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.2)(x)
    x = L.Dense(int(dense), activation="relu")(x)
    x = L.Dropout(0.2)(x)
    x = L.Dense(10)(x)
    return tf_keras.Model(inp, L.Softmax()(x))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("npz")
    parser.add_argument("out_dir")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    data = np.load(args.npz)
    tf_keras.utils.set_random_seed(0)
    model = build(tf_keras, data["filters"], int(data["dense"]))
    model.set_weights([data[f"w{i}"] for i in range(int(data["n_weights"]))])
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
