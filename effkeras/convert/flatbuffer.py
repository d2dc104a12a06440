"""Read a .tflite flatbuffer back: operators, tensors, quantization, inputs and outputs.

The schema classes come from LiteRT's own generated module (``ai_edge_litert``), with the
ones shipped in ``tflite_micro`` and TensorFlow as fall-backs; no hand-written parser.
Before anything else looks at the bytes, :func:`read_tflite` checks them (file identifier,
every offset and index in range), so a truncated, corrupted or random file raises
:class:`~effkeras.errors.InvalidModelError` instead of reaching an interpreter.

This module needs numpy and the schema only, never TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from effkeras.convert.validate import first_problem
from effkeras.errors import InvalidModelError


def _load_schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - depends on the installed runtime
        try:
            from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
        except ImportError:
            from tensorflow.lite.python import schema_py_generated as schema
    return schema


schema = _load_schema()

TFLITE_IDENTIFIER = b"TFL3"
#: metadata entries the TFLite converter writes itself (summary() lists only the others)
_CONVERTER_METADATA = ("min_runtime_version", "CONVERSION_METADATA")

_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_ACT_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
_PADDING_NAMES = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}

_NUMPY_DTYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT32": np.int32,
    "INT64": np.int64,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


@dataclass(frozen=True)
class QuantParams:
    """Quantization of one tensor: real = scale * (q - zero_point).

    ``scales`` and ``zero_points`` have one entry per tensor (per-tensor) or one per
    channel along ``axis`` (per-channel).
    """

    scales: np.ndarray
    zero_points: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scales.size > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "scales": [float(s) for s in self.scales],
            "zero_points": [int(z) for z in self.zero_points],
            "axis": int(self.axis),
            "per_channel": self.per_channel,
        }


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the model's first (main) subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    buffer: int
    nbytes: int
    is_constant: bool
    quantization: QuantParams | None
    is_variable: bool = False

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.dtype not in _NUMPY_DTYPES:
            raise InvalidModelError(
                f"Tensor {self.name!r} has type {self.dtype}, which has no numpy dtype."
            )
        return np.dtype(_NUMPY_DTYPES[self.dtype])

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "shape": list(self.shape),
            "shape_signature": list(self.shape_signature),
            "dtype": self.dtype,
            "nbytes": self.nbytes,
            "is_constant": self.is_constant,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }


@dataclass(frozen=True)
class OpInfo:
    """One operator: its name, tensor indices and the options that matter for cost."""

    index: int
    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    is_custom: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.name,
            "version": self.version,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "options": dict(self.options),
            "custom": self.is_custom,
        }


class TFLiteModel:
    """A parsed, checked .tflite flatbuffer.

    Attributes:
        data: the raw bytes.
        ops: operators of the main subgraph in execution order.
        tensors: tensors of the main subgraph.
        inputs, outputs: the model's input and output tensors.
    """

    def __init__(self, data: bytes, source: str = "<bytes>"):
        self.data = bytes(data)
        self.source = source
        self._model = _parse_checked(self.data, source)
        m = self._model
        self.version = int(m.version)
        self.description = _decode(m.description)
        self.num_subgraphs = len(m.subgraphs)
        sg = m.subgraphs[0]
        self.tensors = [self._tensor_info(i, t) for i, t in enumerate(sg.tensors or [])]
        self.ops = [self._op_info(i, op) for i, op in enumerate(sg.operators or [])]
        self.inputs = [self.tensors[i] for i in (sg.inputs if sg.inputs is not None else [])]
        self.outputs = [self.tensors[i] for i in (sg.outputs if sg.outputs is not None else [])]

    # ---- construction helpers -------------------------------------------------------
    def _buffer_bytes(self, index: int) -> np.ndarray | None:
        buf = self._model.buffers[index]
        if buf is None:
            return None
        offset = int(getattr(buf, "offset", 0) or 0)
        size = int(getattr(buf, "size", 0) or 0)
        if offset > 1:  # buffers stored outside the flatbuffer (models over 2 GB)
            return np.frombuffer(self.data, dtype=np.uint8, count=size, offset=offset)
        if buf.data is None:
            return None
        return np.asarray(buf.data, dtype=np.uint8)

    def _tensor_info(self, index: int, t) -> TensorInfo:
        dtype = _TYPE_NAMES.get(t.type, f"TYPE_{t.type}")
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
        sig = t.shapeSignature
        shape_sig = tuple(int(s) for s in sig) if sig is not None and len(sig) else shape
        raw = self._buffer_bytes(t.buffer) if t.buffer else None
        nbytes = int(raw.size) if raw is not None else 0
        q = t.quantization
        qp = None
        if q is not None and q.scale is not None and len(q.scale):
            zps = q.zeroPoint if q.zeroPoint is not None else np.zeros(len(q.scale), np.int64)
            qp = QuantParams(
                scales=np.asarray(q.scale, dtype=np.float32),
                zero_points=np.asarray(zps, dtype=np.int64),
                axis=int(q.quantizedDimension),
            )
        return TensorInfo(
            index=index,
            name=_decode(t.name),
            shape=shape,
            shape_signature=shape_sig,
            dtype=dtype,
            buffer=int(t.buffer),
            nbytes=nbytes,
            is_constant=nbytes > 0,
            quantization=qp,
            is_variable=bool(t.isVariable),
        )

    def _op_info(self, index: int, op) -> OpInfo:
        code = self._model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        is_custom = builtin == schema.BuiltinOperator.CUSTOM
        name = _decode(code.customCode) if is_custom else _OP_NAMES.get(builtin, f"OP_{builtin}")
        return OpInfo(
            index=index,
            name=name,
            version=int(code.version),
            inputs=tuple(int(i) for i in (op.inputs if op.inputs is not None else [])),
            outputs=tuple(int(i) for i in (op.outputs if op.outputs is not None else [])),
            options=_options_dict(op.builtinOptions),
            is_custom=is_custom,
        )

    # ---- queries --------------------------------------------------------------------
    @cached_property
    def metadata(self) -> dict[str, bytes]:
        """The file's metadata entries, ``{name: bytes}`` (``min_runtime_version``, ...)."""
        out: dict[str, bytes] = {}
        for entry in self._model.metadata or []:
            raw = self._buffer_bytes(int(entry.buffer))
            out[_decode(entry.name)] = b"" if raw is None else raw.tobytes()
        return out

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def op_counts(self) -> dict[str, int]:
        """Operator name -> how many times the main subgraph uses it."""
        return dict(Counter(op.name for op in self.ops))

    @property
    def op_names(self) -> list[str]:
        """Distinct operator names, sorted."""
        return sorted(self.op_counts)

    def tensor_data(self, tensor: TensorInfo | int) -> np.ndarray | None:
        """The constant data of a tensor as a numpy array of its shape, or None (INT4 tensors
        unpacked to int8 values)."""
        t = self.tensors[tensor] if isinstance(tensor, int) else tensor
        raw = self._buffer_bytes(t.buffer) if t.buffer else None
        if raw is None or raw.size == 0:
            return None
        if t.dtype == "INT4":  # two values a byte, low nibble first; returned as int8
            from effkeras.convert.int4 import unpack_int4

            return unpack_int4(raw.tobytes(), t.size).reshape(t.shape)
        arr = np.frombuffer(raw.tobytes(), dtype=t.numpy_dtype)
        return arr.reshape(t.shape) if t.shape and arr.size == t.size else arr

    @property
    def params(self) -> int:
        """Number of elements in constant tensors (weights and biases)."""
        return int(sum(t.size for t in self.tensors if t.is_constant))

    @property
    def weight_bytes(self) -> int:
        return int(sum(t.nbytes for t in self.tensors if t.is_constant))

    def float_ops(self) -> list[OpInfo]:
        """Operators that compute in float (any float input or output that is not constant).

        The QUANTIZE at the model input and DEQUANTIZE at its output are conversions, not
        computation, and are not listed.
        """
        floats = {"FLOAT32", "FLOAT16", "FLOAT64"}
        found = []
        for op in self.ops:
            if op.name in ("QUANTIZE", "DEQUANTIZE"):
                continue
            io = [self.tensors[i] for i in op.inputs + op.outputs if i >= 0]
            if any(t.dtype in floats and not t.is_constant for t in io):
                found.append(op)
        return found

    @property
    def is_full_integer(self) -> bool:
        return not self.float_ops()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "schema_version": self.version,
            "description": self.description,
            "num_subgraphs": self.num_subgraphs,
            "params": self.params,
            "op_counts": self.op_counts,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "ops": [op.to_dict() for op in self.ops],
            "tensors": [t.to_dict() for t in self.tensors],
        }

    def summary(self) -> str:
        """A human-readable description: I/O, operator counts and tensors."""
        lines = [f"{self.source}: {self.size_bytes:,} bytes, sha256 {self.sha256[:16]}"]
        for kind, ts in (("input", self.inputs), ("output", self.outputs)):
            for t in ts:
                lines.append(f"  {kind:6s} {t.name!r} {t.dtype} {list(t.shape)} {_q_str(t)}")
        lines.append("  ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.op_counts.items())))
        extra = {k: v for k, v in self.metadata.items() if k not in _CONVERTER_METADATA}
        if extra:  # e.g. effkeras.projector: the text projector a projection model needs
            lines.append("  metadata: " + ", ".join(f"{k} ({len(v)} B)" for k, v in extra.items()))
        lines.append(f"  {'#':>4s}  {'tensor':40s} {'dtype':8s} {'shape':18s} quantization")
        for t in self.tensors:
            lines.append(
                f"  {t.index:4d}  {t.name[:40]:40s} {t.dtype:8s} {str(list(t.shape)):18s} {_q_str(t)}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TFLiteModel({self.source!r}, {self.size_bytes} bytes, ops={self.op_counts})"


def _q_str(t: TensorInfo) -> str:
    q = t.quantization
    if q is None:
        return "-"
    if q.per_channel:
        return (
            f"per-channel axis {q.axis}: {q.scales.size} scales "
            f"[{q.scales.min():.3g}..{q.scales.max():.3g}]"
        )
    return f"scale {float(q.scales[0]):.6g} zero_point {int(q.zero_points[0])}"


def _decode(b) -> str:
    if b is None:
        return ""
    if isinstance(b, bytes | bytearray):
        return b.decode("utf-8", errors="replace")
    return str(b)


def _options_dict(opts) -> dict[str, Any]:
    """The cost-relevant fields of a builtin-options object, in plain Python types."""
    if opts is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in vars(opts).items():
        if isinstance(value, int | float | bool | str):
            if key == "fusedActivationFunction":
                value = _ACT_NAMES.get(value, value)
            elif key == "padding":
                value = _PADDING_NAMES.get(value, value)
            out[key] = value
    return out


def _parse_checked(data: bytes, source: str):
    """Parse with the object API after checking identifier and every index."""
    n = len(data)
    if n < 8:
        raise InvalidModelError(
            f"{source} is not a TFLite model: {n} bytes is too short for a flatbuffer "
            f"(a .tflite starts with a 4-byte offset and the identifier 'TFL3')."
        )
    ident = data[4:8]
    if ident != TFLITE_IDENTIFIER:
        raise InvalidModelError(
            f"{source} is not a TFLite model: bytes 4..8 are {ident!r}, expected b'TFL3'. "
            f"Pass a .tflite file (effkeras convert turns a .keras model into one)."
        )
    (root,) = struct.unpack_from("<I", data, 0)
    if root + 4 > n:
        raise InvalidModelError(
            f"{source} is truncated or corrupt: root offset {root} lies beyond its {n} bytes."
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # struct.error, IndexError, UnicodeDecodeError, ...
        raise InvalidModelError(
            f"{source} is truncated or corrupt: the flatbuffer could not be read "
            f"({type(exc).__name__}: {exc}). Re-export the model."
        ) from None
    problems = _check_indices(model, n)
    if problems:
        raise InvalidModelError(
            f"{source} is corrupt: " + "; ".join(problems[:5]) + ". Re-export the model."
        )
    problem = first_problem(model, schema, _TYPE_NAMES, _OP_NAMES)
    if problem:
        raise InvalidModelError(f"{source} is invalid: {problem}. Re-export the model.")
    return model


def _check_indices(m, n: int) -> list[str]:
    problems: list[str] = []
    if m.version != 3:
        problems.append(f"schema version {m.version} (expected 3)")
    if not m.subgraphs:
        problems.append("no subgraphs")
        return problems
    nbuf = len(m.buffers or [])
    ncodes = len(m.operatorCodes or [])
    for b_i, buf in enumerate(m.buffers or []):
        offset = int(getattr(buf, "offset", 0) or 0)
        size = int(getattr(buf, "size", 0) or 0)
        if offset > 1 and offset + size > n:
            problems.append(f"buffer {b_i} spans bytes {offset}..{offset + size} of {n}")
    for m_i, entry in enumerate(m.metadata or []):
        if not 0 <= int(entry.buffer) < nbuf:
            problems.append(f"metadata entry {m_i} refers to buffer {int(entry.buffer)} of {nbuf}")
    for code in m.operatorCodes or []:
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin not in _OP_NAMES:
            problems.append(f"unknown builtin operator code {builtin}")
    for s_i, sg in enumerate(m.subgraphs):
        tensors = sg.tensors or []
        nt = len(tensors)
        for t_i, t in enumerate(tensors):
            if not 0 <= t.buffer < max(nbuf, 1):
                problems.append(f"tensor {t_i} refers to buffer {t.buffer} of {nbuf}")
            if t.shape is not None and any(int(d) < 0 for d in t.shape):
                problems.append(f"tensor {t_i} has negative shape {list(t.shape)}")
            if t.type not in _TYPE_NAMES:
                problems.append(f"tensor {t_i} has unknown type {t.type}")
            try:
                (t.name or b"").decode("utf-8")
            except (UnicodeDecodeError, AttributeError):
                problems.append(f"tensor {t_i} has a name that is not UTF-8")
        for name, idx in (("input", sg.inputs), ("output", sg.outputs)):
            for i in idx if idx is not None else []:
                if not 0 <= int(i) < nt:
                    problems.append(f"subgraph {s_i} {name} tensor {int(i)} of {nt}")
        for o_i, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < ncodes:
                problems.append(f"operator {o_i} has opcode index {op.opcodeIndex} of {ncodes}")
            for i in list(op.inputs if op.inputs is not None else []) + list(
                op.outputs if op.outputs is not None else []
            ):
                if not -1 <= int(i) < nt:
                    problems.append(f"operator {o_i} refers to tensor {int(i)} of {nt}")
        if problems:
            break
    return problems


def read_tflite(model: bytes | bytearray | str | os.PathLike | TFLiteModel) -> TFLiteModel:
    """Read and check a .tflite model from bytes or a path.

    Args:
        model: the flatbuffer bytes, a path to a .tflite file, or an already read model.

    Returns:
        A :class:`TFLiteModel` with ``ops``, ``op_counts``, ``tensors``, ``inputs``,
        ``outputs`` (each tensor with dtype, shape and per-tensor or per-channel
        quantization), ``size_bytes`` and ``to_dict()``.

    Raises:
        InvalidModelError: the file is missing, or the bytes are not a valid TFLite model.
    """
    if isinstance(model, TFLiteModel):
        return model
    if isinstance(model, bytes | bytearray | memoryview):
        return TFLiteModel(bytes(model))
    if isinstance(model, str | os.PathLike):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise InvalidModelError(f"No such file: {path!r}. Check the path to the .tflite model.")
        if os.path.isdir(path):
            raise InvalidModelError(f"{path!r} is a folder; expected a .tflite file.")
        with open(path, "rb") as f:
            return TFLiteModel(f.read(), source=path)
    raise InvalidModelError(
        f"Expected .tflite bytes or a path to a .tflite file. Received: {type(model).__name__}"
    )
