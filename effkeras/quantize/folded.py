"""The batch-norm-folding base of the linear QAT layers: one int8 TFLite op each.

``_FoldedLayer`` is a linear op, its bias, an optional batch normalization folded into
the kernel and a fused ReLU/ReLU6, followed by the fake quantization of the output; the
layers of :mod:`effkeras.quantize.linear` supply the linear op and the kernel shape.

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

At inference with a known input grid the layer computes the int8 op exactly: int32 bias,
TFLite's two-step requantization, the fused clamp (see :mod:`effkeras.quantize.layers`).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from effkeras.quantize.quantizers import (
    WEIGHT_BITS,
    quantize_weights,
    requantize,
    round_half_away,
    weight_scale,
)
from effkeras.quantize.ranges import _check_momentum, _InputGridMixin, _RangeMixin

#: The activations TFLite fuses into a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED.
ACTIVATIONS = (None, "relu", "relu6")


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
        weight_bits: int = 8,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if weight_bits not in WEIGHT_BITS or isinstance(weight_bits, bool):
            raise ValueError(
                f"weight_bits must be one of {WEIGHT_BITS}. Received: weight_bits={weight_bits!r}"
            )
        self.weight_bits = int(weight_bits)
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
        return quantize_weights(kernel, axis=self._weight_axis, num_bits=self.weight_bits)

    def _weight_scale(self, kernel):
        """The weight scale of each output channel (a scalar for per-tensor weights)."""
        return weight_scale(kernel, axis=self._weight_axis, num_bits=self.weight_bits)

    def integer_weights(self) -> tuple[Any, Any]:
        """(integer kernel, scale) as TFLite stores them: ``kernel = q * scale``.

        ``q`` holds integers in [-127, 127] (``weight_bits=8``) or [-7, 7] (4), with one
        scale per output channel (or one per kernel); the kernel is the folded one.
        """
        kernel, _, _ = self._folded()
        scale = self._weight_scale(kernel)
        q = self._quantize_kernel(kernel)
        shape = q.shape
        if hasattr(self, "depth_multiplier"):  # (kh, kw, cin, dm) -> TFLite's channel axis
            q = ops.reshape(q, (shape[0], shape[1], 1, shape[2] * shape[3]))
        q = ops.convert_to_numpy(q) / ops.convert_to_numpy(scale)
        return ops.convert_to_numpy(ops.round(q)), ops.convert_to_numpy(scale)

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

    #: weak reference to the concatenation's quantization layer whose grid the converter
    #: gives this layer's output when ``quantize_output`` is False (set by that layer)
    _deferred_grid_ref = None

    def _output_grid_layer(self):
        """The layer whose grid this layer's int8 output is on (self, or the
        concatenation's quantization it is deferred to), or None."""
        if self.quantize_output:
            return self
        return self._deferred_grid_ref() if self._deferred_grid_ref is not None else None

    def _integer_inference(self, inputs):
        """The int8 op exactly: int32 bias, two-step requantization, fused clamp."""
        in_scale, _ = self.input_grid()
        out_scale, out_zero = self._output_grid_layer().output_grid()
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
        if self._exact(training) and self._output_grid_layer() is not None:
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
            "weight_bits": self.weight_bits,
        }
        return {**base_config, **config}
