"""The TFLM op table: complete for our models, right method names, checked against TFLM."""

from __future__ import annotations

import glob
import os
import re
import subprocess

import flatbuffers
import numpy as np
import pytest

from effkeras.convert import read_tflite
from effkeras.convert.flatbuffer import schema
from effkeras.errors import UnsupportedOpsError
from effkeras.runtime.tflm_ops import (
    RECENT_OPS,
    TFLM_OPS,
    resolver_method,
    resolver_ops,
    tflm_unsupported_ops,
)


@pytest.fixture(scope="module")
def sign_tflite() -> bytes:
    """A float model with SIGN, a builtin TFLite op that TFLM has no kernel for.

    (CUMSUM would not do: TFLM registers it with AddCumSum.)
    """
    import keras

    from effkeras.convert import to_tflite

    inputs = keras.Input((4,), name="x")
    x = keras.layers.Lambda(lambda t: keras.ops.sign(t), name="sign")(inputs)
    outputs = keras.layers.Dense(2, name="dense")(x)
    return to_tflite(keras.Model(inputs, outputs))


def _with_custom_op(tflite: bytes, index: int, custom_name: str) -> bytes:
    """Rewrite one operator code of a model into a custom op (a model TFLM cannot run)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    code = model.operatorCodes[index]
    code.builtinCode = schema.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_name
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_every_op_of_the_fixture_models_has_a_kernel(int8_tflite, int8_io_tflite, float_tflite):
    for data in (int8_tflite, int8_io_tflite, float_tflite):
        model = read_tflite(data)
        assert model.op_names, "the fixture model has no ops"
        for op in model.op_names:
            assert op in TFLM_OPS, f"{op} missing from TFLM_OPS"
        assert tflm_unsupported_ops(model) == []
    int8_ops = set(read_tflite(int8_tflite).op_names)
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"} <= int8_ops


def test_resolver_methods_of_common_and_irregular_ops():
    expected = {
        "CONV_2D": "AddConv2D",
        "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
        "FULLY_CONNECTED": "AddFullyConnected",
        "MAX_POOL_2D": "AddMaxPool2D",
        "AVERAGE_POOL_2D": "AddAveragePool2D",
        "SOFTMAX": "AddSoftmax",
        "RESHAPE": "AddReshape",
        "QUANTIZE": "AddQuantize",
        "DEQUANTIZE": "AddDequantize",
        "ADD": "AddAdd",
        "MUL": "AddMul",
        "CONCATENATION": "AddConcatenation",
        "PAD": "AddPad",
        "MEAN": "AddMean",
        "LOGISTIC": "AddLogistic",
        "TANH": "AddTanh",
        "RELU": "AddRelu",
        "RELU6": "AddRelu6",
        "HARD_SWISH": "AddHardSwish",
        "STRIDED_SLICE": "AddStridedSlice",
        "TRANSPOSE_CONV": "AddTransposeConv",
        # Names a CamelCase rule would get wrong:
        "BATCH_MATMUL": "AddBatchMatMul",
        "CUMSUM": "AddCumSum",
        "PADV2": "AddPadV2",
        "SVDF": "AddSvdf",
        "L2_POOL_2D": "AddL2Pool2D",
        "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
        "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
        "LOG_SOFTMAX": "AddLogSoftmax",
        "SPLIT_V": "AddSplitV",
        "SELECT_V2": "AddSelectV2",
    }
    for op, method in expected.items():
        assert resolver_method(op) == method


def test_table_is_consistent_with_the_schema():
    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    assert set(TFLM_OPS) <= builtins, set(TFLM_OPS) - builtins
    assert "CUSTOM" not in TFLM_OPS
    methods = list(TFLM_OPS.values())
    assert len(methods) == len(set(methods)), "two ops share a resolver method"
    assert all(re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", m) for m in methods)
    assert RECENT_OPS <= set(TFLM_OPS)
    assert len(TFLM_OPS) >= 100


def test_unknown_op_raises_with_guidance():
    with pytest.raises(KeyError, match="SIGN.*tflm_unsupported_ops"):
        resolver_method("SIGN")
    with pytest.raises(KeyError):
        resolver_method("conv_2d")  # schema names are upper case


def test_every_table_op_has_a_kernel_in_the_installed_tflm():
    """Cross-check with the tflite-micro package: each op's Register_<OP>() is linked in."""
    import tflite_micro

    root = os.path.dirname(tflite_micro.__file__)
    libs = glob.glob(os.path.join(root, "python", "tflite_micro", "_runtime*.so"))
    assert libs, f"no _runtime*.so under {root}"
    symbols = subprocess.run(["nm", "-C", libs[0]], capture_output=True, text=True, check=True)
    registered = set(re.findall(r"Register_([A-Z0-9_]+)\(\)", symbols.stdout))
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= registered
    assert set(TFLM_OPS) - registered == set()
    assert "SIGN" not in registered


def test_unsupported_builtin_op_is_reported_and_tflm_agrees(sign_tflite):
    from effkeras.runtime.tflm import TFLMRunner

    model = read_tflite(sign_tflite)
    assert "SIGN" in model.op_names
    assert tflm_unsupported_ops(model) == ["SIGN"]
    with pytest.raises(UnsupportedOpsError) as err:
        resolver_ops(model)
    assert err.value.ops == ["SIGN"]
    # The real TFLM interpreter refuses the same op.
    with pytest.raises(UnsupportedOpsError) as err:
        TFLMRunner(model)
    assert err.value.ops == ["SIGN"]


def test_custom_op_is_unsupported(int8_io_tflite):
    model = read_tflite(int8_io_tflite)
    codes = schema.ModelT.InitFromPackedBuf(bytearray(int8_io_tflite), 0).operatorCodes
    index = next(
        i
        for i, c in enumerate(codes)
        if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.SOFTMAX
    )
    patched = read_tflite(_with_custom_op(int8_io_tflite, index, "MyFancySoftmax"))
    assert "MyFancySoftmax" in patched.op_names
    assert tflm_unsupported_ops(patched) == ["MyFancySoftmax"]
    assert tflm_unsupported_ops(model) == []


def test_resolver_ops_lists_each_distinct_op_once(int8_tflite):
    model = read_tflite(int8_tflite)
    pairs = resolver_ops(model)
    assert [op for op, _ in pairs] == model.op_names
    assert len(pairs) == len(set(model.op_counts))
    assert all(TFLM_OPS[op] == method for op, method in pairs)
    assert np.sum(list(model.op_counts.values())) >= len(pairs)
