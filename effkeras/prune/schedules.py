"""Pruning schedules: at which training steps to prune, and to what sparsity.

A schedule is a small stateless object: ``schedule(step) -> (should_prune, sparsity)``.
The step lives in each pruned layer's ``pruning_step`` variable (set by
:class:`~effkeras.prune.UpdatePruningStep`), so a schedule has nothing to save but its
constructor arguments, which ``get_config`` returns in full.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from effkeras.errors import PruningError


def _check_sparsity(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise PruningError(
            f"{name} must be a fraction of weights to zero in [0, 1), e.g. {name}=0.5. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def _check_step(name: str, value: Any, allow_minus_one: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and (value >= 0 or (allow_minus_one and value == -1)):
        return int(value)
    hint = " (or -1 for no end)" if allow_minus_one else ""
    raise PruningError(f"{name} must be an integer >= 0{hint}. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="effkeras")
class PruningSchedule:
    """Base class of pruning schedules; subclass it for a custom one.

    A subclass implements :meth:`sparsity_at` (the target sparsity at a step) and sets
    ``begin_step``, ``end_step`` (-1: no end) and ``frequency``; the base class decides
    the pruning turns: every ``frequency`` steps from ``begin_step`` up to ``end_step``.
    Override :meth:`__call__` for other timing, and :meth:`get_config` to return every
    constructor argument. Register it with
    ``@keras.saving.register_keras_serializable()`` so saved models reload.
    """

    begin_step: int = 0
    end_step: int = -1
    frequency: int = 100

    def sparsity_at(self, step: int) -> float:
        """The target sparsity (fraction of zeros) at ``step``."""
        raise NotImplementedError(f"{type(self).__name__} must implement sparsity_at(step).")

    def should_prune(self, step: int) -> bool:
        """Whether masks are recomputed at ``step``."""
        step = int(step)
        if step < self.begin_step or (self.end_step != -1 and step > self.end_step):
            return False
        return (step - self.begin_step) % self.frequency == 0

    def __call__(self, step: int) -> tuple[bool, float]:
        """``(should_prune, sparsity)`` at ``step``."""
        return self.should_prune(step), float(self.sparsity_at(int(step)))

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config().")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


@keras.saving.register_keras_serializable(package="effkeras")
class ConstantSparsity(PruningSchedule):
    """Prune to ``target_sparsity`` every ``frequency`` steps from ``begin_step``.

    Args:
        target_sparsity: fraction of weights to zero, in [0, 1).
        begin_step: first step at which to prune.
        end_step: last step at which to prune, or -1 to prune until training ends.
        frequency: prune every this many steps.
    """

    def __init__(
        self, target_sparsity: float, begin_step: int, end_step: int = -1, frequency: int = 100
    ):
        self.target_sparsity = _check_sparsity("target_sparsity", target_sparsity)
        self.begin_step = _check_step("begin_step", begin_step)
        self.end_step = _check_step("end_step", end_step, allow_minus_one=True)
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise PruningError(
                f"end_step must be -1 or >= begin_step={begin_step}. Received: end_step={end_step}"
            )
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise PruningError(f"frequency must be an integer >= 1. Received: frequency={frequency!r}")
        self.frequency = int(frequency)

    def sparsity_at(self, step: int) -> float:
        return self.target_sparsity

    def get_config(self) -> dict[str, Any]:
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="effkeras")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from ``initial_sparsity`` to ``final_sparsity`` (Zhu and Gupta 2017).

    ``s(t) = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** power`` for
    ``t0 <= t <= t1``, held at ``s_f`` after ``t1``; masks are recomputed every
    ``frequency`` steps in ``[begin_step, end_step]`` and at ``end_step`` itself, so the
    final sparsity is reached even when ``end_step - begin_step`` is not a multiple of
    ``frequency``.

    Args:
        initial_sparsity: sparsity at ``begin_step``, in [0, 1).
        final_sparsity: sparsity from ``end_step`` on, in [0, 1).
        begin_step: first pruning step.
        end_step: step at which ``final_sparsity`` is reached (> ``begin_step``).
        power: exponent of the decay (3 in the paper).
        frequency: prune every this many steps.
    """

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: float = 3,
        frequency: int = 100,
    ):
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity)
        self.final_sparsity = _check_sparsity("final_sparsity", final_sparsity)
        self.begin_step = _check_step("begin_step", begin_step)
        self.end_step = _check_step("end_step", end_step)
        if self.end_step <= self.begin_step:
            raise PruningError(
                f"PolynomialDecay needs end_step > begin_step={begin_step}. "
                f"Received: end_step={end_step}"
            )
        if isinstance(power, bool) or not isinstance(power, int | float) or not power > 0:
            raise PruningError(f"power must be a number > 0. Received: power={power!r}")
        self.power = power
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise PruningError(f"frequency must be an integer >= 1. Received: frequency={frequency!r}")
        self.frequency = int(frequency)

    def sparsity_at(self, step: int) -> float:
        span = self.end_step - self.begin_step
        progress = min(1.0, max(0.0, (int(step) - self.begin_step) / span))
        decay = math.pow(1.0 - progress, self.power)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * decay

    def should_prune(self, step: int) -> bool:
        return super().should_prune(step) or int(step) == self.end_step

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


def get(identifier: Any) -> PruningSchedule:
    """A schedule from an instance or a serialized config (``{"class_name": ...}``)."""
    if isinstance(identifier, PruningSchedule):
        return identifier
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, PruningSchedule):
            return obj
    raise PruningError(
        f"pruning_schedule must be a PruningSchedule such as "
        f"ConstantSparsity(0.5, begin_step=0) or PolynomialDecay(0.0, 0.8, 0, 1000). "
        f"Received: pruning_schedule={identifier!r}"
    )
