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
    # The demo model has per-tensor weights: CMSIS-NN equals the reference kernels here
    # (the tolerance of 1 LSB is what the kernels' rounding may differ by).
    assert run.within_1lsb == 1.0, s
    assert s["library_problems"] == []
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
    shutil.copy(ROOT / "effkeras" / "deploy" / "templates" / "efk_tflm_port.cpp", d)
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


# ---- a text model: its own sketch (C featurizer + model) on the emulated board -----------

TEXTS = ["free prize call now", "see you at lunch", "WIN CASH!!! txt 87121 now",
         "héllo wörld, ça va? ✓", "ok"]


@pytest.fixture(scope="module")
def sgnn_tflite(tmp_path_factory) -> Path:
    keras = pytest.importorskip("keras")
    from effkeras.convert import to_tflite
    from effkeras.text import Projector, build_sgnn, calibration_data

    projector = Projector(16, 8, char_ngrams=(2, 3))
    keras.utils.set_random_seed(0)
    model = build_sgnn(projector, 2, bottleneck=16, hidden=8)
    x = projector(TEXTS * 4)
    path = tmp_path_factory.mktemp("text") / "sgnn_int8.tflite"
    path.write_bytes(to_tflite(model, quantize="int8", representative_data=calibration_data(x),
                               io_dtype="int8"))
    return path


@pytest.mark.cross
@needs_qemu
def test_text_sketch_on_the_emulated_board_matches_the_host(sgnn_tflite, tmp_path, capsys):
    """The board's C projector writes the very input tensor the Python projector makes (its
    FNV-1a hash, taken before Invoke), and its class equals LiteRT's reference kernels."""
    from effkeras.cli import main

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    rc = main(["bench", str(sgnn_tflite), "--target", "qemu", "--json", "--runs", "3",
               "--warmup", "0", "--compare", "4", "--tflm-lib", str(TFLM_LIB),
               "--texts", str(texts)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    result = result[0] if isinstance(result, list) else result
    text = result["details"]["text_sketch"]
    assert text["texts"] == len(TEXTS)
    assert text["projector_self_test"] and text["model_checksum_ok"]
    assert text["fnv_agreement"] == 1.0
    assert text["argmax_agreement"] == 1.0
    assert text["project_instructions_median"] > 0 and text["invoke_instructions_median"] > 0
    # The same model through the generic sketch: outputs vs LiteRT reference kernels.
    assert result["details"]["compared_inputs"] == 4
    assert result["details"]["argmax_agreement"] == 1.0


def test_texts_option_needs_the_qemu_target(sgnn_tflite, tmp_path, capsys):
    from effkeras.bench.qemu_text import run_qemu_text
    from effkeras.cli import main
    from effkeras.errors import BenchConfigError

    texts = tmp_path / "t.txt"
    texts.write_text("hello\n")
    assert main(["bench", str(sgnn_tflite), "--texts", str(texts)]) == 2
    assert "use it with --target qemu" in capsys.readouterr().err
    texts.write_bytes(b"\xff\xfe\n")
    assert main(["bench", str(sgnn_tflite), "--target", "qemu", "--texts", str(texts)]) == 2
    assert "as UTF-8 text" in capsys.readouterr().err
    for bad, match in [("one line", "list of strings"), (["a\nb"], "one non-empty line"),
                       ([], "texts is empty"), (["x" * 300], "line buffer")]:
        with pytest.raises(BenchConfigError, match=match):
            run_qemu_text(sgnn_tflite, bad)


@pytest.mark.cross
@needs_qemu
def test_profile_fits_the_board_with_the_32bit_target_arena(capsys):
    from effkeras import profile
    from effkeras.cli import main

    host = profile(str(DIGITS), board="pico")
    target = profile(str(DIGITS), board="pico", arena="target", tflm_lib=TFLM_LIB)
    assert host.arena_source == "host-64bit" and target.arena_source == "target-32bit"
    assert host.fit_arena_bytes == host.arena_with_margin
    # The 32-bit target needs less than the 64-bit host (pointers are half as wide).
    assert 0 < target.target_arena_bytes < target.arena_bytes == host.arena_bytes
    assert target.fit_arena_bytes == (target.target_arena_bytes + 15) // 16 * 16
    assert target.board()["ram"]["needed_bytes"] < host.board()["ram"]["needed_bytes"]
    assert "on the 32-bit target" in target.table() and "Cortex-M4F" in target.table()
    assert "profile --arena target" in host.table()
    assert main(["profile", str(DIGITS), "--board", "pico", "--arena", "target", "--json",
                 "--tflm-lib", str(TFLM_LIB)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["arena_source"] == "target-32bit"
    assert d["target_arena_bytes"] == target.target_arena_bytes
    assert d["target"]["library_version"] == "2.4.0-ALPHA"
    with pytest.raises(ValueError, match="Received: arena='board'"):
        profile(str(DIGITS), arena="board")


@pytest.mark.cross
@needs_qemu
def test_per_channel_dense_is_wrong_on_the_2023_library_and_said_so(digits_model, digits,
                                                                   digits_inputs):
    """The 2023 library's FULLY_CONNECTED uses the first channel's scale: a per-channel
    dense filter (TF's default) gives outputs off by more than the kernels' 1 LSB, and the
    run says why. (to_tflite converts dense layers per tensor by default for this reason.)"""
    from effkeras.bench.qemu import run_qemu
    from effkeras.convert import to_tflite

    per_channel = to_tflite(digits_model, quantize="int8", representative_data=digits[0][:200],
                            io_dtype="int8", dense_per_channel=True)
    run = run_qemu(per_channel, runs=2, warmup=0, inputs=digits_inputs[:10],
                   tflm_lib=TFLM_LIB)
    s = run.summary()
    assert s["library_problems"] and "per-channel weight scales" in s["library_problems"][0]
    assert run.max_abs_diff > 1, s
