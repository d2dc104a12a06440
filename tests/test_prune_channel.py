"""Channel (filter) pruning: what is wrapped, and strip_pruning physically removing channels."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import effkeras.prune as prune

L = keras.layers


def residual_cnn():
    """Conv-BN-ReLU, a residual Add, depthwise, 1x1 conv, Flatten -> Dense -> logits."""
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((8, 8, 3))
    x = L.ReLU(name="r1")(L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(x)))
    r = L.ReLU()(L.BatchNormalization(name="bn2")(L.Conv2D(8, 3, padding="same", name="c2")(x)))
    x = L.Add(name="add")([x, r])
    x = L.ReLU()(L.BatchNormalization(name="bn3")(L.DepthwiseConv2D(3, padding="same", name="dw")(x)))
    x = L.Activation("sigmoid", name="sig")(L.BatchNormalization(name="bn4")(L.Conv2D(12, 1, name="c3")(x)))
    x = L.Flatten()(L.MaxPooling2D()(x))
    x = L.Dense(16, activation="relu", name="d1")(x)
    return keras.Model(inp, L.Dense(10, name="logits")(x), name="residual")  # fmt: skip


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 3), dtype=np.float32), rng.integers(0, 10, 32)
    pruned = prune.prune_low_magnitude(
        residual_cnn(), prune.ConstantSparsity(0.5, 0, frequency=2), structure="channel"
    )
    pruned.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    pruned.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[prune.UpdatePruningStep()])
    return pruned, x


def test_graph_decides_sources_followers_and_groups(trained):
    pruned, _ = trained
    roles = {
        layer.name: (type(layer).__name__, getattr(layer, "channel_group", None))
        for layer in pruned.layers
    }
    # c1 and c2 are added together: one group, one mask.
    assert roles["prune_low_magnitude_c1"] == ("PruneLowMagnitude", "c1_channels")
    assert roles["prune_low_magnitude_c2"] == ("PruneLowMagnitude", "c1_channels")
    for follower in ("bn1", "bn2", "dw", "bn3"):
        assert roles[f"channel_follower_{follower}"] == ("ChannelFollower", "c1_channels")
    assert roles["channel_follower_sig"][0] == "ChannelFollower"  # sigmoid(0) != 0
    assert roles["logits"] == ("Dense", None)  # a model output is never channel-pruned
    keep1 = pruned.get_layer("prune_low_magnitude_c1").channel_keep()
    keep2 = pruned.get_layer("prune_low_magnitude_c2").channel_keep()
    np.testing.assert_array_equal(keep1, keep2)
    assert keep1.sum() == 4


def test_strip_removes_channels_and_keeps_outputs(trained):
    pruned, x = trained
    small = prune.strip_pruning(pruned)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in small.layers}
    assert shapes["c1"] == shapes["add"] == shapes["dw"] == (8, 8, 4)
    assert shapes["c3"] == (8, 8, 6) and shapes["d1"] == (8,) and shapes["logits"] == (10,)
    assert small.get_layer("d1").kernel.shape == (4 * 4 * 6, 8)
    assert small.get_layer("bn4").gamma.shape == (6,)
    np.testing.assert_allclose(small(x), pruned(x), atol=1e-5)

    report = prune.strip_report(pruned, small)
    assert report.params_before == 4390 and report.params_after == 1264
    assert report.macs_before == 64672 and report.macs_after == 20816
    assert "c2" in report.table()

    kept = prune.strip_pruning(pruned, remove_channels=False)
    assert tuple(kept.get_layer("c1").output.shape[1:]) == (8, 8, 8)
    np.testing.assert_allclose(kept(x), pruned(x), atol=1e-5)


def test_macs_match_the_converted_tflite(trained):
    from effkeras.convert import read_tflite, to_tflite
    from effkeras.profiling import op_macs

    pruned, _ = trained
    small = prune.strip_pruning(pruned)
    tm = read_tflite(to_tflite(small))
    assert sum(op_macs(tm, op) for op in tm.ops) == prune.model_cost(small)["macs"]


def test_unmasked_batch_norm_blocks_removal():
    """Per-layer channel pruning (no graph, no followers) must not remove channels whose
    batch norm turns zeros into constants: strip checks zeros, it does not assume them."""
    model = keras.Sequential(
        [keras.Input((8, 8, 8)), prune.PruneLowMagnitude(L.Conv2D(6, 1), structure="channel"),
         L.BatchNormalization(), L.Conv2D(2, 1)]
    )  # fmt: skip
    model.layers[0].masks[0].assign(np.broadcast_to([1, 0, 1, 0, 1, 1], (1, 1, 8, 6)))
    model.layers[0].layer.bias.assign(np.full(6, 0.5))  # masked out with the filter
    model.layers[1].beta.assign(np.ones(6))
    out = prune.strip_pruning(model)
    assert out.layers[0].filters == 6
    probe = np.random.default_rng(1).random((2, 8, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(out(probe), model(probe), atol=1e-5)
    assert (out.layers[0].bias.numpy() == [0.5, 0, 0.5, 0, 0.5, 0.5]).all()
