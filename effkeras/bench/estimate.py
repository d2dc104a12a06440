"""Estimate a model's latency on a board from its op shapes and a per-op instruction model.

Nothing runs: the estimate is arithmetic on the flatbuffer, for a board you do not have
at hand. It is a first-order figure, not a measurement: measure with ``--target qemu``
(instructions) or ``serial:PORT`` (the real board) when you can.

The model
---------
::

    cycles       = sum over ops of  work(op) * CYCLES_PER_UNIT[kernels][class(op)] * core_scale(core)
    latency      = cycles / board.clock_mhz                                  (microseconds)
    instructions = sum over ops of  work(op) * INSTRUCTIONS_PER_UNIT[kernels][class(op)]   (reported)

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
``benchmarks/mlperf_tiny.py`` (suite ``mlperf``, ``benchmarks/results/mlperf.json``) builds
the four MLPerf Tiny v0.5 models (DS-CNN KWS, MobileNetV1-0.25 VWW, ResNet-8 IC, the FC
autoencoder AD; int8, random weights) into the sketch ``effkeras sketch`` writes, compiles
it with arm-none-eabi-g++ -Os against the Arduino_TensorFlowLite library 2.4.0-ALPHA (TFLM
synced 2023-02-27) and runs it in ``qemu-system-arm -M mps2-an386 -icount shift=0``, whole
and with a per-op profiler (TIMER0, 40 instructions a tick), with two kernel sets:

- ``cmsis_nn``: the library as shipped (CMSIS-NN kernels for conv, depthwise, fully
  connected, pooling, add, softmax);
- ``reference``: TFLM's plain reference kernels for those ops (the benchmark links the
  reference int8 paths from the same TFLM sync,
  ``benchmarks/mlperf_firmware/efk_reference_kernels.cpp``); their outputs equal LiteRT's
  reference kernels bit for bit.

**Instructions per unit** (:data:`INSTRUCTIONS_PER_UNIT`): the QEMU instruction counts
(:data:`MLPERF_TINY_QEMU`) refitted per class (:func:`fit_instructions`: a class's
instructions over its work summed over the four models, exact on their sum).

**Cycles per unit** (:data:`CYCLES_PER_UNIT`): the same fit on modelled Cortex-M4 cycles
(:data:`MLPERF_TINY_CYCLES`), measured in the same QEMU runs by a TCG plugin of ours,
``benchmarks/mlperf_firmware/m4_cycles_plugin.c`` (built with the host gcc;
``benchmarks/mlperf_cycles.py``). The plugin classifies every executed Thumb-2 instruction
from its disassembly, counts timing events per op and per inference (between the reads of
TIMER0 that the profiler and ``micros()`` make), and :func:`event_cycles` prices them with
:data:`EVENT_CYCLES`. Nothing of it is fitted to a latency. The timings, from the Cortex-M4
Technical Reference Manual (Arm DDI 0439, 3.3 "Instruction timings", table "Cortex-M4
instruction cycle counts", and 7.2 for the FPU), as we read them:

- data processing, MUL, the 64-bit multiplies and the DSP MACs (SMLAD, SMLABB, SMLAL...):
  1 cycle; MLA and MLS: 2; SDIV/UDIV: 2 to 12 (operand-dependent; 7 central);
- LDR (and its byte/halfword forms): 2, but 1 when it follows a single load it pipelines
  with (N+1 cycles for N back-to-back loads; not when the earlier load's result is the
  later one's address); STR with an immediate offset: 1 ("always one cycle": the store
  overlaps the next instruction); STR with a register offset: 2 (1 after a load); LDRD/STRD:
  3; LDM/STM/PUSH/POP: 1+N; a load or store whose address is the result of the data-processing
  instruction just before it: +1 (no forwarding path). These load/store rules are the TRM's
  "Load/store timings" list; the same list is in the Cortex-M3 TRM (DDI 0337), as TI's
  SWCU185 reproduces it;
- B, BL, BX, BLX, CBZ/CBNZ: 1, plus P when taken (pipeline refill, "1 to 3 depending on
  the alignment and width of the target instruction": P = 2 central, 1-3 the range);
  TBB/TBH 2+P; a POP or LDR into the pc counts its load plus P; IT: 0 or 1 (the core may
  fold it; 1 central). Taken is told from not taken by whether the next executed block
  starts at the fall-through address;
- VFP: VADD/VSUB/VMUL/VCVT/VCMP/VMOV 1, VMLA/VFMA and kin 3, VDIV/VSQRT 14, VLDR/VSTR 2,
  VLDM/VSTM/VPUSH/VPOP 1+N.

Not modelled: bus contention between instruction fetch and data, unaligned 32-bit
instructions, interrupts, the write buffer filling. Conditional instructions in IT blocks
cost their cycle whether or not they execute (the M4 does that).

**Flash** (:data:`CYCLE_MODEL`'s ``flash_wait_states``): the MLPerf board, the Nucleo-L4R5ZI
(STM32L4R5, Cortex-M4F at 120 MHz), runs its flash with 5 wait states at 120 MHz, which needs
the regulator's Range 1 boost mode (RM0432's flash latency table as we read it; confirmed by
CircuitPython's STM32L4R5 clock defaults, ports/stm/peripherals/stm32l4/stm32l4r5xx/clocks.h:
``PWR_REGULATOR_VOLTAGE_SCALE1_BOOST`` "up to 120MHz" with ``FLASH_LATENCY_5``; Zephyr's
nucleo_l4r5zi defconfig notes that 120 MHz needs boost mode, DM00310109 = RM0432 5.1.7). The
ART accelerator (ST's STM32L4xx HAL flash driver, stm32l4xx_hal_flash.c, "FLASH main
features"): prefetch on I-Code, 32 cache lines of 4 x 64 bits on I-Code (1 KB), 8 cache
lines of 4 x 64 bits on D-Code (256 B); flash data are 72-bit words (64 bits + ECC). The
plugin keeps those capacities but in 64-bit entries (one flash read each), 4-way
set-associative LRU: the organisation is our assumption, as is that the caches and prefetch
are on (the L4R5's FLASH_ACR has PRFTEN, ICEN and DCEN: stm32-metapac's register
description of stm32l4r5zi). The model: code and constants (the model's weights) are in
flash (the mps2-an386 build's FLASH region, 0x0-0x400000), the arena in SRAM (no wait
states). A data load from flash that misses the data cache stalls 5 cycles; an instruction
line that misses the instruction cache stalls 5 cycles unless it is the line right after the
previous fetch, which the prefetch buffer fetched (0 stall central; up to 4 at the high end
of the range).
:data:`CYCLES_PER_UNIT_ZERO_WAIT` is the same without flash stalls (code and weights in
zero-wait memory).

**The range** (:data:`CYCLE_RANGE`, multipliers of the estimate per kernel set): the cycle
model's low end (P = 1, division 2, IT folded) and high end (P = 3, division 12, 4 stall
cycles a prefetched line), on top of the fit's own error (:data:`CYCLES_FIT_ERROR`).

**Other cores** (:func:`core_scale`): cycles scaled by the ratio of CoreMark/MHz of a
Cortex-M4 (3.42) to that of the core (Arm's published figures: Cortex-M0+ 2.46, Cortex-M4
3.42, Cortex-M7 5.01). Only the Cortex-M4 is modelled; the Xtensa LX7 of the ESP32-S3 has
no such figure here and is treated like a Cortex-M4 (flagged uncalibrated). Every Cortex-M4
board gets the L4R5's flash model.

**Float models**: float ops are estimated with the int8 reference-kernel constants (TFLM's
float kernels are reference C on every core here); flagged in the notes.

How good it is
--------------
Against its own measurements the estimate is within :data:`CYCLES_FIT_ERROR` of each model's
modelled cycles (9.5% CMSIS-NN, 3.5% reference) and :data:`QEMU_FIT_ERROR` of its QEMU
instruction count (8.5%, 4%): fit residuals, the constants come from those four models. The
cycle model gives these builds a CPI of 1.33 (KWS), 1.34 (VWW), 1.45 (IC) and 1.63 (AD) with
CMSIS-NN, 1.68-1.88 with the reference kernels (pooled over the four models, 1.40 and 1.87:
:data:`CYCLES_PER_INSTRUCTION`); the
STM32L4R5's flash stalls are 3-12% of the cycles with CMSIS-NN (weights streamed from flash
through the small data cache), 0.7-2.7% with the reference kernels. The range of the cycle model is about -6%/+6%.

Against the published MLPerf Tiny v0.5 TFLM reference latencies
(:data:`MLPERF_TINY_REFERENCE`: Nucleo-L4R5ZI, TFLM v2.3.1 + CMSIS-NN, 2021), an independent
comparison, the CMSIS-NN estimate at 120 MHz is KWS -37%, VWW -47%, IC -22%, AD +14%
(:func:`mlperf_errors`; on zero-wait memory -39%, -49%, -26%, -0%). The goal of 25% on every
model is met on IC and AD only. The published figures imply a CPI of 2.20 (KWS), 2.32 (VWW),
1.95 (IC) and 1.43 (AD) on this build's instruction counts, well above what the TRM's timings
give these instruction streams: the 2021 build ran other code (TFLM 2.3.1 and the CMSIS-NN
of its day) or the board stalled more than the model says (which of the two, this emulation
cannot tell), so the estimate is a 2023-TFLM-on-a-Cortex-M4 figure, not a predictor of the
2021 reference. Our builds reach
0.18-0.20 MACs a modelled cycle with CMSIS-NN and 0.011-0.041 with the reference kernels;
published: TFLM v0.5 0.10-0.22, X-CUBE-AI v1.2 0.42-0.70.
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
            "conv": 1_538_440, "pointwise": 5_248_840, "depthwise": 3_011_360,
            "fully_connected": 3_200, "elementwise": 0, "pooling": 108_000, "softmax": 5_840,
            "other": 0, "total": 9_916_000,
        },
        "vww_mobilenet_v1_025": {
            "conv": 4_013_840, "pointwise": 18_330_840, "depthwise": 8_661_480,
            "fully_connected": 2_000, "elementwise": 0, "pooling": 33_920, "softmax": 1_200,
            "other": 0, "total": 31_044_000,
        },
        "ic_resnet8": {
            "conv": 39_554_040, "pointwise": 1_384_760, "depthwise": 0,
            "fully_connected": 2_720, "elementwise": 2_346_400, "pooling": 55_760,
            "softmax": 4_800, "other": 0, "total": 43_349_000,
        },
        "ad_autoencoder": {
            "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 844_640,
            "elementwise": 0, "pooling": 0, "softmax": 0, "other": 0, "total": 845_000,
        },
    },
    "reference": {
        "kws_ds_cnn": {
            "conv": 20_944_440, "pointwise": 94_387_920, "depthwise": 19_228_560,
            "fully_connected": 12_720, "elementwise": 0, "pooling": 206_600, "softmax": 14_320,
            "other": 0, "total": 134_795_000,
        },
        "vww_mobilenet_v1_025": {
            "conv": 28_098_520, "pointwise": 289_178_960, "depthwise": 55_170_360,
            "fully_connected": 8_240, "elementwise": 0, "pooling": 76_320, "softmax": 2_800,
            "other": 0, "total": 372_536_000,
        },
        "ic_resnet8": {
            "conv": 523_399_400, "pointwise": 13_178_320, "depthwise": 0,
            "fully_connected": 10_680, "elementwise": 4_106_400, "pooling": 102_200,
            "softmax": 12_000, "other": 0, "total": 540_810_000,
        },
        "ad_autoencoder": {
            "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 3_797_960,
            "elementwise": 0, "pooling": 0, "softmax": 0, "other": 0, "total": 3_798_000,
        },
    },
}

#: Instructions per unit of work (fitted by :func:`fit_instructions` on the counts above).
INSTRUCTIONS_PER_UNIT: dict[str, dict[str, float]] = {
    "cmsis_nn": {
        "conv": 3.4547, "pointwise": 2.9359, "depthwise": 10.7451, "fully_connected": 3.2038,
        "elementwise": 81.8359, "pooling": 13.7278, "softmax": 493.3333,
    },
    "reference": {
        "conv": 43.8434, "pointwise": 46.6578, "depthwise": 68.4861,
        "fully_connected": 14.3909, "elementwise": 143.2199, "pooling": 26.7444,
        "softmax": 1213.3333,
    },
}

#: The largest |estimate / QEMU count - 1| over the four models, per kernel set (rounded
#: up); tests/test_bench_estimate.py checks it.
QEMU_FIT_ERROR: dict[str, float] = {"cmsis_nn": 0.085, "reference": 0.04}

#: Cortex-M4 cycles of each timing event the QEMU plugin counts
#: (benchmarks/mlperf_firmware/m4_cycles_plugin.c; the sources are in the module docstring).
#: The parameters (``branch_refill`` P, ``div_cycles``, ``flash_wait_states``,
#: ``prefetched_line_stall``) are :func:`event_cycles`'s arguments.
EVENT_CYCLES: dict[str, float | str] = {
    "dp": 1, "mla": 2, "div": "div_cycles", "ld": 2, "ls_pipe": 1, "st": 1, "st_reg": 2, "lsd": 3,
    "lsm": 1, "lsm_regs": 1, "addr_dep": 1, "br": 1, "tb": 2, "taken": "branch_refill",
    "not_taken": 0, "vfp1": 1, "vfp3": 3, "vfp14": 14, "vldst": 2, "vlsm": 1, "vlsm_regs": 1,
    "it": "it_cycles", "unknown": 1, "flash_loads": 0, "flash_dmiss": "flash_wait_states", "flash_ifetch": 0,
    "flash_imiss": "flash_wait_states", "flash_ipref": "prefetched_line_stall", "insns": 0,
}
#: The STM32L4R5 of MLPerf Tiny's Nucleo-L4R5ZI at 120 MHz: 5 flash wait states.
FLASH_WAIT_STATES_L4R5 = 5
#: The cycle model's central parameters, and the two ends of its stated range.
CYCLE_MODEL: dict[str, float] = {"branch_refill": 2, "div_cycles": 7, "it_cycles": 1,
                                 "flash_wait_states": FLASH_WAIT_STATES_L4R5, "prefetched_line_stall": 0}
CYCLE_MODEL_LOW: dict[str, float] = {**CYCLE_MODEL, "branch_refill": 1, "div_cycles": 2, "it_cycles": 0}
CYCLE_MODEL_HIGH: dict[str, float] = {**CYCLE_MODEL, "branch_refill": 3, "div_cycles": 12,
                                      "prefetched_line_stall": FLASH_WAIT_STATES_L4R5 - 1}
#: The central model on zero-wait-state memory (no flash stalls).
CYCLE_MODEL_ZERO_WAIT: dict[str, float] = {**CYCLE_MODEL, "flash_wait_states": 0}


def event_cycles(events: Mapping[str, float], **params: float) -> float:
    """Cortex-M4 cycles of the plugin's event counts (:data:`EVENT_CYCLES`); ``params``
    override :data:`CYCLE_MODEL`'s (``branch_refill=3``, ``flash_wait_states=0``...).

    Raises:
        ValueError: an event or parameter the model does not know.
    """
    unknown = set(params) - set(CYCLE_MODEL)
    if unknown:
        raise ValueError(f"unknown cycle-model parameter(s) {sorted(unknown)}; known: {sorted(CYCLE_MODEL)}")
    p = {**CYCLE_MODEL, **params}
    total = 0.0
    for name, count in events.items():
        if name not in EVENT_CYCLES:
            raise ValueError(f"unknown timing event {name!r}; known: {sorted(EVENT_CYCLES)}")
        cost = EVENT_CYCLES[name]
        total += count * (p[cost] if isinstance(cost, str) else cost)
    return total


#: Modelled Cortex-M4 cycles per inference (the plugin's events x :data:`EVENT_CYCLES` at
#: :data:`CYCLE_MODEL`), same layout as :data:`MLPERF_TINY_QEMU`: per class the cycles of
#: that class's ops (profiled build), "total" the whole inference (timed build, median).
MLPERF_TINY_CYCLES: dict[str, dict[str, dict[str, float]]] = {
    "cmsis_nn": {
        "kws_ds_cnn": {
            "conv": 2_266_973, "pointwise": 6_493_954, "depthwise": 4_312_564,
            "fully_connected": 5_448, "elementwise": 0, "pooling": 158_658, "softmax": 7_241,
            "other": 0, "total": 13_226_312,
        },
        "vww_mobilenet_v1_025": {
            "conv": 6_062_719, "pointwise": 23_665_817, "depthwise": 11_949_614,
            "fully_connected": 3_607, "elementwise": 0, "pooling": 51_471, "softmax": 1_900,
            "other": 0, "total": 41_736_691,
        },
        "ic_resnet8": {
            "conv": 58_139_499, "pointwise": 1_919_640, "depthwise": 0,
            "fully_connected": 4_693, "elementwise": 2_850_738, "pooling": 82_343,
            "softmax": 6_053, "other": 0, "total": 63_003_880,
        },
        "ad_autoencoder": {
            "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 1_373_629,
            "elementwise": 0, "pooling": 0, "softmax": 0, "other": 0, "total": 1_374_112,
        },
    },
    "reference": {
        "kws_ds_cnn": {
            "conv": 36_668_933, "pointwise": 178_341_721, "depthwise": 34_319_616,
            "fully_connected": 19_687, "elementwise": 0, "pooling": 404_733, "softmax": 25_970,
            "other": 0, "total": 249_779_397,
        },
        "vww_mobilenet_v1_025": {
            "conv": 51_020_451, "pointwise": 545_235_362, "depthwise": 96_992_518,
            "fully_connected": 12_820, "elementwise": 0, "pooling": 145_149, "softmax": 5_226,
            "other": 0, "total": 693_420_289,
        },
        "ic_resnet8": {
            "conv": 986_565_575, "pointwise": 24_640_265, "depthwise": 0,
            "fully_connected": 16_583, "elementwise": 7_372_345, "pooling": 202_926,
            "softmax": 21_649, "other": 0, "total": 1_018_823_196,
        },
        "ad_autoencoder": {
            "conv": 0, "pointwise": 0, "depthwise": 0, "fully_connected": 6_386_601,
            "elementwise": 0, "pooling": 0, "softmax": 0, "other": 0, "total": 6_387_114,
        },
    },
}

#: Cycles per unit of work by class (fitted by :func:`fit_instructions` on the cycles above).
CYCLES_PER_UNIT: dict[str, dict[str, float]] = {
    "cmsis_nn": {
        "conv": 5.0909, "pointwise": 3.7726, "depthwise": 14.9697, "fully_connected": 5.2135,
        "elementwise": 99.4259, "pooling": 20.3106, "softmax": 633.0833,
    },
    "reference": {
        "conv": 82.2773, "pointwise": 87.9915, "depthwise": 120.8762,
        "fully_connected": 24.1841, "elementwise": 257.127, "pooling": 52.2783,
        "softmax": 2201.875,
    },
}

#: The same, on zero-wait-state memory (no flash model): for boards whose code and weights
#: do not stall, and to show the flash model's share.
CYCLES_PER_UNIT_ZERO_WAIT: dict[str, dict[str, float]] = {
    "cmsis_nn": {
        "conv": 4.7644, "pointwise": 3.705, "depthwise": 13.9652, "fully_connected": 4.5653,
        "elementwise": 99.3979, "pooling": 20.2609, "softmax": 594.5417,
    },
    "reference": {
        "conv": 81.6859, "pointwise": 87.3395, "depthwise": 117.7118,
        "fully_connected": 23.5281, "elementwise": 257.0973, "pooling": 52.2346,
        "softmax": 2158.75,
    },
}

#: The cycle model's range as multipliers of its central cycles (the smallest low-end and
#: the largest high-end ratio over the four models), per kernel set.
CYCLE_RANGE: dict[str, tuple[float, float]] = {
    "cmsis_nn": (0.9449, 1.0535),
    "reference": (0.9362, 1.0626),
}

#: The largest |estimate / modelled cycles - 1| over the four models (rounded up).
CYCLES_FIT_ERROR: dict[str, float] = {"cmsis_nn": 0.095, "reference": 0.035}

#: Modelled cycles per QEMU instruction over the four models, per kernel set.
CYCLES_PER_INSTRUCTION: dict[str, float] = {
    k: sum(m["total"] for m in MLPERF_TINY_CYCLES[k].values())
    / sum(m["total"] for m in MLPERF_TINY_QEMU[k].values())
    for k in MLPERF_TINY_CYCLES
}

#: Cycles per unit of work on a Cortex-M4 (the table the estimate uses).
CYCLES_PER_MAC: dict[str, dict[str, float]] = CYCLES_PER_UNIT

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
        instructions: estimated Cortex-M4 instructions (a second line: the cycles do not
            come from it).
        macs: total MACs.
        board, core, clock_mhz, kernels: what was assumed.
        cycles_per_mac: modelled Cortex-M4 cycles per unit of work by class
            (:data:`CYCLES_PER_UNIT`).
        cycles_per_instruction: this estimate's cycles over its instructions (Cortex-M4).
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
    lo, hi = CYCLE_RANGE[kernels]
    notes = [f"cycles per op from the Cortex-M4 timing model on QEMU runs of the MLPerf Tiny models "
             f"(flash as the STM32L4R5's at 120 MHz); model range x{lo:.2f}-x{hi:.2f}, plus the "
             f"fit's {CYCLES_FIT_ERROR[kernels]:.0%}."]
    if not calibrated:
        notes.append(f"{b.core}: cycles scaled from the Cortex-M4 counts "
                     f"(x{scale:.2f}); not calibrated on this core.")
    float_ops = {op.index for op in tm.float_ops()}
    if float_ops:
        notes.append(f"{len(float_ops)} float op(s) estimated with the int8 reference constants.")
    layers = []
    total_instr = total_cycles = 0.0
    for op in tm.ops:
        cls = op_class(tm, op)
        work = op_work(tm, op)
        ks = "reference" if op.index in float_ops else kernels
        instr = work * _per_unit(INSTRUCTIONS_PER_UNIT[ks], cls)
        cycles = work * _per_unit(CYCLES_PER_UNIT[ks], cls) * scale
        total_instr += instr
        total_cycles += cycles
        layers.append({"index": op.index, "op": op.name, "class": cls, "work": work,
                       "macs": work if cls in MAC_CLASSES else 0, "instructions": instr,
                       "cycles": cycles, "us": cycles / b.clock_mhz})
    cycles = total_cycles
    return Estimate(
        latency_us=cycles / b.clock_mhz,
        cycles=cycles,
        instructions=total_instr,
        macs=int(sum(r["macs"] for r in layers)),
        board=b.name,
        core=b.core,
        clock_mhz=float(b.clock_mhz),
        kernels=kernels,
        cycles_per_mac=dict(CYCLES_PER_UNIT[kernels]),
        cycles_per_instruction=cycles / (total_instr * scale) if total_instr else 0.0,
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
    table: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The estimate at 120 MHz against the published MLPerf Tiny latencies, one row per model.

    Rows: ``{model, macs, instructions, cycles, estimated_ms, low_ms, high_ms, measured_ms,
    error, best_m4_ms, macs_per_cycle}``; ``measured_ms`` is the v0.5 TFLM reference, ``error``
    relative to it; ``low_ms``/``high_ms`` the cycle model's range (:data:`CYCLE_RANGE`).
    ``table``: cycles per unit to use instead of :data:`CYCLES_PER_UNIT` (e.g. the zero-wait one).
    """
    work = work or MLPERF_TINY_WORK
    per_i = INSTRUCTIONS_PER_UNIT[kernels]
    per_c = CYCLES_PER_UNIT[kernels] if table is None else table
    lo, hi = CYCLE_RANGE[kernels]
    rows = []
    for name, ms in MLPERF_TINY_REFERENCE.items():
        if name not in work:
            continue
        instr = sum(work[name].get(c, 0) * _per_unit(per_i, c) for c in CLASSES)
        cycles = sum(work[name].get(c, 0) * _per_unit(per_c, c) for c in CLASSES)
        est = cycles / MLPERF_TINY_CLOCK_MHZ / 1e3
        macs = int(sum(work[name].get(c, 0) for c in MAC_CLASSES))
        rows.append({"model": name, "macs": macs, "instructions": instr, "cycles": cycles,
                     "estimated_ms": est, "low_ms": est * lo, "high_ms": est * hi,
                     "measured_ms": ms, "error": (est - ms) / ms,
                     "best_m4_ms": MLPERF_TINY_BEST_M4[name], "macs_per_cycle": macs / cycles})
    return rows


def format_errors(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`mlperf_errors` rows as a small text table."""
    lines = [f"{'model':22s} {'MACs':>11s} {'estimate ms':>12s} {'range ms':>15s} "
             f"{'TFLM v0.5 ms':>13s} {'error':>7s} {'MACs/cycle':>10s} {'best M4 ms':>11s}"]
    for r in rows:
        rng = f"{r['low_ms']:.1f}-{r['high_ms']:.1f}"
        lines.append(f"{r['model']:22s} {r['macs']:>11,d} {r['estimated_ms']:>12.2f} {rng:>15s} "
                     f"{r['measured_ms']:>13.2f} {r['error']:>+7.1%} {r['macs_per_cycle']:>10.3f} "
                     f"{r['best_m4_ms']:>11.2f}")
    return "\n".join(lines)
