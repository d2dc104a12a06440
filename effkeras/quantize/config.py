"""Per-layer quantization control, with tensorflow-model-optimization's names.

A tfmot script migrates by changing its imports::

    # before: quantize_annotate_layer = tfmot.quantization.keras.quantize_annotate_layer
    from effkeras.quantize import (
        QuantizeConfig, quantize_annotate_layer, quantize_annotate_model, quantize_apply,
        quantize_scope,
    )

    inputs = keras.Input((32, 32, 3))
    x = quantize_annotate_layer(keras.layers.Conv2D(16, 3))(inputs)          # int8
    x = quantize_annotate_layer(keras.layers.Conv2D(16, 3),
                                QuantizeConfig(weight_bits=4))(x)             # int4 weights
    x = quantize_annotate_layer(MyLayer(), QuantizeConfig(leave_float=True))(x)  # float
    model = quantize_apply(keras.Model(inputs, ...))   # only annotated layers quantized

An annotation is a :class:`QuantizeConfig` stored on the layer (attribute
``_effkeras_quantize_config``); no wrapper layer and no methods are patched in.

:func:`register_rule` is THE place where a layer class of your own gets its int8 rule
(subclasses inherit it): ``"shared_scale"`` (its output keeps its input's scale: reshapes,
slicing, padding), ``"output_range"`` (TFLite runs it in int8 with a range of its own
output: elementwise ops; the layer itself runs unchanged), ``"softmax"``/``"sigmoid"``/
``"tanh"`` (fixed output ranges) or ``"float"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras

from effkeras.errors import QuantizationError
from effkeras.quantize.quantizers import WEIGHT_BITS

CONFIG_ATTR = "_effkeras_quantize_config"
RULE_KINDS = ("shared_scale", "output_range", "softmax", "sigmoid", "tanh", "float")
_RULES: dict[type, str] = {}


class QuantizeConfig:
    """How one layer is quantized.

    Args:
        weight_bits: 8 (int8, [-127, 127]) or 4 (int4, [-7, 7]: TFLite's int4 scheme,
            symmetric per channel) for Conv2D, DepthwiseConv2D, SeparableConv2D and Dense
            kernels. ``None`` takes ``quantize_model(weight_bits=...)``.
        per_channel: one weight scale per output channel (``True``) or per kernel
            (``False``); ``None`` takes ``quantize_model(per_channel=...)``. Dense kernels
            are per tensor either way (the converter's limit).
        symmetric: weights are symmetric with zero point 0 in TFLite, so only ``True``
            exists; activations are asymmetric per tensor, as TFLite's int8 spec says.
        activation_bits: 8 only (TFLite's int8 activations).
        leave_float: keep the layer in float (the converter then leaves its op float;
            ``to_tflite(..., allow_float_ops=True)`` accepts it).
    """

    def __init__(
        self,
        weight_bits: int | None = None,
        per_channel: bool | None = None,
        symmetric: bool = True,
        activation_bits: int = 8,
        leave_float: bool = False,
    ):
        if weight_bits is not None and (weight_bits not in WEIGHT_BITS or isinstance(weight_bits, bool)):
            raise QuantizationError(
                f"weight_bits must be one of {WEIGHT_BITS} or None. Received: weight_bits={weight_bits!r}"
            )
        if per_channel is not None and not isinstance(per_channel, bool):
            raise QuantizationError(
                f"per_channel must be True, False or None. Received: per_channel={per_channel!r}"
            )
        if symmetric is not True:
            raise QuantizationError(
                f"TFLite stores weights symmetric (zero point 0); asymmetric weights have no "
                f"int8 kernel. Received: symmetric={symmetric!r}. Leave symmetric=True "
                f"(activations are asymmetric already)."
            )
        if activation_bits != 8:
            raise QuantizationError(
                f"activation_bits must be 8 (TFLite's int8 activations; for int16 activations "
                f"convert with to_tflite(..., quantize='int16x8') instead). Received: "
                f"activation_bits={activation_bits!r}"
            )
        self.weight_bits = weight_bits
        self.per_channel = per_channel
        self.symmetric = True
        self.activation_bits = 8
        self.leave_float = bool(leave_float)

    def get_config(self) -> dict[str, Any]:
        return {
            "weight_bits": self.weight_bits,
            "per_channel": self.per_channel,
            "symmetric": self.symmetric,
            "activation_bits": self.activation_bits,
            "leave_float": self.leave_float,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QuantizeConfig:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantizeConfig) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"QuantizeConfig({args})"


def quantize_annotate_layer(
    to_annotate: keras.layers.Layer, quantize_config: QuantizeConfig | None = None
) -> keras.layers.Layer:
    """Mark ``to_annotate`` for quantization (with ``quantize_config``, default int8).

    Returns the same layer, so it is used as tfmot's: ``quantize_annotate_layer(Dense(10))``.
    """
    if not isinstance(to_annotate, keras.layers.Layer):
        raise QuantizationError(
            f"quantize_annotate_layer expects a keras.layers.Layer (Keras 3). Received: "
            f"to_annotate={type(to_annotate).__module__}.{type(to_annotate).__name__}"
        )
    if quantize_config is None:
        quantize_config = QuantizeConfig()
    if not isinstance(quantize_config, QuantizeConfig):
        raise QuantizationError(
            f"quantize_config must be an effkeras.quantize.QuantizeConfig. Received: "
            f"quantize_config={quantize_config!r}"
        )
    object.__setattr__(to_annotate, CONFIG_ATTR, quantize_config)
    return to_annotate


def quantize_annotate_model(to_annotate: keras.Model) -> keras.Model:
    """Mark every layer of a functional or Sequential model (not yet annotated) for int8."""
    if not isinstance(to_annotate, keras.Model):
        raise QuantizationError(
            f"quantize_annotate_model expects a keras.Model. Received: {type(to_annotate).__name__}"
        )
    for layer in to_annotate._flatten_layers(include_self=False, recursive=True):
        if getattr(layer, CONFIG_ATTR, None) is None:
            quantize_annotate_layer(layer)
    return to_annotate


def annotation(layer: Any) -> QuantizeConfig | None:
    """The :class:`QuantizeConfig` a layer was annotated with, or None."""
    return getattr(layer, CONFIG_ATTR, None)


def is_annotated(model: keras.Model) -> bool:
    """True when some layer of ``model`` carries an annotation."""
    return any(
        annotation(layer) is not None
        for layer in model._flatten_layers(include_self=False, recursive=True)
    )


def quantize_apply(model: keras.Model, scheme: Any = None, **kwargs: Any) -> keras.Model:
    """Quantize the annotated layers of ``model`` (tfmot's ``quantize_apply``).

    Layers that are not annotated stay float (as tfmot does), except layers without
    arithmetic of their own (reshapes, padding, dropout) which keep their input's
    grid. ``kwargs`` go to :func:`effkeras.quantize.quantize_model` (``calibration_data``,
    ``weight_bits``, ``fold_batchnorm``...). ``scheme`` exists for tfmot compatibility and
    must be None (effkeras has one scheme: TFLite's int8).
    """
    from effkeras.quantize import quantize_model

    if scheme is not None:
        raise QuantizationError(
            f"effkeras has one quantization scheme (TFLite int8, batch norm folded); pass "
            f"scheme=None. Received: scheme={scheme!r}"
        )
    if not is_annotated(model):
        raise QuantizationError(
            f"Model {model.name!r} has no annotated layer: wrap layers with "
            f"quantize_annotate_layer(...) or the model with quantize_annotate_model(model) "
            f"first, or call quantize_model(model) to quantize everything."
        )
    return quantize_model(model, annotated_only=True, **kwargs)


def register_rule(layer_class: type, kind: str) -> None:
    """Give a layer class of your own (and its subclasses) an int8 rule.

    Args:
        layer_class: a ``keras.layers.Layer`` subclass.
        kind: one of :data:`RULE_KINDS`: ``"shared_scale"`` (output on the input's grid,
            e.g. a custom reshape or crop), ``"output_range"`` (int8 with its own output
            range: the layer runs unchanged on int8 inputs and its output is quantized),
            ``"softmax"``/``"sigmoid"``/``"tanh"`` (TFLite's fixed output ranges), or
            ``"float"`` (always left float, without a warning).
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise QuantizationError(
            f"register_rule expects a keras.layers.Layer subclass. Received: layer_class={layer_class!r}"
        )
    if kind not in RULE_KINDS:
        raise QuantizationError(f"kind must be one of {RULE_KINDS}. Received: kind={kind!r}")
    _RULES[layer_class] = kind


def registered_rule(layer: Any) -> str | None:
    """The rule registered for ``layer``'s class or its nearest registered base class."""
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


@contextlib.contextmanager
def quantize_scope(*args: dict[str, Any]) -> Iterator[None]:
    """Load quantized models inside it (tfmot's ``quantize_scope``).

    Importing :mod:`effkeras.quantize` already registers its layers, so this only adds
    the custom objects of ``args`` (dicts of ``{name: class}``).
    """
    from effkeras.quantize import register

    objects = dict(register())
    for extra in args:
        objects.update(extra)
    with keras.saving.custom_object_scope(objects):
        yield
