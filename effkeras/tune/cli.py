"""The ``effkeras tune`` command::

    effkeras tune --dataset NAME [--data-dir DIR] --board NAME --max-trials N --out DIR
                  [--epochs N] [--limit-train N] [--workers N] [--resume | --force]
                  [--search pareto|random|bayesian|hyperband] [--model cnn|resnet8|dscnn|sgnn|prado]
                  [--max-latency-ms MS] [--board custom --flash-kb N --ram-kb N [--clock-mhz N]]

Prints a line per trial, then the Pareto front; writes trials.json, pareto.json,
pareto.png, best.tflite and best_sketch/ under --out (see :mod:`effkeras.tune.search`).
Bad arguments raise :class:`~effkeras.errors.EffkerasError`, which the main CLI prints as
one ``effkeras: error: ...`` line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
from typing import Any

from effkeras.errors import EffkerasError

__all__ = ["add_parser", "cmd_tune"]

_DEFAULTS = {"max_trials": 10, "epochs": 3, "search": "pareto", "model": "cnn", "workers": 0}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``tune`` to an ``argparse`` subparsers object; returns its parser."""
    from effkeras.cli import _add_board_args

    p = subparsers.add_parser(
        "tune",
        help="search the most accurate int8 model that fits a board (keras-tuner; Pareto front)",
        description="Search with keras-tuner for int8 models that fit a board: accuracy, size "
        "and latency, with infeasible models rejected before training.",
    )
    # Numbers are parsed here, not by argparse, so that a bad one is one error line.
    p.add_argument("--dataset", help="digits (embedded), mnist or cifar10 (with --data-dir); "
                   "sms_spam (texts: --data-dir is the SMSSpamCollection[.gz] file or its folder)")
    p.add_argument("--data-dir", help="dataset folder (default: $EFFKERAS_DATA_DIR)")
    _add_board_args(p, None)
    p.add_argument("--max-latency-ms", help="reject models whose estimated latency is above this")
    p.add_argument("--max-trials", help=f"trials in all (default {_DEFAULTS['max_trials']})")
    p.add_argument("--out", help="search folder to create (or continue with --resume)")
    p.add_argument("--epochs", help=f"float training epochs a trial (default {_DEFAULTS['epochs']})")
    p.add_argument("--qat-epochs", help="QAT fine-tuning epochs of a trial with qat (default 1)")
    p.add_argument("--limit-train", help="use the first N training samples")
    p.add_argument("--workers", help="0: run in this process (default); N: a chief and N workers")
    p.add_argument("--search", help="pareto (default), random, bayesian or hyperband")
    p.add_argument("--model", help="images: cnn (default), resnet8 or dscnn; texts (sms_spam): "
                   "sgnn (default) or prado")
    p.add_argument("--seed", help="seed of the oracle and of the weights (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--force", action="store_true", help="start over in an existing --out")
    p.set_defaults(func=cmd_tune)
    return p


def _int(name: str, text: str | None, minimum: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise EffkerasError(f"--{name} must be an integer >= {minimum}. Received: {text!r}") from None
    if value < minimum:
        raise EffkerasError(f"--{name} must be an integer >= {minimum}. Received: {value}")
    return value


def _float(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise EffkerasError(f"--{name} must be a positive number. Received: {text!r}")
    return value


def _config(args: argparse.Namespace) -> tuple[Any, int]:
    """The SearchConfig and the worker count from the arguments (checks everything)."""
    from effkeras.cli import _board_from_args
    from effkeras.data import DATASETS
    from effkeras.tune.search import SEARCHES, TEXT_DATASETS, SearchConfig

    image_models, text_models = ("cnn", "resnet8", "dscnn"), ("sgnn", "prado")
    models = image_models + text_models
    datasets = (*DATASETS, *TEXT_DATASETS)
    if not args.out:
        raise EffkerasError("--out DIR is required: the folder the search writes to.")
    if args.resume and args.force:
        raise EffkerasError("--resume continues the search in --out, --force starts it over; "
                            "pass one of them.")
    exists = os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out))
    if exists and not (args.resume or args.force):
        raise EffkerasError(f"--out {args.out!r} already exists: pass --resume to continue its "
                            f"search or --force to start over.")
    if args.resume and not exists:
        raise EffkerasError(f"--resume: nothing to continue in {args.out!r} (no search there). "
                            f"Run without --resume to start one.")
    workers = _int("workers", args.workers, 0)
    if args.resume:
        config = SearchConfig.load(args.out)
        for name in ("dataset", "search", "model"):
            given = getattr(args, name)
            if given is not None and given != getattr(config, name):
                raise EffkerasError(f"--resume: this search used --{name} {getattr(config, name)}; "
                                    f"it cannot change. Received: --{name} {given}")
        if args.board is not None and args.board not in ("custom", config.board["name"]):
            raise EffkerasError(f"--resume: this search used --board {config.board['name']}; it "
                                f"cannot change. Received: --board {args.board}")
        max_trials = _int("max-trials", args.max_trials, 1)
        if max_trials is not None:
            config.max_trials = max_trials
        for name, attr in (("epochs", "epochs"), ("qat-epochs", "qat_epochs")):
            value = _int(name, getattr(args, attr), 0 if attr == "qat_epochs" else 1)
            if value is not None:
                setattr(config, attr, value)
        return config, workers or 0
    if args.dataset is None:
        raise EffkerasError(f"--dataset NAME is required. Valid datasets: {', '.join(datasets)}.")
    if args.dataset not in datasets:
        raise EffkerasError(f"Unknown dataset {args.dataset!r}. Valid datasets: {', '.join(datasets)}.")
    search = args.search or _DEFAULTS["search"]
    if search not in SEARCHES:
        raise EffkerasError(f"Unknown search {search!r}. Valid searches: {', '.join(SEARCHES)}.")
    text = args.dataset in TEXT_DATASETS
    model = args.model or ("sgnn" if text else _DEFAULTS["model"])
    if model not in models:
        raise EffkerasError(f"Unknown model {model!r}. Valid models: {', '.join(models)}.")
    if text and model not in text_models:
        raise EffkerasError(f"--model {model} is an image model and --dataset {args.dataset} is a "
                            f"text dataset: use --model {' or '.join(text_models)} with it.")
    if not text and model in text_models:
        raise EffkerasError(f"--model {model} is a text model and --dataset {args.dataset} is an "
                            f"image dataset: use --model {', '.join(image_models)} with it (or "
                            f"--dataset {' or '.join(TEXT_DATASETS)}).")
    if args.board is None:
        raise EffkerasError("--board NAME is required (see `effkeras boards`), or --board custom "
                            "--flash-kb N --ram-kb N.")
    board = _board_from_args(args)
    config = SearchConfig(
        dataset=args.dataset, board=board.to_dict(), data_dir=args.data_dir,
        max_trials=_int("max-trials", args.max_trials, 1) or _DEFAULTS["max_trials"],
        epochs=_int("epochs", args.epochs, 1) or _DEFAULTS["epochs"],
        qat_epochs=1 if args.qat_epochs is None else _int("qat-epochs", args.qat_epochs, 0),
        limit_train=_int("limit-train", args.limit_train, 2),
        max_latency_ms=_float("max-latency-ms", args.max_latency_ms),
        model=model, search=search, seed=_int("seed", args.seed, 0) or 0,
    )
    return config, workers or 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Run ``effkeras tune``; returns the exit code."""
    from effkeras.tune.search import tune

    config, workers = _config(args)
    if args.force and os.path.isdir(args.out):
        for name in ("search", "logs", "best_sketch"):
            shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
        for name in ("config.json", "trials.json", "pareto.json", "pareto.png", "best.tflite"):
            if os.path.exists(os.path.join(args.out, name)):
                os.remove(os.path.join(args.out, name))
    board = config.board
    print(f"effkeras tune: {config.model} on {config.dataset} for {board['title']} (flash "
          f"{board['flash_kb']:g} KiB, RAM {board['ram_kb']:g} KiB"
          + (f", max {config.max_latency_ms:g} ms" if config.max_latency_ms else "")
          + f"), {config.search} search, {config.max_trials} trials"
          + (f", {workers} workers" if workers else "") + (" (resumed)" if args.resume else ""),
          flush=True)
    summary = tune(config, args.out, workers=workers, resume=args.resume,
                   log=lambda line: print(line, flush=True))
    print(f"{summary['trials']} trials: {summary['feasible']} fit, {summary['infeasible']} do not, "
          f"{summary['failed']} failed. Pareto front (accuracy, size, latency):")
    for t in summary["front"]:
        print(f"  trial {t['trial_id']}: int8 acc {t['val_int8_accuracy']:.3f}, "
              f"{t['size_bytes']:,} B, arena {t['arena_bytes']:,} B, {t['latency_ms']:.2f} ms  "
              f"{t['hyperparameters']}")
    best = summary["best"]
    if best is None:
        print("No model fits the board: see trials.json for why each does not.")
        return 1
    test = best.get("test_int8_accuracy")
    print(f"best: trial {best['trial_id']} -> {best['tflite']}"
          + (f" (test int8 accuracy {test:.3f})" if test is not None else "")
          + f", sketch {best['sketch']}; {os.path.join(args.out, 'pareto.png')}")
    return 0
