"""Activation ranges: where a tensor's int8 grid comes from, and the layer that quantizes one.

- ``_RangeMixin``: the moving-average (or calibrated, or fixed) (min, max) range of a
  layer's output, in non-trainable variables, and its fake quantization; every
  effkeras quantization layer has one.
- ``_InputGridMixin``: the weak link from a layer to the quantization layer that produced
  its input (through the :data:`SHARED_SCALE` layers that keep their input's scale), so
  the layer can read its input scale and compute the int8 kernel exactly at inference.
- :class:`QuantizeActivation`: a layer that is only a range: it fake-quantizes a tensor
  per tensor, asymmetric, where TFLite keeps one (model input, ADD, CONCATENATION, ...).

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


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantizeActivation(_RangeMixin, keras.layers.Layer):
    """Fake-quantize a tensor as TFLite stores it: int8, per tensor, asymmetric.

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

    def build(self, input_shape):
        self._build_range(self._fixed_range)
        self.built = True

    def call(self, inputs, training=None):
        return self._quantize_output(inputs, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "range_momentum": self.range_momentum,
            "fixed_range": list(self.fixed_range) if self.fixed_range else None,
        }
        return {**base_config, **config}
