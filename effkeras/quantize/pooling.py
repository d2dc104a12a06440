"""Global average pooling as TFLite's int8 MEAN: :class:`QuantGlobalAveragePooling2D`.

At inference it computes the integer MEAN kernel from the int8 input, with the
kernel's rescaling and rounding (``_mean_requantize``); otherwise it averages and
fake-quantizes the result with its own output range.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from effkeras.quantize.quantizers import multiplier_exponent, round_half_away
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
