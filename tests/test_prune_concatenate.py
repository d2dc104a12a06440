"""Channel pruning through ``Concatenate`` (DenseNet's dense blocks, NASNet's cells).

A channel pruned in a space that a Concatenate joins is removed from the concatenation,
from the batch norms after it (their ChannelFollower follows several groups at once) and
from the input of the convolutions that read it; chains of concatenations compose.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import effkeras.prune as prune
from effkeras.errors import PruningError

L = keras.layers


def dense_block(growth: int = 4, layers: int = 3, stem: int = 8, name: str = "dense") -> keras.Model:
    """A DenseNet-style block: x = concat([x, conv(relu(bn(x)))]) repeated, then a
    transition BN-ReLU-1x1 conv, pooling and a classifier."""
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((8, 8, 3))
    x = L.Conv2D(stem, 3, padding="same", name="stem")(x)
    for i in range(layers):
        y = L.ReLU()(L.BatchNormalization(name=f"bn{i}")(x))
        y = L.Conv2D(growth, 3, padding="same", name=f"grow{i}")(y)
        x = L.Concatenate(name=f"cat{i}")([x, y])
    x = L.ReLU()(L.BatchNormalization(name="bn_t")(x))
    x = L.Conv2D(6, 1, name="transition")(x)
    out = L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out, name=name)


def _data(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, n)


@pytest.fixture(scope="module")
def trained():
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing in a dense block is left unprunable
        pruned = prune.prune_low_magnitude(
            dense_block(), prune.ConstantSparsity(0.5, 0, frequency=2), structure="channel"
        )
    pruned.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    pruned.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[prune.UpdatePruningStep()])
    return pruned, x


def test_batch_norms_after_a_concatenation_follow_every_group(trained):
    pruned, _ = trained
    follower = pruned.get_layer("channel_follower_bn2")
    assert follower.channel_group == [["stem_channels", 8], ["grow0_channels", 4],
                                      ["grow1_channels", 4]]  # fmt: skip
    expected = np.concatenate([
        pruned.get_layer(f"prune_low_magnitude_{n}").channel_keep()
        for n in ("stem", "grow0", "grow1")
    ])  # fmt: skip
    np.testing.assert_array_equal(follower.channel_mask.numpy(), expected)
    assert 0 < expected.sum() < expected.size  # half of each group is pruned


def test_strip_removes_concatenated_channels_and_keeps_outputs(trained):
    pruned, x = trained
    stripped = prune.strip_pruning(pruned)
    keep = {n: int(pruned.get_layer(f"prune_low_magnitude_{n}").channel_keep().sum())
            for n in ("stem", "grow0", "grow1", "grow2")}  # fmt: skip
    assert keep == {"stem": 4, "grow0": 2, "grow1": 2, "grow2": 2}
    assert stripped.get_layer("cat0").output.shape[-1] == 6
    assert stripped.get_layer("cat2").output.shape[-1] == 10
    assert stripped.get_layer("bn_t").gamma.shape == (10,)
    assert stripped.get_layer("grow2").kernel.shape[-2] == 8  # reads cat1: 4 + 2 + 2
    assert stripped.get_layer("transition").kernel.shape[-2] == 10
    assert stripped.count_params() < 0.45 * dense_block().count_params()
    np.testing.assert_allclose(
        stripped(x, training=False), pruned(x, training=False), rtol=1e-5, atol=1e-5
    )


def test_segmented_follower_saves_and_loads(trained, tmp_path):
    pruned, x = trained
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    follower = loaded.get_layer("channel_follower_bn_t")
    assert follower.channel_group == pruned.get_layer("channel_follower_bn_t").channel_group
    np.testing.assert_allclose(loaded(x, training=False), pruned(x, training=False), atol=1e-6)


def test_concatenation_to_the_output_keeps_its_inputs():
    """A Concatenate that is a model output cannot lose channels: what feeds it stays."""
    x = inp = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 3, name="a")(x)
    b = L.Conv2D(4, 3, name="b")(x)
    out = L.Concatenate(name="cat")([a, L.Conv2D(4, 1, name="b2")(b)])
    pruned = prune.prune_low_magnitude(keras.Model(inp, out), structure="channel")
    kinds = {layer.name: type(layer).__name__ for layer in pruned.layers}
    assert kinds["a"] == "Conv2D" and kinds["b2"] == "Conv2D"
    assert kinds["prune_low_magnitude_b"] == "PruneLowMagnitude"  # read by b2 only


def test_unpruned_group_leaves_its_run_alone():
    """layer_schedules leaving one concatenated source unpruned: its run of the follower
    is None and its channels all stay; the other groups' channels still go."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune.prune_low_magnitude(
            dense_block(), prune.ConstantSparsity(0.5, 0), structure="channel",
            layer_schedules={"grow1": None},
        )
    assert pruned.get_layer("channel_follower_bn2").channel_group == [
        ["stem_channels", 8], ["grow0_channels", 4], [None, 4]]  # fmt: skip
    assert type(pruned.get_layer("grow1")).__name__ == "Conv2D"
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    assert stripped.get_layer("grow1").filters == 4
    assert stripped.get_layer("cat2").output.shape[-1] == 4 + 2 + 4 + 2
    x, _ = _data(4, seed=2)
    np.testing.assert_allclose(
        stripped(x, training=False), pruned(x, training=False), rtol=1e-5, atol=1e-5
    )


def test_follower_rejects_bad_runs():
    with pytest.raises(PruningError, match=r"Received: \[\['g', 0\]\]"):
        prune.ChannelFollower(L.BatchNormalization(), [["g", 0]])
    with pytest.raises(PruningError, match="at least one group"):
        prune.ChannelFollower(L.BatchNormalization(), [[None, 4]])
    follower = prune.ChannelFollower(L.BatchNormalization(), [["g", 3], [None, 2]])
    with pytest.raises(PruningError, match="cover 5 channels, but .* has 6"):
        follower.build((None, 4, 4, 6))


def test_pruned_densenet_strips_quantizes_and_converts_full_int8():
    """keras.applications' DenseNet block code (reduced depth): channel-pruned through its
    concatenations, stripped, then QAT to a full-int8 file that matches Keras."""
    from keras.src.applications import densenet

    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import quantize_model
    from effkeras.runtime import LiteRTRunner

    keras.utils.set_random_seed(0)
    model = densenet.DenseNet([1, 1, 1, 1], input_shape=(32, 32, 3), weights=None, classes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure="channel")
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    cats = [la.name for la in model.layers if isinstance(la, L.Concatenate)]
    assert cats and all(
        stripped.get_layer(n).output.shape[-1] < model.get_layer(n).output.shape[-1] for n in cats
    )
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    qat = quantize_model(stripped, calibration_data=x)
    data = to_tflite(qat, quantize="int8")
    parsed = read_tflite(data)
    assert parsed.is_full_integer and not parsed.float_ops()
    ref = keras.ops.convert_to_numpy(qat(x, training=False))
    lite = LiteRTRunner(data, kernels="reference").predict(x)
    assert np.mean(np.abs(ref - lite) <= 1.0001 / 256) >= 0.99


def test_ops_concatenate_is_followed_too():
    """``keras.ops.concatenate(..., axis=-1)`` in a functional graph is a concatenation too."""
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((8, 8, 3))
    a = L.Conv2D(6, 3, padding="same", name="a")(x)
    b = L.Conv2D(4, 3, padding="same", name="b")(x)
    y = L.ReLU()(L.BatchNormalization(name="bn")(keras.ops.concatenate([a, b], axis=-1)))
    out = L.Dense(2, name="logits")(L.GlobalAveragePooling2D()(L.Conv2D(4, 1, name="c")(y)))
    model = keras.Model(inp, out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure="channel")
    assert pruned.get_layer("channel_follower_bn").channel_group == [
        ["a_channels", 6], ["b_channels", 4]]  # fmt: skip
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    assert stripped.get_layer("c").kernel.shape[-2] == 3 + 2
    x, _ = _data(4, seed=3)
    np.testing.assert_allclose(
        stripped(x, training=False), pruned(x, training=False), rtol=1e-5, atol=1e-5
    )
