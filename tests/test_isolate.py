"""Interpreters run a user's file in a child process first: a crash, a hang or a memory
blow-up there is one InvalidModelError naming the stage, never the end of the caller."""

from __future__ import annotations

import ctypes
import os
import signal
import time

import numpy as np
import pytest

from effkeras.errors import EffkerasError, InvalidModelError, UnsupportedOpsError
from effkeras.runtime import isolate, litert, tflm
from effkeras.runtime.isolate import run_in_child


def _segfault():
    ctypes.string_at(0)


def _abort():
    os.abort()


def _hang():
    time.sleep(60)


def _huge():
    return int(np.ones(2**36, np.uint8).sum())  # 64 GiB


def _unsupported():
    raise UnsupportedOpsError("no kernel for FOO", ["FOO"])


def _ok(x):
    return {"twice": 2 * x, "array": np.arange(3)}


def test_result_comes_back():
    out = run_in_child("stage", _ok, 21)
    assert out["twice"] == 42 and out["array"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("fn,signame", [(_segfault, "SIGSEGV"), (_abort, "SIGABRT")])
def test_a_signal_death_is_one_clear_error(fn, signame):
    with pytest.raises(InvalidModelError, match=f"^TFLM could not prepare the model: the interpreter was "
                                                f"killed by {signame} \\(m.tflite\\)"):
        run_in_child("TFLM could not prepare the model", fn, source="m.tflite")


def test_a_hang_is_stopped_at_the_time_limit():
    t0 = time.monotonic()
    with pytest.raises(InvalidModelError, match="no answer within 2 s, the interpreter was stopped"):
        run_in_child("LiteRT could not prepare the model", _hang, timeout=2)
    assert time.monotonic() - t0 < 10


def test_memory_is_capped():
    with pytest.raises(InvalidModelError, match="ran out of its 512 MB memory limit"):
        run_in_child("stage", _huge, memory_mb=512)


def test_effkeras_errors_keep_their_class_and_fields():
    with pytest.raises(UnsupportedOpsError, match="no kernel for FOO") as info:
        run_in_child("stage", _unsupported)
    assert info.value.ops == ["FOO"]


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("EFFKERAS_CHILD_TIMEOUT", "7")
    monkeypatch.setenv("EFFKERAS_CHILD_MEMORY_MB", "100")
    assert isolate.limits() == (7.0, 100.0)
    monkeypatch.setenv("EFFKERAS_CHILD_TIMEOUT", "soon")
    with pytest.raises(EffkerasError, match="EFFKERAS_CHILD_TIMEOUT must be a number. Received: .*'soon'"):
        isolate.limits()


def _kill_self(*_args):
    os.kill(os.getpid(), signal.SIGFPE)


@pytest.mark.parametrize("runner,module,stage", [
    (tflm.TFLMRunner, tflm, "TFLM could not prepare the model"),
    (litert.LiteRTRunner, litert, "LiteRT could not prepare the model"),
])
def test_runners_probe_the_model_in_a_child_first(monkeypatch, int8_io_tflite, runner, module, stage):
    """The probe is what meets a hostile file first; here it dies as a kernel would."""
    monkeypatch.setattr(module, "_probe", _kill_self)
    monkeypatch.setattr(module, "_PROBED", set())
    with pytest.raises(InvalidModelError, match=f"{stage}: the interpreter was killed by SIGFPE"):
        runner(int8_io_tflite)
    runner(int8_io_tflite, isolate=False)  # the same file in-process, for whoever asks for it


def test_a_probed_model_is_not_probed_again(monkeypatch, int8_io_tflite):
    calls = []
    real = tflm.run_in_child
    monkeypatch.setattr(tflm, "run_in_child", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(tflm, "_PROBED", set())
    tflm.TFLMRunner(int8_io_tflite)
    tflm.TFLMRunner(int8_io_tflite)
    assert len(calls) == 1
