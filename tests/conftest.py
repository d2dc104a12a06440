"""Shared fixtures: a small CNN trained on scikit-learn's digits, converted once per run.

Everything here uses data that ships inside scikit-learn; no downloads, no ../shared files.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_test, y_test): 8x8x1 float32 in [0, 1], int labels."""
    from effkeras.data import load_dataset

    ds = load_dataset("digits")
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


@pytest.fixture(scope="session")
def digits_model(digits):
    """A trained conv + batch-norm + ReLU CNN for 8x8 digits (Keras 3, Sequential)."""
    import keras

    from effkeras.demo import build_cnn

    x_train, y_train, _, _ = digits
    keras.utils.set_random_seed(1)
    model = build_cnn(x_train.shape[1:], 10)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def float_tflite(digits_model) -> bytes:
    from effkeras.convert import to_tflite

    return to_tflite(digits_model)


@pytest.fixture(scope="session")
def int8_tflite(digits_model, digits) -> bytes:
    """Full-integer model with float input/output (QUANTIZE/DEQUANTIZE at the ends)."""
    from effkeras.convert import to_tflite

    return to_tflite(digits_model, quantize="int8", representative_data=digits[0][:200])


@pytest.fixture(scope="session")
def int8_io_tflite(digits_model, digits) -> bytes:
    """Full-integer model with int8 input and output, as a microcontroller wants it."""
    from effkeras.convert import to_tflite

    return to_tflite(
        digits_model, quantize="int8", representative_data=digits[0][:200], io_dtype="int8"
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)
