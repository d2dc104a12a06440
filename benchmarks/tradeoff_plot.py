"""The README's size / latency / accuracy plot: the survey's published int8 CIFAR-10 models
against effkeras's int8 models of the survey suite (tflite_models/survey).

    .venv/bin/python benchmarks/tradeoff_plot.py --data ../shared/data --out docs/tradeoff.png

Latency: LiteRT on this host, 1 thread, built-in kernels, interleaved (effkeras.bench.compare).
Accuracies: the survey files' accuracy on the JPEG test set as measured with LiteRT here
(given in the benchmark-suite issue), and each effkeras model's sidecar.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

# The survey's own int8 files, accuracy on the 10,000 JPEG test images (LiteRT, measured here).
SURVEY_ACCURACY = {
    "wm_005_aug_quantized.tflite": 0.6484,
    "wm_025_aug_quantized.tflite": 0.7739,
    "wm_05_aug_dist_quantized.tflite": 0.8046,
    "wm_10_aug_quantized.tflite": 0.8154,
}


def main(argv: list[str] | None = None) -> int:
    from effkeras.bench import compare, format_table, plot_tradeoff

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="docs/tradeoff.png")
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    models, acc = [], {}
    for name, a in SURVEY_ACCURACY.items():
        path = os.path.join(args.data, "survey_tflite", name)
        models.append(path)
        acc[name] = a
    for path in sorted(glob.glob(os.path.join(root, "tflite_models", "survey", "*.tflite"))):
        side = json.load(open(path[: -len(".tflite")] + ".json"))
        models.append(path)
        acc[os.path.basename(path)] = side["accuracy"]
    results = compare(models, target="litert:builtin", runs=args.runs, warmup=10)
    print(format_table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    groups = {os.path.basename(m): ("survey's published int8 files" if os.path.basename(m) in SURVEY_ACCURACY
                                    else "effkeras survey suite") for m in models}
    plot = plot_tradeoff(results, args.out, accuracies=acc, groups=groups,
                         title="CIFAR-10 (JPEG) int8: survey files vs effkeras survey suite")
    print(json.dumps(plot["points"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
