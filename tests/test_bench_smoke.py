"""Every benchmark suite still runs: bench/run.py --smoke (tiny budgets; numbers mean nothing).

The survey suite's smoke run is tests/test_bench_survey.py (it needs no data files). The
qat, prune and text suites read the real datasets in ../shared/data (or
$EFFKERAS_DATA_DIR); without them they are reported as skipped by the runner, and this
test skips with that reason. The tfmot baselines run in child processes with tf_keras,
which the `bench` extra installs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("EFFKERAS_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")


def _run(*suites: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "run.py"), *suites, "--smoke",
         "--data-dir", DATA],
        capture_output=True, text=True, timeout=1200, cwd=ROOT,
    )


def test_latency_suite_smoke():
    proc = _run("latency")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "latency   ok" in proc.stdout
    md = open(os.path.join(ROOT, "build", "bench-smoke", "latency.md")).read()
    assert "litert:xnnpack" in md and "tflm" in md and "estimate:nano33ble" in md


@pytest.mark.parametrize("suite,needs", [("qat", "mnist"), ("prune", "mnist"), ("text", "sms_spam")])
def test_data_suites_smoke(suite, needs):
    if not os.path.isdir(os.path.join(DATA, needs)):
        pytest.skip(f"{needs} data not present under {DATA}")
    if suite != "text" and importlib.util.find_spec("tf_keras") is None:
        pytest.skip("the bench extra (tf-keras, tfmot) is not installed: pip install -e .[bench]")
    proc = _run(suite)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{suite:9s} ok" in proc.stdout
    assert os.path.getsize(os.path.join(ROOT, "build", "bench-smoke", f"{suite}.md")) > 200


def test_unknown_suite_is_refused():
    proc = _run("nonsense")
    assert proc.returncode == 2 and "unknown suite" in proc.stderr
