"""A .tflite model as a C array for TensorFlow Lite Micro: a ``.h``/``.cc`` pair.

The layout follows TFLM's own examples (``hello_world/models/hello_world_int8_model_data``):

- the source defines ``alignas(16) const unsigned char g_<name>_data[] = {...};`` and
  ``const unsigned int g_<name>_data_len = N;`` (TFLM and CMSIS-NN want the flatbuffer
  16-byte aligned);
- the header declares both ``extern`` inside an include guard, and the source includes its
  header: in C++ a namespace-scope ``const`` otherwise has internal linkage and the linker
  would find no ``g_<name>_data`` symbol;
- a comment block in both files gives the size, the sha256, the FNV-1a checksum (which the
  generated sketch recomputes on the board) and every input's and output's dtype, shape,
  scale and zero point.

:func:`parse_c_array` reads the bytes back out of a generated source file. This module
needs no TensorFlow.
"""

from __future__ import annotations

import keyword
import os
import re
from dataclasses import dataclass
from typing import Any

from effkeras.convert.flatbuffer import TensorInfo, TFLiteModel, read_tflite
from effkeras.errors import EffkerasError, InvalidModelError, OutputExistsError

#: Bytes per line in the generated array (as ``xxd -i`` writes them).
BYTES_PER_LINE = 12

FNV1A32_OFFSET = 0x811C9DC5
FNV1A32_PRIME = 0x01000193

# C and C++ keywords (C11, C++20) and a few macros an Arduino core defines: a model name
# equal to one of them gets a trailing underscore.
_RESERVED = frozenset(
    """
    alignas alignof and and_eq asm atomic_cancel atomic_commit atomic_noexcept auto bitand
    bitor bool break case catch char char8_t char16_t char32_t class compl concept const
    consteval constexpr constinit const_cast continue co_await co_return co_yield decltype
    default delete do double dynamic_cast else enum explicit export extern false float for
    friend goto if inline int long mutable namespace new noexcept not not_eq nullptr
    operator or or_eq private protected public reflexpr register reinterpret_cast requires
    restrict return short signed sizeof static static_assert static_cast struct switch
    synchronized template this thread_local throw true try typedef typeid typename union
    unsigned using virtual void volatile wchar_t while xor xor_eq _Alignas _Alignof _Atomic
    _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
    main setup loop HIGH LOW INPUT OUTPUT PI DEC HEX BIN Serial
    """.split()
)


def c_identifier(name: str) -> str:
    """Turn any model name into a valid, deterministic C/C++ identifier.

    Characters other than ASCII letters, digits and ``_`` become ``_``; runs of ``_``
    collapse to one and leading or trailing ``_`` are dropped (a double underscore is
    reserved in C++); a leading digit gets the prefix ``model_``; a C/C++ keyword gets a
    trailing ``_``; an empty result becomes ``model``.

    Examples: ``"my-model 2"`` -> ``"my_model_2"``, ``"3d"`` -> ``"model_3d"``,
    ``"class"`` -> ``"class_"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"The model name must be a string. Received: name={name!r}")
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    ident = re.sub(r"_+", "_", ident).strip("_")
    if not ident:
        return "model"
    if ident[0].isdigit():
        ident = "model_" + ident
    if ident in _RESERVED or keyword.iskeyword(ident):
        ident += "_"
    return ident


def fnv1a32(data: bytes) -> int:
    """FNV-1a 32-bit hash of ``data``: the checksum the sketch computes over the model array.

    ``h = 0x811C9DC5; for each byte: h ^= byte; h *= 0x01000193 (mod 2**32)``.
    """
    h = FNV1A32_OFFSET
    prime = FNV1A32_PRIME
    for b in bytes(data):
        h = ((h ^ b) * prime) & 0xFFFFFFFF
    return h


def _printable(text: str) -> str:
    """A name safe inside a ``//`` comment: one line, printable ASCII."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _quant_text(t: TensorInfo) -> str:
    q = t.quantization
    if q is None:
        return "not quantized"
    if q.per_channel:
        return f"per-channel ({q.scales.size} scales along axis {q.axis})"
    return f"scale {float(q.scales[0]):.9g}, zero point {int(q.zero_points[0])}"


def io_comment_lines(model: TFLiteModel) -> list[str]:
    """One line per input and output: name, dtype, shape, scale and zero point."""
    lines = []
    for kind, tensors in (("Input", model.inputs), ("Output", model.outputs)):
        for i, t in enumerate(tensors):
            shape = "[" + ", ".join(str(d) for d in t.shape) + "]"
            lines.append(
                f"{kind} {i} '{_printable(t.name)}': {t.dtype.lower()} {shape}, {_quant_text(t)}"
            )
    return lines


@dataclass(frozen=True)
class CArrayFiles:
    """A generated header/source pair holding one model.

    Attributes:
        name: the C identifier the names derive from.
        header, source: the text of ``<name>.h`` and ``<name>.cc``.
        header_name, source_name: their file names.
        array_name, len_name: ``g_<name>_data`` and ``g_<name>_data_len``.
        size_bytes: length of the model.
        sha256: hex sha256 of the model bytes.
        checksum: FNV-1a 32-bit hash of the model bytes (see :func:`fnv1a32`).
    """

    name: str
    header: str
    source: str
    header_name: str
    source_name: str
    array_name: str
    len_name: str
    size_bytes: int
    sha256: str
    checksum: int

    def write(self, out_dir: str | os.PathLike, force: bool = False) -> list[str]:
        """Write the header and source into ``out_dir`` (created if missing).

        Args:
            out_dir: destination folder.
            force: overwrite files that exist.

        Returns:
            The paths written, header first.

        Raises:
            OutputExistsError: a file exists and ``force`` is False (nothing is written).
        """
        out_dir = os.fspath(out_dir)
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise OutputExistsError(
                f"{out_dir!r} exists and is not a folder; pass a folder for the C files."
            )
        paths = [
            os.path.join(out_dir, self.header_name),
            os.path.join(out_dir, self.source_name),
        ]
        if not force:
            for path in paths:
                if os.path.exists(path):
                    raise OutputExistsError(
                        f"{path} exists. Pass force=True (CLI: --force) to overwrite it, or "
                        f"choose another folder or name."
                    )
        os.makedirs(out_dir, exist_ok=True)
        for path, text in zip(paths, (self.header, self.source), strict=True):
            with open(path, "w", encoding="ascii", newline="\n") as f:
                f.write(text)
        return paths


def _array_body(data: bytes) -> str:
    lines = []
    for start in range(0, len(data), BYTES_PER_LINE):
        chunk = data[start : start + BYTES_PER_LINE]
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    return "\n".join(lines)


def to_c_array(tflite: Any, name: str = "model", *, source_ext: str = ".cc") -> CArrayFiles:
    """A .tflite model as a TFLM-style C array: header and source text.

    Args:
        tflite: .tflite bytes, a path to a .tflite file, or a
            :class:`~effkeras.convert.TFLiteModel`.
        name: base of the file and symbol names; made a valid C identifier with
            :func:`c_identifier` (``"my-model 2"`` -> ``my_model_2.h``, ``g_my_model_2_data``).
        source_ext: extension of the source file: ``".cc"`` (TFLM's own convention) or
            ``".cpp"`` (what an Arduino sketch folder compiles).

    Returns:
        A :class:`CArrayFiles`; call ``.write(out_dir)`` to save it.

    Raises:
        InvalidModelError: the bytes are not a valid TFLite model.
    """
    if source_ext not in (".cc", ".cpp"):
        raise EffkerasError(f"source_ext must be '.cc' or '.cpp'. Received: source_ext={source_ext!r}")
    model = read_tflite(tflite)
    if not model.data:
        raise InvalidModelError(f"{model.source} is empty; there is nothing to embed.")
    ident = c_identifier(name)
    array_name = f"g_{ident}_data"
    len_name = f"g_{ident}_data_len"
    header_name = f"{ident}.h"
    source_name = f"{ident}{source_ext}"
    guard = f"EFFKERAS_{ident.upper()}_H_"
    checksum = fnv1a32(model.data)

    from effkeras import __version__

    info = [
        f"Generated by effkeras {__version__} from {_printable(os.path.basename(model.source))}. "
        "Do not edit.",
        "",
        f"Model: {model.size_bytes} bytes, sha256 {model.sha256}",
        f"FNV-1a 32-bit checksum: 0x{checksum:08x}",
        *io_comment_lines(model),
        "Ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(model.op_counts.items())),
    ]
    comment = "\n".join(("// " + line).rstrip() for line in info)
    header = (
        f"{comment}\n\n"
        f"#ifndef {guard}\n"
        f"#define {guard}\n\n"
        f"// The flatbuffer, 16-byte aligned for TFLM (defined in {source_name}).\n"
        f"extern const unsigned char {array_name}[];\n"
        f"extern const unsigned int {len_name};\n\n"
        f"#endif  // {guard}\n"
    )
    source = (
        f"{comment}\n\n"
        f"// Including the header gives the arrays external linkage (a namespace-scope\n"
        f"// const in C++ is otherwise local to this file).\n"
        f'#include "{header_name}"\n\n'
        f"alignas(16) const unsigned char {array_name}[] = {{\n"
        f"{_array_body(model.data)}\n"
        f"}};\n\n"
        f"const unsigned int {len_name} = {model.size_bytes};\n"
    )
    return CArrayFiles(
        name=ident,
        header=header,
        source=source,
        header_name=header_name,
        source_name=source_name,
        array_name=array_name,
        len_name=len_name,
        size_bytes=model.size_bytes,
        sha256=model.sha256,
        checksum=checksum,
    )


_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_ARRAY_RE = re.compile(
    r"unsigned\s+char\s+(?P<name>[A-Za-z_]\w*)\s*\[\s*\d*\s*\]\s*=\s*\{(?P<body>[^}]*)\}\s*;"
)
_TOKEN_RE = re.compile(r"^(0[xX][0-9a-fA-F]+|\d+)$")


def parse_c_array(source_text: str) -> bytes:
    """The bytes of the first ``unsigned char`` array in C source (e.g. a generated ``.cc``).

    Accepts hex (``0x1c``) and decimal elements. When the source also defines the
    ``<array>_len`` constant, it must equal the number of elements.

    Raises:
        ValueError: no array is found, an element is not a byte, or the length disagrees.
    """
    text = _COMMENT_RE.sub(" ", source_text)
    match = _ARRAY_RE.search(text)
    if match is None:
        raise EffkerasError(
            "No 'unsigned char name[] = {...};' array found in the source text; pass the "
            "contents of a .cc/.cpp written by to_c_array."
        )
    out = bytearray()
    tokens = [tok.strip() for tok in match.group("body").split(",")]
    if tokens and tokens[-1] == "":
        tokens.pop()  # trailing comma
    for i, tok in enumerate(tokens):
        if not _TOKEN_RE.match(tok):
            raise EffkerasError(f"Array element {i} is not an integer literal. Received: {tok!r}")
        value = int(tok, 0)
        if not 0 <= value <= 255:
            raise EffkerasError(f"Array element {i} is not a byte (0..255). Received: {tok!r}")
        out.append(value)
    name = match.group("name")
    len_match = re.search(rf"unsigned\s+int\s+{re.escape(name)}_len\s*=\s*(\d+)\s*;", text)
    if len_match is not None and int(len_match.group(1)) != len(out):
        raise EffkerasError(
            f"{name}_len is {len_match.group(1)} but the array has {len(out)} elements; the "
            f"source is truncated or edited."
        )
    return bytes(out)
