"""The layer graph of a Keras model, and its channel spaces (for channel pruning).

A *channel space* is a set of tensors whose last axis indexes the same channels: a
convolution's output, the batch norm, activation, pooling and depthwise layers after it,
and every input and the output of an ``Add`` that joins them. Removing channel ``c``
from a space means removing filter ``c`` from every layer that *produces* the space
(its sources), channel ``c`` from every per-channel layer *inside* it (members), and
input channel ``c`` from every layer that *consumes* it (a Conv, a Dense, a Dense after
Flatten). A space whose channels cannot all be removed that way (it is a model input or
output, or feeds a Concatenate or Reshape...) is *blocked*, with the reason recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude


@dataclass
class GraphNode:
    """One call of a layer: the tensors (by id) it reads and writes."""

    layer: Any
    inputs: list[int]
    outputs: list[int]


@dataclass
class LayerGraph:
    nodes: list[GraphNode]
    inputs: list[int]
    outputs: list[int]
    shapes: dict[int, tuple]

    def producers(self) -> dict[int, GraphNode]:
        return {t: n for n in self.nodes for t in n.outputs}

    def consumers(self) -> dict[int, list[GraphNode]]:
        out: dict[int, list[GraphNode]] = {}
        for n in self.nodes:
            for t in n.inputs:
                out.setdefault(t, []).append(n)
        return out


def layer_graph(model: keras.Model) -> LayerGraph | None:
    """The nodes of a Functional (or built Sequential) model in topological order."""
    functional = model
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
    by_depth = getattr(functional, "_nodes_by_depth", None)
    if functional is None or by_depth is None:
        return None
    nodes, shapes = [], {}
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            for t in [*node.input_tensors, *node.output_tensors]:
                shapes[id(t)] = tuple(t.shape)
            if isinstance(node.operation, keras.layers.InputLayer):
                continue
            nodes.append(
                GraphNode(
                    node.operation,
                    [id(t) for t in node.input_tensors],
                    [id(t) for t in node.output_tensors],
                )
            )
    return LayerGraph(
        nodes, [id(t) for t in functional.inputs], [id(t) for t in functional.outputs], shapes
    )


def inner(layer: Any) -> Any:
    """The layer a pruning wrapper wraps, or the layer itself."""
    return layer.layer if isinstance(layer, PruneLowMagnitude | ChannelFollower) else layer


def _is(layer: Any, *names: str) -> bool:
    return any(isinstance(layer, getattr(keras.layers, n)) for n in names)


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


def _activation_name(layer: Any) -> str | None:
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else None


def kind(layer: Any) -> str:
    """How a layer treats channels: ``pass`` (channel c -> c), ``merge``, ``source``
    (makes a new channel set: Conv, Dense), or ``other``."""
    base = inner(layer)
    if _is(base, *_MERGE):
        return "merge"
    if _is(base, *_PLAIN):
        return "pass" if _channels_last(base) else "other"
    if _is(base, "Activation"):
        return "pass" if _activation_name(base) in _ELEMENTWISE - {"glu"} else "other"
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


def keeps_zero(layer: Any) -> bool:
    """Whether a ``pass`` layer maps an all-zero channel to an all-zero channel."""
    base = inner(layer)
    if _is(base, "BatchNormalization"):
        return False
    if _is(base, "DepthwiseConv1D", "DepthwiseConv2D"):
        return not base.use_bias
    if _is(base, "Activation"):
        name = _activation_name(base)
        if name == "linear":
            return True
        value = keras.ops.convert_to_numpy(base(np.zeros((1, 1), "float32")))
        return bool(np.all(value == 0))
    return True


def needs_follower(layer: Any) -> bool:
    """Whether a ``pass`` layer inside a pruned space must be wrapped in ChannelFollower."""
    return kind(layer) == "pass" and not keeps_zero(layer)


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

    @property
    def shrinkable(self) -> bool:
        return not self.blocked


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
    kinds = {id(n): kind(n.layer) for n in graph.nodes}
    for n in graph.nodes:
        if kinds[id(n)] in ("pass", "merge") and len(n.outputs) == 1:
            for t in n.inputs:
                union(t, n.outputs[0])
    roots: dict[int, int] = {}
    spaces: list[Space] = []
    index: dict[int, int] = {}
    for t in graph.shapes:
        r = find(t)
        if r not in roots:
            shape = graph.shapes[t]
            roots[r] = len(spaces)
            spaces.append(Space([], int(shape[-1]) if shape and shape[-1] is not None else 0))
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
            else:
                space.sources.append(n)
                if k != "source":
                    space.blocked.append(f"{name!r} ({type(inner(n.layer)).__name__}) produces it")
            if shared:
                space.blocked.append(f"{name!r} is called more than once")
            if k == "merge" and len({graph.shapes[i] for i in n.inputs}) > 1:
                space.blocked.append(f"{name!r} broadcasts its inputs")
        if k in ("pass", "merge"):
            continue
        for t in n.inputs:
            space = spaces[index[t]]
            base = inner(n.layer)
            if k == "source" and not shared:
                space.consumers.append(n)
            elif _is(base, "Flatten") and _channels_last(base) and len(n.outputs) == 1:
                dense = _denses_after(n.outputs[0], consumers, calls, graph.outputs)
                ok = bool(dense) and n.outputs[0] not in graph.outputs and not shared
                if ok:
                    space.flatten_consumers.append((n, dense))
                else:
                    space.blocked.append(f"Flatten {name!r} feeds something other than Dense")
            else:
                space.blocked.append(f"{name!r} ({type(base).__name__}) consumes it")
    return spaces, index
