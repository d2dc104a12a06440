"""prune_low_magnitude on Sequential / functional / nested models: fit, strip, save, resume."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import effkeras.prune as prune
from effkeras.errors import PruningError

L = keras.layers


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 4, 32)


def cnn():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(8, 3, activation="relu", name="conv"),
            L.Flatten(),
            L.Dense(4, name="head"),
        ],
        name="cnn",
    )


def fit(model, data, epochs=2, callbacks=None, **kwargs):
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(True))
    cbs = [prune.UpdatePruningStep()] if callbacks is None else callbacks
    return model.fit(*data, epochs=epochs, batch_size=8, verbose=0, shuffle=False,
                     callbacks=cbs, **kwargs)  # fmt: skip


def test_sequential_unstructured_reaches_target_and_zeros_stay(data):
    base = cnn()
    pruned = prune.prune_low_magnitude(base, prune.ConstantSparsity(0.75, 0, frequency=2))
    assert isinstance(pruned, keras.Sequential)
    assert [type(layer).__name__ for layer in pruned.layers] == [
        "PruneLowMagnitude", "Flatten", "PruneLowMagnitude"
    ]  # fmt: skip
    # The original model is not modified, and its weights were copied.
    assert all(not isinstance(layer, prune.PruneLowMagnitude) for layer in base.layers)
    np.testing.assert_array_equal(pruned.layers[0].layer.kernel.numpy(), base.layers[0].kernel.numpy())
    fit(pruned, data)
    assert prune.sparsity(pruned) == pytest.approx({"conv": 0.75, "head": 0.75})
    wrapper = pruned.layers[0]
    assert int(wrapper.pruning_step.numpy()) == 7  # 4 batches x 2 epochs, last begins at 7
    mask = wrapper.masks[0].numpy()
    # Pruned weights get no gradient: the kernel is still zero where the mask is.
    assert (wrapper.layer.kernel.numpy()[mask == 0] == 0).all()
    assert float(wrapper.thresholds[0].numpy()) > 0


def test_missing_callback_raises_a_clear_error_and_fit_recovers(data):
    pruned = prune.prune_low_magnitude(cnn())
    with pytest.raises(Exception, match="UpdatePruningStep") as info:
        fit(pruned, data, epochs=1, callbacks=[])
    assert "effkeras.callbacks.UpdatePruningStep()" in str(info.value)
    fit(pruned, data, epochs=1)  # adding the callback is all it takes
    assert prune.sparsity(pruned)["conv"] == pytest.approx(0.5)
    with pytest.raises(PruningError, match="UpdatePruningStep"):
        fresh = prune.prune_low_magnitude(cnn())
        fresh(data[0][:2], training=True)


def test_strip_gives_plain_layers_with_equal_outputs(data):
    pruned = prune.prune_low_magnitude(cnn(), prune.PolynomialDecay(0.0, 0.6, 0, 4, frequency=1))
    fit(pruned, data)
    stripped = prune.strip_pruning(pruned)
    assert [type(layer).__name__ for layer in stripped.layers] == ["Conv2D", "Flatten", "Dense"]
    assert [layer.name for layer in stripped.layers][::2] == ["conv", "head"]
    assert prune.sparsity(stripped) == pytest.approx({"conv": 0.6, "head": 0.6}, abs=0.005)
    np.testing.assert_allclose(stripped(data[0]), pruned(data[0]), atol=1e-6)


def test_functional_nested_with_block_and_2_by_4(data):
    keras.utils.set_random_seed(1)
    inner = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="c1")], name="inner")
    x = inp = keras.Input((8, 8, 1))
    x = L.ReLU()(inner(x))
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(4, name="head")(x))
    with pytest.warns(UserWarning, match="'c1'.*1 input channels"):
        nm = prune.prune_low_magnitude(model, sparsity_m_by_n=(2, 4))
    fit(nm, data, epochs=1)
    sp = prune.sparsity(nm)
    assert sp == pytest.approx({"c1": 0.0, "c2": 0.5, "head": 0.5})  # c1 has 1 input channel
    groups = np.moveaxis(nm.get_layer("prune_low_magnitude_c2").masked_weights()[0], 2, -1)
    assert ((groups.reshape(-1, 4) != 0).sum(axis=1) <= 2).all()

    block = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), block_size=(4, 1))
    assert isinstance(block.get_layer("inner").layers[0], prune.PruneLowMagnitude)
    fit(block, data, epochs=1)
    head = block.get_layer("prune_low_magnitude_head").masked_weights()[0]  # (8, 4)
    rows = (head.reshape(2, 4, 4) != 0).any(axis=1) == (head.reshape(2, 4, 4) != 0).all(axis=1)
    assert rows.all() and (head == 0).mean() == pytest.approx(0.5)
    stripped = prune.strip_pruning(block)
    np.testing.assert_allclose(stripped(data[0]), block(data[0]), atol=1e-5)


def test_get_config_keeps_every_argument():
    layer = prune.PruneLowMagnitude(
        L.Dense(8),
        pruning_schedule=prune.PolynomialDecay(0.1, 0.8, 5, 50, power=2, frequency=5),
        sparsity_m_by_n=(2, 4),
        name="p",
    )
    config = layer.get_config()
    assert config["sparsity_m_by_n"] == [2, 4] and config["block_size"] == [1, 1]
    again = prune.PruneLowMagnitude.from_config(keras.saving.serialize_keras_object(layer)["config"])
    assert again.pruning_schedule == layer.pruning_schedule
    assert again.structure == prune.NByM(2, 4) and again.name == "p"
    ch = prune.PruneLowMagnitude(L.Conv2D(4, 3), structure=prune.Channel("l1"), channel_group="g")
    again = prune.PruneLowMagnitude.from_config(ch.get_config())
    assert again.structure == prune.Channel("l1") and again.channel_group == "g"


def test_unsupported_inputs_say_what_to_do():
    with pytest.raises(PruningError, match="BatchNormalization"):
        prune.prune_low_magnitude(L.BatchNormalization())

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(PruningError, match="subclassed"):
        prune.prune_low_magnitude(Sub())
    with pytest.raises(PruningError, match="DepthwiseConv"):
        prune.prune_low_magnitude(L.DepthwiseConv2D(3), structure="channel")


def test_save_load_continues_the_schedule(data, tmp_path):
    pruned = prune.prune_low_magnitude(cnn(), prune.PolynomialDecay(0.0, 0.8, 0, 12, frequency=2))
    fit(pruned, data, epochs=1)
    path = os.fspath(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    wrapper = loaded.layers[0]
    assert isinstance(wrapper, prune.PruneLowMagnitude)
    assert wrapper.pruning_schedule == pruned.layers[0].pruning_schedule
    assert int(wrapper.pruning_step.numpy()) == 3
    np.testing.assert_array_equal(wrapper.masks[0].numpy(), pruned.layers[0].masks[0].numpy())
    np.testing.assert_allclose(loaded(data[0]), pruned(data[0]), atol=1e-6)
    loaded.fit(*data, epochs=3, batch_size=8, verbose=0, callbacks=[prune.UpdatePruningStep()])
    assert int(wrapper.pruning_step.numpy()) == 15
    assert prune.sparsity(loaded)["conv"] == pytest.approx(0.8, abs=0.01)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_exactly(data, tmp_path):
    schedule = prune.PolynomialDecay(0.0, 0.8, 0, 15, frequency=3)

    def make():
        return prune.prune_low_magnitude(cnn(), schedule)

    straight = make()
    fit(straight, data, epochs=4)

    backup = prune.UpdatePruningStep(), keras.callbacks.BackupAndRestore(os.fspath(tmp_path))
    first = make()
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(first, data, epochs=4, callbacks=[*backup, _Interrupt()])
    resumed = make()  # a fresh process would rebuild the model like this
    fit(resumed, data, epochs=4, callbacks=[prune.UpdatePruningStep(),
                                             keras.callbacks.BackupAndRestore(os.fspath(tmp_path))])  # fmt: skip
    for a, b in zip(straight.layers, resumed.layers, strict=True):
        if isinstance(a, prune.PruneLowMagnitude):
            assert int(a.pruning_step.numpy()) == int(b.pruning_step.numpy()) == 15
            np.testing.assert_array_equal(a.masks[0].numpy(), b.masks[0].numpy())
            np.testing.assert_allclose(a.layer.kernel.numpy(), b.layer.kernel.numpy(), atol=1e-5)


def test_pruning_summaries_writes_sparsity_and_threshold(data, tmp_path):
    import tensorflow as tf

    pruned = prune.prune_low_magnitude(cnn(), prune.ConstantSparsity(0.5, 0, frequency=1))
    fit(pruned, data, epochs=1,
        callbacks=[prune.UpdatePruningStep(), prune.PruningSummaries(tmp_path)])  # fmt: skip
    values = {}
    for name in os.listdir(tmp_path):
        for event in tf.compat.v1.train.summary_iterator(os.fspath(tmp_path / name)):
            for v in event.summary.value:
                values[v.tag] = float(tf.make_ndarray(v.tensor))
    assert values["prune_low_magnitude_conv/sparsity"] == pytest.approx(0.5)
    assert values["prune_low_magnitude_head/threshold"] > 0


def test_callback_writes_steps_only_when_needed(data, monkeypatch):
    """The per-batch host work is the schedule: pruning_step is written at the first batch,
    when a mask changes and at epoch ends (a write per layer per batch cost ~0.1 ms)."""
    import effkeras.prune.callbacks as callbacks_module

    calls = []
    real = callbacks_module.advance

    def spy(prunes, followers, step, last_step=None, assign_steps=True):
        calls.append(assign_steps)
        return real(prunes, followers, step, last_step, assign_steps)

    monkeypatch.setattr(callbacks_module, "advance", spy)
    pruned = prune.prune_low_magnitude(cnn(), prune.ConstantSparsity(0.5, 0, frequency=100))
    fit(pruned, data, epochs=2)
    assert calls == [True] + [False] * 7
    assert int(pruned.layers[0].pruning_step.numpy()) == 7
    assert prune.sparsity(pruned) == pytest.approx({"conv": 0.5, "head": 0.5})
