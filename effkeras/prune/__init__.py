"""Magnitude pruning for Keras 3, with the names tensorflow-model-optimization users know.

    model = effkeras.prune.prune_low_magnitude(
        model, pruning_schedule=effkeras.prune.PolynomialDecay(0.0, 0.8, 0, 1000))
    model.compile(...)
    model.fit(..., callbacks=[effkeras.callbacks.UpdatePruningStep()])
    model = effkeras.prune.strip_pruning(model)

Structures: unstructured (default), block (``block_size``), N:M (``sparsity_m_by_n`` or
``structure="2:4"``) and channel (``structure="channel"``), whose pruned filters
:func:`strip_pruning` removes, giving a smaller dense model. Functional graphs with ``keras.ops`` calls,
squeeze-excite ``Multiply``, Rescaling, Normalization, Reshape and nested models are
handled: every keras.applications family prunes and strips.

After conversion, :func:`effkeras.profile` (and :func:`sparsity_report`) count the zeros
per layer and the gzip size of the .tflite.
"""

from effkeras.prune.apply import prune_low_magnitude
from effkeras.prune.callbacks import PreserveSparsity, PruningSummaries, UpdatePruningStep
from effkeras.prune.export import sparsity_report
from effkeras.prune.measure import LayerCost, model_cost, sparsity
from effkeras.prune.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from effkeras.prune.strip import StripReport, strip_pruning, strip_report
from effkeras.prune.structures import Block, Channel, NByM, Structure, Unstructured
from effkeras.prune.update import update_pruning_step
from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude, is_prunable

__all__ = [
    "Block",
    "Channel",
    "ChannelFollower",
    "ConstantSparsity",
    "LayerCost",
    "NByM",
    "PolynomialDecay",
    "PreserveSparsity",
    "PruneLowMagnitude",
    "PruningSchedule",
    "PruningSummaries",
    "StripReport",
    "Structure",
    "Unstructured",
    "UpdatePruningStep",
    "is_prunable",
    "model_cost",
    "prune_low_magnitude",
    "sparsity",
    "sparsity_report",
    "strip_pruning",
    "strip_report",
    "update_pruning_step",
]
