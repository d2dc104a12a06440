"""A whole search from a :class:`SearchConfig`: data, oracle, tuner, run, outputs.

:func:`tune` is what ``effkeras tune`` calls. A search lives in one folder::

    OUT/config.json        the SearchConfig (``--resume`` reads it back)
    OUT/search/            keras-tuner's project: oracle.json, trial_<id>/ ...
    OUT/trials.json        every trial (see effkeras.tune.results.collect_trials)
    OUT/pareto.json        the feasible Pareto front, most accurate first
    OUT/pareto.png         accuracy against size; infeasible trials marked
    OUT/best.tflite        the most accurate model on the front
    OUT/best_sketch/       its Arduino sketch (effkeras.deploy.arduino_sketch; for a text
                           dataset effkeras.deploy.text_sketch, which projects Serial lines)
    OUT/logs/              one log per process of a parallel search

With ``workers=0`` the search runs in this process; with ``workers=N`` a keras-tuner chief
and N workers run as processes on 127.0.0.1 (:mod:`effkeras.tune.parallel`), each
running ``python -m effkeras.tune.search OUT`` with its KERASTUNER_* variables.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from effkeras.boards import Board, get_board
from effkeras.errors import EffkerasError

__all__ = ["SEARCHES", "TEXT_DATASETS", "SearchConfig", "load_search_dataset", "tune"]

SEARCHES = ("pareto", "random", "bayesian", "hyperband")
#: datasets of texts (the text models ``sgnn`` and ``prado`` search them); the rest are images
TEXT_DATASETS = ("sms_spam",)
PROJECT = "search"
CONFIG_FILE = "config.json"
VALIDATION_FRACTION = 0.2


@dataclass
class SearchConfig:
    """Everything a search needs; stored in ``OUT/config.json``.

    Attributes:
        dataset, data_dir, limit_train: for :func:`effkeras.data.load_dataset`; the last
            :data:`VALIDATION_FRACTION` of the (limited) training split is the validation
            data the int8 accuracy is measured on; the test split is used once, for the
            best model.
        board: the :class:`~effkeras.boards.Board` as a dict (``Board.to_dict()``).
        max_latency_ms: optional latency limit on the board (estimate).
        model: ``cnn``, ``resnet8`` or ``dscnn`` (:data:`effkeras.tune.HYPERMODELS`) for an
            image dataset; ``sgnn`` or ``prado`` (:data:`effkeras.tune.TEXT_HYPERMODELS`)
            for a text one (:data:`TEXT_DATASETS`).
        search: ``pareto``, ``random``, ``bayesian`` or ``hyperband``.
        max_trials, epochs, qat_epochs, batch_size, seed: the search's budget and seeds.
        input_shape, num_classes, class_names: filled in from the dataset.
    """

    dataset: str
    board: dict[str, Any]
    max_trials: int = 10
    epochs: int = 3
    qat_epochs: int = 1
    batch_size: int = 32
    data_dir: str | None = None
    limit_train: int | None = None
    max_latency_ms: float | None = None
    model: str = "cnn"
    search: str = "pareto"
    seed: int = 0
    input_shape: list[int] = field(default_factory=list)
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)

    def board_object(self) -> Board:
        return Board(**self.board)

    def save(self, out_dir: str) -> None:
        from effkeras.tune.results import write_json

        write_json(os.path.join(out_dir, CONFIG_FILE), asdict(self))

    @classmethod
    def load(cls, out_dir: str) -> SearchConfig:
        path = os.path.join(out_dir, CONFIG_FILE)
        try:
            with open(path) as f:
                return cls(**json.load(f))
        except (OSError, ValueError, TypeError) as exc:
            raise EffkerasError(
                f"--resume needs the {CONFIG_FILE} of an earlier `effkeras tune --out {out_dir}`; "
                f"it could not be read ({exc}). Start a new search without --resume."
            ) from None


def load_search_dataset(name: str, data_dir: str | None = None, limit_train: int | None = None):
    """An image dataset (:func:`effkeras.data.load_dataset`) or, for ``sms_spam``, the text
    one (:func:`effkeras.text.load_sms_spam` on ``data_dir``: the SMSSpamCollection[.gz]
    file or its folder), limited to the first ``limit_train`` training samples."""
    if name in TEXT_DATASETS:
        from effkeras.text import load_sms_spam

        ds = load_sms_spam(data_dir)
        if limit_train is not None:
            ds.x_train, ds.y_train = ds.x_train[:limit_train], ds.y_train[:limit_train]
        return ds
    from effkeras.data import load_dataset

    return load_dataset(name, data_dir, limit_train=limit_train)


def load_data(config: SearchConfig):
    """(x_train, y_train, x_val, y_val, dataset) of a config."""
    ds = load_search_dataset(config.dataset, config.data_dir, config.limit_train)
    n_val = max(1, int(round(len(ds.x_train) * VALIDATION_FRACTION)))
    if len(ds.x_train) - n_val < 1 and config.limit_train is None:
        raise EffkerasError(f"The {config.dataset} data has too few training samples to split off a "
                            f"validation set (at least 2 needed). Received: {len(ds.x_train)} "
                            f"samples from data_dir={config.data_dir!r}")
    if len(ds.x_train) - n_val < 1:
        raise EffkerasError(f"--limit-train leaves no training data after the validation split. "
                            f"Received: limit_train={config.limit_train}")
    x, y = ds.x_train[:-n_val], ds.y_train[:-n_val]
    return x, y, ds.x_train[-n_val:], ds.y_train[-n_val:], ds


def make_oracle(config: SearchConfig):
    """The keras-tuner oracle of ``config.search``."""
    import keras_tuner

    from effkeras.tune.oracle import ParetoOracle
    from effkeras.tune.tuner import ACCURACY, objectives

    common = {"seed": config.seed, "max_consecutive_failed_trials": config.max_trials + 1}
    acc = keras_tuner.Objective(ACCURACY, "max")
    if config.search == "pareto":
        return ParetoOracle(objectives(), max_trials=config.max_trials, **common)
    if config.search == "random":
        return keras_tuner.oracles.RandomSearchOracle(acc, max_trials=config.max_trials, **common)
    if config.search == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            acc, max_trials=config.max_trials, num_initial_points=min(3, config.max_trials), **common)
    if config.search == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(acc, max_epochs=max(2, config.epochs), factor=3,
                                                   **common)
    raise EffkerasError(f"Unknown search {config.search!r}. Valid searches: {', '.join(SEARCHES)}.")


def build_tuner(config: SearchConfig, out_dir: str, verbose: int = 1):
    """The BoardTuner of a config, in ``OUT/search`` (reloaded when it exists)."""
    from effkeras.tune.constraints import Constraints
    from effkeras.tune.hypermodels import get_hypermodel
    from effkeras.tune.tuner import BoardTuner

    hypermodel = get_hypermodel(config.model, config.input_shape, config.num_classes)
    constraints = Constraints(config.board_object(), max_latency_ms=config.max_latency_ms)
    return BoardTuner(hypermodel, make_oracle(config), constraints, epochs=config.epochs,
                      qat_epochs=config.qat_epochs, batch_size=config.batch_size, seed=config.seed,
                      verbose=verbose, directory=out_dir, project_name=PROJECT)


def _share_tuner_state(project: str, tuner_id: str) -> None:
    """keras-tuner reloads a project only from ``<tuner id>.json``: a search begun in one
    mode (in process: ``tuner0``; parallel: ``chief``) and resumed in the other needs it."""
    want = os.path.join(project, f"{tuner_id}.json")
    if os.path.exists(want) or not os.path.exists(os.path.join(project, "oracle.json")):
        return
    for other in ("chief", "tuner0"):
        src = os.path.join(project, f"{other}.json")
        if os.path.exists(src):
            shutil.copyfile(src, want)
            return


def run_in_process(config: SearchConfig, out_dir: str) -> None:
    """Run (or continue) the search in this process."""
    os.environ.pop("KERASTUNER_ORACLE_IP", None)
    _share_tuner_state(os.path.join(out_dir, PROJECT), "tuner0")
    x, y, xv, yv, _ = load_data(config)
    tuner = build_tuner(config, out_dir)
    tuner.search(x, y, validation_data=(xv, yv), verbose=0)


def worker_main(out_dir: str) -> int:
    """The chief or a worker of a parallel search (KERASTUNER_TUNER_ID says which)."""
    config = SearchConfig.load(out_dir)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    if "chief" in tuner_id:
        _share_tuner_state(os.path.join(out_dir, PROJECT), "chief")
        tuner = build_tuner(config, out_dir, verbose=0)
        tuner.search(verbose=0)  # serves the oracle until the search ends
        return 0
    x, y, xv, yv, _ = load_data(config)
    tuner = build_tuner(config, out_dir, verbose=1)
    tuner.search(x, y, validation_data=(xv, yv), verbose=0)
    return 0


def write_outputs(config: SearchConfig, out_dir: str, x_test: Any = None, y_test: Any = None) -> dict[str, Any]:
    """trials.json, pareto.json, pareto.png, best.tflite and best_sketch/ of a search."""
    from effkeras.tune.results import collect_trials, pareto_trials, plot_pareto, write_json

    trials = collect_trials(os.path.join(out_dir, PROJECT))
    front = pareto_trials(trials)
    board = config.board_object()
    summary: dict[str, Any] = {
        "board": board.to_dict(), "dataset": config.dataset, "model": config.model,
        "search": config.search, "objectives": [
            {"name": "val_int8_accuracy", "direction": "max"},
            {"name": "size_bytes", "direction": "min"},
            {"name": "latency_ms", "direction": "min"}],
        "constraints": {"flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes,
                        "program_flash_kb": board.program_flash_kb,
                        "max_latency_ms": config.max_latency_ms},
        "trials": len(trials), "feasible": sum(1 for t in trials if t["feasible"]),
        "infeasible": sum(1 for t in trials if t["feasible"] is False),
        "failed": sum(1 for t in trials if t["status"] == "FAILED"),
        "front": front, "best": None,
    }
    write_json(os.path.join(out_dir, "trials.json"), {"config": asdict(config), "trials": trials})
    if front:
        best = dict(front[0])
        with open(best["model"], "rb") as f:
            tflite = f.read()
        with open(os.path.join(out_dir, "best.tflite"), "wb") as f:
            f.write(tflite)
        text = config.dataset in TEXT_DATASETS
        if x_test is not None:
            import numpy as np

            from effkeras.runtime import LiteRTRunner

            if text:  # the projector the trial stored in its .tflite turns texts into inputs
                from effkeras.deploy.featurizer import read_projector

                x_test = read_projector(tflite)(list(x_test))
            probs = LiteRTRunner(tflite).predict(np.asarray(x_test, "float32"))
            best["test_int8_accuracy"] = float(np.mean(np.argmax(probs, -1) == np.asarray(y_test)))
        labels = [str(c) for c in config.class_names] or None
        if text:
            from effkeras.deploy.text_sketch import text_sketch

            text_sketch(tflite, os.path.join(out_dir, "best_sketch"), board=board, labels=labels,
                        force=True)
        else:
            from effkeras.deploy import arduino_sketch

            arduino_sketch(tflite, os.path.join(out_dir, "best_sketch"), board=board,
                           labels=labels, force=True)
        best["tflite"] = os.path.join(out_dir, "best.tflite")
        best["sketch"] = os.path.join(out_dir, "best_sketch")
        summary["best"] = best
    write_json(os.path.join(out_dir, "pareto.json"), summary)
    plot_pareto(trials, front, os.path.join(out_dir, "pareto.png"),
                f"{config.model} on {config.dataset}, {board.title}")
    return summary


def tune(config: SearchConfig, out_dir: str, *, workers: int = 0, resume: bool = False,
         log: Any = print) -> dict[str, Any]:
    """Run a search (or continue one with ``resume``) and write its outputs.

    Args:
        config: the search; ``input_shape``/``num_classes``/``class_names`` are filled in.
        out_dir: the search folder (see the module docstring).
        workers: 0 runs in this process; N runs a keras-tuner chief and N worker processes.
        resume: continue the search stored in ``out_dir``.
        log: where progress lines go.

    Returns:
        The pareto.json summary (``front``, ``best`` with its test accuracy, counts).
    """
    if config.search not in SEARCHES:
        raise EffkerasError(f"Unknown search {config.search!r}. Valid searches: {', '.join(SEARCHES)}.")
    get_board(Board(**config.board))
    ds = load_search_dataset(config.dataset, config.data_dir, config.limit_train)
    # a text dataset's inputs are strings: the searched projector sets the model's input
    config.input_shape = [1] if config.dataset in TEXT_DATASETS else [int(d) for d in ds.input_shape]
    config.num_classes = int(len(ds.class_names) or int(max(ds.y_train)) + 1)
    config.class_names = [str(c) for c in ds.class_names]
    os.makedirs(out_dir, exist_ok=True)
    config.save(out_dir)
    if workers:
        from effkeras.tune.parallel import run_parallel

        rc = run_parallel(out_dir, workers, log=log)
        if rc:
            raise EffkerasError(f"the parallel search stopped (see {os.path.join(out_dir, 'logs')}); "
                                f"continue it with --resume")
    else:
        run_in_process(config, out_dir)
    return write_outputs(config, out_dir, ds.x_test, ds.y_test)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
