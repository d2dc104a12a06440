"""``prune_low_magnitude``: wrap a layer, or every prunable layer of a model (by cloning).

A model is cloned with ``keras.models.clone_model`` (recursively, so nested Sequential
and Functional models are pruned too); prunable layers come back wrapped in
:class:`~effkeras.prune.PruneLowMagnitude` with the original weights copied in. The
user's model is left untouched.

With ``structure="channel"`` the model's graph decides what is pruned: only layers whose
filters can later be *removed* (see :mod:`effkeras.prune.graph`), with the layers whose
outputs are added together sharing one mask, and batch norm / depthwise layers after
them wrapped in :class:`~effkeras.prune.ChannelFollower`. A final classifier (a model
output) is never channel-pruned.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras

from effkeras.errors import PruningError
from effkeras.prune import schedules, structures
from effkeras.prune.graph import channel_spaces, layer_graph, needs_follower
from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude, is_prunable


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    return layer.__class__.from_config(layer.get_config())


def _is_graph_model(model: Any) -> bool:
    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")


def _channel_plan(model: keras.Model, plan: dict[int, tuple[str, str]]) -> None:
    """Fill ``plan``: id(layer) -> ("source" | "follower", group) for channel pruning."""
    graph = layer_graph(model)
    if graph is None:
        raise PruningError(
            f"Channel pruning needs the model's layer graph, but {model.name!r} is not built. "
            f"Build it first (give it a keras.Input, or call model.build(input_shape))."
        )
    spaces, _ = channel_spaces(graph)
    for space in spaces:
        if not space.shrinkable or not space.sources:
            continue
        group = f"{space.sources[0].layer.name}_channels"
        for node in space.sources:
            plan[id(node.layer)] = ("source", group)
        for node in space.members:
            if needs_follower(node.layer):
                plan[id(node.layer)] = ("follower", group)
    for layer in model.layers:
        if _is_graph_model(layer) and isinstance(layer, keras.Model):
            _channel_plan(layer, plan)


def _fits(layer: keras.layers.Layer, structure: structures.Structure) -> str | None:
    """Why ``structure`` cannot prune the built ``layer``, or None if it can."""
    probe = PruneLowMagnitude(_copy(layer), structure=structure)
    if not layer.built:
        return None
    names = probe._weight_names or []
    try:
        for n in names:
            structure.check(tuple(getattr(layer, n).shape), f"layer {layer.name!r}")
    except PruningError as exc:
        return str(exc)
    return None


def prune_low_magnitude(
    to_prune: Any,
    pruning_schedule: schedules.PruningSchedule | None = None,
    block_size: tuple[int, int] = (1, 1),
    block_pooling_type: str = "AVG",
    sparsity_m_by_n: tuple[int, int] | None = None,
    *,
    structure: Any = None,
) -> Any:
    """Wrap a layer, a list of layers or a model's prunable layers for magnitude pruning.

    The same call as tensorflow-model-optimization's, on Keras 3: migrating is a change of
    import. Train the result with ``effkeras.callbacks.UpdatePruningStep()`` in
    ``model.fit(callbacks=...)``, then call :func:`~effkeras.prune.strip_pruning`.

    Args:
        to_prune: a ``keras.layers.Layer`` (returns a :class:`PruneLowMagnitude`), a list
            of layers, or a Sequential/Functional model (returns a pruned clone; nested
            models are pruned too; layers without prunable weights are kept as they are).
        pruning_schedule: when and how much to prune; default
            ``ConstantSparsity(0.5, begin_step=0)``.
        block_size: ``(rows, cols)`` blocks pruned together (tfmot argument).
        block_pooling_type: ``"AVG"`` or ``"MAX"`` score of a block.
        sparsity_m_by_n: ``(2, 4)``: keep 2 of every 4 consecutive input-channel weights.
            Layers whose input channels are not a multiple of 4 are left unpruned
            (with a warning) when pruning a model.
        structure: ``"unstructured"`` (default), ``"channel"`` (whole filters, removed by
            :func:`strip_pruning`), ``"block"``, ``"2:4"`` or a structure object.

    Returns:
        The wrapped layer(s) or the pruned model.

    Raises:
        PruningError: unsupported layer or model, or contradictory arguments.
    """
    resolved = structures.get(structure, block_size, block_pooling_type, sparsity_m_by_n)
    schedule = schedules.get(
        pruning_schedule
        if pruning_schedule is not None
        else schedules.ConstantSparsity(0.5, begin_step=0)
    )
    args = {
        "pruning_schedule": schedule,
        "block_size": block_size,
        "block_pooling_type": block_pooling_type,
        "sparsity_m_by_n": sparsity_m_by_n,
        "structure": structure,
    }
    if isinstance(to_prune, list | tuple):
        return [prune_low_magnitude(layer, **args) for layer in to_prune]
    if isinstance(to_prune, keras.Model):
        if not _is_graph_model(to_prune):
            raise PruningError(
                f"prune_low_magnitude clones Sequential and Functional models; "
                f"{type(to_prune).__name__} {to_prune.name!r} is a subclassed model. Wrap its "
                f"layers where you build them instead: self.dense = "
                f"prune_low_magnitude(keras.layers.Dense(64), ...)."
            )
        return _prune_model(to_prune, resolved, args)
    if isinstance(to_prune, keras.layers.Layer):
        return PruneLowMagnitude(to_prune, **args)
    raise PruningError(
        f"prune_low_magnitude takes a keras layer, a list of layers or a Keras 3 model. "
        f"Received: {type(to_prune).__module__}.{type(to_prune).__name__}"
    )


def _prune_model(model: keras.Model, structure: structures.Structure, args: dict) -> keras.Model:
    channel = isinstance(structure, structures.Channel)
    plan: dict[int, tuple[str, str]] = {}
    if channel:
        _channel_plan(model, plan)
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
    skipped: list[str] = []

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, PruneLowMagnitude | ChannelFollower):
            new = layer.__class__.from_config(layer.get_config())
            pairs.append((layer, new))
            return new
        copy = _copy(layer)
        pairs.append((layer, copy))
        if channel:
            role = plan.get(id(layer))
            if role is None:
                return copy
            if role[0] == "follower":
                return ChannelFollower(copy, role[1], name=f"channel_follower_{layer.name}")
            return PruneLowMagnitude(copy, **args, channel_group=role[1])
        if not is_prunable(layer, structure):
            return copy
        reason = _fits(layer, structure)
        if reason is not None:
            skipped.append(reason)
            return copy
        return PruneLowMagnitude(copy, **args)

    pruned = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    if not pruned.built and model.built and model.inputs:
        pruned.build(model.inputs[0].shape)
    for old, new in pairs:
        if old.built and old.weights:
            if not new.built:
                raise PruningError(
                    f"Layer {old.name!r} was not rebuilt by cloning {model.name!r}; build the "
                    f"model with a keras.Input before pruning it."
                )
            new.set_weights(old.get_weights())
    if skipped:
        warnings.warn(
            "Some layers were left unpruned:\n" + "\n".join(skipped), UserWarning, stacklevel=2
        )
    wrapped = [layer for layer in _all(pruned) if isinstance(layer, PruneLowMagnitude)]
    if not wrapped:
        raise PruningError(
            f"No layer of {model.name!r} can be pruned with structure={structure!r}: "
            + (
                "channel pruning needs a Conv/Dense whose output only reaches batch norm, "
                "activations, pooling, depthwise, Add, Flatten->Dense and other Conv/Dense."
                if channel
                else "it has no Dense, Conv or DepthwiseConv/SeparableConv layer."
            )
        )
    return pruned


def _all(model: Any) -> list[Any]:
    from effkeras.prune.update import walk_layers

    return walk_layers(model)
