"""The text Arduino sketch: C projector + TFLM model, compiled and run on the host.

Like tests/test_sketch.py this compiles against tests/arduino_stubs (stand-in Arduino and
TFLM headers; host_runtime.cpp's fake Invoke() sets the argmax to the sum of the input
bytes modulo the class count), so running the sketch proves the serial loop, the C
projection written into the input tensor, and the start-up self-test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from effkeras.convert import read_tflite, to_tflite  # noqa: E402
from effkeras.convert.c_array import fnv1a32  # noqa: E402
from effkeras.deploy.text_sketch import expected_input_fnv, projection_to_input, text_sketch  # noqa: E402
from effkeras.errors import InvalidModelError  # noqa: E402
from effkeras.text import Projector, build_sgnn, calibration_data  # noqa: E402

STUBS = Path(__file__).parent / "arduino_stubs"
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-Wall", "-Werror"]
needs_gpp = pytest.mark.skipif(
    shutil.which("g++") is None or shutil.which("gcc") is None, reason="no g++/gcc"
)

LINES = [
    "WIN a FREE prize now, call 0800!",
    "see you at lunch",
    "Café naïve 我爱北京 😀",
    "x" * 300,  # longer than max_text_bytes: truncated
]


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout!r}\n{proc.stderr!r}"
    return proc


@pytest.fixture(scope="module")
def projector() -> Projector:
    return Projector(8, 8, char_ngrams=(2, 3))


@pytest.fixture(scope="module")
def tflite(projector) -> bytes:
    keras.utils.set_random_seed(0)
    model = build_sgnn(projector, 2, bottleneck=16, hidden=8)
    x = projector(["free prize call now", "see you at lunch", "ok", "win cash"])
    return to_tflite(
        model, quantize="int8", representative_data=calibration_data(x), io_dtype="int8"
    )


@pytest.fixture(scope="module")
def sketch(tflite, projector, tmp_path_factory):
    out = tmp_path_factory.mktemp("text_sketches") / "sms_text"
    return text_sketch(tflite, out, projector, labels=["ham", "spam"], max_text_bytes=200)


def test_files_and_settings(sketch, projector, tflite):
    names = sorted(p.name for p in Path(sketch.path).iterdir())
    assert names == sorted(
        ["sms_text.ino", "model.h", "model.cpp", "model_settings.h", "efk_checksum.h", "README.md",
         "efk_projector.h", "efk_projector.c", "efk_projector_config.h", "efk_text_settings.h"]
    )  # fmt: skip
    assert sorted(Path(f).name for f in sketch.files) == names
    settings = Path(sketch.path, "efk_text_settings.h").read_text()
    assert "constexpr int kMaxTextBytes = 200;" in settings
    assert "constexpr int8_t kProjectionToInput[3] = {-127, 0, 127};" in settings
    assert "represented exactly" in settings
    # kSampleInput is the Python projection of the sample text, quantized.
    assert (
        sketch.sample_input == projection_to_input(projector.project(sketch.sample_text), tflite)
    ).all()
    ino = Path(sketch.ino_path).read_text()
    model = read_tflite(tflite)
    assert f"MicroMutableOpResolver<{len(model.op_names)}>" in ino
    assert "efk_project(&kEfkProjectorConfig" in ino
    readme = Path(sketch.path, "README.md").read_text()
    assert "EFK CLASS" in readme and "projector_ok=1" in readme


@needs_gpp
def test_sketch_compiles_for_host_and_cortex_m4(sketch):
    for cxx in (
        ["g++", "-std=c++11", "-Wall", "-Werror"],
        ["arm-none-eabi-g++", "-std=c++11", *ARM_FLAGS],
    ):
        if shutil.which(cxx[0]) is None:
            continue
        _run(
            [
                *cxx,
                "-fsyntax-only",
                f"-I{STUBS}",
                f"-I{sketch.path}",
                "-include",
                "Arduino.h",
                "-x",
                "c++",
                sketch.ino_path,
            ]
        )
    if shutil.which("arm-none-eabi-gcc"):
        _run(
            [
                "arm-none-eabi-gcc",
                "-std=c99",
                "-pedantic",
                *ARM_FLAGS,
                "-c",
                "efk_projector.c",
                "-o",
                "p.o",
            ],
            cwd=sketch.path,
        )
        Path(sketch.path, "p.o").unlink()


@needs_gpp
def test_sketch_projects_lines_bit_exactly_on_the_host(sketch, projector, tflite, tmp_path):
    model = read_tflite(tflite)
    inp, out = model.inputs[0], model.outputs[0]
    defines = [
        "-DSTUB_INPUT_TYPE=kTfLiteInt8",
        f"-DSTUB_INPUT_BYTES={inp.size}",
        "-DSTUB_OUTPUT_TYPE=kTfLiteInt8",
        f"-DSTUB_OUTPUT_ELEMENTS={out.size}",
        f"-DSTUB_OUTPUT_SCALE={float(out.quantization.scales[0])!r}f",
        f"-DSTUB_OUTPUT_ZERO_POINT={int(out.quantization.zero_points[0])}",
    ]
    obj = tmp_path / "efk_projector.o"
    _run(
        [
            "gcc",
            "-std=c99",
            "-Wall",
            "-Werror",
            "-c",
            str(Path(sketch.path, "efk_projector.c")),
            "-o",
            str(obj),
        ]
    )
    exe = tmp_path / "text_host"
    _run(
        ["g++", "-std=c++11", "-Wall", "-Werror", *defines, f"-I{STUBS}", f"-I{sketch.path}", "-include",
         "Arduino.h", "-x", "c++", sketch.ino_path, "-x", "none", str(Path(sketch.path, "model.cpp")),
         str(STUBS / "host_runtime.cpp"), str(obj), "-o", str(exe)]
    )  # fmt: skip
    payload = "".join(line + "\r\n" for line in LINES) + "\n"  # the empty line is ignored
    stdout = _run([str(exe), "5"], input=payload.encode()).stdout.decode()
    lines = [ln for ln in stdout.split("\r\n") if ln]
    assert (
        lines[0].startswith("EFK READY ")
        and "projector_ok=1" in lines[0]
        and "fnv_ok=1" in lines[0]
    )
    results = [dict(re.findall(r"(\w+)=(\S+)", ln)) for ln in lines[1:]]
    assert [ln.split()[1] for ln in lines[1:]] == ["CLASS"] * len(LINES)
    for text, r in zip(LINES, results, strict=True):
        sent = text.encode()[:200]
        assert int(r["truncated"]) == (len(text.encode()) > 200)
        assert int(r["bytes"]) == len(sent)
        assert int(r["tokens"]) == len(projector.tokens(sent))
        q = projection_to_input(projector.project(sent), tflite)
        assert (
            int(r["input_fnv"], 16)
            == expected_input_fnv(sent, projector, tflite)
            == fnv1a32(q.tobytes())
        )
        # The stand-in Invoke() encodes the input bytes it saw into the argmax.
        assert int(r["argmax"]) == int(np.sum(q.view(np.uint8), dtype=np.int64)) % 2
        assert r["label"] == ["ham", "spam"][int(r["argmax"])]


def test_rejects_a_model_that_does_not_fit_the_projector(tflite, tmp_path):
    with pytest.raises(InvalidModelError, match="does not hold the projector's output"):
        text_sketch(tflite, tmp_path / "wrong", Projector(4, 4))
    with pytest.raises(ValueError, match="max_text_bytes=0"):
        text_sketch(
            tflite, tmp_path / "zero", Projector(8, 8, char_ngrams=(2, 3)), max_text_bytes=0
        )
