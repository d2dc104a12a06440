"""The estimate target against MLPerf Tiny's published reference latencies.

Builds Keras models with the shapes of the four MLPerf Tiny v0.5 models (DS-CNN KWS,
MobileNetV1-0.25 VWW at 96x96, ResNet-8 CIFAR-10, the AD dense autoencoder), converts
them to int8, and reports the estimate's error against the reference latencies measured
on a Nucleo-L4R5ZI (Cortex-M4F, 120 MHz, TFLM + CMSIS-NN). Run with ``-s`` to see the
table. Weights are random: latency does not depend on them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from effkeras.bench import estimate, measure, parse_target
from effkeras.bench.estimate import (
    CYCLES_PER_MAC,
    MLPERF_TINY_MACS,
    MLPERF_TINY_REFERENCE,
    calibrate,
    format_errors,
    macs_by_class,
    mlperf_errors,
)
from effkeras.errors import UnknownBoardError, UnknownTargetError

# ---- Keras models with the MLPerf Tiny shapes (benchmarks/mlperf_models.py) ----------
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import mlperf_models  # noqa: E402


@pytest.fixture(scope="module")
def mlperf_tflites() -> dict[str, bytes]:
    return mlperf_models.build_all()


# ---- tests ---------------------------------------------------------------------------
@pytest.mark.slow
def test_estimate_error_against_mlperf_tiny_reference(mlperf_tflites):
    macs = {name: macs_by_class(blob) for name, blob in mlperf_tflites.items()}
    # The MAC table in estimate.py is what these models really count.
    assert macs == MLPERF_TINY_MACS
    # Refitting reproduces the documented constants (to their 2 decimals).
    fitted = calibrate(macs, MLPERF_TINY_REFERENCE)
    for cls, value in fitted.items():
        assert value == pytest.approx(CYCLES_PER_MAC["cmsis_nn"][cls], abs=0.01), cls
    rows = mlperf_errors(macs)
    print("\nestimate vs MLPerf Tiny v0.5 reference (Nucleo-L4R5ZI, Cortex-M4F 120 MHz, "
          "CMSIS-NN); constants fitted on these four, so errors are fit residuals:\n"
          + format_errors(rows))
    assert len(rows) == 4
    for r in rows:
        assert abs(r["error"]) < 0.15, r
    # The full estimate path (op walk, board clock) agrees with the class-sum arithmetic.
    e = estimate(mlperf_tflites["ic_resnet8"], "nano33ble")
    assert e.kernels == "cmsis_nn" and e.calibrated
    expected_ms = 704.26 * 120 / 64  # same core, 64 MHz instead of 120 MHz
    assert e.latency_us / 1000 == pytest.approx(expected_ms, rel=0.02)


@pytest.mark.slow
def test_estimate_target_orders_boards_and_kernels(mlperf_tflites):
    kws = mlperf_tflites["kws_ds_cnn"]
    cmsis = measure(kws, "estimate:nano33ble")
    ref = measure(kws, "estimate:nano33ble:reference")
    m7 = measure(kws, "estimate:portenta_h7")
    m0 = measure(kws, "estimate:pico")
    assert cmsis.stats is None and cmsis.estimate_us and cmsis.latency_ms
    assert ref.latency_us == pytest.approx(cmsis.latency_us * 4.6, rel=0.01)
    assert m7.latency_us < cmsis.latency_us < m0.latency_us
    assert any("not calibrated" in n for n in m0.notes)
    assert cmsis.details["macs"] == sum(MLPERF_TINY_MACS["kws_ds_cnn"].values())


def test_estimate_of_digits_model_and_errors(int8_io_tflite, float_tflite):
    r = measure(int8_io_tflite, "estimate:nano33ble")
    assert r.kind == "estimate" and r.target == "estimate:nano33ble:cmsis_nn"
    assert r.latency_us > 0 and r.details["layers"]
    f = measure(float_tflite, "estimate:nano33ble")
    assert any("float op" in n for n in f.notes)
    assert f.latency_us > r.latency_us
    with pytest.raises(UnknownBoardError, match="nano33ble"):
        parse_target("estimate:uno")
    with pytest.raises(UnknownTargetError, match="cannot use CMSIS-NN"):
        parse_target("estimate:pico:cmsis_nn")
