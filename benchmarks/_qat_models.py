"""Model builders and a step timer shared by benchmarks/qat.py and its tfmot child process.

Every builder takes the Keras module to build with (``keras`` for Keras 3 and effkeras,
``tf_keras`` for tensorflow-model-optimization), so both libraries train the exact same
architecture; the layer order is the same, so ``set_weights(get_weights())`` carries the
float weights from one to the other.
"""

from __future__ import annotations

import time

import numpy as np

#: BatchNormalization momentum of the benchmark models: 10k samples at batch 64 are 157
#: steps an epoch, and 0.9 lets the moving statistics follow the weights within an epoch.
BN_MOMENTUM = 0.9


def build_cnn(k, input_shape, num_classes=10, width=16):
    """Conv+BN+ReLU x3 with max pooling, Flatten, Dense, Softmax."""
    layers = k.layers
    x = inputs = k.Input(shape=tuple(input_shape), name="image")
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probs")(x)
    return k.Model(inputs, outputs, name="cnn")


def build_mobilenet(k, input_shape, num_classes=10, width=16):
    """MobileNet-v1 style: conv stem, depthwise + pointwise blocks (BN, ReLU6), GAP, Dense."""
    layers = k.layers
    x = inputs = k.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for i, (filters, stride) in enumerate(((2 * width, 1), (4 * width, 2), (4 * width, 1),
                                           (8 * width, 2))):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   name=f"dw{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"dw{i}_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"pw{i}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probs")(x)
    return k.Model(inputs, outputs, name="mobilenet")


BUILDERS = {"cnn": build_cnn, "mobilenet": build_mobilenet}


def step_timer(k):
    """A callback class (for Keras module ``k``) recording each training step in ms."""

    class StepTimer(k.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ms: list[float] = []
            self._t = None

        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.ms.append((time.perf_counter() - self._t) * 1e3)

    return StepTimer


def timed_steps(k, make_model, x, y, steps: int, batch_size: int) -> list[float]:
    """ms of each of ``steps`` training steps of a fresh compiled model (first 3 dropped)."""
    model = make_model()
    model.compile(k.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    timer = step_timer(k)()
    n = steps * batch_size
    model.fit(x[:n], y[:n], epochs=1, batch_size=batch_size, verbose=0, callbacks=[timer],
              shuffle=False)
    return timer.ms[3:]


def median(values) -> float:
    return float(np.median(np.asarray(values))) if len(values) else float("nan")
