"""The deep check of a .tflite flatbuffer: every field against its use, before any interpreter.

:func:`effkeras.convert.read_tflite` first checks that the flatbuffer can be read and that
every index is in range; :func:`first_problem` then checks what the interpreters take on
trust and have crashed on (SIGSEGV, SIGFPE, SIGABRT) or run out of memory over:

- shapes: no negative dimension, a shape signature as long as the shape, the ranks the
  common ops require (CONV_2D: 4-D input, filter and output; FULLY_CONNECTED: 2-D
  weights), tensor byte sizes (product of dimensions times the type's size) bounded
  before anything is allocated, constant buffers exactly as long as their shape needs;
- quantization: scales finite and positive, as many zero points as scales, per-channel
  parameters as many as the quantized dimension's channels, zero points in range for the
  tensor's type;
- operators: as many inputs as the op needs, no required input left out, the options
  table the op expects (CONV_2D takes Conv2DOptions) with strides, dilations and pool
  sizes of at least 1;
- the subgraph: at least one input and one output, none of the inputs a constant.

The message names the first problem with its place, e.g. ``tensor 5 'conv1/kernel': 0
quantization scales for 16 channels`` or ``operator 3 (CONV_2D): stride 0``.
"""

from __future__ import annotations

import math
from typing import Any

#: the largest tensor (bytes) a file may declare; device models are far below it
MAX_TENSOR_BYTES = 1 << 30
#: the most non-constant tensor bytes a subgraph may declare in all
MAX_ACTIVATION_BYTES = 1 << 32

_ITEM_BITS = {
    "FLOAT32": 32, "FLOAT16": 16, "FLOAT64": 64, "INT32": 32, "INT64": 64, "INT16": 16, "INT8": 8,
    "UINT8": 8, "UINT16": 16, "UINT32": 32, "UINT64": 64, "BOOL": 8, "INT4": 4, "COMPLEX64": 64,
    "COMPLEX128": 128, "BFLOAT16": 16,
}
_ZERO_POINT_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767), "INT4": (-8, 7)}

#: inputs an op needs (TFLite's builtin kernels); -1 ("no tensor") is allowed after these
_MIN_INPUTS = {
    "CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "TRANSPOSE_CONV": 3, "FULLY_CONNECTED": 2, "ADD": 2, "SUB": 2,
    "MUL": 2, "DIV": 2, "MAXIMUM": 2, "MINIMUM": 2, "SQUARED_DIFFERENCE": 2, "CONCATENATION": 1,
    "RESHAPE": 1, "SOFTMAX": 1, "LOGISTIC": 1, "TANH": 1, "RELU": 1, "RELU6": 1, "RELU_N1_TO_1": 1,
    "LEAKY_RELU": 1, "HARD_SWISH": 1, "PRELU": 2, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 1, "L2_POOL_2D": 1,
    "QUANTIZE": 1, "DEQUANTIZE": 1, "MEAN": 2, "SUM": 2, "REDUCE_MAX": 2, "REDUCE_MIN": 2, "PAD": 2,
    "PADV2": 2, "MIRROR_PAD": 2, "TRANSPOSE": 2, "GATHER": 2, "STRIDED_SLICE": 4, "SLICE": 3, "SPLIT": 2,
    "SPLIT_V": 3, "PACK": 1, "UNPACK": 1, "SQUEEZE": 1, "EXPAND_DIMS": 2, "RESIZE_BILINEAR": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2, "ARG_MAX": 2, "ARG_MIN": 2, "SHAPE": 1, "BATCH_MATMUL": 2,
}
#: (input position or "out", rank) pairs the common ops require
_RANKS = {
    "CONV_2D": ((0, 4), (1, 4), ("out", 4)),
    "DEPTHWISE_CONV_2D": ((0, 4), (1, 4), ("out", 4)),
    "AVERAGE_POOL_2D": ((0, 4), ("out", 4)),
    "MAX_POOL_2D": ((0, 4), ("out", 4)),
    "FULLY_CONNECTED": ((1, 2),),
}
#: options tables whose name does not follow the op's ("CONV_2D" -> Conv2DOptions)
_OPTIONS_BY_OP = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "RELU_N1_TO_1": None, "LOGISTIC": None, "RELU": None, "RELU6": None, "TANH": None,
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
}
#: ops whose kernels read their options unconditionally: a file without them is refused
_NEEDS_OPTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
#: option fields that must be at least 1 where present
_POSITIVE_OPTIONS = ("strideW", "strideH", "dilationWFactor", "dilationHFactor", "filterWidth", "filterHeight",
                     "depthMultiplier")


def _tensor_place(index: int, t: Any) -> str:
    name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else (t.name or "")
    return f"tensor {index} '{name}'" if name else f"tensor {index}"


def _elements(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    return n


def _check_tensor(i: int, t: Any, type_name: str, n_bytes_of) -> str | None:
    place = _tensor_place(i, t)
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    if any(d < 0 for d in shape):
        return f"{place}: negative dimension in shape {shape}"
    sig = t.shapeSignature
    if sig is not None and len(sig) and len(sig) != len(shape):
        return f"{place}: shape signature {list(sig)} has {len(sig)} dimensions, shape {shape} has {len(shape)}"
    bits = _ITEM_BITS.get(type_name)
    n = _elements(shape)
    if bits is not None:
        nbytes = (n * bits + 7) // 8
        if nbytes > MAX_TENSOR_BYTES:
            return (f"{place}: shape {shape} of {type_name} is {nbytes:,} bytes, over the "
                    f"{MAX_TENSOR_BYTES:,}-byte limit for one tensor")
        held = n_bytes_of(t.buffer)
        if held and t.sparsity is None and held != nbytes:
            return (f"{place}: buffer {t.buffer} holds {held:,} bytes, but shape {shape} of {type_name} "
                    f"needs {nbytes:,}")
    q = t.quantization
    scales = [] if q is None or q.scale is None else [float(s) for s in q.scale]
    if not scales:
        if q is not None and q.zeroPoint is not None and len(q.zeroPoint):
            return f"{place}: {len(q.zeroPoint)} zero points but 0 quantization scales"
        return None
    bad = next((k for k, s in enumerate(scales) if not math.isfinite(s) or s <= 0), None)
    if bad is not None:
        return (f"{place}: quantization scale {bad} is {scales[bad]!r} (scales must be finite and "
                "positive)")
    zps = [] if q.zeroPoint is None else [int(z) for z in q.zeroPoint]
    if len(zps) != len(scales):
        return f"{place}: {len(zps)} zero points for {len(scales)} quantization scales"
    if len(scales) > 1:
        axis = int(q.quantizedDimension)
        if not 0 <= axis < len(shape):
            return (f"{place}: per-channel quantization on dimension {axis} of a {len(shape)}-D shape "
                    f"{shape}")
        if shape[axis] != len(scales):
            return f"{place}: {len(scales)} quantization scales for {shape[axis]} channels (dimension {axis})"
    lo_hi = _ZERO_POINT_RANGE.get(type_name)
    if lo_hi is not None:
        off = next((z for z in zps if not lo_hi[0] <= z <= lo_hi[1]), None)
        if off is not None:
            return f"{place}: zero point {off} is outside {type_name}'s range {lo_hi[0]}..{lo_hi[1]}"
    return None


def first_problem(m: Any, schema: Any, type_names: dict[int, str], op_names: dict[int, str]) -> str | None:
    """The first problem of an index-checked ``ModelT``, as a sentence with its place, or None."""
    options_names = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
    by_lower = {name.lower(): name for name in options_names.values()}
    buffers = m.buffers or []

    def n_bytes_of(b: int) -> int:
        buf = buffers[b] if 0 <= b < len(buffers) else None
        if buf is None:
            return 0
        size = int(getattr(buf, "size", 0) or 0)
        if int(getattr(buf, "offset", 0) or 0) > 1:
            return size
        return 0 if buf.data is None else len(buf.data)

    for s_i, sg in enumerate(m.subgraphs):
        where = "" if s_i == 0 else f"subgraph {s_i}: "
        tensors = sg.tensors or []
        activation = 0
        for t_i, t in enumerate(tensors):
            type_name = type_names.get(t.type, "")
            problem = _check_tensor(t_i, t, type_name, n_bytes_of)
            if problem:
                return where + problem
            if not n_bytes_of(t.buffer):
                activation += (_elements([] if t.shape is None else list(t.shape)) * _ITEM_BITS.get(type_name, 8) + 7) // 8
        if activation > MAX_ACTIVATION_BYTES:
            return f"{where}the tensors computed at run time take {activation:,} bytes, over {MAX_ACTIVATION_BYTES:,}"
        ins = list(sg.inputs if sg.inputs is not None else [])
        outs = list(sg.outputs if sg.outputs is not None else [])
        if s_i == 0 and not ins:
            return "the model declares no input tensor"
        if s_i == 0 and not outs:
            return "the model declares no output tensor"
        for i in ins:
            if n_bytes_of(tensors[int(i)].buffer):
                return f"{where}input {_tensor_place(int(i), tensors[int(i)])} is a constant (it has data)"
        for o_i, op in enumerate(sg.operators or []):
            code = m.operatorCodes[op.opcodeIndex]
            name = op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "")
            place = f"{where}operator {o_i} ({name or 'custom'})"
            op_in = list(op.inputs if op.inputs is not None else [])
            op_out = list(op.outputs if op.outputs is not None else [])
            if not op_out or any(int(k) < 0 for k in op_out):
                return f"{place}: an operator needs output tensors; it has {op_out}"
            need = _MIN_INPUTS.get(name, 0)
            if len(op_in) < need:
                return f"{place}: {len(op_in)} inputs, the op needs {need}"
            missing = next((k for k in range(need) if int(op_in[k]) < 0), None)
            if missing is not None:
                return f"{place}: required input {missing} is left out (-1)"
            for pos, rank in _RANKS.get(name, ()):
                idx = int(op_out[0]) if pos == "out" else int(op_in[pos])
                shape = list(tensors[idx].shape if tensors[idx].shape is not None else [])
                if len(shape) != rank:
                    what = "output" if pos == "out" else f"input {pos}"
                    return (f"{place}: {what} {_tensor_place(idx, tensors[idx])} has shape {shape}, "
                            f"the op needs {rank} dimensions")
            got = options_names.get(int(op.builtinOptionsType), "NONE")
            known = name in _OPTIONS_BY_OP
            expected = _OPTIONS_BY_OP[name] if known else by_lower.get(name.replace("_", "").lower() + "options")
            if got != "NONE" and (expected is not None or known) and got != expected:
                return f"{place}: options table {got}, the op takes {expected or 'none'}"
            if name in _NEEDS_OPTIONS and (got == "NONE" or op.builtinOptions is None):
                return f"{place}: no {expected} (strides, padding): the kernel cannot run without them"
            opts = op.builtinOptions
            for key in _POSITIVE_OPTIONS if opts is not None else ():
                value = getattr(opts, key, None)
                if value is not None and int(value) < 1:
                    return f"{place}: {key} {int(value)} (must be at least 1)"
    return None
