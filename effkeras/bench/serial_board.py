"""Benchmark on a board: speak the generated Arduino sketch's serial protocol with pyserial.

The protocol is :mod:`effkeras.deploy.protocol` (``INFO``, ``BENCH <n>``, ``EFK ...`` lines).
The steps:

1. **Handshake**: open the port and send ``INFO`` (any command also stops the sketch's
   periodic ``DEMO`` lines) until an ``INFO`` line arrives; ``READY``/``DEMO`` lines and
   log lines (no ``EFK`` prefix) are skipped. A board that resets when the port opens
   gets ``INFO`` again every :data:`HANDSHAKE_RETRY_S` seconds.
2. **Model check**: the INFO line's size, sha256 prefix and FNV-1a checksum must be those
   of the model given, and the board's own checksum check (``fnv_ok``) must pass, or
   :class:`~effkeras.errors.ModelMismatchError`: the figures would belong to another model.
3. ``BENCH <warmup>`` (discarded), then ``BENCH <runs>``: one ``BENCH i=.. us=..`` line per
   inference and ``BENCH_DONE``; indices must come in order.

Nothing waits forever: each line has ``timeout`` seconds to arrive (:class:`DeviceError`
"timed out"); a write goes out in :data:`WRITE_CHUNK`-byte pieces, each of which must be
taken within ``timeout`` seconds, the whole within ``timeout`` plus :data:`TRANSFER_SLACK`
times its line time at the baud rate (:func:`transfer_seconds`), so that a large ``RUN``
payload (a 96x96x3 int8 input is 55 KB of hex: 4.8 s at 115200 baud, and an emulated UART
on a busy machine may be slower) gets the time its size needs, while a board that stopped
reading still fails, naming the size and the limits. The handshake has
``handshake_timeout`` seconds in all, more than :data:`MAX_GARBAGE_LINES` unusable lines
in a row (wrong baud rate, another program on the port) raise, a protocol line that does
not parse raises, and a port that disappears (unplugged board) raises. The port is always
closed.

``pyserial`` is imported only here (``pip install effkeras[boards]``).
"""

from __future__ import annotations

import time
from typing import Any

from effkeras.convert.c_array import fnv1a32
from effkeras.convert.flatbuffer import TFLiteModel
from effkeras.deploy import protocol
from effkeras.errors import DeviceError, ModelMismatchError

#: Seconds between INFO requests while waiting for the handshake.
HANDSHAKE_RETRY_S = 1.0
#: Consecutive lines that are neither protocol nor printable log text before giving up.
MAX_GARBAGE_LINES = 50
#: Consecutive non-protocol (log) lines tolerated while waiting for one answer.
MAX_LOG_LINES = 500
#: Bytes handed to the port per write call: progress is checked between pieces.
WRITE_CHUNK = 1024
#: A payload may take this many times its line time (10 bits a byte at the baud rate) on
#: top of ``timeout``: a USB board is faster than its nominal baud rate, the QEMU UART
#: (one character per main-loop turn of the emulator) may be slower on a busy host.
TRANSFER_SLACK = 2.0


def transfer_seconds(n_bytes: int, baud: int = protocol.BAUD) -> float:
    """Seconds ``n_bytes`` take on the wire at ``baud`` (8N1: 10 bits a byte)."""
    return n_bytes * 10.0 / baud


class _LineTimeout(DeviceError):
    """No line arrived in time (internal: the handshake retries on it)."""


def _open(port: str, baud: int, read_timeout: float, write_timeout: float):
    try:
        import serial
    except ImportError:
        raise DeviceError(
            "The serial target needs pyserial: pip install pyserial (or effkeras[boards])."
        ) from None
    try:
        if "://" in port:  # socket://host:port (QEMU, ser2net), rfc2217://...
            return serial.serial_for_url(port, baudrate=baud, timeout=read_timeout,
                                         write_timeout=write_timeout)
        return serial.Serial(port, baudrate=baud, timeout=read_timeout,
                             write_timeout=write_timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(
            f"Could not open serial port {port!r}: {exc}. Check the port name (ls /dev/tty* or "
            f"the Arduino IDE's Tools > Port) and that no serial monitor holds it."
        ) from None


class BoardClient:
    """A line-oriented client of the sketch protocol on an open serial port.

    Args:
        port: the serial device (``/dev/ttyACM0``, ``COM3``, a pty path).
        baud: :data:`effkeras.deploy.protocol.BAUD` unless the sketch was changed.
        timeout: seconds a single expected line may take (per inference: keep it above
            the slowest inference); also the longest a write may make no progress. A
            write's total limit and the wait for the answer to ``RUN`` add
            :data:`TRANSFER_SLACK` x the payload's line time (see :meth:`send`).
    """

    def __init__(self, port: str, baud: int = protocol.BAUD, timeout: float = 10.0):
        self.port = port
        self.baud = int(baud)
        self.timeout = float(timeout)
        self._serial = _open(port, baud, read_timeout=0.05, write_timeout=self.timeout)
        self._buf = b""
        self.log: list[str] = []
        self.garbage_seen = False

    def close(self) -> None:
        try:
            self._serial.close()
        except Exception:  # noqa: BLE001 - closing a vanished port may raise anything
            pass

    def __enter__(self) -> BoardClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- raw lines ---------------------------------------------------------------
    def transfer_allowance(self, n_bytes: int) -> float:
        """Seconds allowed for ``n_bytes`` beyond ``timeout``: :data:`TRANSFER_SLACK` x
        their line time at this port's baud rate."""
        return TRANSFER_SLACK * transfer_seconds(n_bytes, self.baud)

    def send(self, text: str | bytes, what: str = "a command") -> None:
        """Write ``text`` in :data:`WRITE_CHUNK`-byte pieces, then flush.

        Each piece must be taken within ``timeout`` seconds (the port's write timeout: a
        board that stopped reading), and the whole within ``timeout`` +
        :meth:`transfer_allowance`; either limit raises :class:`DeviceError` naming
        ``what``, the size, the bytes taken and the limits.
        """
        data = text if isinstance(text, bytes) else text.encode("ascii")
        budget = self.timeout + self.transfer_allowance(len(data))
        start = time.monotonic()
        sent = 0

        def too_slow(reason: str) -> DeviceError:
            return DeviceError(
                f"Sending {what} ({len(data):,} bytes) to {self.port} timed out after "
                f"{time.monotonic() - start:.1f} s with {sent:,} bytes taken: {reason}. At "
                f"{self.baud} baud it needs {transfer_seconds(len(data), self.baud):.1f} s; "
                f"the limits are {self.timeout:g} s without progress and {budget:.1f} s in all "
                f"(timeout {self.timeout:g} s + {TRANSFER_SLACK:g} x the line time). Is the "
                f"effkeras sketch still running and reading? A slower link (an emulator on a "
                f"busy machine) needs a larger timeout (timeout=..., effkeras bench --timeout)."
            )

        try:
            while sent < len(data):
                if time.monotonic() - start > budget:
                    raise too_slow(f"over the {budget:.1f} s limit")
                chunk = data[sent:sent + WRITE_CHUNK]
                n = self._serial.write(chunk)
                sent += len(chunk) if n is None else int(n)
            self._serial.flush()
        except DeviceError:
            raise
        except Exception as exc:  # SerialException, SerialTimeoutException, OSError
            if type(exc).__name__ == "SerialTimeoutException":
                raise too_slow(f"the board took no more within {self.timeout:g} s") from None
            raise DeviceError(
                f"Writing to {self.port} failed ({exc}); the board was disconnected?"
            ) from None

    def read_line(self, deadline: float, waiting_for: str) -> bytes:
        """One line (without its end) before ``deadline`` (time.monotonic), or DeviceError."""
        while b"\n" not in self._buf:
            if time.monotonic() >= deadline:
                raise _LineTimeout(
                    f"Timed out waiting for {waiting_for} from {self.port}. Is the effkeras "
                    f"sketch uploaded and running, and the baud rate {self._serial.baudrate}? "
                    f"Last log lines: {self.log[-3:]}"
                )
            try:
                chunk = self._serial.read(max(1, getattr(self._serial, "in_waiting", 0) or 1))
            except Exception as exc:  # SerialException / OSError when the device vanishes
                raise DeviceError(
                    f"The board on {self.port} disconnected while the host waited for "
                    f"{waiting_for} ({type(exc).__name__}: {exc})."
                ) from None
            self._buf += chunk
            if len(self._buf) > 4096 and b"\n" not in self._buf:
                raise DeviceError(
                    f"{self.port} sent 4 KiB without a line end while the host waited for "
                    f"{waiting_for}. Wrong baud rate (the sketch uses {protocol.BAUD}), or "
                    f"not the effkeras sketch?"
                )
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    def read_message(self, types: tuple[str, ...], deadline: float, waiting_for: str
                     ) -> dict[str, Any]:
        """The next protocol line of one of ``types``; log lines are kept in ``self.log``.

        ``ERROR`` lines raise; ``READY``/``DEMO``/``OK`` lines are skipped unless asked for.
        """
        garbage = 0
        logs = 0
        while True:
            raw = self.read_line(deadline, waiting_for)
            if not protocol.is_protocol_line(raw):
                text = raw.decode("ascii", errors="replace")
                printable = raw and all(32 <= b < 127 or b == 9 for b in raw)
                if printable or not raw:
                    self.log.append(text)
                    logs += 1
                    garbage = 0 if printable else garbage
                else:
                    garbage += 1
                    self.garbage_seen = True
                if garbage > MAX_GARBAGE_LINES or logs > MAX_LOG_LINES:
                    raise DeviceError(
                        f"{self.port} sends lines that are not the effkeras protocol while "
                        f"the host waits for {waiting_for} (e.g. {text[:60]!r}). Wrong baud "
                        f"rate (the sketch uses {protocol.BAUD}), or not the effkeras sketch?"
                    )
                continue
            try:
                msg = protocol.parse_line(raw)
            except ValueError as exc:
                raise DeviceError(f"Garbled line from {self.port}: {exc}") from None
            if msg["type"] == "ERROR":
                raise DeviceError(f"The board answered ERROR msg={msg['msg']} while the host "
                                  f"waited for {waiting_for}.")
            if msg["type"] in types:
                return msg
            # READY after a reset, DEMO from the periodic demo, a stray OK: skip.

    # ---- protocol ----------------------------------------------------------------
    def handshake(self, handshake_timeout: float = 8.0) -> dict[str, Any]:
        """Send INFO until the INFO line arrives; returns it parsed."""
        end = time.monotonic() + handshake_timeout
        while True:
            self.send(protocol.CMD_INFO + "\n")
            retry = min(end, time.monotonic() + HANDSHAKE_RETRY_S)
            try:
                return self.read_message(("INFO",), retry, "the INFO line (handshake)")
            except _LineTimeout:
                if time.monotonic() >= end:
                    junk = (" It sent bytes that are not text: wrong baud rate (the sketch "
                            f"uses {protocol.BAUD})?") if self.garbage_seen else ""
                    raise DeviceError(
                        f"No INFO answer from {self.port} within {handshake_timeout:g} s.{junk} Is "
                        f"the effkeras sketch uploaded and running, the baud rate "
                        f"{self._serial.baudrate}, and no serial monitor open? Last log "
                        f"lines: {self.log[-3:]}"
                    ) from None

    def bench(self, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``BENCH n``: the n BENCH lines and the BENCH_DONE line."""
        self.send(protocol.bench_command(n))
        lines = []
        for i in range(n):
            msg = self.read_message(("BENCH",), time.monotonic() + self.timeout,
                                    f"BENCH line {i} of {n}")
            if msg["i"] != i:
                raise DeviceError(f"BENCH lines out of order from {self.port}: expected i={i}, "
                                  f"got i={msg['i']}.")
            lines.append(msg)
        done = self.read_message(("BENCH_DONE",), time.monotonic() + self.timeout, "BENCH_DONE")
        if done["n"] != n:
            raise DeviceError(f"BENCH_DONE reports n={done['n']}, expected {n}.")
        return lines, done

    def run(self, raw_input: bytes, output_bytes: int | None = None) -> dict[str, Any]:
        """``RUN`` with the input tensor's raw bytes: the parsed RESULT line (``out`` holds
        the output tensor's raw bytes; checked to be ``output_bytes`` long when given).

        The payload (2 hex digits a byte) is sent with :meth:`send`; the RESULT line may
        take ``timeout`` + :meth:`transfer_allowance` after the last byte was written (the
        port's, the OS's and an emulator's buffers may still hold part of it)."""
        payload = protocol.run_command(raw_input)
        what = f"RUN with the {len(raw_input):,}-byte input as hex"
        self.send(payload, what=what)
        try:
            msg = self.read_message(
                ("RESULT",), time.monotonic() + self.timeout + self.transfer_allowance(len(payload)),
                "the RESULT line")
        except DeviceError as exc:
            if "msg=run_timeout" not in str(exc):
                raise
            raise DeviceError(
                f"{exc} The board stopped waiting for the {len(payload):,} bytes of {what} "
                f"({transfer_seconds(len(payload), self.baud):.1f} s at {self.baud} baud). "
                f"Older generated sketches allow {protocol.RUN_TIMEOUT_MS / 1000:g} s for the "
                f"whole payload, current ones {protocol.RUN_TIMEOUT_MS / 1000:g} s between two "
                f"characters: regenerate and upload the sketch (effkeras sketch MODEL --out "
                f"DIR)."
            ) from None
        if output_bytes is not None and len(msg["out"]) != output_bytes:
            raise DeviceError(f"RESULT from {self.port} carries {len(msg['out'])} output bytes, "
                              f"expected {output_bytes}.")
        return msg


def expected_info(model: TFLiteModel) -> dict[str, Any]:
    """The INFO fields that identify this model: size, sha256 prefix, FNV-1a checksum."""
    return {"bytes": model.size_bytes, "sha256": model.sha256[:16], "fnv": fnv1a32(model.data)}


def run_serial(
    model: TFLiteModel,
    port: str,
    runs: int,
    warmup: int,
    baud: int = protocol.BAUD,
    timeout: float = 10.0,
    handshake_timeout: float | None = None,
    inputs: list[bytes] | None = None,
) -> dict[str, Any]:
    """Handshake, check the model, run the benchmark, then ``RUN`` each of ``inputs``.

    ``timeout`` bounds the wait for each line; ``handshake_timeout`` (default: ``timeout``)
    the whole handshake, which must cover a board's reset when the port opens. ``inputs``
    are raw input tensors (the model's dtype and byte order, e.g. ``x.tobytes()``).

    Returns:
        ``{info, samples_us, done, warmup_us, argmax, expected_argmax, log, results}``;
        ``results`` holds the parsed RESULT line of each input (``out``: raw bytes).

    Raises:
        ModelMismatchError: the board runs another model (or its copy is corrupt).
        DeviceError: port, timeout, garbage, disconnect or an ERROR line.
    """
    if runs > protocol.MAX_BENCH or warmup > protocol.MAX_BENCH:
        raise DeviceError(f"The sketch runs at most {protocol.MAX_BENCH} inferences per BENCH. "
                          f"Received: runs={runs}, warmup={warmup}")
    with BoardClient(port, baud, timeout) as client:
        info = client.handshake(timeout if handshake_timeout is None else handshake_timeout)
        problems = protocol.info_mismatches(info, expected_info(model))
        if problems:
            raise ModelMismatchError(
                f"The board on {port} does not run this model ({model.source}): "
                + "; ".join(problems)
                + ". Upload the sketch generated for it (effkeras sketch MODEL --out DIR)."
            )
        warm_us: list[int] = []
        if warmup:
            warm_lines, _ = client.bench(warmup)
            warm_us = [m["us"] for m in warm_lines]
        lines, done = client.bench(runs)
        out_bytes = model.outputs[0].size * model.outputs[0].numpy_dtype.itemsize
        results = [client.run(raw, out_bytes) for raw in (inputs or [])]
        return {
            "results": results,
            "info": info,
            "samples_us": [float(m["us"]) for m in lines],
            "warmup_us": warm_us,
            "done": done,
            "argmax": sorted({m["argmax"] for m in lines}),
            "expected_argmax": info.get("expected_argmax"),
            "log": client.log[-20:],
        }
