"""Arduino sketches: generated from the flatbuffer, checked, compiled, and their protocol run.

There is no Arduino core or TFLM library on the test machine. ``tests/arduino_stubs/`` holds
STAND-IN headers with the real APIs' names and signatures (Arduino ``Serial``/``millis``/
``micros``; TFLM's ``TfLiteTensor``, ``GetModel``, ``MicroInterpreter``,
``MicroMutableOpResolver<N>::Add*``), not the real libraries: they prove the generated C++
is well-formed and calls the API as TFLM declares it, and ``host_runtime.cpp`` (a fake
interpreter that runs no model) lets the test drive the sketch's serial protocol on the host.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from effkeras.boards import custom_board, get_board
from effkeras.convert import read_tflite
from effkeras.convert.c_array import fnv1a32, parse_c_array
from effkeras.deploy import SketchInfo, arduino_sketch, protocol
from effkeras.deploy.protocol import (
    bench_command,
    info_mismatches,
    is_protocol_line,
    parse_line,
    run_command,
)
from effkeras.errors import (
    BoardFitError,
    EffkerasError,
    OutputExistsError,
    UnsupportedOpsError,
)
from effkeras.runtime.tflm import arena_with_margin, measure_arena
from effkeras.runtime.tflm_ops import TFLM_OPS

STUBS = Path(__file__).parent / "arduino_stubs"
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-std=c++11", "-Wall", "-Werror"]
TFL_TYPES = {
    "FLOAT32": "kTfLiteFloat32",
    "INT8": "kTfLiteInt8",
    "UINT8": "kTfLiteUInt8",
    "INT16": "kTfLiteInt16",
    "INT32": "kTfLiteInt32",
}
NP_TYPES = {"float": np.float32, "int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16}
LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine nine"]


# ---- helpers -----------------------------------------------------------------------------


def _run(cmd: list[str], cwd=None, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, cwd=cwd, **kwargs)
    out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode(errors="replace")
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out}\n{err}"
    return proc


def _read(info: SketchInfo, name: str) -> str:
    return Path(info.path, name).read_text()


def _settings(info: SketchInfo) -> dict[str, str]:
    """constexpr scalars and arrays of model_settings.h, as their literal text."""
    text = _read(info, "model_settings.h")
    values = dict(re.findall(r"constexpr [\w ]+? (k\w+)(?:\[\w*\])? = ([^;{]+?);", text))
    for name, body in re.findall(r"(k\w+)\[\w*\] = \{([^}]*)\};", text):
        values[name] = body
    return values


def _c_int_list(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"-?\d+", text)]


def _sample_bytes(info: SketchInfo) -> bytes:
    text = _read(info, "model_settings.h")
    ctype, body = re.search(
        r"const (\w+) kSampleInput\[kInputElements\] = \{([^}]*)\}", text
    ).groups()
    items = [v.strip().rstrip("f") for v in body.split(",") if v.strip()]
    return np.array([float(v) for v in items]).astype(NP_TYPES[ctype]).tobytes()


def _host_build(info: SketchInfo, tmp_path: Path) -> Path:
    """Link the sketch with the stand-in runtime, configured from the .tflite itself."""
    model = read_tflite(_model_bytes(info))
    inp, out = model.inputs[0], model.outputs[0]
    scale = float(out.quantization.scales[0]) if out.quantization else 0.0
    zero_point = int(out.quantization.zero_points[0]) if out.quantization else 0
    defines = [
        f"-DSTUB_INPUT_TYPE={TFL_TYPES[inp.dtype]}",
        f"-DSTUB_INPUT_BYTES={inp.size * inp.numpy_dtype.itemsize}",
        f"-DSTUB_OUTPUT_TYPE={TFL_TYPES[out.dtype]}",
        f"-DSTUB_OUTPUT_ELEMENTS={out.size}",
        f"-DSTUB_OUTPUT_SCALE={scale!r}f",
        f"-DSTUB_OUTPUT_ZERO_POINT={zero_point}",
    ]
    exe = tmp_path / "sketch_host"
    sketch = Path(info.path)
    _run(
        [
            "g++",
            "-std=c++11",
            "-Wall",
            "-Werror",
            *defines,
            f"-I{STUBS}",
            f"-I{sketch}",
            "-include",
            "Arduino.h",
            "-x",
            "c++",
            str(Path(info.ino_path)),
            str(sketch / "model.cpp"),
            str(STUBS / "host_runtime.cpp"),
            "-o",
            str(exe),
        ]
    )
    return exe


def _model_bytes(info: SketchInfo) -> bytes:
    return parse_c_array(Path(info.path, "model.cpp").read_text())


def _talk(exe: Path, commands: str, loops: int = 60) -> tuple[list[dict], str]:
    proc = _run([str(exe), str(loops)], input=commands.encode(), timeout=60)
    lines = proc.stdout.decode().splitlines()
    assert all(is_protocol_line(ln) for ln in lines), lines
    assert all(ln.endswith("\r") or not ln for ln in proc.stdout.decode().split("\n")[:-1])
    return [parse_line(ln) for ln in lines], proc.stderr.decode()


def _syntax_check(info: SketchInfo, compiler: list[str]) -> None:
    _run(
        [
            *compiler,
            "-fsyntax-only",
            f"-I{STUBS}",
            f"-I{info.path}",
            "-include",
            "Arduino.h",
            "-x",
            "c++",
            info.ino_path,
        ]
    )


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def int8_sketch(int8_io_tflite, tmp_path_factory) -> SketchInfo:
    out = tmp_path_factory.mktemp("sketches") / "digits_int8"
    return arduino_sketch(int8_io_tflite, out, "nano33ble", labels=LABELS)


@pytest.fixture(scope="module")
def float_io_sketch(int8_tflite, tmp_path_factory) -> SketchInfo:
    out = tmp_path_factory.mktemp("sketches") / "digits-float-io"
    return arduino_sketch(int8_tflite, out, "pico", name="digits float")


@pytest.fixture(scope="module")
def uint8_tflite(digits_model, digits) -> bytes:
    from effkeras.convert import to_tflite

    return to_tflite(
        digits_model, quantize="int8", representative_data=digits[0][:200], io_dtype="uint8"
    )


@pytest.fixture(scope="module")
def uint8_sketch(uint8_tflite, tmp_path_factory) -> SketchInfo:
    out = tmp_path_factory.mktemp("sketches") / "digits_uint8"
    return arduino_sketch(uint8_tflite, out, get_board("portenta_h7"))


@pytest.fixture(scope="module")
def sign_tflite() -> bytes:
    import keras

    from effkeras.convert import to_tflite

    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: keras.ops.sign(t))(inputs)
    return to_tflite(keras.Model(inputs, keras.layers.Dense(2)(x)))


# ---- what is generated -------------------------------------------------------------------


def test_folder_layout(int8_sketch, int8_io_tflite):
    names = [os.path.basename(p) for p in int8_sketch.files]
    assert names == [
        "digits_int8.ino",
        "model.h",
        "model.cpp",
        "model_settings.h",
        "efk_checksum.h",
        "efk_tflm_port.cpp",
        "README.md",
    ]
    assert sorted(os.listdir(int8_sketch.path)) == sorted(names)
    assert _model_bytes(int8_sketch) == int8_io_tflite
    assert int8_sketch.name == "digits_int8"
    assert int8_sketch.labels[-1] == "nine_nine"
    assert int8_sketch.board.name == "nano33ble"


@pytest.mark.parametrize("which", ["int8_sketch", "float_io_sketch"])
def test_resolver_registers_exactly_the_models_ops(which, request):
    info: SketchInfo = request.getfixturevalue(which)
    model = read_tflite(_model_bytes(info))
    ino = Path(info.ino_path).read_text()
    sizes = re.findall(r"tflite::MicroMutableOpResolver<(\d+)> micro_op_resolver;", ino)
    assert len(sizes) == 1
    calls = re.findall(r"micro_op_resolver\.(Add\w+)\(\)", ino)
    assert int(sizes[0]) == len(model.op_names) == len(calls)
    assert sorted(calls) == sorted(TFLM_OPS[op] for op in model.op_names)
    assert len(set(calls)) == len(calls)
    assert info.ops == model.op_names
    if which == "float_io_sketch":
        assert {"AddQuantize", "AddDequantize"} <= set(calls)
    for needed in (
        "tflite::GetModel(g_model_data)",
        "model->version() != TFLITE_SCHEMA_VERSION",
        "alignas(16) uint8_t tensor_arena[kTensorArenaSize];",
        "interpreter->AllocateTensors()",
        "interpreter->arena_used_bytes()",
        "tflite::MicroInterpreter static_interpreter(",
    ):
        assert needed in ino


def test_arena_size_is_the_measured_arena_plus_margin(int8_sketch, int8_io_tflite):
    measured = measure_arena(int8_io_tflite)
    settings = _settings(int8_sketch)
    assert int(settings["kTensorArenaSize"]) == arena_with_margin(measured)
    assert int(settings["kHostArenaBytes"]) == measured == int8_sketch.arena_bytes
    assert int8_sketch.arena_size == arena_with_margin(measured) > measured
    text = _read(int8_sketch, "model_settings.h")
    assert f"TFLM measured {measured} bytes on the 64-bit host" in text
    assert f"arena_with_margin({measured}) = {arena_with_margin(measured)}" in text


@pytest.mark.parametrize("which", ["int8_sketch", "float_io_sketch", "uint8_sketch"])
def test_settings_match_the_flatbuffer(which, request):
    info: SketchInfo = request.getfixturevalue(which)
    model = read_tflite(_model_bytes(info))
    s = _settings(info)
    assert int(s["kModelBytes"]) == model.size_bytes
    assert s["kModelSha256"] == f'"{model.sha256}"'
    assert s["kModelSha256Prefix"] == f'"{model.sha256[:16]}"'
    assert int(s["kModelChecksum"].rstrip("u"), 16) == fnv1a32(model.data) == info.checksum
    assert int(s["kOpCount"]) == len(model.op_names)
    for prefix, t in (("kInput", model.inputs[0]), ("kOutput", model.outputs[0])):
        assert s[f"{prefix}Dtype"] == f'"{t.dtype.lower()}"'
        assert _c_int_list(s[f"{prefix}Shape"]) == list(t.shape)
        assert int(s[f"{prefix}Dims"]) == len(t.shape)
        assert int(s[f"{prefix}Elements"]) == t.size
        assert int(s[f"{prefix}Bytes"]) == t.size * t.numpy_dtype.itemsize
        scale = float(s[f"{prefix}Scale"].rstrip("f"))
        if t.quantization is None:
            assert scale == 0.0 and int(s[f"{prefix}ZeroPoint"]) == 0
        else:
            assert scale == pytest.approx(float(t.quantization.scales[0]), rel=1e-7)
            assert int(s[f"{prefix}ZeroPoint"]) == int(t.quantization.zero_points[0])
    assert len(_sample_bytes(info)) == int(s["kInputBytes"])


def test_settings_labels_and_board(int8_sketch, float_io_sketch):
    s = _settings(int8_sketch)
    assert int(s["kNumLabels"]) == 10
    labels = re.findall(r'"([^"]*)"', s["kLabels"])
    assert labels == int8_sketch.labels
    assert s["kBoardName"] == '"nano33ble"'
    f = _settings(float_io_sketch)
    assert int(f["kNumLabels"]) == 0
    assert f["kModelName"] == '"digits_float"'
    assert f["kBoardName"] == '"pico"'
    assert f["kInputDtype"] == '"float32"'
    assert "float32 input or output" in _read(float_io_sketch, "README.md")
    assert re.search(
        r"const float kSampleInput\[kInputElements\]", _read(float_io_sketch, "model_settings.h")
    )


def test_readme(int8_sketch):
    text = _read(int8_sketch, "README.md")
    board = get_board("nano33ble")
    assert f"arduino-cli compile --fqbn {board.fqbn} digits_int8" in text
    assert f"arduino-cli upload  --fqbn {board.fqbn}" in text
    assert "arduino-cli core install arduino:mbed_nano" in text
    assert "tflite-micro-arduino-examples" in text
    assert "115200" in text
    for line in ("EFK INFO", "EFK BENCH ", "EFK BENCH_DONE", "EFK RESULT", "EFK ERROR"):
        assert line in text
    assert f"measured {int8_sketch.arena_bytes} bytes with TFLM on a 64-bit host" in text
    assert "float32 input or output" not in text
    info_line = next(ln for ln in text.splitlines() if ln.startswith("EFK INFO"))
    parsed = parse_line(info_line.replace("<bytes>", "1"))
    assert info_mismatches(parsed, int8_sketch.expected_info()) == []


# ---- compiling and running the generated C++ ---------------------------------------------


@pytest.mark.parametrize("which", ["int8_sketch", "float_io_sketch", "uint8_sketch"])
def test_ino_compiles_against_stand_in_headers(which, request):
    info: SketchInfo = request.getfixturevalue(which)
    _syntax_check(info, ["g++", "-std=c++11", "-Wall", "-Werror"])
    _syntax_check(info, ["arm-none-eabi-g++", *ARM_FLAGS])
    sketch = Path(info.path)
    _run(["arm-none-eabi-g++", *ARM_FLAGS, "-c", "model.cpp", "-o", "model.o"], cwd=sketch)
    symbols = _run(["arm-none-eabi-nm", "model.o"], cwd=sketch, text=True).stdout
    assert re.search(r" R g_model_data$", symbols, re.M)
    os.remove(sketch / "model.o")


def test_protocol_over_host_build(int8_sketch, int8_io_tflite, tmp_path):
    exe = _host_build(int8_sketch, tmp_path)
    run_input = bytes([1, 2, 3, 4]) + bytes(60)
    commands = (
        "INFO\n"
        + bench_command(3)
        + run_command(run_input)
        + "BOGUS\nBENCH 0\nBENCH x\n"
        + "X" * 80
        + "\nDEMO 1\n"
    )
    lines, stderr = _talk(exe, commands, loops=45)
    kinds = [ln["type"] for ln in lines]
    assert kinds[:2] == ["READY", "INFO"]
    info = lines[1]
    assert info_mismatches(info, int8_sketch.expected_info()) == []
    assert info["fnv"] == fnv1a32(int8_io_tflite) and info["fnv_ok"] is True
    assert info["bytes"] == len(int8_io_tflite)
    assert info["arena_size"] == int8_sketch.arena_size
    assert info["input"] == {"dtype": "int8", "shape": (1, 8, 8, 1)}
    assert info["output"] == {"dtype": "int8", "shape": (1, 10)}
    # The stand-in's resolver saw exactly the model's ops, within MicroMutableOpResolver<N>.
    registered = re.search(r"registered=(\S*)", stderr).group(1).split(",")
    assert sorted(registered) == read_tflite(int8_io_tflite).op_names
    # BENCH fed the fixed sample: the fake output's argmax encodes the bytes it saw.
    bench = [ln for ln in lines if ln["type"] == "BENCH"]
    expected = sum(_sample_bytes(int8_sketch)) % 10
    assert [b["i"] for b in bench] == [0, 1, 2]
    assert all(b["argmax"] == expected for b in bench)
    done = next(ln for ln in lines if ln["type"] == "BENCH_DONE")
    assert done["n"] == 3 and done["argmax"] == expected
    assert done["min_us"] <= done["mean_us"] <= done["max_us"]
    assert done["total_us"] == sum(b["us"] for b in bench)
    # RUN decoded the hex into the input tensor.
    result = next(ln for ln in lines if ln["type"] == "RESULT")
    assert result["argmax"] == sum(run_input) % 10 == 0
    assert result["label"] == "zero"
    assert result["score"] == pytest.approx((127 + 128) * 0.00390625, abs=1e-5)
    assert result["out"] == bytes([0x7F] + [0x80] * 9)
    errors = [ln["msg"] for ln in lines if ln["type"] == "ERROR"]
    assert errors == ["unknown_command", "bad_count", "bad_count", "line_too_long"]
    assert {"type": "OK", "cmd": "DEMO"} in lines
    # DEMO 1 turned the periodic demo back on (virtual clock: 100 ms per loop).
    demos = [ln for ln in lines if ln["type"] == "DEMO"]
    assert len(demos) >= 1 and demos[0]["i"] == 0
    assert demos[0]["argmax"] == expected and demos[0]["label"] == LABELS[expected].replace(
        " ", "_"
    )


def test_demo_runs_without_host_and_run_times_out(int8_sketch, tmp_path):
    exe = _host_build(int8_sketch, tmp_path)
    lines, _ = _talk(exe, "", loops=45)  # 4.5 s of virtual time, no command
    assert [ln["type"] for ln in lines] == ["READY", "DEMO", "DEMO"]
    lines, _ = _talk(exe, "RUN\n0102\n", loops=150)  # 15 s > RUN_TIMEOUT_MS
    assert lines[-1] == {"type": "ERROR", "msg": "run_timeout"}
    assert not any(ln["type"] in ("DEMO", "RESULT") for ln in lines)
    lines, _ = _talk(exe, "RUN\n01zz\n", loops=5)
    assert lines[-1] == {"type": "ERROR", "msg": "bad_hex"}


@pytest.mark.parametrize(
    ("which", "hot_score"),
    [("float_io_sketch", 1.0), ("uint8_sketch", None)],
)
def test_protocol_with_float_and_uint8_io(which, hot_score, request, tmp_path):
    info: SketchInfo = request.getfixturevalue(which)
    model = read_tflite(_model_bytes(info))
    inp, out = model.inputs[0], model.outputs[0]
    exe = _host_build(info, tmp_path)
    raw = np.arange(inp.size).astype(inp.numpy_dtype).tobytes()
    lines, _ = _talk(exe, "INFO\n" + bench_command(2) + run_command(raw))
    info_line = next(ln for ln in lines if ln["type"] == "INFO")
    assert info_mismatches(info_line, info.expected_info()) == []
    assert info_line["input"]["dtype"] == inp.dtype.lower()
    bench = [ln for ln in lines if ln["type"] == "BENCH"]
    assert len(bench) == 2
    assert all(b["argmax"] == sum(_sample_bytes(info)) % out.size for b in bench)
    result = next(ln for ln in lines if ln["type"] == "RESULT")
    assert result["argmax"] == sum(raw) % out.size
    if hot_score is None:  # uint8 output: 255 dequantized
        q = out.quantization
        hot_score = (255 - int(q.zero_points[0])) * float(q.scales[0])
    assert result["score"] == pytest.approx(hot_score, abs=1e-5)
    assert len(result["out"]) == out.size * out.numpy_dtype.itemsize


def test_sample_input_gives_the_host_tflm_argmax(int8_io_tflite, digits, tmp_path):
    from effkeras.runtime.tflm import TFLMRunner

    x = digits[2][:1]
    info = arduino_sketch(int8_io_tflite, tmp_path / "with_sample", sample=x[0])
    expected = int(np.argmax(TFLMRunner(int8_io_tflite).predict(x)[0]))
    assert info.expected_argmax == expected
    assert int(_settings(info)["kExpectedArgmax"]) == expected
    from effkeras.runtime.quant import quantize

    model = read_tflite(int8_io_tflite)
    assert _sample_bytes(info) == quantize(x, model.inputs[0]).tobytes()


# ---- refusals ----------------------------------------------------------------------------


def test_refuses_ops_tflm_lacks(sign_tflite, tmp_path):
    with pytest.raises(UnsupportedOpsError, match="SIGN") as err:
        arduino_sketch(sign_tflite, tmp_path / "signs")
    assert err.value.ops == ["SIGN"]
    assert not (tmp_path / "signs").exists()


def test_refuses_a_model_too_big_for_flash(int8_io_tflite, tmp_path):
    board = custom_board(flash_kb=4, ram_kb=256, program_flash_kb=0)
    over = len(int8_io_tflite) - 4 * 1024
    with pytest.raises(BoardFitError, match=f"{over:,} bytes more than its 4 KiB"):
        arduino_sketch(int8_io_tflite, tmp_path / "big", board)
    # The runtime estimate counts too: 8 KB of model + 160 KiB > 128 KiB.
    with pytest.raises(BoardFitError, match="flash"):
        arduino_sketch(int8_io_tflite, tmp_path / "big", custom_board(flash_kb=128, ram_kb=256))
    assert not (tmp_path / "big").exists()


def test_refuses_an_arena_too_big_for_ram(int8_io_tflite, tmp_path):
    need = arena_with_margin(measure_arena(int8_io_tflite))
    board = custom_board(flash_kb=1024, ram_kb=2)
    with pytest.raises(BoardFitError, match=f"{need - 2048:,} bytes more than its 2 KiB") as err:
        arduino_sketch(int8_io_tflite, tmp_path / "ram", board)
    assert f"kTensorArenaSize {need:,}" in str(err.value)
    assert not (tmp_path / "ram").exists()


def test_refuses_an_existing_folder_unless_forced(int8_io_tflite, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="force=True"):
        arduino_sketch(int8_io_tflite, out)
    assert os.listdir(out) == ["notes.txt"]
    info = arduino_sketch(int8_io_tflite, out, force=True)
    assert Path(info.ino_path).name == "again.ino"
    assert (out / "notes.txt").read_text() == "mine"


def test_arena_size_override(int8_io_tflite, tmp_path):
    measured = measure_arena(int8_io_tflite)
    info = arduino_sketch(int8_io_tflite, tmp_path / "exact", arena_size=measured + 16)
    assert info.arena_size == measured + 16
    assert int(_settings(info)["kTensorArenaSize"]) == measured + 16
    assert "set by the caller" in _read(info, "README.md")
    assert "Set by the caller (arena_size=" in _read(info, "model_settings.h")
    with pytest.raises(ValueError, match=f"at least the {measured} bytes"):
        arduino_sketch(int8_io_tflite, tmp_path / "small", arena_size=measured - 1)


def test_bad_folder_name_and_labels(int8_io_tflite, tmp_path):
    with pytest.raises(EffkerasError, match="Try 'my_sketch'"):
        arduino_sketch(int8_io_tflite, tmp_path / "my sketch")
    with pytest.raises(ValueError, match="one entry per class.*Received: 3 labels"):
        arduino_sketch(int8_io_tflite, tmp_path / "labels", labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="list of strings"):
        arduino_sketch(int8_io_tflite, tmp_path / "labels", labels="abc")
    assert not (tmp_path / "labels").exists()


# ---- the protocol's Python side ----------------------------------------------------------


def test_parse_line_valid():
    assert parse_line("EFK READY proto=1 name=digits board=nano33ble\r\n") == {
        "type": "READY",
        "proto": 1,
        "name": "digits",
        "board": "nano33ble",
    }
    info = parse_line(
        b"EFK INFO proto=1 name=m bytes=8008 sha256=e462def4bdded634 fnv=c60f5afe fnv_ok=1 "
        b"arena_used=2644 arena_size=4224 ops=5 board=nano33ble input=int8:1x8x8x1 "
        b"output=float32:1x10 expected_argmax=3\n"
    )
    assert info["fnv"] == 0xC60F5AFE and info["fnv_ok"] is True
    assert info["output"] == {"dtype": "float32", "shape": (1, 10)}
    assert parse_line("EFK BENCH i=0 us=1520 argmax=3") == {
        "type": "BENCH",
        "i": 0,
        "us": 1520,
        "argmax": 3,
    }
    result = parse_line("EFK RESULT us=5 argmax=1 label=cat score=-0.500000 out=7f80")
    assert result["score"] == -0.5 and result["out"] == b"\x7f\x80"
    assert parse_line("EFK ERROR msg=bad_hex") == {"type": "ERROR", "msg": "bad_hex"}
    assert parse_line("EFK BENCH i=0 us=1 argmax=2 extra=future")["extra"] == "future"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello",
        "EFK",
        "EFK ",
        "efk INFO proto=1",
        "Model provided is schema version 2",
        "EFK NOPE a=1",
        "EFK BENCH i=1 us=2",
        "EFK BENCH i=1 us=x argmax=2",
        "EFK BENCH i=1 us=-5 argmax=2",
        "EFK BENCH i=1 us=2 argmax=2 us=3",
        "EFK BENCH i=1  us=2 argmax=2",
        "EFK BENCH i=1 us=2 argmax",
        "EFK BENCH i=1 us=2 =2",
        "EFK BENCH i=1 us=2 argmax=2 label=a b",
        "EFK RESULT us=5 argmax=1 label=cat score=high out=7f80",
        "EFK RESULT us=5 argmax=1 label=cat score=0.5 out=7f8",
        "EFK RESULT us=5 argmax=1 label=cat score=0.5 out=7F80",
        "EFK INFO proto=1 name=m bytes=1 sha256=e462 fnv=c60f5afe fnv_ok=1 arena_used=1 "
        "arena_size=1 ops=1 board=b input=int8:1x8 output=int8:1x10 expected_argmax=3",
        "EFK INFO proto=1 name=m bytes=1 sha256=e462def4bdded634 fnv=c60f5afe fnv_ok=2 "
        "arena_used=1 arena_size=1 ops=1 board=b input=int8:1x8 output=int8:1x10 "
        "expected_argmax=3",
        "EFK INFO proto=1 name=m bytes=1 sha256=e462def4bdded634 fnv=c60f5afe fnv_ok=1 "
        "arena_used=1 arena_size=1 ops=1 board=b input=int8/1x8 output=int8:1x10 "
        "expected_argmax=3",
    ],
)
def test_parse_line_rejects_garbage(line):
    with pytest.raises(ValueError):
        parse_line(line)


def test_parse_line_rejects_non_ascii_bytes():
    with pytest.raises(ValueError, match="ASCII"):
        parse_line(b"EFK ERROR msg=\xff\xfe")
    assert not is_protocol_line(b"\xff garbage")


def test_commands_and_mismatches():
    assert bench_command(25) == "BENCH 25\n"
    for bad in (0, protocol.MAX_BENCH + 1, 2.5, "3"):
        with pytest.raises(ValueError, match="Received: n="):
            bench_command(bad)
    assert run_command(b"\x01\xff") == "RUN\n01ff\n"
    with pytest.raises(ValueError):
        run_command(b"")
    info = {"name": "m", "bytes": 10, "sha256": "ab" * 8, "fnv": 1, "fnv_ok": True}
    assert info_mismatches(info, {"name": "m", "bytes": 10, "sha256": "ab" * 32}) == []
    problems = info_mismatches({**info, "fnv_ok": False}, {"bytes": 11, "fnv": 2, "ops": 3})
    assert len(problems) == 4
    assert any("fnv: board has 00000001, expected 00000002" in p for p in problems)
    assert any("ops: missing" in p for p in problems)


def test_deploy_half_imports_without_tensorflow():
    code = (
        "import sys\n"
        "import effkeras.deploy, effkeras.deploy.protocol, effkeras.convert.c_array\n"
        "import effkeras.runtime.tflm_ops\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    _run([sys.executable, "-c", code], text=True)


@pytest.fixture(scope="module")
def per_channel_dense_tflite(digits_model, digits) -> bytes:
    from effkeras.convert import to_tflite

    return to_tflite(digits_model, quantize="int8", representative_data=digits[0][:200],
                     io_dtype="int8", dense_per_channel=True)


def test_per_channel_dense_is_flagged_for_the_2023_library(tmp_path, capsys,
                                                           per_channel_dense_tflite,
                                                           int8_io_tflite):
    """The 2023 Arduino library's FULLY_CONNECTED uses the first channel's scale for all:
    profile, the sketch's README and the CLI say so for a per-channel dense filter."""
    from pathlib import Path

    from effkeras import profile
    from effkeras.cli import main
    from effkeras.runtime.tflm_ops import arduino_library_problems

    digits = tmp_path / "per_channel.tflite"  # TF's default: dense filters per channel
    digits.write_bytes(per_channel_dense_tflite)
    problems = arduino_library_problems(str(digits))
    assert len(problems) == 1 and "FULLY_CONNECTED op 4 has per-channel" in problems[0]
    assert arduino_library_problems(per_tensor_dense_tflite()) == []
    assert arduino_library_problems(int8_io_tflite) == []  # to_tflite's default
    demo = Path(__file__).resolve().parents[1] / "tflite_models" / "digits_cnn_int8.tflite"
    assert arduino_library_problems(str(demo)) == []  # the demo converts per tensor
    assert profile(str(digits), board="nano33ble").to_dict()["arduino_library_problems"] == problems
    assert main(["sketch", str(digits), "--out", str(tmp_path / "sk")]) == 0
    assert "per-channel weight scales" in capsys.readouterr().err
    assert "**Warning**: FULLY_CONNECTED" in (tmp_path / "sk" / "README.md").read_text()


def per_tensor_dense_tflite() -> bytes:
    """A converted Dense layer with one weight scale (TF's per-tensor dense option)."""
    import tempfile

    import keras
    import numpy as np
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([np.full((1, 4), i, np.float32)] for i in range(4))
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
        return conv.convert()
