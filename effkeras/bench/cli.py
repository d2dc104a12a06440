"""The ``effkeras bench`` command::

    effkeras bench MODEL.tflite --target T [--runs N] [--warmup N] [--threads N]
                                [--json] [--csv FILE]
    effkeras bench compare A.tflite B.tflite ... --target T [--plot PNG] [--accuracy A=0.97]

Targets: litert[:xnnpack|builtin|reference], tflm, android[:SERIAL][@xnnpack|cpu|gpu],
serial:PORT, qemu[:BOARD], estimate:BOARD[:cmsis_nn|reference].

:func:`add_parser` adds the command to the main parser's subparsers; bad input raises an
:class:`~effkeras.errors.EffkerasError`, which the main CLI prints as
``effkeras: error: ...`` with exit code 2. ``python -m effkeras.bench.cli ...`` runs the
command on its own with the same convention.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from effkeras.errors import BenchConfigError, EffkerasError, InvalidModelError


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _accuracies(items: Sequence[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            name = ""
        if not sep or not name:
            raise BenchConfigError(
                f"--accuracy takes MODEL=FRACTION, e.g. --accuracy digits_int8.tflite=0.97. "
                f"Received: {item!r}"
            )
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``bench`` to an ``argparse`` subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "bench",
        help="measure latency on a target (litert, tflm, android, serial, qemu, estimate)",
        description="Measure a .tflite's latency on a target, or compare several "
        "(`effkeras bench compare A B ... --target T`).",
    )
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a .tflite; or `compare` followed by two or more .tflite files")
    p.add_argument("--target", default="litert",
                   help="litert[:xnnpack|builtin|reference], tflm, android[:SERIAL][@xnnpack|"
                   "cpu|gpu], serial:PORT, qemu[:mps2_an386], estimate:BOARD[:cmsis_nn|reference] "
                   "(default: litert)")
    p.add_argument("--runs", type=_int, default=50, help="timed inferences (default 50)")
    p.add_argument("--warmup", type=_int, default=5, help="untimed inferences first (default 5)")
    p.add_argument("--threads", type=_int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--rounds", type=_int, default=5,
                   help="interleaved blocks per model (default 5)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="serial: seconds one line from the board may take (default 10)")
    p.add_argument("--tflm-lib", metavar="DIR",
                   help="qemu: the Arduino_TensorFlowLite library folder (default "
                   "$EFFKERAS_TFLM_LIB, then ~/Arduino/libraries/Arduino_TensorFlowLite)")
    p.add_argument("--inputs", metavar="X.npy",
                   help="qemu: inputs to compare with LiteRT's reference kernels, (N, *shape)")
    p.add_argument("--compare", type=_int, default=10,
                   help="qemu: random inputs to compare when --inputs is not given (default 10)")
    p.add_argument("--save-outputs", metavar="Y.npy", help="qemu: write the board's outputs")
    p.add_argument("--texts", metavar="FILE",
                   help="qemu, projection text models: also run the model's text sketch and "
                   "classify each line of FILE (UTF-8) on the emulated board")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--csv", metavar="FILE", help="also write the figures as CSV")
    p.add_argument("--plot", metavar="PNG", help="also plot size, latency and accuracy")
    p.add_argument("--accuracy", action="append", metavar="MODEL=FRACTION",
                   help="accuracy of a model for --plot (repeatable; else read from sidecars)")
    p.set_defaults(func=cmd_bench)
    return p


def _read_texts(path: str | None) -> list[str] | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\r\n") for ln in f]
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchConfigError(f"Cannot read --texts {path!r} as UTF-8 text ({exc}); give a "
                               f"file with one text per line.") from None
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise BenchConfigError(f"--texts {path!r} holds no non-empty line; give one text a line.")
    return lines


def cmd_bench(args) -> int:
    """Run ``effkeras bench`` (one model) or ``effkeras bench compare`` (several)."""
    from effkeras.bench.measure import compare
    from effkeras.bench.plot import plot_tradeoff
    from effkeras.bench.report import format_table, to_json, write_csv

    models = list(args.models)
    comparing = models[0] == "compare" and not os.path.isfile("compare")
    if comparing:
        models = models[1:]
        if len(models) < 2:
            raise BenchConfigError(
                f"`effkeras bench compare` needs two or more models. Received: {models}"
            )
    elif len(models) > 1:
        raise BenchConfigError(
            f"`effkeras bench` takes one model; to compare several write "
            f"`effkeras bench compare {' '.join(models)} --target {args.target}`."
        )
    for m in models:
        if not os.path.exists(m):
            raise InvalidModelError(f"No such model file: {m!r}.")
        if os.path.isdir(m):
            raise InvalidModelError(f"{m!r} is a folder; expected a .tflite file.")
    accuracies = _accuracies(args.accuracy)
    if args.texts is not None and not str(args.target).startswith("qemu"):
        raise BenchConfigError(f"--texts runs a text sketch on the emulated board: use it with "
                               f"--target qemu. Received: --target {args.target}")
    qemu_options = {"inputs": args.inputs, "compare": args.compare, "tflm_lib": args.tflm_lib,
                    "save_outputs": args.save_outputs, "texts": _read_texts(args.texts)}
    results = compare(models, args.target, args.runs, args.warmup, args.threads,
                      rounds=args.rounds, timeout=args.timeout, qemu_options=qemu_options)
    if args.json:
        print(to_json(results))
    else:
        print(format_table(results, ratios=comparing))
    if args.csv:
        write_csv(results, args.csv)
    if args.plot:
        plot_tradeoff(results, args.plot, accuracies)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bench`` alone (``python -m effkeras.bench.cli``); exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog="effkeras")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except EffkerasError as exc:
        print("effkeras: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
