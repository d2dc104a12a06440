"""The estimate target: constants refitted on QEMU runs of the MLPerf Tiny models.

``benchmarks/mlperf_tiny.py`` (suite ``mlperf``) measured the instructions and the Cortex-M4
timing events (our TCG plugin, benchmarks/mlperf_firmware/m4_cycles_plugin.c) of every op of
the four MLPerf Tiny v0.5 models (``benchmarks/mlperf_models.py``: DS-CNN KWS,
MobileNetV1-0.25 VWW, ResNet-8 IC, the AD autoencoder) on the emulated Cortex-M4, with
CMSIS-NN and with reference kernels; estimate.py stores the counts, the modelled cycles and
the constants fitted on them. These tests refit the constants from the stored counts and
cycles, re-price the committed run's events with the cycle model, rebuild the four models and
check the estimate of each against its measured count, and tie the comparison with the
published MLPerf Tiny latencies to the committed results file. Run with ``-s`` to see the
table. No QEMU here: the benchmark runs it (tests/test_mlperf_cycles.py runs the plugin on a
known instruction sequence).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from effkeras.bench import estimate, measure, parse_target
from effkeras.bench.estimate import (
    CYCLE_MODEL,
    CYCLE_MODEL_HIGH,
    CYCLE_MODEL_LOW,
    CYCLE_RANGE,
    CYCLES_FIT_ERROR,
    CYCLES_PER_INSTRUCTION,
    CYCLES_PER_UNIT,
    CYCLES_PER_UNIT_ZERO_WAIT,
    INSTRUCTIONS_PER_UNIT,
    MAC_CLASSES,
    MLPERF_TINY_CYCLES,
    MLPERF_TINY_QEMU,
    MLPERF_TINY_REFERENCE,
    MLPERF_TINY_WORK,
    QEMU_FIT_ERROR,
    estimate_instructions,
    event_cycles,
    fit_instructions,
    format_errors,
    mlperf_errors,
    work_by_class,
)
from effkeras.errors import UnknownBoardError, UnknownTargetError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import mlperf_models  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mlperf.json"


@pytest.fixture(scope="module")
def mlperf_tflites() -> dict[str, bytes]:
    return mlperf_models.build_all()


# ---- the stored counts and constants (no TensorFlow, no QEMU) -------------------------
@pytest.mark.parametrize("kernels", ["cmsis_nn", "reference"])
def test_refit_on_the_stored_counts_reproduces_the_stored_constants(kernels):
    counts = MLPERF_TINY_QEMU[kernels]
    assert set(counts) == set(MLPERF_TINY_REFERENCE) == set(MLPERF_TINY_WORK)
    fitted = fit_instructions(MLPERF_TINY_WORK, counts)
    assert set(fitted) == set(INSTRUCTIONS_PER_UNIT[kernels])
    for cls, value in fitted.items():
        assert value == pytest.approx(INSTRUCTIONS_PER_UNIT[kernels][cls], abs=5e-4), cls
    # Per-op counts add up to the whole inference (interpreter overhead is negligible).
    for name, c in counts.items():
        assert sum(v for k, v in c.items() if k != "total") == pytest.approx(c["total"], rel=1e-3), name
    # The stored errors bound the fit's residual on the stored counts (and are not slack).
    errs = [abs(estimate_instructions_from_work(MLPERF_TINY_WORK[n], fitted) / c["total"] - 1)
            for n, c in counts.items()]
    assert max(errs) <= QEMU_FIT_ERROR[kernels] < max(errs) + 0.01


def estimate_instructions_from_work(work, table):
    return sum(work[c] * table.get(c, 0.0) for c in work)


def test_reference_kernels_cost_more_than_cmsis_nn_on_every_mac_class():
    cmsis, ref = INSTRUCTIONS_PER_UNIT["cmsis_nn"], INSTRUCTIONS_PER_UNIT["reference"]
    for cls in MAC_CLASSES:
        if cls in cmsis:
            assert ref[cls] > 2 * cmsis[cls] > 0, cls


@pytest.mark.parametrize("kernels", ["cmsis_nn", "reference"])
def test_refit_on_the_stored_cycles_reproduces_the_stored_cycle_constants(kernels):
    cycles = MLPERF_TINY_CYCLES[kernels]
    assert set(cycles) == set(MLPERF_TINY_WORK)
    fitted = fit_instructions(MLPERF_TINY_WORK, cycles)
    assert set(fitted) == set(CYCLES_PER_UNIT[kernels])
    for cls, value in fitted.items():
        assert value == pytest.approx(CYCLES_PER_UNIT[kernels][cls], abs=5e-4), cls
        # Every class costs at least a cycle an instruction, and the reference kernels'
        # classes stall more (byte loads and index arithmetic) than their instructions alone.
        assert value >= INSTRUCTIONS_PER_UNIT[kernels][cls], cls
    # Per-op cycles add up to the whole inference (profiled vs timed build, same loops).
    for name, c in cycles.items():
        assert sum(v for k, v in c.items() if k != "total") == pytest.approx(c["total"], rel=2e-3), name
    errs = [abs(estimate_instructions_from_work(MLPERF_TINY_WORK[n], fitted) / c["total"] - 1)
            for n, c in cycles.items()]
    assert max(errs) <= CYCLES_FIT_ERROR[kernels] < max(errs) + 0.01
    lo, hi = CYCLE_RANGE[kernels]
    assert 0.5 < lo < 1.0 < hi < 2.0
    assert 1.0 < CYCLES_PER_INSTRUCTION[kernels] < 3.0


def test_comparison_with_mlperf_tiny_matches_the_committed_results():
    doc = json.loads(RESULTS.read_text())
    raw = doc["raw"]
    assert raw["cycle_model"] == {"central": CYCLE_MODEL, "low": CYCLE_MODEL_LOW, "high": CYCLE_MODEL_HIGH}
    rows = mlperf_errors()
    print(f"\nestimate at 120 MHz (CMSIS-NN, modelled Cortex-M4 cycles, STM32L4R5 flash) vs MLPerf "
          f"Tiny (Nucleo-L4R5ZI):\n{format_errors(rows)}")
    assert [r["model"] for r in rows] == list(MLPERF_TINY_REFERENCE)
    for r in rows:
        assert r["error"] == pytest.approx(raw["errors_vs_tflm_v05"][r["model"]], abs=1e-3), r
        assert r["estimated_ms"] == pytest.approx(r["cycles"] / 120e3, rel=1e-9)
        assert r["low_ms"] < r["estimated_ms"] < r["high_ms"]
    zero_wait = mlperf_errors(table=CYCLES_PER_UNIT_ZERO_WAIT["cmsis_nn"])
    for r in zero_wait:
        assert r["error"] == pytest.approx(raw["errors_zero_wait"][r["model"]], abs=1e-3), r
    for kernels, table in raw["fitted"].items():
        for cls, value in table.items():
            assert value == pytest.approx(INSTRUCTIONS_PER_UNIT[kernels][cls], abs=5e-4)
    for kernels, table in raw["fitted_cycles"].items():
        for cls, value in table.items():
            assert value == pytest.approx(CYCLES_PER_UNIT[kernels][cls], abs=5e-4)
        for cls, value in raw["fitted_cycles_zero_wait"][kernels].items():
            assert value == pytest.approx(CYCLES_PER_UNIT_ZERO_WAIT[kernels][cls], abs=5e-4)
        assert tuple(raw["cycle_range"][kernels]) == pytest.approx(CYCLE_RANGE[kernels], abs=5e-4)


def test_the_cycle_model_prices_the_committed_events_as_stored():
    """EVENT_CYCLES and CYCLE_MODEL re-price the committed run's raw plugin events to the stored
    cycles: changing a timing without rerunning the suite fails here."""
    runs = json.loads(RESULTS.read_text())["raw"]["runs"]
    for name, by_kernels in runs.items():
        for kernels, r in by_kernels.items():
            assert event_cycles(r["events"]) == pytest.approx(MLPERF_TINY_CYCLES[kernels][name]["total"],
                                                             abs=0.5), (name, kernels)
            # The plugin counted the instructions QEMU's icount did (BENCH resolves 1000).
            assert r["events"]["insns"] == pytest.approx(r["instructions"], abs=1500), (name, kernels)
            assert r["events"]["unknown"] == 0, (name, kernels)
            ops = sum(event_cycles(o["events"]) for o in r["ops"])
            assert ops == pytest.approx(event_cycles(r["events"]), rel=2e-3), (name, kernels)


def test_the_committed_run_checked_its_builds_and_matches_the_stored_counts():
    runs = json.loads(RESULTS.read_text())["raw"]["runs"]
    assert set(runs) == set(MLPERF_TINY_REFERENCE)
    for name, by_kernels in runs.items():
        for kernels, r in by_kernels.items():
            assert r["instructions"] == MLPERF_TINY_QEMU[kernels][name]["total"], (name, kernels)
            assert r["ops_sum"] == pytest.approx(r["instructions"], rel=1e-3), (name, kernels)
            # The reference builds link no CMSIS-NN kernel; the CMSIS-NN builds do.
            assert bool(r["cmsis_symbols"]) == (kernels == "cmsis_nn"), (name, kernels)
    # Where the outputs were compared, both builds are within 1 LSB of LiteRT's reference
    # kernels (not 0: this library runs the last, per-channel dense layer with one scale;
    # the autoencoder, all dense, is off by far more, see the results' notes).
    for name in ("kws_ds_cnn", "ic_resnet8"):
        for kernels in ("cmsis_nn", "reference"):
            assert runs[name][kernels]["compared_inputs"] == 3, name
            assert runs[name][kernels]["max_abs_diff"] <= 1, (name, kernels)


# ---- the rebuilt models --------------------------------------------------------------
@pytest.mark.slow
def test_estimate_of_each_mlperf_model_is_within_the_stated_error_of_its_qemu_count(mlperf_tflites):
    for name, blob in mlperf_tflites.items():
        # The work table in estimate.py is what these models really count.
        assert work_by_class(blob) == MLPERF_TINY_WORK[name], name
        for kernels in ("cmsis_nn", "reference"):
            measured = MLPERF_TINY_QEMU[kernels][name]["total"]
            got = estimate_instructions(blob, kernels)
            assert abs(got / measured - 1) <= QEMU_FIT_ERROR[kernels], (name, kernels, got, measured)
        for kernels in ("cmsis_nn", "reference"):
            cycles = MLPERF_TINY_CYCLES[kernels][name]["total"]
            got = estimate_instructions(blob, table=CYCLES_PER_UNIT[kernels])
            assert abs(got / cycles - 1) <= CYCLES_FIT_ERROR[kernels], (name, kernels, got, cycles)
    # The full estimate path (op walk, cycles per unit, board clock) agrees with the arithmetic.
    e = estimate(mlperf_tflites["ic_resnet8"], "nano33ble")
    assert e.kernels == "cmsis_nn" and e.calibrated
    assert e.instructions == pytest.approx(estimate_instructions(mlperf_tflites["ic_resnet8"]))
    cycles = estimate_instructions(mlperf_tflites["ic_resnet8"], table=CYCLES_PER_UNIT["cmsis_nn"])
    assert e.cycles == pytest.approx(cycles, rel=1e-9)
    assert e.latency_us == pytest.approx(cycles / 64, rel=1e-9)
    assert e.cycles_per_instruction == pytest.approx(cycles / e.instructions)
    assert sum(r["us"] for r in e.layers) == pytest.approx(e.latency_us)


@pytest.mark.slow
def test_estimate_target_orders_boards_and_kernels(mlperf_tflites):
    kws = mlperf_tflites["kws_ds_cnn"]
    cmsis = measure(kws, "estimate:nano33ble")
    ref = measure(kws, "estimate:nano33ble:reference")
    m7 = measure(kws, "estimate:portenta_h7")
    m0 = measure(kws, "estimate:pico")
    assert cmsis.stats is None and cmsis.estimate_us and cmsis.latency_ms
    ratio = (MLPERF_TINY_CYCLES["reference"]["kws_ds_cnn"]["total"]
             / MLPERF_TINY_CYCLES["cmsis_nn"]["kws_ds_cnn"]["total"])
    assert ref.latency_us / cmsis.latency_us == pytest.approx(ratio, rel=CYCLES_FIT_ERROR["reference"] + 0.1)
    assert m7.latency_us < cmsis.latency_us < m0.latency_us
    assert any("not calibrated" in n for n in m0.notes)
    assert cmsis.details["macs"] == sum(MLPERF_TINY_WORK["kws_ds_cnn"][c] for c in MAC_CLASSES)


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
