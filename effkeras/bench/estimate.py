"""Estimate a model's latency on a board from its op shapes and a per-op instruction model.

Nothing runs: the estimate is arithmetic on the flatbuffer, for a board you do not have
at hand. It is a first-order figure, not a measurement: measure with ``--target qemu``
(instructions) or ``serial:PORT`` (the real board) when you can.

The model
---------
::

    instructions = sum over ops of  work(op) * INSTRUCTIONS_PER_UNIT[kernels][class(op)]
    cycles       = instructions * CYCLES_PER_INSTRUCTION * core_scale(board.core)
    latency      = cycles / board.clock_mhz                                  (microseconds)

- Op classes and their unit of work: ``conv`` (CONV_2D with a kernel larger than 1x1,
  TRANSPOSE_CONV, CONV_3D), ``pointwise`` (1x1 CONV_2D), ``depthwise`` (DEPTHWISE_CONV_2D)
  and ``fully_connected`` (FULLY_CONNECTED, BATCH_MATMUL), per MAC
  (:func:`effkeras.profiling.op_macs`); ``elementwise`` (ADD, SUB, MUL...), ``pooling``
  (AVERAGE_POOL_2D, MAX_POOL_2D, MEAN...), ``softmax`` and ``other`` (everything else:
  reshape, quantize...), per element of the op's first input. A class the fit never saw
  (``other``: the MLPerf models have no such op) uses the ``elementwise`` constant.
  Softmax is fitted on outputs of 2 to 12 elements, so its constant is mostly the op's
  fixed cost: it overestimates wide softmaxes.
- The interpreter's own work between ops is not modelled: on the emulated board it is
  under 0.01% of an inference for these models (whole-inference count minus the sum of
  the per-op counts).

Where the constants come from
-----------------------------
**Instructions per unit** (:data:`INSTRUCTIONS_PER_UNIT`, one table per kernel set) are
refitted (:func:`fit_instructions`: total instructions of a class over its total work, so
the fit is exact on the sum of the four models) on instruction counts measured on an
emulated Cortex-M4F: ``benchmarks/mlperf_tiny.py`` (suite ``mlperf``,
``benchmarks/results/mlperf.json``) builds the four MLPerf Tiny v0.5 models (DS-CNN KWS,
MobileNetV1-0.25 VWW, ResNet-8 IC, the FC autoencoder AD; int8, random weights) into the
sketch ``effkeras sketch`` writes, compiles it with arm-none-eabi-g++ -Os against the
Arduino_TensorFlowLite library 2.4.0-ALPHA (TFLM synced 2023-02-27) and runs it in
``qemu-system-arm -M mps2-an386 -icount shift=0``, timing every op with a profiler passed
to the MicroInterpreter (TIMER0, 40 instructions a tick). :data:`MLPERF_TINY_QEMU` keeps
those counts per model and class; ``tests/test_bench_estimate.py`` refits the constants
from them and checks the estimate of each model against its measured count.

- ``cmsis_nn``: the library as shipped (CMSIS-NN kernels for conv, depthwise, fully
  connected, pooling, add, softmax).
- ``reference``: TFLM's plain reference kernels for those ops (the library ships only the
  CMSIS-NN variants; the benchmark links the reference int8 paths from the same TFLM sync,
  ``benchmarks/mlperf_firmware/efk_reference_kernels.cpp``); their outputs equal LiteRT's
  reference kernels bit for bit.

**Cycles per instruction** (:data:`CYCLES_PER_INSTRUCTION` = 1.35, stated range
:data:`CPI_RANGE` 1.15-1.6) is an assumption, not a measurement: QEMU counts instructions,
not cycles. It comes from the Cortex-M4 Technical Reference Manual's instruction timings
(Arm DDI 0439, "Processor instruction timings": 1 cycle for data processing, multiplies and
the DSP MACs such as SMLAD; 2 for a load, N+1 for N back-to-back loads and stores; 1+P for
a taken branch, P = 1..3 pipeline refill) applied by hand to the hottest loop of these
builds, the inner loop of CMSIS-NN's ``arm_nn_mat_mult_kernel_s8_s16`` as -Os compiles it
(46 instructions for 16 MACs, 8 of them SMLAD, many stack spills: about 57 cycles, CPI
1.24 from zero-wait-state memory), plus about 0.1 for the weights it streams from flash:
the MLPerf board (STM32L4R5 at 120 MHz) runs its flash with 5 wait states (RM0432, as we
read it), which the ART accelerator's prefetch and instruction cache hide for code in
loops but its small data cache only partly for weight loads (two 4-byte weight loads per
loop iteration). The range runs from every load pipelined and no flash stall (1.15) to a
stall on every weight load and 4-cycle branches (1.6). The reference kernels' loops
(byte loads, MLA, index arithmetic) were not timed separately; the same CPI is used.
Every latency scales with the CPI: the range is -15%/+19% on every figure, on top of the
fit's own error.

**Other cores** (:func:`core_scale`): cycles scaled by the ratio of CoreMark/MHz of a
Cortex-M4 (3.42) to that of the core (Arm's published figures: Cortex-M0+ 2.46, Cortex-M4
3.42, Cortex-M7 5.01). Only the Cortex-M4 counts are measured; the Xtensa LX7 of the
ESP32-S3 has no such figure here and is treated like a Cortex-M4 (flagged uncalibrated).

**Float models**: float ops are estimated with the int8 reference-kernel constants (TFLM's
float kernels are reference C on every core here); flagged in the notes.

How good it is
--------------
Against its own measurements the estimate is within :data:`QEMU_FIT_ERROR` of each model's
QEMU count (8.5% CMSIS-NN, 4% reference; a fit residual: the constants come from those
four models). Against the published MLPerf Tiny v0.5 TFLM reference latencies
(:data:`MLPERF_TINY_REFERENCE`: Nucleo-L4R5ZI, TFLM v2.3.1 + CMSIS-NN, 2021), an
independent comparison, the CMSIS-NN estimate at 120 MHz is low: KWS -36%, VWW -47%, IC
-27%, AD -5% (:func:`mlperf_errors`). The goal of 25% is met on AD only. The published
figures would need a CPI of 1.4 (AD) to 2.3 (VWW) on this build's instruction counts: the
2021 build ran slower code (or stalled more) than this 2023 library does, so the estimate
is a 2023-TFLM-on-a-Cortex-M4 figure, not a predictor of the 2021 reference. Our builds
reach 0.18-0.23 MACs a cycle with CMSIS-NN (0.24-0.31 MACs an instruction) and 0.015-0.05
with the reference kernels; published: TFLM v0.5 0.10-0.22, X-CUBE-AI v1.2 0.42-0.70.
BENCHMARKS.md ("MLPerf Tiny on the emulated Cortex-M4") has every figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from effkeras.boards import Board, get_board
from effkeras.convert.flatbuffer import OpInfo, TFLiteModel, read_tflite
from effkeras.profiling import op_macs

OP_CLASSES: dict[str, str] = {
    "CONV_2D": "conv",  # "pointwise" when the kernel is 1x1 (see op_class)
    "TRANSPOSE_CONV": "conv",
    "CONV_3D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "fully_connected",
    "BATCH_MATMUL": "fully_connected",
}
#: Ops without MACs and their class (one unit per element of the first input).
NON_MAC_CLASSES: dict[str, str] = {
    **dict.fromkeys(("ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"), "elementwise"),
    **dict.fromkeys(("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "MEAN", "SUM"), "pooling"),
    "SOFTMAX": "softmax",
}
MAC_CLASSES = ("conv", "pointwise", "depthwise", "fully_connected")
CLASSES = (*MAC_CLASSES, "elementwise", "pooling", "softmax", "other")
#: The class whose constant stands in for a class the fit never saw.
FALLBACK_CLASS = "elementwise"
KERNELS = ("cmsis_nn", "reference")

#: MLPerf Tiny v0.5 closed-division reference latencies, ms per inference: Nucleo-L4R5ZI
#: (STM32L4R5, Cortex-M4F at 120 MHz), TFLM v2.3.1 built with ``TAGS=cmsis-nn``
#: (github.com/mlcommons/tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/*/
#: performance/results.txt: one window's runtime divided by its 100 or 1000 inferences).
MLPERF_TINY_REFERENCE: dict[str, float] = {
    "kws_ds_cnn": 18.192 / 100 * 1000,
    "vww_mobilenet_v1_025": 60.054 / 100 * 1000,
    "ic_resnet8": 70.426 / 100 * 1000,
    "ad_autoencoder": 10.052 / 1000 * 1000,
}
#: The best published Cortex-M4 results (ST X-CUBE-AI, MLPerf Tiny v1.2, same board), ms.
MLPERF_TINY_BEST_M4: dict[str, float] = {
    "kws_ds_cnn": 43.2,
    "vww_mobilenet_v1_025": 88.9,
    "ic_resnet8": 165.1,
    "ad_autoencoder": 5.26,
}
MLPERF_TINY_CLOCK_MHZ = 120.0

#: Work by class of int8 models with the shapes of the MLPerf Tiny models
#: (:func:`work_by_class` on ``benchmarks/mlperf_models.py``'s files).
MLPERF_TINY_WORK: dict[str, dict[str, int]] = {
    "kws_ds_cnn": {
        "conv": 320_000, "pointwise": 2_048_000, "depthwise": 288_000, "fully_connected": 768,
        "elementwise": 0, "pooling": 8_000, "softmax": 12, "other": 0,
    },
    "vww_mobilenet_v1_025": {
        "conv": 497_664, "pointwise": 6_193_152, "depthwise": 798_336, "fully_connected": 512,
        "elementwise": 0, "pooling": 2_304, "softmax": 2, "other": 0,
    },
    "ic_resnet8": {
        "conv": 12_238_848, "pointwise": 262_144, "depthwise": 0, "fully_connected": 640,
        "elementwise": 28_672, "pooling": 4_096, "softmax": 10, "other": 0,
    },
    "ad_autoencoder": {
        "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 264_192, "elementwise": 0,
        "pooling": 0, "softmax": 0, "other": 0,
    },
}

#: Instructions per inference measured on QEMU mps2-an386 (benchmarks/mlperf_tiny.py, see
#: the module docstring): kernels -> model -> {class: instructions of that class's ops,
#: "total": the whole-inference count (the sketch's BENCH, median)}.
MLPERF_TINY_QEMU: dict[str, dict[str, dict[str, float]]] = {
    "cmsis_nn": {
        "kws_ds_cnn": {
            "conv": 1_538_440, "pointwise": 5_248_960, "depthwise": 3_011_360,
            "fully_connected": 3_200, "elementwise": 0, "pooling": 108_040, "softmax": 5_840,
            "other": 0, "total": 9_916_000,
        },
        "vww_mobilenet_v1_025": {
            "conv": 4_013_840, "pointwise": 18_330_840, "depthwise": 8_661_400,
            "fully_connected": 2_000, "elementwise": 0, "pooling": 33_920, "softmax": 1_240,
            "other": 0, "total": 31_043_000,
        },
        "ic_resnet8": {
            "conv": 39_554_040, "pointwise": 1_384_760, "depthwise": 0, "fully_connected": 2_760,
            "elementwise": 2_346_400, "pooling": 55_760, "softmax": 4_800, "other": 0,
            "total": 43_349_000,
        },
        "ad_autoencoder": {
            "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 844_560,
            "elementwise": 0, "pooling": 0, "softmax": 0, "other": 0, "total": 845_000,
        },
    },
    "reference": {
        "kws_ds_cnn": {
            "conv": 20_944_440, "pointwise": 94_387_920, "depthwise": 19_228_560,
            "fully_connected": 12_760, "elementwise": 0, "pooling": 206_600, "softmax": 14_360,
            "other": 0, "total": 134_795_000,
        },
        "vww_mobilenet_v1_025": {
            "conv": 28_098_520, "pointwise": 289_178_960, "depthwise": 55_170_520,
            "fully_connected": 8_240, "elementwise": 0, "pooling": 76_320, "softmax": 2_800,
            "other": 0, "total": 372_536_000,
        },
        "ic_resnet8": {
            "conv": 523_399_360, "pointwise": 13_178_360, "depthwise": 0,
            "fully_connected": 10_680, "elementwise": 4_106_440, "pooling": 102_200,
            "softmax": 12_040, "other": 0, "total": 540_809_000,
        },
        "ad_autoencoder": {
            "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 3_797_920,
            "elementwise": 0, "pooling": 0, "softmax": 0, "other": 0, "total": 3_798_000,
        },
    },
}

#: Instructions per unit of work (fitted by :func:`fit_instructions` on the counts above).
INSTRUCTIONS_PER_UNIT: dict[str, dict[str, float]] = {
    "cmsis_nn": {
        "conv": 3.4547, "pointwise": 2.9359, "depthwise": 10.7451, "fully_connected": 3.2036,
        "elementwise": 81.8359, "pooling": 13.7306, "softmax": 495.0,
    },
    "reference": {
        "conv": 43.8434, "pointwise": 46.6578, "depthwise": 68.4863, "fully_connected": 14.3909,
        "elementwise": 143.2213, "pooling": 26.7444, "softmax": 1216.6667,
    },
}

#: The largest |estimate / QEMU count - 1| over the four models, per kernel set (rounded
#: up); tests/test_bench_estimate.py checks it.
QEMU_FIT_ERROR: dict[str, float] = {"cmsis_nn": 0.085, "reference": 0.04}

#: Cycles per instruction on a Cortex-M4 (an assumption; see the module docstring).
CYCLES_PER_INSTRUCTION = 1.35
CPI_RANGE = (1.15, 1.6)

#: Cycles per unit of work on a Cortex-M4 (instructions per unit x CPI).
CYCLES_PER_MAC: dict[str, dict[str, float]] = {
    k: {c: v * CYCLES_PER_INSTRUCTION for c, v in table.items()}
    for k, table in INSTRUCTIONS_PER_UNIT.items()
}

#: CoreMark/MHz (Arm's published figures) and whether the scale is calibrated.
COREMARK_PER_MHZ: dict[str, float] = {"Cortex-M0+": 2.46, "Cortex-M4": 3.42, "Cortex-M7": 5.01}


def core_scale(core: str) -> tuple[float, bool]:
    """(cycles multiplier relative to a Cortex-M4, calibrated?) for a core name."""
    key = core.replace("F", "") if core.startswith("Cortex-M") else core
    if key == "Cortex-M4":
        return 1.0, True
    if key in COREMARK_PER_MHZ:
        return COREMARK_PER_MHZ["Cortex-M4"] / COREMARK_PER_MHZ[key], False
    return 1.0, False


def op_class(model: TFLiteModel, op: OpInfo) -> str:
    """The estimate's class of one op (see the module docstring)."""
    cls = OP_CLASSES.get(op.name) or NON_MAC_CLASSES.get(op.name, "other")
    if op.name == "CONV_2D" and len(op.inputs) > 1 and op.inputs[1] >= 0:
        w = model.tensors[op.inputs[1]].shape  # (out_c, k_h, k_w, in_c)
        if len(w) == 4 and w[1] == 1 and w[2] == 1:
            return "pointwise"
    return cls


def op_work(model: TFLiteModel, op: OpInfo) -> int:
    """Units of work of one op: MACs, or elements of the first input for ops without MACs."""
    if op_class(model, op) in MAC_CLASSES:
        return int(op_macs(model, op))
    if not op.inputs or op.inputs[0] < 0:
        return 0
    return int(np.prod(model.tensors[op.inputs[0]].shape, dtype=np.int64))


def work_by_class(model: Any) -> dict[str, int]:
    """Units of work of a .tflite per class (MACs; input elements for ops without MACs)."""
    tm = model if isinstance(model, TFLiteModel) else read_tflite(model)
    out = dict.fromkeys(CLASSES, 0)
    for op in tm.ops:
        out[op_class(tm, op)] += op_work(tm, op)
    return out


def macs_by_class(model: Any) -> dict[str, int]:
    """MACs of a .tflite per MAC class (conv, pointwise, depthwise, fully_connected)."""
    work = work_by_class(model)
    return {c: work[c] for c in MAC_CLASSES}


@dataclass
class Estimate:
    """A latency estimate and how it was made.

    Attributes:
        latency_us: estimated microseconds per inference.
        cycles: estimated CPU cycles.
        instructions: estimated Cortex-M4 instructions (before the CPI and core scaling).
        macs: total MACs.
        board, core, clock_mhz, kernels: what was assumed.
        cycles_per_mac: cycles per unit of work by class (instructions per unit x CPI).
        cycles_per_instruction: the CPI assumed.
        core_scale: multiplier for the core relative to a Cortex-M4.
        calibrated: False when the core's scale is not calibrated (not a Cortex-M4).
        layers: per op: ``{index, op, class, work, macs, instructions, cycles, us}``.
        notes: caveats.
    """

    latency_us: float
    cycles: float
    instructions: float
    macs: int
    board: str
    core: str
    clock_mhz: float
    kernels: str
    cycles_per_mac: dict[str, float]
    cycles_per_instruction: float
    core_scale: float
    calibrated: bool
    layers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def estimate_instructions(model: Any, kernels: str = "cmsis_nn",
                          table: Mapping[str, float] | None = None) -> float:
    """Estimated Cortex-M4 instructions per inference (the model's first line)."""
    tm = model if isinstance(model, TFLiteModel) else read_tflite(model)
    per = INSTRUCTIONS_PER_UNIT[kernels] if table is None else table
    return float(sum(op_work(tm, op) * _per_unit(per, op_class(tm, op)) for op in tm.ops))


def _per_unit(table: Mapping[str, float], cls: str) -> float:
    return table[cls] if cls in table else table.get(FALLBACK_CLASS, 0.0)


def estimate(model: Any, board: str | Board, kernels: str | None = None) -> Estimate:
    """Estimate the latency of a .tflite on a board (see the module docstring).

    Args:
        model: .tflite bytes, a path or a :class:`~effkeras.convert.TFLiteModel`.
        board: a board name or :class:`~effkeras.boards.Board`.
        kernels: ``"cmsis_nn"`` or ``"reference"``; default: CMSIS-NN where the board has it.
    """
    tm = model if isinstance(model, TFLiteModel) else read_tflite(model)
    b = get_board(board)
    kernels = kernels or ("cmsis_nn" if b.cmsis_nn else "reference")
    if kernels not in INSTRUCTIONS_PER_UNIT:
        raise ValueError(f"kernels must be one of {list(INSTRUCTIONS_PER_UNIT)}. "
                         f"Received: {kernels!r}")
    scale, calibrated = core_scale(b.core)
    notes = [f"instructions per op from QEMU counts of the MLPerf Tiny models; "
             f"CPI {CYCLES_PER_INSTRUCTION} assumed (range {CPI_RANGE[0]}-{CPI_RANGE[1]})."]
    if not calibrated:
        notes.append(f"{b.core}: cycles scaled from the Cortex-M4 counts "
                     f"(x{scale:.2f}); not calibrated on this core.")
    float_ops = {op.index for op in tm.float_ops()}
    if float_ops:
        notes.append(f"{len(float_ops)} float op(s) estimated with the int8 reference constants.")
    layers = []
    total_instr = 0.0
    for op in tm.ops:
        cls = op_class(tm, op)
        work = op_work(tm, op)
        table = INSTRUCTIONS_PER_UNIT["reference" if op.index in float_ops else kernels]
        instr = work * _per_unit(table, cls)
        cycles = instr * CYCLES_PER_INSTRUCTION * scale
        total_instr += instr
        layers.append({"index": op.index, "op": op.name, "class": cls, "work": work,
                       "macs": work if cls in MAC_CLASSES else 0, "instructions": instr,
                       "cycles": cycles, "us": cycles / b.clock_mhz})
    cycles = total_instr * CYCLES_PER_INSTRUCTION * scale
    return Estimate(
        latency_us=cycles / b.clock_mhz,
        cycles=cycles,
        instructions=total_instr,
        macs=int(sum(r["macs"] for r in layers)),
        board=b.name,
        core=b.core,
        clock_mhz=float(b.clock_mhz),
        kernels=kernels,
        cycles_per_mac=dict(CYCLES_PER_MAC[kernels]),
        cycles_per_instruction=CYCLES_PER_INSTRUCTION,
        core_scale=scale,
        calibrated=calibrated,
        layers=layers,
        notes=notes,
    )


def fit_instructions(work: Mapping[str, Mapping[str, int]],
                     counts: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Instructions per unit of work per class: the class's instructions over its work,
    summed over the models (exact on the sum of the models, per class).

    Args:
        work: model name -> {class: units of work} (:func:`work_by_class`).
        counts: model name -> {class: measured instructions of that class's ops}.

    Returns:
        {class: instructions per unit}; classes no model exercises are left out.
    """
    names = [n for n in counts if n in work]
    if not names:
        raise ValueError(f"No model has both work and counts. Received: {list(counts)}")
    out = {}
    for c in CLASSES:
        units = sum(work[n].get(c, 0) for n in names)
        if units:
            out[c] = float(sum(counts[n].get(c, 0.0) for n in names) / units)
    return out


def calibrate(
    macs: Mapping[str, Mapping[str, int]],
    measured_ms: Mapping[str, float],
    clock_mhz: float = MLPERF_TINY_CLOCK_MHZ,
) -> dict[str, float]:
    """Fit cycles per unit per class to measured whole-model latencies (least squares on
    relative error): for boards where only end-to-end times are known.

    Args:
        macs: model name -> {class: units of work}.
        measured_ms: model name -> measured milliseconds per inference.
        clock_mhz: the clock of the board that measured them.

    Returns:
        {class: cycles per unit}; classes no model exercises are left out.
    """
    names = [n for n in measured_ms if n in macs]
    if not names:
        raise ValueError(f"No model has both MACs and a measurement. Received: {list(macs)}")
    used = [c for c in CLASSES if any(macs[n].get(c, 0) for n in names)]
    a = np.array(
        [[macs[n].get(c, 0) / (measured_ms[n] * 1e3 * clock_mhz) for c in used] for n in names]
    )
    x, *_ = np.linalg.lstsq(a, np.ones(len(names)), rcond=None)
    return {c: float(v) for c, v in zip(used, x, strict=True)}


def mlperf_errors(
    work: Mapping[str, Mapping[str, int]] | None = None,
    kernels: str = "cmsis_nn",
    cpi: float = CYCLES_PER_INSTRUCTION,
) -> list[dict[str, Any]]:
    """The estimate at 120 MHz against the published MLPerf Tiny latencies, one row per model.

    Rows: ``{model, macs, instructions, estimated_ms, measured_ms, error, best_m4_ms,
    macs_per_cycle}``; ``measured_ms`` is the v0.5 TFLM reference, ``error`` relative to it.
    """
    work = work or MLPERF_TINY_WORK
    per = INSTRUCTIONS_PER_UNIT[kernels]
    rows = []
    for name, ms in MLPERF_TINY_REFERENCE.items():
        if name not in work:
            continue
        instr = sum(work[name].get(c, 0) * _per_unit(per, c) for c in CLASSES)
        est = instr * cpi / MLPERF_TINY_CLOCK_MHZ / 1e3
        macs = int(sum(work[name].get(c, 0) for c in MAC_CLASSES))
        rows.append({"model": name, "macs": macs, "instructions": instr, "estimated_ms": est,
                     "measured_ms": ms, "error": (est - ms) / ms,
                     "best_m4_ms": MLPERF_TINY_BEST_M4[name],
                     "macs_per_cycle": macs / (instr * cpi)})
    return rows


def format_errors(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`mlperf_errors` rows as a small text table."""
    lines = [f"{'model':22s} {'MACs':>11s} {'estimate ms':>12s} {'TFLM v0.5 ms':>13s} "
             f"{'error':>7s} {'best M4 ms':>11s}"]
    for r in rows:
        lines.append(f"{r['model']:22s} {r['macs']:>11,d} {r['estimated_ms']:>12.2f} "
                     f"{r['measured_ms']:>13.2f} {r['error']:>+7.1%} {r['best_m4_ms']:>11.2f}")
    return "\n".join(lines)
