"""The mlperf suite's quick run: the autoencoder built with CMSIS-NN and with reference kernels,
run on the emulated Cortex-M4 with the cycle-event plugin, profiled per op, and its results
file rendered.

The full run (all four MLPerf Tiny models) is ``python -m benchmarks mlperf``; its results
are benchmarks/results/mlperf.json, which tests/test_bench_estimate.py ties to estimate.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "build", "benchmarks-quick")


@pytest.mark.cross
@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-g++ or qemu-system-arm is not installed (.ci/run installs them)")
def test_mlperf_suite_quick():
    env = dict(os.environ)
    env.setdefault("EFFKERAS_TFLM_LIB", os.path.join(ROOT, "..", "shared", "tflm", "Arduino_TensorFlowLite"))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "mlperf", "--quick"], capture_output=True,
                          text=True, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mlperf    ok" in proc.stdout
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import results

    doc = results.load(os.path.join(QUICK, "mlperf", "results.json"))
    run = doc["raw"]["runs"]["ad_autoencoder"]
    cmsis, ref = run["cmsis_nn"], run["reference"]
    # The reference build links no CMSIS-NN kernel, the CMSIS-NN build does. (Outputs are not
    # asserted: this library runs the autoencoder's per-channel dense layers with one scale.)
    assert ref["cmsis_symbols"] == [] and cmsis["cmsis_symbols"]
    assert "max_abs_diff" not in ref and "max_abs_diff" not in cmsis  # quick: no RUN
    # Plain kernels take more instructions; the per-op counts add up to the whole inference.
    assert ref["instructions"] > 1.5 * cmsis["instructions"] > 0
    for r in (cmsis, ref):
        assert [o["op"] for o in r["ops"]] == ["FULLY_CONNECTED"] * 10
        assert r["ops_sum"] == pytest.approx(r["instructions"], rel=0.01)
        # The plugin saw the same instructions, classified them all, and each op's events add up
        # to the inference's; every instruction costs at least a cycle.
        assert r["events"]["insns"] == pytest.approx(r["instructions"], abs=1500)
        assert r["events"]["unknown"] == 0
        assert sum(o["events"]["insns"] for o in r["ops"]) == pytest.approx(r["events"]["insns"], rel=0.01)
    cycles = doc["raw"]["cycles"]
    for k, r in (("cmsis_nn", cmsis), ("reference", ref)):
        c = cycles[k]["ad_autoencoder"]
        assert c["zero_wait"] <= c["central"] and c["low"] < c["central"] < c["high"]
        assert 1.0 < c["central"] / r["instructions"] < 3.0
    assert cycles["reference"]["ad_autoencoder"]["central"] > 1.5 * cycles["cmsis_nn"]["ad_autoencoder"]["central"]
    assert doc["headline"] and doc["summary"]["rows"]
