"""A simulated Arduino board for the tests: NO BOARD IS INVOLVED.

It stands in for a board running the sketch that ``effkeras sketch`` generates: it opens a
pseudo-terminal (``os.openpty``), prints ``PTY <path>`` on stdout, and then speaks exactly
the sketch's serial protocol (:mod:`effkeras.deploy.protocol`) on the pty's master side,
running the real model in the TFLite Micro interpreter on this host (``TFLMRunner``), so
``BENCH`` lines carry real (host) inference times and real argmaxes.

    python tests/standins/sim_board.py MODEL.tflite [--mode MODE] [--board NAME]

Modes (how the board behaves):

  ok           a well-behaved board: READY at start, periodic DEMO lines until the host
               speaks, a few log lines (no EFK prefix) mixed into its answers
  garbage      answers every command with binary junk (as a wrong baud rate looks)
  wrong_model  runs (and reports) another model: bytes, sha256 and checksum differ
  bad_copy     the model's bytes and sha256 match but the board's own FNV check failed
  silent       never answers
  disconnect   answers INFO, then vanishes (closes the pty) after 3 BENCH lines
  garbled      answers INFO, then sends a BENCH line whose value is not a number
  error        answers BENCH with "EFK ERROR msg=invoke_failed"

The process ends when the host closes the port after the master read fails, on stdin EOF,
or after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import select
import sys
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from effkeras.convert.c_array import fnv1a32  # noqa: E402
from effkeras.deploy import protocol  # noqa: E402
from effkeras.runtime.tflm import TFLMRunner, arena_with_margin  # noqa: E402

MODES = ("ok", "garbage", "wrong_model", "bad_copy", "silent", "disconnect", "garbled", "error")


class Board:
    def __init__(self, model_path: str, mode: str, board: str):
        with open(model_path, "rb") as f:
            self.data = f.read()
        self.mode = mode
        self.board = board
        self.runner = TFLMRunner(self.data)
        t_in = self.runner.model.inputs[0]
        rng = np.random.default_rng(7)
        info = np.iinfo(t_in.numpy_dtype) if t_in.numpy_dtype.kind in "iu" else None
        if info is not None:
            self.sample = rng.integers(info.min, info.max, size=t_in.shape, endpoint=True)
            self.sample = self.sample.astype(t_in.numpy_dtype)
        else:
            self.sample = rng.random(t_in.shape).astype(t_in.numpy_dtype)
        self.expected_argmax = self.invoke()[1]  # what the host computed at generation time
        self.arena_used = self.runner.arena_bytes()
        self.demo = True
        self.demo_count = 0
        self.master = -1

    def invoke(self) -> tuple[int, int]:
        start = time.perf_counter()
        out = self.runner.invoke_raw([self.sample])[0]
        us = int((time.perf_counter() - start) * 1e6)
        return us, int(np.argmax(out))

    # ---- output ----------------------------------------------------------------------
    def send(self, text: str) -> None:
        data = text.encode("ascii") if isinstance(text, str) else text
        while data:
            n = os.write(self.master, data)
            data = data[n:]

    def line(self, kind: str, **fields) -> None:
        body = " ".join(f"{k}={v}" for k, v in fields.items())
        self.send(f"{protocol.PREFIX}{kind} {body}\r\n")

    def info_line(self) -> None:
        data = self.data
        computed = fnv1a32(data)  # the board hashes its own array at start-up
        generated = computed  # the value generated into model_settings.h
        if self.mode == "wrong_model":
            data = data + b"another model"
            computed = generated = fnv1a32(data)
        elif self.mode == "bad_copy":
            computed ^= 0x1  # a flipped bit in flash
        t_in = self.runner.model.inputs[0]
        t_out = self.runner.model.outputs[0]

        def spec(t):
            return t.dtype.lower() + ":" + "x".join(str(d) for d in t.shape)

        self.line(
            "INFO", proto=protocol.PROTOCOL_VERSION, name="sim_model", bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest()[:16], fnv=f"{computed:08x}",
            fnv_ok=int(computed == generated), arena_used=self.arena_used,
            arena_size=arena_with_margin(self.arena_used), ops=len(self.runner.model.op_names),
            board=self.board, input=spec(t_in), output=spec(t_out),
            expected_argmax=self.expected_argmax,
        )

    def bench(self, n: int) -> None:
        times = []
        argmax = 0
        for i in range(n):
            if self.mode == "disconnect" and i == 3:
                os.close(self.master)
                os._exit(0)
            if self.mode == "garbled" and i == 1:
                self.line("BENCH", i=i, us="fast", argmax=0)
                continue
            us, argmax = self.invoke()
            times.append(us)
            if i % 4 == 2:
                self.send("tflm: a log line from MicroPrintf\r\n")
            self.line("BENCH", i=i, us=us, argmax=argmax)
        self.line("BENCH_DONE", n=n, min_us=min(times), max_us=max(times),
                  mean_us=sum(times) // n, total_us=sum(times), argmax=argmax)

    # ---- input -----------------------------------------------------------------------
    def handle(self, command: str) -> None:
        if self.mode == "silent":
            return
        if self.mode == "garbage":
            self.send(bytes([0xFE, 0x80, 0x13, 0xC3, 0x00, 0x9F]) * 5 + b"\n")
            return
        self.demo = False
        if command == protocol.CMD_INFO:
            self.info_line()
        elif command.startswith("BENCH "):
            try:
                n = int(command[6:])
            except ValueError:
                n = 0
            if not 1 <= n <= protocol.MAX_BENCH:
                self.line("ERROR", msg="bad_count")
            elif self.mode == "error":
                self.line("ERROR", msg="invoke_failed")
            else:
                self.bench(n)
        elif command in ("DEMO 0", "DEMO 1"):
            self.demo = command.endswith("1")
            self.line("OK", cmd="DEMO")
        else:
            self.line("ERROR", msg="unknown_command")

    def serve(self, lifetime: float) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: like a USB CDC serial port
        self.master = master
        print("PTY", os.ttyname(slave), flush=True)
        if self.mode not in ("silent", "garbage"):
            self.line("READY", proto=protocol.PROTOCOL_VERSION, name="sim_model",
                      board=self.board)
        buf = b""
        end = time.monotonic() + lifetime
        last_demo = time.monotonic()
        while time.monotonic() < end:
            ready, _, _ = select.select([master, sys.stdin], [], [], 0.05)
            if sys.stdin in ready and not sys.stdin.readline():
                break  # the test closed our stdin: stop
            if master in ready:
                try:
                    chunk = os.read(master, 1024)
                except OSError:
                    break
                buf += chunk
                while b"\n" in buf:
                    raw, _, buf = buf.partition(b"\n")
                    command = raw.rstrip(b"\r").decode("ascii", errors="replace")
                    if command:
                        self.handle(command)
            if (self.demo and self.mode == "ok" and self.demo_count < 20
                    and time.monotonic() - last_demo > 0.2):
                last_demo = time.monotonic()
                us, argmax = self.invoke()
                self.line("DEMO", i=self.demo_count, us=us, argmax=argmax, label=argmax,
                          score="0.996094")
                self.demo_count += 1
        os.close(slave)
        os.close(master)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--mode", choices=MODES, default="ok")
    p.add_argument("--board", default="nano33ble")
    p.add_argument("--lifetime", type=float, default=60.0)
    args = p.parse_args(argv)
    Board(args.model, args.mode, args.board).serve(args.lifetime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
