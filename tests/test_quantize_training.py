"""QAT layers and rewrite: folding math, callbacks, save/load, checkpoint resume, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from effkeras.errors import QuantizationError


def _tiny_cnn(keras, bias=False):
    layers = keras.layers
    x = inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(4, 3, padding="same", use_bias=bias, name="conv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(10, name="logits")(x)
    x = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, x, name="tiny")


@pytest.fixture
def tiny(digits):
    import keras

    keras.utils.set_random_seed(5)
    model = _tiny_cnn(keras, bias=True)
    bn = model.get_layer("bn")
    rng = np.random.default_rng(0)
    bn.gamma.assign(rng.uniform(0.5, 1.5, 4).astype("float32"))
    bn.beta.assign(rng.normal(0, 0.1, 4).astype("float32"))
    bn.moving_mean.assign(rng.normal(0, 0.1, 4).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 4).astype("float32"))
    return model


def test_rewrite_keeps_the_float_function_up_to_quantization(tiny, digits):
    from effkeras.quantize import quantize_model, report

    x = digits[0][:64]
    q = quantize_model(tiny, calibration_data=x)
    rep = report(q)
    assert rep.fused == {"bn": "conv", "relu": "conv"} and not rep.float_layers
    assert [type(layer).__name__ for layer in q.layers][1:4] == [
        "QuantizeActivation", "QuantConv2D", "Flatten"
    ]
    ref, out = tiny.predict(x, verbose=0), q.predict(x, verbose=0)
    assert np.max(np.abs(ref - out)) < 0.05  # quantization noise only
    assert np.mean(ref.argmax(1) == out.argmax(1)) >= 0.95


def test_folded_kernel_is_gamma_over_sigma(tiny):
    from effkeras.quantize import quantize_model

    q = quantize_model(tiny)
    kernel, bias = q.get_layer("conv").folded_weights()
    bn = tiny.get_layer("bn")
    g, b, m, v = (np.asarray(w) for w in bn.get_weights())
    factor = g / np.sqrt(v + bn.epsilon)
    conv = tiny.get_layer("conv")
    np.testing.assert_allclose(kernel, np.asarray(conv.kernel) * factor, rtol=1e-5)
    np.testing.assert_allclose(bias, (np.asarray(conv.bias) - m) * factor + b, rtol=1e-5, atol=1e-6)


def test_training_branch_matches_batch_normalization(tiny, digits):
    """Before freezing, the folded layer's training output is BN with batch statistics."""
    import keras

    from effkeras.quantize import quantize_model

    x = digits[0][:64]
    q = quantize_model(tiny)
    conv = q.get_layer("conv")
    before_mean = np.asarray(conv.moving_mean).copy()
    inp = q.get_layer("image_quant")(x)
    out, _, _ = conv._batch_norm_training(inp)
    out = keras.ops.convert_to_numpy(out)
    conv(inp, training=True)
    y = keras.ops.convert_to_numpy(tiny.get_layer("conv")(inp))
    bn = tiny.get_layer("bn")
    mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    g, b = np.asarray(bn.gamma), np.asarray(bn.beta)
    expected = g * (y - mean) / np.sqrt(var + bn.epsilon) + b
    # equal up to the int8 weight quantization
    assert np.max(np.abs(out - expected)) < 0.05 * np.max(np.abs(expected))
    assert not np.allclose(before_mean, np.asarray(conv.moving_mean))  # stats updated


def test_fold_batchnorm_false_folds_once_and_trains_without_batch_stats(tiny, digits):
    from effkeras.quantize import quantize_model

    x = digits[0][:64]
    static = quantize_model(tiny, fold_batchnorm=False, calibration_data=x)
    dynamic = quantize_model(tiny, calibration_data=x)
    conv = static.get_layer("conv")
    assert not conv.batch_norm and conv.use_bias
    assert np.abs(static.predict(x, verbose=0) - dynamic.predict(x, verbose=0)).max() < 1e-5
    with pytest.raises(QuantizationError, match="fold_batchnorm=1"):
        quantize_model(tiny, fold_batchnorm=1)


def test_callbacks_freeze_state_and_ranges(tiny, digits):
    import keras

    from effkeras.callbacks import FreezeBatchNorm, FreezeQuantRanges
    from effkeras.quantize import quantize_model

    x, y = digits[0][:128], digits[1][:128]
    q = quantize_model(tiny, calibration_data=x)
    q.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    q.fit(x, y, epochs=1, batch_size=32, verbose=0,
          callbacks=[FreezeBatchNorm(epoch=1), FreezeQuantRanges(epoch=1)])
    conv = q.get_layer("conv")
    assert float(conv.bn_frozen) == 0.0 and float(conv.ranges_frozen) == 0.0
    q.fit(x, y, epochs=3, initial_epoch=1, batch_size=32, verbose=0,
          callbacks=[FreezeBatchNorm(epoch=1), FreezeQuantRanges(epoch=2)])
    assert float(conv.bn_frozen) == 1.0 and float(conv.ranges_frozen) == 1.0
    # frozen: one more epoch moves neither the statistics nor the ranges
    stats = np.asarray(conv.moving_variance).copy()
    ranges = conv.output_range
    q.fit(x, y, epochs=4, initial_epoch=3, batch_size=32, verbose=0,
          callbacks=[FreezeBatchNorm(epoch=1), FreezeQuantRanges(epoch=2)])
    np.testing.assert_array_equal(stats, np.asarray(conv.moving_variance))
    assert conv.output_range == ranges


def test_save_and_load_give_identical_outputs(tiny, digits, tmp_path):
    import keras

    import effkeras  # noqa: F401  (registration)
    from effkeras.callbacks import FreezeBatchNorm
    from effkeras.quantize import quantize_model, report

    x, y = digits[0][:96], digits[1][:96]
    q = quantize_model(tiny, calibration_data=x)
    q.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    q.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[FreezeBatchNorm(epoch=1)])
    path = tmp_path / "qat.keras"
    q.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(q.predict(x, verbose=0), loaded.predict(x, verbose=0))
    conv = loaded.get_layer("conv")
    assert conv.input_grid() is not None  # the loaded model is re-linked for exact inference
    assert float(conv.bn_frozen) == 1.0
    assert conv.output_range == q.get_layer("conv").output_range
    assert "conv" in report(loaded).quantized


def test_backup_and_restore_resumes_ranges_and_freeze_state(tiny, digits, tmp_path):
    import keras

    from effkeras.callbacks import FreezeBatchNorm, FreezeQuantRanges
    from effkeras.quantize import quantize_model

    x, y = digits[0][:96], digits[1][:96]

    class StopAt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def make():
        keras.utils.set_random_seed(9)
        q = quantize_model(tiny, calibration_data=x)
        q.compile(keras.optimizers.SGD(1e-2), "sparse_categorical_crossentropy")
        return q

    def callbacks():
        return [keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                FreezeBatchNorm(epoch=1), FreezeQuantRanges(epoch=2)]

    first = make()
    with pytest.raises(RuntimeError, match="interrupted"):
        first.fit(x, y, epochs=4, batch_size=32, verbose=0, shuffle=False,
                  callbacks=[*callbacks(), StopAt()])
    state = {v.path: np.asarray(v).copy() for v in first.non_trainable_variables}
    resumed = make()
    resumed.fit(x, y, epochs=3, batch_size=32, verbose=0, shuffle=False,
                callbacks=callbacks())  # epoch 3 was done: nothing left to train
    for v in resumed.non_trainable_variables:
        np.testing.assert_array_equal(np.asarray(v), state[v.path], err_msg=v.path)
    conv = resumed.get_layer("conv")
    assert float(conv.bn_frozen) == 1.0 and float(conv.ranges_frozen) == 1.0


def test_ptq_and_qat_from_the_same_entry_point(digits_model, digits):
    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import quantize_model

    ptq = quantize_model(digits_model, calibration_data=digits[0][:200])
    lo, hi = ptq.get_layer("image_quant").output_range
    assert lo == 0.0 and hi == pytest.approx(float(digits[0][:200].max()))
    m = read_tflite(to_tflite(ptq, quantize="int8"))
    assert m.is_full_integer
    acc = np.mean(ptq.predict(digits[2], verbose=0).argmax(1) == digits[3])
    assert acc > 0.85


def test_unsupported_layer_stays_float_with_warning_or_raises_when_strict(digits):
    import keras

    from effkeras.convert import to_tflite
    from effkeras.errors import FloatOpsError
    from effkeras.quantize import quantize_model, report

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match="odd_norm"):
        q = quantize_model(model, calibration_data=digits[0][:32])
    assert list(report(q).float_layers) == ["odd_norm"]
    assert "conv" in report(q).quantized and "logits" in report(q).quantized
    with pytest.raises(FloatOpsError):
        to_tflite(q, quantize="int8")
    assert to_tflite(q, quantize="int8", allow_float_ops=True)
    with pytest.raises(QuantizationError, match=r"'odd_norm' \(LayerNormalization\)"):
        quantize_model(model, strict=True)


def test_subclassed_model_is_refused_with_a_way_out():
    import keras

    from effkeras.quantize import quantize_model

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(QuantizationError, match="subclassed Net.*functional"):
        quantize_model(net)
    with pytest.raises(QuantizationError, match="Received: builtins.str"):
        quantize_model("model.keras")


def test_freeze_callbacks_on_a_float_model_raise(digits):
    import keras

    from effkeras.callbacks import FreezeBatchNorm, FreezeQuantRanges

    model = _tiny_cnn(keras)
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = digits[0][:32], digits[1][:32]
    for cb in (FreezeBatchNorm(epoch=1), FreezeQuantRanges(epoch=0)):
        with pytest.raises(QuantizationError, match=f"{type(cb).__name__}.*'tiny'.*quantize_model"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    with pytest.raises(ValueError, match="Received: epoch=-1"):
        FreezeBatchNorm(epoch=-1)


def test_layer_arguments_are_checked_and_config_round_trips():
    from effkeras.quantize import QuantConv2D, QuantDense, QuantizeActivation

    with pytest.raises(ValueError, match="Received: activation='gelu'"):
        QuantConv2D(4, 3, activation="gelu")
    with pytest.raises(ValueError, match="Received: filters=0"):
        QuantConv2D(0, 3)
    with pytest.raises(ValueError, match="fixed_range='swish'"):
        QuantizeActivation(fixed_range="swish")
    layer = QuantDense(5, activation="relu6", batch_norm=True, bn_epsilon=1e-5, name="d")
    config = layer.get_config()
    clone = QuantDense.from_config(config)
    assert clone.get_config() == config
    assert config["bn_epsilon"] == 1e-5 and config["activation"] == "relu6"


def test_no_warning_for_a_fully_supported_model(digits_model):
    from effkeras.quantize import quantize_model

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        quantize_model(digits_model, strict=True)


def test_sequential_with_fused_activation_converts(digits):
    import keras

    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import quantize_model, report

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.AveragePooling2D(2, name="avg"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ]
    )
    q = quantize_model(model, calibration_data=digits[0][:64])
    assert q.get_layer("conv").activation == "relu"
    assert {"conv", "avg", "probs"} <= set(report(q).quantized)
    m = read_tflite(to_tflite(q, quantize="int8"))
    assert m.is_full_integer and m.op_counts["CONV_2D"] == 1
    assert "RELU" not in m.op_counts  # fused into the convolution

    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(QuantizationError, match="not built|no Input"):
        quantize_model(unbuilt)


def test_a_fresh_process_loads_the_model_after_importing_effkeras(tiny, digits, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from effkeras.quantize import quantize_model

    x = digits[0][:16]
    q = quantize_model(tiny, calibration_data=x)
    path = str(tmp_path / "q.keras")
    q.save(path)
    np.save(tmp_path / "x.npy", x)
    expected = q.predict(x, verbose=0)
    # Plain `import effkeras`, before or after keras: no custom_objects, no import of
    # effkeras.quantize by the user.
    for imports in ("import effkeras, keras", "import keras, effkeras"):
        code = (
            f"import json, sys, numpy as np\n{imports}\n"
            f"m = keras.saving.load_model({path!r})\n"
            f"print(json.dumps(m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0).tolist()))"
        )
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = np.asarray(json.loads(proc.stdout.strip().splitlines()[-1]), dtype="float32")
        np.testing.assert_array_equal(got, expected)


def _gemmlowp_requantize(acc: np.ndarray, real_multiplier: float) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier in integers (the reference kernels' rounding)."""
    import math

    q, shift = math.frexp(real_multiplier)
    mult = int(round(q * (1 << 31)))
    left, right = max(shift, 0), max(-shift, 0)
    ab = acc.astype(object) * (1 << left) * mult
    high = np.array([(v + (1 << 30)) // (1 << 31) if v >= 0 else -((-v + (1 << 30) - 1)
                     // (1 << 31)) for v in ab], dtype=np.int64)  # round half up
    mask = (1 << right) - 1
    rem, threshold = high & mask, (mask >> 1) + (high < 0)
    return (high >> right) + (rem > threshold)


def test_requantize_reproduces_the_reference_kernels_fixed_point_rounding():
    import keras

    from effkeras.quantize import requantize

    rng = np.random.default_rng(0)
    acc = rng.integers(-40000, 40000, 4000)
    for multiplier in (0.00731, 0.0421, 0.37, 1.7):
        multiplier = float(np.float32(multiplier))  # 24 bits: held exactly in 31
        want = _gemmlowp_requantize(acc, multiplier)
        got = keras.ops.convert_to_numpy(
            requantize(acc.astype("float64") * multiplier, np.float64(multiplier))
        )
        np.testing.assert_array_equal(got, want, err_msg=str(multiplier))
        # ... which is not rounding once: ties within 2**-shift of a half step differ
        if multiplier < 0.05:
            assert np.any(np.round(acc * multiplier) != want)


def test_inference_links_each_layer_to_its_input_grid_and_export_only_fake_quantizes(tiny, digits):
    import keras

    from effkeras.quantize import (
        QuantGlobalAveragePooling2D,
        export_graph,
        quantization_layers,
        quantize_model,
    )

    x = digits[0][:32]
    q = quantize_model(tiny, calibration_data=x)
    # calibration runs the fake-quantization path, so every range is set (2: calibrated;
    # fixed ranges stay 1)
    assert all(float(layer.range_seen) == (1.0 if layer._fixed_range else 2.0)
               for layer in quantization_layers(q))
    conv = q.get_layer("conv")
    scale, zero = conv.input_grid()
    lo, hi = q.get_layer("image_quant").output_range
    assert float(scale) == pytest.approx((hi - lo) / 255) and float(zero) == -128
    exact = keras.ops.convert_to_numpy(conv(q.get_layer("image_quant")(x)))
    with export_graph():
        fake = keras.ops.convert_to_numpy(conv(q.get_layer("image_quant")(x)))
    step = (conv.output_range[1] - conv.output_range[0]) / 255
    assert np.max(np.abs(exact - fake)) <= step * 1.001  # one rounding step at most
    layer = QuantGlobalAveragePooling2D(keepdims=False, name="gap")
    assert QuantGlobalAveragePooling2D.from_config(layer.get_config()).get_config() == (
        layer.get_config()
    )
    assert conv.get_config()["quantize_output"] is True
