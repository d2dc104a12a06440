"""Advance pruning to a training step: set every pruned layer's step, recompute masks.

This is what :class:`~effkeras.prune.UpdatePruningStep` runs before each batch. It runs
eagerly (outside the compiled training step), so sorting weights costs nothing when no
mask changes, and under ``tf.distribute`` it assigns in cross-replica context. Call it
yourself in a custom training loop: ``update_pruning_step(model, step)`` before step
``step``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.errors import PruningError
from effkeras.prune.structures import Channel
from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude


def walk_layers(layer: Any) -> list[Any]:
    """Every layer inside ``layer`` (nested models and wrappers included), depth first."""
    found = []
    for sub in getattr(layer, "layers", None) or []:
        found.append(sub)
        if isinstance(sub, PruneLowMagnitude | ChannelFollower):
            continue
        if isinstance(sub, keras.Model):
            found.extend(walk_layers(sub))
        elif isinstance(sub, keras.layers.Wrapper):
            found.append(sub.layer)
            found.extend(walk_layers(sub.layer))
    return found


def pruning_layers(model: Any) -> tuple[list[PruneLowMagnitude], list[ChannelFollower]]:
    """The :class:`PruneLowMagnitude` and :class:`ChannelFollower` layers of a model."""
    layers = [model] if isinstance(model, PruneLowMagnitude) else walk_layers(model)
    seen: set[int] = set()
    prunes, followers = [], []
    for layer in layers:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, PruneLowMagnitude):
            prunes.append(layer)
        elif isinstance(layer, ChannelFollower):
            followers.append(layer)
    return prunes, followers


def _turn(schedule: Any, step: int, last_step: int | None) -> float | None:
    """The sparsity of the latest pruning turn in ``(last_step, step]``, or None."""
    first = step if last_step is None or last_step >= step else max(last_step + 1, step - 10_000)
    for s in range(step, first - 1, -1):
        should, sparsity = schedule(s)
        if should:
            return sparsity
    return None


def _assign(layer: PruneLowMagnitude, masks: list[np.ndarray], thresholds: list[float]) -> None:
    for w, m, t, mask, threshold in zip(
        layer.prunable_weights, layer.masks, layer.thresholds, masks, thresholds, strict=True
    ):
        m.assign(mask.astype(m.dtype))
        t.assign(np.asarray(threshold, dtype=t.dtype))
        w.assign((ops.convert_to_numpy(w.value) * mask).astype(w.dtype))


def update_pruning_step(
    model: Any, step: int, last_step: int | None = None
) -> list[str]:
    """Set the pruning step of every pruned layer to ``step`` and prune where it is due.

    Args:
        model: a model (or a single :class:`PruneLowMagnitude` layer) made by
            :func:`~effkeras.prune.prune_low_magnitude`.
        step: the training step about to run (``optimizer.iterations``).
        last_step: the step of the previous call, if any; a pruning turn skipped in
            between (``steps_per_execution > 1``) is then applied now.

    Returns:
        The names of the layers whose masks were recomputed.
    """
    step = int(step)
    if step < 0:
        raise PruningError(f"step must be >= 0. Received: step={step}")
    prunes, followers = pruning_layers(model)
    if not prunes:
        raise PruningError(
            f"Model {getattr(model, 'name', model)!r} has no pruned layers; wrap it first: "
            f"model = effkeras.prune.prune_low_magnitude(model, pruning_schedule=...)."
        )
    return advance(prunes, followers, step, last_step)


def set_steps(prunes: list[PruneLowMagnitude], step: int) -> None:
    """Write ``step`` into every built layer's ``pruning_step`` variable."""
    for layer in prunes:
        if layer.built:
            layer.pruning_step.assign(step)


def advance(
    prunes: list[PruneLowMagnitude],
    followers: list[ChannelFollower],
    step: int,
    last_step: int | None = None,
    assign_steps: bool = True,
) -> list[str]:
    """:func:`update_pruning_step` on layers already found.

    With ``assign_steps=False`` only layers whose masks change get their ``pruning_step``
    written (the callback's fast path: one variable write per layer per batch would cost
    more host time than the rest of the update; it writes them all at epoch ends).
    """
    updated: list[str] = []
    groups: dict[str, list[tuple[PruneLowMagnitude, float | None]]] = {}
    for layer in prunes:
        if not layer.built:
            continue
        if assign_steps:
            layer.pruning_step.assign(step)
        sparsity = _turn(layer.pruning_schedule, step, last_step)
        if isinstance(layer.structure, Channel) and layer.channel_group:
            groups.setdefault(layer.channel_group, []).append((layer, sparsity))
            continue
        if sparsity is None:
            continue
        if not assign_steps:
            layer.pruning_step.assign(step)
        masks, thresholds = [], []
        for weight in layer.masked_weights():
            mask, threshold = layer.structure.mask(weight, sparsity)
            masks.append(mask)
            thresholds.append(threshold)
        _assign(layer, masks, thresholds)
        updated.append(layer.name)
    keeps: dict[str, np.ndarray] = {}
    for group, members in groups.items():
        due = [s for _, s in members if s is not None]
        if not due:
            continue
        structure = members[0][0].structure
        scores = sum(structure.scores(m.masked_weights()[-1]) for m, _ in members)
        keep, threshold = Channel.keep_from_scores(np.asarray(scores), max(due))
        for layer, _ in members:
            if not assign_steps:
                layer.pruning_step.assign(step)
            shape = layer.masks[-1].shape
            _assign(layer, [np.broadcast_to(keep, shape).astype("float32")], [threshold])
            updated.append(layer.name)
        keeps[group] = np.asarray(keep, "float32")
    due_followers = [
        f for f in followers if f.built and any(g in keeps for g in f.groups)
    ]
    # followers of several groups (after a Concatenate) also need the current keep vectors
    # of the groups not updated now
    missing = {g for f in due_followers for g in f.groups} - set(keeps)
    for layer in prunes:
        if missing and layer.channel_group in missing and layer.built:
            current = layer.channel_keep()
            if current is not None:
                keeps[layer.channel_group] = current.astype("float32")
                missing.discard(layer.channel_group)
    for follower in due_followers:
        follower.channel_mask.assign(follower.mask_from(keeps))
    return updated
