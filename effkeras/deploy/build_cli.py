"""The ``effkeras build`` command::

    effkeras build SKETCH_DIR [--board NAME] [--tflm-lib DIR] [--build-dir DIR] [--jobs N]
                              [--json]

Compiles a generated sketch with arm-none-eabi-g++ against the Arduino_TensorFlowLite
library (:func:`effkeras.deploy.build.build_sketch`) and prints the ELF's text/data/bss.
Bad input and missing tools raise :class:`~effkeras.errors.EffkerasError` s, which the main
CLI prints as ``effkeras: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json

from effkeras.cli import _positive_int as _jobs


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``build`` to an ``argparse`` subparsers object; returns its parser."""
    from effkeras.deploy.build import BUILD_BOARDS

    names = ", ".join(BUILD_BOARDS)
    p = subparsers.add_parser(
        "build",
        help="compile a generated sketch for a board's CPU against the real TFLM library",
        description="Compile a sketch that `effkeras sketch` wrote with arm-none-eabi-g++ "
        "against the Arduino_TensorFlowLite library (interpreter core and only the kernels "
        "its op resolver registers; library objects cached) and report text/data/bss.",
    )
    p.add_argument("sketch_dir", metavar="SKETCH_DIR", help="the sketch folder")
    p.add_argument("--board", default="mps2_an386",
                   help=f"one of {names}; qemu = mps2_an386, the emulated Cortex-M4F "
                   "(default)")
    p.add_argument("--tflm-lib", metavar="DIR",
                   help="the Arduino_TensorFlowLite library folder (default $EFFKERAS_TFLM_LIB, "
                   "then ~/Arduino/libraries/Arduino_TensorFlowLite)")
    p.add_argument("--build-dir", metavar="DIR",
                   help="objects and the ELF (default SKETCH_DIR/build/BOARD)")
    p.add_argument("--jobs", type=_jobs, default=None, help="parallel compiles (default: CPUs)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_build)
    return p


def cmd_build(args) -> int:
    """Run ``effkeras build``."""
    from effkeras.deploy.build import build_sketch

    r = build_sketch(args.sketch_dir, args.board, args.tflm_lib, build_dir=args.build_dir,
                     jobs=args.jobs)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
        return 0
    sync = f", TFLM synced {r.tflm_sync}" if r.tflm_sync else ""
    print(f"built {r.elf}")
    print(f"  board   {r.board.name}: {r.board.title} ({r.board.core}, "
          f"{' '.join(r.board.cpu_flags)})")
    print(f"  library {r.library} (version {r.library_version or '?'}{sync})")
    print(f"  ops     {', '.join(r.ops)}")
    print(f"  text {r.text:,}  data {r.data:,}  bss {r.bss:,} bytes: flash {r.flash_bytes:,} "
          f"(text + data), static RAM {r.ram_bytes:,} (data + bss, arena included)")
    print(f"  {len(r.library_sources)} library sources linked, {r.compiled} compiled now "
          f"(cache {r.cache_dir}); {r.seconds:.1f} s")
    return 0
