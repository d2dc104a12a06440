"""Quantization-aware training (QAT) and post-training quantization (PTQ) for Keras 3.

The model trained is the model TFLite runs: batch norm is folded into the kernel before
the weights are fake-quantized (per output channel for convolutions), activations are
quantized only where TFLite keeps a tensor, and softmax/logistic/tanh use TFLite's fixed
output ranges. :func:`effkeras.convert.to_tflite` then converts the result to int8 with
no representative data::

    import effkeras
    from effkeras.quantize import quantize_model

    ptq = quantize_model(model, calibration_data=x_train[:500])          # PTQ
    qat = quantize_model(model, calibration_data=x_train[:500])          # QAT ...
    qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    qat.fit(x_train, y_train, epochs=3, callbacks=[
        effkeras.callbacks.FreezeBatchNorm(epoch=2),
        effkeras.callbacks.FreezeQuantRanges(epoch=2),
    ])
    tflite = effkeras.convert.to_tflite(qat, quantize="int8")

At inference (``predict``, ``evaluate``) the quantization layers compute what the int8
kernels compute, rounding included (int32 bias, TFLite's fixed-point requantization,
the integer MEAN of global average pooling), so the Keras model's predictions equal
TFLite Micro's and LiteRT's reference kernels' element for element on the models tested
(>= 99.9% of outputs), instead of agreeing within one step.

Per-layer control uses tensorflow-model-optimization's names (a tfmot script migrates by
changing its imports): :func:`quantize_annotate_layer`, :func:`quantize_annotate_model`,
:func:`quantize_apply`, :func:`quantize_scope` and :class:`QuantizeConfig` (weight bits 8
or 4, per channel or per tensor, or ``leave_float``); :func:`register_rule` is the one
place where a layer class of your own gets its int8 rule (see
:mod:`effkeras.quantize.config`). ``quantize_model(..., weight_bits=4)`` trains int4
weights (symmetric per channel, [-7, 7]); :func:`weight_bits` reads each layer's.

Importing this module registers the layers with Keras serialization (package
``"effkeras"``), so ``keras.saving.load_model`` needs no ``custom_objects``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from effkeras.errors import QuantizationError
from effkeras.quantize.config import (
    RULE_KINDS,
    QuantizeConfig,
    quantize_annotate_layer,
    quantize_annotate_model,
    quantize_apply,
    quantize_scope,
    register_rule,
)
from effkeras.quantize.elementwise import ConstantOperation, QuantAdd, QuantSubtract
from effkeras.quantize.layers import (
    QUANT_LAYERS,
    QuantConv2D,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantGlobalAveragePooling2D,
    QuantizeActivation,
)
from effkeras.quantize.pooling import QuantAveragePooling2D
from effkeras.quantize.quantizers import (
    FIXED_OUTPUT_RANGES,
    WEIGHT_BITS,
    export_graph,
    quantize_activations,
    quantize_weights,
    requantize,
    scale_and_zero_point,
)
from effkeras.quantize.transform import QuantizationReport, rewrite

__all__ = [
    "FIXED_OUTPUT_RANGES",
    "RULE_KINDS",
    "WEIGHT_BITS",
    "ConstantOperation",
    "QuantAdd",
    "QuantAveragePooling2D",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantGlobalAveragePooling2D",
    "QuantSubtract",
    "QuantizationReport",
    "QuantizeActivation",
    "QuantizeConfig",
    "calibrate",
    "export_graph",
    "quantization_layers",
    "quantize_activations",
    "quantize_annotate_layer",
    "quantize_annotate_model",
    "quantize_apply",
    "quantize_model",
    "quantize_scope",
    "quantize_weights",
    "register",
    "register_rule",
    "requantize",
    "report",
    "scale_and_zero_point",
    "weight_bits",
]

_REPORT_ATTR = "_effkeras_quantization_report"


def register() -> dict[str, type]:
    """Make sure the QAT layers are registered with Keras serialization.

    Importing :mod:`effkeras.quantize` already registers them; this returns the
    ``{registered name: class}`` mapping (usable as ``custom_objects``) and is a no-op
    otherwise.
    """
    classes = (*QUANT_LAYERS, QuantAveragePooling2D, ConstantOperation, QuantAdd, QuantSubtract)
    return {keras.saving.get_registered_name(cls): cls for cls in classes}


def quantization_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every effkeras quantization layer inside ``model`` (nested models included)."""
    found = model._flatten_layers(include_self=False, recursive=True)
    return [layer for layer in found if isinstance(layer, QUANT_LAYERS)]


def quantize_model(
    model: keras.Model,
    fold_batchnorm: bool = True,
    *,
    calibration_data: Any = None,
    strict: bool = False,
    range_momentum: float = 0.99,
    batch_size: int = 32,
    per_channel: bool = True,
    weight_bits: int = 8,
    annotated_only: bool = False,
) -> keras.Model:
    """Rewrite ``model`` into its quantization-aware twin, keeping its trained weights.

    Args:
        model: a built Sequential or functional Keras 3 model (models nested as layers
            and residual Add/Concatenate graphs included). Subclassed models cannot be
            rewritten.
        fold_batchnorm: fold each BatchNormalization that follows a Conv2D, Depthwise-
            or SeparableConv2D or Dense into it *with* batch statistics while training
            (Jacob et al. 2018): the folded kernel is quantized, the output corrected by
            ``sigma_moving / sigma_batch`` until :class:`effkeras.callbacks.FreezeBatchNorm`.
            ``False`` folds the moving statistics into kernel and bias once, now, and
            trains a plain quantized convolution (no batch statistics).
        calibration_data: inputs (array, ``tf.data.Dataset`` of ``x`` or ``(x, y)``, or
            an iterable of batches) to set every activation range from its min and max
            before returning: the result is then a post-training-quantized model ready
            for ``to_tflite(..., quantize="int8")``, and a good start for QAT. Without
            it the ranges are set by the first training batch.
        strict: raise :class:`effkeras.errors.QuantizationError` naming the first layer
            that cannot be quantized, instead of leaving it in float with a warning.
        range_momentum: momentum of the activation ranges' moving averages.
        batch_size: batch size for the calibration pass.
        per_channel: quantize Conv2D and DepthwiseConv2D kernels with one scale per
            output channel (TFLite's default) or, with ``False``, one scale per kernel.
            Per-tensor weights save 24 bytes of quantization parameters per output
            channel in the .tflite file (scale and int64 zero point, for the kernel and
            for the int32 bias), at some accuracy cost that QAT mostly recovers.
            ``to_tflite`` keeps the granularity chosen here. Dense kernels are per
            tensor either way (see :mod:`effkeras.quantize.quantizers`).

    Returns:
        A new ``keras.Model`` (not compiled). :func:`report` tells what was quantized.

    Raises:
        QuantizationError: subclassed or unbuilt model; an unsupported layer with
            ``strict=True``.
    """
    if not isinstance(fold_batchnorm, bool):
        raise QuantizationError(
            f"fold_batchnorm must be True or False. Received: fold_batchnorm={fold_batchnorm!r}"
        )
    if not isinstance(per_channel, bool):
        raise QuantizationError(
            f"per_channel must be True or False. Received: per_channel={per_channel!r}"
        )
    if weight_bits not in WEIGHT_BITS or isinstance(weight_bits, bool):
        raise QuantizationError(
            f"weight_bits must be one of {WEIGHT_BITS}. Received: weight_bits={weight_bits!r}"
        )
    qmodel, rep = rewrite(
        model, fold_batchnorm=fold_batchnorm, strict=bool(strict), range_momentum=range_momentum,
        per_channel=per_channel, weight_bits=weight_bits, annotated_only=bool(annotated_only),
    )
    setattr(qmodel, _REPORT_ATTR, rep)
    if calibration_data is not None:
        calibrate(qmodel, calibration_data, batch_size=batch_size)
    return qmodel


def _batches(data: Any, batch_size: int) -> Iterable[Any]:
    if isinstance(data, np.ndarray) or hasattr(data, "__array__") and not hasattr(
        data, "element_spec"
    ):
        arr = np.asarray(data, dtype="float32")
        for start in range(0, len(arr), batch_size):
            yield arr[start : start + batch_size]
        return
    for item in data:
        if isinstance(item, tuple | list) and len(item) in (2, 3) and not isinstance(
            item[0], int | float
        ):
            item = item[0]
        yield item


def calibrate(
    model: keras.Model, data: Any, *, batch_size: int = 32, max_batches: int | None = None
) -> keras.Model:
    """Set every activation range of a quantized model to the min/max seen on ``data``.

    This is post-training quantization, as the TFLite converter calibrates; batch-norm
    statistics and weights do not change.

    Args:
        model: a model from :func:`quantize_model`.
        data: inputs as for ``quantize_model(calibration_data=...)``.
        batch_size: batch size when ``data`` is an array.
        max_batches: stop after this many batches.

    Returns:
        ``model``, calibrated in place.
    """
    layers = [
        layer for layer in quantization_layers(model)
        if getattr(layer, "_fixed_range", None) is None and hasattr(layer, "range_seen")
    ]
    if not layers:
        raise QuantizationError(
            f"Model {model.name!r} has no effkeras quantization layers to calibrate; "
            f"call effkeras.quantize.quantize_model(model) first."
        )
    for layer in layers:
        layer.range_seen.assign(0.0)
        layer._range_mode = "calibrate"
    seen = 0
    try:
        for batch in _batches(data, batch_size):
            model(batch, training=False)
            seen += 1
            if max_batches is not None and seen >= max_batches:
                break
    finally:
        for layer in layers:
            layer._range_mode = None
    if not seen:
        raise QuantizationError("calibrate() received no data: pass at least one batch.")
    return model


def weight_bits(model: keras.Model) -> dict[str, int]:
    """``{layer name: weight bits}`` of every quantized linear layer (attribute
    ``layer.weight_bits`` of QuantConv2D/QuantDepthwiseConv2D/QuantDense: 8 or 4)."""
    return {
        layer.name: int(layer.weight_bits)
        for layer in quantization_layers(model)
        if hasattr(layer, "weight_bits")
    }


def report(model: keras.Model) -> QuantizationReport:
    """What is quantized and what stays float in a model from :func:`quantize_model`.

    For a model loaded from a file (where the rewrite's record is gone) the report is
    rebuilt from the layers: effkeras quantization layers are int8, and every other
    layer with weights is listed as float.
    """
    rep = getattr(model, _REPORT_ATTR, None)
    if rep is not None:
        return rep
    if not quantization_layers(model):
        raise QuantizationError(
            f"Model {model.name!r} has no effkeras quantization layers: report() describes "
            f"a model returned by effkeras.quantize.quantize_model(model)."
        )
    rep = QuantizationReport()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, QUANT_LAYERS):
            rep.quantized.append(layer.name)
        elif layer.weights and not isinstance(layer, keras.Model):
            rep.float_layers[layer.name] = f"{type(layer).__name__} is not an effkeras layer"
    return rep
