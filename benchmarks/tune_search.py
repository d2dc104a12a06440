"""Search benchmark: effkeras.tune's four searches against the hand-found half-size ResNet-8.

The question (issue 23): on CIFAR-10 under 49,248 B (half the MLPerf Tiny ResNet-8 file),
does a search, with no person in the loop, find a model at least as accurate as the
hand-found 48,528 B / 82.02% of the microcontroller suite (a full ResNet-8 whose last stack
is channel-pruned 45%, KL-distilled over about 136 epochs on 50,000 images, int8 weights
per tensor)? Each of ``pareto``, ``random``, ``bayesian`` and ``hyperband`` runs through
:func:`effkeras.tune.tune` (what ``effkeras tune`` runs) with the same data, trial budget,
per-trial training budget, seed and size limit; the limit is a custom board
(:func:`effkeras.boards.custom_board`) with ``flash_kb = 49248 / 1024`` and no program
estimate, so "fits in flash" is exactly "the int8 .tflite is at most 49,248 B"
(RAM: ``--ram-kb``, 256 KiB by default, the Nano 33 BLE's).

Beside the searches, the hand-found ARCHITECTURE is trained once under the same per-trial
budget (the same BoardTuner trial: same data, epochs, batch, optimizer, seed), as the fair
comparison at a reduced budget; the published 48,528 B / 82.02% is the goal. The hand-found
model is int8 per tensor (per channel it does not fit 49,248 B), which effkeras.tune's
trials cannot choose, so its trial converts per tensor after post-training quantization
and gets the QAT trials' extra epochs as float epochs (``--epochs + --qat-epochs``).

    python benchmarks/tune_search.py --data ../shared/data --results benchmarks/results/tune_search.json
    python benchmarks/tune_search.py ... --searches random,bayesian --out DIR   # some now
    python benchmarks/tune_search.py ... --searches hyperband --out DIR --resume # the rest, merged

A search folder ``OUT/SEARCH`` is a plain ``effkeras tune --out`` folder plus
``bench.json`` (its wall time); the results table is made of every search folder under
``OUT`` that has finished (``pareto.json``), so runs of separate searches merge.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import results  # noqa: E402
from _machine import ROOT, default_data_dir  # noqa: E402
from _machine import machine_lines as machine  # noqa: E402

TITLE = "Search: effkeras.tune random vs Bayesian vs Hyperband vs Pareto on CIFAR-10 under 49,248 B"
SEARCHES = ("pareto", "random", "bayesian", "hyperband")
MAX_BYTES = 49_248
#: the microcontroller suite's hand-found model (tflite_models/mcu/results.json, chosen half-size)
HAND_BYTES = 48_528
HAND_ACC = 0.8202
HAND_WIDTHS = (16, 32, 64)
HAND_SPARSITY = 0.45
BASELINE = "handfound"
BENCH_FILE = "bench.json"


class Usage(Exception):
    """Bad arguments or a missing input: exit 2 with this message."""


# ---------------------------------------------------------------------------- arguments


def _positive(label: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{label} must be a positive integer. Received: {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{label} must be a positive integer. Received: {text!r}")
        return value
    return parse


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--qat-epochs must be an integer >= 0. Received: {text!r}")
    return value


def parse_searches(text: str) -> list[str]:
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    bad = [s for s in names if s not in SEARCHES]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"--searches takes a comma-separated list of {', '.join(SEARCHES)}. Received: {text!r}")
    return list(dict.fromkeys(names))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tune_search.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="data folder (default $EFFKERAS_DATA_DIR or ../shared/data)")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "mnist", "digits"))
    p.add_argument("--results", default=None, help="results file to write (benchmarks/results/tune_search.json)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "tune_search"), help="search folders")
    p.add_argument("--train", type=_positive("--train"), default=10_000,
                   help="training images (the last 20%% of them validate); default 10000")
    p.add_argument("--epochs", type=_positive("--epochs"), default=2, help="float epochs a trial")
    p.add_argument("--qat-epochs", type=_non_negative, default=1, help="QAT epochs of a trial with qat")
    p.add_argument("--max-trials", type=_positive("--max-trials"), default=6, help="trials a search")
    p.add_argument("--batch-size", type=_positive("--batch-size"), default=64)
    p.add_argument("--model", default="resnet8", choices=("resnet8", "cnn", "dscnn"),
                   help="the searched HyperModel (effkeras.tune.HYPERMODELS)")
    p.add_argument("--searches", type=parse_searches, default=list(SEARCHES),
                   help="which searches to run now (comma-separated); the table has every finished one under --out")
    p.add_argument("--no-baseline", action="store_true", help="do not train the hand-found architecture now")
    p.add_argument("--report", action="store_true",
                   help="run nothing: write the table and results of the finished folders under --out")
    p.add_argument("--run-command", default=None,
                   help="with --report: the command line that ran the searches, for the table")
    p.add_argument("--resume", action="store_true",
                   help="continue the searches (and baseline) under --out instead of starting them again")
    p.add_argument("--max-bytes", type=_positive("--max-bytes"), default=MAX_BYTES, help="size limit of the .tflite")
    p.add_argument("--ram-kb", type=_positive("--ram-kb"), default=256, help="RAM of the custom board (arena)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="digits, 300 images, 1 epoch, 2 trials: proves the code runs")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.quick:
        args.dataset, args.train, args.epochs, args.qat_epochs, args.max_trials = "digits", 300, 1, 0, 2
        args.model = "cnn"
        if args.results:
            args.out = os.path.join(os.path.dirname(os.path.abspath(args.results)), "tune_search")
    if args.dataset != "digits":
        args.data = args.data or default_data_dir()
        if not os.path.isdir(args.data):
            p.error(f"--data folder {args.data!r} does not exist (it needs {args.dataset})")
        if args.dataset == "cifar10" and not any(
                os.path.isfile(os.path.join(d, "cifar10_train_jpg.tar.gz"))
                or os.path.isdir(os.path.join(d, "CIFAR-10-images", "train"))
                for d in (args.data, os.path.join(args.data, "cifar10_jpg"))):
            p.error(f"--data folder {args.data!r} has neither cifar10_jpg/cifar10_train_jpg.tar.gz nor an "
                    "extracted cifar10_jpg/CIFAR-10-images/train tree")
    if args.train < 5:
        p.error(f"--train must be at least 5 (20% of it validates). Received: {args.train}")
    return args


def size_board(max_bytes: int, ram_kb: int):
    """A custom board whose flash is exactly ``max_bytes`` with no program estimate."""
    from effkeras.boards import custom_board

    board = custom_board(flash_kb=max_bytes / 1024, ram_kb=ram_kb, clock_mhz=64, core="Cortex-M4F",
                         name=f"max{max_bytes}B", program_flash_kb=0, cmsis_nn=True)
    assert board.flash_bytes == max_bytes, (board.flash_bytes, max_bytes)
    return board


# ---------------------------------------------------------------------------- the searches


def run_search(args, search: str, board) -> dict[str, Any]:
    """One search through effkeras.tune.tune; returns its row."""
    from effkeras.tune import SearchConfig, tune

    out = os.path.join(args.out, search)
    resume = bool(args.resume and os.path.isfile(os.path.join(out, "config.json")))
    before = _read(os.path.join(out, BENCH_FILE)).get("wall_s", 0.0) if resume else 0.0
    config = SearchConfig(dataset=args.dataset, board=board.to_dict(), max_trials=args.max_trials,
                          epochs=args.epochs, qat_epochs=args.qat_epochs, batch_size=args.batch_size,
                          data_dir=args.data, limit_train=args.train, model=args.model, search=search,
                          seed=args.seed)
    t0 = time.monotonic()
    summary = tune(config, out, resume=resume)
    wall = before + time.monotonic() - t0
    bench = {"wall_s": round(wall, 1), "resumed": resume, "finished": results.now()}
    _write(os.path.join(out, BENCH_FILE), bench)
    return search_row(search, summary, bench, _read(os.path.join(out, "trials.json")).get("trials", []))


def search_row(search: str, summary: dict[str, Any], bench: dict[str, Any], trials: list[dict]) -> dict[str, Any]:
    """The figures of one finished search (its pareto.json, bench.json and trials.json)."""
    best = summary.get("best") or None
    row = {"search": search, "trials": summary.get("trials", 0), "feasible": summary.get("feasible", 0),
           "infeasible": summary.get("infeasible", 0), "failed": summary.get("failed", 0),
           "trained": sum(1 for t in trials if t.get("trained")), "wall_s": bench.get("wall_s"),
           "best": None}
    if best:
        row["best"] = {"hyperparameters": best.get("hyperparameters"), "size_bytes": best.get("size_bytes"),
                       "val_int8_accuracy": best.get("val_int8_accuracy"),
                       "test_int8_accuracy": best.get("test_int8_accuracy"),
                       "arena_bytes": best.get("arena_bytes"), "qat": best.get("qat"),
                       "pruning": best.get("pruning"), "trial_id": best.get("trial_id")}
    return row


def collect(out_dir: str) -> list[dict[str, Any]]:
    """Rows of every finished search folder under ``out_dir``, in SEARCHES order."""
    rows = []
    for search in SEARCHES:
        d = os.path.join(out_dir, search)
        summary, bench = _read(os.path.join(d, "pareto.json")), _read(os.path.join(d, BENCH_FILE))
        if summary and bench:
            rows.append(search_row(search, summary, bench, _read(os.path.join(d, "trials.json")).get("trials", [])))
    return rows


# ---------------------------------------------------------------------------- the hand-found architecture


def handfound_hypermodel(input_shape, num_classes: int):
    """The hand-found architecture as a BoardHyperModel with nothing to search: the MLPerf
    Tiny ResNet-8 of benchmarks/mcu_train.py (16/32/64, L2 1e-4, he_normal, projection
    shortcuts) with every 64-filter conv (the last stack) channel-pruned 45%."""
    import keras
    from keras import layers

    from effkeras.tune import BoardHyperModel

    class HandFoundResNet8(BoardHyperModel):
        def build_model(self, hp):
            hp.Fixed("architecture", "resnet8_16_32_64_last45")
            reg = keras.regularizers.L2(1e-4)
            kw = dict(padding="same", kernel_initializer="he_normal", kernel_regularizer=reg)

            def cbr(x, f, name, s=1, relu=True):
                x = layers.Conv2D(f, 3, strides=s, use_bias=False, name=name, **kw)(x)
                x = layers.BatchNormalization(name=f"{name}_bn")(x)
                return layers.ReLU(name=f"{name}_relu")(x) if relu else x

            x = inp = keras.Input(self.input_shape, name="input")
            x = cbr(x, HAND_WIDTHS[0], "stem")
            self._plan = {}
            for i, f in enumerate(HAND_WIDTHS):
                s = 1 if i == 0 else 2
                y = cbr(x, f, f"b{i}_conv1", s=s)
                y = cbr(y, f, f"b{i}_conv2", relu=False)
                if i > 0:
                    x = layers.Conv2D(f, 1, strides=s, name=f"b{i}_short", **kw)(x)
                x = layers.ReLU(name=f"b{i}_relu")(layers.Add(name=f"b{i}_add")([x, y]))
                if f == HAND_WIDTHS[-1]:
                    names = [f"b{i}_conv1", f"b{i}_conv2"] + ([f"b{i}_short"] if i > 0 else [])
                    self._plan.update({n: HAND_SPARSITY for n in names})
            x = layers.GlobalAveragePooling2D(name="gap")(x)
            x = layers.Dense(self.num_classes, kernel_initializer="he_normal", kernel_regularizer=reg,
                             name="logits")(x)
            return keras.Model(inp, layers.Softmax(name="probs")(x), name="resnet8_handfound")

        def pruning(self, hp):
            return dict(self._plan)

    return HandFoundResNet8(input_shape, num_classes, qat=False, name="handfound")


def run_baseline(args, board) -> dict[str, Any]:
    """The hand-found architecture, one BoardTuner trial under the searches' per-trial budget."""
    import keras_tuner
    import numpy as np

    from effkeras.runtime import LiteRTRunner
    from effkeras.tune import ACCURACY, BoardTuner, Constraints, SearchConfig
    from effkeras.tune.results import collect_trials
    from effkeras.tune.search import load_data

    class PerTensorTuner(BoardTuner):
        """The hand-found model's int8: weights per tensor (post-training quantization)."""

        def _convert(self, model, calibration, qat, projector=None):
            from effkeras.convert import to_tflite

            return to_tflite(model, quantize="int8", representative_data=calibration, io_dtype="int8",
                             strip_names=True, per_channel=False)

    config = SearchConfig(dataset=args.dataset, board=board.to_dict(), data_dir=args.data,
                          limit_train=args.train, seed=args.seed)
    x, y, xv, yv, ds = load_data(config)
    out = os.path.join(args.out, BASELINE)
    resume = bool(args.resume and os.path.isfile(os.path.join(out, BENCH_FILE)))
    t0 = time.monotonic()
    hm = handfound_hypermodel(tuple(int(d) for d in ds.input_shape), int(len(ds.class_names) or max(ds.y_train) + 1))
    oracle = keras_tuner.oracles.RandomSearchOracle(keras_tuner.Objective(ACCURACY, "max"), max_trials=1,
                                                    seed=args.seed, max_consecutive_failed_trials=2)
    tuner = PerTensorTuner(hm, oracle, Constraints(board), epochs=args.epochs + args.qat_epochs, qat_epochs=0,
                           batch_size=args.batch_size, seed=args.seed, verbose=1, directory=out,
                           project_name="search", overwrite=not resume)
    tuner.search(x, y, validation_data=(xv, yv), verbose=0)
    trials = collect_trials(os.path.join(out, "search"))
    if not trials:
        raise RuntimeError(f"the hand-found architecture's trial did not run (see {out})")
    t = trials[0]
    row = {"search": BASELINE, "trials": 1, "feasible": int(bool(t["feasible"])),
           "infeasible": int(t["feasible"] is False), "failed": int(t["status"] == "FAILED"),
           "trained": int(t["trained"]), "epochs": args.epochs + args.qat_epochs, "reasons": t["reasons"],
           "message": t.get("message"), "best": None}
    if t["trained"] and t["model"]:
        with open(t["model"], "rb") as f:
            tflite = f.read()
        probs = LiteRTRunner(tflite).predict(np.asarray(ds.x_test, "float32"))
        row["best"] = {"hyperparameters": {"architecture": "ResNet-8 16/32/64, last stack channel-pruned 45%",
                                           "int8": "per tensor, PTQ"},
                       "size_bytes": t["size_bytes"], "val_int8_accuracy": t["val_int8_accuracy"],
                       "test_int8_accuracy": float(np.mean(np.argmax(probs, -1) == np.asarray(ds.y_test))),
                       "arena_bytes": t["arena_bytes"], "qat": False, "pruning": t["pruning"],
                       "fits": bool(t["feasible"]), "trial_id": t["trial_id"]}
    row["wall_s"] = round(time.monotonic() - t0, 1)
    _write(os.path.join(out, BENCH_FILE), row)
    return row


# ---------------------------------------------------------------------------- verdicts and tables


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.2f}%"


def _bytes(v: Any) -> str:
    return "-" if v is None else f"{int(v):,}"


def best_search(rows: list[dict[str, Any]], max_bytes: int = MAX_BYTES) -> dict[str, Any] | None:
    """The search row whose best feasible model is the most accurate on the VALIDATION images
    (as each search picks its own best: the test images only measure the chosen one)."""
    ok = [r for r in rows if r.get("search") in SEARCHES and r.get("best")
          and r["best"].get("test_int8_accuracy") is not None and r["best"]["size_bytes"] <= max_bytes]
    return max(ok, key=lambda r: (r["best"]["val_int8_accuracy"], -r["best"]["size_bytes"])) if ok else None


def goal_verdict(rows: list[dict[str, Any]], goal_acc: float = HAND_ACC, max_bytes: int = MAX_BYTES) -> str:
    """``yes`` when a search's best model is at least ``goal_acc`` under ``max_bytes``, else ``no``."""
    b = best_search(rows, max_bytes)
    return "yes" if b and b["best"]["test_int8_accuracy"] >= goal_acc else "no"


def baseline_verdict(rows: list[dict[str, Any]], max_bytes: int = MAX_BYTES) -> str:
    """``yes`` when the chosen search model's test accuracy is at least the hand-found
    architecture's at the same budget; ``no`` otherwise, or without a trained baseline."""
    b = best_search(rows, max_bytes)
    base = next((r for r in rows if r.get("search") == BASELINE and r.get("best")), None)
    if not b or not base:
        return "no"
    return "yes" if b["best"]["test_int8_accuracy"] >= base["best"]["test_int8_accuracy"] else "no"


def headline(rows: list[dict[str, Any]], args) -> list[dict[str, str]]:
    b = best_search(rows, args.max_bytes)
    budget = (f"{args.train:,} images, {args.epochs} + {args.qat_epochs} QAT epochs a trial, "
              f"{args.max_trials} trials a search")
    result = (f"{_bytes(b['best']['size_bytes'])} B, {_pct(b['best']['test_int8_accuracy'])} ({b['search']}; {budget})"
              if b else f"no feasible trained model ({budget})")
    out = [results.headline_row(
        f"search, no person in the loop: CIFAR-10 under {args.max_bytes:,} B",
        result, f"at least the hand-found {HAND_BYTES:,} B / {100 * HAND_ACC:.2f}% (136 epochs, 50,000 images)",
        goal_verdict(rows, HAND_ACC, args.max_bytes))]
    base = next((r for r in rows if r.get("search") == BASELINE), None)
    if base:
        bb = base.get("best")
        out.append(results.headline_row(
            "search vs the hand-found architecture at the same per-trial budget",
            (f"{_pct(b['best']['test_int8_accuracy']) if b else '-'} vs {_pct(bb['test_int8_accuracy'])} "
             f"({_bytes(bb['size_bytes'])} B)") if bb else "the hand-found architecture's trial did not train",
            "at least the hand-found architecture", baseline_verdict(rows, args.max_bytes)))
    return out


def _hp_text(hp: dict[str, Any] | None) -> str:
    if not hp:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in hp.items() if not k.startswith("tuner/"))


def markdown(rows: list[dict[str, Any]], args, command: str) -> str:
    lines = [f"# {TITLE}", "", *machine(), f"- command: `{command}`",
             f"- budget: {args.dataset}, the first {args.train:,} training images (class-balanced; the last 20% "
             f"validate), {args.epochs} float epochs a trial (+{args.qat_epochs} QAT epoch(s) for a trial with "
             f"qat), batch {args.batch_size}, Adam 1e-2, {args.max_trials} trials a search (Hyperband: its own "
             f"schedule, max_epochs {max(2, args.epochs)}, factor 3), seed {args.seed}, HyperModel `{args.model}`; "
             f"test accuracy on all {'10,000 CIFAR-10 JPEG' if args.dataset == 'cifar10' else args.dataset} test "
             f"images in LiteRT", "",
             f"Best feasible model of each search (int8 .tflite <= {args.max_bytes:,} B), the hand-found "
             "architecture under the same per-trial budget, and the published hand-found model (the goal):", "",
             "| search | best model | int8 B | val int8 | test int8 | trials (feasible / infeasible / failed) "
             "| wall time |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r.get("best") or {}
        name = "hand-found architecture, same budget" if r["search"] == BASELINE else r["search"]
        wall = f"{r['wall_s'] / 60:.1f} min" if r.get("wall_s") is not None else "-"
        counts = f"{r['trials']} ({r['feasible']} / {r['infeasible']} / {r['failed']})"
        hp = _hp_text(b.get("hyperparameters")) if b else ("; ".join(r.get("reasons") or []) or "none feasible")
        lines.append(f"| {name} | {hp} | {_bytes(b.get('size_bytes'))} | {_pct(b.get('val_int8_accuracy'))} | "
                     f"{_pct(b.get('test_int8_accuracy'))} | {counts} | {wall} |")
    lines.append(f"| goal: hand-found, published (mcu suite) | ResNet-8 16/32/64, last stack channel-pruned 45%, "
                 f"KL-distilled ~136 epochs on 50,000 images, int8 per tensor | {HAND_BYTES:,} | - | "
                 f"{100 * HAND_ACC:.2f}% | - | hours (H100 + host) |")
    b = best_search(rows, args.max_bytes)
    lines += ["", f"- Verdict against the goal \"at least {100 * HAND_ACC:.2f}% under {args.max_bytes:,} B\": "
              f"**{goal_verdict(rows, HAND_ACC, args.max_bytes)}**"
              + (f" (the search model best on the validation images: test {_pct(b['best']['test_int8_accuracy'])} at {_bytes(b['best']['size_bytes'])} B, "
                 f"{b['search']})" if b else " (no search found a feasible trained model)")
              + (". At this reduced budget the comparison that means something is the hand-found architecture "
                 "trained the same way; the goal needs the full budget (see the options below)."
                 if goal_verdict(rows, HAND_ACC, args.max_bytes) == "no" else ".")]
    lines += [f"- The size limit is a custom board: flash exactly {args.max_bytes:,} B, no program estimate, RAM "
              f"{args.ram_kb} KiB for the TFLM arena; a trial that does not fit is measured untrained and not "
              "trained (infeasible). Every search runs through `effkeras.tune.tune` (what `effkeras tune` runs), "
              "one process, one after another on the same machine.",
              "- The hand-found architecture's trial is a BoardTuner trial with nothing searched; its int8 weights "
              "are per tensor (per channel it does not fit), after post-training quantization, so it gets the "
              f"QAT trials' extra epoch(s) as float epochs ({args.epochs + args.qat_epochs} in all). It is plainly "
              "trained on labels: no distillation.",
              "- Read the same-budget comparison as what it is: at a few epochs a trial, a smaller model is closer "
              "to convergence than the full-width hand-found ResNet-8 (Adam 1e-2, its L2 kept), so a search that "
              "beats it here has picked well for this budget; it says nothing about the hand-found model at its "
              "own budget.",
              "- Hyperband's trial count is set by its schedule (effkeras.tune gives keras-tuner's HyperbandOracle "
              "no max_trials): here "
              + (f"{hb['trials']} trials" if (hb := next((r for r in rows if r["search"] == "hyperband"), None))
                 else "not run")
              + f" against {args.max_trials} for the others; its trials train 1 to {max(2, args.epochs)} float "
              "epochs each (successive halving), so its training epochs differ from the others'.",
              *(["- The data folder is a tree extracted from cifar10_jpg's two tarballs (the same JPEG files, read by "
                 "effkeras.data in the same sorted, class-interleaved order): reading the tar.gz takes minutes a load "
                 "here, the tree seconds."] if _is_tree(args.data) else []),
              "- A full run on a bigger machine: `python benchmarks/tune_search.py --data DIR --train 50000 "
              "--epochs 30 --max-trials 40 --out DIR --results FILE`, or one search at a time with "
              "`--searches NAME --out DIR --resume` (the table merges every finished search under --out)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main


def _is_tree(data: str | None) -> bool:
    """Whether ``data`` holds an extracted CIFAR-10 JPEG tree and no tarball."""
    if not data:
        return False
    dirs = (data, os.path.join(data, "cifar10_jpg"))
    return (any(os.path.isdir(os.path.join(d, "CIFAR-10-images", "train")) for d in dirs)
            and not any(os.path.isfile(os.path.join(d, "cifar10_train_jpg.tar.gz")) for d in dirs))


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write(path: str, doc: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    board = size_board(args.max_bytes, args.ram_kb)
    if args.report:
        args.searches, args.no_baseline = [], True
    if not args.no_baseline:  # first: it is the comparison that matters at a reduced budget
        print("[tune_search] the hand-found architecture", flush=True)
        base = run_baseline(args, board)
        print(f"[tune_search] baseline done: {json.dumps(base, default=str)}", flush=True)
    for search in args.searches:
        print(f"[tune_search] {search}: {args.max_trials} trials", flush=True)
        row = run_search(args, search, board)
        print(f"[tune_search] {search} done: {json.dumps(row, default=str)}", flush=True)
    rows = collect(args.out)
    base_file = os.path.join(args.out, BASELINE, BENCH_FILE)
    if os.path.isfile(base_file):
        rows.append(_read(base_file))
    if not any(r["search"] in SEARCHES for r in rows):
        print("tune_search: error: no finished search under " + args.out, file=sys.stderr)
        return 1
    command = "benchmarks/tune_search.py " + " ".join(argv)
    text = markdown(rows, args, args.run_command or command)
    print(text)
    if args.results:
        results.save(args.results, results.build(
            "tune_search", title=TITLE, markdown=text, headline=headline(rows, args),
            raw={"rows": rows, "budget": {k: getattr(args, k) for k in (
                "dataset", "train", "epochs", "qat_epochs", "max_trials", "batch_size", "model", "seed",
                "max_bytes", "ram_kb")}}, script_command=command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
