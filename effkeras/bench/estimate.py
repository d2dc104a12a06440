"""Estimate a model's latency on a board from its MACs and a cycles-per-MAC model.

Nothing runs: the estimate is arithmetic on the flatbuffer, for a board you do not have
at hand. It is a first-order figure (think +-30%), not a measurement: measure with the
``serial:PORT`` target when the board is on the desk.

The model
---------
::

    cycles  = sum over MAC ops of  MACs(op) * CYCLES_PER_MAC[kernels][op class]
    latency = cycles * CORE_SCALE[board.core] / board.clock_mhz     (microseconds)

- MACs per op come from :func:`effkeras.profiling.op_macs` (shapes of the converted graph).
- Op classes: ``conv`` (CONV_2D, TRANSPOSE_CONV, CONV_3D), ``depthwise``
  (DEPTHWISE_CONV_2D) and ``fully_connected`` (FULLY_CONNECTED, BATCH_MATMUL). Ops
  without MACs (pooling, add, softmax, reshape, quantize) get no term of their own: their
  cycles are absorbed in the fitted constants, which is fine for conv nets and wrong for
  models dominated by elementwise work.

Where the constants come from
-----------------------------
**CMSIS-NN on a Cortex-M4** (:data:`CYCLES_PER_MAC` ``["cmsis_nn"]``): fitted by least
squares (on relative error) to the MLPerf Tiny v0.5 closed-division *reference*
latencies (:data:`MLPERF_TINY_REFERENCE`), measured on an ST Nucleo-L4R5ZI (STM32L4R5,
Cortex-M4F at 120 MHz) running TFLM v2.3.1 built with ``TAGS=cmsis-nn``
(github.com/mlcommons/tiny_results_v0.5, ``closed/reference/results/Nucleo-L4R5ZI/*/
performance/results.txt`` and ``systems/Nucleo_L4R5ZI_System_Description.json``;
mlcommons/tiny ``v0.1/reference_submissions/*/setup_example.sh`` for the CMSIS-NN tag):
KWS DS-CNN 181.9 ms, VWW MobileNetV1-0.25 600.5 ms, IC ResNet-8 704.3 ms, AD
autoencoder 10.05 ms per inference (100 or 1000 inferences per window divided out).
The MAC counts of those models (:data:`MLPERF_TINY_MACS`) are those of int8 models of the
same shapes, built and converted in ``tests/test_bench_estimate.py``, which refits the
constants, checks them against the ones below and prints the estimate's error on each.
Three constants are fitted to four figures, so those errors are fit residuals (one
degree of freedom), not an independent validation: KWS +7%, VWW -9%, IC 0%, AD 0%.
The fit says depthwise convolutions cost ~4x more cycles per MAC than regular ones with
these kernels (depthwise layers have little data reuse per MAC).

**Reference kernels** (``["reference"]``, TFLM without CMSIS-NN): the CMSIS-NN constants
times :data:`REFERENCE_SLOWDOWN` = 4.6, the runtime gain the CMSIS-NN paper reports over
a baseline implementation on a Cortex-M7 (Lai, Suda, Chandra, "CMSIS-NN: Efficient Neural
Network Kernels for Arm Cortex-M CPUs", arXiv:1801.06601, 2018). A rough factor.

**Other cores** (:data:`CORE_SCALE`): cycles scaled by the ratio of CoreMark/MHz of a
Cortex-M4 (3.42) to that of the core (Arm's published figures: Cortex-M0+ 2.46, Cortex-M4
3.42, Cortex-M7 5.01). Only the Cortex-M4 figure is calibrated; the Xtensa LX7 of the
ESP32-S3 has no such figure here and is treated like a Cortex-M4 (flagged uncalibrated).
Flash wait states and caches differ between parts with the same core and are ignored.

**Float models**: float ops are estimated with the reference constants (TFLM's float
kernels are reference C on every core here); flagged in the notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from effkeras.boards import Board, get_board
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.profiling import op_macs

OP_CLASSES: dict[str, str] = {
    "CONV_2D": "conv",
    "TRANSPOSE_CONV": "conv",
    "CONV_3D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "fully_connected",
    "BATCH_MATMUL": "fully_connected",
}
CLASSES = ("conv", "depthwise", "fully_connected")

#: MLPerf Tiny v0.5 reference latencies, ms per inference (Nucleo-L4R5ZI, Cortex-M4F at
#: 120 MHz, TFLM v2.3.1 + CMSIS-NN): the results files' runtime of one window divided by
#: its inferences.
MLPERF_TINY_REFERENCE: dict[str, float] = {
    "kws_ds_cnn": 18.192 / 100 * 1000,
    "vww_mobilenet_v1_025": 60.054 / 100 * 1000,
    "ic_resnet8": 70.426 / 100 * 1000,
    "ad_autoencoder": 10.052 / 1000 * 1000,
}
MLPERF_TINY_CLOCK_MHZ = 120.0

#: MACs by class of int8 models with the shapes of the MLPerf Tiny models (as
#: :func:`macs_by_class` counts them on the models built in tests/test_bench_estimate.py).
MLPERF_TINY_MACS: dict[str, dict[str, int]] = {
    "kws_ds_cnn": {"conv": 2_368_000, "depthwise": 288_000, "fully_connected": 768},
    "vww_mobilenet_v1_025": {"conv": 6_690_816, "depthwise": 798_336, "fully_connected": 512},
    "ic_resnet8": {"conv": 12_500_992, "depthwise": 0, "fully_connected": 640},
    "ad_autoencoder": {"conv": 0, "depthwise": 0, "fully_connected": 264_192},
}

#: Runtime gain of CMSIS-NN over a baseline implementation (Lai et al. 2018).
REFERENCE_SLOWDOWN = 4.6

#: Cycles per MAC on a Cortex-M4 (fitted by :func:`calibrate` to the figures above).
CYCLES_PER_MAC: dict[str, dict[str, float]] = {
    "cmsis_nn": {"conv": 6.77, "depthwise": 25.69, "fully_connected": 4.57},
}
CYCLES_PER_MAC["reference"] = {
    k: round(v * REFERENCE_SLOWDOWN, 2) for k, v in CYCLES_PER_MAC["cmsis_nn"].items()
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


def macs_by_class(model: Any) -> dict[str, int]:
    """MACs of a .tflite per op class (conv, depthwise, fully_connected)."""
    tm = model if isinstance(model, TFLiteModel) else read_tflite(model)
    out = dict.fromkeys(CLASSES, 0)
    for op in tm.ops:
        cls = OP_CLASSES.get(op.name)
        if cls:
            out[cls] += int(op_macs(tm, op))
    return out


@dataclass
class Estimate:
    """A latency estimate and how it was made.

    Attributes:
        latency_us: estimated microseconds per inference.
        cycles: estimated CPU cycles.
        macs: total MACs.
        board, core, clock_mhz, kernels: what was assumed.
        cycles_per_mac: the constants used (per op class, before core scaling).
        core_scale: multiplier for the core relative to a Cortex-M4.
        calibrated: False when the core's scale or the kernels are not calibrated.
        layers: per MAC op: ``{index, op, class, macs, cycles, us}``.
        notes: caveats.
    """

    latency_us: float
    cycles: float
    macs: int
    board: str
    core: str
    clock_mhz: float
    kernels: str
    cycles_per_mac: dict[str, float]
    core_scale: float
    calibrated: bool
    layers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
    if kernels not in CYCLES_PER_MAC:
        raise ValueError(f"kernels must be one of {list(CYCLES_PER_MAC)}. Received: {kernels!r}")
    scale, calibrated = core_scale(b.core)
    notes = []
    if not calibrated:
        notes.append(f"{b.core}: cycles scaled from the Cortex-M4 calibration "
                     f"(x{scale:.2f}); not calibrated on this core.")
    if kernels == "reference":
        calibrated = False
        notes.append(f"reference kernels: CMSIS-NN constants x{REFERENCE_SLOWDOWN} (rough).")
    float_ops = {op.index for op in tm.float_ops()}
    if float_ops:
        notes.append(f"{len(float_ops)} float op(s) estimated with the reference constants.")
    layers = []
    total = 0.0
    for op in tm.ops:
        cls = OP_CLASSES.get(op.name)
        if cls is None:
            continue
        macs = int(op_macs(tm, op))
        table = CYCLES_PER_MAC["reference" if op.index in float_ops else kernels]
        cycles = macs * table[cls] * scale
        total += cycles
        layers.append({"index": op.index, "op": op.name, "class": cls, "macs": macs,
                       "cycles": cycles, "us": cycles / b.clock_mhz})
    return Estimate(
        latency_us=total / b.clock_mhz,
        cycles=total,
        macs=int(sum(r["macs"] for r in layers)),
        board=b.name,
        core=b.core,
        clock_mhz=float(b.clock_mhz),
        kernels=kernels,
        cycles_per_mac=dict(CYCLES_PER_MAC[kernels]),
        core_scale=scale,
        calibrated=calibrated,
        layers=layers,
        notes=notes,
    )


def calibrate(
    macs: Mapping[str, Mapping[str, int]],
    measured_ms: Mapping[str, float],
    clock_mhz: float = MLPERF_TINY_CLOCK_MHZ,
) -> dict[str, float]:
    """Fit cycles per MAC per op class to measured latencies (least squares on relative error).

    Args:
        macs: model name -> {op class: MACs}.
        measured_ms: model name -> measured milliseconds per inference.
        clock_mhz: the clock of the board that measured them.

    Returns:
        {op class: cycles per MAC}; classes no model exercises are left out.
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
    macs: Mapping[str, Mapping[str, int]] | None = None,
    cycles_per_mac: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The estimate against the MLPerf Tiny reference latencies, one row per model.

    Rows: ``{model, macs, measured_ms, estimated_ms, error}`` (error relative to measured).
    """
    macs = macs or MLPERF_TINY_MACS
    cpm = cycles_per_mac or CYCLES_PER_MAC["cmsis_nn"]
    rows = []
    for name, ms in MLPERF_TINY_REFERENCE.items():
        if name not in macs:
            continue
        cycles = sum(macs[name].get(c, 0) * cpm.get(c, 0.0) for c in CLASSES)
        est = cycles / MLPERF_TINY_CLOCK_MHZ / 1e3
        rows.append({"model": name, "macs": int(sum(macs[name].values())), "measured_ms": ms,
                     "estimated_ms": est, "error": (est - ms) / ms})
    return rows


def format_errors(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`mlperf_errors` rows as a small text table."""
    lines = [f"{'model':22s} {'MACs':>11s} {'MLPerf ms':>10s} {'estimate ms':>12s} {'error':>7s}"]
    for r in rows:
        lines.append(f"{r['model']:22s} {r['macs']:>11,d} {r['measured_ms']:>10.2f} "
                     f"{r['estimated_ms']:>12.2f} {r['error']:>+7.1%}")
    return "\n".join(lines)
