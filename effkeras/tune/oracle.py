"""A Pareto oracle for keras-tuner: random proposals, then mutations of the front.

keras-tuner scores a trial with one number; its ``MultiObjective`` adds the objectives up
(with signs for their directions), so accuracy (0..1) is drowned by a size in bytes and
one "best" trial comes out, never the trade-off. :class:`ParetoOracle` keeps every
objective with its direction and ranks trials by non-dominated sorting (Deb et al.,
NSGA-II, 2002):

1. the first ``num_initial_points`` trials are uniformly random;
2. after that each trial, with probability ``explore``, is random again; otherwise a
   parent is drawn from the feasible front (members with a larger crowding distance,
   i.e. in emptier parts of the front, are more likely) and mutated: every active
   hyperparameter changes with probability ``max(1/n, mutation_rate)`` (a Choice takes
   another value, an Int or Float moves a step or resamples, a Boolean flips).

It proposes one trial at a time (steady state, no generations), which is what keras-tuner's
``create_trial`` asks for and what parallel workers need: no worker waits for a generation
to end. Trials whose ``feasible`` metric is 0 (they broke a board constraint) are never
parents and never on the front.

The sorting itself is in :mod:`effkeras.tune.pareto` (plain Python, no keras-tuner).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

from effkeras.tune.pareto import _check_directions, crowding_distance, non_dominated_sort

__all__ = ["FEASIBLE_METRIC", "ParetoOracle"]

#: the metric a trial reports as 1.0 when it meets every board constraint, 0.0 otherwise
FEASIBLE_METRIC = "feasible"


class ParetoOracle(keras_tuner.Oracle):
    """A keras-tuner oracle that searches for the Pareto front of several objectives.

    Args:
        objectives: a list of ``keras_tuner.Objective(name, direction)``, e.g. accuracy
            ``"max"``, size and latency ``"min"``. Each must be a metric the tuner reports.
        max_trials: trials to run in all.
        num_initial_points: random trials before mutation starts (default: 3, or fewer
            when ``max_trials`` is smaller).
        explore: probability that a later trial is random instead of a mutation.
        mutation_rate: lower bound of each hyperparameter's chance to change.
        feasible_metric: the metric that is 0.0 for a trial that breaks a constraint.
        seed, hyperparameters, allow_new_entries, tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: as for ``keras_tuner.Oracle``.

    ``get_best_trials`` returns the feasible front, most accurate (first objective) first,
    then the other completed trials by rank. A trial's ``score`` is its first objective.
    """

    def __init__(
        self,
        objectives: Sequence[keras_tuner.Objective],
        max_trials: int = 10,
        num_initial_points: int | None = None,
        explore: float = 0.2,
        mutation_rate: float = 0.2,
        feasible_metric: str = FEASIBLE_METRIC,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        objectives = list(objectives)
        if len(objectives) < 2 or not all(isinstance(o, keras_tuner.Objective) for o in objectives):
            raise ValueError(
                "ParetoOracle needs two or more keras_tuner.Objective(name, direction), e.g. "
                "[Objective('val_int8_accuracy', 'max'), Objective('tflite_size_bytes', 'min')]. "
                f"Received: objectives={objectives!r}"
            )
        _check_directions([o.direction for o in objectives])
        if not isinstance(max_trials, int) or max_trials < 1:
            raise ValueError(f"max_trials must be a positive integer. Received: max_trials={max_trials!r}")
        if not 0.0 <= explore <= 1.0 or not 0.0 <= mutation_rate <= 1.0:
            raise ValueError(
                f"explore and mutation_rate are probabilities in [0, 1]. Received: "
                f"explore={explore!r}, mutation_rate={mutation_rate!r}"
            )
        super().__init__(
            objective=objectives[0],  # keras-tuner's score; the front uses them all
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.objectives = objectives
        self.num_initial_points = (
            min(3, max_trials) if num_initial_points is None else int(num_initial_points)
        )
        self.explore = float(explore)
        self.mutation_rate = float(mutation_rate)
        self.feasible_metric = feasible_metric

    # -- ranking ---------------------------------------------------------------------------

    def _values(self, trial: Any) -> list[float] | None:
        out = []
        for o in self.objectives:
            if not trial.metrics.exists(o.name):
                return None
            v = trial.metrics.get_last_value(o.name)
            if v is None or not math.isfinite(float(v)):
                return None
            out.append(float(v))
        return out

    def _feasible(self, trial: Any) -> bool:
        if not trial.metrics.exists(self.feasible_metric):
            return True
        return bool(trial.metrics.get_last_value(self.feasible_metric))

    def ranked_trials(self) -> list[tuple[int, Any]]:
        """(Pareto rank, trial) of every completed feasible trial, best rank first."""
        done = [
            t for t in self.trials.values()
            if t.status == trial_module.TrialStatus.COMPLETED and self._feasible(t)
            and self._values(t) is not None
        ]
        points = [self._values(t) for t in done]
        ranks = non_dominated_sort(points, [o.direction for o in self.objectives])
        first = self.objectives[0]
        sign = -1.0 if first.direction == "max" else 1.0
        return sorted(zip(ranks, done, strict=True),
                      key=lambda rt: (rt[0], sign * self._values(rt[1])[0]))

    def front(self) -> list[Any]:
        """The completed, feasible, non-dominated trials, best first objective first."""
        return [t for r, t in self.ranked_trials() if r == 0]

    def score_trial(self, trial: Any) -> None:
        first = self.objectives[0]
        trial.score = trial.metrics.get_last_value(first.name)
        trial.best_step = trial.metrics.get_best_step(first.name)

    def get_best_trials(self, num_trials: int = 1) -> list[Any]:
        ranked = [t for _, t in self.ranked_trials()]
        return ranked[:num_trials]

    # -- proposals -------------------------------------------------------------------------

    def _rng(self) -> random.Random:
        rng = random.Random((self.seed or 0) * 1_000_003 + self._seed_state)
        self._seed_state += 1
        return rng

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        completed = [t for t in self.trials.values()
                     if t.status == trial_module.TrialStatus.COMPLETED]
        rng = self._rng()
        front = self.front()
        if len(completed) < self.num_initial_points or not front or rng.random() < self.explore:
            values = self._random_values()
        else:
            values = None
            for _ in range(50):
                parent = self._pick_parent(front, rng)
                candidate = self._mutate(parent.hyperparameters, rng)
                if not self._duplicate(candidate):
                    values = candidate
                    break
            if values is None:
                values = self._random_values()
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _pick_parent(self, front: list[Any], rng: random.Random) -> Any:
        if len(front) <= 2:
            return rng.choice(front)
        dist = crowding_distance([self._values(t) for t in front])
        finite = [d for d in dist if math.isfinite(d)]
        top = (max(finite) if finite else 1.0) * 2 + 1.0
        weights = [top if not math.isfinite(d) else d + 0.1 for d in dist]
        return rng.choices(front, weights=weights, k=1)[0]

    def _mutate(self, parent_hps: keras_tuner.HyperParameters, rng: random.Random) -> dict[str, Any]:
        """Copy a parent's values, change some active ones; new entries get random values."""
        hps = keras_tuner.HyperParameters()
        n = max(1, len(parent_hps.values))
        rate = max(1.0 / n, self.mutation_rate)
        changed = False
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            old = parent_hps.values.get(hp.name, hp.default)
            if rng.random() < rate:
                hps.values[hp.name] = _mutate_value(hp, old, rng)
                changed = changed or hps.values[hp.name] != old
            else:
                hps.values[hp.name] = old
        if not changed:  # always move: a copy of the parent is a duplicate
            movable = [hp for hp in self.hyperparameters.space if hps.is_active(hp)]
            if movable:
                hp = rng.choice(movable)
                hps.values[hp.name] = _mutate_value(hp, hps.values[hp.name], rng)
        # that move may activate conditional entries the parent had not (e.g. a third stack's
        # sparsity when ``stacks`` goes from 2 to 3): they start from the parent's value or the default
        for hp in self.hyperparameters.space:
            if hps.is_active(hp) and hp.name not in hps.values:
                hps.values[hp.name] = parent_hps.values.get(hp.name, hp.default)
        return {hp.name: hps.values[hp.name] for hp in self.hyperparameters.space
                if hps.is_active(hp)}


def _mutate_value(hp: Any, old: Any, rng: random.Random) -> Any:
    from keras_tuner.engine import hyperparameters as hp_module

    if isinstance(hp, hp_module.Boolean):
        return not bool(old)
    if isinstance(hp, hp_module.Choice):
        others = [v for v in hp.values if v != old]
        if not others:
            return old
        if hp.ordered and old in hp.values:  # a neighbour more often than a jump
            i = hp.values.index(old)
            near = [hp.values[j] for j in (i - 1, i + 1) if 0 <= j < len(hp.values)]
            if rng.random() < 0.7:
                return rng.choice(near)
        return rng.choice(others)
    if isinstance(hp, hp_module.Int | hp_module.Float):
        if rng.random() < 0.3:
            return hp.random_sample(rng.randint(0, 2**31))
        step = hp.step or (hp.max_value - hp.min_value) / 10
        new = old + rng.choice((-1, 1)) * step
        new = min(max(new, hp.min_value), hp.max_value)
        return int(round(new)) if isinstance(hp, hp_module.Int) else float(new)
    if isinstance(hp, hp_module.Fixed):
        return old
    return hp.random_sample(rng.randint(0, 2**31))
