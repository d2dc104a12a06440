"""Hostile files in CI: a seeded mutation fuzzer through inspect, profile, sketch and bench.

Every mutant goes through the CLI as a user runs it (each command forked with a time limit):
0 signal deaths, 0 hangs, 0 tracebacks, every exit code 0 or 2 with one 'effkeras: error:'
line, valid JSON with --json. The benchmark (benchmarks/fuzz.py, 10,000 mutants) records
the same on a larger scale in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import fuzz  # noqa: E402


def test_mutants_are_seeded_and_varied():
    models = [open(os.path.join(ROOT, p), "rb").read() for p in fuzz.BASE_MODELS]
    a = list(fuzz.mutants(models, 60, seed=3))
    b = list(fuzz.mutants(models, 60, seed=3))
    assert a == b and len(a) == 60
    kinds = {k.split(":")[0] for k, _ in a}
    assert {"edit", "bitflip", "truncate"} <= kinds
    assert all(data not in models for _, data in a if not _.startswith("edit:"))


def test_a_hang_and_a_crash_are_seen_as_such(monkeypatch):
    import signal
    import time

    import effkeras.cli

    monkeypatch.setattr(effkeras.cli, "main", lambda argv: time.sleep(30))
    res = fuzz.run_cli(["inspect", "x"], timeout=1)
    assert res["hung"] and fuzz.verdict(res, False) == "hang"
    monkeypatch.setattr(effkeras.cli, "main", lambda argv: os.kill(os.getpid(), signal.SIGSEGV))
    res = fuzz.run_cli(["inspect", "x"], timeout=10)
    assert fuzz.verdict(res, False) == "signal SIGSEGV"


@pytest.mark.slow
def test_fuzzed_files_never_crash_hang_or_trace_back(monkeypatch):
    monkeypatch.setenv("EFFKERAS_CHILD_TIMEOUT", "20")
    summary = fuzz.fuzz(n=160, seed=7, timeout=60, log=lambda *_: None)
    assert summary["failures"] == [], summary["failures"][:3]
    assert summary["exit_codes"].get("inspect:2", 0) > 40  # most mutants are refused up front
    deep = sum(v for k, v in summary["exit_codes"].items() if k.startswith(("profile:", "sketch:", "bench")))
    assert deep > 40  # and the ones that pass the check reach every interpreter


def test_sketch_writes_exactly_the_bytes_it_was_given(tmp_path):
    """A valid file with bytes after the flatbuffer (which no converter writes): the array
    the sketch compiles is that file, byte for byte."""
    from effkeras.convert import parse_c_array
    from effkeras.deploy import arduino_sketch

    data = open(os.path.join(ROOT, "tflite_models", "digits_cnn_int8.tflite"), "rb").read() + b"\0" * 14
    info = arduino_sketch(data, tmp_path / "s")
    source = next(f for f in info.files if f.endswith(".cpp"))
    assert parse_c_array(open(source).read()) == data
    assert "the input file's bytes, unchanged" in open(tmp_path / "s" / "README.md").read()
