"""Keras 3 model -> .tflite bytes (float32, float16, dynamic-range, full int8, int16x8).

The model is exported as a SavedModel with a fixed batch size (1 by default: what TFLite
Micro needs, and it keeps shape-computing ops such as SHAPE/PACK out of the graph), then
converted with the TFLite converter. Conversion is deterministic: the same model converts
to the same bytes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from effkeras._capture import capture_fds
from effkeras.convert.calibration import calibration_samples
from effkeras.convert.flatbuffer import read_tflite
from effkeras.errors import ConversionError, FloatOpsError, InvalidModelError

QUANTIZE_MODES = (None, "float16", "dynamic", "int8", "int16x8")
_IO_DTYPES = {
    None: (None, "float32"),
    "float16": (None, "float32"),
    "dynamic": (None, "float32"),
    "int8": (None, "float32", "int8", "uint8"),
    "int16x8": (None, "float32", "int16"),
}


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def model_input_specs(model: Any) -> tuple[list[tuple], list[str]] | None:
    """(shapes, dtypes) of a Keras model's inputs, batch first; None if unknown."""
    inputs = None
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        return None
    shapes = [tuple(None if d is None else int(d) for d in t.shape) for t in inputs]
    dtypes = [str(getattr(t, "dtype", "float32")) for t in inputs]
    return shapes, dtypes


def _resolve_inputs(model, input_shape, representative_data):
    specs = model_input_specs(model)
    if specs is not None:
        return specs
    if input_shape is not None:
        shapes = input_shape if isinstance(input_shape[0], list | tuple) else [input_shape]
        return [(None, *(int(d) for d in s)) for s in shapes], ["float32"] * len(shapes)
    if isinstance(representative_data, np.ndarray) and representative_data.ndim >= 2:
        return [(None, *representative_data.shape[1:])], ["float32"]
    raise InvalidModelError(
        f"Cannot tell the input shape of {type(model).__name__} (a subclassed model "
        f"without Input layers). Pass input_shape=(...) without the batch dimension, "
        f"for example input_shape=(28, 28, 1)."
    )


def is_quantization_aware(model: Any) -> bool:
    """True when ``model`` holds effkeras quantization layers (``effkeras.quantize``).

    Such a model carries its own activation ranges (fake-quantization ops), so int8
    conversion needs no representative data. Layers mark themselves with a class
    attribute ``_effkeras_quantized``; this module does not import them.
    """
    try:
        layers = list(model._flatten_layers(include_self=False, recursive=True))
    except (AttributeError, TypeError):
        layers = list(getattr(model, "layers", []))
    return any(getattr(type(layer), "_effkeras_quantized", False) for layer in layers)


def _fake_quant_only(model: Any):
    """Context in which effkeras quantization layers trace only their FakeQuant ops.

    At inference they also simulate the int8 kernels' rounding, with ops the converter
    must not see; :func:`effkeras.quantize.export_graph` turns that off while exporting.
    """
    import contextlib

    if not is_quantization_aware(model):
        return contextlib.nullcontext()
    from effkeras.quantize.quantizers import export_graph

    return export_graph()


def _load_if_path(model: Any):
    if isinstance(model, str | os.PathLike):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise InvalidModelError(f"No such model file: {path!r}.")
        keras = _keras()
        try:
            return keras.saving.load_model(path)
        except Exception as exc:
            raise InvalidModelError(
                f"{path!r} could not be loaded as a Keras model ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Pass a .keras or .h5 file saved with model.save()."
            ) from None
    return model


def to_tflite(
    model: Any,
    quantize: str | None = None,
    representative_data: Any = None,
    io_dtype: str | None = None,
    *,
    allow_float_ops: bool = False,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 1,
    max_calibration_samples: int = 500,
    sparse: bool = False,
    strip_names: bool = False,
    per_channel: bool | None = None,
    projector: Any = None,
    int4: bool = False,
    compress: bool = False,
    dense_per_channel: bool = False,
) -> bytes:
    """Convert a Keras 3 model to a .tflite flatbuffer.

    Args:
        model: a ``keras.Model`` (Sequential, functional or subclassed) or a path to a
            ``.keras``/``.h5`` file.
        quantize: ``None`` (float32), ``"float16"`` (float16 weights), ``"dynamic"``
            (int8 weights, float activations), ``"int8"`` (full integer: int8 weights
            and activations, int32 bias) or ``"int16x8"`` (int16 activations, int8
            weights).
        representative_data: calibration inputs, needed by ``"int8"`` and
            ``"int16x8"`` (but not by ``"int8"`` for a model from
            :func:`effkeras.quantize.quantize_model`, whose fake-quantization ops carry
            the ranges; it is then ignored): a numpy array ``(N, *input_shape)``, a ``tf.data.Dataset`` of
            ``x`` or ``(x, y)``, or an iterable of batches. Checked against the model input.
        io_dtype: dtype of the model's inputs and outputs: ``None``/``"float32"``
            (quantize/dequantize inside the model), ``"int8"`` or ``"uint8"`` (full
            integer I/O for microcontrollers; with ``"int8"``), ``"int16"`` (with
            ``"int16x8"``).
        allow_float_ops: with ``"int8"``, accept operators the converter could not
            quantize (they stay in float). By default such a model raises
            :class:`FloatOpsError` naming them.
        input_shape: input shape without batch, for subclassed models that have no
            ``Input`` layer (or a list of shapes for several inputs).
        batch_size: the fixed batch size of the converted model (1 for microcontrollers).
        max_calibration_samples: at most this many representative samples are used.
        sparse: also store pruned weights in TFLite's sparse format
            (``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``; see :mod:`effkeras.prune`).
            LiteRT's XNNPACK delegate does not run such models; use ``kernels="builtin"``.
            TensorFlow Lite Micro cannot run them at all (no ``DENSIFY`` kernel, no
            sparse tensors): for a microcontroller keep ``sparse=False``, where a pruned
            model's zeros still shrink it under gzip (:func:`effkeras.profile` reports
            both sizes).
        strip_names: rename every intermediate tensor ``t<index>``
            (:func:`~effkeras.convert.strip_tensor_names`): the converter names tensors
            after Keras scope paths, a third of a 15 KB int8 model. Input/output names,
            weights and results are unchanged.
        per_channel: weight quantization granularity of CONV_2D and DEPTHWISE_CONV_2D
            with ``"int8"`` and ``"dynamic"``: ``None`` (default) and
            ``True`` give one scale per output channel, ``False`` one per tensor, which
            saves 24 bytes per output channel (scale and int64 zero point of the kernel
            and of the bias; about 10% of a 50 KB int8 ResNet) at some accuracy cost.
            A model from :func:`effkeras.quantize.quantize_model` keeps the granularity
            it was built with (``quantize_model(..., per_channel=False)``); passing the
            other one raises.
        projector: for a projection text model, the
            :class:`~effkeras.deploy.featurizer.Projector` whose output is the model's input.
            It is stored in the file's metadata (entry ``"effkeras.projector"``), so
            :func:`effkeras.deploy.text_sketch` and ``effkeras sketch`` need nothing but
            the file. Taken automatically from a model built by
            :func:`effkeras.text.build_sgnn` / :func:`~effkeras.text.build_prado`; a
            :func:`effkeras.text.text_model` (strings in) converts as the model it wraps,
            with its ``StringProjection``'s projector. Models without a projector convert
            to the same bytes as before.
        dense_per_channel: with ``"int8"``, give FULLY_CONNECTED filters one scale per
            output channel (TF 2.16+'s default). ``False`` (default): one scale per tensor,
            as effkeras's QAT Dense simulates and as the 2023 Arduino TFLM library
            computes it (its FULLY_CONNECTED uses the first channel's scale for all, so a
            per-channel dense filter gives wrong outputs there). Conv filters follow
            ``per_channel``.
        int4: with ``"int8"``, store the filters whose values lie in [-7, 7] (a model
            trained with ``quantize_model(..., weight_bits=4)``) as INT4, two values a byte
            (:func:`effkeras.convert.int4.to_int4`, other filters stay int8).
        compress: with ``"int8"``, TFLM look-up-table compression of filters with few
            distinct values per channel (clustered models,
            :func:`effkeras.convert.compress.compress_tflite`). The file then needs a TFLM
            with the DECODE kernel; the 2023 Arduino library cannot run it.

    Returns:
        The .tflite model as bytes.

    Raises:
        ValueError subclasses from :mod:`effkeras.errors` naming what was wrong.
    """
    if quantize not in QUANTIZE_MODES:
        raise ConversionError(
            f"quantize must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}"
        )
    if io_dtype not in _IO_DTYPES[quantize]:
        raise ConversionError(
            f"io_dtype={io_dtype!r} is not available with quantize={quantize!r}; choose one "
            f"of {_IO_DTYPES[quantize]}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConversionError(f"batch_size must be a positive integer. Received: {batch_size!r}")
    for flag, value in (("int4", int4), ("compress", compress)):
        if value and quantize != "int8":
            raise ConversionError(f"{flag}=True rewrites the filters of a full-integer file: "
                                  f"use quantize='int8'. Received: quantize={quantize!r}")
    keras = _keras()
    model = _load_if_path(model)
    if not isinstance(model, keras.Model):
        raise InvalidModelError(
            f"Expected a keras.Model (Keras 3). Received: {type(model).__module__}."
            f"{type(model).__name__}. tf_keras models are not supported; rebuild the model "
            f"with `import keras`."
        )
    model, projector = _projection_model(model, projector)
    shapes, dtypes = _resolve_inputs(model, input_shape, representative_data)
    if not model.built:
        raise InvalidModelError(
            f"Model {model.name!r} is not built: call it on a batch of data (or build it) "
            f"before converting."
        )

    samples = None
    qat = quantize == "int8" and is_quantization_aware(model)
    _check_per_channel(model, quantize, per_channel, qat)
    needs_calibration = quantize in ("int8", "int16x8") and not qat
    if needs_calibration:
        if representative_data is None:
            raise ConversionError(
                f"quantize={quantize!r} needs representative_data to calibrate activation "
                f"ranges: pass 100-500 training inputs, e.g. representative_data=x_train[:200]."
            )
        samples = calibration_samples(representative_data, shapes, dtypes, max_calibration_samples)

    import tensorflow as tf

    signature = [
        keras.InputSpec(shape=(batch_size, *s[1:]), dtype=d)
        for s, d in zip(shapes, dtypes, strict=True)
    ]
    if any(dim is None for s in shapes for dim in s[1:]):
        raise InvalidModelError(
            f"Model {model.name!r} has unknown input dimensions {shapes}; TFLite for "
            f"microcontrollers needs static shapes. Give the Input layer a full shape."
        )

    # TensorFlow logs "Assets written to ..." through Python logging during the export;
    # keep it (and the converter's C++ chatter, captured below) out of the user's output.
    tf_logger = logging.getLogger("tensorflow")
    saved_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="effkeras_export_") as tmp, capture_fds() as log:
        try:
            export_sig = signature if len(signature) > 1 else [signature[0]]
            with _fake_quant_only(model):
                model.export(
                    tmp, format="tf_saved_model", input_signature=export_sig, verbose=False
                )
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            _configure(converter, tf, quantize, io_dtype, samples, batch_size, sparse)
            if per_channel is False and not qat:
                # The converter's only switch for per-tensor weights (TF 2.x): a private
                # attribute, checked so that a TensorFlow without it fails loudly.
                if not hasattr(converter, "_experimental_disable_per_channel"):
                    raise ConversionError(
                        f"This TensorFlow ({tf.__version__}) converter has no per-tensor weight "
                        f"option; convert with per_channel=None."
                    )
                converter._experimental_disable_per_channel = True
            if quantize == "int8" and not dense_per_channel:
                flag = "_experimental_disable_per_channel_quantization_for_dense_layers"
                if not hasattr(converter, flag):
                    raise ConversionError(
                        f"This TensorFlow ({tf.__version__}) converter has no per-tensor "
                        f"dense option; convert with dense_per_channel=True (the 2023 "
                        f"Arduino TFLM library computes such dense layers wrongly)."
                    )
                setattr(converter, flag, True)
            data = converter.convert()
        except Exception as exc:
            err = exc
        else:
            err = None
    tf_logger.setLevel(saved_level)
    if err is not None:
        tail = "\n".join(line for line in log.text.splitlines()[-15:] if "error" in line.lower())
        raise ConversionError(
            f"The TFLite converter failed on model {model.name!r} with quantize={quantize!r}: "
            f"{type(err).__name__}: {str(err)[:600]}" + (f"\nConverter log:\n{tail}" if tail else "")
        ) from None

    parsed = read_tflite(data)
    if quantize == "int8" and not allow_float_ops:
        floats = parsed.float_ops()
        if floats:
            names = sorted({op.name for op in floats})
            raise FloatOpsError(
                f"Full-integer conversion of {model.name!r} left {len(floats)} float "
                f"operator(s): {', '.join(names)}. Replace the layers that produce them, or "
                f"pass allow_float_ops=True to keep them in float (microcontrollers without "
                f"an FPU will run them slowly, and TFLM may lack float kernels).",
                names,
            )
    if strip_names:
        from effkeras.convert.names import strip_tensor_names

        data = strip_tensor_names(data)
    if int4:
        from effkeras.convert.int4 import to_int4

        data = to_int4(bytes(data), strict=False)
    if compress:
        from effkeras.convert.compress import compress_tflite

        data = compress_tflite(bytes(data))
    if projector is not None:
        from effkeras.deploy.featurizer import attach_projector

        data = attach_projector(bytes(data), projector)
    return bytes(data)


#: the attribute effkeras.text's model builders set to the model's projector
PROJECTOR_ATTR = "_effkeras_projector"


def _projection_model(model: Any, projector: Any) -> tuple[Any, Any]:
    """(the model to convert, its projector or None).

    A model whose first layer is a ``StringProjection`` (strings in, as from
    :func:`effkeras.text.text_model`) converts as the one model it wraps, with that
    layer's projector; a model from ``build_sgnn`` / ``build_prado`` carries its projector
    as ``_effkeras_projector``. An explicit ``projector`` must agree with either.
    """
    from effkeras.deploy.featurizer import Projector

    if projector is not None and not isinstance(projector, Projector):
        raise ConversionError(
            f"projector must be an effkeras.text.Projector. Received: "
            f"{type(projector).__name__}"
        )
    found, where = None, ""
    layers = [
        layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"
    ]
    if layers and getattr(type(layers[0]), "_effkeras_projection", False):
        inner = layers[1:]
        if len(inner) != 1 or not hasattr(inner[0], "layers"):
            raise ConversionError(
                f"Model {model.name!r} takes strings (its first layer, {layers[0].name!r}, is a "
                f"StringProjection, which runs in Python and cannot be converted). Convert the "
                f"model that follows it: to_tflite(projection_model, ..., projector=p)."
            )
        found, where = layers[0].projector, f"the StringProjection layer {layers[0].name!r}"
        model = inner[0]
    attached = getattr(model, PROJECTOR_ATTR, None)
    if found is None and isinstance(attached, Projector):
        found, where = attached, f"model {model.name!r} (built with it)"
    if projector is not None and found is not None and projector != found:
        raise ConversionError(
            f"projector={projector!r} disagrees with the projector of {where}: {found!r}. "
            f"Pass the projector the model was built with, or leave projector out."
        )
    return model, projector if projector is not None else found


def _check_per_channel(model: Any, quantize: str | None, per_channel: bool | None, qat: bool) -> None:
    """Refuse a ``per_channel`` that cannot apply: not a bool, a mode without int8
    weights, or the other granularity than a quantization-aware model's."""
    if per_channel is None:
        return
    if not isinstance(per_channel, bool):
        raise ConversionError(
            f"per_channel must be None, True or False. Received: per_channel={per_channel!r}"
        )
    if quantize not in ("int8", "dynamic") and per_channel is False:
        # int16x8: the converter (2.21) cannot quantize DEPTHWISE_CONV_2D per tensor
        # ("Quantized dimension for tensor property and quantization parameters do not match")
        raise ConversionError(
            f"per_channel=False (one weight scale per kernel) works with quantize='int8' or "
            f"'dynamic'. Received: per_channel=False with quantize={quantize!r}"
        )
    if qat:
        built = {
            layer.name: layer.per_channel
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if hasattr(layer, "per_channel") and getattr(type(layer), "_effkeras_quantized", False)
            and type(layer).__name__ != "QuantDense"
        }
        other = sorted(name for name, pc in built.items() if pc != per_channel)
        if other:
            raise ConversionError(
                f"Model {model.name!r} was quantized with per_channel={not per_channel} "
                f"(layers {', '.join(other[:3])}{', ...' if len(other) > 3 else ''}), and its "
                f"FakeQuant ops decide the file's scales. Received: per_channel={per_channel!r}. "
                f"Rebuild it with effkeras.quantize.quantize_model(model, per_channel="
                f"{per_channel}) or leave per_channel out."
            )


def _configure(converter, tf, quantize, io_dtype, samples, batch_size, sparse=False):
    extra = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    if quantize is None:
        if extra:
            converter.optimizations = extra
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT, *extra]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if quantize == "dynamic":
        return

    def representative():
        for sample in samples:
            # Each sample has batch 1; repeat it up to the model's fixed batch size.
            yield [np.repeat(a, batch_size, axis=0) for a in sample]

    if samples is not None:
        # Without samples (a quantization-aware model) the converter takes every range
        # from the model's FakeQuant ops.
        converter.representative_dataset = representative
    if quantize == "int8":
        # Let the converter fall back to float where it must; to_tflite then names those
        # ops and refuses the model unless allow_float_ops=True. A quantization-aware
        # model (no samples) must not name the INT8 op set: the converter would then ask
        # for a representative dataset instead of reading the model's FakeQuant ranges.
        if samples is not None:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]
        if io_dtype in ("int8", "uint8"):
            converter.inference_input_type = tf.int8 if io_dtype == "int8" else tf.uint8
            converter.inference_output_type = converter.inference_input_type
    elif quantize == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if io_dtype == "int16":
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
