"""Channel pruning across nested models: a base model inside a Sequential or Functional
model (the transfer-learning pattern ``Sequential([base, GlobalAveragePooling2D(),
Dense(10)])``) is inlined into the channel analysis, so its last convolutions are pruned
and the head's input shrinks with them; a nested model called twice stays opaque."""

from __future__ import annotations

import warnings

import keras
import numpy as np

import effkeras.prune as prune

L = keras.layers


def _base(name: str = "base") -> keras.Model:
    x = inp = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, padding="same", name="c1")(x)))
    x = L.ReLU()(L.BatchNormalization(name="bn2")(L.Conv2D(12, 3, padding="same", name="c2")(x)))
    return keras.Model(inp, x, name=name)


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).random((n, 8, 8, 3), dtype=np.float32)


def test_base_inside_sequential_loses_channels_and_head_rows():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), _base(), L.GlobalAveragePooling2D(),
                              L.Dense(5, name="head")])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure="channel")
    base = pruned.get_layer("base")
    # c2 is the base's output: before inlining it was a model output, never pruned
    assert isinstance(base.get_layer("prune_low_magnitude_c2"), prune.PruneLowMagnitude)
    assert isinstance(base.get_layer("channel_follower_bn2"), prune.ChannelFollower)
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    assert stripped.get_layer("base").get_layer("c2").filters == 6
    assert stripped.get_layer("head").kernel.shape == (6, 5)
    assert stripped.count_params() < model.count_params()
    x = _x()
    np.testing.assert_allclose(stripped(x), pruned(x, training=False), rtol=1e-5, atol=1e-6)


def test_nested_model_whose_input_shrinks_is_rebuilt_on_fewer_channels(tmp_path):
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((8, 8, 10), name="inner_input")
    y = L.Conv2D(6, 1, name="inner_conv")(L.ReLU()(L.BatchNormalization(name="inner_bn")(inner_in)))
    nested = keras.Model(inner_in, y, name="nested")
    x = inp = keras.Input((8, 8, 3))
    x = nested(L.Conv2D(10, 3, padding="same", name="c0")(x))
    out = L.Dense(2, name="logits")(L.GlobalAveragePooling2D()(L.Conv2D(4, 1, name="c9")(x)))
    model = keras.Model(inp, out)
    pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure="channel")
    assert isinstance(pruned.get_layer("nested").get_layer("channel_follower_inner_bn"),
                      prune.ChannelFollower)  # follows c0, outside the nested model  # fmt: skip
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    inner = stripped.get_layer("nested")
    assert inner.inputs[0].shape[-1] == 5
    assert inner.get_layer("inner_bn").gamma.shape == (5,)
    assert inner.get_layer("inner_conv").kernel.shape == (1, 1, 5, 3)
    xx = _x()
    np.testing.assert_allclose(stripped(xx), pruned(xx, training=False), rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "stripped.keras")
    stripped.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(xx), stripped(xx), atol=1e-6)


def test_nested_model_called_twice_stays_opaque():
    keras.utils.set_random_seed(0)
    shared = _base("shared")
    inp = keras.Input((8, 8, 3))
    a, b = shared(inp), shared(L.Conv2D(3, 1, name="pre")(inp))
    out = L.Dense(2, name="logits")(L.GlobalAveragePooling2D()(L.Add()([a, b])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = prune.prune_low_magnitude(keras.Model(inp, out), structure="channel")
    inner = pruned.get_layer("shared")
    assert isinstance(inner.get_layer("prune_low_magnitude_c1"), prune.PruneLowMagnitude)
    assert type(inner.get_layer("c2")).__name__ == "Conv2D"  # its output leaves the model
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    assert stripped.get_layer("shared").get_layer("c2").filters == 12
    xx = _x()
    np.testing.assert_allclose(stripped(xx), pruned(xx, training=False), rtol=1e-5, atol=1e-6)
