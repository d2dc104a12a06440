"""``strip_pruning``: the plain Keras model, with pruned weights zero and pruned channels gone.

Every :class:`~effkeras.prune.PruneLowMagnitude` becomes its wrapped layer holding
``weight * mask``; every :class:`~effkeras.prune.ChannelFollower` its wrapped layer.
For channel pruning the model is then made *smaller*: each channel that is exactly zero
everywhere in its channel space (see :mod:`effkeras.prune.graph`) is removed from the
layers producing it, from the batch norm / depthwise layers inside the space, and from
the input of the layers consuming it (Conv, Dense, Dense after Flatten), across residual
``Add`` and channel ``Concatenate`` (DenseNet's dense blocks, NASNet's cells). Zero is
checked, not assumed, so the smaller model computes what the masked one did, within
float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.errors import PruningError
from effkeras.prune.apply import _is_graph_model, copy_weights
from effkeras.prune.graph import (
    Boundary,
    GraphNode,
    channel_spaces,
    effective_exits,
    inner,
    is_op,
    layer_graph,
    leaf_segments,
    zero_flow,
)
from effkeras.prune.measure import model_cost
from effkeras.prune.structures import Channel
from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    return layer.__class__.from_config(layer.get_config())


def _source_zero(node: GraphNode, channels: int) -> np.ndarray | None:
    layer = node.layer
    if isinstance(layer, PruneLowMagnitude) and isinstance(layer.structure, Channel):
        keep = layer.channel_keep()
        return keep == 0 if keep is not None and keep.size == channels else None
    return None


def _follower_zero(node: GraphNode, channels: int) -> np.ndarray | None:
    layer = node.layer
    if isinstance(layer, ChannelFollower) and layer.built:
        mask = ops.convert_to_numpy(layer.channel_mask.value)
        return mask == 0 if mask.size == channels else None
    return None


def _plan(model: keras.Model, plan: dict[int, dict[str, np.ndarray]]) -> None:
    """Fill ``plan``: id(layer) -> {"out"|"in"|"member"|"rows": indices to keep,
    "channels": the space's channel count before}."""
    graph = layer_graph(model, inline_models=True)
    if graph is None:
        return
    spaces, index = channel_spaces(graph)
    exits = effective_exits(spaces, index)
    zero = zero_flow(graph, _source_zero, _follower_zero)
    dead_of: dict[int, np.ndarray] = {}
    for space in spaces:
        if not space.shrinkable or not space.sources or space.channels <= 1:
            continue
        # A channel can go when it is zero wherever it leaves the space (and the
        # concatenations it feeds); inside it may be anything (see effkeras.prune.graph).
        where = exits[id(space)] or [(t, np.arange(space.channels)) for t in space.tensors]
        dead = np.logical_and.reduce(
            [zero.get(t, np.zeros(graph.channels(t), bool))[idx] for t, idx in where]
        )
        if not dead.any() or dead.all():
            continue
        dead_of[id(space)] = dead
        _remove(space, np.flatnonzero(~dead), graph, plan, sources=True)
    for space in spaces:
        if not space.composite or not space.shrinkable:
            continue
        dead = np.concatenate([
            dead_of.get(id(leaf), np.zeros(n, bool)) if leaf is not None else np.zeros(n, bool)
            for leaf, n in leaf_segments(space, spaces, index)
        ])
        if dead.any() and dead.size == space.channels:
            _remove(space, np.flatnonzero(~dead), graph, plan, sources=False)
    inlined = {id(m) for m in graph.inlined}
    for layer in model.layers:  # nested models called more than once: on their own
        if isinstance(layer, keras.Model) and id(layer) not in inlined:
            _plan(layer, plan)


def _remove(space: Any, keep: np.ndarray, graph: Any, plan: dict, sources: bool) -> None:
    """Plan the removal of a space's channels but ``keep``: from its sources (unless it is
    a concatenation), its members and the input of its consumers."""
    if sources:
        for node in space.sources:
            plan.setdefault(id(node.layer), {})["out"] = keep
    for node in space.members:
        if isinstance(node.layer, Boundary):
            if node.layer.side == "input":  # a nested model's input shape changes
                inputs = plan.setdefault(id(node.layer.model), {}).setdefault("inputs", {})
                inputs[node.layer.index] = int(keep.size)
            continue
        entry = plan.setdefault(id(node.layer), {})
        entry["member"], entry["channels"] = keep, np.asarray(space.channels)
    for node in space.consumers:
        plan.setdefault(id(node.layer), {})["in"] = keep
    for flatten, denses in space.flatten_consumers:
        spatial = int(np.prod(graph.shapes[flatten.inputs[0]][1:-1]))
        rows = (np.arange(spatial)[:, None] * space.channels + keep[None, :]).ravel()
        for dense in denses:
            plan.setdefault(id(dense.layer), {})["rows"] = rows


def _named_weights(layer: Any) -> list[tuple[str, np.ndarray]]:
    """(short name, value) of the plain layer's weights, masks applied."""
    base = inner(layer)
    masked = {}
    keep = None
    if isinstance(layer, PruneLowMagnitude) and layer.built:
        masked = {
            id(w): m for w, m in zip(layer.prunable_weights, layer.masked_weights(), strict=True)
        }
        keep = layer.channel_keep()
    elif isinstance(layer, ChannelFollower) and layer.built:
        keep = ops.convert_to_numpy(layer.channel_mask.value)
    out = []
    for v in base.weights:
        name = v.name.split("/")[-1]
        value = masked.get(id(v), ops.convert_to_numpy(v.value))
        # Fold the output channel mask into the weights, so a pruned channel is zero in
        # the plain layer too (exact when its activation maps 0 to 0).
        if keep is not None and name in ("bias", "gamma", "beta") and value.shape == keep.shape:
            value = value * keep
        elif keep is not None and isinstance(layer, ChannelFollower) and name == "kernel":
            value = value * keep.reshape(-1, 1) if value.ndim >= 2 else value
        out.append((name, value))
    return out


def _zero_rows(w: np.ndarray, keep: np.ndarray, axis: int) -> np.ndarray:
    mask = np.zeros(w.shape[axis], dtype=w.dtype)
    mask[keep] = 1
    shape = [1] * w.ndim
    shape[axis] = -1
    return w * mask.reshape(shape)


def _slice(
    layer: Any, weights: list[tuple[str, np.ndarray]], plan: dict, remove: bool = True
) -> list[np.ndarray]:
    base = inner(layer)
    separable = isinstance(base, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D)
    if not remove:
        # Keep every channel, but zero the consumers' weights for the dead ones, so the
        # plain model computes what the masked one did.
        out = []
        for name, w in weights:
            if "in" in plan and w.ndim > 1 and name != "depthwise_kernel":
                keep = plan["in"]
                if separable:
                    m = int(base.depth_multiplier)
                    keep = (keep[:, None] * m + np.arange(m)[None, :]).ravel()
                w = _zero_rows(w, keep, w.ndim - 2)
            if "rows" in plan and w.ndim == 2 and name == "kernel":
                w = _zero_rows(w, plan["rows"], 0)
            out.append(w)
        return out
    out = []
    for name, w in weights:
        if "member" in plan:
            keep, channels = plan["member"], int(plan["channels"])
            if w.ndim == 1 and w.shape[0] == channels:
                w = w[keep]  # batch norm, Normalization, depthwise bias
            elif w.ndim > 1 and w.shape[-2] == channels:
                w = np.take(w, keep, axis=-2)  # depthwise kernel (..., C, 1)
        if "in" in plan and w.ndim > 1:
            keep = plan["in"]
            if separable and name == "pointwise_kernel":
                m = int(base.depth_multiplier)
                keep = (keep[:, None] * m + np.arange(m)[None, :]).ravel()
            w = np.take(w, keep, axis=-2)
        if "rows" in plan and w.ndim == 2 and name == "kernel":
            w = w[plan["rows"]]
        if "out" in plan and not (separable and name == "depthwise_kernel"):
            w = np.take(w, plan["out"], axis=-1)
        out.append(w)
    return out


def strip_pruning(model: Any, *, remove_channels: bool = True) -> Any:
    """Remove pruning wrappers; for channel pruning, remove the pruned channels too.

    Args:
        model: a model made by :func:`~effkeras.prune.prune_low_magnitude` (Sequential
            or Functional, nested models included), or a single pruned layer.
        remove_channels: physically remove channels that channel pruning zeroed (the
            result has fewer filters, and its batch norm, depthwise and consuming
            layers fewer channels). With False, every channel stays: pruned filters,
            and the consuming layers' weights for them, are zeros.

    Returns:
        A new plain Keras model (or layer) with no effkeras pruning layers, whose
        outputs equal the pruned model's (inference mode) within float tolerance.
    """
    if isinstance(model, PruneLowMagnitude):
        layer = _copy(model.layer)
        layer.build_from_config(model.layer.get_build_config()) if model.built else None
        if model.built:
            layer.set_weights([w for _, w in _named_weights(model)])
        return layer
    if not isinstance(model, keras.Model) or layer_graph(model) is None:
        raise PruningError(
            f"strip_pruning takes a built Sequential or Functional model made by "
            f"prune_low_magnitude, or a PruneLowMagnitude layer. Received: "
            f"{type(model).__name__} {getattr(model, 'name', '')!r}. For a subclassed model, "
            f"call strip_pruning(layer) on each pruned layer and put the results in its place."
        )
    plan: dict[int, dict[str, np.ndarray]] = {}
    _plan(model, plan)
    pairs: list[tuple[Any, Any]] = []

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        if is_op(layer):
            return layer  # a keras.ops call: stateless, follows its input's channels
        if _is_graph_model(layer):
            return _clone_nested(layer, plan.get(id(layer), {}) if remove_channels else {},
                                 clone_function)
        config = inner(layer).get_config()
        entry = plan.get(id(layer), {}) if remove_channels else {}
        keep = entry.get("out")
        if keep is not None:
            config["filters" if "filters" in config else "units"] = int(keep.size)
        member = entry.get("member")
        if member is not None and isinstance(inner(layer), keras.layers.Reshape):
            target = list(config["target_shape"])
            if target[-1] != -1:
                config["target_shape"] = (*target[:-1], int(member.size))
        try:
            new = inner(layer).__class__.from_config(config)
        except Exception as exc:  # noqa: BLE001 - any failure here is the layer's config
            if not inner(layer).weights and not entry:
                return inner(layer)  # stateless (a Lambda of a Python lambda): share it
            raise PruningError(
                f"strip_pruning clones the model, but layer {inner(layer).name!r} "
                f"({type(inner(layer)).__name__}) cannot be rebuilt from its config "
                f"({type(exc).__name__}). Give it a get_config() returning every __init__ "
                f"argument (and a from_config() if they are not plain values)."
            ) from exc
        pairs.append((layer, new))
        return new

    stripped = keras.models.clone_model(model, clone_function=clone_function)
    for old, new in pairs:
        if inner(old).weights:
            copy_weights(
                old, new, _slice(old, _named_weights(old), plan.get(id(old), {}), remove_channels)
            )
    return stripped


def _clone_nested(model: keras.Model, entry: dict, clone_function: Any) -> keras.Model:
    """A nested model cloned with ``clone_function``, on inputs with the channels that
    stripping left it (``entry["inputs"]``: input index -> channels)."""
    channels = entry.get("inputs", {})
    if not channels:
        return keras.models.clone_model(model, clone_function=clone_function)
    inputs = [
        keras.Input(
            shape=(*t.shape[1:-1], channels.get(i, t.shape[-1])), dtype=t.dtype,
            batch_size=t.shape[0], name=_input_name(t),
        )
        for i, t in enumerate(model.inputs)
    ]
    return keras.models.clone_model(
        model, input_tensors=inputs if len(inputs) > 1 else inputs[0],
        clone_function=clone_function,
    )


def _input_name(tensor: Any) -> str | None:
    """The name of the InputLayer that made a model input tensor."""
    history = getattr(tensor, "_keras_history", None)
    return getattr(history[0], "name", None) if history else None


@dataclass
class StripReport:
    """Params and MACs (batch 1) of a model before and after :func:`strip_pruning`."""

    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    layers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def params_ratio(self) -> float:
        return self.params_after / max(self.params_before, 1)

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / max(self.macs_before, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "params_before": self.params_before,
            "params_after": self.params_after,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "params_ratio": self.params_ratio,
            "macs_ratio": self.macs_ratio,
            "layers": [dict(r) for r in self.layers],
        }

    def table(self) -> str:
        lines = [f"{'layer':<28}{'params':>18}{'MACs':>22}{'channels':>14}"]
        for r in self.layers:
            lines.append(
                f"{r['name']:<28}{r['params_before']:>8} -> {r['params_after']:<7}"
                f"{r['macs_before']:>10} -> {r['macs_after']:<9}"
                f"{r['channels_before']:>5} -> {r['channels_after']:<5}"
            )
        lines.append(
            f"{'total':<28}{self.params_before:>8} -> {self.params_after:<7}"
            f"{self.macs_before:>10} -> {self.macs_after:<9}"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def strip_report(before: keras.Model, after: keras.Model) -> StripReport:
    """Compare params and MACs of a pruned model and its stripped version, per layer."""
    a, b = model_cost(before), model_cost(after)
    after_rows = {r.name: r for r in b["layers"]}
    rows = []
    for r in a["layers"]:
        s = after_rows.get(r.name)
        if s is None:
            continue
        rows.append(
            {
                "name": r.name,
                "type": r.type,
                "params_before": r.params,
                "params_after": s.params,
                "macs_before": r.macs,
                "macs_after": s.macs,
                "channels_before": int(r.output_shape[-1]) if r.output_shape else 0,
                "channels_after": int(s.output_shape[-1]) if s.output_shape else 0,
            }
        )
    return StripReport(a["params"], b["params"], a["macs"], b["macs"], rows)
