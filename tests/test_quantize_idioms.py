"""Keras 3 idioms in a functional graph, per-layer control (tfmot names), int4 weights and
what cannot be int8 (issue 20)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from effkeras.errors import QuantizationError


def _idioms_model():
    """Every idiom of the issue in one small graph."""
    import keras
    from keras import ops

    L = keras.layers
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((8, 8, 12))
    inner = keras.Model(inner_in, L.Conv2D(12, 1, activation="relu")(inner_in), name="inner")
    inp = keras.Input((8, 8, 3))
    x = L.Rescaling(1 / 127.5, offset=-1.0)(inp)
    norm = L.Normalization(mean=[0.1, 0.0, -0.1], variance=[0.5, 1.0, 2.0])
    x = norm(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(12, 3, activation="swish")(x)  # silu as a conv activation
    a = L.Activation("hard_swish")(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(a)
    s = L.Conv2D(12, 1, activation="sigmoid")(s)
    x = L.Multiply()([a, s])  # squeeze-excite, broadcasting (1, 1, C)
    x = ops.add(x, 0.5) * 2.0  # keras.ops nodes with constants
    x = L.Activation("hard_sigmoid")(x)
    x = L.AveragePooling2D(3, strides=1, padding="same")(x)  # odd size, same scale
    x = L.BatchNormalization()(x)  # lone batch norm (not after a conv)
    x = L.ReLU()(x)
    y = inner(x)  # nested model
    x = L.Concatenate()([x, y])
    x = L.Dropout(0.1)(x)
    x = L.Reshape((2, 2, 96))(L.AveragePooling2D(2)(x))
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)
    bn = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)][0]
    rng = np.random.default_rng(0)
    bn.moving_mean.assign(rng.normal(0, 0.1, 12).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 12).astype("float32"))
    return model


def test_keras_idioms_are_full_int8_and_match_reference_kernels(rng):
    import keras

    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import quantize_model, report
    from effkeras.runtime import LiteRTRunner

    model = _idioms_model()
    x = rng.uniform(0, 255, (48, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 48)
    q = quantize_model(model, calibration_data=x[:32])
    rep = report(q)
    assert rep.is_full_integer, rep
    # Rescaling and Normalization merge into one affine (one MUL and one ADD)
    rescaling = [layer.name for layer in model.layers if type(layer).__name__ == "Rescaling"][0]
    assert rep.fused[model.layers[2].name] == rescaling
    q.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", run_eagerly=True)
    q.fit(x[:32], y[:32], batch_size=16, epochs=1, verbose=0)
    data = to_tflite(q, quantize="int8")
    parsed = read_tflite(data)
    assert parsed.is_full_integer and not parsed.float_ops()
    assert parsed.op_counts["AVERAGE_POOL_2D"] == 2
    for op in parsed.ops:  # TFLite's same-scale constraint holds on every pooling op
        if op.name == "AVERAGE_POOL_2D":
            qi = parsed.tensors[op.inputs[0]].quantization
            qo = parsed.tensors[op.outputs[0]].quantization
            assert qi.scales[0] == pytest.approx(qo.scales[0]) and qi.zero_points[0] == qo.zero_points[0]
    ref = q.predict(x[32:], verbose=0)
    lite = LiteRTRunner(data, kernels="reference").predict(x[32:])
    assert np.mean(np.abs(ref - lite) <= 1.0001 / 256) >= 0.99
    # the rewritten model saves and loads
    assert keras.ops.convert_to_numpy(q(x[:2])).shape == (2, 10)


def test_unsupported_layers_are_reported_by_name_never_attribute_errors():
    import keras
    from keras import ops

    from effkeras.quantize import quantize_model, report

    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="gelu", name="gelu_conv")(inp)
    x = ops.sin(x)  # a keras.ops node without an int8 rule
    x = L.LayerNormalization(name="ln")(x)
    model = keras.Model(inp, L.Flatten()(x))
    with pytest.raises(QuantizationError, match="gelu_conv.*gelu"):
        quantize_model(model, strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize_model(model)
    rep = report(q)
    assert set(rep.float_layers) >= {"gelu_conv", "ln"}
    assert any("Sin" in why for why in rep.float_layers.values())
    assert any("register_rule" in why for why in rep.float_layers.values())
    assert len(caught) >= 3


def test_register_rule_and_annotations_control_each_layer(rng):
    import keras

    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import (
        QuantizeConfig,
        quantize_annotate_layer,
        quantize_annotate_model,
        quantize_apply,
        quantize_model,
        quantize_scope,
        register_rule,
        report,
        weight_bits,
    )

    @keras.saving.register_keras_serializable(package="test_idioms")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    register_rule(Doubler, "output_range")
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    x = quantize_annotate_layer(L.Conv2D(8, 3, name="c4"), QuantizeConfig(weight_bits=4))(inp)
    x = Doubler(name="double")(x)
    x = quantize_annotate_layer(L.Conv2D(8, 3, name="cfloat"), QuantizeConfig(leave_float=True))(x)
    x = L.Conv2D(8, 1, name="plain")(x)
    model = keras.Model(inp, L.Flatten()(x))
    data_x = rng.random((16, 8, 8, 1), dtype=np.float32)

    applied = quantize_apply(model, calibration_data=data_x)  # double, plain: not annotated
    assert set(report(applied).float_layers) == {"double", "cfloat", "plain"}
    q = quantize_model(model, calibration_data=data_x)
    assert "double" in report(q).quantized and set(report(q).float_layers) == {"cfloat"}
    assert weight_bits(q) == {"c4": 4, "plain": 8}
    ints, scale = q.get_layer("c4").integer_weights()
    assert ints.min() >= -7 and ints.max() <= 7 and np.all(ints == np.round(ints))
    assert np.abs(ints).max() == 7  # the largest weight of a channel is +-7 steps

    full = quantize_annotate_model(model)  # cfloat keeps its leave_float annotation
    assert set(report(quantize_apply(full)).float_layers) == {"cfloat"}

    model_4 = quantize_model(
        keras.Model(inp, L.Flatten()(L.Conv2D(8, 3, name="k")(inp))), weight_bits=4,
        calibration_data=data_x,
    )
    parsed = read_tflite(to_tflite(model_4, quantize="int8"))
    kernels = [t for t in parsed.tensors if t.is_constant and len(t.shape) == 4]
    assert [t.dtype for t in kernels] == ["INT8"]
    values = parsed.tensor_data(kernels[0])
    assert values.min() >= -7 and values.max() <= 7

    with pytest.raises(QuantizationError, match="weight_bits"):
        QuantizeConfig(weight_bits=3)
    with pytest.raises(QuantizationError, match="symmetric"):
        QuantizeConfig(symmetric=False)
    with pytest.raises(QuantizationError, match="weight_bits"):
        quantize_model(model, weight_bits=2)
    with pytest.raises(QuantizationError, match="kind"):
        register_rule(Doubler, "int3")
    with pytest.raises(QuantizationError, match="no annotated layer"):
        fresh = keras.Input((8, 8, 1))
        quantize_apply(keras.Model(fresh, L.Flatten()(fresh)))

    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "q.keras")
        q.save(path)
        with quantize_scope({"Doubler": Doubler}):
            loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(q.predict(data_x, verbose=0), loaded.predict(data_x, verbose=0))
    assert loaded.get_layer("c4").weight_bits == 4


def test_constant_operation_and_average_pooling_configs_round_trip():
    from effkeras.quantize import ConstantOperation, QuantAveragePooling2D
    from effkeras.quantize.elementwise import converter_constant

    layer = ConstantOperation("multiply", [0.5, 1.0, 2.0], name="m")
    assert ConstantOperation.from_config(layer.get_config()).get_config() == layer.get_config()
    pool = QuantAveragePooling2D(3, strides=1, padding="same", name="p")
    assert QuantAveragePooling2D.from_config(pool.get_config()).get_config() == pool.get_config()
    # the converter's rounding of a constant: per tensor over [min(c, 0), max(c, 0)]
    np.testing.assert_allclose(converter_constant([0.5, 1.0, 2.0]), [64 * 2 / 255, 1.0039216, 2.0],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="operation"):
        ConstantOperation("divide", 2.0)
    with pytest.raises(ValueError, match="pool_size"):
        QuantAveragePooling2D(0)


def _multiply_by_quantized_multiplier(acc: int, multiplier: float) -> int:
    """TFLite's QuantizeMultiplier + MultiplyByQuantizedMultiplier, in Python integers
    (tensorflow/lite/kernels/internal/common.h, quantization_util.cc)."""
    import math

    fraction, shift = math.frexp(multiplier)
    q31 = int(math.floor(fraction * 2**31 + 0.5))
    if q31 == 2**31:
        q31, shift = q31 // 2, shift + 1
    a = acc * 2 ** max(shift, 0)
    ab = a * q31  # SaturatingRoundingDoublingHighMul: nudge, then truncate toward zero
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    high = abs(ab + nudge) // 2**31 * (1 if ab + nudge >= 0 else -1)
    right = max(-shift, 0)  # RoundingDivideByPOT: half away from zero
    if right == 0:
        return high
    mask = (1 << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if remainder > threshold else 0)


def test_requantize_integer_is_tflites_fixed_point_rounding_ties_included():
    """The 31-bit multiplier decides exact ties (scales in the ratio 51/26: (q - z) = 13)."""
    import keras

    from effkeras.quantize.quantizers import requantize_integer

    rng = np.random.default_rng(1)
    s_in = float(np.float32(0.02933686412870884))
    cases = [(s_in, float(np.float32(0.01495604868978262)))]  # NASNet's RELU: 51/26
    cases += [(float(a), float(b)) for a, b in rng.uniform(1e-3, 0.1, (40, 2)).astype("float32")]
    for a, b in cases:
        for m in (a / b, a * b / max(a, b) / 7.0):  # a RELU/QUANTIZE and a MUL multiplier
            acc = np.concatenate([np.arange(-300, 301), rng.integers(-65025, 65026, 200)])
            expected = [_multiply_by_quantized_multiplier(int(k), m) for k in acc]
            got = keras.ops.convert_to_numpy(requantize_integer(acc.astype("float64"), m))
            np.testing.assert_array_equal(got, expected)
    # the tie itself: 13 * 51/26 = 25.5, and the float32 scales put it below
    assert _multiply_by_quantized_multiplier(13, cases[0][0] / cases[0][1]) == 25


def test_add_integer_is_tflites_int8_add_ties_included():
    """ADD: inputs shifted by 20 bits and rescaled, the sum requantized. With an output
    scale twice an input's (NASNet: a concatenation's range), odd inputs are exact ties,
    which the kernel rounds away from zero; the real sum in float32 lands on either side."""
    import keras

    from effkeras.quantize.quantizers import add_integer

    def tflite_add(k1, k2, s1, s2, s_out):
        twice = 2.0 * max(s1, s2)
        a1 = _multiply_by_quantized_multiplier(k1 * 2**20, s1 / twice)
        a2 = _multiply_by_quantized_multiplier(k2 * 2**20, s2 / twice)
        return _multiply_by_quantized_multiplier(a1 + a2, twice / (2**20 * s_out))

    rng = np.random.default_rng(2)
    s2 = float(np.float32(0.046372752636671066))
    cases = [(float(np.float32(0.01871398277580738)), s2, 2.0 * s2)]
    cases += [tuple(float(v) for v in rng.uniform(1e-3, 0.1, 3).astype("float32")) for _ in range(20)]
    for s1, s2, s_out in cases:
        k1 = rng.integers(-255, 256, 400)
        k2 = rng.integers(-255, 256, 400)
        k1[:50] = 0  # ties when s_out = 2 * s2 and k2 is odd
        expected = [tflite_add(int(a), int(b), s1, s2, s_out) for a, b in zip(k1, k2, strict=True)]
        got = keras.ops.convert_to_numpy(add_integer(
            keras.ops.convert_to_tensor(k1, "float64"), keras.ops.convert_to_tensor(k2, "float64"),
            *(keras.ops.convert_to_tensor(v, "float64") for v in (s1, s2, s_out))))
        np.testing.assert_array_equal(got, expected)
    s1, s2, s_out = cases[0]
    assert tflite_add(0, 3, s1, s2, s_out) == 2 and tflite_add(0, -3, s1, s2, s_out) == -2


def _kernels_model():
    """MUL, standalone RELU after CONCATENATION, equal ReLUs of one conv, ADD into a
    concatenation, and a 2x2 AVERAGE_POOL_2D (ties), each once."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(5)
    inp = keras.Input((12, 12, 4))
    x = L.Conv2D(8, 3, padding="same", name="conv")(inp)
    a = L.ReLU(name="relu_a")(x)  # two equal ReLUs of one conv: one fused CONV_2D
    b = L.ReLU(name="relu_b")(x)
    a = L.Conv2D(8, 1, name="branch")(a)
    b = L.AveragePooling2D(2, strides=1, padding="same", name="pool")(b)
    s = L.Add(name="add")([a, b])  # consumed only by the concatenation
    m = L.Multiply(name="mul")([a, L.Activation("sigmoid", name="gate")(a)])
    c = L.Concatenate(name="concat")([s, m])
    out = L.ReLU(name="relu_out")(c)  # a RELU op after the concatenation
    return keras.Model(inp, out)


def test_int8_kernels_are_simulated_bit_for_bit(rng):
    """Keras's int8 inference equals LiteRT's reference kernels element for element.

    Before: MUL was rounded once (it requantizes in two steps), the conv's two ReLUs and
    the ADD into the concatenation each had a range the converter drops, the RELU after
    the concatenation was fused into it in Keras but not in the file, and float32 put
    2x2 average-pool ties on the wrong side: 22% of these outputs differed (78% equal).
    """
    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import quantize_model
    from effkeras.runtime import LiteRTRunner

    x = rng.normal(0, 1, (24, 12, 12, 4)).astype("float32")
    q = quantize_model(_kernels_model(), calibration_data=x[:16])
    data = to_tflite(q, quantize="int8")
    parsed = read_tflite(data)
    assert parsed.op_counts["RELU"] == 1 and parsed.op_counts["MUL"] == 1
    dequantize = [op for op in parsed.ops if op.name == "DEQUANTIZE"]
    assert len(dequantize) == 1  # the int8 output, dequantized at the end
    grid = parsed.tensors[dequantize[0].inputs[0]].quantization
    scale, zero = grid.scales[0], grid.zero_points[0]
    lite = np.round(LiteRTRunner(data, kernels="reference").predict(x[16:]) / scale + zero)
    keras_q = np.round(q.predict(x[16:], verbose=0) / scale + zero)
    assert keras_q.shape == lite.shape == (8, 12, 12, 16)
    assert np.mean(keras_q == lite) >= 0.999, np.mean(keras_q == lite)
