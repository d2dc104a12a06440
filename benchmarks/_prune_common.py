"""What benchmarks/prune.py and its tfmot child share: architectures, schedules, step timing.

Nothing here imports Keras: each function takes the ``keras`` module it should use
(Keras 3 in benchmarks/prune.py, ``tf_keras`` in benchmarks/_tfmot_prune.py), so both frameworks
build the same layers in the same order and can exchange weights with get_weights().
"""

from __future__ import annotations

import statistics
import time
from typing import Any

#: (layer class, arguments) per dataset; no batch norm, so tfmot and effkeras match 1:1.
ARCHS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "mnist": [
        ("Conv2D", {"filters": 16, "kernel_size": 3, "activation": "relu"}),
        ("MaxPooling2D", {}),
        ("Conv2D", {"filters": 32, "kernel_size": 3, "activation": "relu"}),
        ("MaxPooling2D", {}),
        ("Flatten", {}),
        ("Dense", {"units": 128, "activation": "relu"}),
        ("Dense", {"units": 10}),
    ],
    "cifar10": [
        ("Conv2D", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("Conv2D", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("MaxPooling2D", {}),
        ("Conv2D", {"filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("Conv2D", {"filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("MaxPooling2D", {}),
        ("Flatten", {}),
        ("Dense", {"units": 128, "activation": "relu"}),
        ("Dense", {"units": 10}),
    ],
}

#: (name, structure, target sparsity) of every pruning run both frameworks make.
CONFIGS: list[tuple[str, str, float]] = [
    ("unstructured 50%", "unstructured", 0.5),
    ("unstructured 75%", "unstructured", 0.75),
    ("unstructured 80%", "unstructured", 0.8),
    ("unstructured 90%", "unstructured", 0.9),
    ("2:4", "2:4", 0.5),
]
#: The configuration whose training step is timed against float.
TIMED = "unstructured 75%"


def build(keras: Any, arch: str, input_shape: tuple[int, ...]) -> Any:
    """The ``arch`` CNN in the given keras module (Keras 3 or tf_keras)."""
    layers = [keras.Input(tuple(input_shape))]
    for i, (kind, kwargs) in enumerate(ARCHS[arch]):
        layers.append(getattr(keras.layers, kind)(name=f"{kind.lower()}_{i}", **kwargs))
    return keras.Sequential(layers, name=arch)


def schedule_args(structure: str, sparsity: float, steps: int, frequency: int) -> dict[str, Any]:
    """Keyword arguments of the pruning schedule, the same for tfmot and effkeras.

    Unstructured: PolynomialDecay from 0 to ``sparsity`` over the first 60% of the
    fine-tuning steps (power 3, tfmot's default). 2:4: ConstantSparsity(0.5) from step 0.
    """
    if structure == "2:4":
        return {"kind": "ConstantSparsity", "target_sparsity": 0.5, "begin_step": 0,
                "frequency": frequency}  # fmt: skip
    return {"kind": "PolynomialDecay", "initial_sparsity": 0.0, "final_sparsity": sparsity,
            "begin_step": 0, "end_step": max(1, int(0.6 * steps)), "frequency": frequency}  # fmt: skip


def make_schedule(module: Any, args: dict[str, Any]) -> Any:
    """A schedule object from ``module`` (effkeras.prune or tfmot.sparsity.keras)."""
    kwargs = {k: v for k, v in args.items() if k != "kind"}
    return getattr(module, args["kind"])(**kwargs)


def step_timer(keras: Any) -> Any:
    """A callback recording the wall time between consecutive ``on_train_batch_begin``
    calls: one full training step, callbacks included (put it first in the list)."""

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ms: list[float] = []
            self._last: float | None = None

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._last = None

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            if self._last is not None:
                self.ms.append(1000.0 * (now - self._last))
            self._last = now

    return StepTimer()


def interleaved_step_ms(
    keras: Any, models: dict[str, tuple[Any, list[Any]]], x: Any, y: Any, batch_size: int,
    steps: int, rounds: int,
) -> dict[str, dict[str, Any]]:
    """Median ms per training step of each compiled model, timed in alternating rounds.

    Args:
        models: name -> (compiled model, extra callbacks).
        steps: training steps per round; round 0 (tracing, warm-up) is not counted.

    Returns:
        name -> {"median_ms", "round_medians_ms", "steps"}.
    """
    n = steps * batch_size
    samples: dict[str, list[float]] = {k: [] for k in models}
    per_round: dict[str, list[float]] = {k: [] for k in models}
    for r in range(rounds + 1):
        for name, (model, callbacks) in models.items():
            timer = step_timer(keras)
            model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
                      callbacks=[timer, *callbacks])  # fmt: skip
            if r:
                samples[name].extend(timer.ms)
                per_round[name].append(statistics.median(timer.ms))
    return {
        k: {"median_ms": statistics.median(v), "round_medians_ms": per_round[k], "steps": len(v)}
        for k, v in samples.items()
    }


def kernel_sparsity(model: Any) -> float:
    """Fraction of exact zeros over a stripped model's kernels (numpy via get_weights)."""
    zeros = total = 0
    for layer in model.layers:
        for w in layer.weights:
            if w.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel",
                                                       "pointwise_kernel"):  # fmt: skip
                value = w.numpy()
                zeros += int((value == 0).sum())
                total += value.size
    return zeros / max(total, 1)
