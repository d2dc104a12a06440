"""``prune_low_magnitude``: wrap a layer, or every prunable layer of a model (by cloning).

A model is cloned with ``keras.models.clone_model`` (recursively, so nested Sequential
and Functional models are pruned too); prunable layers come back wrapped in
:class:`~effkeras.prune.PruneLowMagnitude` with the original weights copied in. The
user's model is left untouched.

With ``structure="channel"`` the model's graph decides what is pruned: only layers whose
filters can later be *removed* (see :mod:`effkeras.prune.graph`), with the layers whose
outputs are added together sharing one mask, and batch norm / depthwise layers after
them wrapped in :class:`~effkeras.prune.ChannelFollower` (after a channel
``Concatenate``, one follower follows each concatenated group's mask in turn). A final
classifier (a model output) is never channel-pruned. ``keras.ops`` calls in the graph (MobileNetV3's
hard-sigmoid ``relu6(x + 3) / 6``) are kept as they are; filters whose pruned channels
such a call would turn non-zero on the way to the next Conv/Dense are left unpruned,
with a warning naming the call. Every keras.applications family prunes and strips
(tests/test_applications_prune.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from effkeras.errors import PruningError
from effkeras.prune import schedules, structures
from effkeras.prune.graph import (
    GraphNode,
    LayerGraph,
    Space,
    channel_spaces,
    effective_exits,
    inner,
    is_op,
    layer_graph,
    leaf_segments,
    needs_follower,
    zero_flow,
)
from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude, _spec, is_prunable


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh layer from ``layer``'s config; a layer without weights that cannot be
    rebuilt (a ``Lambda`` of a Python lambda) is shared, as it holds no state; otherwise a
    PruningError naming it."""
    try:
        return layer.__class__.from_config(layer.get_config())
    except Exception as exc:  # noqa: BLE001 - any failure here is the user layer's config
        if not layer.weights:
            return layer
        raise PruningError(
            f"Pruning clones the model, but layer {layer.name!r} ({type(layer).__name__}) "
            f"cannot be rebuilt from its config ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}). Give "
            f"{type(layer).__name__} a get_config() returning every __init__ argument (and a "
            f"from_config() if they are not plain values), or build the model with "
            f"prune_low_magnitude(keras.layers.Dense(...)) wrappers in place of its layers."
        ) from exc


_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")


def _unprunable_kernel(layer: keras.layers.Layer) -> str | None:
    """Why a layer holding kernel-like weights is left unpruned, or None."""
    if isinstance(layer, keras.Model) or not layer.built:
        return None
    names = sorted({w.name.split("/")[-1] for w in layer.trainable_weights} & set(_KERNELS))
    if not names:
        return None
    return (
        f"Layer {layer.name!r} ({type(layer).__name__}) holds {names} but is not a layer "
        f"effkeras prunes (Dense, Conv, DepthwiseConv, SeparableConv); it is left unpruned. "
        f"To prune it, give {type(layer).__name__} a get_prunable_weights() method returning "
        f"the variables to prune."
    )


def _is_graph_model(model: Any) -> bool:
    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")


def _channel_plan(
    model: keras.Model,
    plan: dict[int, tuple[str, Any]],
    groups: dict[str, list[keras.layers.Layer]] | None = None,
    notes: list[str] | None = None,
) -> None:
    """Fill ``plan``: id(layer) -> ("source" | "follower", group) for channel pruning,
    ``groups``: group -> its source layers (the layers that share one mask), and
    ``notes``: why a space of prunable filters is left alone."""
    graph = layer_graph(model, inline_models=True)
    if graph is None:
        raise PruningError(
            f"Channel pruning needs the model's layer graph, but {model.name!r} is not built. "
            f"Build it first (give it a keras.Input, or call model.build(input_shape))."
        )
    spaces, index = channel_spaces(graph)
    exits = effective_exits(spaces, index)
    candidates = [s for s in spaces if s.shrinkable and s.sources and exits[id(s)]]
    left_out = _unremovable(graph, candidates, spaces, index, exits)
    candidates = [s for s in candidates if id(s) not in left_out]
    if notes is not None:
        notes.extend(left_out.values())
    group_of: dict[int, str] = {}
    for space in candidates:
        group = f"{space.sources[0].layer.name}_channels"
        group_of[id(space)] = group
        for node in space.sources:
            plan[id(node.layer)] = ("source", group)
            if groups is not None:
                groups.setdefault(group, []).append(node.layer)
        for node in space.members:
            if needs_follower(node.layer, node):
                plan[id(node.layer)] = ("follower", group)
    for space in spaces:
        if not (space.composite and space.shrinkable):
            continue
        runs = _runs(space, spaces, index, group_of)
        if runs is None:
            continue
        for node in space.members:
            if needs_follower(node.layer, node):
                plan[id(node.layer)] = ("follower", runs)
    inlined = {id(m) for m in graph.inlined}
    for layer in model.layers:  # nested models called more than once: on their own
        if _is_graph_model(layer) and isinstance(layer, keras.Model) and id(layer) not in inlined:
            _channel_plan(layer, plan, groups, notes)


def _runs(
    space: Space, spaces: list[Space], index: dict[int, int], group_of: dict[int, str]
) -> list[list] | None:
    """A composite space's channels as ``[[group or None, channels], ...]`` runs (adjacent
    runs of no group merged), or None when none of its channels is pruned."""
    runs: list[list] = []
    for leaf, n in leaf_segments(space, spaces, index):
        group = group_of.get(id(leaf)) if leaf is not None else None
        if runs and group is None and runs[-1][0] is None:
            runs[-1][1] += n
        else:
            runs.append([group, n])
    return runs if any(g is not None for g, _ in runs) else None


def _unremovable(
    graph: LayerGraph,
    candidates: list[Space],
    spaces: list[Space],
    index: dict[int, int],
    exits: dict[int, list[tuple[int, np.ndarray]]],
) -> dict[int, str]:
    """id(space) -> why, for each candidate space whose pruned channels would not be zero
    where they leave the space (so strip_pruning could not remove them).

    Pruning a channel zeroes it at its sources and (through ChannelFollower) after every
    batch norm-like layer, in its own space and in the concatenations it feeds; a
    ``keras.ops`` call cannot be wrapped, so one that maps 0 to something else
    (``x + 3.0``) keeps the channel alive unless a ``Multiply`` by a zero channel follows
    it (the squeeze-excite of MobileNetV3 does)."""
    sources = {id(n) for s in candidates for n in s.sources}
    composites = [s for s in spaces if s.composite and s.shrinkable]
    followed = {
        id(n) for s in [*candidates, *composites] for n in s.members if needs_follower(n.layer, n)
    }

    def source_zero(node: GraphNode, c: int) -> np.ndarray | None:
        return np.ones(c, bool) if id(node) in sources else None

    def follower_zero(node: GraphNode, c: int) -> np.ndarray | None:
        return np.ones(c, bool) if id(node) in followed else None

    zero = zero_flow(graph, source_zero, follower_zero)
    readers = graph.consumers()
    by_tensor = {t: s for s in spaces for t in s.tensors}
    out: dict[int, str] = {}
    for space in candidates:
        alive = [t for t, idx in exits[id(space)] if not zero[t][idx].all()]
        if not alive:
            continue
        where = by_tensor.get(alive[0], space)
        culprits = [
            f"{'keras.ops.' if is_op(inner(n.layer)) else ''}{type(inner(n.layer)).__name__} "
            f"{n.layer.name!r}"
            for n in where.members + where.merges
            if all(zero[t].all() for t in n.inputs) and not zero[n.outputs[0]].all()
        ] or ["a merge with a broadcast side input"]
        exit_names = [n.layer.name for n in readers.get(alive[0], [])]
        names = ", ".join(repr(n.layer.name) for n in space.sources)
        out[id(space)] = (
            f"Filters of {names} are not channel-pruned: {', '.join(culprits)} maps a zero "
            f"channel to a non-zero value on the way to {exit_names}, so strip_pruning could "
            f"not remove a pruned channel. To prune them, write that step as a layer that "
            f"keeps zeros or that effkeras can follow (BatchNormalization, Activation, "
            f"Rescaling)."
        )
    return out


def _fits(layer: keras.layers.Layer, structure: structures.Structure) -> str | None:
    """Why ``structure`` cannot prune the built ``layer``, or None if it can."""
    if not layer.built or hasattr(layer, "get_prunable_weights"):
        return None
    try:
        for n in _spec(layer, structure) or []:
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
    layer_schedules: Mapping[str, schedules.PruningSchedule | None] | None = None,
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
        layer_schedules: models only: ``{layer name: schedule}`` for layers that should be
            pruned on their own schedule (``None``: leave that layer unpruned); every
            other prunable layer follows ``pruning_schedule``. With
            ``structure="channel"``, layers whose outputs are added together share one
            mask, so naming one of them sets the schedule of all of them (naming two of
            them with different schedules is an error). Example, prune a CNN's head
            harder than its body: ``pruning_schedule=PolynomialDecay(0, 0.2, 0, 2000),
            layer_schedules={"conv6": PolynomialDecay(0, 0.5, 0, 2000), "conv1": None}``.

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
    if layer_schedules is not None and not isinstance(to_prune, keras.Model):
        raise PruningError(
            f"layer_schedules applies when pruning a model; to_prune is a "
            f"{type(to_prune).__name__}. Wrap each layer with its own pruning_schedule instead."
        )
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
        return _prune_model(to_prune, resolved, args, _check_layer_schedules(layer_schedules))
    if isinstance(to_prune, keras.layers.Layer):
        return PruneLowMagnitude(to_prune, **args)
    raise PruningError(
        f"prune_low_magnitude takes a keras layer, a list of layers or a Keras 3 model. "
        f"Received: {type(to_prune).__module__}.{type(to_prune).__name__}"
    )


def _check_layer_schedules(
    layer_schedules: Mapping[str, Any] | None,
) -> dict[str, schedules.PruningSchedule | None]:
    if layer_schedules is None:
        return {}
    if not isinstance(layer_schedules, Mapping):
        raise PruningError(
            f"layer_schedules must be a dict of layer name -> PruningSchedule or None. "
            f"Received: {type(layer_schedules).__name__}"
        )
    out: dict[str, schedules.PruningSchedule | None] = {}
    for name, sched in layer_schedules.items():
        if not isinstance(name, str):
            raise PruningError(f"layer_schedules keys must be layer names. Received: {name!r}")
        if sched is not None and not isinstance(sched, schedules.PruningSchedule):
            raise PruningError(
                f"layer_schedules[{name!r}] must be a PruningSchedule or None. "
                f"Received: {sched!r}"
            )
        out[name] = sched
    return out


def _same_schedule(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and a.get_config() == b.get_config()


def _resolve_layer_schedules(
    model: keras.Model,
    per_layer: dict[str, schedules.PruningSchedule | None],
    plan: dict[int, tuple[str, Any]],
    groups: dict[str, list[keras.layers.Layer]],
    structure: structures.Structure,
) -> dict[int, schedules.PruningSchedule | None]:
    """id(layer) -> schedule (None: not pruned) for every layer ``per_layer`` touches."""
    if not per_layer:
        return {}
    by_name = {layer.name: layer for layer in _all(model)}
    unknown = sorted(set(per_layer) - set(by_name))
    if unknown:
        raise PruningError(
            f"layer_schedules names layers that {model.name!r} does not have: {unknown}. "
            f"Its layers: {sorted(by_name)}"
        )
    channel = isinstance(structure, structures.Channel)
    if channel:
        prunable = {n for n, layer in by_name.items() if plan.get(id(layer), ("",))[0] == "source"}
    else:
        prunable = {
            n for n, layer in by_name.items()
            if is_prunable(layer, structure) and _fits(layer, structure) is None
        }
    bad = sorted(set(per_layer) - prunable)
    if bad:
        why = (
            "channel pruning can only remove filters of Conv/Dense layers whose outputs reach "
            "batch norm, activations, pooling, depthwise, Add, Flatten->Dense and other "
            "Conv/Dense (never a model output)"
            if channel
            else f"they have no weights structure={structure!r} can prune"
        )
        raise PruningError(
            f"layer_schedules names layers that cannot be pruned: {bad} ({why}). "
            f"Prunable layers: {sorted(prunable)}"
        )
    resolved: dict[int, schedules.PruningSchedule | None] = {}
    if not channel:
        for name, sched in per_layer.items():
            resolved[id(by_name[name])] = sched
        return resolved
    for sources in groups.values():
        named = [(s.name, per_layer[s.name]) for s in sources if s.name in per_layer]
        if not named:
            continue
        first_name, first = named[0]
        for name, sched in named[1:]:
            if not _same_schedule(first, sched):
                raise PruningError(
                    f"layers {first_name!r} and {name!r} share one channel mask (their outputs "
                    f"are added together), so they need the same schedule in layer_schedules. "
                    f"Received: {first!r} and {sched!r}"
                )
        for s in sources:
            resolved[id(s)] = first
    return resolved


def _prune_model(
    model: keras.Model,
    structure: structures.Structure,
    args: dict,
    per_layer: dict[str, schedules.PruningSchedule | None] | None = None,
) -> keras.Model:
    channel = isinstance(structure, structures.Channel)
    plan: dict[int, tuple[str, Any]] = {}
    groups: dict[str, list[keras.layers.Layer]] = {}
    notes: list[str] = []
    if channel:
        _channel_plan(model, plan, groups, notes)
    own = _resolve_layer_schedules(
        model, per_layer or {}, plan, groups, structure)
    if channel and own:
        # a group whose sources are left unpruned has nothing for its followers to follow
        unpruned = {
            plan[id(s)][1] for s in (layer for g in groups.values() for layer in g)
            if id(s) in own and own[id(s)] is None
        }
        for key, (role, group) in list(plan.items()):
            if isinstance(group, list):  # a follower after a Concatenate: runs of groups
                runs = [[None if g in unpruned else g, n] for g, n in group]
                if any(g is not None for g, _ in runs):
                    plan[key] = (role, runs)
                else:
                    del plan[key]
            elif group in unpruned:
                del plan[key]

    def args_for(layer: keras.layers.Layer) -> dict:
        if id(layer) in own:
            return {**args, "pruning_schedule": own[id(layer)]}
        return args

    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
    skipped: list[str] = []

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        if is_op(layer):
            return layer  # a keras.ops call (x + 3.0): stateless, nothing to prune
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
            return PruneLowMagnitude(copy, **args_for(layer), channel_group=role[1])
        if not is_prunable(layer, structure):
            why = _unprunable_kernel(layer)
            if why is not None:
                skipped.append(why)
            return copy
        if id(layer) in own and own[id(layer)] is None:
            return copy
        reason = _fits(layer, structure)
        if reason is not None:
            skipped.append(reason)
            return copy
        return PruneLowMagnitude(copy, **args_for(layer))

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
            copy_weights(old, new)
    skipped.extend(notes)
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


def copy_weights(old: keras.layers.Layer, new: keras.layers.Layer, values: Any = None) -> None:
    """``new.set_weights(values or old's)``, then let layers whose state is derived from
    their weights recompute it (Normalization's mean and variance: ``finalize_state``)."""
    new.set_weights(old.get_weights() if values is None else values)
    for layer in {id(new): new, id(inner(new)): inner(new)}.values():
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            finalize()


def _all(model: Any) -> list[Any]:
    from effkeras.prune.update import walk_layers

    return walk_layers(model)
