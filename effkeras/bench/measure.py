"""Run a decided target on one or several models and collect :class:`BenchResult` s.

:func:`measure` and :func:`compare` take a target (string or
:class:`~effkeras.bench.targets.Target`), check the settings and every model's flatbuffer
(:func:`~effkeras.convert.read_tflite`) before anything runs, then hand the work to the
runner of the target's kind. Several models are always run interleaved, so machine drift
hits all alike.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

from effkeras.bench.result import BenchResult
from effkeras.bench.stats import LatencyStats
from effkeras.bench.targets import (
    AndroidTarget,
    EstimateTarget,
    LiteRTTarget,
    QemuTarget,
    SerialTarget,
    Target,
    TFLMTarget,
    parse_target,
)
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.errors import BenchConfigError

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
DEFAULT_ROUNDS = 5


def _check_int(name: str, value: Any, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BenchConfigError(
            f"{name} must be an integer >= {minimum} ({hint}). Received: {name}={value!r}"
        )
    return value


def check_settings(target: Target, runs: Any, warmup: Any, threads: Any, rounds: Any) -> None:
    """Raise BenchConfigError for settings that cannot work on this target."""
    _check_int("runs", runs, 1, "the number of timed inferences")
    _check_int("warmup", warmup, 0, "untimed inferences first; 0 for none")
    _check_int("threads", threads, 1, "interpreter threads")
    _check_int("rounds", rounds, 1, "interleaved blocks per model")
    if threads > 1 and not target.threaded:
        raise BenchConfigError(
            f"Target {target.spec} runs single-threaded; threads applies to litert and android "
            f"only. Received: threads={threads}"
        )


def _load(model: Any) -> TFLiteModel:
    return model if isinstance(model, TFLiteModel) else read_tflite(model)


def _noisy_note(stats: LatencyStats) -> list[str]:
    if not stats.noisy:
        return []
    drift = stats.drift
    how = f"block medians differ by {drift:.0%}" if drift is not None else "std above 10%"
    return [f"noisy: {how} (min-max spread {stats.spread:.0%}); repeat before trusting "
            f"differences under that."]


def _base(model: TFLiteModel, target: Target, runs: int, warmup: int, threads: int) -> BenchResult:
    return BenchResult(model=model.source, sha256=model.sha256, size_bytes=model.size_bytes,
                       target=target.spec, kind=target.kind, threads=threads, runs=runs,
                       warmup=warmup)


def _model_files(models: Sequence[TFLiteModel], tmp: str) -> list[str]:
    """A file for each model: its own path when it came from one, else a temp copy."""
    paths = []
    for i, m in enumerate(models):
        if os.path.isfile(m.source):
            paths.append(m.source)
        else:
            path = os.path.join(tmp, f"model_{i}.tflite")
            with open(path, "wb") as f:
                f.write(m.data)
            paths.append(path)
    return paths


def _run_host(models, target, runs, warmup, threads, rounds) -> list[BenchResult]:
    from effkeras.bench.host import time_interleaved

    kernels = target.kernels if isinstance(target, LiteRTTarget) else "builtin"
    with tempfile.TemporaryDirectory(prefix="effkeras_bench_") as tmp:
        timed = time_interleaved(_model_files(models, tmp), target.kind, kernels, threads,
                                 runs, warmup, rounds)
    results = []
    for m, t in zip(models, timed, strict=True):
        r = _base(m, target, runs, warmup, threads)
        r.stats = LatencyStats.from_samples(t["samples_us"], blocks=max(rounds, 5))
        r.samples_us = t["samples_us"]
        r.first_inference_us = t["first_us"]
        r.init_us = t["init_us"]
        r.peak_rss_bytes = t["peak_rss_bytes"]
        r.model_rss_bytes = t["model_rss_bytes"]
        r.arena_bytes = t["arena_bytes"]
        r.details = {"package": t["package"], "rounds": rounds,
                     "timed": "interpreter.invoke() in a child process"}
        r.notes += _noisy_note(r.stats)
        results.append(r)
    return results


def _run_android(models, target, runs, warmup, threads, rounds) -> list[BenchResult]:
    from effkeras.bench.android import run_benchmark_models, stats_from_runs

    with tempfile.TemporaryDirectory(prefix="effkeras_bench_") as tmp:
        files = _model_files(models, tmp)
        raw = run_benchmark_models([(p, m.sha256) for p, m in zip(files, models, strict=True)],
                                   target, runs, warmup, threads,
                                   rounds=rounds if len(models) > 1 else 1)
    results = []
    for m, out in zip(models, raw, strict=True):
        r = _base(m, target, runs, warmup, threads)
        first = out["runs"][0]
        r.stats = stats_from_runs(out["runs"])
        r.first_inference_us = first.get("first_us")
        r.init_us = first.get("init_us")
        mem = [p["peak_memory_mb"] for p in out["runs"] if p.get("peak_memory_mb") is not None]
        r.peak_rss_bytes = int(max(mem) * 1024 * 1024) if mem else None
        r.details = {"serial": out["serial"], "flags": out["flags"],
                     "format": first["format"], "output_tail": out.get("output_tail", "")}
        r.notes.append("benchmark_model reports mean/std/min/max only: latency is the mean.")
        if r.stats.n and r.stats.n != runs:
            r.notes.append(f"benchmark_model ran {r.stats.n} inferences, {runs} were asked.")
        r.notes += _noisy_note(r.stats)
        results.append(r)
    return results


def _run_serial(models, target, runs, warmup, threads, rounds, timeout) -> list[BenchResult]:
    from effkeras.bench.serial_board import run_serial

    if len(models) != 1:
        raise BenchConfigError(
            f"A board holds one model, so {target.spec} cannot compare {len(models)} models; "
            f"flash each sketch and run `effkeras bench MODEL --target {target.spec}` in turn."
        )
    m = models[0]
    out = run_serial(m, target.port, runs, warmup, timeout=timeout)
    r = _base(m, target, runs, warmup, threads)
    r.stats = LatencyStats.from_samples(out["samples_us"])
    r.samples_us = out["samples_us"]
    info = out["info"]
    r.arena_bytes = info["arena_used"]
    r.details = {"board": info["board"], "name": info["name"], "arena_size": info["arena_size"],
                 "fnv": f"{info['fnv']:08x}", "argmax": out["argmax"],
                 "expected_argmax": out["expected_argmax"], "log": out["log"]}
    if out["expected_argmax"] is not None and out["argmax"] != [out["expected_argmax"]]:
        r.notes.append(f"argmax on the board {out['argmax']} differs from the host's "
                       f"{out['expected_argmax']} for the sketch's fixed input.")
    r.notes += _noisy_note(r.stats)
    return [r]


def _run_qemu(models, target: QemuTarget, runs, warmup, threads, timeout, options
               ) -> list[BenchResult]:
    from effkeras.bench.qemu import run_qemu, save_outputs

    if len(models) != 1:
        raise BenchConfigError(
            f"{target.spec} builds and runs one sketch at a time; run `effkeras bench MODEL "
            f"--target {target.spec}` for each of the {len(models)} models."
        )
    m = models[0]
    run = run_qemu(m, target.board, runs, warmup, inputs=options.get("inputs"),
                   compare=options.get("compare", 10), tflm_lib=options.get("tflm_lib"),
                   timeout=max(timeout, 30.0))
    if options.get("save_outputs"):
        save_outputs(run, options["save_outputs"])
    r = _base(m, target, runs, warmup, threads)
    r.stats = LatencyStats.from_samples(run.samples_us)
    r.samples_us = run.samples_us
    r.arena_bytes = run.arena_bytes
    r.details = run.summary()
    r.notes.append(
        f"emulated: {run.instructions:,.0f} instructions per inference (median; mean "
        f"{run.instructions_mean:,.0f}); latency is virtual time under -icount shift=0 (one "
        f"instruction a nanosecond), not a real chip's. Arena {run.arena_bytes:,} B measured "
        f"on the 32-bit target ({run.host_arena_bytes:,} B on this 64-bit host). ELF text "
        f"{run.build.text:,} / data {run.build.data:,} / bss {run.build.bss:,} B."
    )
    if run.within_1lsb is not None:
        r.notes.append(
            f"outputs vs LiteRT reference kernels on {len(run.outputs)} inputs: "
            f"{run.within_1lsb:.1%} of elements within 1 LSB (max difference "
            f"{run.max_abs_diff:g}), argmax agreement {run.argmax_agreement:.0%}."
        )
    r.notes += [f"{p}." for p in run.library_problems]
    if options.get("texts") is not None:
        from effkeras.bench.qemu_text import run_qemu_text

        text_run = run_qemu_text(m, options["texts"], tflm_lib=options.get("tflm_lib"),
                                 timeout=max(timeout, 30.0))
        r.details["text_sketch"] = text_run.summary()
        r.notes.append(
            f"text sketch on the emulated board: {len(text_run.lines)} texts, C projector "
            f"input equal to the host's on {text_run.fnv_agreement:.0%}, class equal to "
            f"LiteRT reference on {text_run.argmax_agreement:.0%}; median "
            f"{text_run.project_instructions:,.0f} instructions to featurize, "
            f"{text_run.invoke_instructions:,.0f} to invoke."
        )
    return [r]


def _run_estimate(models, target: EstimateTarget, runs, warmup, threads) -> list[BenchResult]:
    from effkeras.bench.estimate import estimate

    results = []
    for m in models:
        e = estimate(m, target.board, target.kernels)
        r = _base(m, target, 0, 0, threads)
        r.estimate_us = e.latency_us
        r.details = e.to_dict()
        r.notes += ["estimate from MACs and cycles per MAC, not a measurement", *e.notes]
        results.append(r)
    return results


def compare(
    models: Sequence[Any],
    target: str | Target = "litert",
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    threads: int = 1,
    *,
    rounds: int = DEFAULT_ROUNDS,
    timeout: float = 10.0,
    qemu_options: dict[str, Any] | None = None,
) -> list[BenchResult]:
    """Benchmark several models on one target, interleaved; results in the given order.

    Args:
        models: .tflite bytes, paths or :class:`~effkeras.convert.TFLiteModel` s.
        target: see :func:`~effkeras.bench.targets.parse_target`.
        runs: timed inferences per model.
        warmup: untimed inferences per model first.
        threads: interpreter threads (litert and android only).
        rounds: host and android: blocks per model, run round-robin across the models.
        timeout: serial and qemu: seconds one expected line may take.
        qemu_options: qemu only: ``texts`` (lines for a projection text model's own
            sketch, :func:`~effkeras.bench.qemu_text.run_qemu_text`), ``inputs`` (array or
            .npy path of comparison inputs),
            ``compare`` (random inputs when none given), ``tflm_lib`` (library folder),
            ``save_outputs`` (.npy path for the board's outputs).

    Raises:
        UnknownTargetError, UnknownBoardError, BenchConfigError: bad settings.
        InvalidModelError: a model is not a readable .tflite (checked before anything runs)
            or crashed its interpreter (in a child process; this one survives).
        DeviceError: adb/serial problems.
    """
    t = parse_target(target)
    check_settings(t, runs, warmup, threads, rounds)
    if not models:
        raise BenchConfigError("No models to benchmark. Received: models=[]")
    loaded = [_load(m) for m in models]
    if isinstance(t, LiteRTTarget | TFLMTarget):
        return _run_host(loaded, t, runs, warmup, threads, rounds)
    if isinstance(t, AndroidTarget):
        return _run_android(loaded, t, runs, warmup, threads, rounds)
    if isinstance(t, SerialTarget):
        return _run_serial(loaded, t, runs, warmup, threads, rounds, timeout)
    if isinstance(t, QemuTarget):
        return _run_qemu(loaded, t, runs, warmup, threads, timeout, qemu_options or {})
    if isinstance(t, EstimateTarget):
        return _run_estimate(loaded, t, runs, warmup, threads)
    raise BenchConfigError(f"No runner for target {t!r}.")  # pragma: no cover


def measure(
    tflite: Any,
    target: str | Target = "litert",
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    threads: int = 1,
    *,
    rounds: int = DEFAULT_ROUNDS,
    timeout: float = 10.0,
) -> BenchResult:
    """Benchmark one model on one target.

    Args:
        tflite: .tflite bytes, a path or a :class:`~effkeras.convert.TFLiteModel`.
        target: ``litert[:xnnpack|builtin|reference]``, ``tflm``,
            ``android[:SERIAL][@xnnpack|cpu|gpu]``, ``serial:PORT`` or
            ``estimate:BOARD[:cmsis_nn|reference]``.
        runs, warmup, threads, rounds, timeout: see :func:`compare`.

    Returns:
        A :class:`BenchResult`: ``.latency_ms``, ``.stats`` (median, p5, p95, mean, std),
        ``.first_inference_us``, ``.peak_rss_bytes``, ``.arena_bytes``, ``.noisy``,
        ``.to_dict()``.
    """
    return compare([tflite], target, runs, warmup, threads, rounds=rounds, timeout=timeout)[0]
