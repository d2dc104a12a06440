"""Instruction counts of a .tflite on the emulated Cortex-M4 (QEMU mps2-an386), whole and per op,
with the library's CMSIS-NN kernels or with TFLM's plain reference kernels.

The device path is the package's own (``effkeras.deploy.arduino_sketch`` ->
``effkeras.deploy.build.build_sketch`` against the real Arduino_TensorFlowLite library ->
``qemu-system-arm -M mps2-an386 -icount shift=0`` driven over its UART by
``effkeras.bench.serial_board``), as ``effkeras bench M.tflite --target qemu`` runs it, with
two additions that live in ``benchmarks/mlperf_firmware/`` and are copied into the
generated sketch folder (nothing in the package changes):

- ``kernels="reference"``: ``efk_reference_kernels.cpp`` defines the ``Register_X()`` of
  the ops whose CMSIS-NN variant the library ships (CONV_2D, DEPTHWISE_CONV_2D,
  FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, ADD, SOFTMAX) with TFLM's reference int8
  kernels, so the linker takes those instead of the archive's CMSIS-NN members; the ELF is
  checked to hold no CMSIS-NN kernel symbol (and, with CMSIS-NN, to hold them);
- ``profile=True``: ``efk_op_profiler.cpp`` is passed to the sketch's ``MicroInterpreter``
  (one edit of the generated .ino) and prints the TIMER0 ticks of every op (25 MHz, i.e.
  40 instructions a tick under ``-icount shift=0``).

Whole inferences are timed on builds without the profiler (the sketch's ``BENCH``, 1000
instructions a microsecond); per-op counts come from the profiled build. With
``cycles_plugin`` (``benchmarks/mlperf_cycles.py``), both runs also load our TCG plugin,
which counts the Cortex-M4 timing events between the timer reads: each timed inference and
each profiled op gets its ``events`` (the cycles they cost: ``effkeras.bench.estimate``). Outputs are
compared with LiteRT's reference kernels: the reference build must match them exactly,
the CMSIS-NN build within 1 LSB.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import mlperf_cycles
import numpy as np

from effkeras.bench.qemu import INSTRUCTIONS_PER_US, QemuBoard, default_inputs, sketch_board
from effkeras.bench.serial_board import BoardClient, run_serial
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.deploy.arduino import arduino_sketch
from effkeras.deploy.build import BuildResult, build_sketch

KERNELS = ("cmsis_nn", "reference")
FIRMWARE = Path(__file__).resolve().parent / "mlperf_firmware"
#: Ops whose CMSIS-NN kernel the library ships in place of the reference one, and which
#: efk_reference_kernels.cpp therefore provides.
REFERENCE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "ADD", "SOFTMAX")
#: Ops with a CMSIS-NN variant that efk_reference_kernels.cpp does not provide.
UNSUPPORTED_REFERENCE = ("MUL", "SVDF")
#: Under -icount shift=0 the 25 MHz TIMER0 ticks every 40 ns = 40 instructions.
INSTRUCTIONS_PER_TICK = 40
#: CMSIS-NN kernel entry points: present in a CMSIS-NN build, absent from a reference one.
CMSIS_SYMBOL = re.compile(r"\barm_(convolve|depthwise_conv|fully_connected|avgpool|max_pool|"
                          r"softmax|elementwise_add|nn_mat_mult)\w*")
PROFILE_LINE = re.compile(r"^efkprof (\d+) (\S+) (\d+)$")


def op_names(model: TFLiteModel) -> list[str]:
    return [op.name for op in model.ops]


def prepare_sketch(model: TFLiteModel, sketch_dir: Path, kernels: str, profile: bool) -> Path:
    """Write the sketch for the emulated board, plus the kernels' and profiler's files."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}. Received: kernels={kernels!r}")
    arduino_sketch(model, sketch_dir, board=sketch_board(), force=True, name=sketch_dir.name)
    for stale in ("efk_reference_kernels.cpp", "efk_reference_ops.h", "efk_op_profiler.cpp",
                  "efk_op_profiler.h"):
        (sketch_dir / stale).unlink(missing_ok=True)
    ops = set(op_names(model))
    if kernels == "reference":
        missing = sorted(ops & set(UNSUPPORTED_REFERENCE))
        if missing:
            raise ValueError(f"no reference kernel here for {missing}: extend "
                             f"benchmarks/mlperf_firmware/efk_reference_kernels.cpp")
        shutil.copy(FIRMWARE / "efk_reference_kernels.cpp", sketch_dir)
        defines = [f"#define EFK_REF_{op} 1" for op in REFERENCE_OPS if op in ops]
        (sketch_dir / "efk_reference_ops.h").write_text(
            "// Written by benchmarks/mlperf_qemu.py: the model's ops that get reference kernels.\n"
            + "\n".join(defines) + "\n", encoding="utf-8")
    if profile:
        for name in ("efk_op_profiler.h", "efk_op_profiler.cpp"):
            shutil.copy(FIRMWARE / name, sketch_dir)
        ino = sketch_dir / f"{sketch_dir.name}.ino"
        text = ino.read_text("utf-8")
        pattern = re.compile(r"(static tflite::MicroInterpreter static_interpreter\([^;]*?"
                             r"kTensorArenaSize)\);")
        if not pattern.search(text):
            raise RuntimeError(f"{ino}: the MicroInterpreter line changed; cannot add the profiler")
        text = pattern.sub(r"\1, nullptr, &efk_op_profiler);", text, count=1)
        text = text.replace('#include "model_settings.h"',
                            '#include "model_settings.h"\n#include "efk_op_profiler.h"', 1)
        ino.write_text(text, encoding="utf-8")
    return sketch_dir


def cmsis_symbols(elf: str) -> list[str]:
    """The CMSIS-NN kernel functions linked into ``elf``."""
    out = subprocess.run(["arm-none-eabi-nm", "-C", elf], capture_output=True, text=True,
                         check=True).stdout
    return sorted({m.group(0) for m in CMSIS_SYMBOL.finditer(out)})


def build(model: TFLiteModel, work: Path, kernels: str, profile: bool,
          tflm_lib: str | None = None, jobs: int | None = None) -> BuildResult:
    """Build the sketch; check that the ELF has (CMSIS-NN) or lacks (reference) CMSIS-NN kernels."""
    name = f"efk_{model.sha256[:8]}_{kernels}{'_prof' if profile else ''}"
    sketch = prepare_sketch(model, work / name, kernels, profile)
    result = build_sketch(sketch, "mps2_an386", tflm_lib, jobs=jobs)
    found = cmsis_symbols(result.elf)
    if kernels == "reference" and found:
        raise RuntimeError(f"the reference build links CMSIS-NN kernels: {found}")
    if kernels == "cmsis_nn" and not found:
        raise RuntimeError("the CMSIS-NN build links no CMSIS-NN kernel")
    return result


def _compare(outputs: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    got = np.stack([o.reshape(-1) for o in outputs]).astype(np.int64)
    ref = np.stack([r.reshape(-1) for r in reference]).astype(np.int64)
    diff = np.abs(got - ref)
    return {"max_abs_diff": int(diff.max()), "within_1lsb": float(np.mean(diff <= 1))}


def _board(elf: str, plugin: str | os.PathLike | None, events: Path | None) -> QemuBoard:
    if plugin is None:
        return QemuBoard(elf)
    assert events is not None
    return mlperf_cycles.CycleQemuBoard(elf, plugin, events)


def run_whole(model: TFLiteModel, elf: str, runs: int, warmup: int, compare: int,
              timeout: float = 120.0, plugin: str | os.PathLike | None = None) -> dict[str, Any]:
    """Median instructions per inference (sketch BENCH) and the outputs against LiteRT; with
    ``plugin``, the median timing events of the timed inferences (``events``)."""
    from effkeras.runtime.litert import LiteRTRunner

    # Every input size is compared: the serial client gives a RUN payload the time its size
    # needs (a 96x96x3 image is 55 KB of hex; see effkeras.bench.serial_board.BoardClient.send).
    x = default_inputs(model, compare)
    events = Path(elf).with_suffix(".events.txt")
    with _board(elf, plugin, events) as qemu:
        out = run_serial(model, qemu.port, runs, warmup, timeout=timeout,
                         handshake_timeout=timeout, inputs=[s.tobytes() for s in x])
    samples = [float(s) * INSTRUCTIONS_PER_US for s in out["samples_us"]]
    row: dict[str, Any] = {"instructions": float(statistics.median(samples)),
                           "instructions_min": min(samples), "instructions_max": max(samples),
                           "runs": len(samples), "arena_used": int(out["info"]["arena_used"]),
                           "fixed_input_argmax": out["argmax"], "expected_argmax": out["expected_argmax"]}
    if compare:
        out_t = model.outputs[0]
        outputs = [np.frombuffer(r["out"], dtype=out_t.numpy_dtype) for r in out["results"]]
        runner = LiteRTRunner(model, kernels="reference")
        reference = [runner.invoke_raw([s])[0] for s in x]
        row.update(_compare(outputs, reference), compared_inputs=len(x))
    if plugin is not None:
        _, intervals, _ = mlperf_cycles.read_events(events)
        matched = mlperf_cycles.match_whole(intervals, samples)
        row["events"] = mlperf_cycles.median_events(matched)
        row["events_intervals"] = len(matched)
    return row


def run_profile(model: TFLiteModel, elf: str, runs: int, timeout: float = 120.0,
                plugin: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Per op: ``{index, op, instructions}`` (median over ``runs`` profiled inferences), and
    with ``plugin`` the op's median timing events (``events``)."""
    n_ops = len(model.ops)
    events_file = Path(elf).with_suffix(".events.txt")
    with _board(elf, plugin, events_file) as qemu, BoardClient(qemu.port, timeout=timeout) as client:
        client.handshake(timeout)
        client.bench(1)  # warm-up
        client.log.clear()
        client.bench(runs)
        events = [m.groups() for m in map(PROFILE_LINE.match, client.log) if m]
    if len(events) != runs * n_ops:
        raise RuntimeError(f"expected {runs * n_ops} profile lines ({runs} runs x {n_ops} ops), "
                           f"got {len(events)}")
    per_op: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for k, name, ticks in events:
        i = int(k) % n_ops
        per_op.setdefault(i, []).append(int(ticks))
        names[i] = name
    op_events: dict[int, list[dict[str, int]]] = {}
    if plugin is not None:
        _, intervals, _ = mlperf_cycles.read_events(events_file)
        matched = mlperf_cycles.match_ops(intervals, [int(t) * INSTRUCTIONS_PER_TICK for _, _, t in events])
        for (k, _, _), ev in zip(events, matched, strict=True):
            op_events.setdefault(int(k) % n_ops, []).append(ev)
    expected = op_names(model)
    rows = []
    for i in range(n_ops):
        if names[i] != expected[i]:
            raise RuntimeError(f"op {i}: the board ran {names[i]}, the model has {expected[i]}")
        rows.append({"index": i, "op": names[i],
                     "instructions": float(statistics.median(per_op[i])) * INSTRUCTIONS_PER_TICK})
        if op_events:
            rows[-1]["events"] = mlperf_cycles.median_events(op_events[i])
    return rows


def measure(tflite: Any, kernels: str, work: str | os.PathLike, *, runs: int = 5, warmup: int = 1,
            profile_runs: int = 3, compare: int = 3, tflm_lib: str | None = None,
            jobs: int | None = None, cycles_plugin: str | os.PathLike | None = None) -> dict[str, Any]:
    """Whole-inference and per-op instruction counts of one model with one kernel set (and
    their timing events with ``cycles_plugin``)."""
    model = read_tflite(tflite)
    work = Path(work)
    plain = build(model, work, kernels, profile=False, tflm_lib=tflm_lib, jobs=jobs)
    row = run_whole(model, plain.elf, runs, warmup, compare, plugin=cycles_plugin)
    row.update(kernels=kernels, text=plain.text, data=plain.data, bss=plain.bss,
               library_version=plain.library_version, tflm_sync=plain.tflm_sync,
               cmsis_symbols=cmsis_symbols(plain.elf),
               # symbols the build's source selection missed (then it links more of the library)
               build_fallback=list(plain.fallback))
    if profile_runs:
        prof = build(model, work, kernels, profile=True, tflm_lib=tflm_lib, jobs=jobs)
        row["ops"] = run_profile(model, prof.elf, profile_runs, plugin=cycles_plugin)
        row["ops_sum"] = float(sum(r["instructions"] for r in row["ops"]))
    return row
