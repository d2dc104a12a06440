"""Host targets (LiteRT, TFLM), statistics, reports, plot, CLI and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from effkeras.bench import (
    LatencyStats,
    compare,
    format_table,
    measure,
    parse_target,
    plot_tradeoff,
    to_json,
    write_csv,
)
from effkeras.bench.cli import main as bench_main
from effkeras.bench.host import HostWorker
from effkeras.bench.stats import relative_difference
from effkeras.errors import (
    BenchConfigError,
    EffkerasError,
    InvalidModelError,
    UnknownTargetError,
)


@pytest.fixture
def files(tmp_path, int8_io_tflite, float_tflite):
    a = tmp_path / "digits_int8.tflite"
    b = tmp_path / "digits_float32.tflite"
    a.write_bytes(int8_io_tflite)
    b.write_bytes(float_tflite)
    return str(a), str(b)


# ---- targets and statistics ----------------------------------------------------------
def test_parse_targets_and_unknown_lists_valid_forms():
    assert parse_target("litert").spec == "litert:xnnpack"
    assert parse_target("LITERT:Reference").kernels == "reference"
    assert parse_target("tflm").kind == "tflm"
    assert parse_target("estimate:nano33ble").spec == "estimate:nano33ble:cmsis_nn"
    assert parse_target("estimate:pico").kernels == "reference"
    for bad in ("gpu", "litert:fast", "tflm:x", "serial:", "", "estimate:"):
        with pytest.raises(UnknownTargetError, match="Valid targets: litert"):
            parse_target(bad)


def test_stats_percentiles_and_noisy_flag():
    s = LatencyStats.from_samples([10.0] * 50 + [12.0] * 50)
    assert s.median_us == 11.0 and s.p5_us == 10.0 and s.p95_us == 12.0
    assert s.mean_us == 11.0 and s.std_us == pytest.approx(1.0)
    assert s.noisy  # the second half runs 20% slower than the first: drift
    steady = LatencyStats.from_samples([10.0, 10.5, 9.8, 10.1] * 25)
    assert not steady.noisy and steady.spread == pytest.approx(0.7 / 10.05, rel=1e-3)
    with pytest.raises(ValueError, match="samples"):
        LatencyStats.from_samples([])


# ---- measuring on the host -----------------------------------------------------------
def test_litert_and_tflm_results(files):
    int8, _ = files
    r = measure(int8, "litert", runs=30, warmup=3)
    assert r.kind == "litert" and r.target == "litert:xnnpack" and r.stats.n == 30
    assert r.stats.p5_us <= r.stats.median_us <= r.stats.p95_us
    assert r.first_inference_us > 0 and r.init_us > 0
    assert 20 * 2**20 < r.peak_rss_bytes < 400 * 2**20  # Python + numpy + LiteRT, not the parent
    assert 0 <= r.model_rss_bytes < r.peak_rss_bytes
    assert r.details["package"] == "ai_edge_litert"
    t = measure(int8, "tflm", runs=10, warmup=1)
    from effkeras.runtime import measure_arena

    assert t.arena_bytes == measure_arena(int8)  # the exact arena, from the child
    ref = measure(int8, "litert:reference", runs=10, warmup=1)
    assert ref.target == "litert:reference" and ref.stats.n == 10


def test_two_litert_runs_agree_or_say_noisy(files, tmp_path):
    """Stability: the same model measured twice side by side (interleaved blocks, so both
    see the same machine load; the test suite runs two workers at once) gives medians
    within 10%, or the result says it was noisy (with its spread)."""
    int8, _ = files
    twin = tmp_path / "twin.tflite"
    twin.write_bytes(open(int8, "rb").read())
    a, b = compare([int8, str(twin)], "litert", runs=200, warmup=20, rounds=10)
    diff = relative_difference(a.stats.median_us, b.stats.median_us)
    print(f"\nmedians {a.stats.median_us:.1f} vs {b.stats.median_us:.1f} us: {diff:.1%} apart; "
          f"noisy={a.noisy}/{b.noisy}")
    assert diff <= 0.10 or a.noisy or b.noisy
    for r in (a, b):
        if r.noisy:
            assert any("min-max spread" in n for n in r.notes)


def test_compare_runs_interleaved_with_ratios(files):
    int8, flt = files
    results = compare([int8, flt], "litert:builtin", runs=20, warmup=2, rounds=4)
    assert [r.name for r in results] == ["digits_int8.tflite", "digits_float32.tflite"]
    assert all(r.details["rounds"] == 4 and r.stats.n == 20 for r in results)
    table = format_table(results, ratios=True)
    assert "x first" in table and "1.00" in table.splitlines()[2]


def test_corrupt_models_never_crash_the_host(files, tmp_path):
    int8, _ = files
    data = bytearray(open(int8, "rb").read())
    with pytest.raises(InvalidModelError):
        measure(bytes(data[:100]), "litert", runs=3)
    with pytest.raises(InvalidModelError):
        measure(b"not a model at all", "tflm", runs=3)
    rng = np.random.default_rng(3)
    for _ in range(3):  # random byte flips: an error or a result, never a dead host
        bad = bytearray(data)
        for pos in rng.integers(64, len(bad), size=40):
            bad[pos] ^= 0xFF
        try:
            measure(bytes(bad), "litert", runs=3, warmup=0)
        except EffkerasError:
            pass


def test_child_crash_is_an_error_not_a_crash(files):
    int8, _ = files
    worker = HostWorker(int8, "litert")
    try:
        os.kill(worker.proc.pid, signal.SIGSEGV)
        worker.proc.wait(timeout=10)
        with pytest.raises(InvalidModelError, match="the interpreter was killed by SIGSEGV"):
            worker.run(3)
    finally:
        worker.close()


def test_bad_settings(files):
    int8, _ = files
    for kwargs, match in (
        ({"runs": 0}, "runs must be an integer >= 1.*runs=0"),
        ({"warmup": -1}, "warmup"),
        ({"threads": 0}, "threads"),
        ({"runs": 2.5}, "runs"),
    ):
        with pytest.raises(BenchConfigError, match=match):
            measure(int8, "litert", **kwargs)
    with pytest.raises(BenchConfigError, match="single-threaded"):
        measure(int8, "tflm", threads=2)
    with pytest.raises(InvalidModelError, match="No such file"):
        measure("missing.tflite", "litert")


def test_bench_package_imports_without_tensorflow():
    code = ("import sys, effkeras.bench, effkeras.bench.cli, effkeras.bench.serial_board, "
            "effkeras.bench.android; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---- reports, plot, CLI --------------------------------------------------------------
def test_json_csv_and_plot(files, tmp_path):
    int8, flt = files
    results = compare([int8, flt], "litert", runs=10, warmup=1)
    data = json.loads(to_json(results))
    assert [d["target"] for d in data] == ["litert:xnnpack"] * 2
    assert len(data[0]["samples_us"]) == 10 and data[0]["stats"]["median_us"] > 0
    path = write_csv(results, str(tmp_path / "bench.csv"))
    rows = list(csv.DictReader(open(path)))
    assert float(rows[0]["ratio_to_first"]) == 1.0 and float(rows[1]["median_ms"]) > 0
    # Accuracy from the caller for one model, from a sidecar for the other.
    with open(flt[: -len(".tflite")] + ".json", "w") as f:
        json.dump({"scores": {"accuracy_litert": 0.95}}, f)
    out = plot_tradeoff(results, str(tmp_path / "tradeoff.png"), {"digits_int8.tflite": 0.94})
    assert [p["accuracy"] for p in out["points"]] == [0.94, 0.95]
    grouped = plot_tradeoff(results, str(tmp_path / "g.png"), {"digits_int8.tflite": 0.94},
                            groups={"digits_int8.tflite": "int8", "digits_float32": "float"})
    assert [(p["index"], p["group"]) for p in grouped["points"]] == [(1, "int8"), (2, "float")]
    assert open(out["path"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BenchConfigError, match="fractions"):
        plot_tradeoff(results, str(tmp_path / "x.png"), {"digits_int8.tflite": 94})


def test_cli(files, tmp_path, capsys):
    int8, flt = files
    assert bench_main(["bench", int8, "--target", "litert", "--runs", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["runs"] == 5
    csv_path = tmp_path / "c.csv"
    png = tmp_path / "c.png"
    code = bench_main(["bench", "compare", int8, flt, "--target", "estimate:nano33ble",
                       "--csv", str(csv_path), "--plot", str(png),
                       "--accuracy", "digits_int8.tflite=0.9"])
    out = capsys.readouterr().out
    assert code == 0 and "x first" in out and "estimate" in out
    assert csv_path.exists() and png.exists()
    for argv, match in (
        (["bench", int8, "--target", "phone"], "Valid targets"),
        (["bench", int8, "--runs", "0"], "runs=0"),
        (["bench", int8, "--target", "estimate:uno"], "Valid boards"),
        (["bench", "compare", int8], "two or more"),
        (["bench", int8, flt], "bench compare"),
        (["bench", str(tmp_path / "nope.tflite")], "No such model file"),
    ):
        assert bench_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("effkeras: error:") and match in err, err
    with pytest.raises(SystemExit) as exc:
        bench_main(["bench", int8, "--runs", "many"])
    assert exc.value.code == 2
