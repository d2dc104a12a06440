"""Global average pooling as TFLite's int8 MEAN: :class:`QuantGlobalAveragePooling2D`.

At inference it computes the integer MEAN kernel from the int8 input, with the
kernel's rescaling and rounding (``_mean_requantize``); otherwise it averages and
fake-quantizes the result with its own output range.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from effkeras.quantize.quantizers import multiplier_exponent, quantize_activations, round_half_away
from effkeras.quantize.ranges import PACKAGE, _check_momentum, _InputGridMixin, _RangeMixin


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantGlobalAveragePooling2D(_InputGridMixin, _RangeMixin, keras.layers.Layer):
    """GlobalAveragePooling2D as TFLite's int8 MEAN, with its own output range.

    At inference it computes what the int8 kernel computes from the int8 input: the
    integer sum over height and width, rescaled by ``input_scale / (N * output_scale)``
    with the kernel's two-step rounding, which differs from rounding the float average
    once in about one output in ten.

    Args:
        keepdims: keep the pooled axes as size 1 (the converter then emits a MEAN with
            ``keep_dims``, whose int8 kernels round differently: that case is simulated
            with a single rounding).
        range_momentum: momentum of the output range's moving average.
        **kwargs: base ``Layer`` arguments (``name``, ...).
    """

    _effkeras_quantized = True
    _fixed_range = None

    def __init__(self, keepdims: bool = False, range_momentum: float = 0.99, **kwargs: Any):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)
        self.range_momentum = _check_momentum("range_momentum", range_momentum)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"QuantGlobalAveragePooling2D expects (batch, height, width, channels) "
                f"inputs. Received: input_shape={tuple(input_shape)}"
            )
        self._build_range(None)
        self.built = True

    def call(self, inputs, training=None):
        if self._exact(training) and not self.keepdims:
            in_scale, _ = self.input_grid()
            out_scale, out_zero = self.output_grid()
            h, w = inputs.shape[1], inputs.shape[2]
            count = h * w if h is not None and w is not None else None
            if count is not None:
                # float64: the integer sum is exact and the first rounding is sharp.
                x = ops.cast(inputs, "float64")
                in64 = ops.cast(in_scale, "float64")
                total = ops.sum(ops.round(x / in64), axis=(1, 2))  # sum of (q - zero_point)
                multiplier = in64 / (count * ops.cast(out_scale, "float64"))
                # The kernel folds 1/N into the multiplier's shift (up to 2**floor(log2 N)).
                q = _mean_requantize(total * multiplier, in64 / ops.cast(out_scale, "float64"),
                                     count)
                q = ops.clip(q + ops.cast(out_zero, "float64"), -128.0, 127.0)
                q = ops.cast(q, "float32")
                return (q - out_zero) * out_scale
        y = ops.mean(inputs, axis=(1, 2), keepdims=self.keepdims)
        return self._quantize_output(y, training)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {"keepdims": self.keepdims, "range_momentum": self.range_momentum}
        return {**base_config, **config}


def _mean_requantize(steps, ratio, count: int):
    """TFLite's int8 MEAN rescaling (reference_ops::QuantizedMeanOrSum).

    The multiplier ``ratio = input_scale / output_scale`` is split as ``q * 2**e``; the
    kernel divides ``q * 2**s`` by ``count`` (``s = min(floor(log2 count), 32, 31 + e)``)
    and shifts right by ``s - e``, so the first rounding has that many fractional bits.
    """
    e = multiplier_exponent(ratio)
    shift = ops.minimum(float(min(count.bit_length() - 1, 32)), 31.0 + e)
    p = ops.power(2.0, ops.maximum(shift - e, 0.0))
    first = ops.floor(steps * p + 0.5)
    return round_half_away(first / p)


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantAveragePooling2D(_InputGridMixin, keras.layers.Layer):
    """AveragePooling2D on TFLite's int8 grid: the output keeps the input's scale.

    TFLite's AVERAGE_POOL_2D requires the same scale and zero point on input and output,
    so the output is rounded onto the input's grid (the range of the quantization layer
    that produced the input), never given a range of its own. At inference the rounding
    is the kernel's (the mean of the int8 values, half away from zero); elsewhere it is a
    FakeQuant with the input's range, which the converter reads as the same scale.

    Args:
        pool_size, strides, padding: as ``keras.layers.AveragePooling2D`` (channels last).
        **kwargs: base ``Layer`` arguments (``name``, ...).
    """

    _effkeras_quantized = True
    _shares_input_grid = True
    _range_mode = None

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.pool_size = _pair2(pool_size, "pool_size")
        self.strides = _pair2(strides if strides is not None else self.pool_size, "strides")
        padding = str(padding).lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
        self.padding = padding

    def _source(self):
        return self._grid_ref() if self._grid_ref is not None else None

    def _pool(self, x):
        return ops.average_pool(
            x, self.pool_size, strides=self.strides, padding=self.padding,
            data_format="channels_last",
        )

    def call(self, inputs, training=None):
        source = self._source()
        if source is not None and self._exact(training):
            # The kernel's mean of the int8 values, rounded half away from zero. The mean
            # is taken of the integers in float64: in float32 a tie (x.5, one window in
            # four of a 2x2 pool) can land just below and round the other way.
            scale, zero = source.output_grid()
            s64, z64 = ops.cast(scale, "float64"), ops.cast(zero, "float64")
            steps = ops.round(ops.cast(inputs, "float64") / s64)
            q = round_half_away(self._pool(steps) + z64)
            q = ops.clip(q, -128.0, 127.0)
            return ops.cast((q - z64) * s64, inputs.dtype)
        y = self._pool(inputs)
        if source is None:
            return y
        lo, hi = (source._fixed_range if source._fixed_range is not None
                  else (source.range_min, source.range_max))
        return quantize_activations(y, lo, hi)

    def compute_output_shape(self, input_shape):
        spatial = []
        for size, k, s in zip(input_shape[1:3], self.pool_size, self.strides, strict=True):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append((size - k) // s + 1)
        return (input_shape[0], *spatial, input_shape[3])

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }
        return {**base_config, **config}


def _pair2(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive int or a pair of them. Received: {name}={value!r}")
    return value
