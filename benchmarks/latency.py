"""Latency of the demo's float and int8 models on every host target, for BENCHMARKS.md.

    .venv/bin/python benchmarks/latency.py [--float F.tflite --int8 I.tflite] [--runs 200]
                                      [--cifar] [--results OUT.json]

Without --float/--int8 it builds the demo's CNN (effkeras.demo.build_cnn) on the embedded
digits data, trains it briefly and converts it with effkeras.convert.to_tflite (float32,
and full int8 with int8 input/output). ``--cifar`` adds the same architecture at the
demo's CIFAR-10 size (32x32x3, width 16; random weights and calibration data: latency
does not depend on the values).

For each model pair and target (litert with XNNPACK, built-in and reference kernels at 1
and 2 threads; tflm; estimate:nano33ble) the float and int8 models are timed interleaved
(effkeras.bench.compare) and the table gives medians, the float/int8 speed-up and the
noisy flags. Prints the machine (uname -a, CPU model, nproc) and the date first.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402
from _machine import machine_lines as machine  # noqa: E402

TARGETS = (
    ("litert:xnnpack", 1), ("litert:xnnpack", 2),
    ("litert:builtin", 1), ("litert:builtin", 2),
    ("litert:reference", 1), ("litert:reference", 2),
    ("tflm", 1),
    ("estimate:nano33ble", 1),
)


def digits_models(epochs: int) -> tuple[bytes, bytes]:
    import keras

    from effkeras.convert import to_tflite
    from effkeras.data import load_dataset
    from effkeras.demo import build_cnn

    data = load_dataset("digits")
    keras.utils.set_random_seed(0)
    model = build_cnn(data.x_train.shape[1:], 10)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    calib = data.x_train[:200]
    return to_tflite(model), to_tflite(model, quantize="int8", representative_data=calib,
                                       io_dtype="int8")


def cifar_sized_models() -> tuple[bytes, bytes]:
    import keras

    from effkeras.convert import to_tflite
    from effkeras.demo import build_cnn

    keras.utils.set_random_seed(0)
    model = build_cnn((32, 32, 3), 10, width=16)
    calib = np.random.default_rng(0).random((64, 32, 32, 3)).astype(np.float32)
    return to_tflite(model), to_tflite(model, quantize="int8", representative_data=calib,
                                       io_dtype="int8")


def table(name: str, float_blob: bytes, int8_blob: bytes, runs: int, warmup: int) -> list[str]:
    from effkeras.bench import compare

    lines = [
        f"### {name}: float {len(float_blob):,} B, int8 {len(int8_blob):,} B",
        "",
        "| target | threads | float median ms | int8 median ms | float/int8 | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for target, threads in TARGETS:
        f, q = compare([float_blob, int8_blob], target, runs=runs, warmup=warmup,
                       threads=threads)
        notes = []
        for label, r in (("float", f), ("int8", q)):
            if r.noisy:
                notes.append(f"{label} noisy (spread {r.stats.spread:.0%})")
            if r.arena_bytes:
                notes.append(f"{label} arena {r.arena_bytes:,} B")
        if target.startswith("estimate"):
            notes.append("estimate, not measured: float ops are costed as reference kernels, "
                         "so the ratio is the assumed CMSIS-NN gain (4.6x) by construction")
        if target.startswith("litert"):
            notes.append(f"int8 peak RSS {q.peak_rss_bytes / 2**20:.0f} MiB")
        ratio = f.latency_us / q.latency_us
        lines.append(f"| {target} | {threads} | {f.latency_ms:.4f} | {q.latency_ms:.4f} | "
                     f"{ratio:.2f}x | {'; '.join(notes)} |")
        print(lines[-1], flush=True)
    return lines + [""]


TITLE = "Latency: float vs int8 on every host target"


def headline(tables: list[dict]) -> list[dict]:
    """int8 against float on LiteRT with one thread, for the largest model measured (the last table)."""
    t = tables[-1]
    col = t["columns"].index("float/int8")
    ratio = {r[0]: float(r[col].rstrip("x")) for r in t["rows"] if r[1] == "1"}
    best = max(("litert:xnnpack", "litert:builtin"), key=lambda k: ratio.get(k, 0.0))
    met = "yes" if min(ratio.get("litert:xnnpack", 0), ratio.get("litert:builtin", 0)) >= 2 else (
        "partly" if ratio.get(best, 0) >= 2 else "no")
    return [results.headline_row(
        "int8 vs float latency, LiteRT 1 thread",
        f"built-in kernels {ratio.get('litert:builtin', float('nan')):.2f}x, XNNPACK "
        f"{ratio.get('litert:xnnpack', float('nan')):.2f}x faster on the {t['title'].split(':')[0]}",
        "int8 2x faster", met)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--float", dest="float_path")
    p.add_argument("--int8", dest="int8_path")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--cifar", action="store_true", help="also the CIFAR-10-sized demo CNN")
    p.add_argument("--results", help="write the results file here (benchmarks/results/latency.json)")
    args = p.parse_args(argv)
    command = "python benchmarks/latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = [f"## {TITLE} (`{command.strip()}`)", "",
           *machine(), "",
           f"{args.runs} timed runs after {args.warmup} warm-up runs per model and target; "
           "float and int8 timed interleaved in 5 rounds, each in its own child process; "
           "`interpreter.invoke()` only. float/int8 > 1 means int8 is faster.", ""]
    print("\n".join(out), flush=True)
    if args.float_path and args.int8_path:
        with open(args.float_path, "rb") as f:
            fb = f.read()
        with open(args.int8_path, "rb") as f:
            qb = f.read()
        out += table("given models", fb, qb, args.runs, args.warmup)
    else:
        fb, qb = digits_models(args.epochs)
        out += table("demo CNN on digits (8x8x1, width 8)", fb, qb, args.runs, args.warmup)
    if args.cifar:
        fb, qb = cifar_sized_models()
        out += table("demo CNN at CIFAR-10 size (32x32x3, width 16)", fb, qb, args.runs,
                     args.warmup)
    if args.results:
        md = "\n".join(out)
        tables, _ = results.parse_markdown(md)
        results.save(args.results, results.build("latency", title=TITLE, markdown=md, headline=headline(tables),
                                                 script_command=command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
