"""Rewrite a Sequential or functional Keras model into its quantization-aware twin.

The rewrite walks the layer graph once, in topological order, and mirrors what the TFLite
converter will emit for each op:

- Conv2D / DepthwiseConv2D / SeparableConv2D / Dense, the BatchNormalization that is the
  only consumer of their output, and a following ReLU/ReLU6 become one folded layer
  (:mod:`effkeras.quantize.layers`): one TFLite op, one quantized output. Several equal
  ReLUs of one output (NASNet) are one ReLU to the converter, fused the same way.
- GlobalAveragePooling2D becomes :class:`~effkeras.quantize.layers.QuantGlobalAveragePooling2D`
  (TFLite's int8 MEAN, rounding included); AveragePooling2D becomes
  :class:`~effkeras.quantize.pooling.QuantAveragePooling2D`, on its input's grid (TFLite's
  AVERAGE_POOL_2D requires the same scale on input and output).
- Add, Subtract, Multiply (broadcasting squeeze-excite included), Concatenate, Average,
  GlobalAveragePooling1D, LeakyReLU and a standalone ReLU get their own output range
  (TFLite requantizes there); an Add/Subtract/Multiply followed only by ReLU(s) fuses
  it (a Concatenate does not: the converter keeps a RELU op after it). An op consumed
  only by a Concatenate (linear layers, Add, Subtract, Multiply) is put straight onto the
  concatenation's grid, as the converter does.
- keras.ops nodes of the graph (``x + 3.0``, ``ops.multiply``, ``ops.mean``, activations,
  reshapes) follow the same rules; a constant operand is rounded as the converter stores
  it (:mod:`effkeras.quantize.elementwise`).
- Rescaling, Normalization and a BatchNormalization that does not follow a linear layer
  (pre-activation ResNetV2/DenseNet) are per-channel affine maps: consecutive ones merge
  into one int8 MUL and one ADD with constant operands (a following ReLU fuses into the
  ADD). Such a batch norm is frozen at its moving statistics.
- Activations: silu/swish become LOGISTIC + MUL, hard_sigmoid ADD(+3, RELU6) + MUL(1/6),
  hard_silu/hard_swish x * hard_sigmoid(x), each with its own range (also when they are
  a Conv2D/Dense ``activation``). Softmax, sigmoid and tanh get TFLite's fixed ranges.
- MaxPooling, Flatten, Reshape, padding, cropping, Dropout ... keep the scale of their input.
- The model input is quantized; models nested as layers are inlined.
- Per layer, :func:`effkeras.quantize.quantize_annotate_layer` with a
  :class:`~effkeras.quantize.config.QuantizeConfig` sets weight bits and granularity or
  leaves it float; :func:`effkeras.quantize.register_rule` gives a custom layer class
  its rule.
- Anything else stays float (with a warning naming the layer and the way out, or a
  :class:`~effkeras.errors.QuantizationError` with ``strict=True``); an unexpected
  failure inside the rewrite is a QuantizationError naming the layer, too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from effkeras.errors import QuantizationError
from effkeras.quantize import layers as ql
from effkeras.quantize.config import annotation, registered_rule
from effkeras.quantize.elementwise import ConstantOperation, QuantAdd, QuantSubtract
from effkeras.quantize.pooling import QuantAveragePooling2D
from effkeras.quantize.ranges import relu_kind

L = keras.layers

#: Layers whose output TFLite stores with the scale and zero point of their input.
SHARED_SCALE = ql.SHARED_SCALE
#: Layers TFLite runs in int8 with an output range of their own.
OWN_RANGE = (
    L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum, L.Concatenate,
    L.AveragePooling1D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.LeakyReLU,
)
#: Layers that fuse a following ReLU/ReLU6 (the TFLite op has a fused activation). Not
#: Concatenate: the converter keeps CONCATENATION (on its inputs' shared grid) and a RELU
#: op after it (seen in NASNet's cells).
FUSES_RELU = (L.Add, L.Subtract, L.Multiply)
#: Layers whose output, when a Concatenate alone consumes it, the converter gives the
#: concatenation's scale (the op requantizes straight onto it: no range of its own), as
#: it does for the linear layers. (NASNet's cells: the ADDs into each cell's concat.)
#: A MUL so deferred is computed onto that grid by the concatenation's quantization.
DEFERS_TO_CONCAT = (L.Add, L.Subtract, L.Multiply)
LINEAR = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Dense)
FIXED = ("softmax", "sigmoid", "tanh")
#: Activations that become several int8 ops (each with its own output range):
#: silu = x * LOGISTIC(x); hard_sigmoid = MUL(ADD(x, 3) + RELU6, 1/6); hard_silu =
#: x * hard_sigmoid(x).
COMPOSITE = ("silu", "swish", "hard_sigmoid", "hard_silu", "hard_swish")
#: Activations with an int8 TFLite kernel of their own output range.
OWN_RANGE_ACTIVATIONS = ("leaky_relu",)
SUPPORTED_ACTIVATIONS = ("linear", "relu", "relu6", *FIXED, *COMPOSITE, *OWN_RANGE_ACTIVATIONS)

#: keras.ops operations (nodes of a functional graph that are not layers), by class name.
OP_ELEMENTWISE = ("Add", "Subtract", "Multiply", "Maximum", "Minimum")
OP_DIVIDE = ("Divide", "TrueDivide")
OP_ACTIVATIONS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "Softmax": "softmax", "HardSigmoid": "hard_sigmoid", "HardSilu": "hard_silu",
    "Silu": "silu", "LeakyRelu": "leaky_relu",
}
OP_SHARED = ("Reshape", "Transpose", "Squeeze", "ExpandDims", "GetItem", "Flatten")
OP_OWN = ("Mean", "Concatenate")


@dataclass
class QuantizationReport:
    """What :func:`quantize_model` did to each layer of the original model.

    Attributes:
        quantized: names of the original layers simulated in int8.
        fused: ``{absorbed layer: layer it was folded into}`` (BatchNormalization, ReLU).
        float_layers: ``{layer name: reason}`` for layers left in float.
    """

    quantized: list[str] = field(default_factory=list)
    fused: dict[str, str] = field(default_factory=dict)
    float_layers: dict[str, str] = field(default_factory=dict)

    @property
    def is_full_integer(self) -> bool:
        """True when no layer was left in float."""
        return not self.float_layers

    def __str__(self) -> str:
        lines = [f"int8: {len(self.quantized)} layers, fused: {len(self.fused)}, "
                 f"float: {len(self.float_layers)}"]
        lines += [f"  float  {name}: {why}" for name, why in self.float_layers.items()]
        return "\n".join(lines)


def _act_name(fn) -> str:
    name = getattr(fn, "__name__", None) or str(fn)
    aliases = {"identity": "linear", "swish": "silu", "hard_swish": "hard_silu"}
    return aliases.get(name, name)


def _is_tensor(value) -> bool:
    return isinstance(value, keras.KerasTensor)


def fixed_kind(layer) -> str | None:
    """``"softmax"``/``"sigmoid"``/``"tanh"`` for layers with a fixed TFLite output range."""
    if isinstance(layer, L.Softmax):
        return "softmax" if layer.axis in (-1, None) else None
    if isinstance(layer, L.Activation):
        name = _act_name(layer.activation)
        return name if name in FIXED else None
    return None


def unsupported_reason(layer) -> str | None:
    """Why a linear layer cannot be simulated, or None when it can."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "channels_first is not TFLite's layout"
    if isinstance(layer, L.Conv2D) and getattr(layer, "groups", 1) != 1:
        return f"grouped convolution (groups={layer.groups})"
    if getattr(layer, "kernel_constraint", None) is not None or getattr(
        layer, "lora_enabled", False
    ):
        return "kernel constraints and LoRA are not simulated"
    if getattr(layer, "quantization_mode", None):
        return f"already quantized by Keras ({layer.quantization_mode})"
    act = _act_name(getattr(layer, "activation", None))
    if act not in SUPPORTED_ACTIVATIONS:
        return (
            f"activation {act!r} has no int8 TFLite kernel that effkeras simulates "
            f"(int8: {', '.join(SUPPORTED_ACTIVATIONS)}); use one of those, or leave the "
            f"layer float with effkeras.quantize.QuantizeConfig(leave_float=True)"
        )
    return None


def _bn_foldable(bn, rank: int) -> bool:
    if not isinstance(bn, L.BatchNormalization):
        return False
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    return axis in (-1, rank - 1) and not getattr(bn, "renorm", False)


def _unique(name: str, used: set[str]) -> str:
    candidate, i = name, 1
    while candidate in used:
        candidate = f"{name}_{i}"
        i += 1
    used.add(candidate)
    return candidate


class _Rewriter:
    def __init__(
        self, fold_batchnorm: bool, strict: bool, range_momentum: float, per_channel: bool = True,
        weight_bits: int = 8, annotated_only: bool = False,
    ):
        self.fold_batchnorm = fold_batchnorm
        self.per_channel = per_channel
        self.weight_bits = weight_bits
        self.annotated_only = annotated_only
        self.strict = strict
        self.range_momentum = range_momentum
        self.report = QuantizationReport()
        self.used: set[str] = set()
        self.quantized: dict[int, bool] = {}  # id(new tensor) -> on an int8 grid
        self.requantized: dict[int, Any] = {}  # id(float tensor) -> its quantized twin
        self.deferred: set[int] = set()  # ids of outputs the consuming Concatenate quantizes
        self.same_output: list = []  # nodes whose output is the current node's (fused ReLUs)
        self.relu_consumers = lambda t: []

    # -- helpers ---------------------------------------------------------------------
    def name(self, base: str) -> str:
        return _unique(base, self.used)

    def act_quant(self, x, base: str, fixed: str | None = None):
        layer = ql.QuantizeActivation(
            range_momentum=self.range_momentum, fixed_range=fixed, name=self.name(base)
        )
        y = layer(x)
        self.quantized[id(y)] = True
        return y

    def ensure_quantized(self, x, base: str):
        if self.quantized.get(id(x)):
            return x
        if id(x) not in self.requantized:
            self.requantized[id(x)] = self.act_quant(x, base)
        return self.requantized[id(x)]

    def left_float(self, layer, reason: str) -> None:
        if self.strict:
            raise QuantizationError(
                f"Layer {layer.name!r} ({type(layer).__name__}) cannot be quantized: "
                f"{reason}. Replace it, or pass strict=False to keep it in float "
                f"(to_tflite(..., allow_float_ops=True) then accepts the float op)."
            )
        warnings.warn(
            f"effkeras.quantize: layer {layer.name!r} ({type(layer).__name__}) stays in "
            f"float: {reason}.",
            stacklevel=4,
        )
        self.report.float_layers[layer.name] = reason

    def clone(self, layer):
        config = layer.get_config()
        config["name"] = self.name(layer.name)
        return type(layer).from_config(config)

    # -- the graph walk --------------------------------------------------------------
    def run(self, model, inputs: list, outer_consumer=None) -> list:
        """Rewrite ``model``'s graph on ``inputs``; ``outer_consumer(i)`` is the node that
        alone consumes output ``i`` of a nested model in the enclosing graph (or None)."""
        graph = model
        if isinstance(model, keras.Sequential):
            graph = getattr(model, "_functional", None)
            if graph is None:
                raise QuantizationError(
                    f"Sequential model {model.name!r} has no Input: build it with "
                    f"keras.Input(shape=...) as its first layer before quantizing."
                )
        nodes = []
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            nodes += graph._nodes_by_depth[depth]
        consumers: dict[int, list] = {}
        for node in nodes:
            for t in node.input_tensors:
                consumers.setdefault(id(t), []).append(node)
        outputs = {id(t) for t in graph.outputs}

        def sole_consumer(t):
            users = consumers.get(id(t), [])
            if len(users) == 1 and id(t) not in outputs:
                return users[0]
            return None

        def consumer_across_models(t):
            """sole_consumer, looking through the outputs of a nested model."""
            if id(t) in outputs and outer_consumer is not None:
                index = [id(o) for o in graph.outputs].index(id(t))
                return outer_consumer(index)
            return sole_consumer(t)

        def relu_consumers(t) -> list:
            """The nodes consuming ``t`` when all are the same fusable ReLU, else []."""
            users = consumers.get(id(t), [])
            if not users or id(t) in outputs:
                return []
            kinds = {relu_kind(u.operation) for u in users}
            return users if len(kinds) == 1 and None not in kinds else []

        outer_relus = self.relu_consumers
        self.relu_consumers = relu_consumers
        try:
            return self._walk(graph, nodes, inputs, sole_consumer, consumer_across_models)
        finally:
            self.relu_consumers = outer_relus

    def _walk(self, graph, nodes, inputs, sole_consumer, consumer_across_models) -> list:
        tensors = {id(k): v for k, v in zip(graph.inputs, inputs, strict=True)}
        done: set[int] = set()
        for node in nodes:
            if node.is_input or id(node) in done or not node.operation:
                continue
            if any(id(t) not in tensors for t in node.input_tensors):
                continue
            layer = node.operation
            args, kwargs = node.arguments.fill_in(tensors)
            kwargs.pop("training", None)
            try:
                out_node, y = self.node(layer, node, args, kwargs, sole_consumer, done,
                                        consumer_across_models)
            except QuantizationError:
                raise
            except Exception as exc:  # a bug or an unforeseen layer: name it, never leak
                raise QuantizationError(
                    f"quantize_model could not rewrite layer {getattr(layer, 'name', '?')!r} "
                    f"({type(layer).__name__}): {type(exc).__name__}: {str(exc)[:300]}. Leave "
                    f"it float with quantize_annotate_layer(layer, QuantizeConfig("
                    f"leave_float=True)), or report this model to effkeras."
                ) from exc
            ys = y if isinstance(y, list | tuple) else [y]
            for k, v in zip(out_node.outputs, ys, strict=True):
                tensors[id(k)] = v
            for twin in self.same_output:  # further ReLUs fused with out_node's
                tensors[id(twin.outputs[0])] = ys[0]
            self.same_output = []
        return [tensors[id(t)] for t in graph.outputs]

    def defer(self, y, name: str):
        """Leave ``y``'s quantization to the Concatenate that alone consumes it."""
        self.quantized[id(y)] = True
        self.deferred.add(id(y))
        self.report.quantized.append(name)
        return y

    def fuse_relus(self, t, name: str, done) -> tuple[Any, str | None]:
        """Fuse the ReLU(s) consuming ``t`` into the op producing it: (last node, kind).

        Several identical ReLUs of one tensor (NASNet's cells each apply their own to the
        previous cell's output) are one op to the converter (it merges equal operations),
        which it fuses into the op before: one output, one range, not a range before and
        one after the ReLU. Returns (None, None) when the consumers are not all ReLUs of
        one kind.
        """
        relus = self.relu_consumers(t)
        if not relus:
            return None, None
        for n in relus:
            done.add(id(n))
            self.report.fused[n.operation.name] = name
        self.same_output.extend(relus[1:])
        return relus[0], relu_kind(relus[0].operation)

    def node(self, layer, node, args, kwargs, sole_consumer, done, consumer_across_models):
        """Rewrite one node; returns (the last original node it covers, its output(s))."""
        config = annotation(layer)
        if config is not None and config.leave_float:
            return self.keep_float(layer, node, args, kwargs, "annotated leave_float=True",
                                   warn=False)
        if (self.annotated_only and config is None and isinstance(layer, L.Layer)
                and not isinstance(layer, (keras.Model, *SHARED_SCALE))):
            return self.keep_float(layer, node, args, kwargs, "not annotated (quantize_apply)",
                                   warn=False)
        if registered_rule(layer) == "float":
            return self.keep_float(layer, node, args, kwargs, "registered rule 'float'",
                                   warn=False)
        if isinstance(layer, LINEAR) and unsupported_reason(layer) is None:
            out_node, y = self.linear(
                layer, node, args, sole_consumer, done, consumer_across_models
            )
        elif isinstance(layer, keras.Model):
            out_node = node
            ys = self.run(
                layer, _flat(args),
                outer_consumer=lambda i, n=node: consumer_across_models(n.outputs[i]),
            )
            y = ys[0] if len(ys) == 1 else ys
        else:
            out_node, y = self.other(layer, node, args, kwargs, sole_consumer, done)
        return out_node, y

    def linear(self, layer, node, args, sole_consumer, done, consumer_across_models):
        x = self.ensure_quantized(args[0], f"{layer.name}_input_quant")
        out_node = node
        act = _act_name(layer.activation)
        bn = None
        rank = len(node.outputs[0].shape)
        if act == "linear":
            nxt = sole_consumer(out_node.outputs[0])
            if nxt is not None and _bn_foldable(nxt.operation, rank):
                bn, out_node = nxt.operation, nxt
                done.add(id(nxt))
                self.report.fused[bn.name] = layer.name
            nxt, kind = self.fuse_relus(out_node.outputs[0], layer.name, done)
            if nxt is not None:
                act, out_node = kind, nxt
        post = None
        if act not in ("linear", "relu", "relu6"):
            post, act = act, "linear"
        dynamic_bn = bn is not None and self.fold_batchnorm
        # A tensor consumed only by a CONCATENATION gets the concatenation's scale from
        # the converter (no requantization): leave its quantization to the Concatenate.
        user = consumer_across_models(out_node.outputs[0]) if not self.same_output else None
        to_concat = post is None and user is not None and isinstance(user.operation, L.Concatenate)
        config = annotation(layer)
        per_channel = self.per_channel
        weight_bits = self.weight_bits
        if config is not None:
            per_channel = per_channel if config.per_channel is None else config.per_channel
            weight_bits = weight_bits if config.weight_bits is None else config.weight_bits
        common = {
            "activation": None if act == "linear" else act,
            "batch_norm": dynamic_bn,
            "range_momentum": self.range_momentum,
            "quantize_output": not to_concat,
            "per_channel": per_channel,
            "weight_bits": weight_bits,
        }
        if dynamic_bn:
            common.update(
                bn_momentum=float(bn.momentum), bn_epsilon=float(bn.epsilon),
                bn_center=bool(bn.center), bn_scale=bool(bn.scale),
            )
        if isinstance(layer, L.SeparableConv2D):
            dw = ql.QuantDepthwiseConv2D(
                layer.kernel_size, strides=layer.strides, padding=layer.padding,
                depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate,
                use_bias=False, range_momentum=self.range_momentum, per_channel=per_channel,
                weight_bits=weight_bits, name=self.name(f"{layer.name}_depthwise"),
            )
            x = dw(x)
            dw.kernel.assign(layer.depthwise_kernel)
            new = ql.QuantConv2D(
                layer.filters, 1, use_bias=layer.use_bias, name=self.name(layer.name), **common
            )
            kernel = layer.pointwise_kernel
        elif isinstance(layer, L.DepthwiseConv2D):
            new = ql.QuantDepthwiseConv2D(
                layer.kernel_size, strides=layer.strides, padding=layer.padding,
                depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate,
                use_bias=layer.use_bias, name=self.name(layer.name), **common,
            )
            kernel = layer.kernel
        elif isinstance(layer, L.Conv2D):
            new = ql.QuantConv2D(
                layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                dilation_rate=layer.dilation_rate, use_bias=layer.use_bias,
                name=self.name(layer.name), **common,
            )
            kernel = layer.kernel
        else:
            new = ql.QuantDense(
                layer.units, use_bias=layer.use_bias, name=self.name(layer.name), **common
            )
            kernel = layer.kernel
        static_bn = bn is not None and not self.fold_batchnorm
        if static_bn and not layer.use_bias:
            new.use_bias = True  # the statically folded batch norm needs a bias
        y = new(x)
        kernel = _numpy(kernel)
        bias = (
            _numpy(layer.bias) if layer.use_bias
            else np.zeros(kernel.shape[-1] if not isinstance(layer, L.DepthwiseConv2D)
                          else kernel.shape[2] * kernel.shape[3], "float32")
        )
        if static_bn:
            kernel, bias = _fold_static(new, kernel, bias, bn)
        new.kernel.assign(kernel)
        if new.use_bias:
            new.bias.assign(bias)
        if dynamic_bn:
            for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
                source = getattr(bn, attr, None)
                if source is not None and getattr(new, attr, None) is not None:
                    getattr(new, attr).assign(source)
        self.quantized[id(y)] = True
        if to_concat:
            self.deferred.add(id(y))
        self.report.quantized.append(layer.name)
        if post is not None:
            y = self.activation(y, post, layer.name)
        return out_node, y

    # -- activations -------------------------------------------------------------------
    def activation(self, x, kind: str, base: str):
        """``kind`` applied to the int8 tensor ``x`` as TFLite's int8 ops compute it."""
        x = self.ensure_quantized(x, f"{base}_input_quant")
        if kind == "linear":
            return x
        if kind in FIXED:
            y = L.Activation(kind, name=self.name(f"{base}_{kind}"))(x)
            return self.act_quant(y, f"{base}_{kind}_quant", fixed=kind)
        if kind in ("relu", "relu6"):
            y = L.ReLU(6.0 if kind == "relu6" else None, name=self.name(f"{base}_{kind}"))(x)
            return self.act_quant(y, f"{base}_{kind}_quant")
        if kind == "leaky_relu":
            y = L.LeakyReLU(name=self.name(f"{base}_leaky_relu"))(x)
            return self.act_quant(y, f"{base}_leaky_relu_quant")
        if kind in ("silu", "swish"):
            s = L.Activation("sigmoid", name=self.name(f"{base}_sigmoid"))(x)
            s = self.act_quant(s, f"{base}_sigmoid_quant", fixed="sigmoid")
            y = L.Multiply(name=self.name(f"{base}_silu"))([x, s])
            return self.act_quant(y, f"{base}_silu_quant")
        if kind in ("hard_sigmoid", "hard_silu", "hard_swish"):
            h = ConstantOperation("add", 3.0, name=self.name(f"{base}_plus3"))(x)
            h = L.ReLU(6.0, name=self.name(f"{base}_relu6"))(h)
            h = self.act_quant(h, f"{base}_plus3_quant")
            h = ConstantOperation("multiply", 1.0 / 6.0, name=self.name(f"{base}_div6"))(h)
            h = self.act_quant(h, f"{base}_hard_sigmoid_quant")
            if kind == "hard_sigmoid":
                return h
            y = L.Multiply(name=self.name(f"{base}_hard_silu"))([x, h])
            return self.act_quant(y, f"{base}_hard_silu_quant")
        raise QuantizationError(f"internal: no int8 rewrite for activation {kind!r}")

    def affine(self, x, scale, offset, base: str, relu: str | None = None):
        """``x * scale + offset`` (per channel) as int8 MUL and ADD with constant operands."""
        x = self.ensure_quantized(x, f"{base}_input_quant")
        scale = np.asarray(scale, "float32").reshape(-1)
        offset = np.asarray(offset, "float32").reshape(-1)
        if scale.size and not np.all(scale == 1.0):
            x = ConstantOperation("multiply", _squeeze(scale), name=self.name(f"{base}_mul"))(x)
            if np.all(offset == 0.0) and relu:
                x = L.ReLU(6.0 if relu == "relu6" else None, name=self.name(f"{base}_{relu}"))(x)
                relu = None
            x = self.act_quant(x, f"{base}_mul_quant")
        if not np.all(offset == 0.0) or relu:
            x = ConstantOperation("add", _squeeze(offset), name=self.name(f"{base}_add"))(x)
            if relu:
                x = L.ReLU(6.0 if relu == "relu6" else None, name=self.name(f"{base}_{relu}"))(x)
            x = self.act_quant(x, f"{base}_add_quant")
        return x

    def other(self, layer, node, args, kwargs, sole_consumer, done):
        flat = [t for t in _flat(args) if _is_tensor(t)]
        if not isinstance(layer, L.Layer):
            return self.operation(layer, node, args, kwargs, sole_consumer, done)
        if isinstance(layer, L.GlobalAveragePooling2D) and layer.data_format == "channels_last":
            x = self.ensure_quantized(args[0], f"{layer.name}_input_quant")
            y = ql.QuantGlobalAveragePooling2D(
                keepdims=bool(layer.keepdims), range_momentum=self.range_momentum,
                name=self.name(layer.name),
            )(x)
            self.quantized[id(y)] = True
            self.report.quantized.append(layer.name)
            return node, y
        if isinstance(layer, L.AveragePooling2D) and layer.data_format == "channels_last":
            # TFLite's AVERAGE_POOL_2D keeps its input's scale and zero point.
            x = self.ensure_quantized(args[0], f"{layer.name}_input_quant")
            y = QuantAveragePooling2D(
                layer.pool_size, strides=layer.strides, padding=layer.padding,
                name=self.name(layer.name),
            )(x)
            self.quantized[id(y)] = True
            self.report.quantized.append(layer.name)
            return node, y
        rule = registered_rule(layer)
        if isinstance(layer, SHARED_SCALE) or rule == "shared_scale":
            y = self.clone(layer)(*args, **kwargs)
            self.quantized[id(y)] = all(self.quantized.get(id(t), False) for t in flat)
            self.report.quantized.append(layer.name)
            return node, y
        affine = _affine_of(layer)
        if affine is not None:
            return self.affine_chain(layer, node, args, affine, sole_consumer, done)
        if isinstance(layer, L.Activation):
            kind = _act_name(layer.activation)
            if kind in SUPPORTED_ACTIVATIONS and kind not in ("relu", "relu6", *FIXED):
                y = self.activation(args[0], kind, layer.name)
                self.report.quantized.append(layer.name)
                return node, y
        fixed = fixed_kind(layer) or (rule if rule in FIXED else None)
        relu = relu_kind(layer)
        if isinstance(layer, OWN_RANGE) or fixed or relu or rule == "output_range":
            qargs = _map_flat(
                args,
                lambda t: t if not _is_tensor(t) or id(t) in self.deferred
                else self.ensure_quantized(t, f"{layer.name}_input_quant"),
            )
            y = self._int8_twin(layer, len(flat))(*qargs, **kwargs)
            out_node = node
            if isinstance(layer, FUSES_RELU):
                nxt, _ = self.fuse_relus(node.outputs[0], layer.name, done)
                if nxt is not None:
                    y = self.clone(nxt.operation)(y)
                    out_node = nxt
            if out_node is node and isinstance(layer, DEFERS_TO_CONCAT) and _to_concat(
                sole_consumer(node.outputs[0])
            ):
                return node, self.defer(y, layer.name)
            y = self.act_quant(y, f"{out_node.operation.name}_quant", fixed=fixed)
            self.report.quantized.append(layer.name)
            return out_node, y
        if isinstance(layer, LINEAR):
            reason = unsupported_reason(layer)
        elif isinstance(layer, L.Activation):
            reason = (
                f"activation {_act_name(layer.activation)!r} has no int8 TFLite kernel that "
                f"effkeras simulates (int8: {', '.join(SUPPORTED_ACTIVATIONS)})"
            )
        else:
            reason = (
                f"no int8 rule for {type(layer).__name__}; register one with "
                f"effkeras.quantize.register_rule({type(layer).__name__}, ...) or wrap the "
                f"layer in quantize_annotate_layer(layer, QuantizeConfig(...))"
            )
        return self.keep_float(layer, node, args, kwargs, reason)

    def _int8_twin(self, layer, inputs: int):
        """The clone of ``layer`` that computes its int8 kernel at inference, where one
        exists (a two-input Add/Subtract: QuantAdd/QuantSubtract), else a plain clone."""
        twin = {L.Add: QuantAdd, L.Subtract: QuantSubtract}.get(type(layer))
        if twin is None or inputs != 2:
            return self.clone(layer)
        config = layer.get_config()
        config["name"] = self.name(layer.name)
        return twin.from_config(config)

    def keep_float(self, layer, node, args, kwargs, reason: str, warn: bool = True):
        if warn:
            self.left_float(layer, reason)
        else:
            self.report.float_layers[layer.name] = reason
        if isinstance(layer, L.Layer):
            new = self.clone(layer)
            y = new(*args, **kwargs)
            if layer.weights:
                new.set_weights(layer.get_weights())
        else:
            y = layer(*args, **kwargs)
        for t in _flat_out(y):
            self.quantized[id(t)] = False
        return node, y

    def affine_chain(self, layer, node, args, affine, sole_consumer, done):
        """Rescaling / Normalization / lone BatchNormalization (+ ReLU): MUL and ADD."""
        scale, offset = affine
        out_node = node
        names = [layer.name]
        while True:
            nxt = sole_consumer(out_node.outputs[0])
            more = _affine_of(nxt.operation) if nxt is not None else None
            if more is None:
                break
            scale, offset = scale * more[0], offset * more[0] + more[1]
            out_node = nxt
            done.add(id(nxt))
            self.report.fused[nxt.operation.name] = layer.name
            names.append(nxt.operation.name)
        nxt, relu = self.fuse_relus(out_node.outputs[0], layer.name, done)
        if nxt is not None:
            out_node = nxt
        y = self.affine(args[0], scale, offset, layer.name, relu=relu)
        self.report.quantized.append(layer.name)
        return out_node, y

    def operation(self, op, node, args, kwargs, sole_consumer, done):
        """A keras.ops node of the functional graph (``x + 3.0``, ``ops.multiply``, ...)."""
        kind = type(op).__name__
        name = getattr(op, "name", None) or kind.lower()
        tensors = [t for t in _flat(args) if _is_tensor(t)]
        if kind in OP_DIVIDE and len(tensors) == 1 and _is_tensor(args[0]) and len(args) == 2 \
                and not _is_tensor(args[1]):
            const = np.asarray(args[1], "float32")
            if const.ndim <= 1 and np.all(const != 0):
                y = ConstantOperation("multiply", _squeeze(1.0 / const), name=self.name(name))(
                    self.ensure_quantized(args[0], f"{name}_input_quant")
                )
                y = self.act_quant(y, f"{name}_quant")
                self.report.quantized.append(name)
                return node, y
        if kind in OP_ELEMENTWISE or kind in OP_OWN:
            qargs = _map_flat(
                args,
                lambda t: (t if id(t) in self.deferred
                           else self.ensure_quantized(t, f"{name}_input_quant"))
                if _is_tensor(t) else _converter_value(t),
            )
            y = op(*qargs, **kwargs)
            out_node = node
            if kind in ("Add", "Subtract", "Multiply"):
                nxt, _ = self.fuse_relus(node.outputs[0], name, done)
                if nxt is not None:
                    y = self.clone(nxt.operation)(y)
                    out_node = nxt
            if out_node is node and kind in ("Add", "Subtract", "Multiply") and _to_concat(
                sole_consumer(node.outputs[0])
            ):
                return node, self.defer(y, name)
            y = self.act_quant(y, f"{name}_quant")
            self.report.quantized.append(name)
            return out_node, y
        if kind in OP_ACTIVATIONS and len(tensors) == 1 and not kwargs:
            y = self.activation(tensors[0], OP_ACTIVATIONS[kind], name)
            self.report.quantized.append(name)
            return node, y
        if kind in OP_SHARED:
            y = op(*args, **kwargs)
            for t in _flat_out(y):
                self.quantized[id(t)] = all(self.quantized.get(id(u), False) for u in tensors)
            self.report.quantized.append(name)
            return node, y
        return self.keep_float(
            op, node, args, kwargs,
            f"the keras.ops operation {kind} has no int8 rule in effkeras (int8 ops: "
            f"{', '.join(OP_ELEMENTWISE + OP_DIVIDE + OP_OWN + OP_SHARED)} and the "
            f"activations {', '.join(OP_ACTIVATIONS)})",
        )


def _to_concat(node) -> bool:
    """Whether ``node`` (a sole consumer, or None) is a concatenation."""
    if node is None:
        return False
    op = node.operation
    return isinstance(op, L.Concatenate) or type(op).__name__ == "Concatenate"


def _squeeze(value: np.ndarray):
    """A scalar for a one-element constant, else the per-channel list."""
    value = np.asarray(value, "float32").reshape(-1)
    return float(value[0]) if value.size == 1 else value.tolist()


def _converter_value(value):
    """A Python/numpy constant operand as the int8 file will hold it."""
    from effkeras.quantize.elementwise import converter_constant

    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(converter_constant(value))
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return converter_constant(value)
    return value


def _affine_of(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) per last-axis channel of a per-channel affine layer, else None.

    Rescaling, a (non-inverted) Normalization over the last axis, and a BatchNormalization
    over the last axis at inference (moving statistics; it no longer trains).
    """
    if layer is None:
        return None
    if isinstance(layer, L.Rescaling):
        scale = np.asarray(layer.scale, "float32").reshape(-1)
        offset = np.asarray(layer.offset, "float32").reshape(-1)
        return scale, offset
    if isinstance(layer, L.Normalization):
        axis = layer.axis
        if layer.invert or axis is None or tuple(axis) not in ((-1,), (len(layer.input.shape) - 1,)):
            return None
        mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), "float32").reshape(-1)
        var = np.asarray(keras.ops.convert_to_numpy(layer.variance), "float32").reshape(-1)
        std = np.maximum(np.sqrt(var), keras.backend.epsilon())
        return 1.0 / std, -mean / std
    if isinstance(layer, L.BatchNormalization) and _bn_foldable(layer, len(layer.input.shape)):
        gamma = _numpy(layer.gamma) if layer.scale else 1.0
        beta = _numpy(layer.beta) if layer.center else 0.0
        factor = gamma / np.sqrt(_numpy(layer.moving_variance) + layer.epsilon)
        offset = beta - _numpy(layer.moving_mean) * factor
        return np.asarray(factor, "float32").reshape(-1), np.asarray(offset, "float32").reshape(-1)
    return None


def _flat(args) -> list:
    return list(keras.tree.flatten(args))


def _flat_out(y) -> list:
    return list(keras.tree.flatten(y))


def _map_flat(args, fn):
    return keras.tree.map_structure(fn, args)


def _numpy(variable) -> np.ndarray:
    return np.array(variable.numpy(), dtype="float32")


def _fold_static(new, kernel, bias, bn):
    """Fold a batch norm's moving statistics into (kernel, bias) once (no batch stats)."""
    gamma = _numpy(bn.gamma) if bn.scale else 1.0
    beta = _numpy(bn.beta) if bn.center else 0.0
    mean = _numpy(bn.moving_mean)
    var = _numpy(bn.moving_variance)
    factor = gamma / np.sqrt(var + bn.epsilon)
    if isinstance(new, ql.QuantDepthwiseConv2D):
        kernel = kernel * factor.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * factor
    return kernel.astype("float32"), ((bias - mean) * factor + beta).astype("float32")


def rewrite(
    model, *, fold_batchnorm: bool, strict: bool, range_momentum: float, per_channel: bool = True,
    weight_bits: int = 8, annotated_only: bool = False,
) -> tuple[keras.Model, QuantizationReport]:
    """The quantization-aware twin of ``model`` and what was done to each layer."""
    if not isinstance(model, keras.Model):
        raise QuantizationError(
            f"quantize_model expects a keras.Model (Keras 3). Received: "
            f"{type(model).__module__}.{type(model).__name__}."
        )
    if not isinstance(model, keras.Sequential) and not hasattr(model, "_nodes_by_depth"):
        raise QuantizationError(
            f"Model {model.name!r} is a subclassed {type(model).__name__}: its call() is "
            f"Python code that quantize_model cannot rewrite. Rebuild it as a functional "
            f"or Sequential model (keras.Model(inputs, outputs)), or build the quantized "
            f"layers yourself from effkeras.quantize (QuantConv2D, QuantDense, "
            f"QuantizeActivation)."
        )
    if not model.built or not model.inputs:
        raise QuantizationError(
            f"Model {model.name!r} is not built: give it an Input layer "
            f"(keras.Input(shape=...)) before quantizing."
        )
    rewriter = _Rewriter(
        fold_batchnorm, strict, range_momentum, per_channel, weight_bits, annotated_only
    )
    graph_inputs = model.inputs
    inputs = []
    for t in graph_inputs:
        name = rewriter.name(getattr(t, "name", None) or "input")
        inputs.append(keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name))
    quantized_inputs = [rewriter.act_quant(t, f"{t.name}_quant") for t in inputs]
    outputs = rewriter.run(model, quantized_inputs)
    new = keras.Model(
        inputs if len(inputs) > 1 else inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=f"{model.name}_quantized",
    )
    return new, rewriter.report
