"""The survey's CIFAR-10 CNN family, shared by the GPU training script and the host suite.

Keras + numpy only (any backend), so ``benchmarks/survey_train.py`` runs it under JAX on a GPU
and ``benchmarks/survey.py`` rebuilds the same models under TensorFlow to convert them.

The survey's notebook (checked against its published .tflite files: the first block keeps
32 filters at every width, convolutions use 'same' padding and a bias, BatchNorm comes
after the ReLU, so its int8 files carry a MUL and an ADD per BatchNorm)::

    input 32x32x3 in [-1, 1]
    [Conv3x3(f) ReLU, BN, Conv3x3(f) ReLU, BN, MaxPool2]  f = 32, round(64w), round(128w)
    Flatten, Dropout, Dense(round(512w)) ReLU, Dropout, Dense(10), softmax
    L2 2e-4 on every kernel; Adam 1e-3

``order="bn_relu"`` builds effkeras's variant: Conv (no bias) -> BN -> ReLU, which
effkeras.quantize folds into one int8 convolution. Models end in logits (``Dense(10)``);
:func:`with_softmax` appends the softmax for export, as the survey's models end.

Augmentation is done in numpy (:func:`augment`: horizontal flip and a random integer
translation of up to 3 pixels with reflection, the survey's RandomFlip("horizontal") and
RandomTranslation(3/32, 3/32) up to sub-pixel shifts), outside the model, so a teacher
and a student see the same augmented image during distillation.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
from _usage import BadInput

WIDTHS = (0.05, 0.25, 0.5, 1.0)
TEACHER_WIDTH = 1.4
L2 = 2e-4
NUM_CLASSES = 10
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def filters(width: float) -> tuple[int, int, int, int]:
    """(block1, block2, block3, dense) sizes at ``width``; block 1 is always 32."""
    if width <= 0:
        raise ValueError(f"width must be positive. Received: width={width}")
    return 32, max(1, round(64 * width)), max(1, round(128 * width)), max(1, round(512 * width))


def survey_cnn(
    width: float,
    order: str = "relu_bn",
    dropout: float = 0.2,
    l2: float = L2,
    name: str | None = None,
):
    """The survey CNN at ``width``, ending in logits.

    Args:
        width: the width multiplier.
        order: ``"relu_bn"`` (the survey's Conv+ReLU then BN) or ``"bn_relu"`` (Conv
            without bias, BN, ReLU: foldable by effkeras.quantize).
        dropout: rate of both Dropout layers.
        l2: L2 weight decay on every kernel.
    """
    import keras
    from keras import layers

    if order not in ("relu_bn", "bn_relu"):
        raise ValueError(f"order must be 'relu_bn' or 'bn_relu'. Received: order={order!r}")
    reg = keras.regularizers.L2(l2) if l2 else None
    f1, f2, f3, fd = filters(width)
    inp = keras.Input((32, 32, 3), name="image")
    x = inp
    for f in (f1, f2, f3):
        for _ in range(2):
            if order == "relu_bn":
                x = layers.Conv2D(f, 3, padding="same", activation="relu", kernel_regularizer=reg)(x)
                x = layers.BatchNormalization()(x)
            else:
                x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
                x = layers.BatchNormalization()(x)
                x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(fd, activation="relu", kernel_regularizer=reg)(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(NUM_CLASSES, kernel_regularizer=reg, name="logits")(x)
    tag = str(width).replace(".", "")
    return keras.Model(inp, out, name=name or f"survey_w{tag}_{order}")


def load_saved(folder: str, stem: str):
    """A model a training script saved: ``<folder>/<stem>.model.json`` + ``.weights.h5``."""
    import keras

    paths = [os.path.join(folder, f"{stem}.{ext}") for ext in ("model.json", "weights.h5")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise BadInput(f"no saved model {missing[0]}; give the stem of a model saved in {folder} "
                       f"(a training job's output). Received: {stem!r}")
    try:
        with open(paths[0]) as f:
            model = keras.models.model_from_json(f.read())
    except ValueError as exc:  # json.JSONDecodeError is one; Keras raises it for unknown configs
        raise BadInput(f"{paths[0]} is not a Keras model architecture (model.to_json()): "
                       f"{str(exc).splitlines()[0][:200]}. Received: {stem!r}") from None
    try:
        model.load_weights(paths[1])
    except (ValueError, OSError) as exc:
        raise BadInput(f"{paths[1]} does not hold the weights of {paths[0]} (another model's, or not a "
                       f".weights.h5 file): {str(exc).splitlines()[0][:200]}. Received: {stem!r}") from None
    return model


def with_softmax(model):
    """``model`` followed by a softmax (the survey's models end in one)."""
    import keras

    out = keras.layers.Softmax(name="softmax")(model.output)
    return keras.Model(model.input, out, name=model.name + "_softmax")


def scale(x_uint8_or_unit: np.ndarray) -> np.ndarray:
    """Images (uint8 0..255 or float 0..1) to float32 in [-1, 1], as the survey feeds them."""
    x = np.asarray(x_uint8_or_unit)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 127.5 - 1.0
    return x.astype(np.float32) * 2.0 - 1.0


def augment(x: np.ndarray, rng: np.random.Generator, shift: int = 3) -> np.ndarray:
    """Random horizontal flip and random integer translation (reflect) of a batch NHWC."""
    n, h, w = x.shape[:3]
    flip = rng.random(n) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    if shift:
        p = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="reflect")
        dy = rng.integers(0, 2 * shift + 1, n)
        dx = rng.integers(0, 2 * shift + 1, n)
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        x = p[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return x


def load_cifar10_uint8(data_dir: str, limit_train: int | None = None, limit_test: int | None = None):
    """CIFAR-10 JPEG tarballs -> (x_train, y_train, x_test, y_test), uint8 NHWC, int64.

    Reads ``cifar10_train_jpg.tar.gz`` / ``cifar10_test_jpg.tar.gz`` from ``data_dir`` or
    its ``cifar10_jpg/`` subfolder with PIL alone (no effkeras, no TensorFlow), in the
    sorted member order effkeras.data uses (class folder, then file name).
    """
    from PIL import Image

    out = []
    for split, limit in (("train", limit_train), ("test", limit_test)):
        path = None
        for d in (data_dir, os.path.join(data_dir, "cifar10_jpg")):
            p = os.path.join(d, f"cifar10_{split}_jpg.tar.gz")
            if os.path.isfile(p):
                path = p
                break
        if path is None:
            raise FileNotFoundError(f"cifar10_{split}_jpg.tar.gz not found in {data_dir!r}")
        xs, ys = [], []
        with tarfile.open(path, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")]
            members.sort(key=lambda m: m.name)
            for m in members:
                cls = m.name.split("/")[-2]
                img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
                xs.append(np.asarray(img, dtype=np.uint8))
                ys.append(CLASSES.index(cls))
        x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
        if limit is not None:
            # a class-balanced prefix of a fixed permutation, not the first classes only
            idx = np.random.default_rng(0).permutation(len(x))[:limit]
            x, y = x[idx], y[idx]
        out += [x, y]
    return tuple(out)
