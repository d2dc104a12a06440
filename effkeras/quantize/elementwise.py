"""Elementwise ops as TFLite's int8 kernels compute them.

:class:`QuantAdd` / :class:`QuantSubtract` are ``keras.layers.Add`` / ``Subtract`` that at
inference compute the int8 ADD / SUB kernel (:func:`~effkeras.quantize.quantizers.add_integer`)
onto the grid of the quantization that follows them.

:class:`ConstantOperation` is an elementwise op with a constant operand, as TFLite stores it.

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

from effkeras.quantize.quantizers import add_integer, exporting
from effkeras.quantize.ranges import PACKAGE, _grid_ref

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


class _Int8AddMixin:
    """The int8 ADD/SUB kernel at inference, onto the grid of the layer that quantizes the
    output (which links itself as ``_output_grid_ref`` when it is called symbolically)."""

    _effkeras_int8_add = True
    _subtract = False
    _input_refs = None
    _output_grid_ref = None

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if isinstance(inputs, list | tuple) and all(isinstance(t, keras.KerasTensor) for t in inputs):
            refs = tuple(_grid_ref(t) for t in inputs)
            ok = len(refs) == 2 and all(r is not None for r in refs)
            object.__setattr__(self, "_input_refs", refs if ok else None)
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None):
        y = None if training or exporting() else self._integer(inputs)
        return super().call(inputs) if y is None else y

    def _integer(self, inputs):
        if self._input_refs is None or self._output_grid_ref is None:
            return None
        target = self._output_grid_ref()
        sources = [ref() for ref in self._input_refs]
        if target is None or any(src is None for src in sources):
            return None
        if any(layer._range_mode is not None for layer in (target, *sources)):
            return None
        (s1, _), (s2, _) = (src.output_grid() for src in sources)
        s_out, z_out = target.output_grid()
        s1, s2, s_out, z_out = (ops.cast(v, "float64") for v in (s1, s2, s_out, z_out))
        k1 = ops.round(ops.cast(inputs[0], "float64") / s1)
        k2 = ops.round(ops.cast(inputs[1], "float64") / s2)
        q = add_integer(k1, k2, s1, s2, s_out, subtract=self._subtract)
        q = ops.clip(q + z_out, -128.0, 127.0)
        return ops.cast((q - z_out) * s_out, inputs[0].dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantAdd(_Int8AddMixin, keras.layers.Add):
    """``keras.layers.Add`` of two int8 tensors as TFLite's int8 ADD.

    Training and export see a plain Add. At inference, when both inputs are on known
    int8 grids and a quantization layer consumes the output, it computes the kernel:
    each input shifted left by 20 bits and rescaled, the sum requantized, each step with
    TFLite's fixed-point rounding. Rounding the real sum once instead puts exact ties
    (an output scale twice an input's, as in NASNet's cells) on either side at random.
    """


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantSubtract(_Int8AddMixin, keras.layers.Subtract):
    """``keras.layers.Subtract`` of two int8 tensors as TFLite's int8 SUB (see
    :class:`QuantAdd`)."""

    _subtract = True
