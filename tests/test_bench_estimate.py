"""The estimate target against MLPerf Tiny's published reference latencies.

Builds Keras models with the shapes of the four MLPerf Tiny v0.5 models (DS-CNN KWS,
MobileNetV1-0.25 VWW at 96x96, ResNet-8 CIFAR-10, the AD dense autoencoder), converts
them to int8, and reports the estimate's error against the reference latencies measured
on a Nucleo-L4R5ZI (Cortex-M4F, 120 MHz, TFLM + CMSIS-NN). Run with ``-s`` to see the
table. Weights are random: latency does not depend on them.
"""

from __future__ import annotations

import numpy as np
import pytest

from effkeras.bench import estimate, measure, parse_target
from effkeras.bench.estimate import (
    CYCLES_PER_MAC,
    MLPERF_TINY_MACS,
    MLPERF_TINY_REFERENCE,
    calibrate,
    format_errors,
    macs_by_class,
    mlperf_errors,
)
from effkeras.errors import UnknownBoardError, UnknownTargetError


# ---- Keras models with the MLPerf Tiny shapes ----------------------------------------
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


BUILDERS = {
    "kws_ds_cnn": ds_cnn_kws,
    "vww_mobilenet_v1_025": mobilenet_v1_vww,
    "ic_resnet8": resnet8_ic,
    "ad_autoencoder": ad_autoencoder,
}


def convert_int8(model, samples: int = 8) -> bytes:
    from effkeras.convert import to_tflite

    rng = np.random.default_rng(0)
    x = rng.random((samples, *model.input_shape[1:])).astype(np.float32)
    return to_tflite(model, quantize="int8", representative_data=x, io_dtype="int8")


@pytest.fixture(scope="module")
def mlperf_tflites() -> dict[str, bytes]:
    import keras

    keras.utils.set_random_seed(0)
    return {name: convert_int8(build()) for name, build in BUILDERS.items()}


# ---- tests ---------------------------------------------------------------------------
@pytest.mark.slow
def test_estimate_error_against_mlperf_tiny_reference(mlperf_tflites):
    macs = {name: macs_by_class(blob) for name, blob in mlperf_tflites.items()}
    # The MAC table in estimate.py is what these models really count.
    assert macs == MLPERF_TINY_MACS
    # Refitting reproduces the documented constants (to their 2 decimals).
    fitted = calibrate(macs, MLPERF_TINY_REFERENCE)
    for cls, value in fitted.items():
        assert value == pytest.approx(CYCLES_PER_MAC["cmsis_nn"][cls], abs=0.01), cls
    rows = mlperf_errors(macs)
    print("\nestimate vs MLPerf Tiny v0.5 reference (Nucleo-L4R5ZI, Cortex-M4F 120 MHz, "
          "CMSIS-NN); constants fitted on these four, so errors are fit residuals:\n"
          + format_errors(rows))
    assert len(rows) == 4
    for r in rows:
        assert abs(r["error"]) < 0.15, r
    # The full estimate path (op walk, board clock) agrees with the class-sum arithmetic.
    e = estimate(mlperf_tflites["ic_resnet8"], "nano33ble")
    assert e.kernels == "cmsis_nn" and e.calibrated
    expected_ms = 704.26 * 120 / 64  # same core, 64 MHz instead of 120 MHz
    assert e.latency_us / 1000 == pytest.approx(expected_ms, rel=0.02)


@pytest.mark.slow
def test_estimate_target_orders_boards_and_kernels(mlperf_tflites):
    kws = mlperf_tflites["kws_ds_cnn"]
    cmsis = measure(kws, "estimate:nano33ble")
    ref = measure(kws, "estimate:nano33ble:reference")
    m7 = measure(kws, "estimate:portenta_h7")
    m0 = measure(kws, "estimate:pico")
    assert cmsis.stats is None and cmsis.estimate_us and cmsis.latency_ms
    assert ref.latency_us == pytest.approx(cmsis.latency_us * 4.6, rel=0.01)
    assert m7.latency_us < cmsis.latency_us < m0.latency_us
    assert any("not calibrated" in n for n in m0.notes)
    assert cmsis.details["macs"] == sum(MLPERF_TINY_MACS["kws_ds_cnn"].values())


def test_estimate_of_digits_model_and_errors(int8_io_tflite, float_tflite):
    r = measure(int8_io_tflite, "estimate:nano33ble")
    assert r.kind == "estimate" and r.target == "estimate:nano33ble:cmsis_nn"
    assert r.latency_us > 0 and r.details["layers"]
    f = measure(float_tflite, "estimate:nano33ble")
    assert any("float op" in n for n in f.notes)
    assert f.latency_us > r.latency_us
    with pytest.raises(UnknownBoardError, match="nano33ble"):
        parse_target("estimate:uno")
    with pytest.raises(UnknownTargetError, match="cannot use CMSIS-NN"):
        parse_target("estimate:pico:cmsis_nn")
