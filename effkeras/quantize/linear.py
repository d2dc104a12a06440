"""The linear QAT layers: Conv2D, DepthwiseConv2D and Dense as one int8 TFLite op each.

:class:`QuantConv2D` (CONV_2D), :class:`QuantDepthwiseConv2D` (DEPTHWISE_CONV_2D) and
:class:`QuantDense` (FULLY_CONNECTED) give the batch-norm-folding base
(:mod:`effkeras.quantize.folded`) their kernel shape, their linear op and how their
weights are scaled (per output channel, or per tensor); plus the argument checks and the
output-shape arithmetic of 2-D convolutions.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from effkeras.quantize.folded import _FoldedLayer
from effkeras.quantize.quantizers import quantize_weights, weight_scale
from effkeras.quantize.ranges import PACKAGE


def _conv_spatial(layer, input_shape) -> list[int | None]:
    """Output height and width of a 2-D (depthwise) convolution layer, channels last."""
    spatial = []
    for size, k, s, d in zip(
        input_shape[1:3], layer.kernel_size, layer.strides, layer.dilation_rate, strict=True
    ):
        if size is None:
            spatial.append(None)
        elif layer.padding == "same":
            spatial.append(-(-size // s))
        else:
            spatial.append((size - d * (k - 1) - 1) // s + 1)
    return spatial


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive int or a pair of them. Received: {value!r}")
    return value


def _padding(padding: str) -> str:
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
    return padding


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantConv2D(_FoldedLayer):
    """Conv2D (+ folded BatchNormalization) (+ ReLU/ReLU6) as one int8 TFLite CONV_2D.

    Args:
        filters: number of output channels.
        kernel_size, strides, dilation_rate: ints or pairs, as ``keras.layers.Conv2D``.
        padding: ``"valid"`` or ``"same"``.
        use_bias: whether the convolution has its own bias (before batch norm).
        activation: ``None``, ``"relu"`` or ``"relu6"`` (fused into the op).
        batch_norm: fold a batch normalization into the kernel (see
            :mod:`effkeras.quantize.folded`).
        bn_momentum, bn_epsilon, bn_center, bn_scale: that batch normalization's settings.
        range_momentum: momentum of the output range's moving average.
        kernel_initializer, bias_initializer: initializers for a fresh layer.
        quantize_output: ``False`` leaves the (float) output to be quantized by the
            Concatenate that alone consumes it: the converter gives such a tensor the
            concatenation's scale, with no requantization in between.
        per_channel: one weight scale per output channel (TFLite's default for
            CONV_2D and DEPTHWISE_CONV_2D) or, with ``False``, one for the whole kernel:
            the file loses 12 bytes of quantization parameters per channel for the
            weights and as many for the bias (about 10% of a 50 KB ResNet), often at
            little accuracy cost after QAT.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        dilation_rate: int | tuple[int, int] = 1,
        **kwargs: Any,
    ):
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive integer. Received: filters={filters!r}")
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")

    def _kernel_shape(self, input_shape):
        return (*self.kernel_size, int(input_shape[-1]), self.filters)

    def _channels(self, input_shape):
        return self.filters

    def _linear(self, x, kernel):
        return ops.conv(
            x, kernel, strides=self.strides, padding=self.padding,
            data_format="channels_last", dilation_rate=self.dilation_rate,
        )

    def compute_output_shape(self, input_shape):
        spatial = _conv_spatial(self, input_shape)
        return (input_shape[0], *spatial, self.filters)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
        }
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantDepthwiseConv2D(_FoldedLayer):
    """DepthwiseConv2D (+ folded BatchNormalization) (+ ReLU/ReLU6): one DEPTHWISE_CONV_2D.

    The kernel is ``(kh, kw, in_channels, depth_multiplier)``; TFLite stores it as
    ``(1, kh, kw, in_channels * depth_multiplier)`` with one scale per output channel,
    which is what the weights' fake quantization uses.

    Args:
        kernel_size, strides, dilation_rate, padding, depth_multiplier: as
            ``keras.layers.DepthwiseConv2D``.
        **kwargs: the arguments of :class:`QuantConv2D` after ``dilation_rate``.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        dilation_rate: int | tuple[int, int] = 1,
        **kwargs: Any,
    ):
        if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
            raise ValueError(
                f"depth_multiplier must be a positive integer. Received: {depth_multiplier!r}"
            )
        super().__init__(**kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.depth_multiplier = depth_multiplier
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")

    def _kernel_shape(self, input_shape):
        return (*self.kernel_size, int(input_shape[-1]), self.depth_multiplier)

    def _channels(self, input_shape):
        return int(input_shape[-1]) * self.depth_multiplier

    def _kernel_per_channel(self, kernel, scale):
        shape = kernel.shape
        return kernel * ops.reshape(scale, (1, 1, shape[2], shape[3]))

    # The output channels of a depthwise kernel (kh, kw, cin, dm) are its last two axes
    # together: seen as (kh, kw, 1, cin * dm), _weight_axis (-1, or None for one scale per
    # kernel) means the same as for Conv2D.
    def _quantize_kernel(self, kernel):
        kh, kw, cin, dm = kernel.shape
        flat = ops.reshape(kernel, (kh, kw, 1, cin * dm))
        q = quantize_weights(flat, axis=self._weight_axis, num_bits=self.weight_bits)
        return ops.reshape(q, (kh, kw, cin, dm))

    def _weight_scale(self, kernel):
        kh, kw, cin, dm = kernel.shape
        return weight_scale(
            ops.reshape(kernel, (kh, kw, 1, cin * dm)), axis=self._weight_axis,
            num_bits=self.weight_bits,
        )

    def _linear(self, x, kernel):
        return ops.depthwise_conv(
            x, kernel, strides=self.strides, padding=self.padding,
            data_format="channels_last", dilation_rate=self.dilation_rate,
        )

    def compute_output_shape(self, input_shape):
        spatial = _conv_spatial(self, input_shape)
        return (input_shape[0], *spatial, int(input_shape[-1]) * self.depth_multiplier)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "depth_multiplier": self.depth_multiplier,
            "dilation_rate": list(self.dilation_rate),
        }
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantDense(_FoldedLayer):
    """Dense (+ folded BatchNormalization) (+ ReLU/ReLU6) as one int8 FULLY_CONNECTED.

    The weights are quantized per tensor (symmetric, narrow range), as the converter
    emits FULLY_CONNECTED from a quantization-aware model, whatever ``per_channel`` says.

    Args:
        units: output size.
        **kwargs: ``use_bias``, ``activation``, ``batch_norm`` and the other arguments of
            :class:`QuantConv2D` after ``dilation_rate``.
    """

    def __init__(self, units: int, **kwargs: Any):
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer. Received: units={units!r}")
        super().__init__(**kwargs)
        self.units = units

    def _kernel_shape(self, input_shape):
        return (int(input_shape[-1]), self.units)

    def _channels(self, input_shape):
        return self.units

    def _linear(self, x, kernel):
        return ops.matmul(x, kernel)

    # One scale for the kernel whatever per_channel says: see effkeras.quantize.quantizers for why.
    _weight_axis = None

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        return {**base_config, "units": self.units}
