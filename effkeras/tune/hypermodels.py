"""Ready keras-tuner HyperModels for microcontrollers, and the base class they share.

A :class:`BoardHyperModel` is a ``keras_tuner.HyperModel`` whose ``build(hp)`` returns a
float ``keras.Model`` (softmax output, not compiled) and that also tells the tuner:

- :meth:`~BoardHyperModel.use_qat`: whether the trial fine-tunes with quantization-aware
  training (the ``qat`` hyperparameter, searched unless fixed with ``qat=True/False``);
- :meth:`~BoardHyperModel.pruning`: ``{layer name: sparsity}`` for channel pruning
  (:func:`effkeras.prune.prune_low_magnitude` with ``structure="channel"``), whose pruned
  filters :func:`effkeras.prune.strip_pruning` removes, so the .tflite really shrinks;
- :meth:`~BoardHyperModel.transform`: the model's input from the dataset's (identity for
  images; the projection for text models).

Models: :class:`ImageCNN` (width multiplier, depth, full or depthwise-separable
convolutions, a kernel size and a pruning sparsity per stage), :class:`ResNet8` (the
MLPerf Tiny ResNet-8 shape with a width multiplier and 1-3 stacks), :class:`DSCNN` (the
keyword-spotting depthwise-separable CNN) and the projection text models :class:`SGNNText`
and :class:`PRADOText` (:func:`effkeras.text.build_sgnn` / :func:`~effkeras.text.build_prado`
with the :class:`~effkeras.text.Projector`'s hash count and bits searched too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras import layers

__all__ = ["DSCNN", "HYPERMODELS", "BoardHyperModel", "ImageCNN", "PRADOText", "ResNet8", "SGNNText",
           "TEXT_HYPERMODELS", "get_hypermodel"]

SPARSITIES = (0.0, 0.25, 0.5)


class BoardHyperModel(keras_tuner.HyperModel):
    """A HyperModel that also says how a trial quantizes, prunes and feeds its model.

    Args:
        input_shape: the dataset's input shape, without the batch dimension.
        num_classes: output classes.
        qat: True/False fixes quantization-aware fine-tuning; None searches it (``qat``).
        prune: whether the pruning sparsity hyperparameters are searched at all.
        name: the HyperModel's name.

    Subclasses implement :meth:`build_model`; ``build`` declares ``qat`` first.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, qat: bool | None = None,
                 prune: bool = True, name: str | None = None):
        super().__init__(name=name or type(self).__name__.lower())
        shape = tuple(int(d) for d in input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must be positive dimensions, e.g. (8, 8, 1). "
                             f"Received: input_shape={input_shape!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
        if qat not in (None, True, False):
            raise ValueError(f"qat must be True, False or None (search it). Received: qat={qat!r}")
        self.input_shape = shape
        self.num_classes = int(num_classes)
        self.qat = qat
        self.prune = bool(prune)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        if self.qat is None:
            hp.Boolean("qat", default=True)
        return self.build_model(hp)

    def build_model(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The float model for these hyperparameters (softmax output, not compiled)."""
        raise NotImplementedError

    def use_qat(self, hp: keras_tuner.HyperParameters) -> bool:
        """Whether this trial fine-tunes with quantization-aware training."""
        return bool(hp.get("qat")) if self.qat is None else self.qat

    def pruning(self, hp: keras_tuner.HyperParameters) -> dict[str, float]:
        """``{layer name: channel sparsity}`` of the layers to prune (none by default)."""
        return {}

    def transform(self, hp: keras_tuner.HyperParameters, x: Any) -> np.ndarray:
        """The model's input for dataset inputs ``x`` (identity by default)."""
        return np.asarray(x, dtype="float32")

    def _sparsity(self, hp: keras_tuner.HyperParameters, name: str) -> float | None:
        if not self.prune:
            return None
        return hp.Choice(name, list(SPARSITIES), default=0.0, ordered=True)


def _cbr(x, filters: int, kernel: int, name: str, strides: int = 1, relu: bool = True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _dw_sep(x, filters: int, kernel: int, name: str, strides: int = 1):
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    return _cbr(x, filters, 1, f"{name}_pw")


def _head(x, num_classes: int):
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Softmax(name="probs")(x)


class _WidthHyperModel(BoardHyperModel):
    """A BoardHyperModel with a width multiplier searched among ``widths``."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *,
                 widths: Sequence[float] = (0.25, 0.5, 1.0), **kwargs: Any):
        super().__init__(input_shape, num_classes, **kwargs)
        self.widths = [float(w) for w in widths]

    def _width(self, hp) -> float:
        return hp.Choice("width", self.widths, ordered=True)


class ImageCNN(_WidthHyperModel):
    """A plain image CNN: 1 to ``max_stages`` stages of conv-BN-ReLU (+ max pooling).

    Hyperparameters: ``width`` (multiplier of 16/32/64 filters), ``stages``, ``conv``
    (``"full"`` or ``"separable"``: depthwise + pointwise after the first stage),
    ``kernel_<i>`` (3 or 5) and ``sparsity_<i>`` (channel pruning of stage ``i``), plus
    ``qat``. Stage hyperparameters are conditional on ``stages``.
    """

    BASE_FILTERS = (16, 32, 64, 128)

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, max_stages: int = 3,
                 widths: Sequence[float] = (0.25, 0.5, 1.0), **kwargs: Any):
        super().__init__(input_shape, num_classes, widths=widths, **kwargs)
        if not isinstance(max_stages, int) or not 1 <= max_stages <= len(self.BASE_FILTERS):
            raise ValueError(f"max_stages must be 1 to {len(self.BASE_FILTERS)}. Received: "
                             f"max_stages={max_stages!r}")
        self.max_stages = max_stages

    def build_model(self, hp):
        width = self._width(hp)
        stages = hp.Int("stages", 1, self.max_stages, default=min(2, self.max_stages))
        conv = hp.Choice("conv", ["full", "separable"])
        x = inp = keras.Input(self.input_shape, name="input")
        for i in range(self.max_stages):
            with hp.conditional_scope("stages", list(range(i + 1, self.max_stages + 1))):
                kernel = hp.Choice(f"kernel_{i}", [3, 5], ordered=True)
                self._sparsity(hp, f"sparsity_{i}")
                if i >= stages:
                    continue
                filters = max(4, int(round(self.BASE_FILTERS[i] * width)))
                if conv == "separable" and i > 0:
                    x = _dw_sep(x, filters, kernel, f"s{i}")
                else:
                    x = _cbr(x, filters, kernel, f"s{i}_conv")
                if min(x.shape[1], x.shape[2]) >= 4:
                    x = layers.MaxPooling2D(name=f"s{i}_pool")(x)
        return keras.Model(inp, _head(x, self.num_classes), name="image_cnn")

    def pruning(self, hp):
        if not self.prune:
            return {}
        out = {}
        for i in range(hp.get("stages")):
            s = hp.get(f"sparsity_{i}")
            if s:
                name = f"s{i}_pw" if hp.get("conv") == "separable" and i > 0 else f"s{i}_conv"
                out[name] = float(s)
        return out


class ResNet8(_WidthHyperModel):
    """The MLPerf Tiny ResNet-8 shape: a stem, 1-3 residual stacks, average pool, Dense.

    Hyperparameters: ``width`` (multiplier of 16/32/64), ``stacks``, ``kernel`` (3 or 5),
    ``sparsity_<i>`` (channel pruning of the first conv of stack ``i``; the second conv
    feeds the residual Add, which couples it with the shortcut), ``qat``.
    """

    BASE_FILTERS = (16, 32, 64)

    def build_model(self, hp):
        width = self._width(hp)
        stacks = hp.Int("stacks", 1, 3, default=3)
        kernel = hp.Choice("kernel", [3, 5], ordered=True)
        filters = [max(4, int(round(f * width))) for f in self.BASE_FILTERS]
        x = inp = keras.Input(self.input_shape, name="input")
        x = _cbr(x, filters[0], kernel, "stem")
        for i in range(3):
            with hp.conditional_scope("stacks", list(range(i + 1, 4))):
                self._sparsity(hp, f"sparsity_{i}")
                if i >= stacks:
                    continue
                f = filters[i]
                s = 1 if i == 0 or min(x.shape[1], x.shape[2]) < 2 else 2
                y = _cbr(x, f, kernel, f"b{i}_conv1", strides=s)
                y = _cbr(y, f, kernel, f"b{i}_conv2", relu=False)
                if i > 0:
                    x = layers.Conv2D(f, 1, strides=s, name=f"b{i}_short")(x)
                x = layers.ReLU(name=f"b{i}_relu")(layers.Add(name=f"b{i}_add")([x, y]))
        return keras.Model(inp, _head(x, self.num_classes), name="resnet8")

    def pruning(self, hp):
        if not self.prune:
            return {}
        return {f"b{i}_conv1": float(hp.get(f"sparsity_{i}"))
                for i in range(hp.get("stacks")) if hp.get(f"sparsity_{i}")}


class DSCNN(_WidthHyperModel):
    """The depthwise-separable CNN of keyword spotting (Zhang et al. 2017, MLPerf Tiny KWS).

    A strided conv, ``blocks`` depthwise-separable blocks of ``64 * width`` filters,
    average pool, Dense. Hyperparameters: ``width``, ``blocks`` (1-4), ``kernel`` (the
    first conv's, 3 or 5), ``sparsity`` (channel pruning of every pointwise conv), ``qat``.
    """

    def build_model(self, hp):
        width = self._width(hp)
        blocks = hp.Int("blocks", 1, 4, default=4)
        kernel = hp.Choice("kernel", [3, 5], ordered=True)
        self._sparsity(hp, "sparsity")
        f = max(4, int(round(64 * width)))
        x = inp = keras.Input(self.input_shape, name="input")
        strides = 2 if min(self.input_shape[:2]) >= 8 else 1
        x = _cbr(x, f, kernel, "conv", strides=strides)
        for i in range(blocks):
            x = _dw_sep(x, f, 3, f"ds{i}")
        return keras.Model(inp, _head(x, self.num_classes), name="ds_cnn")

    def pruning(self, hp):
        s = hp.get("sparsity") if self.prune else 0.0
        return {f"ds{i}_pw": float(s) for i in range(hp.get("blocks"))} if s else {}


class _TextHyperModel(BoardHyperModel):
    """Text models: the dataset's inputs are strings; the Projector is searched too."""

    def __init__(self, num_classes: int, *, num_hashes: Sequence[int] = (16, 32),
                 bits: Sequence[int] = (8, 16), **kwargs: Any):
        kwargs.setdefault("prune", False)
        super().__init__((1,), num_classes, **kwargs)
        self.num_hashes = [int(n) for n in num_hashes]
        self.bits = [int(b) for b in bits]

    def projector(self, hp) -> Any:
        raise NotImplementedError

    def transform(self, hp, x):
        return self.projector(hp)(list(x))


class SGNNText(_TextHyperModel):
    """SGNN (:func:`effkeras.text.build_sgnn`) with a binary bag-of-features projector.

    Hyperparameters: ``num_hashes``, ``bits`` (the projector), ``bottleneck``, ``hidden``, ``qat``.
    """

    def projector(self, hp):
        from effkeras.text import Projector

        return Projector(hp.Choice("num_hashes", self.num_hashes, ordered=True),
                         hp.Choice("bits", self.bits, ordered=True), mode="binary",
                         ngram_range=(1, 2), char_ngrams=(2, 3), max_tokens=None)

    def build_model(self, hp):
        from effkeras.text import build_sgnn

        return build_sgnn(self.projector(hp), self.num_classes,
                          bottleneck=hp.Choice("bottleneck", [16, 32, 64], ordered=True),
                          hidden=hp.Choice("hidden", [16, 32, 64], ordered=True))


class PRADOText(_TextHyperModel):
    """PRADO (:func:`effkeras.text.build_prado`) with a ternary per-token projector.

    Hyperparameters: ``num_hashes``, ``bits``, ``max_tokens`` (16 or 32), ``embedding_dim``,
    ``filters``. ``qat`` defaults to False (post-training int8 only): effkeras.quantize has
    no int8 rule for PRADO's Conv1D and AttentionPooling, so a QAT copy converts with float
    ops and the trial fails; pass ``qat=None`` to search it anyway.
    """

    def __init__(self, num_classes: int, **kwargs: Any):
        kwargs.setdefault("qat", False)
        super().__init__(num_classes, **kwargs)

    def projector(self, hp):
        from effkeras.text import Projector

        return Projector(hp.Choice("num_hashes", self.num_hashes, ordered=True),
                         hp.Choice("bits", [b for b in self.bits if b <= 16] or [8], ordered=True),
                         mode="ternary", ngram_range=(1, 1), char_ngrams=(2, 3),
                         max_tokens=hp.Choice("max_tokens", [16, 32], ordered=True))

    def build_model(self, hp):
        from effkeras.text import build_prado

        return build_prado(self.projector(hp), self.num_classes,
                           embedding_dim=hp.Choice("embedding_dim", [16, 32, 64], ordered=True),
                           filters=hp.Choice("filters", [16, 32], ordered=True))


#: the image HyperModels ``effkeras tune --model`` knows (for digits, mnist, cifar10)
HYPERMODELS: dict[str, type[BoardHyperModel]] = {"cnn": ImageCNN, "resnet8": ResNet8, "dscnn": DSCNN}
#: the text HyperModels ``effkeras tune --model`` knows (for sms_spam)
TEXT_HYPERMODELS: dict[str, type[BoardHyperModel]] = {"sgnn": SGNNText, "prado": PRADOText}


def get_hypermodel(name: str, input_shape: Sequence[int], num_classes: int, **kwargs: Any) -> BoardHyperModel:
    """A HyperModel by name: an image one (``cnn``, ``resnet8``, ``dscnn``) or a text one
    (``sgnn``, ``prado``; ``input_shape`` is ignored: the projector sets the input)."""
    if name in TEXT_HYPERMODELS:
        return TEXT_HYPERMODELS[name](num_classes, **kwargs)
    if name not in HYPERMODELS:
        raise ValueError(f"Unknown model {name!r}. Valid models: "
                         f"{', '.join([*HYPERMODELS, *TEXT_HYPERMODELS])}.")
    return HYPERMODELS[name](input_shape, num_classes, **kwargs)
