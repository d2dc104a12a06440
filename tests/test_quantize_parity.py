"""QAT models convert to int8 without representative data and agree with LiteRT and TFLM.

Three architectures: the conv + BN + ReLU digits CNN, a depthwise-separable
(MobileNet-style) model with ReLU6, and a residual model with Add, Concatenate and a
nested Sequential. Each is trained in float, rewritten, fine-tuned with QAT, converted.
"""

from __future__ import annotations

import numpy as np
import pytest

from effkeras.convert import read_tflite, to_tflite
from effkeras.runtime import LiteRTRunner, TFLMRunner

SOFTMAX_STEP = 1 / 256


def _separable(keras):
    layers = keras.layers
    x = inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = layers.BatchNormalization(name="dw_bn")(x)
    x = layers.ReLU(6.0, name="dw_relu6")(x)
    x = layers.Conv2D(12, 1, use_bias=False, name="pw")(x)
    x = layers.BatchNormalization(name="pw_bn")(x)
    x = layers.Activation("relu6", name="pw_relu6")(x)
    x = layers.SeparableConv2D(16, 3, strides=2, padding="same", use_bias=False, name="sep")(x)
    x = layers.BatchNormalization(name="sep_bn")(x)
    x = layers.ReLU(6.0, name="sep_relu6")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, x, name="mobilenet_style")


def _residual(keras):
    layers = keras.layers
    x = inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    stem = layers.ReLU(name="stem_relu")(x)
    y = layers.Conv2D(8, 3, padding="same", use_bias=False, name="res_a")(stem)
    y = layers.BatchNormalization(name="res_a_bn")(y)
    y = layers.ReLU(name="res_a_relu")(y)
    y = layers.Conv2D(8, 3, padding="same", use_bias=False, name="res_b")(y)
    y = layers.BatchNormalization(name="res_b_bn")(y)
    x = layers.Add(name="add")([stem, y])
    x = layers.ReLU(name="add_relu")(x)
    branch = keras.Sequential(
        [
            keras.Input((8, 8, 8)),
            layers.Conv2D(4, 1, name="branch_conv"),
            layers.BatchNormalization(name="branch_bn"),
            layers.ReLU(name="branch_relu"),
        ],
        name="branch",
    )
    x = layers.Concatenate(name="concat")([x, branch(x)])
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(10, name="logits")(x)
    x = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, x, name="residual")


def _train_float(build, digits, epochs=6):
    import keras

    x_train, y_train, _, _ = digits
    keras.utils.set_random_seed(2)
    model = build(keras)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def _qat(model, digits, epochs=2):
    import keras

    from effkeras.callbacks import FreezeBatchNorm
    from effkeras.quantize import quantize_model

    x_train, y_train, _, _ = digits
    qat = quantize_model(model, calibration_data=x_train[:256])
    qat.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy")
    qat.fit(
        x_train, y_train, epochs=epochs, batch_size=32, verbose=0,
        callbacks=[FreezeBatchNorm(epoch=1)],
    )
    return qat


@pytest.fixture(scope="module")
def cnn_qat(digits_model, digits):
    return _qat(digits_model, digits)


@pytest.fixture(scope="module")
def cnn_tflite(cnn_qat):
    return to_tflite(cnn_qat, quantize="int8")


@pytest.fixture(scope="module", params=["cnn", "separable", "residual"])
def converted(request, digits, cnn_qat, cnn_tflite):
    if request.param == "cnn":
        return request.param, cnn_qat, cnn_tflite
    build = _separable if request.param == "separable" else _residual
    qat = _qat(_train_float(build, digits), digits)
    return request.param, qat, to_tflite(qat, quantize="int8")


def _assert_int8_between_ends(m):
    assert m.ops[0].name == "QUANTIZE" and m.ops[-1].name == "DEQUANTIZE"
    assert m.is_full_integer and not m.float_ops()
    for op in m.ops[1:-1]:
        for i in op.inputs + op.outputs:
            if i >= 0:
                assert m.tensors[i].dtype in ("INT8", "INT32"), (op.name, m.tensors[i])


def test_converts_without_representative_data_to_all_int8(converted):
    kind, _, data = converted
    m = read_tflite(data)
    _assert_int8_between_ends(m)
    # batch norm folded into the convolutions: no separate MUL/ADD for it
    assert "MUL" not in m.op_counts
    expected_add = 1 if kind == "residual" else 0
    assert m.op_counts.get("ADD", 0) == expected_add
    if kind == "cnn":
        assert m.op_counts["CONV_2D"] == 2
    if kind == "separable":
        assert m.op_counts["DEPTHWISE_CONV_2D"] == 2 and m.op_counts["CONV_2D"] == 3
    if kind == "residual":
        assert m.op_counts["CONV_2D"] == 4 and m.op_counts["CONCATENATION"] == 1


def test_weights_per_channel_and_bias_scale_is_product(converted):
    _, _, data = converted
    m = read_tflite(data)
    checked = 0
    for op in m.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        x, w, b = (m.tensors[i] for i in op.inputs[:3])
        wq, bq = w.quantization, b.quantization
        assert np.all(wq.zero_points == 0) and b.dtype == "INT32"
        q = m.tensor_data(w)
        assert q.min() >= -127  # narrow range
        if op.name != "FULLY_CONNECTED":
            channels = w.shape[0] if op.name == "CONV_2D" else w.shape[3]
            assert wq.scales.size == channels, op.name
            # symmetric max-abs scale: every channel reaches +-127
            axis = 0 if op.name == "CONV_2D" else 3
            reduce = tuple(i for i in range(4) if i != axis)
            assert np.all(np.abs(q).max(axis=reduce) == 127)
        np.testing.assert_allclose(
            bq.scales, float(x.quantization.scales[0]) * wq.scales, rtol=1e-5
        )
        checked += 1
    assert checked >= 3


def test_softmax_output_has_the_fixed_scale(converted):
    _, _, data = converted
    m = read_tflite(data)
    softmax = [op for op in m.ops if op.name == "SOFTMAX"][0]
    q = m.tensors[softmax.outputs[0]].quantization
    assert float(q.scales[0]) == pytest.approx(1 / 256) and int(q.zero_points[0]) == -128


def _agreement(a, b, step):
    within = float(np.mean(np.abs(a - b) <= step * 1.0001))
    argmax = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return within, argmax


def test_keras_qat_model_agrees_with_litert(converted, digits):
    kind, qat, data = converted
    x_test = digits[2]
    keras_out = qat.predict(x_test, verbose=0, batch_size=128)
    litert_out = LiteRTRunner(data).predict(x_test)
    within, argmax = _agreement(keras_out, litert_out, SOFTMAX_STEP)
    assert within >= 0.99, (kind, within)
    assert argmax >= 0.995, (kind, argmax)
    # the simulation is not trivially "close": most outputs are exactly equal
    assert np.mean(np.abs(keras_out - litert_out) < 1e-6) > 0.9


def test_tflm_agrees_with_litert(converted, digits):
    kind, _, data = converted
    x = digits[2][:120]
    litert_out = LiteRTRunner(data, kernels="reference").predict(x)
    tflm_out = TFLMRunner(data).predict(x)
    within, argmax = _agreement(tflm_out, litert_out, SOFTMAX_STEP)
    assert within >= 0.99 and argmax >= 0.995, (kind, within, argmax)


def test_int8_io_on_request(cnn_qat, digits):
    m = read_tflite(to_tflite(cnn_qat, quantize="int8", io_dtype="int8"))
    assert m.inputs[0].dtype == "INT8" and m.outputs[0].dtype == "INT8"
    assert not [t for t in m.tensors if t.dtype.startswith("FLOAT")]
    layer = cnn_qat.get_layer("image_quant")
    lo, hi = layer.output_range
    q = m.inputs[0].quantization
    assert float(q.scales[0]) == pytest.approx((hi - lo) / 255, rel=1e-5)


def test_qat_accuracy_is_close_to_float(cnn_qat, digits_model, digits):
    _, _, x_test, y_test = digits
    float_acc = np.mean(digits_model.predict(x_test, verbose=0).argmax(1) == y_test)
    qat_acc = np.mean(cnn_qat.predict(x_test, verbose=0).argmax(1) == y_test)
    assert qat_acc >= float_acc - 0.03
