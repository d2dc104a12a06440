"""The Cortex-M4 cycle model behind ``--target estimate``: our QEMU TCG plugin's event counts on
a known instruction sequence, and the cycles effkeras.bench.estimate gives them.

benchmarks/mlperf_firmware/m4_cycles_selftest.S is 45 instructions between two reads of the
timer, one comment per line saying what each counts as; the plugin (m4_cycles_plugin.c,
compiled here with the host gcc) must report exactly those events, and the cycle model must
price them as the Cortex-M4 TRM's timings add up by hand. Under a second of QEMU.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import mlperf_cycles  # noqa: E402

est = importlib.import_module("effkeras.bench.estimate")

TOOLS = ("gcc", "arm-none-eabi-gcc", "qemu-system-arm")

#: The events between the two timer reads of the self-test (see the comments in the .S file).
EXPECTED = {
    "insns": 45, "dp": 17, "mla": 1, "div": 1, "ld": 4, "ls_pipe": 5, "st": 0, "st_reg": 1,
    "lsd": 1, "lsm": 2, "lsm_regs": 6, "addr_dep": 2, "br": 7, "tb": 0, "taken": 6,
    "not_taken": 1, "vfp1": 2, "vfp3": 1, "vfp14": 1, "vldst": 1, "vlsm": 0, "vlsm_regs": 0,
    "it": 1, "unknown": 0, "flash_loads": 2,
}


@pytest.mark.cross
@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                    reason=f"needs {', '.join(TOOLS)} (.ci/run installs them)")
def test_plugin_counts_the_events_of_a_known_instruction_sequence(tmp_path):
    run = mlperf_cycles.selftest(tmp_path)
    got = run["interval"]
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    # The flash model: both loads from flash (the vector table's first word, a literal) read
    # lines the data cache has not held since reset... except the literal's, which the start-up
    # literals before the first timer read brought in; the 45 instructions are one straight
    # run of 64-bit lines, so every instruction-cache miss is the line after the last fetch.
    assert got["flash_dmiss"] == 1
    assert got["flash_imiss"] == 0 and got["flash_ipref"] > 0
    # The TRM's timings by hand: 17 dp + 2 MLA + 7 UDIV (model) + 4 x 2 LDR + 5 pipelined + 2
    # STR (register offset) + 3 STRD + (2 + 6) PUSH/POP + 2 address stalls + 7 branches + 6
    # taken x P=2 + 2 VFP + 3 VMLA + 14 VDIV + 2 VSTR + 1 IT + 1 flash miss x 5 wait states.
    assert est.event_cycles(got) == 100
    assert est.event_cycles(got, flash_wait_states=0) == 95
    assert est.event_cycles(got, branch_refill=1) == 94
    # Every instruction was classified, and the dump names each one's class.
    assert got["unknown"] == 0
    assert any("smlad" in line and line.rstrip().endswith("dp") for line in run["dump"])
    assert any("ldr r0, [r7]" in line and "+addr_dep" in line for line in run["dump"])


def test_event_cycles_rejects_unknown_events_and_parameters():
    assert est.event_cycles({"dp": 3, "taken": 2}) == 3 + 2 * est.CYCLE_MODEL["branch_refill"]
    assert est.event_cycles({"flash_dmiss": 4}, flash_wait_states=0) == 0
    with pytest.raises(ValueError, match="unknown timing event 'bogus'"):
        est.event_cycles({"bogus": 1})
    with pytest.raises(ValueError, match="wait_states"):
        est.event_cycles({"dp": 1}, wait_states=3)
    # Every cost names a number or a parameter of the model.
    for name, cost in est.EVENT_CYCLES.items():
        assert isinstance(cost, int | float) or cost in est.CYCLE_MODEL, name


def test_interval_matching_picks_the_ops_in_order():
    ivs = [{"insns": n} for n in (300, 5000, 1200, 4000, 5020, 900)]
    assert [r["insns"] for r in mlperf_cycles.match_ops(ivs, [5000, 5000, 880])] == [5000, 5020, 900]
    with pytest.raises(RuntimeError, match="op 1"):
        mlperf_cycles.match_ops(ivs, [5000, 77_000])
    assert len(mlperf_cycles.match_whole(ivs, [4500.0], tolerance=510)) == 2
    with pytest.raises(RuntimeError, match="timed inferences"):
        mlperf_cycles.match_whole(ivs, [10_000.0, 10_000.0])
