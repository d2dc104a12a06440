"""effkeras.convert.to_tflite: modes, model kinds, representative data, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from effkeras.convert import read_tflite, to_tflite
from effkeras.errors import CalibrationDataError, ConversionError, FloatOpsError, InvalidModelError


def _small_sequential():
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def test_int8_float_io_is_all_int8_between_quantize_and_dequantize(int8_tflite):
    m = read_tflite(int8_tflite)
    assert m.ops[0].name == "QUANTIZE" and m.ops[-1].name == "DEQUANTIZE"
    assert m.inputs[0].dtype == "FLOAT32" and m.outputs[0].dtype == "FLOAT32"
    assert m.is_full_integer
    for op in m.ops[1:-1]:
        for i in op.inputs + op.outputs:
            if i >= 0:
                assert m.tensors[i].dtype in ("INT8", "INT32"), (op.name, m.tensors[i])
    # Conv + BN + ReLU folded into one op: no separate MUL/ADD for the batch norm.
    assert "MUL" not in m.op_counts and "ADD" not in m.op_counts
    assert m.op_counts["CONV_2D"] == 2


def test_int8_io_has_no_float_tensor_at_all(int8_io_tflite):
    m = read_tflite(int8_io_tflite)
    assert m.inputs[0].dtype == "INT8" and m.outputs[0].dtype == "INT8"
    assert "QUANTIZE" not in m.op_counts and "DEQUANTIZE" not in m.op_counts
    assert not [t for t in m.tensors if t.dtype.startswith("FLOAT")]
    # softmax output fixed at scale 1/256, zero point -128 (TFLite int8 spec)
    q = m.outputs[0].quantization
    assert float(q.scales[0]) == pytest.approx(1 / 256) and int(q.zero_points[0]) == -128
    assert m.inputs[0].shape == (1, 8, 8, 1)


def test_weights_are_per_channel_symmetric_and_bias_scale_is_product(int8_io_tflite):
    """Conv filters per output channel; dense filters per tensor by default (the 2023
    Arduino TFLM library computes per-channel dense layers wrongly)."""
    m = read_tflite(int8_io_tflite)
    for op in m.ops:
        if op.name not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        x, w, b = (m.tensors[i] for i in op.inputs[:3])
        wq = w.quantization
        if op.name == "CONV_2D":
            assert wq.per_channel and wq.scales.size == w.shape[0]
        else:
            assert wq.scales.size == 1
        assert np.all(wq.zero_points == 0)
        data = m.tensor_data(w)
        assert data.min() >= -127  # narrow range
        assert b.dtype == "INT32"
        np.testing.assert_allclose(
            b.quantization.scales, float(x.quantization.scales[0]) * wq.scales, rtol=1e-5
        )


def test_dense_per_channel_is_an_option(digits_model, digits):
    from effkeras.runtime.tflm_ops import arduino_library_problems

    data = to_tflite(digits_model, quantize="int8", representative_data=digits[0][:50],
                     dense_per_channel=True)
    m = read_tflite(data)
    fc = next(op for op in m.ops if op.name == "FULLY_CONNECTED")
    w = m.tensors[fc.inputs[1]]
    assert w.quantization.per_channel and w.quantization.scales.size == w.shape[0]
    assert arduino_library_problems(data)  # and profile/sketch say why it matters


def test_same_model_converts_to_same_bytes(digits_model, digits):
    a = to_tflite(digits_model, quantize="int8", representative_data=digits[0][:50])
    b = to_tflite(digits_model, quantize="int8", representative_data=digits[0][:50])
    assert a == b
    assert to_tflite(digits_model) == to_tflite(digits_model)


@pytest.mark.parametrize(
    "mode,const_dtype,act_dtype",
    [
        (None, "FLOAT32", "FLOAT32"),
        ("float16", "FLOAT16", "FLOAT32"),
        # dynamic range quantizes weights of >= 1024 elements (here the Dense kernel)
        ("dynamic", "INT8", "FLOAT32"),
        ("int16x8", "INT8", "INT16"),
    ],
)
def test_modes_give_expected_tensor_types(digits_model, digits, mode, const_dtype, act_dtype):
    rep = digits[0][:20] if mode == "int16x8" else None
    m = read_tflite(to_tflite(digits_model, quantize=mode, representative_data=rep))
    consts = {t.dtype for t in m.tensors if t.is_constant}
    assert const_dtype in consts
    if mode is None:
        assert consts <= {"FLOAT32", "INT32"}
    conv = next(op for op in m.ops if op.name == "CONV_2D")
    assert m.tensors[conv.outputs[0]].dtype == act_dtype


def test_float_model_matches_keras(digits_model, digits, float_tflite):
    from effkeras.runtime import LiteRTRunner

    x = digits[2][:50]
    ref = digits_model.predict(x, verbose=0)
    got = LiteRTRunner(float_tflite).predict(x)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_int8_io_int16_io(digits_model, digits):
    m = read_tflite(
        to_tflite(digits_model, "int16x8", representative_data=digits[0][:20], io_dtype="int16")
    )
    assert m.inputs[0].dtype == "INT16"


def test_subclassed_and_sequential_convert(digits):
    import keras

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.flat(self.conv(x)))

    sub = Tiny()
    sub(digits[0][:1])
    with pytest.raises(InvalidModelError, match="input_shape"):
        to_tflite(sub)
    m = read_tflite(to_tflite(sub, input_shape=(8, 8, 1)))
    assert m.inputs[0].shape == (1, 8, 8, 1)
    # With representative data the shape is taken from the data.
    q = read_tflite(to_tflite(sub, "int8", representative_data=digits[0][:30]))
    assert q.is_full_integer

    seq = _small_sequential()
    assert read_tflite(to_tflite(seq, "int8", digits[0][:30], io_dtype="int8")).is_full_integer


def test_model_from_keras_file(tmp_path, digits_model):
    path = tmp_path / "m.keras"
    digits_model.save(path)
    assert to_tflite(str(path)) == to_tflite(digits_model)


def test_representative_data_forms(digits_model, digits):
    import tensorflow as tf

    x, y = digits[0][:40], digits[1][:40]
    ref = to_tflite(digits_model, "int8", representative_data=x)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    assert to_tflite(digits_model, "int8", representative_data=ds) == ref
    gen = (x[i : i + 10] for i in range(0, 40, 10))
    assert to_tflite(digits_model, "int8", representative_data=gen) == ref
    assert to_tflite(digits_model, "int8", representative_data=[(x[:20], y[:20]), (x[20:], y[20:])]) == ref
    # unbatched single samples (no batch dim) are accepted too
    assert to_tflite(digits_model, "int8", representative_data=list(x)) == ref


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((10, 28, 28, 1), np.float32), r"expected shape \(None, 8, 8, 1\).*received \(10, 28, 28, 1\)"),
        (np.zeros((10, 8, 8), np.float32), r"received \(1, 10, 8, 8\)|expected shape"),
        (np.array([["a"] * 8] * 8, dtype=object)[None, ..., None], "dtype"),
        (np.zeros((0, 8, 8, 1), np.float32), "empty"),
        (np.full((4, 8, 8, 1), np.nan, np.float32), "NaN"),
        ("not data", "numpy array"),
        ([], "empty"),
    ],
)
def test_bad_representative_data(digits_model, bad, match):
    with pytest.raises(CalibrationDataError, match=match):
        to_tflite(digits_model, "int8", representative_data=bad)


def test_int8_needs_representative_data(digits_model):
    with pytest.raises(ConversionError, match="representative_data"):
        to_tflite(digits_model, "int8")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"quantize": "int4"}, "quantize must be one of"),
        ({"quantize": None, "io_dtype": "int8"}, "io_dtype='int8' is not available"),
        ({"quantize": "dynamic", "io_dtype": "int8"}, "not available"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(digits_model, kwargs, match):
    with pytest.raises(ConversionError, match=match):
        to_tflite(digits_model, **kwargs)


def test_not_a_model():
    with pytest.raises(InvalidModelError, match="keras.Model"):
        to_tflite(object())
    with pytest.raises(InvalidModelError, match="No such model file"):
        to_tflite("/nonexistent/model.keras")


def test_float_ops_are_named_or_allowed(digits):
    import keras

    @keras.saving.register_keras_serializable(package="effkeras_tests")
    class Sine(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(10)(keras.layers.Flatten()(Sine()(keras.layers.Conv2D(2, 3)(inp))))
    model = keras.Model(inp, out)
    with pytest.raises(FloatOpsError, match="SIN") as info:
        to_tflite(model, "int8", representative_data=digits[0][:20])
    assert "SIN" in info.value.ops
    m = read_tflite(
        to_tflite(model, "int8", representative_data=digits[0][:20], allow_float_ops=True)
    )
    assert "SIN" in {op.name for op in m.float_ops()}
