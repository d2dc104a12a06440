"""The serial line protocol of the generated Arduino sketch (benchmark mode).

Serial runs at :data:`BAUD` (115200) baud, 8N1; lines end in ``\\n`` (the board sends
``\\r\\n``; a trailing ``\\r`` is ignored either way). Commands are ASCII and uppercase.

Host -> board commands:

- ``INFO`` -> one ``INFO`` line.
- ``BENCH <n>`` (1 <= n <= :data:`MAX_BENCH`) -> n ``BENCH`` lines, one per inference on
  the sketch's fixed input, then one ``BENCH_DONE`` line.
- ``RUN`` then the input tensor's raw bytes as hex (``2 * input_bytes`` hex digits; spaces
  and newlines between them are ignored) -> one ``RESULT`` line. The sketch decodes the
  digits as they come (no line buffer: any input size) and gives up with
  ``EFK ERROR msg=run_timeout`` when no character arrives for :data:`RUN_TIMEOUT_MS`
  (sketches generated before this rule allowed that long for the whole payload). The
  host writes it in pieces with a time limit scaled to its size
  (:meth:`effkeras.bench.serial_board.BoardClient.send`). A non-hex character ends the
  payload with ``EFK ERROR msg=bad_hex`` and the rest of its line is dropped.
- ``DEMO 0`` / ``DEMO 1`` -> stop / restart the periodic demo inference; answered with
  ``EFK OK cmd=DEMO``.

Any valid command stops the demo (the periodic ``DEMO`` lines) so that they never mix with
benchmark output; ``DEMO 1`` turns it back on.

Board -> host lines all start with :data:`PREFIX` (``"EFK "``), then a message type, then
space-separated ``key=value`` fields (values contain no spaces)::

    EFK READY proto=1 name=digits board=nano33ble
    EFK INFO proto=1 name=digits bytes=8008 sha256=e462def4bdded634 fnv=c60f5afe fnv_ok=1
        arena_used=2644 arena_size=4224 ops=5 board=nano33ble input=int8:1x8x8x1
        output=int8:1x10 expected_argmax=3
    EFK BENCH i=0 us=1520 argmax=3
    EFK BENCH_DONE n=10 min_us=1519 max_us=1533 mean_us=1524 total_us=15240 argmax=3
    EFK RESULT us=1522 argmax=3 label=3 score=0.996094 out=80808080ff80808080808080
    EFK DEMO i=7 us=1521 argmax=3 label=3 score=0.996094
    EFK OK cmd=DEMO
    EFK ERROR msg=unknown_command

(the INFO line is one line on the wire). ``sha256`` is the first 16 hex digits of the
model's sha256 (computed on the host at generation time); ``fnv`` is the FNV-1a 32-bit hash
that the board computes over its model array at start-up (8 lowercase hex digits) and
``fnv_ok`` whether it equals the value generated into ``model_settings.h``: together they
tell the host that the figures belong to this model. ``arena_used`` is
``MicroInterpreter::arena_used_bytes()`` on the board, ``arena_size`` the arena compiled in.
``expected_argmax`` is the argmax TFLM gave on the host for the sketch's fixed input.
Lines that do not start with ``EFK `` are log output (e.g. ``MicroPrintf``): skip them with
:func:`is_protocol_line`.

This module needs no TensorFlow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from effkeras.convert.c_array import fnv1a32

PROTOCOL_VERSION = 1
PREFIX = "EFK "
BAUD = 115200
MAX_BENCH = 10000
RUN_TIMEOUT_MS = 10000
LINE_BUFFER = 64

CMD_INFO = "INFO"
CMD_BENCH = "BENCH"
CMD_RUN = "RUN"
CMD_DEMO = "DEMO"

#: Error tokens the board may send in ``EFK ERROR msg=...``.
ERRORS = (
    "unknown_command",
    "line_too_long",
    "bad_count",
    "bad_hex",
    "run_timeout",
    "invoke_failed",
    "not_ready",
)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_HEX_RE = re.compile(r"^[0-9a-f]*$")


def _int(value: str) -> int:
    if not re.fullmatch(r"-?\d+", value):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _nonneg(value: str) -> int:
    n = _int(value)
    if n < 0:
        raise ValueError(f"negative: {value!r}")
    return n


def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError(f"not 0 or 1: {value!r}")
    return value == "1"


def _hex_fixed(digits: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) != digits or not _HEX_RE.match(value):
            raise ValueError(f"not {digits} lowercase hex digits: {value!r}")
        return value

    return parse


def _hex32(value: str) -> int:
    return int(_hex_fixed(8)(value), 16)


def _hex_bytes(value: str) -> bytes:
    if len(value) % 2 or not _HEX_RE.match(value):
        raise ValueError(f"not an even number of lowercase hex digits: {value!r}")
    return bytes.fromhex(value)


def _float(value: str) -> float:
    if not re.fullmatch(r"-?(\d+(\.\d*)?|nan|inf)", value):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _token(value: str) -> str:
    if not _TOKEN_RE.match(value):
        raise ValueError(f"not a token: {value!r}")
    return value


def _tensor_spec(value: str) -> dict[str, Any]:
    m = re.fullmatch(r"([a-z0-9]+):(\d+(?:x\d+)*)?", value)
    if m is None:
        raise ValueError(f"not dtype:shape (e.g. int8:1x8x8x1): {value!r}")
    shape = tuple(int(d) for d in m.group(2).split("x")) if m.group(2) else ()
    return {"dtype": m.group(1), "shape": shape}


#: Message type -> required field -> parser. Extra ``key=value`` fields are accepted (a
#: later protocol version may add some) and returned as strings.
MESSAGES: dict[str, dict[str, Callable[[str], Any]]] = {
    "READY": {"proto": _nonneg, "name": _token, "board": _token},
    "INFO": {
        "proto": _nonneg,
        "name": _token,
        "bytes": _nonneg,
        "sha256": _hex_fixed(16),
        "fnv": _hex32,
        "fnv_ok": _flag,
        "arena_used": _nonneg,
        "arena_size": _nonneg,
        "ops": _nonneg,
        "board": _token,
        "input": _tensor_spec,
        "output": _tensor_spec,
        "expected_argmax": _int,
    },
    "BENCH": {"i": _nonneg, "us": _nonneg, "argmax": _nonneg},
    "BENCH_DONE": {
        "n": _nonneg,
        "min_us": _nonneg,
        "max_us": _nonneg,
        "mean_us": _nonneg,
        "total_us": _nonneg,
        "argmax": _nonneg,
    },
    "RESULT": {
        "us": _nonneg,
        "argmax": _nonneg,
        "label": _token,
        "score": _float,
        "out": _hex_bytes,
    },
    "DEMO": {
        "i": _nonneg,
        "us": _nonneg,
        "argmax": _nonneg,
        "label": _token,
        "score": _float,
    },
    # The text sketch (effkeras.deploy.text_sketch): one CLASS line per text line received.
    "CLASS": {
        "argmax": _nonneg,
        "label": _token,
        "score": _float,
        "tokens": _int,
        "bytes": _nonneg,
        "truncated": _flag,
        "project_us": _nonneg,
        "invoke_us": _nonneg,
        "input_fnv": _hex32,
    },
    "OK": {"cmd": _token},
    "ERROR": {"msg": _token},
}


def is_protocol_line(line: str | bytes) -> bool:
    """Whether a line from the board belongs to the protocol (starts with ``EFK ``)."""
    if isinstance(line, bytes):
        line = line.decode("ascii", errors="replace")
    return line.startswith(PREFIX)


def parse_line(line: str | bytes) -> dict[str, Any]:
    """Parse one line the board sent.

    Args:
        line: the line, with or without its ``\\r\\n``.

    Returns:
        ``{"type": <message type>, <field>: <value>, ...}`` with typed values: integers as
        ``int``, ``fnv`` as ``int``, ``fnv_ok`` as ``bool``, ``score`` as ``float``,
        ``out`` as ``bytes``, ``input``/``output`` as ``{"dtype", "shape"}``.

    Raises:
        ValueError: the line is not a protocol line, its type is unknown, a field is not
            ``key=value``, repeats, is missing or has a malformed value.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"Not an ASCII protocol line. Received: {line!r}") from None
    text = line.rstrip("\r\n")
    if not text.startswith(PREFIX):
        raise ValueError(
            f"Not a protocol line (it must start with {PREFIX!r}; skip log lines with "
            f"is_protocol_line). Received: {line!r}"
        )
    parts = text[len(PREFIX) :].split(" ")
    kind = parts[0]
    if kind not in MESSAGES:
        raise ValueError(
            f"Unknown message type {kind!r}; expected one of {', '.join(MESSAGES)}. "
            f"Received: {line!r}"
        )
    schema = MESSAGES[kind]
    result: dict[str, Any] = {"type": kind}
    for field in parts[1:]:
        key, sep, value = field.partition("=")
        if not sep or not key or not value or not re.fullmatch(r"[a-z_0-9]+", key):
            raise ValueError(f"Field {field!r} is not key=value. Received: {line!r}")
        if key in result:
            raise ValueError(f"Field {key!r} appears twice. Received: {line!r}")
        parser = schema.get(key)
        try:
            result[key] = parser(value) if parser else value
        except ValueError as exc:
            raise ValueError(f"Field {key}: {exc}. Received: {line!r}") from None
    missing = [key for key in schema if key not in result]
    if missing:
        raise ValueError(f"{kind} line lacks {', '.join(missing)}. Received: {line!r}")
    return result


def bench_command(n: int) -> str:
    """The ``BENCH <n>`` command line, checked."""
    if not isinstance(n, int) or not 1 <= n <= MAX_BENCH:
        raise ValueError(f"n must be an integer in 1..{MAX_BENCH}. Received: n={n!r}")
    return f"{CMD_BENCH} {n}\n"


def run_command(raw_input: bytes) -> str:
    """``RUN`` followed by the input tensor's bytes in hex (what the board reads)."""
    if not isinstance(raw_input, bytes | bytearray) or not raw_input:
        raise ValueError(
            "raw_input must be the input tensor's non-empty raw bytes (e.g. "
            f"array.astype(int8).tobytes()). Received: {type(raw_input).__name__}"
        )
    return f"{CMD_RUN}\n{bytes(raw_input).hex()}\n"


def info_mismatches(info: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Differences between a parsed INFO line and what the host generated.

    Args:
        info: :func:`parse_line` of the board's INFO line.
        expected: e.g. :meth:`effkeras.deploy.SketchInfo.expected_info`: any of ``name``,
            ``bytes``, ``sha256`` (full or 16-digit prefix), ``fnv``, ``arena_size``,
            ``ops``, ``board``.

    Returns:
        One readable line per mismatch; empty when the board runs this model. A board
        whose own checksum check failed (``fnv_ok=0``) is always reported.
    """
    problems = []
    for key, want in expected.items():
        if key not in info:
            problems.append(f"{key}: missing from the INFO line")
            continue
        got = info[key]
        if key == "sha256":
            want = str(want)[:16]
        if got != want:
            shown = (lambda v: f"{v:08x}") if key == "fnv" else repr
            problems.append(f"{key}: board has {shown(got)}, expected {shown(want)}")
    if info.get("fnv_ok") is False:
        problems.append("fnv_ok=0: the model array on the board fails its own checksum")
    return problems


__all__ = [
    "BAUD",
    "CMD_BENCH",
    "CMD_DEMO",
    "CMD_INFO",
    "CMD_RUN",
    "ERRORS",
    "LINE_BUFFER",
    "MAX_BENCH",
    "MESSAGES",
    "PREFIX",
    "PROTOCOL_VERSION",
    "RUN_TIMEOUT_MS",
    "bench_command",
    "fnv1a32",
    "info_mismatches",
    "is_protocol_line",
    "parse_line",
    "run_command",
]
