"""Cortex-M4 timing events of code running in QEMU, from our TCG plugin, and their intervals.

``mlperf_firmware/m4_cycles_plugin.c`` is a QEMU TCG plugin (our own declarations of the
QEMU 7.2 plugin API, built here with the host's gcc into ``build/``): it classifies every
executed Thumb-2 instruction by its Cortex-M4 timing class, detects taken branches and runs a
flash cache model, and writes the event counts between consecutive reads of TIMER0 VALUE
(the register the sketch's ``micros()`` and the per-op profiler read). This module builds the
plugin, adds it to a :class:`~effkeras.bench.qemu.QemuBoard` command line, reads its output
and picks out the intervals of whole inferences and of single ops; the cycles the events
cost are :func:`effkeras.bench.estimate.event_cycles` (the timings and their sources are in
that module's docstring).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from effkeras.bench.qemu import QemuBoard

FIRMWARE = Path(__file__).resolve().parent / "mlperf_firmware"
SOURCE = FIRMWARE / "m4_cycles_plugin.c"
SELFTEST = FIRMWARE / "m4_cycles_selftest.S"
#: TIMER0 VALUE of QEMU's mps2-an386 (hw/arm/mps2.c, CMSDK APB timer at 0x40000000).
MARK = 0x40000004
#: The mps2-an386 build's FLASH region (effkeras.deploy.build.BUILD_BOARDS["mps2_an386"]):
#: code, constants and the model's weights.
FLASH = (0x0, 4 << 20)
#: Intervals shorter than this are not written (the serial loop reads the timer often).
MIN_INSNS = 200


def build_plugin(work: str | os.PathLike) -> Path:
    """Compile the plugin into ``work`` (once per source version); returns the .so path."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("the cycle-event plugin needs a host C compiler (gcc); none on PATH")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(work) / f"m4_cycles_{digest}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.so")
        subprocess.run([gcc, "-O2", "-Wall", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(tmp),
                        str(SOURCE)], check=True, capture_output=True, text=True)
        tmp.replace(out)
    return out


def plugin_args(plugin: str | os.PathLike, events_file: str | os.PathLike, min_insns: int = MIN_INSNS,
                dump: bool = False) -> list[str]:
    """The ``-plugin`` arguments of qemu-system-arm."""
    spec = (f"{plugin},out={events_file},mark={MARK:#x},min={min_insns},"
            f"flash={FLASH[0]:#x}:{FLASH[0] + FLASH[1]:#x}" + (",dump=1" if dump else ""))
    return ["-plugin", spec]


class CycleQemuBoard(QemuBoard):
    """:class:`~effkeras.bench.qemu.QemuBoard` with the cycle-event plugin loaded."""

    def __init__(self, elf: str, plugin: str | os.PathLike, events_file: str | os.PathLike,
                 min_insns: int = MIN_INSNS):
        super().__init__(elf)
        self.events_file = Path(events_file)
        self.events_file.unlink(missing_ok=True)
        self.cmd += plugin_args(plugin, events_file, min_insns)


def read_events(path: str | os.PathLike) -> tuple[list[str], list[dict[str, int]], dict[str, int] | None]:
    """(event names, intervals in order, the run's totals or None) of a plugin output file."""
    names: list[str] = []
    intervals: list[dict[str, int]] = []
    total = None
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "efkcyc_names":
            names = parts[1:]
        elif parts[0] in ("efkcyc", "efkcyc_total") and names and len(parts) == len(names) + 1:
            row = dict(zip(names, map(int, parts[1:]), strict=True))
            if parts[0] == "efkcyc":
                intervals.append(row)
            else:
                total = row
    if not names:
        raise RuntimeError(f"{path}: no output of the cycle-event plugin")
    return names, intervals, total


def median_events(rows: Sequence[dict[str, int]]) -> dict[str, float]:
    """Element-wise median of event rows."""
    if not rows:
        raise ValueError("no event rows")
    return {k: float(statistics.median(r[k] for r in rows)) for k in rows[0]}


def match_whole(intervals: Sequence[dict[str, int]], instructions: Sequence[float],
                tolerance: float = 1000.0) -> list[dict[str, int]]:
    """The intervals of timed inferences: those within ``tolerance`` instructions of a
    sample's count (the sketch's BENCH measures 1000-instruction microseconds)."""
    out = [iv for iv in intervals if any(abs(iv["insns"] - s) <= tolerance for s in instructions)]
    if len(out) < len(instructions):
        raise RuntimeError(f"{len(instructions)} timed inferences but {len(out)} plugin intervals of their "
                           f"length ({sorted(set(instructions))[:3]} instructions)")
    return out


def match_ops(intervals: Sequence[dict[str, int]], op_instructions: Sequence[float],
              tolerance: float = 80.0) -> list[dict[str, int]]:
    """For each profiled op in order (its TIMER0 count in instructions, 40 a tick), the next
    plugin interval of that length; raises when one is missing."""
    out: list[dict[str, int]] = []
    pos = 0
    for i, want in enumerate(op_instructions):
        while pos < len(intervals) and abs(intervals[pos]["insns"] - want) > tolerance:
            pos += 1
        if pos == len(intervals):
            raise RuntimeError(f"op {i}: no plugin interval of {want:.0f} instructions")
        out.append(intervals[pos])
        pos += 1
    return out


def selftest(work: str | os.PathLike, plugin: str | os.PathLike | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
    """Assemble ``m4_cycles_selftest.S``, run it in QEMU with the plugin; returns
    ``{"interval": events between its two timer reads, "total": ..., "dump": [lines]}``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    plugin = plugin or build_plugin(work)
    ld = work / "m4_cycles_selftest.ld"
    ld.write_text("MEMORY { FLASH (rx) : ORIGIN = 0x0, LENGTH = 4M RAM (rwx) : ORIGIN = 0x20000000, "
                  "LENGTH = 64K }\nSECTIONS { .text : { KEEP(*(.vectors)) *(.text*) } > FLASH }\n")
    elf = work / "m4_cycles_selftest.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                    "-mfpu=fpv4-sp-d16", "-nostdlib", "-T", str(ld), "-o", str(elf), str(SELFTEST)],
                   check=True, capture_output=True, text=True)
    events = work / "m4_cycles_selftest.txt"
    cmd = [shutil.which("qemu-system-arm") or "qemu-system-arm", "-M", "mps2-an386", "-display", "none",
           "-monitor", "none", "-serial", "none", "-icount", "shift=0",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
           *plugin_args(plugin, events, min_insns=1, dump=True)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    _, intervals, total = read_events(events)
    dump = [ln for ln in events.read_text().splitlines() if ln.startswith("insn ")]
    return {"intervals": intervals, "interval": intervals[-1], "total": total, "dump": dump}
