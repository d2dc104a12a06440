"""Channel pruning and strip_pruning on every keras.applications family (issue 20).

Each family is built once (weights=None, classes=10, the smallest input it accepts),
channel-pruned, stripped, and compared with the masked model. Seven of them (MobileNet,
V2, V3Small, EfficientNetB0, EfficientNetV2B0, ResNet50V2, DenseNet121) first train one
step with the pruning callback (eagerly: tracing a graph of several hundred layers costs
more than the step); the others take one pruning step without training, to keep this
file within its time budget (about 2.5-3.5 min on the 2-core host). Other structures run on MobileNetV3Small, whose keras.ops nodes
(hard-sigmoid ``x + 3.0``, ``* (1 / 6)``) used to raise AttributeError inside effkeras.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import effkeras.prune as prune
from effkeras.errors import PruningError

A = keras.applications
L = keras.layers

#: family -> (constructor, extra arguments). 32x32 is the smallest input each accepts.
FAMILIES = {
    "MobileNet": (A.MobileNet, {}),
    "MobileNetV2": (A.MobileNetV2, {}),
    "MobileNetV3Small": (A.MobileNetV3Small, {}),
    "MobileNetV3Large": (A.MobileNetV3Large, {}),
    "MobileNetV3Small_minimalistic": (A.MobileNetV3Small, {"minimalistic": True}),
    "MobileNetV3Large_minimalistic": (A.MobileNetV3Large, {"minimalistic": True}),
    "EfficientNetB0": (A.EfficientNetB0, {}),
    "EfficientNetB1": (A.EfficientNetB1, {}),
    "EfficientNetB2": (A.EfficientNetB2, {}),
    "EfficientNetV2B0": (A.EfficientNetV2B0, {}),
    "EfficientNetV2B1": (A.EfficientNetV2B1, {}),
    "EfficientNetV2B2": (A.EfficientNetV2B2, {}),
    "ResNet50": (A.ResNet50, {}),
    "ResNet50V2": (A.ResNet50V2, {}),
    "DenseNet121": (A.DenseNet121, {}),
    "NASNetMobile": (A.NASNetMobile, {}),
}
#: families whose squeeze-excite Multiply (broadcast (1, 1, C) over (H, W, C)) must now
#: join the expanded channels, so their squeeze-excite convolutions are channel-pruned.
SQUEEZE_EXCITE = {
    "MobileNetV3Small": "squeeze_excite_conv",
    "MobileNetV3Large": "squeeze_excite_conv",
    "EfficientNetB0": "_se_",
    "EfficientNetB1": "_se_",
    "EfficientNetB2": "_se_",
    "EfficientNetV2B0": "_se_",
    "EfficientNetV2B1": "_se_",
    "EfficientNetV2B2": "_se_",
}
SHAPE = (32, 32, 3)


def _build(family: str) -> keras.Model:
    make, extra = FAMILIES[family]
    keras.utils.set_random_seed(0)
    return make(
        input_shape=SHAPE, weights=None, classes=10, classifier_activation=None, **extra
    )


def _data(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE), dtype=np.float32), rng.integers(0, 10, n)


#: the siblings that take a pruning step without training (see the module docstring)
UNTRAINED = {
    "MobileNetV3Large", "MobileNetV3Small_minimalistic", "MobileNetV3Large_minimalistic",
    "EfficientNetB1", "EfficientNetB2", "EfficientNetV2B1", "EfficientNetV2B2", "ResNet50",
    "NASNetMobile",
}  # fmt: skip


def _train(model: keras.Model) -> None:
    x, y = _data()
    model.compile(
        keras.optimizers.SGD(1e-4),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[prune.UpdatePruningStep()])


def _assert_same(stripped: keras.Model, masked: keras.Model, rel: float = 1e-4) -> float:
    """Stripped and masked outputs agree relative to the output's size (untrained deep
    nets at 32x32 give logits far below 1, so an absolute tolerance would prove nothing)."""
    x, _ = _data(3, seed=1)
    a = keras.ops.convert_to_numpy(masked(x, training=False))
    b = keras.ops.convert_to_numpy(stripped(x, training=False))
    assert a.shape == b.shape
    assert np.isfinite(a).all() and np.abs(a).max() > 0
    diff = float(np.abs(a - b).max())
    assert diff <= rel * float(np.abs(a).max()), (diff, float(np.abs(a).max()))
    return diff


@pytest.fixture(scope="module")
def models():
    """family -> its built float model, built on first use and shared by the tests."""
    cache: dict[str, keras.Model] = {}

    def get(family: str) -> keras.Model:
        if family not in cache:
            cache[family] = _build(family)
        return cache[family]

    return get


@pytest.mark.parametrize("family", list(FAMILIES))
def test_channel_prune_train_strip(models, family):
    model = models(family)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no op of these families is left unprunable
        pruned = prune.prune_low_magnitude(
            model, prune.ConstantSparsity(0.5, 0, frequency=1), structure="channel"
        )
    wrapped = [layer for layer in pruned.layers if isinstance(layer, prune.PruneLowMagnitude)]
    assert wrapped
    if family in SQUEEZE_EXCITE:
        assert any(SQUEEZE_EXCITE[family] in w.layer.name for w in wrapped)
    if family in UNTRAINED:
        prune.update_pruning_step(pruned, 0)
    else:
        _train(pruned)
        assert pruned.optimizer.iterations.numpy() == 1
    assert all(int(w.pruning_step.numpy()) == 0 for w in wrapped)
    stripped = prune.strip_pruning(pruned)
    assert not any(
        isinstance(layer, prune.PruneLowMagnitude | prune.ChannelFollower)
        for layer in stripped.layers
    )
    before, after = model.count_params(), stripped.count_params()
    assert after < 0.9 * before, (before, after)
    _assert_same(stripped, pruned)
    # channels are removed, not zeroed: some wrapped filter count went down
    shrunk = [
        w.layer.name for w in wrapped
        if getattr(stripped.get_layer(w.layer.name), "filters", None) not in (None, w.layer.filters)
    ]  # fmt: skip
    assert shrunk
    # DenseNet and NASNet concatenate: the channels pruned in the spaces a Concatenate
    # joins leave the concatenation (and the batch norms and convs after it) too.
    cats = [layer.name for layer in model.layers if isinstance(layer, L.Concatenate)]
    narrower = [
        name for name in cats
        if stripped.get_layer(name).output.shape[-1] < model.get_layer(name).output.shape[-1]
    ]  # fmt: skip
    if family == "DenseNet121":
        assert narrower == cats  # every dense block's concatenation
    elif cats:
        assert narrower, cats
    print(f"{family}: params {before} -> {after}; {len(narrower)} of {len(cats)} concatenations narrower")


@pytest.mark.parametrize("structure", ["unstructured", "2:4", "block"])
def test_other_structures_on_mobilenet_v3(models, structure):
    model = models("MobileNetV3Small")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2:4 leaves the 3-channel stem conv, with a warning
        pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure=structure)
    prune.update_pruning_step(pruned, 0)
    sparsity = prune.sparsity(pruned)
    assert sparsity["expanded_conv_squeeze_excite_conv"] == pytest.approx(0.5, abs=0.02)
    stripped = prune.strip_pruning(pruned)
    assert stripped.count_params() == model.count_params()
    assert prune.sparsity(stripped) == sparsity
    _assert_same(stripped, pruned, rel=1e-5)


def test_keras3_idioms_in_one_graph():
    """keras.ops nodes, Rescaling, Normalization, squeeze-excite Multiply, Concatenate,
    GlobalAveragePooling2D(keepdims), ZeroPadding2D, Reshape, Dropout, a nested model."""
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((8, 8, 12))
    y = L.Conv2D(10, 1, name="inner_conv")(inner_in)
    y = L.ReLU()(L.BatchNormalization(name="inner_bn")(y))
    nested = keras.Model(inner_in, L.Conv2D(6, 1, name="inner_out")(y), name="nested")

    x = inp = keras.Input((8, 8, 3))
    x = L.Rescaling(1 / 127.5, offset=-1)(x)
    x = L.Conv2D(12, 3, padding="same", name="c1")(x)
    x = L.Normalization(name="norm")(x)  # per channel, after a conv
    x = keras.ops.relu6(x + 3.0) * (1.0 / 6.0) * x  # hard-swish written with keras.ops
    x = L.ZeroPadding2D(1)(x)
    x = L.DepthwiseConv2D(3, use_bias=False, name="dw")(x)
    se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(4, 1, activation="relu", name="se_reduce")(se)
    se = L.Conv2D(12, 1, name="se_expand")(se)
    se = keras.ops.relu6(se + 3.0) * (1.0 / 6.0)
    x = L.Multiply(name="se_mul")([x, se])
    v = L.GlobalAveragePooling2D()(L.Conv2D(8, 1, name="c_vec")(x))
    v = L.Reshape((1, 1, 8))(L.Dropout(0.1)(v))
    v = L.Conv2D(5, 1, name="c_after_reshape")(v)
    to_nested = L.Conv2D(12, 1, name="c_to_nested")(x)
    cat = L.Concatenate(name="cat")([L.Conv2D(6, 1, name="c_cat")(x), nested(to_nested)])
    out = L.Dense(4, name="logits")(L.Flatten()(L.Conv2D(3, 1, name="c_out")(cat)))
    out = L.Add()([out, L.Dense(4, name="logits_v")(L.Flatten()(v))])
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    norm = model.get_layer("norm")
    norm.set_weights([rng.random(12, dtype=np.float32), 1 + rng.random(12, dtype=np.float32),
                      np.array(1)])  # fmt: skip
    norm.finalize_state()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure="channel")
    prune.update_pruning_step(pruned, 0)
    roles = {layer.name: type(layer).__name__ for layer in pruned.layers}
    for source in ("c1", "se_expand", "se_reduce", "c_vec", "c_cat"):
        assert roles[f"prune_low_magnitude_{source}"] == "PruneLowMagnitude"
    assert roles["channel_follower_norm"] == "ChannelFollower"
    # the nested model is inlined: its input and output channel spaces run through it
    assert roles["prune_low_magnitude_c_to_nested"] == "PruneLowMagnitude"
    nested_pruned = pruned.get_layer("nested")
    for name in ("inner_conv", "inner_out"):
        assert isinstance(nested_pruned.get_layer(f"prune_low_magnitude_{name}"),
                          prune.PruneLowMagnitude)  # fmt: skip

    stripped = prune.strip_pruning(pruned)
    assert stripped.get_layer("c1").filters == 6
    assert stripped.get_layer("se_expand").filters == 6  # shares c1's mask through se_mul
    assert stripped.get_layer("dw").kernel.shape == (3, 3, 6, 1)
    assert stripped.get_layer("norm").mean.shape[-1] == 6
    assert stripped.get_layer("c_vec").filters == 4
    assert stripped.get_layer("c_after_reshape").kernel.shape[-2] == 4  # through the Reshape
    assert stripped.get_layer("c_to_nested").filters == 6
    assert stripped.get_layer("nested").get_layer("inner_conv").kernel.shape[-2:] == (6, 5)
    assert stripped.get_layer("nested").get_layer("inner_out").filters == 3
    # the pruned channels of c_cat and of the nested model's output leave the concatenation
    assert stripped.get_layer("c_cat").filters == 3
    assert stripped.get_layer("cat").output.shape[-1] == 6
    assert stripped.get_layer("c_out").kernel.shape[-2] == 6
    assert stripped.count_params() < model.count_params()
    x = rng.random((2, 8, 8, 3), dtype=np.float32) * 255
    np.testing.assert_allclose(stripped(x), pruned(x, training=False), rtol=1e-5, atol=1e-5)


def test_op_that_breaks_zeros_is_named():
    """An op turning zero into non-zero before a conv (no Multiply after it to zero the
    channel again) keeps strip from removing the channel: prune says which op, and leaves
    that conv unpruned."""
    x = inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c1")(x)
    x = keras.ops.exp(x)
    x = L.Conv2D(8, 3, name="c2", activation="relu")(x)
    out = L.Dense(2, name="logits")(L.GlobalAveragePooling2D()(x))
    with pytest.warns(UserWarning, match=r"'c1'.*keras\.ops\.Exp.*zero") as record:
        pruned = prune.prune_low_magnitude(keras.Model(inp, out), structure="channel")
    assert "c2" in str(record[0].message)
    assert type(pruned.get_layer("c1")).__name__ == "Conv2D"
    assert isinstance(pruned.get_layer("prune_low_magnitude_c2"), prune.PruneLowMagnitude)


class _Kept(keras.layers.Layer):
    """A layer holding a kernel that is not one effkeras knows how to prune."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.width), name="kernel")

    def call(self, x):
        return keras.ops.matmul(x, self.kernel)


class _Opaque(_Kept):
    """...that also cannot be rebuilt from its config (a callable argument)."""

    def __init__(self, width, fn, **kwargs):
        super().__init__(width, **kwargs)
        self.fn = fn


@pytest.mark.parametrize("structure", ["unstructured", "channel"])
def test_uncloneable_layer_is_named(structure):
    x = inp = keras.Input((4,))
    out = _Opaque(3, lambda v: v, name="opaque")(L.Dense(8, name="d1")(x))
    with pytest.raises(PruningError, match=r"'opaque' \(_Opaque\).*get_config"):
        prune.prune_low_magnitude(keras.Model(inp, out), structure=structure)


def test_lambda_layer_is_shared_not_rebuilt():
    """A Lambda of a Python lambda cannot be deserialized in safe mode; it holds no
    state, so the pruned and stripped models share it."""
    x = inp = keras.Input((8, 8, 3))
    x = L.Lambda(lambda t: t * 2.0, name="double")(L.Conv2D(4, 3, name="c1")(x))
    out = L.Dense(2)(L.Flatten()(L.Conv2D(4, 1, name="c2")(x)))
    model = keras.Model(inp, out)
    for structure in ("unstructured", "channel"):
        pruned = prune.prune_low_magnitude(model, structure=structure)
        prune.update_pruning_step(pruned, 0)
        stripped = prune.strip_pruning(pruned)
        assert stripped.get_layer("double") is model.get_layer("double")
        x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
        np.testing.assert_allclose(stripped(x), pruned(x), rtol=1e-5, atol=1e-6)


def test_layer_with_a_kernel_left_unpruned_is_named():
    x = inp = keras.Input((4,))
    out = _Kept(3, name="kept")(L.Dense(8, name="d1")(x))
    with pytest.warns(UserWarning, match=r"'kept' \(_Kept\).*get_prunable_weights"):
        pruned = prune.prune_low_magnitude(keras.Model(inp, out))
    assert type(pruned.get_layer("kept")).__name__ == "_Kept"
    assert isinstance(pruned.get_layer("prune_low_magnitude_d1"), prune.PruneLowMagnitude)


def test_application_nested_in_sequential():
    """Transfer-learning shape: an application without its top, inside a Sequential. The
    base is inlined into the channel analysis, so its last convolution (most of its
    parameters) is pruned too and the head's Dense loses the matching rows."""
    keras.utils.set_random_seed(0)
    base = A.MobileNet(input_shape=SHAPE, weights=None, include_top=False, alpha=0.25)
    model = keras.Sequential(
        [keras.Input(SHAPE), base, L.GlobalAveragePooling2D(), L.Dropout(0.2), L.Dense(10)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune.prune_low_magnitude(model, prune.ConstantSparsity(0.5, 0), structure="channel")
    prune.update_pruning_step(pruned, 0)
    stripped = prune.strip_pruning(pruned)
    assert stripped.count_params() < 0.3 * model.count_params()
    assert stripped.layers[0].output.shape[-1] == base.output.shape[-1] // 2
    assert stripped.layers[-1].kernel.shape == (base.output.shape[-1] // 2, 10)
    _assert_same(stripped, pruned)

