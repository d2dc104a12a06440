"""int4 weights: effkeras.convert.int4 (the post-pass) and the TFLite converter's own path.

One tiny conv -> depthwise -> dense model whose kernels lie on a 4-bit grid (integers in
[-7, 7] times a per-channel step) is converted twice: with 8-bit weight FakeQuant over
+-127 steps (an ordinary int8 file whose weights lie in [-7, 7], which ``to_int4``
rewrites) and with 4-bit weight FakeQuant (which the TFLite converter turns into INT4
tensors itself). The rewrite must equal the converter's packing, run in LiteRT and TFLM
with the int8 file's outputs, and stay within one output step of Keras.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import ops  # noqa: E402

from effkeras.convert import read_tflite  # noqa: E402
from effkeras.convert.flatbuffer import schema  # noqa: E402
from effkeras.convert.int4 import (  # noqa: E402
    INT4_OP_VERSIONS,
    int4_plan,
    pack_int4,
    tensor_values,
    to_int4,
    unpack_int4,
)
from effkeras.errors import ConversionError  # noqa: E402
from effkeras.runtime import LiteRTRunner, TFLMRunner  # noqa: E402


def _fq(x, lo, hi, bits=8, narrow=False, axis=None):
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, lo, hi, num_bits=bits, narrow_range=narrow, axis=axis
    )


class Grid4Layer(keras.layers.Layer):
    """Conv2D / DepthwiseConv2D / Dense with fake-quantized weights (TF's QAT pattern)."""

    def __init__(self, kind, units, bits, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.units, self.bits = kind, units, bits

    def build(self, s):
        shape = {"conv": (3, 3, s[-1], self.units), "dw": (3, 3, s[-1], 1),
                 "dense": (s[-1], self.units)}[self.kind]
        self.kernel = self.add_weight(shape=shape, initializer="zeros")
        self.bias = self.add_weight(shape=(s[-1] if self.kind == "dw" else shape[-1],),
                                    initializer="zeros")

    def call(self, x):
        levels = 7.0 if self.bits == 4 else 127.0
        if self.kind == "dense":
            step = ops.max(ops.abs(self.kernel)) / 7.0
            w = _fq(self.kernel, -levels * step, levels * step, self.bits, True)
            return _fq(ops.matmul(x, w) + self.bias, -8.0, 8.0)
        if self.kind == "conv":
            step = ops.max(ops.abs(self.kernel), axis=(0, 1, 2)) / 7.0
            w = _fq(self.kernel, -levels * step, levels * step, self.bits, True, axis=3)
            y = ops.conv(x, w, 1, "same")
        else:
            step = ops.max(ops.abs(self.kernel), axis=(0, 1, 3)) / 7.0
            w = ops.reshape(self.kernel, (3, 3, 1, -1))
            w = _fq(w, -levels * step, levels * step, self.bits, True, axis=3)
            y = ops.depthwise_conv(x, ops.reshape(w, self.kernel.shape), 1, "same")
        return _fq(ops.relu(y + self.bias), 0.0, 6.0)


def _grid_model(bits: int) -> keras.Model:
    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Lambda(lambda x: _fq(x, 0.0, 1.0))(inp)
    h = Grid4Layer("conv", 6, bits)(h)
    h = Grid4Layer("dw", 1, bits)(h)
    out = Grid4Layer("dense", 10, bits)(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    for layer in model.layers:
        if not isinstance(layer, Grid4Layer):
            continue
        q = rng.integers(-7, 8, size=layer.kernel.shape)
        if layer.kind == "conv":
            step = rng.uniform(0.02, 0.1, size=q.shape[-1])
            q[0, 0, 0, :] = 7
        elif layer.kind == "dw":
            step = rng.uniform(0.02, 0.1, size=(q.shape[2], 1))
            q[0, 0, :, :] = -7
        else:
            step = 0.03
            q[0, 0] = 7
        layer.kernel.assign((q * step).astype("float32"))
        layer.bias.assign(rng.uniform(-0.2, 0.2, size=layer.bias.shape).astype("float32"))
    return model


def _convert(model: keras.Model) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        spec = [keras.InputSpec(shape=(1, 8, 8, 1), dtype="float32")]
        model.export(tmp, format="tf_saved_model", input_signature=spec, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


@pytest.fixture(scope="module")
def files():
    """(keras model, int8 file with weights in [-7, 7], converter's INT4 file, to_int4 of it)."""
    model8 = _grid_model(8)
    int8 = _convert(model8)
    native4 = _convert(_grid_model(4))
    return model8, int8, native4, to_int4(int8)


def _filters(model):
    return [model.tensors[op.inputs[1]] for op in model.ops if op.name in INT4_OP_VERSIONS]


def test_nibble_order_low_first_and_round_trip():
    # element 2i in the low nibble, 2i+1 in the high one (TFLite's UnpackDenseInt4IntoInt8)
    assert pack_int4(np.array([1, -2, 7])) == bytes([0xE1, 0x07])
    values = np.random.default_rng(0).integers(-8, 8, size=37)
    packed = pack_int4(values)
    assert len(packed) == 19
    np.testing.assert_array_equal(unpack_int4(packed, 37), values)
    with pytest.raises(ConversionError, match="Received values in"):
        pack_int4(np.array([0, 8]))


def test_converter_writes_int4_for_4_bit_fake_quant(files):
    """TF's low-bit path: FakeQuant(num_bits=4) weights become packed INT4 tensors."""
    model8, _, native4, _ = files
    parsed = read_tflite(native4)
    filters = _filters(parsed)
    assert [t.dtype for t in filters] == ["INT4", "INT4", "INT4"]
    assert all(t.nbytes == (t.size + 1) // 2 for t in filters)
    assert {op.name: op.version for op in parsed.ops if op.name in INT4_OP_VERSIONS} == INT4_OP_VERSIONS


def test_rewrite_equals_converter_int4_and_keras_weights(files):
    model8, int8, native4, mine = files
    original, rewritten, native = read_tflite(int8), read_tflite(mine), read_tflite(native4)
    assert [t.dtype for t in _filters(original)] == ["INT8"] * 3
    assert all(p.converted for p in int4_plan(int8))
    assert {op.name: op.version for op in rewritten.ops if op.name in INT4_OP_VERSIONS} == INT4_OP_VERSIONS
    kernels = {"CONV_2D": None, "DEPTHWISE_CONV_2D": None, "FULLY_CONNECTED": None}
    layers = [layer for layer in model8.layers if isinstance(layer, Grid4Layer)]
    for name, layer in zip(kernels, layers, strict=True):
        kernels[name] = ops.convert_to_numpy(layer.kernel.value)
    for t8, t4, tn, op in zip(_filters(original), _filters(rewritten), _filters(native),
                              [o for o in rewritten.ops if o.name in INT4_OP_VERSIONS], strict=True):
        assert t4.dtype == "INT4" and t4.nbytes == (t8.size + 1) // 2
        unpacked = tensor_values(rewritten, t4)
        np.testing.assert_array_equal(unpacked, original.tensor_data(t8))
        assert bytes(rewritten._buffer_bytes(t4.buffer)) == bytes(native._buffer_bytes(tn.buffer))
        np.testing.assert_allclose(t4.quantization.scales, tn.quantization.scales, rtol=1e-6)
        # the unpacked integers are the Keras kernel over its per-channel step
        k = kernels[op.name]
        scales = t4.quantization.scales
        if op.name == "CONV_2D":  # HWIO -> OHWI
            expected = np.round(np.transpose(k, (3, 0, 1, 2)) / scales[:, None, None, None])
        elif op.name == "DEPTHWISE_CONV_2D":  # (3, 3, C, 1) -> (1, 3, 3, C)
            expected = np.round(np.transpose(k, (3, 0, 1, 2)) / scales)
        else:  # (in, out) -> (out, in)
            expected = np.round(k.T / scales[0])
        np.testing.assert_array_equal(unpacked, expected)
    # half a byte saved a weight, less the 16-byte alignment of each buffer
    assert len(int8) - len(mine) >= sum(t.size for t in _filters(original)) // 2 - 16 * 6


def test_int4_outputs_equal_int8_in_litert_and_tflm(files):
    model8, int8, native4, mine = files
    x = np.random.default_rng(1).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    lite8 = LiteRTRunner(int8, kernels="builtin").predict(x)
    np.testing.assert_array_equal(LiteRTRunner(mine, kernels="builtin").predict(x), lite8)
    micro8 = TFLMRunner(int8).predict(x)
    np.testing.assert_array_equal(TFLMRunner(mine).predict(x), micro8)
    np.testing.assert_array_equal(TFLMRunner(native4).predict(x), micro8)
    parsed = read_tflite(mine)
    last = next(op for op in parsed.ops if op.outputs[0] == parsed.outputs[0].index)
    assert last.name == "DEQUANTIZE"
    step = float(parsed.tensors[last.inputs[0]].quantization.scales[0])
    assert np.abs(lite8 - model8.predict(x, verbose=0)).max() <= step + 1e-6
    # XNNPACK (the default kernels) rounds its own way, for int8 and int4 alike
    xnn4 = LiteRTRunner(mine, kernels="xnnpack").predict(x)
    assert np.abs(xnn4 - lite8).max() <= step + 1e-6


def test_strict_names_a_filter_outside_the_int4_range(files):
    _, int8, _, _ = files
    model = schema.ModelT.InitFromPackedBuf(bytearray(int8), 0)
    parsed = read_tflite(int8)
    fc = next(op for op in parsed.ops if op.name == "FULLY_CONNECTED")
    tensor = model.subgraphs[0].tensors[fc.inputs[1]]
    data = np.array(model.buffers[tensor.buffer].data, dtype=np.uint8)
    data[0] = 100  # int8 100: outside [-7, 7]
    model.buffers[tensor.buffer].data = data
    from effkeras.convert.int4 import _pack

    edited = _pack(model, len(int8))
    with pytest.raises(ConversionError, match=r"FULLY_CONNECTED.*outside \[-7, 7\]"):
        to_int4(edited)
    partial = read_tflite(to_int4(edited, strict=False))
    assert [t.dtype for t in _filters(partial)] == ["INT4", "INT4", "INT8"]
    with pytest.raises(ConversionError, match="already INT4|no CONV_2D"):
        to_int4(to_int4(int8))


ROOT = Path(__file__).resolve().parents[1]
TFLM_LIB = Path(os.environ.get("EFFKERAS_TFLM_LIB")
                or ROOT.parent / "shared" / "tflm" / "Arduino_TensorFlowLite")


@pytest.mark.cross
@pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-g++ or qemu-system-arm is not installed (.ci/run installs them)",
)
def test_int4_on_the_emulated_board_with_the_2023_library(files):
    """The real Arduino library's CMSIS-NN kernels unpack our nibbles as LiteRT does."""
    from effkeras.bench.qemu import run_qemu

    _, int8, _, mine = files
    x = np.random.default_rng(1).uniform(0, 1, (6, 8, 8, 1)).astype("float32")
    run = run_qemu(mine, runs=2, warmup=1, inputs=x, tflm_lib=TFLM_LIB)
    assert run.summary()["library_version"] == "2.4.0-ALPHA"
    board = np.stack(run.outputs).reshape(len(x), -1)
    expected = LiteRTRunner(int8, kernels="builtin").predict(x).reshape(len(x), -1)
    parsed = read_tflite(mine)
    last = next(op for op in parsed.ops if op.outputs[0] == parsed.outputs[0].index)
    step = float(parsed.tensors[last.inputs[0]].quantization.scales[0])
    assert np.abs(board - expected).max() <= step + 1e-6  # CMSIS-NN: 1 LSB at most
    assert run.argmax_agreement == 1.0
    # LiteRT's reference resolver has no DEPTHWISE_CONV_2D v7: run_qemu compares with builtin.
    assert run.summary()["reference_kernels"] == "builtin"


# ---- requantize_int4: lossy post-training int4 of any int8 file ----------------------------

from effkeras.convert.int4 import requantize_int4  # noqa: E402


def _bias(model, op):
    return model.tensors[op.inputs[2]]


def test_requantize_on_a_4_bit_grid_is_exact(files):
    """Weights already on a 4-bit grid reaching +-7: same values, scales, biases and outputs."""
    _, int8, _, mine = files
    requant = requantize_int4(int8)
    a, b = read_tflite(requant), read_tflite(mine)
    for fa, fb in zip(_filters(a), _filters(b), strict=True):
        assert fa.dtype == "INT4"
        np.testing.assert_array_equal(tensor_values(a, fa), tensor_values(b, fb))
        np.testing.assert_array_equal(fa.quantization.scales, fb.quantization.scales)
    for oa, ob in zip(a.ops, b.ops, strict=True):
        if oa.name in INT4_OP_VERSIONS:
            np.testing.assert_array_equal(a.tensor_data(_bias(a, oa)), b.tensor_data(_bias(b, ob)))
    x = np.random.default_rng(2).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(LiteRTRunner(requant, kernels="builtin").predict(x),
                                  LiteRTRunner(int8, kernels="builtin").predict(x))


def _scaled_filters(int8: bytes, factor: int = 9) -> bytes:
    """``int8`` with every filter's and bias's integers times ``factor`` and their scales over
    ``factor``: the same real weights, now spread over [-63, 63], outside int4."""
    from effkeras.convert.int4 import _pack

    model = schema.ModelT.InitFromPackedBuf(bytearray(int8), 0)
    parsed = read_tflite(int8)
    for op in parsed.ops:
        if op.name not in INT4_OP_VERSIONS:
            continue
        for i, dtype in ((op.inputs[1], np.int8), (op.inputs[2], np.int32)):
            st = model.subgraphs[0].tensors[i]
            values = (parsed.tensor_data(i).astype(np.int64) * factor).astype(dtype)
            model.buffers[st.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
            st.quantization.scale = [s / factor for s in st.quantization.scale]
    return _pack(model, len(int8))


def test_requantize_rescales_filters_and_biases_consistently(files):
    """Off the grid: q4 in [-7, 7], bias scale = input scale x new filter scale, bias real value kept."""
    _, int8, _, _ = files
    spread = _scaled_filters(int8)
    with pytest.raises(ConversionError, match="outside"):
        to_int4(spread)
    before, after = read_tflite(spread), read_tflite(requantize_int4(spread))
    for o8, o4 in zip(before.ops, after.ops, strict=True):
        if o8.name not in INT4_OP_VERSIONS:
            continue
        f8, f4 = before.tensors[o8.inputs[1]], after.tensors[o4.inputs[1]]
        q4 = tensor_values(after, f4)
        assert f4.dtype == "INT4" and np.abs(q4).max() == 7
        s_in = after.tensors[o4.inputs[0]].quantization.scales[0]
        b8, b4 = _bias(before, o8), _bias(after, o4)
        np.testing.assert_allclose(b4.quantization.scales, s_in * f4.quantization.scales, rtol=1e-6)
        real8 = before.tensor_data(b8) * b8.quantization.scales.astype(np.float64)
        real4 = after.tensor_data(b4) * b4.quantization.scales.astype(np.float64)
        assert np.abs(real4 - real8).max() <= 0.5 * b4.quantization.scales.max() + 1e-12
        # the real weights move by half a 4-bit step at most (the grid's values come back exactly)
        axis = f8.quantization.axis
        shape = [-1 if d == axis else 1 for d in range(len(f8.shape))] if f8.quantization.per_channel else [1]
        w8 = before.tensor_data(f8) * f8.quantization.scales.reshape(shape)
        w4 = q4 * f4.quantization.scales.reshape(shape)
        np.testing.assert_allclose(w4, w8, atol=1e-6)
    x = np.random.default_rng(3).uniform(0, 1, (8, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(LiteRTRunner(requantize_int4(spread), kernels="builtin").predict(x),
                                  LiteRTRunner(int8, kernels="builtin").predict(x))


def test_requantize_keeps_named_layers_int8_and_refuses_bad_arguments(files):
    _, int8, _, _ = files
    spread = _scaled_filters(int8)
    before = read_tflite(spread)
    fc = next(op for op in before.ops if op.name == "FULLY_CONNECTED")
    for keep in ((-1,), (fc.index,), (before.tensors[fc.inputs[1]].name,)):
        mixed = read_tflite(requantize_int4(spread, keep_int8=keep))
        assert [t.dtype for t in _filters(mixed)] == ["INT4", "INT4", "INT8"]
        for i in fc.inputs[1:3]:  # filter and bias: bytes and quantization untouched
            assert bytes(mixed._buffer_bytes(mixed.tensors[i].buffer)) == bytes(before._buffer_bytes(
                before.tensors[i].buffer))
            np.testing.assert_array_equal(mixed.tensors[i].quantization.scales,
                                          before.tensors[i].quantization.scales)
        assert next(op for op in mixed.ops if op.name == "FULLY_CONNECTED").version == fc.version
    one = read_tflite(requantize_int4(spread, per_channel=False, scale="mse"))
    assert all(t.quantization.scales.size == 1 for t in _filters(one))
    with pytest.raises(ConversionError, match=r"Received: keep_int8=\(99,\)"):
        requantize_int4(spread, keep_int8=(99,))
    with pytest.raises(ConversionError, match=r"Received: keep_int8=\('nope',\)"):
        requantize_int4(spread, keep_int8="nope")
    with pytest.raises(ConversionError, match="Received: scale='min'"):
        requantize_int4(spread, scale="min")
    with pytest.raises(ConversionError, match="nothing to do"):
        requantize_int4(spread, keep_int8=[op.index for op in before.ops if op.name in INT4_OP_VERSIONS])
    with pytest.raises(ConversionError, match="INT4 filter"):
        requantize_int4(requantize_int4(spread))
