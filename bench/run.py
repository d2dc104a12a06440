"""One entry point for every benchmark suite.

    .venv/bin/python bench/run.py SUITE [SUITE ...] [--data-dir DIR] [-- extra args]
    .venv/bin/python bench/run.py all --smoke          # every suite, tiny, for CI

Suites (each a script in bench/ with its own ``main(argv)``):

| suite   | what it measures                                                   | full run time |
|---------|--------------------------------------------------------------------|---------------|
| latency | float vs int8 on LiteRT (3 kernel sets, 1/2 threads), TFLM, estimate | minutes     |
| qat     | float / PTQ / effkeras QAT / tfmot QAT on MNIST and CIFAR-10       | ~1 h on 2 cores |
| prune   | effkeras vs tfmot pruning, gzip sizes, channel-pruning speedup     | ~1 h on 2 cores |
| text    | SMS spam: embedding baseline vs SGNN vs PRADO projection models    | minutes       |
| mcu     | ResNet-8-class CIFAR-10 model, full vs half size, for a board      | GPU training + host |
| survey  | the survey's CIFAR-10 width family, its recipe vs effkeras's       | GPU training + host |

A full run writes its section into BENCHMARKS.md (each script replaces its own section
or appends it, with command, machine and date). ``--smoke`` runs each suite on a tiny
budget and writes into ``build/bench-smoke/`` only: it proves the code still runs, and
its numbers mean nothing. Suites that need real data read ``--data-dir`` (default
``$EFFKERAS_DATA_DIR``, else ``../shared/data``); in smoke mode a suite whose data is
missing is reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SMOKE_DIR = os.path.join(ROOT, "build", "bench-smoke")


def _data_dir(arg: str | None) -> str:
    return arg or os.environ.get("EFFKERAS_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")


# suite -> (script, needs data files, full args, smoke args); {data} and {out} are filled in.
SUITES: dict[str, tuple[str, tuple[str, ...], list[str], list[str]]] = {
    "latency": (
        "latency.py",
        (),
        ["--cifar", "--markdown", "BENCHMARKS.md"],
        ["--runs", "10", "--warmup", "2", "--epochs", "1", "--markdown", "{out}/latency.md"],
    ),
    "qat": (
        "qat.py",
        ("mnist",),
        ["--data-dir", "{data}", "--markdown", "BENCHMARKS.md"],
        [
            "--data-dir", "{data}", "--datasets", "mnist", "--mnist-train", "600",
            "--mnist-test", "200", "--float-epochs", "1", "--qat-epochs", "1",
            "--timing-steps", "3", "--timing-rounds", "1", "--markdown", "{out}/qat.md",
        ],
    ),
    "prune": (
        "prune.py",
        ("mnist",),
        ["--markdown", "BENCHMARKS.md"],
        ["--datasets", "mnist", "--quick", "--markdown", "{out}/prune.md"],
    ),
    "text": (
        "text.py",
        ("sms_spam",),
        ["--data-dir", "{data}/sms_spam", "--markdown", "BENCHMARKS.md"],
        ["--data-dir", "{data}/sms_spam", "--epochs", "1", "--runs", "5",
         "--markdown", "{out}/text.md"],
    ),
    "mcu": (
        "mcu.py",
        (),
        ["--data", "{data}", "--markdown", "BENCHMARKS.md", "--models", "tflite_models/mcu"],
        ["--smoke"],
    ),
    "survey": (
        "survey.py",
        (),
        ["--data", "{data}", "--markdown", "BENCHMARKS.md", "--models", "tflite_models/survey"],
        ["--smoke"],
    ),
}


def run_suite(name: str, smoke: bool, data: str, extra: list[str]) -> tuple[str, float, str]:
    """Run one suite in a child process; returns (status, seconds, detail)."""
    script, needs, full, small = SUITES[name]
    missing = [d for d in needs if not os.path.isdir(os.path.join(data, d))]
    if missing:
        return "skipped", 0.0, f"no {', '.join(missing)} under {data} (pass --data-dir)"
    args = [a.format(data=data, out=SMOKE_DIR) for a in (small if smoke else full)] + extra
    os.makedirs(SMOKE_DIR, exist_ok=True)
    env = {**os.environ, "EFFKERAS_DATA_DIR": data, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    start = time.time()
    proc = subprocess.run([sys.executable, os.path.join(HERE, script), *args], cwd=ROOT, env=env)
    seconds = time.time() - start
    return ("ok" if proc.returncode == 0 else f"failed ({proc.returncode})"), seconds, " ".join(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description="Run effkeras benchmark suites.")
    parser.add_argument("suites", nargs="+", help=f"any of {', '.join(SUITES)}, or all")
    parser.add_argument("--smoke", action="store_true", help="tiny runs for CI (build/bench-smoke)")
    parser.add_argument("--data-dir", help="dataset folder (default $EFFKERAS_DATA_DIR or ../shared/data)")
    args = parser.parse_args(argv)
    names = list(SUITES) if args.suites == ["all"] else args.suites
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)} or all")
    data = os.path.abspath(_data_dir(args.data_dir))
    results = [(n, *run_suite(n, args.smoke, data, extra)) for n in names]
    print("\nsuite     status        seconds  args")
    for name, status, seconds, detail in results:
        print(f"{name:9s} {status:13s} {seconds:7.1f}  {detail}")
    return 0 if all(r[1] in ("ok", "skipped") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
