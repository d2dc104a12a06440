"""effkeras build: generated sketches compiled with arm-none-eabi-g++ against the real
Arduino_TensorFlowLite library (../shared/tflm, or $EFFKERAS_TFLM_LIB).

The library objects are cached (``$EFFKERAS_CACHE`` or ``~/.cache/effkeras``): the first
run compiles the interpreter core and the digits model's kernels (about 90 sources), later
runs only the sketch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from effkeras.boards import Board
from effkeras.deploy.arduino import arduino_sketch
from effkeras.deploy.build import (
    BUILD_BOARDS,
    build_sketch,
    find_library,
    get_build_board,
    kernel_sources,
    read_sketch,
)
from effkeras.errors import BuildError, ToolchainError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "tflite_models" / "digits_cnn_int8.tflite"
TFLM_LIB = Path(os.environ.get("EFFKERAS_TFLM_LIB")
                or ROOT.parent / "shared" / "tflm" / "Arduino_TensorFlowLite")

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None,
    reason="arm-none-eabi-g++ is not installed (apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib; .ci/run installs it)",
)


def _emulated_board() -> Board:
    from effkeras.bench.qemu import sketch_board

    return sketch_board("mps2_an386")


@pytest.fixture(scope="module")
def digits_sketch(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "digits_qemu"
    return arduino_sketch(str(DIGITS), out, board=_emulated_board())


@pytest.fixture(scope="module")
def digits_build(digits_sketch, tmp_path_factory):
    return build_sketch(digits_sketch.path, "qemu", TFLM_LIB,
                        build_dir=tmp_path_factory.mktemp("build_out"))


# ---- no toolchain needed -------------------------------------------------------------

def test_kernel_selection_follows_the_resolver():
    src = find_library(TFLM_LIB) / "src"
    files = kernel_sources(src, ["AddConv2D", "AddReshape"])
    assert "tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp" in files
    assert "tensorflow/lite/micro/kernels/conv_common.cpp" in files
    assert "tensorflow/lite/micro/kernels/reshape.cpp" in files
    assert not any("softmax" in f or "fully_connected" in f for f in files)
    assert any(f.startswith("third_party/cmsis_nn/Source/ConvolutionFunctions/") for f in files)
    with pytest.raises(BuildError, match="AddNoSuchOp"):
        kernel_sources(src, ["AddNoSuchOp"])


def test_missing_library_names_where_it_looked(tmp_path, monkeypatch):
    with pytest.raises(ToolchainError, match=r"not at .*nowhere.*Library Manager"):
        find_library(tmp_path / "nowhere")
    with pytest.raises(ToolchainError, match="is not the Arduino_TensorFlowLite library"):
        find_library(tmp_path)
    with pytest.raises(ToolchainError, match="src folder"):
        find_library(TFLM_LIB / "src")
    monkeypatch.setenv("EFFKERAS_TFLM_LIB", str(TFLM_LIB))
    assert find_library() == TFLM_LIB.resolve()
    monkeypatch.setenv("EFFKERAS_TFLM_LIB", str(tmp_path / "gone"))
    with pytest.raises(ToolchainError, match=r"\$EFFKERAS_TFLM_LIB"):
        find_library()


def test_not_a_sketch(tmp_path):
    with pytest.raises(BuildError, match="No sketch folder"):
        read_sketch(tmp_path / "missing")
    (tmp_path / "other.ino").write_text("void setup() {}\nvoid loop() {}\n")
    with pytest.raises(BuildError, match=r"no .*\.ino\. It has other\.ino"):
        read_sketch(tmp_path)
    sketch = tmp_path / "plain"
    sketch.mkdir()
    (sketch / "plain.ino").write_text("void setup() {}\nvoid loop() {}\n")
    with pytest.raises(BuildError, match="registers no ops"):
        read_sketch(sketch)


def test_missing_toolchain_says_how_to_install(digits_sketch, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainError, match="apt-get install gcc-arm-none-eabi"):
        build_sketch(digits_sketch.path, "qemu", TFLM_LIB)


def test_boards_table():
    assert get_build_board("qemu").emulated
    assert BUILD_BOARDS["pico"].float_abi == "soft"
    with pytest.raises(BuildError, match="Xtensa"):
        get_build_board("esp32s3")
    with pytest.raises(ValueError, match="Received: board='uno'"):
        get_build_board("uno")


# ---- real builds -----------------------------------------------------------------------

@pytest.mark.cross
@needs_arm
def test_digits_sketch_builds_against_the_real_library(digits_build, digits_sketch):
    r = digits_build
    assert Path(r.elf).is_file()
    assert r.library_version == "2.4.0-ALPHA" and r.tflm_sync == "2023-02-27"
    assert r.ops == ["AddConv2D", "AddFullyConnected", "AddMaxPool2D", "AddReshape",
                     "AddSoftmax"]
    # The model array is in flash; the arena is in bss.
    assert r.text > digits_sketch.model_bytes
    assert r.bss > digits_sketch.arena_size
    assert r.flash_bytes == r.text + r.data and r.ram_bytes == r.data + r.bss
    assert not any(s.startswith("peripherals/") for s in r.library_sources)
    assert "tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp" in r.library_sources
    assert not any("lstm" in s or "transpose_conv" in s for s in r.library_sources)
    assert "-mfloat-abi=hard" in r.flags
    assert r.fallback == []  # the selected sources sufficed: no whole-library link


@pytest.mark.cross
@needs_arm
def test_second_build_comes_from_the_cache(digits_build, digits_sketch, tmp_path):
    again = build_sketch(digits_sketch.path, "qemu", TFLM_LIB, build_dir=tmp_path)
    assert again.compiled == 0
    assert again.cache_dir == digits_build.cache_dir
    assert (again.text, again.data, again.bss) == (digits_build.text, digits_build.data,
                                                  digits_build.bss)


@pytest.mark.cross
@needs_arm
def test_cli_build_json_and_bad_input(digits_build, digits_sketch, tmp_path, capsys):
    from effkeras.cli import main

    rc = main(["build", digits_sketch.path, "--tflm-lib", str(TFLM_LIB), "--build-dir",
               str(tmp_path / "b"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["text"] == digits_build.text and out["board"] == "mps2_an386"
    assert main(["build", digits_sketch.path, "--tflm-lib", str(tmp_path / "none")]) == 2
    assert "Arduino_TensorFlowLite library is not at" in capsys.readouterr().err
    assert main(["build", str(tmp_path), "--tflm-lib", str(TFLM_LIB)]) == 2
    assert "not an Arduino sketch" in capsys.readouterr().err
    assert main(["build", digits_sketch.path, "--board", "esp32s3"]) == 2
    assert "Xtensa" in capsys.readouterr().err


@pytest.mark.cross
@needs_arm
def test_text_sketch_builds(tmp_path):
    keras = pytest.importorskip("keras")
    from effkeras.convert import to_tflite
    from effkeras.deploy.text_sketch import text_sketch
    from effkeras.text import Projector, build_sgnn, calibration_data

    projector = Projector(8, 8, char_ngrams=(2, 3))
    keras.utils.set_random_seed(0)
    model = build_sgnn(projector, 2, bottleneck=16, hidden=8)
    x = projector(["free prize call now", "see you at lunch", "ok", "win cash"])
    tflite = to_tflite(model, quantize="int8", representative_data=calibration_data(x),
                       io_dtype="int8")
    info = text_sketch(tflite, tmp_path / "sms_text", projector, labels=["ham", "spam"],
                       board=_emulated_board())
    r = build_sketch(info.path, "qemu", TFLM_LIB)
    assert Path(r.elf).is_file()
    assert r.text > len(tflite) and r.bss > 0
    assert any(s.endswith("fully_connected.cpp") for s in r.library_sources)
    assert r.fallback == [] and not any("conv.cpp" in s for s in r.library_sources)


# ---- every board `effkeras boards` lists ---------------------------------------------------

def test_every_listed_board_builds_or_says_why():
    from effkeras.boards import BOARDS
    from effkeras.deploy.build import build_status

    for name in BOARDS:
        status = build_status(name)
        assert status.startswith(("builds (", "unsupported: ")), (name, status)
        if status.startswith("unsupported"):
            assert "use " in status  # says what to use instead
    assert build_status("esp32s3").startswith("unsupported: ")
    assert build_status("pico") == "builds (Cortex-M0+: -mcpu=cortex-m0plus -mthumb -mfloat-abi=soft)"


def test_boards_cli_shows_the_build_status(capsys):
    from effkeras.cli import main

    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "effkeras build" in out.splitlines()[0]
    assert out.splitlines()[5].split()[-1] == "unsupported" and "Xtensa LX7, not an Arm" in out
    assert main(["boards", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["portenta_h7"]["build"].startswith("builds (Cortex-M7F")


@pytest.mark.parametrize("board,notes", [
    ("pico", ["i2s_nrf52840.cpp", "Delete those five files", "effkeras build sk --board pico"]),
    ("nano33ble", ["compiles for it as it is"]),
    ("esp32s3", ["esp-tflite-micro", "do not."]),
])
def test_readme_says_what_the_library_needs_on_each_board(tmp_path, board, notes):
    from effkeras.boards import get_board

    info = arduino_sketch(str(DIGITS), tmp_path / "sk", board=get_board(board))
    readme = (tmp_path / "sk" / "README.md").read_text()
    assert "Arduino_TensorFlowLite 2.4.0-ALPHA (TFLM sources of 2023-02-27)" in readme
    assert "tracks TFLM" not in readme
    for note in notes:
        assert note in readme, note
    assert "efk_tflm_port.cpp" in [Path(f).name for f in info.files]


@pytest.mark.cross
@needs_arm
@pytest.mark.parametrize("nano", [False, True])
def test_the_sketch_defines_the_tflm_hooks_only_off_the_nano(digits_sketch, tmp_path, nano):
    import subprocess

    obj = tmp_path / "port.o"
    cmd = ["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-Os", "-std=gnu++17",
           f"-I{Path(__file__).resolve().parents[1] / 'effkeras/deploy/firmware'}", "-c",
           str(Path(digits_sketch.path) / "efk_tflm_port.cpp"), "-o", str(obj)]
    if nano:
        cmd.insert(1, "-DARDUINO_ARDUINO_NANO33BLE")
    subprocess.run(cmd, check=True)
    symbols = subprocess.run(["arm-none-eabi-nm", "-C", str(obj)], capture_output=True,
                             text=True, check=True).stdout
    assert ("DebugLog" in symbols) is not nano
    assert ("tflite::InitializeTarget()" in symbols) is not nano


@pytest.mark.cross
@needs_arm
@pytest.mark.parametrize("board", [b for b, v in BUILD_BOARDS.items()
                                   if not v.unsupported and not v.emulated])
def test_digits_sketch_builds_for_every_listed_arm_board(board, tmp_path):
    """Each CPU (Cortex-M4F, M0+, M7F) compiles against the unmodified library: its own
    library cache, the CPU's flags, no whole-library fallback, and the board's memory map."""
    from effkeras.boards import get_board

    sketch = arduino_sketch(str(DIGITS), tmp_path / f"digits_{board}", board=get_board(board))
    r = build_sketch(sketch.path, board, TFLM_LIB, build_dir=tmp_path / "out")
    b = BUILD_BOARDS[board]
    assert r.board.name == board and all(f in r.flags for f in b.cpu_flags)
    assert f"-D{b.define}" in r.flags and "-DPERIPHERALS_H_" not in r.flags
    assert r.fallback == [] and not any(s.startswith("peripherals/") for s in r.library_sources)
    assert r.text > sketch.model_bytes and r.bss > sketch.arena_size
    assert r.flash_bytes < b.flash_bytes and r.ram_bytes < b.ram_bytes
    assert "sketch/efk_tflm_port.cpp.o" in [
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.o")]


@pytest.mark.cross
@needs_arm
def test_a_sketch_without_the_tflm_hooks_gets_a_clear_error(digits_sketch, tmp_path):
    sketch = tmp_path / "no_hooks"
    shutil.copytree(digits_sketch.path, sketch)
    (sketch / "efk_tflm_port.cpp").unlink()
    (sketch / "digits_qemu.ino").rename(sketch / "no_hooks.ino")
    with pytest.raises(BuildError, match="defines no DebugLog.*efk_tflm_port.cpp"):
        build_sketch(sketch, "qemu", TFLM_LIB, build_dir=tmp_path / "out")
