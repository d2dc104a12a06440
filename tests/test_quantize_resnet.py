"""QAT on ResNet-style graphs: a linear conv whose sole consumer is not batch norm."""

from __future__ import annotations

import numpy as np

from effkeras.convert import read_tflite, to_tflite
from effkeras.quantize import quantize_model
from effkeras.runtime import LiteRTRunner


def _resnet_block_model():
    import keras

    keras.utils.set_random_seed(5)
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(inp)))
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(y))
    s = L.Conv2D(8, 1)(x)  # linear projection shortcut feeding Add directly (no BN)
    x = L.ReLU()(L.Add()([y, s]))
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out)


def test_linear_conv_into_add_quantizes_and_matches_litert(digits):
    model = _resnet_block_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits[0], digits[1], epochs=2, batch_size=64, verbose=0)
    qat = quantize_model(model, calibration_data=digits[0][:256])
    tflite = to_tflite(qat, quantize="int8")
    m = read_tflite(tflite)
    assert m.is_full_integer and m.op_counts["ADD"] == 1
    assert "MUL" not in m.op_counts  # every batch norm folded
    x = digits[2][:100]
    keras_out = qat.predict(x, verbose=0)
    lite = LiteRTRunner(tflite, kernels="reference").predict(x)
    within = np.mean(np.abs(keras_out - lite) <= 1 / 256 + 1e-6)
    assert within >= 0.99
    assert np.mean(np.argmax(keras_out, -1) == np.argmax(lite, -1)) >= 0.99
