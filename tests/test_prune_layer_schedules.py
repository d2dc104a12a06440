"""Per-layer schedules: prune a model's head harder than its body, or not at all."""

from __future__ import annotations

import numpy as np
import pytest


def _cnn(residual: bool = False):
    import keras

    L = keras.layers
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    if residual:
        y = L.Conv2D(16, 3, padding="same", name="conv1b")(x)
        x = L.Add(name="add")([x, y])
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.Dense(20, activation="relu", name="dense1")(x)
    out = L.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inp, out)


def _fit(pruned, digits):
    import effkeras

    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(digits[0], digits[1], epochs=1, batch_size=64, verbose=0,
               callbacks=[effkeras.callbacks.UpdatePruningStep()])


def test_head_only_channel_pruning(digits):
    import keras

    from effkeras import prune

    keras.utils.set_random_seed(3)
    model = _cnn()
    half = prune.ConstantSparsity(0.5, 0, frequency=5)
    pruned = prune.prune_low_magnitude(
        model,
        pruning_schedule=prune.ConstantSparsity(0.25, 0, frequency=5),
        structure="channel",
        layer_schedules={"conv1": None, "conv2": half, "dense1": half},
    )
    names = {layer.name for layer in pruned.layers}
    assert "conv1" in names and "bn1" in names  # left as they were: no wrapper, no follower
    _fit(pruned, digits)
    small = prune.strip_pruning(pruned)
    by = {layer.name: layer for layer in small.layers}
    assert by["conv1"].filters == 16
    assert by["conv2"].filters == 6
    assert by["dense1"].units == 10
    assert by["dense1"].kernel.shape == (8 * 8 * 6, 10)
    x = digits[2][:64]
    np.testing.assert_allclose(small.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)


def test_default_schedule_still_applies_to_unnamed_layers(digits):
    import keras

    from effkeras import prune

    keras.utils.set_random_seed(4)
    pruned = prune.prune_low_magnitude(
        _cnn(),
        pruning_schedule=prune.ConstantSparsity(0.5, 0, frequency=5),
        layer_schedules={"dense1": prune.ConstantSparsity(0.9, 0, frequency=5)},
    )
    _fit(pruned, digits)
    sp = prune.sparsity(prune.strip_pruning(pruned))
    dense1 = [v for k, v in sp.items() if "dense1" in k]
    conv2 = [v for k, v in sp.items() if "conv2" in k]
    assert dense1 and conv2
    assert dense1[0] == pytest.approx(0.9, abs=0.01)
    assert conv2[0] == pytest.approx(0.5, abs=0.01)


def test_residual_group_shares_the_named_schedule(digits):
    import keras

    from effkeras import prune

    keras.utils.set_random_seed(5)
    half = prune.ConstantSparsity(0.5, 0, frequency=5)
    pruned = prune.prune_low_magnitude(
        _cnn(residual=True),
        pruning_schedule=prune.ConstantSparsity(0.0, 0),
        structure="channel",
        layer_schedules={"conv1": half},
    )
    _fit(pruned, digits)
    small = prune.strip_pruning(pruned)
    by = {layer.name: layer for layer in small.layers}
    # conv1 and conv1b feed one Add: naming conv1 prunes both to the same channels
    assert by["conv1"].filters == by["conv1b"].filters == 8


def test_layer_schedule_errors():
    from effkeras import prune
    from effkeras.errors import PruningError

    model = _cnn(residual=True)
    half = prune.ConstantSparsity(0.5, 0)
    with pytest.raises(PruningError, match=r"does not have: \['nope'\]"):
        prune.prune_low_magnitude(model, structure="channel", layer_schedules={"nope": half})
    with pytest.raises(PruningError, match=r"cannot be pruned: \['out'\]"):
        prune.prune_low_magnitude(model, structure="channel", layer_schedules={"out": half})
    with pytest.raises(PruningError, match="share one channel mask"):
        prune.prune_low_magnitude(
            model, structure="channel",
            layer_schedules={"conv1": half, "conv1b": prune.ConstantSparsity(0.25, 0)},
        )
    with pytest.raises(PruningError, match="must be a PruningSchedule or None"):
        prune.prune_low_magnitude(model, layer_schedules={"conv2": 0.5})
    with pytest.raises(PruningError, match="applies when pruning a model"):
        prune.prune_low_magnitude(model.layers[1], layer_schedules={"conv1": half})
