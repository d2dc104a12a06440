"""Keras 3 layers that simulate TFLite int8 inference while they train.

- :class:`QuantizeActivation` fake-quantizes a tensor per tensor, asymmetric, with a
  moving-average range (or a fixed one: softmax, logistic, tanh). It stands where TFLite
  keeps a tensor: the model input, the output of ADD, CONCATENATION, pooling, ...
- :class:`QuantConv2D`, :class:`QuantDepthwiseConv2D` and :class:`QuantDense` are one
  TFLite op each: the linear op, its bias, an optional batch normalization folded into
  the kernel, and a fused ReLU/ReLU6, followed by the fake quantization of the output.

The code is split by concept; this module gathers it, and every name stays importable
from here:

- :mod:`effkeras.quantize.ranges`: activation ranges, the link to the input's grid
  (:data:`SHARED_SCALE`), :class:`QuantizeActivation`, the serialization :data:`PACKAGE`;
- :mod:`effkeras.quantize.folded`: the batch-norm-folding base of the linear layers
  (``_FoldedLayer``), with the notes on folding;
- :mod:`effkeras.quantize.linear`: :class:`QuantConv2D`, :class:`QuantDepthwiseConv2D`,
  :class:`QuantDense`;
- :mod:`effkeras.quantize.pooling`: :class:`QuantGlobalAveragePooling2D`.

Batch norm is folded into the kernel before the weights are fake-quantized, the way
TFLite stores it, with one convolution per training step (see
:mod:`effkeras.quantize.folded`).

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

from effkeras.quantize.folded import ACTIVATIONS
from effkeras.quantize.linear import QuantConv2D, QuantDense, QuantDepthwiseConv2D
from effkeras.quantize.pooling import QuantGlobalAveragePooling2D
from effkeras.quantize.ranges import (
    PACKAGE,
    RANGE_MODES,
    SHARED_SCALE,
    QuantizeActivation,
)

__all__ = [
    "ACTIVATIONS",
    "PACKAGE",
    "QUANT_LAYERS",
    "RANGE_MODES",
    "SHARED_SCALE",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantGlobalAveragePooling2D",
    "QuantizeActivation",
]

#: Every effkeras QAT layer class (what :func:`effkeras.quantize.register` registers).
QUANT_LAYERS = (
    QuantizeActivation, QuantConv2D, QuantDepthwiseConv2D, QuantDense,
    QuantGlobalAveragePooling2D,
)
