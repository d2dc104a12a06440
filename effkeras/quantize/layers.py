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
takes the batch statistics of ``conv(x, w)`` from that one quantized convolution (its
output is ``conv(x, w)`` scaled per channel), updates the moving ones, and rescales the
output by ``sigma_moving / sigma_batch`` around the batch mean, so training sees
batch-normalized outputs with gradients through the statistics, at the cost of one
convolution (not two).
Once frozen (:class:`effkeras.callbacks.FreezeBatchNorm`), the correction is 1 and the
bias uses the moving mean: the training graph is then the inference graph.

At inference (``training`` false) the folded layers and
:class:`QuantGlobalAveragePooling2D` compute what the int8 kernel computes, rounding
included: the bias is rounded to its int32 grid and the result is requantized with
TFLite's two-step fixed-point rounding (:func:`effkeras.quantize.quantizers.requantize`),
so ``model.predict`` equals LiteRT's built-in/reference kernels and TFLite Micro. This
needs the scale of the layer's input, which the layer finds when it is called on a
symbolic tensor (functional model, or one loaded from a file): the quantization layer
that produced it, through layers that keep their input's scale (MaxPooling, Flatten,
...). Without one (a layer called eagerly) it rounds once, as the fake quantization
does. While training, and while :func:`~effkeras.quantize.quantizers.export_graph` is
active, the layers only fake-quantize (the ops the converter reads).

The freeze flags and ranges are non-trainable variables, so checkpoints carry them.
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
    multiplier_exponent,
    quantize_activations,
    quantize_weights,
    requantize,
    round_half_away,
    weight_scale,
)

L = keras.layers

#: Layers whose output TFLite stores with the scale and zero point of their input.
SHARED_SCALE = (
    L.MaxPooling1D, L.MaxPooling2D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D,
    L.Flatten, L.Reshape, L.ZeroPadding1D, L.ZeroPadding2D, L.Cropping1D, L.Cropping2D,
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout,
    L.Identity, L.Permute,
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
            self.range_min.assign(ops.where(seen, ops.minimum(self.range_min.value, bmin), bmin))
            self.range_max.assign(ops.where(seen, ops.maximum(self.range_max.value, bmax), bmax))
            self.range_seen.assign(1.0)
        elif training and self.trainable:
            bmin, bmax = batch_range(x)
            m = self.range_momentum
            seen = self.range_seen > 0.5
            frozen = self.ranges_frozen > 0.5
            new_min = ops.where(seen, self.range_min.value * m + bmin * (1.0 - m), bmin)
            new_max = ops.where(seen, self.range_max.value * m + bmax * (1.0 - m), bmax)
            self.range_min.assign(ops.where(frozen, self.range_min.value, new_min))
            self.range_max.assign(ops.where(frozen, self.range_max.value, new_max))
            self.range_seen.assign(ops.where(frozen, self.range_seen.value, 1.0))
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
        if not isinstance(layer, SHARED_SCALE):
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


class _FoldedLayer(_InputGridMixin, _RangeMixin, keras.layers.Layer):
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
        quantize_output: bool = True,
        per_channel: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(per_channel, bool):
            raise ValueError(f"per_channel must be True or False. Received: per_channel={per_channel!r}")
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
        self.quantize_output = bool(quantize_output)
        self.per_channel = per_channel

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

    @property
    def _weight_axis(self) -> int | None:
        """The kernel axis that gets one scale per index, or None for one scale per kernel."""
        return -1 if self.per_channel else None

    def _quantize_kernel(self, kernel):
        return quantize_weights(kernel, axis=self._weight_axis)

    def _weight_scale(self, kernel):
        """The weight scale of each output channel (a scalar for per-tensor weights)."""
        return weight_scale(kernel, axis=self._weight_axis)

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

    def _batch_norm_training(self, x):
        """Training output with batch norm folded: (output, batch mean, batch variance).

        One convolution, with the folded kernel ``w * gamma / sigma_moving`` quantized:
        its output is ``f * conv(x, w)`` (``f = gamma / sigma_moving`` per channel), so
        the batch statistics of ``conv(x, w)`` are those of the output divided by ``f``
        and ``f**2``. Not frozen, the output is batch-normalized with them,
        ``(out - mean(out)) * sigma_moving / sigma_batch + beta``, with gradients through
        the statistics as in batch normalization (stopping them lets the moving
        statistics drift away from what the weights need). Frozen, it is
        ``out - f * moving_mean + beta``: the inference graph. Both are ``out * a + c``
        with per-channel ``a`` and ``c`` selected by the freeze flag, so there is no
        control flow around the convolution (a cond there costs more than the batch
        normalization itself, and a MirroredStrategy cannot synchronize inside one).
        """
        frozen = self.bn_frozen > 0.5
        inv_sigma_moving = ops.rsqrt(self.moving_variance + self.bn_epsilon)
        gamma = self.gamma if self.bn_scale else 1.0
        factor = gamma * inv_sigma_moving
        out = self._linear(x, self._quantize_kernel(self._kernel_per_channel(self.kernel, factor)))
        if self.use_bias:
            out = out + self.bias * factor
        axes = list(range(len(out.shape) - 1))
        out_mean, out_variance = ops.moments(out, axes=axes)
        # A channel with gamma ~ 0 carries no statistics: keep the moving ones there.
        degenerate = ops.abs(factor) < 1e-6
        safe = ops.where(degenerate, 1.0, factor)
        mean = ops.where(degenerate, self.moving_mean.value, out_mean / safe)
        variance = ops.where(degenerate, self.moving_variance.value, out_variance / (safe * safe))
        ratio = ops.rsqrt(variance + self.bn_epsilon) / inv_sigma_moving
        scale = ops.where(frozen, 1.0, ratio)
        shift = ops.where(frozen, -self.moving_mean.value * factor, -out_mean * ratio)
        if self.bn_center:
            shift = shift + self.beta
        return out * scale + shift, ops.stop_gradient(mean), ops.stop_gradient(variance)

    def _moving_stat_branch(self, x):
        kernel, bias, _ = self._folded()
        out = self._linear(x, self._quantize_kernel(kernel))
        return out if bias is None else out + bias

    def _integer_inference(self, inputs):
        """The int8 op exactly: int32 bias, two-step requantization, fused clamp."""
        in_scale, _ = self.input_grid()
        out_scale, out_zero = self.output_grid()
        kernel, bias, _ = self._folded()
        w_scale = self._weight_scale(kernel)
        y = self._linear(inputs, self._quantize_kernel(kernel))
        if bias is not None:
            bias_scale = in_scale * w_scale
            y = y + round_half_away(bias / bias_scale) * bias_scale
        q = requantize(y / out_scale, in_scale * w_scale / out_scale) + out_zero
        lo, hi = -128.0, 127.0
        if self.activation in ("relu", "relu6"):
            lo = ops.maximum(lo, out_zero)
        if self.activation == "relu6":
            hi = ops.minimum(hi, out_zero + round_half_away(6.0 / out_scale))
        return (ops.clip(q, lo, hi) - out_zero) * out_scale

    def call(self, inputs, training=None):
        if self.quantize_output and self._exact(training):
            return self._integer_inference(inputs)
        if self.batch_norm and training and self.trainable:
            frozen = self.bn_frozen > 0.5
            out, mean, variance = self._batch_norm_training(inputs)
            m = self.bn_momentum
            new_mean = self.moving_mean * m + mean * (1.0 - m)
            new_variance = self.moving_variance * m + variance * (1.0 - m)
            self.moving_mean.assign(ops.where(frozen, self.moving_mean.value, new_mean))
            self.moving_variance.assign(ops.where(frozen, self.moving_variance.value, new_variance))
        else:
            out = self._moving_stat_branch(inputs)
        if self.activation == "relu":
            out = ops.relu(out)
        elif self.activation == "relu6":
            out = ops.relu6(out)
        if not self.quantize_output:
            return out
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
            "quantize_output": self.quantize_output,
            "per_channel": self.per_channel,
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
        return ops.reshape(quantize_weights(flat, axis=self._weight_axis), (kh, kw, cin, dm))

    def _weight_scale(self, kernel):
        kh, kw, cin, dm = kernel.shape
        return weight_scale(ops.reshape(kernel, (kh, kw, 1, cin * dm)), axis=self._weight_axis)

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


QUANT_LAYERS = (
    QuantizeActivation, QuantConv2D, QuantDepthwiseConv2D, QuantDense,
    QuantGlobalAveragePooling2D,
)
