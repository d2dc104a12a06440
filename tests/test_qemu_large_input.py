"""Large inputs over the sketch's serial protocol (issue 21).

``RUN`` sends the input tensor as hex: a 96x96x3 int8 image (27,648 B, visual wake words)
is 55,301 bytes on the wire. The client used to write it in one call with a fixed 5 s write
timeout, which the emulated UART (one character per QEMU main-loop turn: 8-48 kB/s here,
depending on the host's load) and a 115200-baud board (4.8 s) do not always meet. Now the
payload goes out in pieces, each with ``timeout`` to be taken, the whole with ``timeout`` +
2 x its line time; the sketch times a payload out only after ``RUN_TIMEOUT_MS`` without a
character.

- on the emulated board (CLI ``effkeras bench --target qemu --inputs X.npy``): a 27,648 B
  input, outputs within 1 LSB of LiteRT's reference kernels, argmax equal;
- without hardware, on a pseudo-terminal: a slow reader that takes longer than the old 5 s
  gets every byte in order; a reader that stops gives a DeviceError naming the size and
  the limits, in bounded time.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from effkeras.convert.c_array import fnv1a32
from effkeras.deploy import protocol
from effkeras.errors import DeviceError

ROOT = Path(__file__).resolve().parents[1]
TFLM_LIB = Path(os.environ.get("EFFKERAS_TFLM_LIB")
                or ROOT.parent / "shared" / "tflm" / "Arduino_TensorFlowLite")
SHAPE = (96, 96, 3)  # the visual wake words input: 27,648 int8 bytes

needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-g++ or qemu-system-arm is not installed (apt-get install "
    "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
    "qemu-system-arm; .ci/run installs them)",
)


@pytest.fixture(scope="module")
def big_input_tflite(tmp_path_factory) -> Path:
    keras = pytest.importorskip("keras")
    from effkeras.convert import to_tflite

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.AveragePooling2D(8),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    x = np.random.default_rng(0).random((16, *SHAPE)).astype("float32")
    path = tmp_path_factory.mktemp("big") / "big_input_int8.tflite"
    path.write_bytes(to_tflite(model, quantize="int8", representative_data=x, io_dtype="int8"))
    return path


@pytest.mark.cross
@needs_qemu
def test_large_input_on_the_emulated_board_matches_litert(big_input_tflite, tmp_path, capsys):
    from effkeras.bench.qemu import load_inputs
    from effkeras.cli import main
    from effkeras.convert.flatbuffer import read_tflite
    from effkeras.runtime.litert import LiteRTRunner

    model = read_tflite(str(big_input_tflite))
    inp = model.inputs[0]
    assert inp.size * inp.numpy_dtype.itemsize == 27_648 > 16 * 1024
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x_path, np.random.default_rng(1).random((2, *SHAPE)).astype("float32"))
    rc = main(["bench", str(big_input_tflite), "--target", "qemu", "--json", "--runs", "2",
               "--warmup", "0", "--tflm-lib", str(TFLM_LIB), "--inputs", str(x_path),
               "--save-outputs", str(y_path)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    d = (result[0] if isinstance(result, list) else result)["details"]
    assert d["compared_inputs"] == 2 and d["within_1lsb"] == 1.0 and d["argmax_agreement"] == 1.0
    # Independently of the run's own figures: the saved board outputs against LiteRT's
    # reference kernels on the very int8 inputs that were sent.
    board = np.load(y_path).reshape(2, -1).astype(np.int64)
    ref_runner = LiteRTRunner(model, kernels="reference")
    ref = np.stack([ref_runner.invoke_raw([s])[0].reshape(-1)
                    for s in load_inputs(str(x_path), model)]).astype(np.int64)
    assert np.abs(board - ref).max() <= 1, (board, ref)
    assert (board.argmax(1) == ref.argmax(1)).all(), (board, ref)
    assert len(set(map(tuple, board))) == 2  # two inputs, two different outputs


# ---- no hardware: a pseudo-terminal with a fake board on its other end --------------------


def _pty() -> tuple[int, int, str]:
    """(master, slave, slave path): the client opens the slave by name; the slave fd is
    held open too so that reading the master never sees EIO before the client opens it."""
    master, slave = os.openpty()
    return master, slave, os.ttyname(slave)


def _slow_board(master: int, n_bytes: int, rate: float, stop: threading.Event,
                seen: dict) -> None:
    """Reads ``RUN`` and its hex at about ``rate`` bytes a second, then answers a RESULT
    line whose ``out`` is the FNV-1a hash of the bytes it decoded."""
    want = len(protocol.run_command(bytes(n_bytes)))
    got = b""
    start = time.monotonic()
    while len(got) < want and not stop.is_set():
        wait = start + len(got) / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if select.select([master], [], [], 0.1)[0]:
            got += os.read(master, 1024)
    seen["seconds"] = time.monotonic() - start
    head, _, payload = got.partition(b"\n")
    seen["head"] = head
    decoded = bytes.fromhex(payload.decode("ascii").strip())
    out = fnv1a32(decoded).to_bytes(4, "big").hex()
    os.write(master, f"EFK RESULT us=1 argmax=0 label=0 score=0.5 out={out}\r\n".encode())


def test_a_slow_link_gets_the_time_a_large_input_needs():
    """80 KB of hex at ~12 kB/s: over 5 s of writing (the old fixed write timeout) and over
    twice the client's timeout, yet every byte arrives, in order."""
    pytest.importorskip("serial")
    from effkeras.bench.serial_board import BoardClient

    raw = np.random.default_rng(0).integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    master, slave, port = _pty()
    stop, seen = threading.Event(), {}
    board = threading.Thread(target=_slow_board, args=(master, len(raw), 12_000, stop, seen),
                             daemon=True)
    board.start()
    try:
        with BoardClient(port, timeout=2.0) as client:
            start = time.monotonic()
            msg = client.run(raw, output_bytes=4)
            elapsed = time.monotonic() - start
    finally:
        stop.set()
        board.join(10)
        os.close(master)
        os.close(slave)
    assert seen["head"] == b"RUN"
    assert msg["out"] == fnv1a32(raw).to_bytes(4, "big")
    assert elapsed > 5.0 > 2 * client.timeout, seen


def test_a_board_that_stops_reading_names_the_size_and_the_limits():
    pytest.importorskip("serial")
    from effkeras.bench.serial_board import BoardClient

    master, slave, port = _pty()  # nobody reads: the pty takes ~14 KB, then the write blocks
    try:
        with BoardClient(port, timeout=1.0) as client:
            start = time.monotonic()
            with pytest.raises(DeviceError) as err:
                client.run(bytes(27_648), output_bytes=4)
            elapsed = time.monotonic() - start
    finally:
        os.close(master)
        os.close(slave)
    text = str(err.value)
    assert "RUN with the 27,648-byte input as hex (55,301 bytes)" in text, text
    assert "1 s without progress" in text and "115200 baud it needs 4.8 s" in text, text
    assert "--timeout" in text, text
    assert elapsed < 5, elapsed
