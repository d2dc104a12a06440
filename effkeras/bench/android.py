"""Benchmark on an Android phone: push the model with adb, run LiteRT's ``benchmark_model``.

Needs the Android platform tools (``adb`` on PATH, or under ``$ANDROID_HOME/platform-tools``)
and the ``benchmark_model`` binary on the phone at :data:`BENCHMARK_PATH`. Get the
binary from LiteRT's nightly builds (:data:`BENCHMARK_URL` for arm64 phones) and::

    adb push android_aarch64_benchmark_model /data/local/tmp/benchmark_model
    adb shell chmod +x /data/local/tmp/benchmark_model

``benchmark_model`` prints its timings in one of two formats (numbers may carry
exponents, e.g. ``1.24027e+06``), both parsed by :func:`parse_benchmark_output`::

    Inference timings in us: Init: 855, First inference: 49060, Warmup (avg): 34825.1, Inference (avg): 33209.4
    Average inference timings in us: Warmup: 76605.9, Init: 9933, Inference: 66767.6   (older; some print "no stats:")

and one ``count=N first=.. curr=.. min=.. max=.. avg=.. std=..`` line for the warm-up and
one for the timed runs (the last one is used). It reports no median: the result's median
and percentiles are None and its quoted figure is the mean.

The tests drive this module with a stand-in ``adb`` (tests/standins/adb) that replays
benchmark_model output; no phone is involved there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from effkeras.bench.stats import NOISY_DRIFT, LatencyStats
from effkeras.bench.targets import AndroidTarget
from effkeras.errors import DeviceError

BENCHMARK_PATH = "/data/local/tmp/benchmark_model"
REMOTE_DIR = "/data/local/tmp"
BENCHMARK_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/"
    "tools/nightly/latest/android_aarch64_benchmark_model"
)
HOW_TO_GET_BINARY = (
    f"Download LiteRT's benchmark_model for your phone's ABI (arm64: {BENCHMARK_URL}), then "
    f"`adb push android_aarch64_benchmark_model {BENCHMARK_PATH}` and "
    f"`adb shell chmod +x {BENCHMARK_PATH}`."
)

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_CURRENT_RE = re.compile(
    rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, "
    rf"Warmup \(avg\): {_NUM}, Inference \(avg\): {_NUM}"
)
_OLDER_RE = re.compile(
    rf"Average inference timings in us: Warmup: {_NUM}, Init: {_NUM}, "
    rf"(?:Inference|no stats): {_NUM}"
)
_COUNT_RE = re.compile(
    rf"count=(\d+) first={_NUM} curr={_NUM} min={_NUM} max={_NUM} avg={_NUM} std={_NUM}"
)
_MEMORY_RE = re.compile(
    rf"(?:Peak memory footprint|Memory footprint delta from the start of the tool) "
    rf"\(MB\): init={_NUM} overall={_NUM}"
)
_FAILURES = (
    "Failed to apply",
    "Failed to allocate",
    "Failed to mmap",
    "Failed to invoke",
    "Benchmarking failed",
    "Could not open",
    "not found",
    "inaccessible",
    "Permission denied",
    "Aborted",
    "Segmentation fault",
)


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """Timings (microseconds) and memory from benchmark_model's output, either format.

    Returns:
        ``{format: "current"|"older", init_us, first_us (None in the older format),
        warmup_avg_us, avg_us, count, min_us, max_us, std_us, first_run_us,
        peak_memory_mb}``; ``count``... are None without a ``count=`` line.

    Raises:
        DeviceError: no timing line (the message quotes the output's failure lines).
    """
    text = text.replace("\r", "")
    current = _CURRENT_RE.search(text)
    older = _OLDER_RE.search(text)
    result: dict[str, Any]
    if current:
        init, first, warm, avg = (float(v) for v in current.groups())
        result = {"format": "current", "init_us": init, "first_us": first,
                  "warmup_avg_us": warm, "avg_us": avg}
    elif older:
        warm, init, avg = (float(v) for v in older.groups())
        result = {"format": "older", "init_us": init, "first_us": None,
                  "warmup_avg_us": warm, "avg_us": avg}
    else:
        failures = [ln.strip() for ln in text.splitlines()
                    if any(f.lower() in ln.lower() for f in _FAILURES)]
        tail = " | ".join(failures[-3:]) or " | ".join(text.strip().splitlines()[-3:])
        raise DeviceError(
            f"benchmark_model printed no inference timings. Its output ends: {tail[:500]!r}"
        )
    counts = _COUNT_RE.findall(text)
    if counts:
        c = counts[-1]
        result.update(count=int(c[0]), first_run_us=float(c[1]), min_us=float(c[3]),
                      max_us=float(c[4]), std_us=float(c[6]))
        if result["first_us"] is None and len(counts) >= 2:
            result["first_us"] = float(counts[0][1])  # first warm-up run
    else:
        result.update(count=None, first_run_us=None, min_us=None, max_us=None, std_us=None)
    memory = _MEMORY_RE.findall(text)
    result["peak_memory_mb"] = float(memory[-1][1]) if memory else None
    return result


# ---- adb -----------------------------------------------------------------------------
def find_adb() -> str:
    """The adb executable: on PATH, else under $ANDROID_HOME / $ANDROID_SDK_ROOT."""
    found = shutil.which("adb")
    if found:
        return found
    for var in ("ANDROID_HOME", "ANDROID_SDK_ROOT"):
        root = os.environ.get(var)
        if root:
            candidate = os.path.join(root, "platform-tools", "adb")
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    raise DeviceError(
        "adb was not found on PATH (nor in $ANDROID_HOME/platform-tools). Install the "
        "Android platform tools (https://developer.android.com/tools/releases/platform-tools, "
        "or `apt install adb`) and put adb on PATH."
    )


def _adb(adb: str, args: Sequence[str], timeout: float) -> tuple[int, str]:
    try:
        proc = subprocess.run([adb, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeviceError(
            f"`adb {' '.join(args)}` did not finish within {timeout:.0f} s; is the phone "
            f"awake and connected?"
        ) from None
    except OSError as exc:
        raise DeviceError(f"Could not run {adb}: {exc}") from None
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def list_devices(adb: str, timeout: float = 30.0) -> list[tuple[str, str]]:
    """``adb devices`` as (serial, state) pairs (state: device, unauthorized, offline...)."""
    code, out = _adb(adb, ["devices"], timeout)
    if code != 0:
        raise DeviceError(f"`adb devices` failed (exit {code}): {out.strip()[-300:]}")
    devices = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) >= 2:
            devices.append((parts[0], parts[1]))
    return devices


def choose_device(devices: Sequence[tuple[str, str]], serial: str | None) -> str:
    """The serial to use, or a DeviceError that says what is attached and what to do."""
    listed = ", ".join(f"{s} ({st})" for s, st in devices) or "none"
    if serial is not None:
        match = [d for d in devices if d[0] == serial]
        if not match:
            raise DeviceError(f"No device {serial!r} is attached. Attached: {listed}.")
        state = match[0][1]
    else:
        if not devices:
            raise DeviceError(
                "No Android device is attached (`adb devices` lists none). Connect a phone "
                "with USB debugging on (Settings > Developer options) and try again."
            )
        if len(devices) > 1:
            raise DeviceError(
                f"Several devices are attached: {listed}. Pick one with "
                f"--target android:SERIAL."
            )
        serial, state = devices[0]
    if state == "unauthorized":
        raise DeviceError(
            f"Device {serial} is unauthorized: unlock the phone and accept the 'Allow USB "
            f"debugging?' prompt (then check `adb devices` says 'device')."
        )
    if state != "device":
        raise DeviceError(
            f"Device {serial} is {state!r}, not ready. Reconnect it (or `adb reconnect`) until "
            f"`adb devices` shows it as 'device'."
        )
    return serial


def benchmark_flags(
    remote_model: str, target: AndroidTarget, runs: int, warmup: int, threads: int
) -> list[str]:
    """benchmark_model's flags for these settings (exact run counts: min_secs=0)."""
    flags = [
        f"--graph={remote_model}",
        f"--num_threads={threads}",
        f"--warmup_runs={warmup}",
        "--warmup_min_secs=0",
        f"--num_runs={runs}",
        "--min_secs=0",
    ]
    if target.delegate == "gpu":
        flags.append("--use_gpu=true")
    else:
        flags.append(f"--use_xnnpack={'true' if target.delegate == 'xnnpack' else 'false'}")
    return flags


def run_benchmark_model(
    local_model: str,
    sha256: str,
    target: AndroidTarget,
    runs: int,
    warmup: int,
    threads: int,
    timeout: float = 600.0,
    rounds: int = 1,
) -> dict[str, Any]:
    """Push one model and run benchmark_model on it ``rounds`` times.

    Returns:
        ``{serial, runs: [parse_benchmark_output(...) per round], flags, output_tail}``.
    """
    return run_benchmark_models([(local_model, sha256)], target, runs, warmup, threads,
                                timeout, rounds)[0]


def run_benchmark_models(
    models: Sequence[tuple[str, str]],
    target: AndroidTarget,
    runs: int,
    warmup: int,
    threads: int,
    timeout: float = 600.0,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """Like :func:`run_benchmark_model` for several (path, sha256) models, interleaved:
    each round runs every model once (in a rotating order), ``runs / rounds`` runs each."""
    adb = find_adb()
    serial = choose_device(list_devices(adb), target.serial)
    code, out = _adb(adb, ["-s", serial, "shell",
                           f"test -x {BENCHMARK_PATH} && echo EFK_FOUND || echo EFK_MISSING"], 60)
    if "EFK_FOUND" not in out:
        raise DeviceError(f"benchmark_model is not on {serial} at {BENCHMARK_PATH}. "
                          + HOW_TO_GET_BINARY)
    remotes = []
    for path, sha in models:
        remote = f"{REMOTE_DIR}/effkeras_{sha[:12]}.tflite"
        code, out = _adb(adb, ["-s", serial, "push", path, remote], 300)
        if code != 0:
            raise DeviceError(f"`adb push {path} {remote}` failed (exit {code}): "
                              f"{out.strip()[-300:]}")
        remotes.append(remote)
    rounds = max(1, min(rounds, runs))
    sizes = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    results: list[dict[str, Any]] = [
        {"serial": serial, "runs": [], "flags": benchmark_flags(r, target, runs, warmup, threads)}
        for r in remotes
    ]
    try:
        for r, size in enumerate(sizes):
            order = list(range(len(remotes)))
            order = order[r % len(order):] + order[: r % len(order)]
            for i in order:
                flags = benchmark_flags(remotes[i], target, size, warmup, threads)
                code, out = _adb(adb, ["-s", serial, "shell", BENCHMARK_PATH, *flags], timeout)
                if "not found" in out and "benchmark_model" in out and "timings" not in out:
                    raise DeviceError(f"benchmark_model could not be started on {serial}: "
                                      f"{out.strip()[-200:]}. " + HOW_TO_GET_BINARY)
                try:
                    parsed = parse_benchmark_output(out)
                except DeviceError as exc:
                    hint = ""
                    if target.delegate == "gpu" and "gpu" in out.lower():
                        hint = " The GPU delegate failed; try --target android@xnnpack."
                    raise DeviceError(f"{exc} (exit {code}).{hint}") from None
                results[i]["runs"].append(parsed)
                results[i]["output_tail"] = out.strip()[-1500:]
    finally:
        for remote in remotes:
            _adb(adb, ["-s", serial, "shell", f"rm -f {remote}"], 60)
    return results


def stats_from_runs(parsed_runs: Sequence[dict[str, Any]]) -> LatencyStats:
    """Pool the ``count=`` summaries of several benchmark_model runs into one.

    Pooled mean and std are exact for the union of the runs; with two or more runs the
    run means act as the blocks of :mod:`effkeras.bench.stats` for the noisy flag.
    """
    usable = [p for p in parsed_runs if p.get("count")]
    if not usable:
        p = parsed_runs[-1]
        return LatencyStats.from_summary(0, p["avg_us"], 0.0, p["avg_us"], p["avg_us"])
    n = sum(p["count"] for p in usable)
    mean = sum(p["count"] * p["avg_us"] for p in usable) / n
    var = sum(p["count"] * (p["std_us"] ** 2 + (p["avg_us"] - mean) ** 2) for p in usable) / n
    base = LatencyStats.from_summary(n, mean, var**0.5, min(p["min_us"] for p in usable),
                                     max(p["max_us"] for p in usable))
    if len(usable) < 2:
        return base
    means = tuple(p["avg_us"] for p in usable)
    drift = (max(means) - min(means)) / mean if mean > 0 else 0.0
    return LatencyStats(
        n=base.n, median_us=None, p5_us=None, p95_us=None, mean_us=base.mean_us,
        std_us=base.std_us, min_us=base.min_us, max_us=base.max_us,
        block_medians_us=means, noisy=bool(base.noisy or drift > NOISY_DRIFT),
    )
