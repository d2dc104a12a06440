"""The android target against a stand-in adb (tests/standins/adb): no phone involved.

The stand-in replays benchmark_model output (both formats, exponents, a GPU failure) and
plays the error cases: no adb, no device, unauthorized, offline, several devices, no
benchmark_model binary.
"""

from __future__ import annotations

import json
import os

import pytest

from effkeras.bench import compare, measure, parse_target
from effkeras.bench.android import parse_benchmark_output, stats_from_runs
from effkeras.errors import DeviceError, UnknownTargetError

STANDINS = os.path.join(os.path.dirname(__file__), "standins")
REPLAYS = os.path.join(STANDINS, "benchmark_model")


def _replay(name: str) -> str:
    with open(os.path.join(REPLAYS, name + ".txt")) as f:
        return f.read()


@pytest.fixture
def fake_adb(monkeypatch, tmp_path):
    """Put the stand-in adb first on PATH; returns (set_scenario, read_calls)."""
    log = tmp_path / "adb_calls.jsonl"
    monkeypatch.setenv("PATH", STANDINS + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("EFFKERAS_FAKE_ADB_LOG", str(log))
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)

    def scenario(name: str) -> None:
        monkeypatch.setenv("EFFKERAS_FAKE_ADB", name)

    def calls() -> list[list[str]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    scenario("current")
    return scenario, calls


def test_parse_current_format():
    p = parse_benchmark_output(_replay("current"))
    assert p["format"] == "current"
    assert (p["init_us"], p["first_us"], p["warmup_avg_us"], p["avg_us"]) == (3412, 412, 160.6,
                                                                              98.42)
    assert (p["count"], p["min_us"], p["max_us"], p["std_us"]) == (50, 93, 131, 5)
    assert p["peak_memory_mb"] == pytest.approx(2.73438)


def test_parse_older_format_and_exponents():
    old = parse_benchmark_output(_replay("older"))
    assert old["format"] == "older"
    assert (old["warmup_avg_us"], old["init_us"], old["avg_us"]) == (318.8, 4871, 213.6)
    assert old["count"] == 50 and old["first_us"] == 731  # the first warm-up run
    assert old["peak_memory_mb"] is None
    exp = parse_benchmark_output(_replay("exponent"))
    assert exp["avg_us"] == pytest.approx(1.24027e6)
    assert exp["init_us"] == pytest.approx(1.1826e6)
    assert exp["first_us"] == pytest.approx(2.04167e6)
    assert exp["std_us"] == 2841 and exp["min_us"] == 1238002
    assert exp["peak_memory_mb"] == pytest.approx(131.57)
    # An older line with "Inference:" instead of "no stats:", CRLF line ends.
    text = "Average inference timings in us: Warmup: 1.5e+03, Init: 2e3, Inference: 9.5e+02\r\n"
    p = parse_benchmark_output(text)
    assert (p["warmup_avg_us"], p["init_us"], p["avg_us"]) == (1500, 2000, 950)


def test_parse_failure_quotes_the_reason():
    with pytest.raises(DeviceError, match="Failed to apply GPU delegate"):
        parse_benchmark_output(_replay("gpu_failure"))


def test_pooled_stats_from_rounds():
    runs = [
        {"count": 10, "avg_us": 100.0, "std_us": 0.0, "min_us": 100, "max_us": 100},
        {"count": 10, "avg_us": 200.0, "std_us": 0.0, "min_us": 200, "max_us": 200},
    ]
    s = stats_from_runs(runs)
    assert s.n == 20 and s.mean_us == 150 and s.std_us == pytest.approx(50)
    assert s.min_us == 100 and s.max_us == 200 and s.median_us is None
    assert s.noisy  # the two rounds differ by far more than 10%


def test_android_target_forms():
    assert parse_target("android").serial is None
    t = parse_target("android:192.168.1.5:5555@gpu")
    assert (t.serial, t.delegate) == ("192.168.1.5:5555", "gpu")
    assert parse_target("android@cpu").delegate == "cpu"
    with pytest.raises(UnknownTargetError, match="android:SERIAL"):
        parse_target("android@npu")


def test_measure_over_fake_adb(fake_adb, int8_io_tflite):
    scenario, calls = fake_adb
    r = measure(int8_io_tflite, "android", runs=50, warmup=5, threads=2)
    assert r.kind == "android" and r.target == "android@xnnpack"
    assert r.stats.mean_us == 98.42 and r.stats.median_us is None
    assert r.latency_us == 98.42 and r.first_inference_us == 412 and r.init_us == 3412
    assert r.peak_rss_bytes == int(2.73438 * 2**20)
    assert r.details["serial"] == "R58M41ABCDE" and r.details["format"] == "current"
    argv = calls()
    push = [c for c in argv if "push" in c]
    assert push and push[0][-1].startswith("/data/local/tmp/effkeras_")
    run = [c for c in argv if any("benchmark_model" in a for a in c) and "--num_runs=50" in c]
    assert run, argv
    assert {"--num_threads=2", "--warmup_runs=5", "--use_xnnpack=true", "--min_secs=0"} <= set(
        run[0]
    )
    assert any(c[-1].startswith("rm -f /data/local/tmp/effkeras_") for c in argv)  # cleaned up

    scenario("older")
    r = measure(int8_io_tflite, "android:R58M41ABCDE@cpu", runs=50)
    assert r.stats.mean_us == 213.6 and r.details["format"] == "older"
    assert any("--use_xnnpack=false" in c for c in calls())


def test_compare_interleaves_rounds(fake_adb, int8_io_tflite, float_tflite):
    scenario, calls = fake_adb
    scenario("exponent")
    results = compare([int8_io_tflite, float_tflite], "android", runs=20, rounds=2)
    assert [r.stats.n for r in results] == [100, 100]  # 2 replayed rounds of 50 each
    runs = [c for c in calls() if any(a.startswith("--graph=") for a in c)]
    graphs = [next(a for a in c if a.startswith("--graph=")) for c in runs]
    assert len(graphs) == 4 and graphs[0] != graphs[1] and graphs[1] == graphs[2]  # A B B A


@pytest.mark.parametrize(
    "scenario_name, target, match",
    [
        ("no_device", "android", "No Android device is attached"),
        ("unauthorized", "android", "unauthorized.*Allow USB debugging"),
        ("offline", "android", "offline"),
        ("two_devices", "android", "Several devices.*android:SERIAL"),
        ("current", "android:NOPE123", "No device 'NOPE123'"),
        ("no_binary", "android", "not on .* at /data/local/tmp/benchmark_model.*storage.googleapis"),
        ("gpu_failure", "android@gpu", "GPU delegate failed"),
    ],
)
def test_adb_errors_are_clear(fake_adb, int8_io_tflite, scenario_name, target, match):
    scenario, _ = fake_adb
    scenario(scenario_name)
    with pytest.raises(DeviceError, match=match):
        measure(int8_io_tflite, target, runs=5)


def test_missing_adb(monkeypatch, tmp_path, int8_io_tflite):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    with pytest.raises(DeviceError, match="adb was not found.*platform-tools"):
        measure(int8_io_tflite, "android", runs=5)
