"""The below-int8 fine-tuning suite (benchmarks/below_int8_train.py) rebuilds the float
ResNet-8 from its int8 file: the rebuilt model must compute what the file computes, or every
figure of the suite is about another model."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import below_int8_train as bt  # noqa: E402


@pytest.fixture(scope="module")
def rebuilt():
    return bt.float_from_int8(bt.MODEL)


def _inputs(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(0.0, 0.5, (n, 32, 32, 3)), -1.0, 1.0).astype(np.float32)


def test_rebuilt_float_model_matches_the_int8_file(rebuilt):
    import keras

    from effkeras.runtime import LiteRTRunner

    x = _inputs()
    float_probs = keras.ops.convert_to_numpy(keras.ops.softmax(rebuilt.predict(x, verbose=0)))
    int8_probs = LiteRTRunner(bt.MODEL, kernels="builtin").predict(x).reshape(len(x), -1)
    assert np.mean(float_probs.argmax(-1) == int8_probs.argmax(-1)) >= 0.9
    assert np.mean(np.abs(float_probs - int8_probs)) < 0.02  # int8 steps are 1/256


def test_every_filter_of_the_file_lands_in_one_layer_with_its_dequantized_values(rebuilt):
    filters = bt.dequantized_filters(bt.MODEL)
    layers = [layer for layer in rebuilt.layers if layer.weights]
    assert len(filters) == len(layers) == 10
    used = set()
    for layer in layers:
        kernel, bias = layer.get_weights()
        hits = [i for i, (_, k, b) in enumerate(filters) if k.shape == kernel.shape
                and np.array_equal(k, kernel) and np.array_equal(b, bias)]
        assert len(hits) == 1, layer.name
        used.add(hits[0])
    assert used == set(range(10))


def test_a_file_with_another_graph_is_refused(tmp_path):
    import keras

    from effkeras.convert import to_tflite

    m = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                          keras.layers.Dense(10)])
    path = tmp_path / "other.tflite"
    path.write_bytes(to_tflite(m))
    with pytest.raises(ValueError, match="has 2 conv/dense filters; ResNet-8 has 10"):
        bt.float_from_int8(str(path))


def test_a_float_file_is_refused_naming_the_filter(tmp_path):
    from effkeras.convert import to_tflite

    path = tmp_path / "float.tflite"
    path.write_bytes(to_tflite(bt.resnet8_folded()))
    with pytest.raises(ValueError, match="has no int8 constant filter"):
        bt.float_from_int8(str(path))
