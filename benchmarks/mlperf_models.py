"""The four MLPerf Tiny v0.5 models, rebuilt in Keras 3 from their published definitions.

Shapes follow mlcommons/tiny ``benchmark/training`` (the reference training scripts):

- ``kws_ds_cnn``: keyword spotting, DS-CNN on a 49x10 MFCC: conv 64 (10x4, stride 2),
  4 x (depthwise 3x3 + pointwise 64), average pool, dense 12 (``keyword_spotting/keras_model.py``).
- ``vww_mobilenet_v1_025``: visual wake words, MobileNetV1 width 0.25 on 96x96x3, 2 classes
  (``visual_wake_words/vww_model.py``).
- ``ic_resnet8``: image classification, ResNet-8 on 32x32x3 CIFAR-10, 16/32/64 filters with
  1x1 shortcuts (``image_classification/keras_model.py``).
- ``ad_autoencoder``: anomaly detection, the dense 640-128x4-8-128x4-640 autoencoder
  (``anomaly_detection/keras_model.py``).

Weights are random (latency does not depend on them). Random kernels shrink the activations
layer by layer (Keras's Glorot limit for a depthwise kernel counts the channels in its fan-in),
and after the 27 layers of the MobileNet they are so small that TFLM aborts on the
requantization multipliers; :func:`normalize_batchnorm` therefore sets every BatchNorm's
moving statistics to those of its input on the calibration data, so each block outputs
unit-variance activations, as a trained net roughly does. :func:`convert_int8` then
calibrates on the same random inputs and makes full-int8 files with int8 input and output,
as the MLPerf Tiny reference submissions run them. ``tests/test_bench_estimate.py`` and
``benchmarks/mlperf_tiny.py`` import this module.
"""

from __future__ import annotations

import numpy as np


def ds_cnn_kws():
    """KWS: 49x10 MFCC, conv 64 (10x4, stride 2), 4 x (depthwise 3x3 + pointwise 64)."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((49, 10, 1))
    x = L.ReLU()(L.BatchNormalization()(
        L.Conv2D(64, (10, 4), strides=2, padding="same", use_bias=False)(x)))
    for _ in range(4):
        x = L.ReLU()(L.BatchNormalization()(
            L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, 1, use_bias=False)(x)))
    x = L.Flatten()(L.AveragePooling2D(pool_size=(25, 5))(x))
    return keras.Model(inp, L.Dense(12, activation="softmax")(x), name="kws_ds_cnn")


def mobilenet_v1_vww():
    """VWW: MobileNetV1 with width 0.25 on 96x96x3, 2 classes."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((96, 96, 3))
    x = L.ReLU()(L.BatchNormalization()(
        L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)))
    for filters, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1),
                            (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)):
        x = L.ReLU()(L.BatchNormalization()(
            L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(x)))
    x = L.Flatten()(L.AveragePooling2D(pool_size=x.shape[1:3])(x))
    return keras.Model(inp, L.Dense(2, activation="softmax")(x), name="vww_mobilenet_v1_025")


def resnet8_ic():
    """IC: ResNet-8 for 32x32x3 CIFAR-10 (16, 32, 64 filters; 1x1 shortcuts)."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((32, 32, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x)))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = L.ReLU()(L.BatchNormalization()(
            L.Conv2D(filters, 3, strides=stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(pool_size=8)(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="ic_resnet8")


def ad_autoencoder():
    """AD: dense 640-128-128-128-128-8-128-128-128-128-640 with BN + ReLU."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((640,))
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = L.ReLU()(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inp, L.Dense(640)(x), name="ad_autoencoder")


#: Model name -> builder, in MLPerf Tiny's order of the benchmark table.
BUILDERS = {
    "kws_ds_cnn": ds_cnn_kws,
    "vww_mobilenet_v1_025": mobilenet_v1_vww,
    "ic_resnet8": resnet8_ic,
    "ad_autoencoder": ad_autoencoder,
}


def _calibration_data(model, samples: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((samples, *model.input_shape[1:])).astype(np.float32)


def normalize_batchnorm(model, x: np.ndarray) -> None:
    """Set each BatchNormalization's moving mean and variance to its input's on ``x``, in order."""
    import keras

    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        y = np.asarray(keras.Model(model.input, layer.input)(x, training=False))
        axes = tuple(range(y.ndim - 1))
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, y.mean(axis=axes), y.var(axis=axes)])


def convert_int8(model, samples: int = 8) -> bytes:
    """Full-int8 .tflite (int8 input and output), calibrated on ``samples`` random inputs."""
    from effkeras.convert import to_tflite

    x = _calibration_data(model, samples)
    normalize_batchnorm(model, x)
    return to_tflite(model, quantize="int8", representative_data=x, io_dtype="int8")


def build_all(names=None, seed: int = 0) -> dict[str, bytes]:
    """{name: int8 .tflite bytes} for ``names`` (default: all four), weights seeded."""
    import keras

    out = {}
    for name in names or BUILDERS:
        keras.utils.set_random_seed(seed)
        out[name] = convert_int8(BUILDERS[name]())
    return out
