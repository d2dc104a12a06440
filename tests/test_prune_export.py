"""Pruned models in .tflite: int8 weights keep the zeros; gzip size; prune then QAT."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import effkeras.prune as prune
from effkeras.convert import to_tflite

L = keras.layers


@pytest.fixture(scope="module")
def pruned_and_data():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1), dtype=np.float32), rng.integers(0, 4, 64)
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu", name="conv"),
         L.Conv2D(16, 3, activation="relu", name="conv2"), L.Flatten(), L.Dense(4, name="head")]
    )  # fmt: skip
    pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.8, 0, frequency=2))
    pruned.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[prune.UpdatePruningStep()])
    return prune.strip_pruning(pruned), x, y


def test_int8_tflite_holds_the_same_sparsity(pruned_and_data):
    stripped, x, _ = pruned_and_data
    dense = prune.sparsity_report(to_tflite(stripped))
    report = prune.sparsity_report(to_tflite(stripped, quantize="int8", representative_data=x))
    assert [r["dtype"] for r in report.layers] == ["INT8"] * 3
    # Quantization can only add zeros (tiny weights round to 0), never remove them.
    for row, name in zip(report.layers, ("conv", "conv2", "head"), strict=True):
        assert row["sparsity"] >= prune.sparsity(stripped)[name] - 1e-9
        assert row["sparsity"] == pytest.approx(0.8, abs=0.02)
    assert report.sparsity == pytest.approx(0.8, abs=0.02)
    assert dense.layers[0]["dtype"] == "FLOAT32" and dense.sparsity == pytest.approx(0.8, abs=0.01)
    # A dense .tflite does not shrink, but it compresses.
    assert report.gzip_bytes < 0.6 * report.size_bytes
    assert "weight sparsity" in report.table()


def test_prune_then_qat_keeps_the_zeros(pruned_and_data):
    quantize = pytest.importorskip("effkeras.quantize")
    stripped, x, y = pruned_and_data
    before = prune.sparsity(stripped)
    qat = quantize.quantize_model(stripped, calibration_data=x)
    qat.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    keep = prune.PreserveSparsity()
    qat.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[keep])
    assert len(keep.tracked) == 3
    tfl = to_tflite(qat, quantize="int8", representative_data=x)
    report = prune.sparsity_report(tfl)
    for row, name in zip(report.layers, ("conv", "conv2", "head"), strict=True):
        assert row["dtype"] == "INT8" and row["sparsity"] >= before[name] - 1e-9
