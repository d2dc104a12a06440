"""Training and strip_pruning for Conv1D, SeparableConv2D (channel slicing included) and
DepthwiseConv2D, each checked against the converted .tflite."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import effkeras.prune as prune
from effkeras.convert import to_tflite

L = keras.layers


def _fit(model, x, y, epochs=2):
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, shuffle=False,
              callbacks=[prune.UpdatePruningStep()])  # fmt: skip
    return model


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((24, *shape), dtype=np.float32), rng.integers(0, 3, 24)


def _tflite_sparsity(model, x):
    report = prune.sparsity_report(to_tflite(model, quantize="int8", representative_data=x))
    return [(r["op"], r["sparsity"]) for r in report.layers]


@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_conv1d_train_and_strip(structure):
    x, y = _data((16, 4))
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((16, 4)), L.Conv1D(8, 3, activation="relu", name="c1"),
         L.Conv1D(8, 3, name="c2"), L.GlobalAveragePooling1D(), L.Dense(3, name="head")]
    )  # fmt: skip
    pruned = prune.prune_low_magnitude(
        model, prune.ConstantSparsity(0.5, 0, frequency=1), structure=structure
    )
    _fit(pruned, x, y)
    stripped = prune.strip_pruning(pruned)
    assert [type(layer).__name__ for layer in stripped.layers] == [
        "Conv1D", "Conv1D", "GlobalAveragePooling1D", "Dense"
    ]  # fmt: skip
    np.testing.assert_allclose(stripped(x), pruned(x), atol=1e-5)
    assert prune.sparsity(stripped) == pytest.approx({"c1": 0.5, "c2": 0.5, "head": 0.5})
    if structure == "2:4":  # every 4 consecutive input-channel weights keep at most 2
        kernel = stripped.get_layer("c2").kernel.numpy()  # (k, cin=8, cout)
        groups = (kernel != 0).reshape(3, 2, 4, 8).sum(axis=2)
        assert groups.max() <= 2
    # Conv1D converts to CONV_2D over a height-1 image; its zeros survive int8.
    for op, value in _tflite_sparsity(stripped, x):
        assert op in ("CONV_2D", "FULLY_CONNECTED") and value >= 0.5 - 1e-9


def test_conv1d_channel_pruning_removes_filters():
    x, y = _data((16, 4))
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((16, 4)), L.Conv1D(8, 3, activation="relu", name="c1"),
         L.Conv1D(6, 3, activation="relu", name="c2"), L.Flatten(), L.Dense(3, name="head")]
    )  # fmt: skip
    pruned = _fit(prune.prune_low_magnitude(
        model, prune.ConstantSparsity(0.5, 0, frequency=1), structure="channel"), x, y)  # fmt: skip
    stripped = prune.strip_pruning(pruned)
    assert stripped.get_layer("c1").kernel.shape == (3, 4, 4)
    assert stripped.get_layer("c2").kernel.shape == (3, 4, 3)
    assert stripped.get_layer("head").kernel.shape == (12 * 3, 3)
    np.testing.assert_allclose(stripped(x), pruned(x), atol=1e-5)


def test_separable_conv2d_unstructured_prunes_both_kernels():
    x, y = _data((8, 8, 3))
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), L.SeparableConv2D(8, 3, depth_multiplier=2, name="sep"),
         L.GlobalAveragePooling2D(), L.Dense(3, name="head")]
    )  # fmt: skip
    pruned = _fit(prune.prune_low_magnitude(model, prune.ConstantSparsity(0.75, 0)), x, y)
    wrapper = pruned.get_layer("prune_low_magnitude_sep")
    assert [w.name for w in wrapper.prunable_weights] == ["depthwise_kernel", "pointwise_kernel"]
    stripped = prune.strip_pruning(pruned)
    sep = stripped.get_layer("sep")
    for kernel in (sep.depthwise_kernel.numpy(), sep.pointwise_kernel.numpy()):
        assert (kernel == 0).mean() == pytest.approx(0.75, abs=0.02)
    np.testing.assert_allclose(stripped(x), pruned(x), atol=1e-5)
    # SeparableConv2D converts to DEPTHWISE_CONV_2D + CONV_2D; both keep their zeros.
    rows = dict(_tflite_sparsity(stripped, x))
    assert rows["DEPTHWISE_CONV_2D"] >= 0.75 - 0.02 and rows["CONV_2D"] >= 0.75 - 0.02


def test_separable_conv2d_channel_slicing():
    """A channel-pruned conv before a separable conv shrinks its depthwise part; the
    separable's own pointwise filters are pruned and the next layers sliced."""
    x, y = _data((8, 8, 3))
    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    h = L.SeparableConv2D(12, 3, padding="same", depth_multiplier=2, name="sep")(h)
    h = L.ReLU()(L.BatchNormalization(name="bn")(h))
    h = L.Conv2D(6, 1, activation="relu", name="c2")(h)
    out = L.Dense(3, name="head")(L.GlobalAveragePooling2D()(h))
    pruned = prune.prune_low_magnitude(
        keras.Model(inp, out), prune.ConstantSparsity(0.5, 0, frequency=1), structure="channel"
    )
    _fit(pruned, x, y)
    stripped = prune.strip_pruning(pruned)
    sep = stripped.get_layer("sep")
    assert stripped.get_layer("c1").kernel.shape == (3, 3, 3, 4)
    assert sep.depthwise_kernel.shape == (3, 3, 4, 2)  # input channels follow c1
    assert sep.pointwise_kernel.shape == (1, 1, 8, 6)  # its own filters pruned
    assert stripped.get_layer("bn").gamma.shape == (6,)
    assert stripped.get_layer("c2").kernel.shape == (1, 1, 6, 3)
    np.testing.assert_allclose(stripped(x), pruned(x), atol=1e-4)
    cost = prune.strip_report(pruned, stripped)
    assert cost.macs_after < 0.4 * cost.macs_before


def test_depthwise_conv2d_unstructured():
    x, y = _data((8, 8, 4))
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((8, 8, 4)), L.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
         L.BatchNormalization(name="bn"), L.ReLU(), L.GlobalAveragePooling2D(),
         L.Dense(3, name="head")]
    )  # fmt: skip
    pruned = _fit(prune.prune_low_magnitude(
        model, prune.PolynomialDecay(0.0, 0.8, 0, 4, frequency=1)), x, y)  # fmt: skip
    stripped = prune.strip_pruning(pruned)
    assert isinstance(stripped.get_layer("dw"), L.DepthwiseConv2D)
    assert prune.sparsity(stripped)["dw"] == pytest.approx(0.8, abs=0.02)
    np.testing.assert_allclose(stripped(x), pruned(x), atol=1e-5)
    rows = dict(_tflite_sparsity(stripped, x))
    # BN folds into the depthwise kernel (scaled per channel): zeros stay zeros.
    assert rows["DEPTHWISE_CONV_2D"] >= 0.8 - 0.02
