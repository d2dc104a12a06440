"""Per-tensor weight quantization: ``quantize_model(per_channel=False)`` and
``to_tflite(..., per_channel=False)``.

One scale per kernel instead of one per output channel: the .tflite file loses the
per-channel scale and int64 zero point of every kernel and bias (24 bytes a channel), and
the int8 model still agrees with the Keras QAT model and runs on TFLM.
"""

from __future__ import annotations

import numpy as np
import pytest

from effkeras.convert import read_tflite, to_tflite
from effkeras.errors import ConversionError, QuantizationError
from effkeras.runtime import LiteRTRunner, TFLMRunner


def _model(keras):
    """Conv + BN + ReLU, depthwise + BN + ReLU6, pointwise, dense: every weight kind."""
    layers = keras.layers
    x = inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name="dw_bn")(x)
    x = layers.ReLU(6.0, name="dw_relu6")(x)
    x = layers.Conv2D(12, 1, name="pw")(x)
    x = layers.ReLU(name="pw_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, x, name="per_tensor_probe")


@pytest.fixture(scope="module")
def trained(digits):
    import keras

    x_train, y_train, _, _ = digits
    keras.utils.set_random_seed(3)
    model = _model(keras)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def qat_pair(trained, digits):
    """(per-tensor QAT model, its int8 file, the per-channel twin's int8 file)."""
    import keras

    from effkeras.callbacks import FreezeBatchNorm
    from effkeras.quantize import quantize_model

    x_train, y_train, _, _ = digits
    files = {}
    for per_channel in (True, False):
        keras.utils.set_random_seed(4)
        qat = quantize_model(trained, calibration_data=x_train[:256], per_channel=per_channel)
        qat.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy")
        qat.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0, callbacks=[FreezeBatchNorm(epoch=1)])
        files[per_channel] = (qat, to_tflite(qat, quantize="int8"))
    return files[False][0], files[False][1], files[True][1]


def _weight_ops(data):
    m = read_tflite(data)
    ops = [op for op in m.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    return m, ops


def _channels(m, op):
    w = m.tensors[op.inputs[1]]
    return w.shape[0] if op.name == "CONV_2D" else w.shape[3]


def test_qat_per_tensor_file_has_one_scale_per_kernel_and_is_smaller(qat_pair):
    _, data, per_channel_data = qat_pair
    m, ops = _weight_ops(data)
    assert {op.name for op in ops} == {"CONV_2D", "DEPTHWISE_CONV_2D"}
    for op in ops:
        x, w, b = (m.tensors[i] for i in op.inputs[:3])
        assert w.quantization.scales.size == 1 and b.quantization.scales.size == 1, op.name
        assert int(np.abs(m.tensor_data(w)).max()) == 127  # symmetric max-abs over the whole kernel
        np.testing.assert_allclose(
            b.quantization.scales, float(x.quantization.scales[0]) * w.quantization.scales, rtol=1e-5
        )
    pm, pops = _weight_ops(per_channel_data)
    assert all(pm.tensors[op.inputs[1]].quantization.scales.size > 1 for op in pops)
    channels = sum(_channels(pm, op) for op in pops)
    saved = len(per_channel_data) - len(data)
    # 12 bytes (float scale + int64 zero point) per channel, for the kernel and the bias
    assert 20 * (channels - len(pops)) <= saved <= 28 * channels, (saved, channels)


def test_qat_per_tensor_model_agrees_with_litert_and_tflm(qat_pair, digits):
    qat, data, _ = qat_pair
    x = digits[2][:150]
    keras_out = qat.predict(x, verbose=0)
    for out in (LiteRTRunner(data, kernels="reference").predict(x), TFLMRunner(data).predict(x)):
        diff = np.abs(keras_out - out)
        assert np.mean(diff <= (1 / 256) * 1.0001) >= 0.99
        assert np.mean(diff <= 1e-6) >= 0.97
        assert np.mean(keras_out.argmax(-1) == out.argmax(-1)) >= 0.995


def test_qat_per_tensor_accuracy_is_close_to_per_channel(qat_pair, digits):
    _, data, per_channel_data = qat_pair
    x_test, y_test = digits[2], digits[3]
    acc = np.mean(LiteRTRunner(data).predict(x_test).argmax(1) == y_test)
    ref = np.mean(LiteRTRunner(per_channel_data).predict(x_test).argmax(1) == y_test)
    assert acc >= 0.9 and acc >= ref - 0.03, (acc, ref)


def test_per_channel_setting_survives_saving(qat_pair, digits, tmp_path):
    import keras

    qat, _, _ = qat_pair
    path = tmp_path / "qat.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path)
    flags = {la.name: la.per_channel for la in loaded.layers if hasattr(la, "per_channel")}
    assert flags and not any(flags.values()), flags
    x = digits[2][:64]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)


def test_ptq_per_tensor(trained, digits):
    x_train, _, x_test, y_test = digits
    per_channel = to_tflite(trained, quantize="int8", representative_data=x_train[:200])
    data = to_tflite(trained, quantize="int8", representative_data=x_train[:200], per_channel=False)
    m, ops = _weight_ops(data)
    assert ops and all(m.tensors[op.inputs[1]].quantization.scales.size == 1 for op in ops)
    assert len(data) < len(per_channel)
    acc = np.mean(LiteRTRunner(data).predict(x_test).argmax(1) == y_test)
    ref = np.mean(LiteRTRunner(per_channel).predict(x_test).argmax(1) == y_test)
    assert acc >= ref - 0.03, (acc, ref)


def test_dynamic_per_tensor(digits_model):
    data = to_tflite(digits_model, quantize="dynamic", per_channel=False)
    m = read_tflite(data)
    int8 = [m.tensors[op.inputs[1]] for op in m.ops if op.name == "CONV_2D"
            and m.tensors[op.inputs[1]].dtype == "INT8"]  # the converter leaves tiny kernels float
    assert int8 and all(w.quantization.scales.size == 1 for w in int8)


def test_per_channel_mismatch_and_bad_values_are_refused(trained, qat_pair, digits):
    from effkeras.quantize import quantize_model

    qat, _, _ = qat_pair
    with pytest.raises(ConversionError, match=r"quantize_model\(model, per_channel=True\)"):
        to_tflite(qat, quantize="int8", per_channel=True)
    with pytest.raises(ConversionError, match="quantize='float16'"):
        to_tflite(trained, quantize="float16", per_channel=False)
    # the converter cannot quantize a depthwise kernel per tensor in int16x8: said up front
    with pytest.raises(ConversionError, match="Received: per_channel=False with quantize='int16x8'"):
        to_tflite(trained, quantize="int16x8", representative_data=digits[0][:10], per_channel=False)
    with pytest.raises(ConversionError, match="Received: per_channel='no'"):
        to_tflite(trained, quantize="int8", representative_data=digits[0][:10], per_channel="no")
    with pytest.raises(QuantizationError, match="Received: per_channel=1"):
        quantize_model(trained, per_channel=1)
