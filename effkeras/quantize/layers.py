"""Keras 3 layers that simulate TFLite int8 inference while they train.

- :class:`QuantizeActivation` fake-quantizes a tensor per tensor, asymmetric, with a
  moving-average range (or a fixed one: softmax, logistic, tanh). It stands where TFLite
  keeps a tensor: the model input, the output of ADD, CONCATENATION, pooling, ...
- :class:`QuantConv2D`, :class:`QuantDepthwiseConv2D` and :class:`QuantDense` are one
  TFLite op each: the linear op, its bias, an optional batch normalization folded into
  the kernel, and a fused ReLU/ReLU6, followed by the fake quantization of the output.

Batch-norm folding (Jacob et al. 2018, section 3.2; Krishnamoorthi 2018, section 3.2):
the kernel that is fake-quantized is ``w * gamma / sqrt(moving_var + eps)`` (per output
channel), exactly the kernel TFLite stores. While batch norm is not frozen, the layer
also computes the float batch statistics of ``conv(x, w)``, updates the moving ones, and
rescales the quantized convolution by ``sigma_moving / sigma_batch`` with the bias
``beta - gamma * mean_batch / sigma_batch``, so training sees batch-normalized outputs.
Once frozen (:class:`effkeras.callbacks.FreezeBatchNorm`), the correction is 1 and the
bias uses the moving mean: the training graph is then the inference graph.

The freeze flags and ranges are non-trainable variables, so checkpoints carry them.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from effkeras.quantize.quantizers import (
    FIXED_OUTPUT_RANGES,
    batch_range,
    quantize_activations,
    quantize_weights,
)

PACKAGE = "effkeras"
ACTIVATIONS = (None, "relu", "relu6")
RANGE_MODES = ("ema", "calibrate")


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
            self.range_min.assign(ops.where(seen, ops.minimum(self.range_min, bmin), bmin))
            self.range_max.assign(ops.where(seen, ops.maximum(self.range_max, bmax), bmax))
            self.range_seen.assign(1.0)
        elif training and self.trainable:
            bmin, bmax = batch_range(x)
            m = self.range_momentum
            seen = self.range_seen > 0.5
            frozen = self.ranges_frozen > 0.5
            new_min = ops.where(seen, self.range_min * m + bmin * (1.0 - m), bmin)
            new_max = ops.where(seen, self.range_max * m + bmax * (1.0 - m), bmax)
            self.range_min.assign(ops.where(frozen, self.range_min, new_min))
            self.range_max.assign(ops.where(frozen, self.range_max, new_max))
            self.range_seen.assign(ops.where(frozen, self.range_seen, 1.0))
        return quantize_activations(x, self.range_min, self.range_max)

    @property
    def output_range(self) -> tuple[float, float]:
        """The (min, max) real range of the quantized output, as Python floats."""
        return float(self.range_min.numpy()), float(self.range_max.numpy())


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


class _FoldedLayer(_RangeMixin, keras.layers.Layer):
    """Linear op + bias + folded batch norm + fused ReLU/ReLU6 + output fake quantization.

    Subclasses define ``_kernel_shape(input_shape)``, ``_linear(x, kernel)``,
    ``_channels(input_shape)`` and ``_kernel_channel_axis``.
    """

    _effkeras_quantized = True
    _fixed_range = None

    def __init__(
        self,
        use_bias: bool = True,
        activation: str | None = None,
        batch_norm: bool = False,
        bn_momentum: float = 0.99,
        bn_epsilon: float = 1e-3,
        bn_center: bool = True,
        bn_scale: bool = True,
        range_momentum: float = 0.99,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if activation == "linear":
            activation = None
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {ACTIVATIONS} (the activations TFLite fuses "
                f"into the op). Received: activation={activation!r}"
            )
        if not isinstance(bn_epsilon, int | float) or bn_epsilon <= 0:
            raise ValueError(f"bn_epsilon must be a positive float. Received: {bn_epsilon!r}")
        self.use_bias = bool(use_bias)
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.bn_momentum = _check_momentum("bn_momentum", bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.bn_center = bool(bn_center)
        self.bn_scale = bool(bn_scale)
        self.range_momentum = _check_momentum("range_momentum", range_momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    # -- subclass hooks -------------------------------------------------------------
    def _kernel_shape(self, input_shape) -> tuple[int, ...]:
        raise NotImplementedError

    def _channels(self, input_shape) -> int:
        raise NotImplementedError

    def _linear(self, x, kernel):
        raise NotImplementedError

    def _kernel_per_channel(self, kernel, scale):
        """Multiply the kernel by a per-output-channel vector."""
        return kernel * scale

    def _quantize_kernel(self, kernel):
        return quantize_weights(kernel, axis=-1)

    # -- Keras API -------------------------------------------------------------------
    def build(self, input_shape):
        channels = self._channels(input_shape)
        self.kernel = self.add_weight(
            name="kernel", shape=self._kernel_shape(input_shape),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(channels,), initializer=self.bias_initializer)
            if self.use_bias else None
        )
        if self.batch_norm:
            self.gamma = (
                self.add_weight(name="gamma", shape=(channels,), initializer="ones")
                if self.bn_scale else None
            )
            self.beta = (
                self.add_weight(name="beta", shape=(channels,), initializer="zeros")
                if self.bn_center else None
            )
            stat = {"shape": (channels,), "trainable": False, "autocast": False,
                    "aggregation": "mean"}
            self.moving_mean = self.add_weight(name="moving_mean", initializer="zeros", **stat)
            self.moving_variance = self.add_weight(
                name="moving_variance", initializer="ones", **stat
            )
            self.bn_frozen = self.add_weight(
                name="bn_frozen", shape=(), initializer="zeros", trainable=False,
                autocast=False, aggregation="only_first_replica",
            )
        self._build_range(None)
        self.built = True

    def _folded(self):
        """(kernel to quantize, bias, inverse moving sigma) with the moving statistics."""
        if not self.batch_norm:
            bias = self.bias if self.use_bias else None
            return self.kernel, bias, None
        inv_sigma = ops.rsqrt(self.moving_variance + self.bn_epsilon)
        gamma = self.gamma if self.bn_scale else 1.0
        factor = gamma * inv_sigma
        bias = -self.moving_mean
        if self.use_bias:
            bias = bias + self.bias
        bias = bias * factor
        if self.bn_center:
            bias = bias + self.beta
        return self._kernel_per_channel(self.kernel, factor), bias, inv_sigma

    def _batch_stat_branch(self, x):
        """Training with batch statistics (not frozen): (corrected output, mean, variance).

        No variable is assigned here: the caller updates the moving statistics outside
        of control flow (a MirroredStrategy cannot synchronize inside a cond).
        """
        y = self._linear(x, self.kernel)
        if self.use_bias:
            y = y + self.bias
        axes = list(range(len(y.shape) - 1))
        mean, variance = ops.moments(y, axes=axes)
        mean, variance = ops.stop_gradient(mean), ops.stop_gradient(variance)
        inv_sigma_moving = ops.rsqrt(self.moving_variance + self.bn_epsilon)
        inv_sigma_batch = ops.rsqrt(variance + self.bn_epsilon)
        gamma = self.gamma if self.bn_scale else 1.0
        kernel = self._kernel_per_channel(self.kernel, gamma * inv_sigma_moving)
        out = self._linear(x, self._quantize_kernel(kernel))
        # sigma_moving / sigma_batch: the quantized conv now sees the batch statistics.
        out = out * (inv_sigma_batch / inv_sigma_moving)
        bias = -mean
        if self.use_bias:
            bias = bias + self.bias
        bias = bias * gamma * inv_sigma_batch
        if self.bn_center:
            bias = bias + self.beta
        return out + bias, mean, variance

    def _moving_stat_branch(self, x):
        kernel, bias, _ = self._folded()
        out = self._linear(x, self._quantize_kernel(kernel))
        return out if bias is None else out + bias

    def call(self, inputs, training=None):
        if self.batch_norm and training and self.trainable:
            frozen = self.bn_frozen > 0.5
            out, mean, variance = ops.cond(
                frozen,
                lambda: (
                    self._moving_stat_branch(inputs),
                    ops.convert_to_tensor(self.moving_mean),
                    ops.convert_to_tensor(self.moving_variance),
                ),
                lambda: self._batch_stat_branch(inputs),
            )
            m = self.bn_momentum
            new_mean = self.moving_mean * m + mean * (1.0 - m)
            new_variance = self.moving_variance * m + variance * (1.0 - m)
            self.moving_mean.assign(ops.where(frozen, self.moving_mean, new_mean))
            self.moving_variance.assign(ops.where(frozen, self.moving_variance, new_variance))
        else:
            out = self._moving_stat_branch(inputs)
        if self.activation == "relu":
            out = ops.relu(out)
        elif self.activation == "relu6":
            out = ops.relu6(out)
        return self._quantize_output(out, training)

    def folded_weights(self) -> tuple[Any, Any]:
        """(kernel, bias) as TFLite will store them before quantization, as numpy."""
        kernel, bias, _ = self._folded()
        kernel = ops.convert_to_numpy(kernel)
        if bias is None:
            bias = ops.zeros((kernel.shape[-1],))
        return kernel, ops.convert_to_numpy(bias)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "use_bias": self.use_bias,
            "activation": self.activation,
            "batch_norm": self.batch_norm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "bn_center": self.bn_center,
            "bn_scale": self.bn_scale,
            "range_momentum": self.range_momentum,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
        return {**base_config, **config}


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
        batch_norm: fold a batch normalization into the kernel (see the module notes).
        bn_momentum, bn_epsilon, bn_center, bn_scale: that batch normalization's settings.
        range_momentum: momentum of the output range's moving average.
        kernel_initializer, bias_initializer: initializers for a fresh layer.
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
        spatial = []
        for size, k, s, d in zip(
            input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate, strict=True
        ):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append((size - d * (k - 1) - 1) // s + 1)
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

    def _quantize_kernel(self, kernel):
        kh, kw, cin, dm = kernel.shape
        flat = ops.reshape(kernel, (kh, kw, 1, cin * dm))
        return ops.reshape(quantize_weights(flat, axis=-1), (kh, kw, cin, dm))

    def _linear(self, x, kernel):
        return ops.depthwise_conv(
            x, kernel, strides=self.strides, padding=self.padding,
            data_format="channels_last", dilation_rate=self.dilation_rate,
        )

    def compute_output_shape(self, input_shape):
        spatial = []
        for size, k, s, d in zip(
            input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate, strict=True
        ):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append((size - d * (k - 1) - 1) // s + 1)
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
    emits FULLY_CONNECTED from a quantization-aware model.

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

    def _quantize_kernel(self, kernel):
        # One scale for the kernel: see effkeras.quantize.quantizers for why.
        return quantize_weights(kernel, axis=None)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        return {**base_config, "units": self.units}


QUANT_LAYERS = (QuantizeActivation, QuantConv2D, QuantDepthwiseConv2D, QuantDense)
