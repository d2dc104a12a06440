"""Elementwise ops with a constant operand, as TFLite stores them: :class:`ConstantOperation`.

Rescaling, Normalization, a batch normalization that does not follow a convolution, and
``x + 3`` / ``x * (1 / 6)`` in hard-sigmoid become int8 ADD and MUL ops whose constant
operand the converter quantizes per tensor, asymmetric, over ``[min(c, 0), max(c, 0)]``
(the activation scheme). :func:`converter_constant` is that rounding, so the Keras model
computes with the constant the int8 file holds.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.quantize.ranges import PACKAGE

OPERATIONS = ("add", "multiply")


def converter_constant(value: Any) -> np.ndarray:
    """The real values an int8 ADD/MUL constant operand holds after conversion."""
    c = np.asarray(value, dtype="float64")
    lo, hi = min(float(c.min()), 0.0), max(float(c.max()), 0.0)
    if hi - lo <= 0:
        return c.astype("float32")
    scale = (hi - lo) / 255.0
    zero = np.clip(np.round(-128.0 - lo / scale), -128, 127)
    q = np.clip(np.round(c / scale + zero), -128, 127)
    return ((q - zero) * scale).astype("float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConstantOperation(keras.layers.Layer):
    """``x + c`` or ``x * c`` with a constant ``c`` (a scalar or one value per channel).

    The constant is rounded to the int8 grid the converter gives it
    (:func:`converter_constant`); the output is float and is quantized by the
    :class:`~effkeras.quantize.QuantizeActivation` that follows (TFLite's ADD/MUL output).

    Args:
        operation: ``"add"`` or ``"multiply"``.
        value: the constant, broadcast against the last axis.
        **kwargs: base ``Layer`` arguments (``name``, ...).
    """

    def __init__(self, operation: str, value: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if operation not in OPERATIONS:
            raise ValueError(
                f"operation must be one of {OPERATIONS}. Received: operation={operation!r}"
            )
        array = np.asarray(value, dtype="float32")
        if array.ndim > 1 or array.size == 0 or not np.all(np.isfinite(array)):
            raise ValueError(
                f"value must be a finite scalar or a 1-D list of per-channel values. "
                f"Received: value={value!r}"
            )
        self.operation = operation
        self.value = array.tolist()
        self._constant = converter_constant(array)

    def call(self, inputs):
        c = ops.convert_to_tensor(self._constant, dtype=inputs.dtype)
        return inputs + c if self.operation == "add" else inputs * c

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        return {**base_config, "operation": self.operation, "value": self.value}
