"""Fake-quantization functions that reproduce TFLite's int8 scheme in Keras 3.

They are built on :func:`keras.quantizers.fake_quant_with_min_max_vars`, which on the
TensorFlow backend emits ``FakeQuantWithMinMaxVars(PerChannel)``: the ops the TFLite
converter reads to set each tensor's scale and zero point without representative data.

TFLite int8 (the converter's quantization spec):

- weights: int8 symmetric, zero point 0, narrow range [-127, 127], ``scale = max|w| / 127``
  per output channel for CONV_2D and DEPTHWISE_CONV_2D. FULLY_CONNECTED weights get one
  scale per tensor, and the simulation uses exactly that: the TFLite converter (2.21)
  cannot carry a per-channel FakeQuant through the transpose it inserts for a MatMul
  kernel ("'tfl.transpose' op has mismatched quantized axes"), whether the kernel is
  fake-quantized as (in, units) along units, as (units, in) along axis 0 and transposed
  back, or used through an einsum. (Post-training quantization, which quantizes the
  constant after the transpose, does emit per-channel FULLY_CONNECTED weights.)
- activations: int8 asymmetric, one scale and zero point per tensor, range [-128, 127];
  the real range always contains 0 (so that padding and ReLU are exact);
- fixed output ranges: softmax and logistic ``scale = 1/256, zero_point = -128``; tanh
  ``scale = 1/128, zero_point = 0``.

Requantization (:func:`requantize`): the int8 kernels that TFLite Micro and LiteRT's
reference kernel set run (and LiteRT's built-in kernels, except for a few ties in their
3x3 depthwise fast path) rescale an int32 accumulator ``acc`` by a real
multiplier ``M = 2**e * q`` (``q`` in [0.5, 1) held in 31 bits) in two roundings: first
``round_half_up(acc * q * 2**31 / 2**31)`` (gemmlowp's SaturatingRoundingDoublingHighMul),
then a rounding right shift by ``-e`` (half away from zero). Relative to rounding
``acc * M`` once, values within ``2**(e-1)`` of a half step round away from zero. The
quantization layers reproduce this at inference, so that a Keras model's predictions
equal the int8 model's, element for element (XNNPACK rounds once, in float).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import keras
from keras import ops

NUM_BITS = 8

#: Fixed (min, max) real ranges that give TFLite's fixed output quantization:
#: 255 steps of 1/256 from 0 (zero point -128), and 255 steps of 1/128 from -1 (zero point 0).
FIXED_OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "softmax": (0.0, 255.0 / 256.0),
    "sigmoid": (0.0, 255.0 / 256.0),
    "tanh": (-1.0, 127.0 / 128.0),
}

#: Smallest real range a weight quantizer will use (avoids a zero scale).
MIN_RANGE = 1e-6
#: Smallest real range of an activation. A narrower one (a network whose activations
#: vanish, as untrained MobileNetV3 does at inference) gives scales whose requantization
#: multipliers TFLite's int8 kernels cannot represent: the SOFTMAX kernel aborts the
#: interpreter when ``input_scale * 2**26 < 1`` (range below 3.8e-6).
MIN_ACTIVATION_RANGE = 1e-5


_EXPORTING = contextvars.ContextVar("effkeras_quantize_exporting", default=False)
_INT4_EXPORT = contextvars.ContextVar("effkeras_quantize_int4_export", default=False)


@contextlib.contextmanager
def export_graph(int4_weights: bool = False) -> Iterator[None]:
    """Trace the quantization layers as the TFLite converter must see them.

    Inside this context the layers emit only ``FakeQuantWithMinMaxVars`` ops (whose ranges
    the converter reads) and skip the exact integer rounding they simulate at inference,
    which would otherwise appear as extra float ops. :func:`effkeras.convert.to_tflite`
    enters it while it exports a quantization-aware model.

    Args:
        int4_weights: emit 4-bit weights as 4-bit FakeQuant ops, which TensorFlow 2.21's
            converter stores as INT4 tensors. By default they are emitted as 8-bit
            FakeQuant ops whose range is 127 of their 4-bit steps, so the file is plain
            int8 with each of those kernels holding integers in [-7, 7].
    """
    token = _EXPORTING.set(True)
    token4 = _INT4_EXPORT.set(bool(int4_weights))
    try:
        yield
    finally:
        _INT4_EXPORT.reset(token4)
        _EXPORTING.reset(token)


def exporting() -> bool:
    """True inside :func:`export_graph`."""
    return _EXPORTING.get()


#: Weight bit widths the QAT layers simulate: int8 ([-127, 127]) and int4 ([-7, 7]).
WEIGHT_BITS = (8, 4)


def weight_levels(num_bits: int = NUM_BITS) -> int:
    """The largest integer of a narrow symmetric weight grid: 127 for int8, 7 for int4."""
    if num_bits not in WEIGHT_BITS:
        raise ValueError(f"num_bits must be one of {WEIGHT_BITS}. Received: num_bits={num_bits!r}")
    return 2 ** (num_bits - 1) - 1


def weight_scale(kernel, axis: int | None = -1, num_bits: int = NUM_BITS):
    """TFLite's symmetric weight scale ``max|kernel| / 127`` (``/ 7`` for int4), per
    channel along ``axis``."""
    if axis is None:
        reduce_axes = tuple(range(len(kernel.shape)))
    else:
        axis = axis % len(kernel.shape)
        reduce_axes = tuple(i for i in range(len(kernel.shape)) if i != axis)
    max_abs = ops.stop_gradient(ops.max(ops.abs(kernel), axis=reduce_axes))
    return ops.maximum(max_abs, MIN_RANGE) / float(weight_levels(num_bits))


def activation_grid(range_min, range_max):
    """(scale, zero_point) of an int8 activation range, as the converter derives them.

    ``scale = (max - min) / 255`` and ``zero_point = round(-128 - min / scale)`` clamped
    to [-128, 127] (TensorFlow's FakeQuant "nudges" the range the same way). As the
    converter does, the scale is computed in float64 from the float32 range and rounded
    to float32 once (float32 arithmetic can land one unit in the last place away, which
    moves the outputs that sit on a tie of a requantization, such as ``q * 51 / 26``).
    """
    lo = ops.cast(range_min, "float64")
    hi = ops.cast(range_max, "float64")
    scale = ops.maximum((hi - lo) / 255.0, MIN_ACTIVATION_RANGE / 255.0)
    zero_point = ops.clip(ops.round(-128.0 - lo / scale), -128.0, 127.0)
    return ops.cast(scale, "float32"), ops.cast(zero_point, "float32")


def multiplier_exponent(multiplier):
    """``e`` such that ``multiplier = q * 2**e`` with ``q`` in [0.5, 1) (C's frexp)."""
    e = ops.floor(ops.log2(multiplier)) + 1.0
    # log2 in float32 can be off by one next to a power of two: correct it.
    e = ops.where(multiplier >= ops.power(2.0, e), e + 1.0, e)
    return ops.where(multiplier < ops.power(2.0, e - 1.0), e - 1.0, e)


def round_half_away(x):
    """Round to the nearest integer, ties away from zero (TfLiteRound, std::round)."""
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def requantize(steps, multiplier):
    """Round ``steps`` (a real value in output quantization steps) as TFLite's int8 kernels do.

    Args:
        steps: ``accumulator * multiplier``: the exact real result divided by the output
            scale (zero point not added).
        multiplier: the real multiplier ``M`` of the requantization (input scale times
            weight scale over output scale), broadcastable to ``steps``; it sets the
            first rounding's precision ``2**-shift``.

    Returns:
        The integer result (as floats) before the zero point is added and clamped:
        ``round_half_away(round_half_up(steps * 2**shift) / 2**shift)``.
    """
    p = ops.power(2.0, ops.maximum(-multiplier_exponent(multiplier), 0.0))
    first = ops.floor(steps * p + 0.5)
    return round_half_away(first / p)


def requantize_integer(accumulator, multiplier):
    """TFLite's ``MultiplyByQuantizedMultiplier(acc, M)`` bit for bit (int64 arithmetic).

    ``M = q * 2**e`` is held as a 31-bit integer ``round(q * 2**31)`` (QuantizeMultiplier);
    the integer ``accumulator`` is shifted left by ``max(e, 0)``, multiplied by it with
    a rounding (half up) high product, and shifted right by ``max(-e, 0)`` (half away
    from zero). Exact, ties included (a ratio of scales such as ``51/26`` puts outputs
    exactly on them, where the 31-bit multiplier decides), for accumulators below 2**31
    (ADD's inputs shifted left by 20 bits too). :func:`requantize` takes the
    real-valued steps instead.

    Args:
        accumulator: integer values, ``(q1 - z1) * (q2 - z2)`` or ``q - z``.
        multiplier: the real multiplier (computed in float64: float32 loses the
            31-bit multiplier's last bits), broadcastable.

    Returns:
        The rounded result (float64) before the output zero point is added.
    """
    multiplier = ops.cast(ops.convert_to_tensor(multiplier, dtype="float64")
                          if isinstance(multiplier, float) else multiplier, "float64")
    e = multiplier_exponent(multiplier)
    q31 = ops.floor(multiplier * ops.power(2.0, 31.0 - e) + 0.5)
    carry = q31 >= 2.0**31
    q31 = ops.cast(ops.where(carry, q31 / 2.0, q31), "int64")
    e = ops.where(carry, e + 1.0, e)
    left = ops.cast(ops.power(2.0, ops.maximum(e, 0.0)), "int64")
    p = ops.cast(ops.power(2.0, ops.maximum(-e, 0.0)), "int64")
    a = ops.cast(ops.round(ops.cast(accumulator, "float64")), "int64") * left
    high = ops.floor_divide(a * q31 + 2**30, 2**31)  # SaturatingRoundingDoublingHighMul
    result = ops.sign(high) * ops.floor_divide(ops.abs(high) + p // 2, p)  # RoundingDivideByPOT
    return ops.cast(result, "float64")


def add_integer(k1, k2, s1, s2, s_out, subtract: bool = False):
    """TFLite's int8 ADD (SUB) kernel on ``k_i = q_i - z_i``, before the output zero point.

    Each input is shifted left by 20 bits and rescaled by ``s_i / (2 max(s1, s2))``, the
    sum (difference) by ``2 max(s1, s2) / (2**20 s_out)``, each with
    :func:`requantize_integer` (reference_integer_ops::Add, PrepareGeneralSubOp).
    Scales are float64 holding the float32 values of the file.
    """
    twice_max = 2.0 * ops.maximum(s1, s2)
    a1 = requantize_integer(k1 * 2.0**20, s1 / twice_max)
    a2 = requantize_integer(k2 * 2.0**20, s2 / twice_max)
    return requantize_integer(a1 - a2 if subtract else a1 + a2, twice_max / (2.0**20 * s_out))


def quantize_weights(kernel, axis: int | None = -1, num_bits: int = NUM_BITS):
    """Fake-quantize ``kernel``: symmetric, narrow range [-127, 127] (int8) or [-7, 7]
    (``num_bits=4``, TFLite's int4 weight scheme: each value is an integer in [-7, 7]
    times its channel's scale ``max|w| / 7``).

    With ``axis``, one scale per channel along it, ``scale_c = max|kernel[..., c]| / 127``
    (Conv2D, DepthwiseConv2D); with ``axis=None`` one scale for the whole kernel. The zero
    point is 0. The range is computed from the kernel without a gradient (the kernel
    itself gets the straight-through estimator).
    """
    if axis is None:
        reduce_axes = tuple(range(len(kernel.shape)))
    else:
        axis = axis % len(kernel.shape)
        reduce_axes = tuple(i for i in range(len(kernel.shape)) if i != axis)
    max_abs = ops.stop_gradient(ops.max(ops.abs(kernel), axis=reduce_axes))
    max_abs = ops.maximum(max_abs, MIN_RANGE)
    levels = weight_levels(num_bits)  # checks num_bits
    if levels < 127 and exporting() and not _INT4_EXPORT.get():
        # int8 file: the kernel rounded to its 4-bit grid, stored on an int8 grid with the
        # same step (range 127 steps), so the int8 values are the 4-bit integers.
        shape = [1] * len(kernel.shape)
        if axis is not None:
            shape[axis] = kernel.shape[axis]
        step = ops.reshape(max_abs / float(levels), shape) if axis is not None else max_abs / levels
        rounded = ops.clip(ops.floor(kernel / step + 0.5), -levels, levels) * step
        wide = max_abs * (127.0 / levels)
        return keras.quantizers.fake_quant_with_min_max_vars(
            rounded, -wide, wide, num_bits=NUM_BITS, narrow_range=True, axis=axis
        )
    return keras.quantizers.fake_quant_with_min_max_vars(
        kernel, -max_abs, max_abs, num_bits=num_bits, narrow_range=True, axis=axis
    )


def quantize_activations(x, range_min, range_max):
    """Fake-quantize ``x`` per tensor, asymmetric, with the real range [min, max].

    The range must contain 0 (TFLite's converter widens it otherwise, while TensorFlow's
    FakeQuant shifts it, and the two would disagree); :func:`batch_range` ensures this.
    """
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, range_min, range_max, num_bits=NUM_BITS, narrow_range=False
    )


def batch_range(x):
    """(min, max) of ``x`` widened to contain 0 and at least :data:`MIN_ACTIVATION_RANGE` wide."""
    x = ops.stop_gradient(ops.cast(x, "float32"))
    lo = ops.minimum(ops.min(x), 0.0)
    hi = ops.maximum(ops.max(x), 0.0)
    hi = ops.maximum(hi, lo + MIN_ACTIVATION_RANGE)
    return lo, hi


def scale_and_zero_point(range_min: float, range_max: float) -> tuple[float, int]:
    """The int8 (scale, zero_point) TFLite derives from a real range (for reports/tests)."""
    range_min, range_max = min(float(range_min), 0.0), max(float(range_max), 0.0)
    scale = (range_max - range_min) / 255.0
    zero_point = int(round(-128 - range_min / scale))
    return scale, max(-128, min(127, zero_point))
