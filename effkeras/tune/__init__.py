"""effkeras.tune: the most accurate model that fits a board, searched with keras-tuner.

    from effkeras.tune import BoardTuner, Constraints, ImageCNN, ParetoOracle, objectives
    from effkeras.boards import get_board

    tuner = BoardTuner(
        ImageCNN(input_shape=(8, 8, 1), num_classes=10),
        ParetoOracle(objectives(), max_trials=20),      # accuracy max, size and latency min
        Constraints(get_board("nano33ble"), max_latency_ms=5),
        epochs=3, directory="tune_out",
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val))
    front = tuner.oracle.front()                        # feasible, non-dominated trials
    tflite = tuner.load_model(front[0])                 # the most accurate one, int8

Each trial measures the untrained model's int8 conversion first (size, TFLM arena and
latency depend on shapes only) and trains only a model that fits the board; see
:mod:`effkeras.tune.tuner`. ``effkeras tune`` runs a search from the command line, in
parallel with ``--workers N`` (:mod:`effkeras.tune.parallel`).

The names below are imported on first use: :mod:`effkeras.tune.pareto`,
:mod:`effkeras.tune.constraints`, :mod:`effkeras.tune.results` and
:mod:`effkeras.tune.parallel` import neither Keras nor keras-tuner.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; imported on first use, so that `import effkeras.tune.pareto` (the
# supervisor of parallel workers, the result writer) does not import Keras.
_EXPORTS = {
    "Constraints": "constraints", "measure_tflite": "constraints",
    "DSCNN": "hypermodels", "HYPERMODELS": "hypermodels", "BoardHyperModel": "hypermodels",
    "ImageCNN": "hypermodels", "PRADOText": "hypermodels", "ResNet8": "hypermodels",
    "SGNNText": "hypermodels", "TEXT_HYPERMODELS": "hypermodels", "get_hypermodel": "hypermodels",
    "FEASIBLE_METRIC": "oracle", "ParetoOracle": "oracle",
    "crowding_distance": "pareto", "non_dominated_sort": "pareto", "pareto_front": "pareto",
    "ACCURACY": "tuner", "ARENA": "tuner", "LATENCY": "tuner", "SIZE": "tuner",
    "BoardTuner": "tuner", "objectives": "tuner",
    "tune": "search", "SearchConfig": "search",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"effkeras.tune.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'effkeras.tune' has no attribute {name!r}")


__all__ = [
    "ACCURACY",
    "SearchConfig",
    "tune",
    "ARENA",
    "DSCNN",
    "FEASIBLE_METRIC",
    "HYPERMODELS",
    "LATENCY",
    "SIZE",
    "BoardHyperModel",
    "BoardTuner",
    "Constraints",
    "ImageCNN",
    "PRADOText",
    "ParetoOracle",
    "ResNet8",
    "SGNNText",
    "TEXT_HYPERMODELS",
    "crowding_distance",
    "get_hypermodel",
    "measure_tflite",
    "non_dominated_sort",
    "objectives",
    "pareto_front",
]
