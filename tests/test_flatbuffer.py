"""Reading .tflite back, and refusing corrupt bytes before any interpreter sees them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from effkeras.convert import read_tflite
from effkeras.errors import InvalidModelError


def test_reader_reports_ops_tensors_and_io(int8_io_tflite):
    m = read_tflite(int8_io_tflite)
    assert m.size_bytes == len(int8_io_tflite)
    assert m.op_counts == {
        "CONV_2D": 2,
        "MAX_POOL_2D": 1,
        "RESHAPE": 1,
        "FULLY_CONNECTED": 1,
        "SOFTMAX": 1,
    }
    conv = m.ops[0]
    assert conv.name == "CONV_2D" and conv.options["fusedActivationFunction"] == "RELU"
    assert conv.options["padding"] == "SAME"
    w = m.tensors[conv.inputs[1]]
    assert w.shape == (8, 3, 3, 1) and w.is_constant and w.quantization.axis == 0
    assert m.tensor_data(w).shape == (8, 3, 3, 1)
    d = m.to_dict()
    json.dumps(d)
    assert d["inputs"][0]["quantization"]["zero_points"] == [
        int(m.inputs[0].quantization.zero_points[0])
    ]
    text = m.summary()
    assert "CONV_2D x2" in text and "per-channel" in text


def test_reader_reads_paths(tmp_path, int8_tflite):
    p = tmp_path / "m.tflite"
    p.write_bytes(int8_tflite)
    assert read_tflite(str(p)).sha256 == read_tflite(int8_tflite).sha256
    with pytest.raises(InvalidModelError, match="No such file"):
        read_tflite(str(tmp_path / "missing.tflite"))
    with pytest.raises(InvalidModelError, match="folder"):
        read_tflite(str(tmp_path))
    with pytest.raises(InvalidModelError, match="Received: int"):
        read_tflite(3)


@pytest.mark.parametrize("cut", [0, 3, 8, 16, 100, 0.25, 0.5, 0.9, -1])
def test_truncated_models_are_refused(int8_tflite, cut):
    n = len(int8_tflite)
    k = int(n * cut) if isinstance(cut, float) else (n + cut if cut < 0 else cut)
    with pytest.raises(InvalidModelError):
        read_tflite(int8_tflite[:k])


def test_wrong_magic_and_random_bytes(int8_tflite, rng):
    with pytest.raises(InvalidModelError, match="TFL3"):
        read_tflite(int8_tflite[:4] + b"XXXX" + int8_tflite[8:])
    for size in (10, 1000, 50000):
        with pytest.raises(InvalidModelError):
            read_tflite(rng.bytes(size))
    with pytest.raises(InvalidModelError, match="TFL3"):
        read_tflite(b"hello, this is a text file, not a model\n" * 10)


def test_mutated_models_never_crash_the_interpreters(tmp_path, int8_io_tflite):
    """Fuzz: 150 single-byte and 50 four-byte corruptions, in a child process.

    Each mutant is either refused by read_tflite / the verifiers with InvalidModelError
    (or UnsupportedOpsError), or runs in LiteRT and TFLM. The child must exit normally:
    a segfault or abort there would be a crash in the host process of a user.
    """
    src = tmp_path / "model.tflite"
    src.write_bytes(int8_io_tflite)
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from effkeras.errors import EffkerasError
        from effkeras.runtime import LiteRTRunner, TFLMRunner
        data = bytearray(open({str(src)!r}, "rb").read())
        rng = np.random.default_rng(1234)
        refused = ran = 0
        for k in range(200):
            m = bytearray(data)
            width = 1 if k < 150 else 4
            pos = int(rng.integers(0, len(m) - width))
            m[pos:pos + width] = rng.integers(0, 256, width, dtype=np.uint8).tobytes()
            try:
                x = np.zeros((1, 8, 8, 1), np.float32)
                LiteRTRunner(bytes(m)).predict(x)
                TFLMRunner(bytes(m)).predict(x)
                ran += 1
            except EffkerasError:
                refused += 1
        print(json.dumps({{"refused": refused, "ran": ran}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-2000:]}"
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["refused"] + counts["ran"] == 200
    assert counts["refused"] > 0


def test_tensor_data_roundtrip_matches_litert(int8_io_tflite):
    """Constant data read by effkeras equals what LiteRT holds for the same tensor."""
    from effkeras.runtime.litert import load_interpreter_class

    m = read_tflite(int8_io_tflite)
    interpreter_cls, _, _ = load_interpreter_class()
    it = interpreter_cls(model_content=int8_io_tflite)
    it.allocate_tensors()
    checked = 0
    for t in m.tensors:
        if t.is_constant and t.dtype == "INT8":
            np.testing.assert_array_equal(m.tensor_data(t), it.get_tensor(t.index))
            checked += 1
    assert checked >= 3
