"""bench --target qemu: the digits sketch built against the real TFLM library and run on an
emulated Cortex-M4F (qemu-system-arm -M mps2-an386 -icount shift=0), driven over its UART
by the serial target's client; outputs compared with LiteRT's reference kernels.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from effkeras.bench.targets import QemuTarget, parse_target
from effkeras.errors import DeviceError, UnknownTargetError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "tflite_models" / "digits_cnn_int8.tflite"
TFLM_LIB = Path(os.environ.get("EFFKERAS_TFLM_LIB")
                or ROOT.parent / "shared" / "tflm" / "Arduino_TensorFlowLite")

needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-g++ or qemu-system-arm is not installed (apt-get install "
    "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
    "qemu-system-arm; .ci/run installs them)",
)


@pytest.fixture(scope="module")
def digits_inputs() -> np.ndarray:
    from effkeras.data import load_dataset

    return load_dataset("digits").x_test[:20]


def test_target_parsing():
    assert parse_target("qemu") == QemuTarget("mps2_an386")
    assert parse_target("qemu:mps2-an386").spec == "qemu:mps2_an386"
    with pytest.raises(UnknownTargetError, match="QEMU emulates mps2_an386"):
        parse_target("qemu:nano33ble")


@pytest.mark.cross
@needs_qemu
def test_digits_on_the_emulated_board_matches_litert(digits_inputs):
    from effkeras.bench.qemu import run_qemu

    run = run_qemu(str(DIGITS), runs=5, warmup=1, inputs=digits_inputs, tflm_lib=TFLM_LIB)
    s = run.summary()
    assert len(run.outputs) == len(digits_inputs) == len(run.reference)
    # CMSIS-NN may differ from the reference kernels by an LSB on some elements.
    assert run.within_1lsb >= 0.99, s
    assert run.argmax_agreement == 1.0, s
    assert run.argmax == [run.expected_argmax]
    # The 32-bit target needs less arena than the 64-bit host measured.
    assert 0 < run.arena_bytes < run.host_arena_bytes, s
    assert run.arena_bytes <= s["arena_size"]
    assert 10_000 < run.instructions < 10_000_000, s
    assert s["text"] > DIGITS.stat().st_size and s["bss"] > 0


@pytest.mark.cross
@needs_qemu
def test_cli_bench_qemu_json(digits_inputs, tmp_path, capsys):
    from effkeras.cli import main

    x = tmp_path / "x.npy"
    y = tmp_path / "y.npy"
    np.save(x, digits_inputs[:4])
    rc = main(["bench", str(DIGITS), "--target", "qemu", "--json", "--runs", "3",
               "--warmup", "0", "--tflm-lib", str(TFLM_LIB), "--inputs", str(x),
               "--save-outputs", str(y)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    result = result[0] if isinstance(result, list) else result
    assert result["target"] == "qemu:mps2_an386"
    d = result["details"]
    assert d["instructions_per_inference"] > 0 and d["compared_inputs"] == 4
    assert 0 < result["arena_bytes"] < d["arena_host_64bit"]
    assert np.load(y).shape == (4, 1, 10)


def _fake_sketch(root: Path, name: str, body: str) -> Path:
    d = root / name
    d.mkdir()
    (d / f"{name}.ino").write_text(
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
        "tflite::MicroMutableOpResolver<1> micro_op_resolver;\n"
        "void setup() {\n  micro_op_resolver.AddReshape();\n" + body + "}\nvoid loop() {}\n"
    )
    return d


@pytest.mark.cross
@needs_qemu
@pytest.mark.parametrize(
    "name, body, match",
    [
        ("crashes", "  *(volatile int*)0xFFFFFFF0u = 1;\n", "msg=hard_fault"),
        ("hangs", "  for (;;) {\n  }\n", "No INFO answer"),
    ],
)
def test_a_crash_or_a_hang_is_a_clear_error(tmp_path, name, body, match):
    from effkeras.bench.qemu import QemuBoard
    from effkeras.bench.serial_board import BoardClient
    from effkeras.deploy.build import build_sketch

    build = build_sketch(_fake_sketch(tmp_path, name, body), "qemu", TFLM_LIB)
    with QemuBoard(build.elf) as qemu, BoardClient(qemu.port, timeout=3) as client:
        with pytest.raises(DeviceError, match=match):
            client.handshake(3)
    assert not qemu.alive()
