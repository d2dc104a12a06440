"""The layer graph of a Keras model, and its channel spaces (for channel pruning).

A *channel space* is a set of tensors whose last axis indexes the same channels: a
convolution's output, the batch norm, activation, pooling, depthwise, Reshape (keeping
the last axis) and elementwise ``keras.ops`` nodes after it, and every input and the
output of an ``Add`` or ``Multiply`` that joins them (a squeeze-excite ``Multiply``
broadcasting ``(1, 1, C)`` over ``(H, W, C)`` joins the two spaces; an input of one
channel broadcast over all of them is a *side input*, outside the space). Removing
channel ``c`` from a space means removing filter ``c`` from every layer that
*produces* the space (its sources), channel ``c`` from every per-channel layer *inside*
it (members), and input channel ``c`` from every layer that *consumes* it (a Conv, a
Dense, a Dense after Flatten): its *exits*. A channel can be removed when it is zero at
every exit; inside the space it may be anything (a hard-sigmoid turns 0 into 0.5, and
the squeeze-excite ``Multiply`` after it turns that back into 0). A space whose channels
cannot all be removed that way (it is a model input or output, it feeds a Flatten to
something other than Dense...) is *blocked*, with the reason recorded.

A ``Concatenate`` (layer or ``keras.ops.concatenate``) on the channel axis starts a
*composite* space: its channels are its
inputs' channels one after the other (its *segments*), so it has no sources of its own.
Channel ``c`` of an input space sits at ``offset + c`` of the concatenation: removing it
removes that channel from the composite space's members and exits too, and a channel of
the input space can be removed only when it is zero at its own exits and at the
composite space's (:func:`effective_exits`; chains of concatenations, as in DenseNet's
dense blocks, compose). An input space is blocked when the composite space is (it is a
model output, a layer that is not per-channel consumes it...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude


@dataclass
class GraphNode:
    """One call of a layer (or of a ``keras.ops`` operation): the tensors (by id) it reads
    and writes, and the Keras node itself (whose arguments hold an op's constants)."""

    layer: Any
    inputs: list[int]
    outputs: list[int]
    call: Any = None


@dataclass
class LayerGraph:
    nodes: list[GraphNode]
    inputs: list[int]
    outputs: list[int]
    shapes: dict[int, tuple]
    #: the nested models whose nodes stand in ``nodes`` (``inline_models=True``), any depth
    inlined: list[Any] = field(default_factory=list)

    def producers(self) -> dict[int, GraphNode]:
        return {t: n for n in self.nodes for t in n.outputs}

    def consumers(self) -> dict[int, list[GraphNode]]:
        out: dict[int, list[GraphNode]] = {}
        for n in self.nodes:
            for t in n.inputs:
                out.setdefault(t, []).append(n)
        return out

    def channels(self, t: int) -> int:
        shape = self.shapes.get(t)
        return int(shape[-1]) if shape and shape[-1] is not None else 0


@dataclass
class Boundary:
    """Where a nested model inlined by :func:`layer_graph` hands a tensor across its edge
    (the outer tensor to its input, its output to the outer tensor): the identity."""

    name: str
    model: Any = None
    index: int = 0
    side: str = "input"


def layer_graph(model: keras.Model, inline_models: bool = False) -> LayerGraph | None:
    """The nodes of a Functional (or built Sequential) model in topological order.

    With ``inline_models``, a nested Functional/Sequential model called once is replaced
    by its own nodes, joined to the outer tensors by :class:`Boundary` nodes, so channel
    spaces run through it (a keras.applications base inside ``Sequential([base,
    GlobalAveragePooling2D(), Dense(10)])``)."""
    functional = model
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
    by_depth = getattr(functional, "_nodes_by_depth", None)
    if functional is None or by_depth is None:
        return None
    calls: dict[int, int] = {}
    for depth in by_depth:
        for node in by_depth[depth]:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    nodes, shapes, inlined = [], {}, []
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            for t in [*node.input_tensors, *node.output_tensors]:
                shapes[id(t)] = tuple(t.shape)
            if isinstance(node.operation, keras.layers.InputLayer):
                continue
            sub = (
                layer_graph(node.operation, inline_models=True)
                if inline_models and isinstance(node.operation, keras.Model)
                and calls[id(node.operation)] == 1 else None
            )  # fmt: skip
            ins, outs = list(node.input_tensors), list(node.output_tensors)
            if sub is not None and len(sub.inputs) == len(ins) and len(sub.outputs) == len(outs):
                name = node.operation.name
                m = node.operation
                nodes.extend(
                    GraphNode(Boundary(f"{name} (input {i})", m, i, "input"), [id(a)], [b])
                    for i, (a, b) in enumerate(zip(ins, sub.inputs, strict=True))
                )
                nodes.extend(sub.nodes)
                nodes.extend(
                    GraphNode(Boundary(f"{name} (output {i})", m, i, "output"), [a], [id(b)])
                    for i, (a, b) in enumerate(zip(sub.outputs, outs, strict=True))
                )
                shapes.update(sub.shapes)
                inlined.extend([m, *sub.inlined])
                continue
            nodes.append(GraphNode(node.operation, [id(t) for t in ins], [id(t) for t in outs], node))
    return LayerGraph(
        nodes, [id(t) for t in functional.inputs], [id(t) for t in functional.outputs], shapes,
        inlined,
    )


def inner(layer: Any) -> Any:
    """The layer a pruning wrapper wraps, or the layer itself."""
    return layer.layer if isinstance(layer, PruneLowMagnitude | ChannelFollower) else layer


def is_op(layer: Any) -> bool:
    """Whether a graph node is a ``keras.ops`` operation (``x + 3.0``), not a layer."""
    return not isinstance(layer, keras.layers.Layer | Boundary)


def _is(layer: Any, *names: str) -> bool:
    return isinstance(layer, keras.layers.Layer) and any(
        isinstance(layer, getattr(keras.layers, n)) for n in names
    )


def _channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") in ("channels_last", None)


_MERGE = ("Add", "Subtract", "Average", "Maximum", "Minimum", "Multiply")
_PLAIN = (
    "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
    "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
)  # fmt: skip
_ELEMENTWISE = {
    "linear", "relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "tanh", "sigmoid",
    "hard_sigmoid", "hard_silu", "hard_swish", "softplus", "softsign", "leaky_relu", "mish",
    "exponential", "celu", "glu",
}  # fmt: skip
#: keras.ops operations (class names) that act on each element on its own; with one
#: tensor argument and only scalar constants they keep channels one-to-one.
_ELEMENTWISE_OPS = {
    "Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Tanh", "Elu", "Selu",
    "Gelu", "Celu", "LeakyRelu", "Softplus", "Softsign", "Mish", "SparsePlus",
    "SquarePlus", "Negative", "Abs", "Absolute", "Square", "Sqrt", "Exp", "Expm1", "Log",
    "Log1p", "Sign", "Floor", "Ceil", "Round", "Clip", "Cast", "Sin", "Cos", "Erf",
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
}  # fmt: skip
#: keras.ops operations that join two tensors of one channel space elementwise.
_MERGE_OPS = {"Add", "Subtract", "Multiply", "Maximum", "Minimum"}


def _activation_name(layer: Any) -> str | None:
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else None


def _scalar(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    try:
        return int(np.size(value)) == 1
    except Exception:  # noqa: BLE001 - anything that is not array-like is not a scalar
        return False


def _op_constants(node: GraphNode) -> list[Any]:
    """The non-tensor arguments of an op's call."""
    if node.call is None:
        return []
    flat = keras.tree.flatten((node.call.arguments.args, node.call.arguments.kwargs))
    return [a for a in flat if not isinstance(a, keras.KerasTensor)]


def _op_kind(node: GraphNode, shapes: dict[int, tuple] | None) -> str:
    name = type(node.layer).__name__
    if name not in _ELEMENTWISE_OPS or len(node.outputs) != 1:
        return "other"
    if not all(_scalar(c) for c in _op_constants(node)):
        return "other"
    if len(node.inputs) == 1:
        return "pass"
    if len(node.inputs) == 2 and name in _MERGE_OPS:
        return "merge"
    return "other"


def _reshape_keeps_channels(node: GraphNode, shapes: dict[int, tuple] | None) -> bool:
    if shapes is None or len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    a, b = shapes.get(node.inputs[0]), shapes.get(node.outputs[0])
    target = tuple(getattr(inner(node.layer), "target_shape", ()) or ())
    # Row-major order: with the same last axis, element (..., c) stays at channel c.
    return bool(a and b and a[-1] is not None and a[-1] == b[-1] and target and
                target[-1] in (a[-1], -1))


def _concat_on_channels(layer: Any, node: GraphNode, shapes: dict[int, tuple] | None) -> bool:
    """Whether a Concatenate call joins its inputs along their last (channel) axis."""
    if shapes is None or len(node.outputs) != 1 or len(node.inputs) < 2:
        return False
    out = shapes.get(node.outputs[0])
    ins = [shapes.get(t) for t in node.inputs]
    if not out or any(not s or s[-1] is None for s in ins) or out[-1] is None:
        return False
    axis = int(layer.axis)
    return (axis == -1 or axis == len(out) - 1) and sum(int(s[-1]) for s in ins) == int(out[-1])


def kind(layer: Any, node: GraphNode | None = None, shapes: dict[int, tuple] | None = None) -> str:
    """How a layer (or op) treats channels: ``pass`` (channel c -> c), ``merge``,
    ``concat`` (a Concatenate on the channel axis), ``source`` (makes a new channel set:
    Conv, Dense), or ``other``.

    ``node`` (and the graph's ``shapes``) let ops and Reshape be judged by their call."""
    base = inner(layer)
    if isinstance(base, Boundary):
        return "pass"
    if is_op(base) and type(base).__name__ == "Concatenate":  # keras.ops.concatenate
        ok = node is not None and isinstance(getattr(base, "axis", None), int)
        return "concat" if ok and _concat_on_channels(base, node, shapes) else "other"
    if is_op(base):
        return _op_kind(node, shapes) if node is not None else "other"
    if _is(base, *_MERGE):
        return "merge"
    if _is(base, "Concatenate"):
        return "concat" if node is not None and _concat_on_channels(base, node, shapes) else "other"
    if _is(base, *_PLAIN):
        return "pass" if _channels_last(base) else "other"
    if _is(base, "Reshape"):
        return "pass" if node is not None and _reshape_keeps_channels(node, shapes) else "other"
    if _is(base, "Activation"):
        return "pass" if _activation_name(base) in _ELEMENTWISE - {"glu"} else "other"
    if _is(base, "Rescaling"):
        ok = _scalar(base.scale) and _scalar(base.offset)
        return "pass" if ok else "other"
    if _is(base, "Normalization"):
        axis = tuple(base.axis) if isinstance(base.axis, list | tuple) else (base.axis,)
        explicit = getattr(base, "input_mean", None) is not None
        return "pass" if axis == (-1,) and not explicit and not base.invert else "other"
    if _is(base, "BatchNormalization"):
        spec = base.input_spec
        rank = getattr(spec, "ndim", None) if spec is not None else None
        last = base.axis == -1 or (rank is not None and base.axis == rank - 1)
        return "pass" if last else "other"
    if _is(base, "DepthwiseConv1D", "DepthwiseConv2D"):
        return "pass" if base.depth_multiplier == 1 and _channels_last(base) else "other"
    if _is(base, "SeparableConv1D", "SeparableConv2D"):
        return "source" if _channels_last(base) else "other"
    if _is(base, "Conv1D", "Conv2D", "Conv3D"):
        return "source" if base.groups == 1 and _channels_last(base) else "other"
    if _is(base, "Dense"):
        return "source"
    return "other"


def keeps_zero(layer: Any, node: GraphNode | None = None) -> bool:
    """Whether a ``pass`` layer (or op call) maps an all-zero channel to an all-zero one."""
    base = inner(layer)
    if isinstance(base, Boundary):
        return True
    if is_op(base):
        if node is None or node.call is None:
            return False
        zeros = np.zeros((1, 1), "float32")
        try:
            args, kwargs = node.call.arguments.fill_in({id(node.call.input_tensors[0]): zeros})
            value = keras.ops.convert_to_numpy(base(*args, **kwargs))
        except Exception:  # noqa: BLE001 - an op that cannot run on zeros is not relied on
            return False
        return bool(np.all(value == 0))
    if _is(base, "BatchNormalization", "Normalization"):
        return False
    if _is(base, "Rescaling"):
        return float(np.ravel(base.offset)[0]) == 0.0
    if _is(base, "DepthwiseConv1D", "DepthwiseConv2D"):
        return not base.use_bias
    if _is(base, "Activation"):
        name = _activation_name(base)
        if name == "linear":
            return True
        value = keras.ops.convert_to_numpy(base(np.zeros((1, 1), "float32")))
        return bool(np.all(value == 0))
    return True


def needs_follower(layer: Any, node: GraphNode | None = None) -> bool:
    """Whether a ``pass`` layer inside a pruned space must be wrapped in ChannelFollower
    (ops cannot be wrapped: see :func:`zero_flow` for what strip makes of them)."""
    base = inner(layer)
    if is_op(base) or isinstance(base, Boundary):
        return False
    return kind(layer, node) == "pass" and not keeps_zero(layer, node)


def multiplies(layer: Any) -> bool:
    """Whether a merge multiplies its inputs (zero if any input is zero)."""
    base = inner(layer)
    return _is(base, "Multiply") or (is_op(base) and type(base).__name__ == "Multiply")


@dataclass
class Space:
    """A channel space (see the module docstring)."""

    tensors: list[int]
    channels: int
    sources: list[GraphNode] = field(default_factory=list)
    members: list[GraphNode] = field(default_factory=list)
    merges: list[GraphNode] = field(default_factory=list)
    consumers: list[GraphNode] = field(default_factory=list)
    flatten_consumers: list[tuple[GraphNode, list[GraphNode]]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)
    #: composite spaces: the Concatenate nodes producing it, and its segments in order:
    #: (input tensor id, offset in the concatenation, channels)
    concats: list[GraphNode] = field(default_factory=list)
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    #: input spaces of a Concatenate: (input tensor id, concatenation tensor id, offset)
    concat_exits: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def shrinkable(self) -> bool:
        return not self.blocked

    @property
    def composite(self) -> bool:
        """Whether the space is a concatenation of other spaces (see the module docstring)."""
        return bool(self.concats)


#: Layers that are the identity at inference, so a Dense behind them still reads the
#: flattened channels row for row.
_FLAT_IDENTITY = ("Dropout", "GaussianDropout", "GaussianNoise", "AlphaDropout", "Identity")


def _denses_after(t: int, consumers: dict, calls: dict, outputs: list) -> list | None:
    """The Dense nodes reading tensor ``t`` directly or through identity-at-inference layers
    (Flatten -> Dropout -> Dense), or None if anything else reads it."""
    found: list = []
    for d in consumers.get(t, []):
        base = inner(d.layer)
        if calls[id(d.layer)] != 1:
            return None
        if _is(base, "Dense"):
            found.append(d)
        elif (
            _is(base, *_FLAT_IDENTITY)
            and len(d.outputs) == 1
            and d.outputs[0] not in outputs
            and getattr(base, "noise_shape", None) is None
        ):
            deeper = _denses_after(d.outputs[0], consumers, calls, outputs)
            if not deeper:
                return None
            found.extend(deeper)
        else:
            return None
    return found or None


def in_space_inputs(node: GraphNode, graph: LayerGraph) -> tuple[list[int], list[int]]:
    """A merge's inputs with the output's channels, and its side inputs (one channel
    broadcast over all of them)."""
    c = graph.channels(node.outputs[0])
    same = [t for t in node.inputs if graph.channels(t) == c]
    return same, [t for t in node.inputs if graph.channels(t) != c]


def channel_spaces(graph: LayerGraph) -> tuple[list[Space], dict[int, int]]:
    """The channel spaces of a graph, and for each tensor id the index of its space."""
    parent: dict[int, int] = {}

    def find(t: int) -> int:
        parent.setdefault(t, t)
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    for t in graph.shapes:
        find(t)
    kinds = {id(n): kind(n.layer, n, graph.shapes) for n in graph.nodes}
    side: dict[int, list[int]] = {}
    for n in graph.nodes:
        if kinds[id(n)] == "pass" and len(n.outputs) == 1:
            for t in n.inputs:
                union(t, n.outputs[0])
        elif kinds[id(n)] == "merge" and len(n.outputs) == 1:
            same, side[id(n)] = in_space_inputs(n, graph)
            for t in same:
                union(t, n.outputs[0])
    roots: dict[int, int] = {}
    spaces: list[Space] = []
    index: dict[int, int] = {}
    for t in graph.shapes:
        r = find(t)
        if r not in roots:
            roots[r] = len(spaces)
            spaces.append(Space([], graph.channels(t)))
        index[t] = roots[r]
        spaces[roots[r]].tensors.append(t)

    calls: dict[int, int] = {}
    for n in graph.nodes:
        calls[id(n.layer)] = calls.get(id(n.layer), 0) + 1
    consumers = graph.consumers()
    for t in graph.inputs:
        spaces[index[t]].blocked.append("it is a model input")
    for t in graph.outputs:
        spaces[index[t]].blocked.append("it is a model output")
    for n in graph.nodes:
        k = kinds[id(n)]
        name = inner(n.layer).name
        shared = calls[id(n.layer)] > 1
        for t in n.outputs:
            space = spaces[index[t]]
            if k == "pass":
                space.members.append(n)
            elif k == "merge":
                space.merges.append(n)
                for s in side.get(id(n), []):
                    if graph.channels(s) != 1:
                        space.blocked.append(f"{name!r} broadcasts its inputs")
            elif k == "concat":
                space.concats.append(n)
                offset = 0
                for i in n.inputs:
                    space.segments.append((i, offset, graph.channels(i)))
                    spaces[index[i]].concat_exits.append((i, t, offset))
                    offset += graph.channels(i)
            else:
                space.sources.append(n)
                if k != "source":
                    space.blocked.append(f"{name!r} ({type(inner(n.layer)).__name__}) produces it")
            if shared:
                space.blocked.append(f"{name!r} is called more than once")
        if k in ("pass", "merge"):
            continue
        if k == "concat":
            if shared:
                for t in n.inputs:
                    spaces[index[t]].blocked.append(f"{name!r} is called more than once")
            continue
        for t in n.inputs:
            space = spaces[index[t]]
            base = inner(n.layer)
            if k == "source" and not shared:
                space.consumers.append(n)
                space.exits.append(t)
            elif _is(base, "Flatten") and _channels_last(base) and len(n.outputs) == 1:
                dense = _denses_after(n.outputs[0], consumers, calls, graph.outputs)
                ok = bool(dense) and n.outputs[0] not in graph.outputs and not shared
                if ok:
                    space.flatten_consumers.append((n, dense))
                    space.exits.append(t)
                else:
                    space.blocked.append(f"Flatten {name!r} feeds something other than Dense")
            else:
                space.blocked.append(f"{name!r} ({type(base).__name__}) consumes it")
    for space in spaces:
        if len(space.concats) > 1:
            space.blocked.append(
                f"it joins the Concatenates {[inner(n.layer).name for n in space.concats]}"
            )
        elif space.concats and space.sources:
            space.blocked.append(
                f"it joins the Concatenate {inner(space.concats[0].layer).name!r} with "
                f"{inner(space.sources[0].layer).name!r}"
            )
    _block_concat_inputs(spaces, index, graph)
    return spaces, index


def _block_concat_inputs(spaces: list[Space], index: dict[int, int], graph: LayerGraph) -> None:
    """Block every space that feeds a Concatenate whose composite space is blocked
    (repeated until nothing changes: chains of concatenations)."""
    done: set[int] = set()
    changed = True
    while changed:
        changed = False
        for space in spaces:
            if id(space) in done:
                continue
            for _t, cat, _offset in space.concat_exits:
                target = spaces[index[cat]]
                if target.blocked:
                    name = inner(target.concats[0].layer).name if target.concats else "?"
                    space.blocked.append(
                        f"it is concatenated by {name!r} into channels that cannot be "
                        f"removed ({target.blocked[0]})"
                    )
                    done.add(id(space))
                    changed = True
                    break


def effective_exits(
    spaces: list[Space], index: dict[int, int]
) -> dict[int, list[tuple[int, np.ndarray]]]:
    """id(space) -> the (tensor id, channel index per channel of the space) pairs where
    its channels must be zero to be removable: its own exits, and through each
    Concatenate it feeds, the composite space's (with the channel's offset there)."""
    memo: dict[int, list[tuple[int, np.ndarray]]] = {}

    def of(i: int, stack: frozenset) -> list[tuple[int, np.ndarray]]:
        space = spaces[i]
        if id(space) in memo:
            return memo[id(space)]
        own = np.arange(space.channels)
        found = [(t, own) for t in space.exits]
        for _t, cat, offset in space.concat_exits:
            j = index[cat]
            if j in stack:  # a cycle cannot happen in a functional graph; stay finite
                continue
            for t, idx in of(j, stack | {j}):
                found.append((t, idx[offset + own]))
        memo[id(space)] = found
        return found

    for i in range(len(spaces)):
        of(i, frozenset({i}))
    return memo


def leaf_segments(
    space: Space, spaces: list[Space], index: dict[int, int]
) -> list[tuple[Space | None, int]]:
    """A composite space's channels as runs of (input space with sources, channels), in
    order, composite inputs expanded; None for a run whose channels have no sources
    (a model input, a layer that is not per-channel...)."""
    out: list[tuple[Space | None, int]] = []
    for t, _offset, channels in space.segments:
        sub = spaces[index[t]]
        if sub.composite:
            out.extend(leaf_segments(sub, spaces, index))
        else:
            out.append((sub if sub.sources else None, channels))
    return out


def zero_flow(
    graph: LayerGraph,
    source_zero: Any,
    follower_zero: Any,
) -> dict[int, np.ndarray]:
    """Which channels of each tensor are exactly zero (tensor id -> bool per channel).

    ``source_zero(node, channels)`` gives a source's zero output channels (None: none),
    ``follower_zero(node, channels)`` those a ChannelFollower (or a layer that will be
    wrapped in one) forces to zero. A ``pass`` node carries zeros when it maps 0 to 0, a
    ``Multiply`` when any of its inputs is zero there, other merges when all are; a
    ``Concatenate`` puts its inputs' zeros one after the other.
    """
    kinds = {id(n): kind(n.layer, n, graph.shapes) for n in graph.nodes}
    zero: dict[int, np.ndarray] = {}
    for node in graph.nodes:
        k = kinds[id(node)]
        for t in node.outputs:
            c = graph.channels(t)
            none = np.zeros(c, dtype=bool)
            if k == "merge" and len(node.outputs) == 1:
                same, side = in_space_inputs(node, graph)
                ins = [zero.get(i) for i in same]
                ok = bool(ins) and all(z is not None and z.size == c for z in ins)
                if not ok:
                    out = none
                elif multiplies(node.layer):
                    out = np.logical_or.reduce(ins)
                else:
                    out = np.logical_and.reduce(ins) if not side else none
            elif k == "pass":
                z_in = zero.get(node.inputs[0]) if len(node.inputs) == 1 else None
                carried = (
                    z_in
                    if z_in is not None and z_in.size == c and keeps_zero(node.layer, node)
                    else none
                )
                forced = follower_zero(node, c)
                out = carried if forced is None else (forced | carried)
            elif k == "source":
                forced = source_zero(node, c)
                out = none if forced is None else forced
            elif k == "concat":
                parts = [zero.get(i) for i in node.inputs]
                ok = all(z is not None and z.size == graph.channels(i)
                         for z, i in zip(parts, node.inputs, strict=True))
                out = np.concatenate(parts) if ok and sum(z.size for z in parts) == c else none
            else:
                out = none
            zero[t] = out
    return zero
