"""Activation ranges: where a tensor's int8 grid comes from, and the layer that quantizes one.

- ``_RangeMixin``: the moving-average (or calibrated, or fixed) (min, max) range of a
  layer's output, in non-trainable variables, and its fake quantization; every
  effkeras quantization layer has one.
- ``_InputGridMixin``: the weak link from a layer to the quantization layer that produced
  its input (through the :data:`SHARED_SCALE` layers that keep their input's scale), so
  the layer can read its input scale and compute the int8 kernel exactly at inference.
- :class:`QuantizeActivation`: a layer that is only a range: it fake-quantizes a tensor
  per tensor, asymmetric, where TFLite keeps one (model input, ADD, CONCATENATION, ...).
  On the output of an int8 MUL, RELU or CONCATENATION it rounds at inference as that
  kernel does (``_product_kernel``, ``_relu_kernel``, ``_concat_kernel``).

:data:`PACKAGE` is the Keras serialization package of every effkeras QAT layer.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
from keras import ops

from effkeras.quantize.quantizers import (
    FIXED_OUTPUT_RANGES,
    activation_grid,
    batch_range,
    exporting,
    quantize_activations,
    requantize_integer,
    round_half_away,
)

L = keras.layers

#: Layers whose output TFLite stores with the scale and zero point of their input.
SHARED_SCALE = (
    L.MaxPooling1D, L.MaxPooling2D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D,
    L.Flatten, L.Reshape, L.ZeroPadding1D, L.ZeroPadding2D, L.Cropping1D, L.Cropping2D,
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout,
    L.Identity, L.Permute,
)

#: The Keras serialization package of the QAT layers (registered as ``"effkeras>Name"``).
PACKAGE = "effkeras"
RANGE_MODES = ("ema", "calibrate")

#: Values of a range's ``range_seen`` state: never set; set by training (or fixed); set by
#: :func:`effkeras.quantize.calibrate` and not trained on yet.
RANGE_UNSET, RANGE_TRACKED, RANGE_CALIBRATED = 0.0, 1.0, 2.0


def _check_momentum(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


class _RangeMixin:
    """Moving-average (or calibrated) activation range held in non-trainable variables.

    Training updates ``range_min``/``range_max`` by an exponential moving average of
    each batch's (min, max) (the first batch sets them) unless ``ranges_frozen`` is set.
    Calibration (``_range_mode = "calibrate"``, used by post-training quantization)
    widens them to the running min and max over all batches seen, as the TFLite
    converter's calibrator does.

    The first training batch after a calibration widens the calibrated range to contain
    the batch's range (the union) before the moving average takes over. Calibration
    runs the inference graph (batch norm with its moving statistics), training the
    training graph (batch statistics); when the two disagree, as in a float model
    trained briefly with batch-norm momentum 0.999 (MobileNet), the training activations
    are many times wider than the calibrated range. Clipped to it, the next layer's
    batch variance collapses below the batch norm's epsilon, each folded batch norm
    multiplies the gradient by up to ``gamma / sqrt(epsilon)`` (about 30), and the
    gradients of a 50-layer network overflow to Inf on the first step (NaN loss from
    the second).
    """

    _range_mode: str | None = None

    def _build_range(self, fixed: tuple[float, float] | None) -> None:
        init = fixed or (-6.0, 6.0)
        kw = {"shape": (), "trainable": False, "autocast": False}
        self.range_min = self.add_weight(
            name="range_min", initializer=keras.initializers.Constant(init[0]),
            aggregation="mean", **kw,
        )
        self.range_max = self.add_weight(
            name="range_max", initializer=keras.initializers.Constant(init[1]),
            aggregation="mean", **kw,
        )
        self.range_seen = self.add_weight(
            name="range_seen", initializer=keras.initializers.Constant(1.0 if fixed else 0.0),
            aggregation="only_first_replica", **kw,
        )
        self.ranges_frozen = self.add_weight(
            name="ranges_frozen", initializer="zeros",
            aggregation="only_first_replica", **kw,
        )

    def _quantize_output(self, x, training):
        if self._fixed_range is not None:
            lo, hi = self._fixed_range
            return quantize_activations(x, lo, hi)
        if self._range_mode == "calibrate":
            bmin, bmax = batch_range(x)
            seen = self.range_seen > 0.5
            self.range_min.assign(ops.where(seen, ops.minimum(self.range_min.value, bmin), bmin))
            self.range_max.assign(ops.where(seen, ops.maximum(self.range_max.value, bmax), bmax))
            self.range_seen.assign(RANGE_CALIBRATED)
        elif training and self.trainable:
            bmin, bmax = batch_range(x)
            m = self.range_momentum
            seen = self.range_seen > 0.5
            calibrated = self.range_seen > 1.5
            frozen = self.ranges_frozen > 0.5
            lo, hi = self.range_min.value, self.range_max.value
            new_min = ops.where(seen, lo * m + bmin * (1.0 - m), bmin)
            new_max = ops.where(seen, hi * m + bmax * (1.0 - m), bmax)
            # First training batch after calibration: the union (see the class docstring).
            new_min = ops.where(calibrated, ops.minimum(lo, bmin), new_min)
            new_max = ops.where(calibrated, ops.maximum(hi, bmax), new_max)
            self.range_min.assign(ops.where(frozen, lo, new_min))
            self.range_max.assign(ops.where(frozen, hi, new_max))
            self.range_seen.assign(ops.where(frozen, self.range_seen.value, RANGE_TRACKED))
        return quantize_activations(x, self.range_min, self.range_max)

    @property
    def output_range(self) -> tuple[float, float]:
        """The (min, max) real range of the quantized output, as Python floats."""
        return float(self.range_min.numpy()), float(self.range_max.numpy())

    def output_grid(self):
        """(scale, zero_point) of the int8 output, as tensors."""
        if self._fixed_range is not None:
            return activation_grid(*self._fixed_range)
        return activation_grid(self.range_min, self.range_max)


def _grid_source(tensor):
    """The quantization layer whose int8 grid ``tensor`` (a KerasTensor) is on, or None."""
    for _ in range(64):
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        layer = history.operation
        if isinstance(layer, _RangeMixin):
            return layer
        if not isinstance(layer, SHARED_SCALE) and not getattr(layer, "_shares_input_grid", False):
            return None
        tensor = layer._inbound_nodes[history.node_index].input_tensors[0]
    return None


class _InputGridMixin:
    """Remembers the layer that quantized the input, to read the input scale at inference.

    The link is made each time the layer is called on a symbolic tensor (building a
    functional model, or loading one); it is a weak reference, not a tracked sublayer,
    so it adds no weights and no configuration.
    """

    _grid_ref = None

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if isinstance(inputs, keras.KerasTensor):
            source = _grid_source(inputs)
            object.__setattr__(
                self, "_grid_ref", weakref.ref(source) if source is not None else None
            )
        return super().__call__(*args, **kwargs)

    def input_grid(self):
        """(scale, zero_point) tensors of the input's int8 grid, or None when unknown."""
        source = self._grid_ref() if self._grid_ref is not None else None
        return source.output_grid() if source is not None else None

    def _exact(self, training) -> bool:
        """Simulate the int8 kernel exactly: at inference, not while calibrating/exporting."""
        return (
            not training
            and self._range_mode is None
            and not exporting()
            and self._grid_ref is not None
        )


def relu_kind(layer) -> str | None:
    """``"relu"`` or ``"relu6"`` for a ReLU layer TFLite runs as RELU/RELU6 or fuses into
    the op before it, else None."""
    if isinstance(layer, L.ReLU):
        if float(layer.negative_slope or 0) != 0 or float(layer.threshold or 0) != 0:
            return None
        if layer.max_value is None:
            return "relu"
        return "relu6" if float(layer.max_value) == 6.0 else None
    if isinstance(layer, L.Activation):
        name = getattr(layer.activation, "__name__", "")
        return name if name in ("relu", "relu6") else None
    return None


def _constant_scale(value) -> float | None:
    """The scale the converter gives a constant MUL operand (per tensor, over
    ``[min(c, 0), max(c, 0)]``); ``value`` is already on that grid
    (:func:`effkeras.quantize.elementwise.converter_constant`)."""
    import numpy as np

    c = np.asarray(value, dtype="float64")
    if c.size == 0 or not np.all(np.isfinite(c)):
        return None
    span = max(float(c.max()), 0.0) - min(float(c.min()), 0.0)
    return span / 255.0 if span > 0 else None


def _grid_ref(tensor):
    """A weak reference to the layer whose quantized output ``tensor`` is, or None."""
    source = _grid_source(tensor)
    if source is None or not getattr(source, "quantize_output", True):
        return None
    return weakref.ref(source)


def _producer(tensor):
    """(node, operation) that produced ``tensor``, or (None, None)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, None
    op = history.operation
    return op._inbound_nodes[history.node_index], op


def _product_kernel(tensor):
    """``("mul", (a, b))`` when ``tensor`` is an int8 MUL's output, else None.

    ``a`` and ``b`` are weak references to the quantization layers whose grids the
    operands are on, or the float scale of a constant operand. The MUL is
    ``keras.layers.Multiply`` (two inputs), ``keras.ops.multiply`` / ``*`` (two tensors,
    or a tensor and a constant), or a
    :class:`~effkeras.quantize.elementwise.ConstantOperation` multiply, optionally
    followed by the ReLU the converter fuses into it.
    """
    node, op = _producer(tensor)
    if op is not None and relu_kind(op):
        node, op = _producer(node.input_tensors[0])
    if op is None:
        return None
    if getattr(op, "operation", None) == "multiply" and hasattr(op, "_constant"):
        values = [node.input_tensors[0], op._constant]  # ConstantOperation
    elif isinstance(op, L.Multiply) or type(op).__name__ == "Multiply":
        values = list(keras.tree.flatten(node.arguments.args))
    else:
        return None
    if len(values) != 2:
        return None
    operands = []
    for value in values:
        if isinstance(value, keras.KerasTensor):
            ref = _grid_ref(value)
            if ref is None:
                return None
            operands.append(ref)
        else:
            scale = _constant_scale(value)
            if scale is None:
                return None
            operands.append(scale)
    return ("mul", tuple(operands))


def _relu_kernel(tensor):
    """``("relu", kind, ref)`` for a standalone RELU/RELU6 of an int8 tensor, else None."""
    node, op = _producer(tensor)
    kind = relu_kind(op) if op is not None else None
    if kind is None:
        return None
    ref = _grid_ref(node.input_tensors[0])
    return ("relu", kind, ref) if ref is not None else None


def _concat_kernel(tensor, target):
    """``("concat", axis, parts)`` for a concatenation's output, else None.

    ``parts`` has one ``(size, spec)`` per input: ``("quantize", ref)`` with the weak
    reference to the layer whose grid the input is on (TFLite requantizes it with a
    QUANTIZE op when that grid is not the output's); the MUL kernel of a product left
    to this quantization (the converter computes it straight onto the concatenation's
    grid); or None for another input left to it (a linear layer's output is linked to
    ``target`` here, so that it computes its integer result onto that grid).
    """
    node, op = _producer(tensor)
    if op is None or not (isinstance(op, L.Concatenate) or type(op).__name__ == "Concatenate"):
        return None
    inputs = list(node.input_tensors)
    rank = len(tensor.shape)
    axis = int(getattr(op, "axis", -1)) % rank
    parts = []
    for t in inputs:
        size = t.shape[axis]
        if size is None:
            return None
        source = _grid_source(t)
        if source is not None and not getattr(source, "quantize_output", True):
            object.__setattr__(source, "_deferred_grid_ref", weakref.ref(target))
            parts.append((int(size), None))
        elif source is not None:
            parts.append((int(size), ("quantize", weakref.ref(source))))
        elif _link_add(t, target):
            parts.append((int(size), None))
        else:
            parts.append((int(size), _product_kernel(t)))
    return ("concat", axis, tuple(parts))


def _link_add(tensor, target) -> bool:
    """Link the int8 ADD/SUB layer that produced ``tensor`` (through a fused ReLU) to the
    layer ``target`` whose grid its output is on; whether there was one."""
    node, op = _producer(tensor)
    if op is not None and relu_kind(op):
        node, op = _producer(node.input_tensors[0])
    if op is None or not getattr(op, "_effkeras_int8_add", False):
        return False
    object.__setattr__(op, "_output_grid_ref", weakref.ref(target))
    return True


def _scale_of(ref):
    """The output scale (a tensor) of the layer behind a weak reference, or None."""
    source = ref()
    return None if source is None else source.output_grid()[0]


def _kernel_steps(spec, x, s_out):
    """The integer result (before the output zero point) of the int8 kernel ``spec``
    (from :func:`_product_kernel`, :func:`_relu_kernel` or a concatenation's part) on
    ``x`` (float64, the real values of its input), with output scale ``s_out``; None
    when an input's grid is gone."""
    if spec is None or spec[0] == "own":  # float, or already computed onto this grid
        return ops.floor(x / s_out + 0.5)
    kind = spec[0]
    if kind == "mul":  # MUL: the integer product (q1 - z1) * (q2 - z2), requantized
        scales = [s if isinstance(s, float) else _scale_of(s) for s in spec[1]]
        if any(s is None for s in scales):
            return None
        s1, s2 = (ops.cast(s, "float64") for s in scales)
        return requantize_integer(ops.round(x / (s1 * s2)), s1 * s2 / s_out)
    s_in = _scale_of(spec[-1])
    if s_in is None:
        return None
    steps = ops.round(x / ops.cast(s_in, "float64"))  # q - z_in
    if kind == "quantize":  # QUANTIZE: the ratio of the scales in double
        return requantize_integer(steps, ops.cast(s_in, "float64") / s_out)
    # RELU/RELU6 (ReluPrepare): the ratio is a float division, the clamp roundf(6 / s).
    s_in32, s_out32 = ops.cast(s_in, "float32"), ops.cast(s_out, "float32")
    q = ops.maximum(requantize_integer(steps, ops.cast(s_in32 / s_out32, "float64")), 0.0)
    if spec[1] == "relu6":
        q = ops.minimum(q, ops.cast(round_half_away(6.0 / s_out32), "float64"))
    return q


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantizeActivation(_RangeMixin, keras.layers.Layer):
    """Fake-quantize a tensor as TFLite stores it: int8, per tensor, asymmetric.

    At inference it computes what the int8 kernel producing the tensor computes, when it
    knows the grids of that kernel's inputs (found when it is called on a symbolic tensor,
    as the linear layers find their input's), and otherwise rounds once:

    - MUL (``Multiply``, ``ops.multiply``, a constant multiply): the integer product
      ``(q1 - z1) * (q2 - z2)`` requantized by ``s1 * s2 / s_out`` in TFLite's two steps
      (:func:`~effkeras.quantize.quantizers.requantize_integer`), which differs from rounding
      the real product once on about one output in a hundred;
    - RELU / RELU6 of an int8 tensor: ``q - z_in`` requantized by ``s_in / s_out``;
    - CONCATENATION: each input that is on a grid of its own requantized onto the
      output's (the QUANTIZE op the converter inserts); a linear layer, MUL or ADD whose
      output the converter puts straight on the concatenation's grid computes its
      integer result onto it;
    - ADD / SUB (:class:`~effkeras.quantize.elementwise.QuantAdd`): computed by that
      layer onto this grid.

    Args:
        range_momentum: momentum of the moving average of the (min, max) range.
        fixed_range: a (min, max) real range that never moves, or the name of an
            activation with a fixed TFLite output range (``"softmax"``, ``"sigmoid"``,
            ``"tanh"``). ``None`` tracks the range during training.
        **kwargs: base ``Layer`` arguments (``name``, ...).
    """

    _effkeras_quantized = True

    def __init__(
        self,
        range_momentum: float = 0.99,
        fixed_range: tuple[float, float] | str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.range_momentum = _check_momentum("range_momentum", range_momentum)
        if isinstance(fixed_range, str):
            if fixed_range not in FIXED_OUTPUT_RANGES:
                raise ValueError(
                    f"fixed_range must be a (min, max) pair or one of "
                    f"{sorted(FIXED_OUTPUT_RANGES)}. Received: fixed_range={fixed_range!r}"
                )
            fixed_range = FIXED_OUTPUT_RANGES[fixed_range]
        if fixed_range is not None:
            lo, hi = (float(v) for v in fixed_range)
            if not lo <= 0.0 <= hi or hi <= lo:
                raise ValueError(
                    f"fixed_range must satisfy min <= 0 <= max and min < max. "
                    f"Received: fixed_range={fixed_range!r}"
                )
            fixed_range = (lo, hi)
        self.fixed_range = fixed_range
        self._fixed_range = fixed_range
        self.supports_masking = True

    _kernel = None

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if isinstance(inputs, keras.KerasTensor):
            kernel = None
            if self._fixed_range is None:
                kernel = (_product_kernel(inputs) or _relu_kernel(inputs)
                          or _concat_kernel(inputs, self))
                if kernel is None and _link_add(inputs, self):
                    kernel = ("own",)  # an int8 ADD/SUB computes its result onto this grid
            object.__setattr__(self, "_kernel", kernel)
        return super().__call__(*args, **kwargs)

    def build(self, input_shape):
        self._build_range(self._fixed_range)
        self.built = True

    def call(self, inputs, training=None):
        if (training or self._range_mode is not None or exporting()
                or self._kernel is None):
            return self._quantize_output(inputs, training)
        y = self._integer_kernel(inputs)
        return self._quantize_output(inputs, training) if y is None else y

    def _integer_kernel(self, inputs):
        """The int8 kernel that produces this tensor, computed exactly (None: unknown)."""
        out_scale, out_zero = self.output_grid()
        s_out, z_out = ops.cast(out_scale, "float64"), ops.cast(out_zero, "float64")
        x = ops.cast(inputs, "float64")
        kind = self._kernel[0]
        if kind == "concat":
            # CONCATENATION: each input requantized onto the output's grid (QUANTIZE), or
            # computed onto it by its own kernel (a MUL the concatenation alone consumes).
            _, axis, parts = self._kernel
            splits = [sum(p[0] for p in parts[:i]) for i in range(1, len(parts))]
            pieces = ops.split(x, splits, axis=axis)
            out = [_kernel_steps(spec, piece, s_out) for piece, (_, spec) in zip(pieces, parts, strict=True)]
            if any(q is None for q in out):
                return None
            q = ops.concatenate(out, axis=axis)
        else:
            q = _kernel_steps(self._kernel, x, s_out)
            if q is None:
                return None
        q = ops.clip(q + z_out, -128.0, 127.0)
        return ops.cast((q - z_out) * s_out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "range_momentum": self.range_momentum,
            "fixed_range": list(self.fixed_range) if self.fixed_range else None,
        }
        return {**base_config, **config}
