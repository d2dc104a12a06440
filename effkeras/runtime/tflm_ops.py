"""Which TFLite builtin operators TensorFlow Lite Micro has, and how a sketch registers them.

:data:`TFLM_OPS` maps a ``BuiltinOperator`` name, as spelled in the TFLite flatbuffer schema
(``"CONV_2D"``), to the ``tflite::MicroMutableOpResolver`` method that registers its kernel
(``"AddConv2D"``). It covers every builtin that resolver registers in tflite-micro's
``tensorflow/lite/micro/micro_mutable_op_resolver.h`` (2025 revision), plus the two added
after it (``AddDynamicUpdateSlice``, ``AddReduceAll``; their kernels are in the tflite-micro
PyPI package). :data:`RECENT_OPS` lists the ops that older TFLM snapshots, such as the one
inside an Arduino library, may not have yet.

The method names do not follow one rule (``AddBatchMatMul``, ``AddCumSum``, ``AddPadV2``,
``AddSvdf``, ``AddL2Pool2D``, ``AddUnidirectionalSequenceLSTM``), which is why this is a
table and not a CamelCase conversion.

Custom operators (``BuiltinOperator.CUSTOM``) are reported as unsupported: TFLM registers a
few of its own (``AddCircularBuffer``, ``AddDetectionPostprocess``, the ``Signal*`` ops) by
name, but a generated sketch registers builtins only.

This module needs no TensorFlow.
"""

from __future__ import annotations

from typing import Any

#: BuiltinOperator name -> MicroMutableOpResolver method, alphabetical by method.
TFLM_OPS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MIRROR_PAD": "AddMirrorPad",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQUEEZE": "AddSqueeze",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "TRANSPOSE": "AddTranspose",
    "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

#: Ops whose Add* method is missing from the 2022 revision of micro_mutable_op_resolver.h:
#: an older TFLM snapshot (such as the one inside an Arduino library) may lack them. The
#: sketch README names them when a model uses them.
RECENT_OPS: frozenset[str] = frozenset(
    {
        "BATCH_MATMUL",
        "DIV",
        "DYNAMIC_UPDATE_SLICE",
        "EMBEDDING_LOOKUP",
        "LOG_SOFTMAX",
        "REDUCE_ALL",
        "REDUCE_MIN",
        "REVERSE_V2",
        "SELECT_V2",
        "SQUARED_DIFFERENCE",
        "SUM",
    }
)


def resolver_method(op_name: str) -> str:
    """The ``MicroMutableOpResolver`` method that registers a builtin op.

    Args:
        op_name: a ``BuiltinOperator`` name as in the flatbuffer schema, e.g. ``"CONV_2D"``
            (as :attr:`effkeras.convert.OpInfo.name` spells it).

    Returns:
        The method name, e.g. ``"AddConv2D"``.

    Raises:
        KeyError: TFLM has no kernel for the op (the message lists how to check a model).
    """
    try:
        return TFLM_OPS[op_name]
    except KeyError:
        raise KeyError(
            f"TensorFlow Lite Micro has no builtin kernel for op {op_name!r}. Use an op "
            f"from effkeras.runtime.tflm_ops.TFLM_OPS, or replace the layer that produces it "
            f"(tflm_unsupported_ops(model) lists every such op of a model)."
        ) from None


#: Op name -> why a model has it and what to do instead, for ops TFLM lacks.
UNSUPPORTED_HINTS: dict[str, str] = {
    "DENSIFY": (
        "DENSIFY comes from weights stored in TFLite's sparse format "
        "(to_tflite(..., sparse=True), i.e. EXPERIMENTAL_SPARSITY): TFLite Micro has no "
        "DENSIFY kernel and cannot read sparse tensors. Convert with sparse=False; a pruned "
        "model's zeros then still shrink it under gzip"
    ),
    "TFLM_DECODE": (
        "TFLM_DECODE comes from look-up-table compressed weights "
        "(effkeras.convert.compress.compress_tflite): it needs an upstream TFLM with the "
        "DECODE kernel (AddDecode, 2025 or newer, e.g. the tflite-micro Python package); the "
        "2023 Arduino_TensorFlowLite library has none, so give a sketch the uncompressed file"
    ),
}


def unsupported_hint(ops: Any) -> str:
    """Advice for the given unsupported op names (from :data:`UNSUPPORTED_HINTS`), or ""."""
    hints = [UNSUPPORTED_HINTS[name] for name in sorted(set(ops)) if name in UNSUPPORTED_HINTS]
    return "".join(f" {h}." for h in hints)


def arduino_library_problems(model: Any) -> list[str]:
    """What the 2023 Arduino_TensorFlowLite library (2.4.0-ALPHA) computes wrongly for a model.

    Its FULLY_CONNECTED kernels (plain and CMSIS-NN) take one output multiplier from the
    filter's first scale: a filter quantized per output channel (TF 2.16+ converts Dense
    layers so) runs with channel 0's scale on every channel, so the outputs differ from
    LiteRT's and from newer TFLM's (the tflite-micro package on the host is newer and right).

    Returns:
        One sentence per problem (empty: none known).
    """
    from effkeras.convert.flatbuffer import read_tflite

    m = read_tflite(model)
    bad = []
    for i, op in enumerate(m.ops):
        if op.name != "FULLY_CONNECTED" or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        q = m.tensors[op.inputs[1]].quantization
        if q is not None and len(q.scales) > 1 and len(set(float(x) for x in q.scales)) > 1:
            bad.append(i)
    if not bad:
        return []
    return [
        f"FULLY_CONNECTED op{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} "
        f"{'have' if len(bad) > 1 else 'has'} per-channel weight scales, which the 2023 "
        f"Arduino_TensorFlowLite library (2.4.0-ALPHA) ignores (it uses the first channel's "
        f"scale for all): on a board built with it these outputs are wrong. Convert with "
        f"to_tflite's default (dense_per_channel=False: dense filters per tensor), or "
        f"build against a newer TFLM"
    ]


def tflm_unsupported_ops(model: Any) -> list[str]:
    """Operators of a model that TFLM cannot run, sorted and without repeats.

    Args:
        model: .tflite bytes, a path or a :class:`~effkeras.convert.TFLiteModel`.

    Returns:
        Op names with no TFLM builtin kernel; custom ops (by their custom name) always count
        as unsupported. An empty list means every op has a kernel.
    """
    from effkeras.convert.flatbuffer import read_tflite

    m = read_tflite(model)
    missing = {op.name for op in m.ops if op.is_custom or op.name not in TFLM_OPS}
    return sorted(missing)


def resolver_ops(model: Any) -> list[tuple[str, str]]:
    """(op name, resolver method) for each distinct op of a model, sorted by op name.

    Raises:
        UnsupportedOpsError: some op has no TFLM kernel (its ``ops`` names them).
    """
    from effkeras.convert.flatbuffer import read_tflite
    from effkeras.errors import UnsupportedOpsError

    m = read_tflite(model)
    missing = tflm_unsupported_ops(m)
    if missing:
        raise UnsupportedOpsError(
            f"TensorFlow Lite Micro has no kernel for {', '.join(missing)} in {m.source}. "
            f"Replace the layers that produce them (see effkeras.runtime.tflm_ops.TFLM_OPS "
            f"for the ops it has).",
            missing,
        )
    return [(name, TFLM_OPS[name]) for name in m.op_names]
