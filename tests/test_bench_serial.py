"""The serial target against a simulated board on a pseudo-terminal (no hardware).

tests/standins/sim_board.py runs the real model in TFLM behind exactly the sketch's
protocol; its misbehaving modes check that every failure is a clear DeviceError and that
nothing hangs (each test has a bounded wall time through the client's timeouts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from effkeras.bench import measure, parse_target
from effkeras.bench.serial_board import BoardClient
from effkeras.deploy import protocol
from effkeras.errors import BenchConfigError, DeviceError, ModelMismatchError

pytest.importorskip("serial")

SIM = os.path.join(os.path.dirname(__file__), "standins", "sim_board.py")


@pytest.fixture
def model_file(tmp_path, int8_io_tflite):
    path = tmp_path / "digits_int8.tflite"
    path.write_bytes(int8_io_tflite)
    return str(path)


@pytest.fixture
def board(model_file):
    """Start a simulated board in some mode; yields a function mode -> pty path."""
    procs = []

    def start(mode: str = "ok") -> str:
        proc = subprocess.Popen(
            [sys.executable, SIM, model_file, "--mode", mode, "--lifetime", "60"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("PTY "), line
        return line.split(" ", 1)[1].strip()

    yield start
    for proc in procs:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_parse_serial_targets():
    assert parse_target("serial:/dev/ttyACM0").port == "/dev/ttyACM0"
    assert parse_target("serial:COM3").spec == "serial:COM3"


def test_benchmark_on_simulated_board(board, model_file, int8_io_tflite):
    port = board("ok")
    time.sleep(0.5)  # let the board print READY and a couple of DEMO lines first
    r = measure(model_file, f"serial:{port}", runs=12, warmup=2, timeout=5)
    assert r.kind == "serial" and r.stats is not None
    assert r.stats.n == 12 and len(r.samples_us) == 12
    assert all(us > 0 for us in r.samples_us)
    assert r.stats.min_us <= r.stats.median_us <= r.stats.max_us
    assert r.arena_bytes and r.arena_bytes > 1000
    assert r.details["arena_size"] > r.arena_bytes
    # The board's argmax for its fixed input equals what TFLM gave "at generation time".
    assert r.details["argmax"] == [r.details["expected_argmax"]]
    assert not any("argmax" in n for n in r.notes)


def test_client_skips_log_and_demo_lines(board):
    port = board("ok")
    time.sleep(0.5)
    with BoardClient(port, timeout=5) as client:
        info = client.handshake(5)
        assert info["type"] == "INFO" and info["board"] == "nano33ble"
        lines, done = client.bench(8)
        assert [m["i"] for m in lines] == list(range(8))
        assert done["n"] == 8
        assert any("MicroPrintf" in ln for ln in client.log)


@pytest.mark.parametrize(
    "mode, error, match",
    [
        ("wrong_model", ModelMismatchError, "does not run this model"),
        ("bad_copy", ModelMismatchError, "fnv_ok=0"),
        ("silent", DeviceError, "No INFO answer"),
        ("garbage", DeviceError, "wrong baud rate"),
        ("disconnect", DeviceError, "disconnected"),
        ("garbled", DeviceError, "Garbled line"),
        ("error", DeviceError, "invoke_failed"),
    ],
)
def test_misbehaving_boards_give_clear_errors(board, model_file, mode, error, match):
    port = board(mode)
    start = time.monotonic()
    with pytest.raises(error, match=match):
        measure(model_file, f"serial:{port}", runs=10, warmup=0, timeout=1.5)
    assert time.monotonic() - start < 20  # nothing hangs


def test_missing_port_and_bad_settings(model_file):
    with pytest.raises(DeviceError, match="Could not open serial port"):
        measure(model_file, "serial:/dev/does_not_exist_42", runs=5)
    with pytest.raises(BenchConfigError, match="single-threaded"):
        measure(model_file, "serial:/dev/ttyACM0", runs=5, threads=2)
    with pytest.raises(BenchConfigError, match="one model"):
        from effkeras.bench import compare

        compare([model_file, model_file], "serial:/dev/ttyACM0", runs=5)
    with pytest.raises(DeviceError, match="at most"):
        measure(model_file, "serial:/dev/ttyACM0", runs=protocol.MAX_BENCH + 1)
