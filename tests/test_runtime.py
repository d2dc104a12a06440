"""LiteRT and TFLM on the host: parity, arena measurement, quantization helpers."""

from __future__ import annotations

import numpy as np
import pytest

from effkeras.convert import read_tflite
from effkeras.errors import InvalidModelError
from effkeras.runtime import LiteRTRunner, TFLMRunner, dequantize, measure_arena, quantize
from effkeras.runtime.tflm import arena_with_margin, run_isolated


def test_tflm_equals_litert_reference_kernels_exactly(int8_io_tflite, digits):
    """Parity on 100 test inputs: TFLM and LiteRT's reference kernels give identical int8."""
    x = digits[2][:100]
    ref = LiteRTRunner(int8_io_tflite, kernels="reference").predict(x, raw_outputs=True)
    micro = TFLMRunner(int8_io_tflite).predict(x, raw_outputs=True)
    assert ref.dtype == np.int8 and micro.dtype == np.int8 and ref.shape == (100, 10)
    np.testing.assert_array_equal(micro, ref)


def test_tflm_within_one_lsb_of_litert_xnnpack(int8_io_tflite, digits):
    x = digits[2][:100]
    fast = LiteRTRunner(int8_io_tflite, kernels="xnnpack").predict(x, raw_outputs=True)
    micro = TFLMRunner(int8_io_tflite).predict(x, raw_outputs=True)
    diff = np.abs(fast.astype(int) - micro.astype(int))
    assert diff.max() <= 1
    assert np.mean(np.argmax(fast, -1) == np.argmax(micro, -1)) >= 0.99


def test_int8_model_accuracy_close_to_keras(digits_model, int8_io_tflite, digits):
    x, y = digits[2], digits[3]
    keras_acc = np.mean(np.argmax(digits_model.predict(x, verbose=0), -1) == y)
    int8_acc = np.mean(np.argmax(LiteRTRunner(int8_io_tflite).predict(x), -1) == y)
    assert keras_acc > 0.85
    assert abs(keras_acc - int8_acc) < 0.03


def test_arena_is_exact_and_stable(int8_io_tflite):
    a = measure_arena(int8_io_tflite)
    assert a == measure_arena(int8_io_tflite)
    runner = TFLMRunner(int8_io_tflite)
    alloc = runner.allocations()
    assert alloc["total"] == alloc["head"] + alloc["tail"]
    # the recording allocator's total misses only a little temporary memory
    assert alloc["total"] <= a <= alloc["total"] + 1024
    assert 1000 < a < 64 * 1024 and a % 16 == 0
    # Exact: TFLM runs with exactly that arena and fails with 16 bytes less.
    tight = TFLMRunner(int8_io_tflite, arena_size=a)
    assert tight.predict(np.zeros((1, 8, 8, 1), np.float32)).shape == (1, 10)
    with pytest.raises(InvalidModelError, match="arena"):
        TFLMRunner(int8_io_tflite, arena_size=a - 16).predict(np.zeros((1, 8, 8, 1), np.float32))
    m = arena_with_margin(a)
    assert m % 16 == 0 and m >= a * 1.1


def test_run_isolated_matches_in_process(tmp_path, int8_io_tflite):
    p = tmp_path / "m.tflite"
    p.write_bytes(int8_io_tflite)
    assert run_isolated(str(p))["arena_bytes"] == measure_arena(int8_io_tflite)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(int8_io_tflite[:200])
    assert "truncated" in run_isolated(str(bad))["error"]


def test_quantize_dequantize_roundtrip(int8_io_tflite):
    t = read_tflite(int8_io_tflite).inputs[0]
    scale = float(t.quantization.scales[0])
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8, 1)
    q = quantize(x, t)
    assert q.dtype == np.int8
    assert np.max(np.abs(dequantize(q, t) - x)) <= scale / 2 + 1e-7
    assert quantize(np.array([1e9]), t)[0] == 127 and quantize(np.array([-1e9]), t)[0] == -128


def test_bad_threads_and_kernels(int8_tflite):
    with pytest.raises(ValueError, match="num_threads"):
        LiteRTRunner(int8_tflite, num_threads=0)
    with pytest.raises(ValueError, match="kernels must be one of"):
        LiteRTRunner(int8_tflite, kernels="gpu")


def test_arena_probe_survives_a_crashing_interpreter(monkeypatch, int8_io_tflite):
    """TFLM can segfault at arena sizes just below the need: probes run in a child process."""
    import os
    import signal

    from effkeras.runtime import tflm

    def crash(model, arena_size):
        os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(tflm, "_probe", crash)
    assert tflm._loads_with(read_tflite(int8_io_tflite), 4096) is False
