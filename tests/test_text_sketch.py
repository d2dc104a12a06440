"""The text Arduino sketch: C projector + TFLM model, compiled and run on the host.

Like tests/test_sketch.py this compiles against tests/arduino_stubs (stand-in Arduino and
TFLM headers; host_runtime.cpp's fake Invoke() sets the argmax to the sum of the input
bytes modulo the class count), so running the sketch proves the serial loop, the C
projection written into the input tensor, and the start-up self-test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from effkeras.convert import add_metadata, read_metadata, read_tflite, to_tflite  # noqa: E402
from effkeras.convert.c_array import fnv1a32  # noqa: E402
from effkeras.deploy.featurizer import (  # noqa: E402
    PROJECTOR_METADATA,
    attach_projector,
    read_projector,
)
from effkeras.deploy.text_sketch import expected_input_fnv, projection_to_input, text_sketch  # noqa: E402
from effkeras.errors import ConversionError, InvalidModelError  # noqa: E402
from effkeras.runtime import LiteRTRunner, TFLMRunner  # noqa: E402
from effkeras.text import Projector, build_sgnn, calibration_data, text_model  # noqa: E402

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
         "efk_tflm_port.cpp", "efk_projector.h", "efk_projector.c", "efk_projector_config.h", "efk_text_settings.h"]
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


# ---- the projector travels in the .tflite file -----------------------------------------

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bare_tflite(projector) -> bytes:
    """A model on the projection, converted without a projector (no metadata entry)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input(projector.output_shape)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    x = projector(["free prize call now", "see you at lunch"])
    return to_tflite(
        model, quantize="int8", representative_data=calibration_data(x), io_dtype="int8"
    )


def test_to_tflite_stores_the_projector_of_a_projection_model(tflite, bare_tflite, projector):
    assert read_projector(tflite) == projector
    names = list(read_metadata(tflite))
    assert names[-1] == PROJECTOR_METADATA and "min_runtime_version" in names
    assert json.loads(read_metadata(tflite)[PROJECTOR_METADATA]) == {
        "format": "effkeras.projector",
        "spec_version": 1,
        "projector": projector.get_config(),
    }
    assert f"metadata: {PROJECTOR_METADATA} (" in read_tflite(tflite).summary()
    # A model without a projector gets no entry (its bytes are the converter's).
    assert read_projector(bare_tflite) is None
    assert PROJECTOR_METADATA not in read_metadata(bare_tflite)
    assert "metadata:" not in read_tflite(bare_tflite).summary()


def test_text_model_converts_as_the_model_it_wraps(projector):
    keras.utils.set_random_seed(0)
    inner = build_sgnn(projector, 2, bottleneck=8, hidden=4)
    wrapped = text_model(inner, projector)
    data = to_tflite(wrapped)
    assert read_projector(data) == projector
    assert list(read_tflite(data).inputs[0].shape) == [1, projector.features]
    with pytest.raises(ConversionError, match=r"disagrees with the projector of model 'sgnn'"):
        to_tflite(inner, projector=Projector(8, 8, char_ngrams=(2, 3), seed=5))
    with pytest.raises(ConversionError, match="projector must be"):
        to_tflite(inner, projector=projector.get_config())


def test_attach_projector_keeps_the_model_and_its_results(bare_tflite, projector):
    data = attach_projector(bare_tflite, projector)
    assert read_projector(data) == projector
    before, after = read_tflite(bare_tflite), read_tflite(data)
    assert after.op_names == before.op_names
    assert [(t.name, t.shape, t.dtype) for t in after.tensors] == [
        (t.name, t.shape, t.dtype) for t in before.tensors
    ]
    for t_before, t_after in zip(before.tensors, after.tensors, strict=True):
        a, b = before.tensor_data(t_before), after.tensor_data(t_after)
        assert (a is None) == (b is None) and (a is None or (a == b).all())
    # Weight buffers stay 16-byte aligned in the file.
    for t in after.tensors:
        if t.is_constant:
            raw = after.tensor_data(t)
            start = data.find(raw.tobytes())
            assert start >= 0 and start % 16 == 0, t.name
    # LiteRT and TFLite Micro ignore the entry: identical results.
    x = projector(["win a free prize", "lunch at noon?", ""])
    for runner in (LiteRTRunner, TFLMRunner):
        assert (runner(data).predict(x) == runner(bare_tflite).predict(x)).all()
    # Attaching again replaces the entry.
    other = Projector(8, 8, char_ngrams=(2, 3), seed=9)
    again = attach_projector(data, other)
    assert read_projector(again) == other
    assert list(read_metadata(again)).count(PROJECTOR_METADATA) == 1
    with pytest.raises(InvalidModelError, match="does not hold the projector's output"):
        attach_projector(bare_tflite, Projector(4, 4))


def test_metadata_errors(bare_tflite):
    with pytest.raises(ValueError, match="name='min_runtime_version'"):
        add_metadata(bare_tflite, "min_runtime_version", b"9")
    with pytest.raises(ValueError, match="name=''"):
        add_metadata(bare_tflite, "", b"x")
    with pytest.raises(InvalidModelError, match="not a TFLite model"):
        add_metadata(b"\x00" * 16, "a", b"x")
    data = add_metadata(bare_tflite, "my.entry", b"\x01\x02")
    assert read_metadata(data)["my.entry"] == b"\x01\x02"
    broken = add_metadata(bare_tflite, PROJECTOR_METADATA, b"not json")
    with pytest.raises(InvalidModelError, match="not JSON"):
        read_projector(broken)
    newer = add_metadata(
        bare_tflite,
        PROJECTOR_METADATA,
        json.dumps({"format": PROJECTOR_METADATA, "spec_version": 2, "projector": {}}).encode(),
    )
    with pytest.raises(InvalidModelError, match="specification version 2"):
        read_projector(newer)


def test_sketch_from_the_file_alone_matches_the_explicit_one(sketch, tflite, tmp_path):
    # The same bytes (a path would name itself in model.h), no projector argument.
    alone = text_sketch(tflite, tmp_path / "sms_text", labels=["ham", "spam"], max_text_bytes=200)
    assert alone.projector == sketch.projector
    line = "Call now to WIN"
    assert expected_input_fnv(line, None, tflite) == expected_input_fnv(line, alone.projector, tflite)
    assert sorted(Path(f).name for f in alone.files) == sorted(Path(f).name for f in sketch.files)
    for f in sketch.files:
        name = Path(f).name
        assert Path(alone.path, name).read_bytes() == Path(f).read_bytes(), name


def test_sketch_without_or_against_the_stored_projector(tflite, bare_tflite, projector, tmp_path):
    with pytest.raises(InvalidModelError, match=r"stores no projector .*Pass projector=Projector"):
        text_sketch(bare_tflite, tmp_path / "none")
    # A file without the entry still deploys with the projector given.
    info = text_sketch(bare_tflite, tmp_path / "given", projector)
    assert info.projector == projector
    other = Projector(8, 8, char_ngrams=(2, 3), seed=7)  # same shape, other hashes
    with pytest.raises(InvalidModelError, match=r"disagrees with the projector stored in"):
        text_sketch(tflite, tmp_path / "other", other)
    with pytest.raises(TypeError, match="Received: dict"):
        text_sketch(tflite, tmp_path / "dict", projector.get_config())


def test_deploy_side_imports_no_training_code_or_tensorflow(tflite, tmp_path):
    """text_sketch from a file, with tensorflow, keras and effkeras.text blocked."""
    model = tmp_path / "m.tflite"
    model.write_bytes(tflite)
    script = textwrap.dedent(
        f"""
        import sys
        import effkeras.deploy.text_sketch
        def loaded():
            return sorted(k for k in sys.modules if k.split(".")[0] in ("tensorflow", "keras")
                          or k == "effkeras.text" or k.startswith("effkeras.text."))
        assert loaded() == [], loaded()
        import importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("tensorflow", "keras") or name.startswith("effkeras.text"):
                    raise ModuleNotFoundError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from effkeras.deploy import text_sketch
        info = text_sketch({str(model)!r}, {str(tmp_path / "alone")!r})
        assert info.projector.features == 64
        assert loaded() == [], loaded()
        print("OK")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")


def test_cli_sketch_of_a_projection_model_writes_the_text_sketch(
    tflite, bare_tflite, tmp_path, capsys
):
    from effkeras.cli import main

    path = tmp_path / "sms.tflite"
    path.write_bytes(tflite)
    out = tmp_path / "sms_cli"
    assert main(["sketch", str(path), "--out", str(out), "--labels", "ham,spam",
                 "--max-text-bytes", "120"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "text sketch" in printed and "Projector(" in printed
    assert (out / "efk_projector.c").exists() and (out / "sms_cli.ino").exists()
    assert "kMaxTextBytes = 120;" in (out / "efk_text_settings.h").read_text()
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bare_tflite)
    assert main(["sketch", str(bare), "--out", str(tmp_path / "b"), "--max-text-bytes", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("effkeras: error: --max-text-bytes")
    # Without a projector in the file it is the plain model sketch, as before.
    assert main(["sketch", str(bare), "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "efk_projector.c").exists()
