"""BoardTuner: a keras-tuner Tuner whose trials end as int8 .tflite files measured on a board.

One trial (:meth:`BoardTuner.run_trial`):

1. build the float model from the HyperModel; apply the trial's channel pruning to a copy
   and strip it (the pruned shapes do not depend on the weights), quantize it the way the
   trial will (QAT graph or PTQ) with random calibration data, convert to int8 and measure
   size, exact TFLM arena and the board latency estimate. A model that breaks a board
   constraint stops here, seconds in, recorded as infeasible with the reasons, not trained;
2. otherwise train (with pruning), strip, fine-tune with QAT where the trial says so,
   convert to int8 with int8 I/O, and measure again: int8 accuracy in LiteRT on the
   validation data, size, arena, latency. The figures of step 1 equal these (the test
   checks it); the constraints are checked again on the final file anyway.

Every trial writes ``trial_<id>/effkeras_trial.json`` (hyperparameters, figures, feasible
or why not, which worker, each attempt) and, when trained, ``trial_<id>/model.tflite``.
A trial started by a worker that died is retried once by the next run of that worker (or
by ``--resume``); a trial whose workers died ``max_attempts`` times is marked FAILED.

Metrics reported to the oracle: :data:`ACCURACY` (max), :data:`SIZE` (min),
:data:`LATENCY` (min), :data:`ARENA` and ``feasible`` (1.0 or 0.0). An infeasible trial
reports accuracy 0.0, so single-objective oracles (random, Bayesian, Hyperband) learn to
avoid its region; :class:`~effkeras.tune.ParetoOracle` leaves it off the front.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import keras
import keras_tuner
import numpy as np

from effkeras.tune.constraints import Constraints, measure_tflite
from effkeras.tune.hypermodels import BoardHyperModel
from effkeras.tune.oracle import FEASIBLE_METRIC
from effkeras.tune.results import ATTEMPTS_FILE, MODEL_FILE, RECORD_FILE, progress_line, write_json

__all__ = ["ACCURACY", "ARENA", "LATENCY", "RECORD_FILE", "SIZE", "BoardTuner", "objectives"]

ACCURACY = "val_int8_accuracy"
SIZE = "tflite_size_bytes"
LATENCY = "latency_ms"
ARENA = "arena_bytes"


def objectives() -> list[keras_tuner.Objective]:
    """The Pareto objectives: int8 accuracy (max), .tflite size (min), board latency (min)."""
    return [keras_tuner.Objective(ACCURACY, "max"), keras_tuner.Objective(SIZE, "min"),
            keras_tuner.Objective(LATENCY, "min")]


class BoardTuner(keras_tuner.Tuner):
    """Search for models that fit a board and are accurate once int8.

    Args:
        hypermodel: a :class:`~effkeras.tune.BoardHyperModel` (e.g. :class:`ImageCNN`).
        oracle: any keras-tuner oracle: :class:`~effkeras.tune.ParetoOracle` with
            :func:`objectives`, or ``RandomSearchOracle`` / ``BayesianOptimizationOracle`` /
            ``HyperbandOracle`` with ``keras_tuner.Objective(ACCURACY, "max")``.
        constraints: the board and an optional latency limit (:class:`Constraints`).
        epochs: float training epochs (a Hyperband trial's ``tuner/epochs`` overrides it).
        qat_epochs: quantization-aware fine-tuning epochs of a trial with ``qat``.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        calibration_samples: training samples for PTQ calibration.
        max_attempts: runs of a trial (by workers that died) before it is marked FAILED.
        seed: seeds each trial's weights (plus the trial number).
        verbose: 1 prints one progress line a trial; 0 nothing; 2 also keras-tuner's
            tracebacks of failed trials.
        directory, project_name, overwrite: as for ``keras_tuner.Tuner``.

    Call ``search(x_train, y_train, validation_data=(x_val, y_val))``.
    """

    def __init__(
        self,
        hypermodel: BoardHyperModel,
        oracle: keras_tuner.Oracle,
        constraints: Constraints,
        *,
        epochs: int = 3,
        qat_epochs: int = 1,
        batch_size: int = 32,
        learning_rate: float = 1e-2,
        calibration_samples: int = 200,
        max_attempts: int = 2,
        seed: int = 0,
        verbose: int = 1,
        directory: str | None = None,
        project_name: str = "search",
        overwrite: bool = False,
        **kwargs: Any,
    ):
        if not isinstance(hypermodel, BoardHyperModel):
            raise ValueError(
                "BoardTuner needs an effkeras.tune.BoardHyperModel (e.g. ImageCNN(input_shape, "
                f"num_classes)). Received: hypermodel={hypermodel!r}"
            )
        if not isinstance(constraints, Constraints):
            raise ValueError(f"constraints must be an effkeras.tune.Constraints. "
                             f"Received: constraints={constraints!r}")
        for label, value in (("epochs", epochs), ("batch_size", batch_size),
                             ("max_attempts", max_attempts), ("calibration_samples", calibration_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer. Received: {label}={value!r}")
        if isinstance(qat_epochs, bool) or not isinstance(qat_epochs, int) or qat_epochs < 0:
            raise ValueError(f"qat_epochs must be an integer >= 0. Received: qat_epochs={qat_epochs!r}")
        self.constraints = constraints
        self.epochs = epochs
        self.qat_epochs = qat_epochs
        self.batch_size = batch_size
        self.learning_rate = float(learning_rate)
        self.calibration_samples = calibration_samples
        self.max_attempts = max_attempts
        self.seed = int(seed)
        self.verbose = verbose
        self._record: dict[str, Any] | None = None
        if verbose < 2:  # a failed trial's traceback goes to trials.json, not the terminal
            try:
                from keras_tuner.src import config as kt_config

                kt_config.DEBUG = False
            except ImportError:  # pragma: no cover (another keras-tuner layout)
                pass
        super().__init__(oracle=oracle, hypermodel=hypermodel, directory=directory,
                         project_name=project_name, overwrite=overwrite, **kwargs)

    # -- the trial -------------------------------------------------------------------------

    def run_trial(self, trial: Any, x: Any, y: Any, validation_data: tuple[Any, Any] | None = None,
                  **kwargs: Any) -> dict[str, float]:
        """Precheck, train, convert and measure one trial; returns its metrics."""
        if validation_data is None:
            raise ValueError("BoardTuner.search needs validation_data=(x_val, y_val): the int8 "
                             "accuracy is measured on it. Received: validation_data=None")
        t0 = time.monotonic()
        hp = trial.hyperparameters
        trial_dir = self.get_trial_dir(trial.trial_id)
        attempts = self._begin_attempt(trial_dir)
        record: dict[str, Any] = {
            "trial_id": trial.trial_id, "worker": self.tuner_id, "attempts": attempts,
            "board": self.constraints.board.name, "feasible": None, "reasons": [],
            "trained": False, "stage": "started",
        }
        self._record = record
        if len(attempts) > self.max_attempts:
            record.update(stage="abandoned", reasons=[
                f"the worker running this trial died {len(attempts) - 1} time(s) "
                f"({', '.join(a['worker'] for a in attempts[:-1])}); not retried again"])
            self._save_record(trial_dir, record)
            raise keras_tuner.errors.FailedTrialError(record["reasons"][0])

        hypermodel: BoardHyperModel = self.hypermodel
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed + int(trial.trial_id))
        model = hypermodel.build(hp)
        record["hyperparameters"] = {k: v for k, v in hp.values.items() if hp.is_active(k)}
        qat = hypermodel.use_qat(hp)
        plan = hypermodel.pruning(hp)
        record.update(qat=qat, pruning=plan, params=int(model.count_params()))
        x = hypermodel.transform(hp, x)
        y = np.asarray(y)
        x_val = hypermodel.transform(hp, validation_data[0])
        y_val = np.asarray(validation_data[1])

        # 1. the untrained model, pruned to its final shapes, converted and measured
        rng = np.random.default_rng(self.seed)
        random_x = rng.uniform(float(np.min(x)), float(np.max(x)),
                               (32, *x.shape[1:])).astype("float32")
        skeleton = _strip(_pruned(_jittered_copy(model, rng), plan, steps_per_epoch=1), plan, at_step=0)
        # a text model's .tflite carries its projector (effkeras.deploy.text_sketch reads it)
        projector = hypermodel.projector(hp) if hasattr(hypermodel, "projector") else None
        pre = self._convert(skeleton, random_x, qat, projector)
        figures = measure_tflite(pre, self.constraints)
        reasons = self.constraints.check(figures)
        record.update(precheck=figures, precheck_seconds=round(time.monotonic() - t0, 2))
        if reasons:
            record.update(stage="precheck", feasible=False, reasons=reasons,
                          seconds=round(time.monotonic() - t0, 2))
            self._save_record(trial_dir, record)
            return self._metrics(None, figures, feasible=False)

        # 2. train, prune, QAT, convert, measure
        epochs = int(hp.values.get("tuner/epochs", self.epochs))
        steps = max(1, int(np.ceil(len(x) / self.batch_size)))
        trained = _pruned(model, plan, steps_per_epoch=steps)
        self._fit(trained, x, y, epochs, plan)
        trained = _strip(trained, plan)
        keras_acc = _accuracy(trained.predict(x_val, verbose=0, batch_size=256), y_val)
        calibration = x[: self.calibration_samples]
        if qat:
            from effkeras.quantize import quantize_model

            trained = quantize_model(trained, calibration_data=calibration)
            if self.qat_epochs:
                self._fit(trained, x, y, self.qat_epochs, None, qat=True)
        tflite = self._convert(trained, calibration, qat, projector)
        final = measure_tflite(tflite, self.constraints)
        reasons = self.constraints.check(final)
        from effkeras.runtime import LiteRTRunner

        int8_acc = _accuracy(LiteRTRunner(tflite).predict(x_val), y_val)
        with open(os.path.join(trial_dir, MODEL_FILE), "wb") as f:
            f.write(tflite)
        record.update(
            stage="trained", trained=True, feasible=not reasons, reasons=reasons, figures=final,
            val_int8_accuracy=int8_acc, val_keras_accuracy=keras_acc, epochs=epochs,
            precheck_matches=all(final[k] == figures[k] for k in ("size_bytes", "arena_bytes", "macs")),
            seconds=round(time.monotonic() - t0, 2),
        )
        self._save_record(trial_dir, record)
        return self._metrics(int8_acc, final, feasible=not reasons)

    def _convert(self, model: Any, calibration: np.ndarray, qat: bool, projector: Any = None) -> bytes:
        from effkeras.convert import to_tflite

        if qat and not _is_qat(model):
            from effkeras.quantize import quantize_model

            model = quantize_model(model, calibration_data=calibration)
        return to_tflite(model, quantize="int8", representative_data=calibration, io_dtype="int8",
                         strip_names=True, projector=projector)

    def _fit(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int, plan: dict | None,
             qat: bool = False) -> None:
        import effkeras.callbacks as cb

        callbacks = [cb.UpdatePruningStep()] if plan else []
        if qat and epochs > 1:
            callbacks += [cb.FreezeBatchNorm(epoch=epochs - 1), cb.FreezeQuantRanges(epoch=epochs - 1)]
        lr = self.learning_rate / 3 if qat else self.learning_rate
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=epochs, batch_size=self.batch_size, verbose=0, callbacks=callbacks)

    def _metrics(self, accuracy: float | None, figures: dict[str, Any], feasible: bool) -> dict[str, float]:
        arena = figures.get("arena_with_margin")
        return {
            ACCURACY: float(accuracy) if accuracy is not None and feasible else 0.0,
            SIZE: float(figures["size_bytes"]),
            LATENCY: float(figures["latency_ms"]),
            ARENA: float(arena) if arena is not None else float("inf"),
            FEASIBLE_METRIC: 1.0 if feasible else 0.0,
        }

    # -- bookkeeping -----------------------------------------------------------------------

    def _begin_attempt(self, trial_dir: str) -> list[dict[str, Any]]:
        """Append this run to the trial's attempts; returns all of them, this one last."""
        path = os.path.join(trial_dir, ATTEMPTS_FILE)
        with open(path, "a") as f:
            f.write(json.dumps({"worker": self.tuner_id, "pid": os.getpid(),
                                "started": time.time()}) + "\n")
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _save_record(self, trial_dir: str, record: dict[str, Any]) -> None:
        write_json(os.path.join(trial_dir, RECORD_FILE), record)

    def on_trial_end(self, trial: Any) -> None:
        record = self._record or {}
        if self.verbose:
            print(progress_line(trial.trial_id, record, str(trial.status)), flush=True)
        self._record = None
        super().on_trial_end(trial)

    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        """The trial's .tflite is written by :meth:`run_trial`; nothing else is saved."""

    def load_model(self, trial: Any) -> bytes:
        """The trial's int8 .tflite bytes (trained trials only)."""
        path = os.path.join(self.get_trial_dir(trial.trial_id), MODEL_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Trial {trial.trial_id} has no model (not trained: "
                                    f"infeasible or failed). Received: {path}")
        with open(path, "rb") as f:
            return f.read()


def _is_qat(model: Any) -> bool:
    from effkeras.convert.converter import is_quantization_aware

    return bool(is_quantization_aware(model))


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == y.reshape(-1)))


def _jittered_copy(model: Any, rng: np.random.Generator) -> Any:
    """A copy of ``model`` with every weight moved off zero.

    The converter drops an all-zero bias (a fresh Dense's), which a trained model has; so
    the untrained model, measured as it is, would come out smaller than the trained one.
    With every weight distinct and non-zero the measure is an upper bound on the trained
    file's size: a trained model can still come out a few bytes smaller where two of its
    constants end up equal, which the converter stores once (PRADO's attention biases:
    softmax over the tokens gives them no gradient, so they stay zero; 144 B there). The
    arena and MACs are equal. Feasibility is decided again on the trained file.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights([w + rng.uniform(0.01, 0.02, w.shape).astype(w.dtype) for w in model.get_weights()])
    return copy


def _pruned(model: Any, plan: dict[str, float], steps_per_epoch: int) -> Any:
    """``model`` with channel pruning of the layers in ``plan`` (``model`` itself if none)."""
    if not plan:
        return model
    from effkeras import prune

    missing = [n for n in plan if n not in {layer.name for layer in model.layers}]
    if missing:
        raise ValueError(f"pruning names layers the model does not have: {missing}. "
                         f"Layers: {[layer.name for layer in model.layers]}")
    freq = max(1, steps_per_epoch // 2)
    # every other layer follows the default schedule, sparsity 0: not pruned
    schedules = {name: prune.ConstantSparsity(s, begin_step=0, frequency=freq)
                 for name, s in plan.items()}
    return prune.prune_low_magnitude(model, prune.ConstantSparsity(0.0, 0), structure="channel",
                                     layer_schedules=schedules)


def _strip(model: Any, plan: dict[str, float], at_step: int | None = None) -> Any:
    if not plan:
        return model
    from effkeras import prune

    if at_step is not None:
        prune.update_pruning_step(model, at_step)
    return prune.strip_pruning(model)
