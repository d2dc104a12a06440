"""Every benchmark suite still runs: ``python -m benchmarks SUITE --quick`` (tiny budgets; the
numbers mean nothing) writes a results file that follows the schema, and BENCHMARKS.md renders
from it.

The survey and microcontroller suites' quick runs are tests/test_benchmarks_survey.py and
tests/test_benchmarks_mcu.py (they need no data files). The qat, prune and text suites read
the real datasets in ../shared/data (or $EFFKERAS_DATA_DIR); without them the runner reports
them as skipped, and this test skips with that reason. The tfmot baselines run in child
processes with tf_keras, which the `bench` extra installs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("EFFKERAS_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")
QUICK = os.path.join(ROOT, "build", "benchmarks-quick")


def _run(*args: str, data: str = DATA) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args, "--data-dir", data],
                          capture_output=True, text=True, timeout=1200, cwd=ROOT)


def _results(suite: str) -> dict:
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import results

    return results.load(os.path.join(QUICK, suite, "results.json"))


def test_latency_suite_quick():
    proc = _run("latency", "--quick")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "latency   ok" in proc.stdout
    doc = _results("latency")
    targets = [r[0] for t in doc["tables"] for r in t["rows"]]
    assert {"litert:xnnpack", "tflm", "estimate:nano33ble"} <= set(targets)
    assert doc["headline"][0]["what"] == "int8 vs float latency, LiteRT 1 thread"
    assert "x faster" in doc["headline"][0]["result"]
    md = open(os.path.join(QUICK, "BENCHMARKS.md")).read()  # rendered from the quick results only
    assert "## Latency: float vs int8 on every host target" in md and "| litert:builtin |" in md


@pytest.mark.parametrize("suite,needs", [("qat", "mnist"), ("prune", "mnist"), ("text", "sms_spam")])
def test_data_suites_quick(suite, needs):
    if not os.path.isdir(os.path.join(DATA, needs)):
        pytest.skip(f"{needs} data not present under {DATA}")
    if suite != "text" and importlib.util.find_spec("tf_keras") is None:
        pytest.skip("the bench extra (tf-keras, tfmot) is not installed: pip install -e .[bench]")
    proc = _run(suite, "--quick")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{suite:9s} ok" in proc.stdout
    doc = _results(suite)
    assert doc["suite"] == suite and doc["headline"] and doc["tables"]
    assert all(h["met"] in ("yes", "no", "partly") for h in doc["headline"])
    assert doc["raw"] is not None  # the script's own rows travel with the tables
    json.dumps(doc)


def test_missing_data_is_skipped_in_quick_runs_and_refused_in_full_runs(tmp_path):
    quick = _run("text", "--quick", data=str(tmp_path))
    assert quick.returncode == 0 and "skipped" in quick.stdout and "no sms_spam under" in quick.stdout
    full = _run("text", data=str(tmp_path))
    assert full.returncode == 2 and "unavailable" in full.stdout and "--data-dir" in full.stdout


def test_full_run_without_trained_weights_says_what_to_train(tmp_path):
    if os.path.isdir(os.path.join(ROOT, "build", "mcu", "weights")):
        pytest.skip("build/mcu/weights exists here: a full run would start")
    proc = _run("mcu")
    assert proc.returncode == 2 and "no trained weights at" in proc.stdout and "mcu_train.py" in proc.stdout


def test_unknown_suite_is_refused():
    proc = _run("nonsense")
    assert proc.returncode == 2 and "unknown suite" in proc.stderr
