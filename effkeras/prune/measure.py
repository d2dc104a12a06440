"""Measure a Keras model: fraction of zeros per layer, params and MACs per layer.

These count the Keras model itself (pruning masks applied, wrappers' own variables not
counted), so a model can be compared before and after
:func:`~effkeras.prune.strip_pruning` without converting it. For the .tflite figures
see :func:`effkeras.profile` and :func:`effkeras.prune.sparsity_report`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.prune.graph import inner, layer_graph
from effkeras.prune.update import walk_layers
from effkeras.prune.wrapper import ChannelFollower, PruneLowMagnitude

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _kernels(layer: Any) -> list[np.ndarray]:
    if isinstance(layer, PruneLowMagnitude):
        return layer.masked_weights() if layer.built else []
    base = inner(layer)
    return [
        ops.convert_to_numpy(v.value)
        for v in base.weights
        if v.name.split("/")[-1] in _KERNELS and v.trainable
    ]


def sparsity(model: Any) -> dict[str, float]:
    """Fraction of zeros in each layer's kernels (masks applied for pruned layers).

    Args:
        model: a Keras model (pruned or not; nested models are searched) or a layer.

    Returns:
        ``{layer name: fraction of zero kernel weights}`` for every layer with a kernel,
        named by the wrapped layer's name so that the keys match before and after
        :func:`~effkeras.prune.strip_pruning`.
    """
    layers = walk_layers(model) if isinstance(model, keras.Model) else [model]
    out: dict[str, float] = {}
    for layer in layers:
        if isinstance(layer, keras.Model):
            continue
        kernels = _kernels(layer)
        total = sum(k.size for k in kernels)
        if total:
            out[inner(layer).name] = float(sum(int((k == 0).sum()) for k in kernels) / total)
    return out


@dataclass
class LayerCost:
    """Parameters and multiply-accumulates of one layer call (batch 1)."""

    name: str
    type: str
    params: int
    macs: int
    output_shape: tuple

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prod(values: Any) -> int:
    return int(np.prod([int(v) for v in values])) if len(values) else 1


def _macs(layer: Any, in_shape: tuple, out_shape: tuple) -> int:
    base = inner(layer)
    cin = int(in_shape[-1]) if in_shape else 0
    if isinstance(base, keras.layers.Dense):
        return _prod(in_shape[1:-1]) * cin * int(base.units)
    spatial = _prod(out_shape[1:-1]) if out_shape else 0
    if isinstance(base, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
        mid = cin * int(base.depth_multiplier)
        return spatial * (_prod(base.kernel_size) * mid + mid * int(base.filters))
    if isinstance(base, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
        return spatial * _prod(base.kernel_size) * cin * int(base.depth_multiplier)
    if isinstance(base, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        return spatial * _prod(base.kernel_size) * (cin // int(base.groups)) * int(base.filters)
    return 0


def _params(layer: Any) -> int:
    base = inner(layer)
    return int(sum(_prod(v.shape) for v in getattr(base, "weights", [])))


def model_cost(model: keras.Model) -> dict[str, Any]:
    """Params and MACs (batch 1) of a built Sequential/Functional model, per layer.

    Returns:
        ``{"params": int, "macs": int, "layers": [LayerCost, ...]}``; nested models are
        expanded into their layers.
    """
    graph = layer_graph(model)
    if graph is None:
        raise ValueError(
            f"model_cost needs a built Sequential or Functional model. Received: "
            f"{type(model).__name__} {getattr(model, 'name', '')!r} (build it with a "
            f"keras.Input first)."
        )
    rows: list[LayerCost] = []
    for node in graph.nodes:
        layer = node.layer
        if isinstance(layer, keras.Model) and not isinstance(layer, PruneLowMagnitude):
            sub = model_cost(layer)
            rows.extend(sub["layers"])
            continue
        in_shape = graph.shapes.get(node.inputs[0], ()) if node.inputs else ()
        out_shape = graph.shapes.get(node.outputs[0], ()) if node.outputs else ()
        base = inner(layer)
        rows.append(
            LayerCost(
                name=base.name,
                type=type(base).__name__,
                params=_params(layer) if not isinstance(layer, ChannelFollower) else _params(base),
                macs=_macs(layer, in_shape, out_shape),
                output_shape=tuple(out_shape),
            )
        )
    return {
        "params": int(sum(r.params for r in rows)),
        "macs": int(sum(r.macs for r in rows)),
        "layers": rows,
    }
