"""Keras callbacks for effkeras training (a flat module of callback classes).

- :class:`FreezeBatchNorm`: from a given epoch on, folded batch norms use their moving
  statistics only (the training graph becomes the inference graph).
- :class:`FreezeQuantRanges`: from a given epoch on, activation ranges stop moving.

Both write the freeze into non-trainable variables of the quantization layers, so a
checkpoint (``ModelCheckpoint``, ``BackupAndRestore``) carries it; they set it again at
the start of every later epoch, so a resumed run is frozen as well.
"""

from __future__ import annotations

import keras


def _check_epoch(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"epoch must be a non-negative integer. Received: epoch={value!r}")
    return value


class _FreezeAt(keras.callbacks.Callback):
    _what = ""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = _check_epoch(epoch)

    def _targets(self) -> list:
        raise NotImplementedError

    def _variable(self, layer):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        from effkeras.errors import QuantizationError

        self._layers = self._targets()
        if not self._layers:
            raise QuantizationError(
                f"{type(self).__name__} found no {self._what} in model "
                f"{self.model.name!r}. Rewrite the model with "
                f"effkeras.quantize.quantize_model(model) and train that model."
            )

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.epoch:
            for layer in self._layers:
                self._variable(layer).assign(1.0)


class FreezeBatchNorm(_FreezeAt):
    """Freeze the folded batch norms of a quantization-aware model at ``epoch``.

    From that epoch on (0-based, at its start) each folded layer uses the moving mean and
    variance only, with no batch-statistics correction, and stops updating them, as
    recommended after a few epochs of QAT (Krishnamoorthi 2018): the training graph is
    then exactly the converted graph.

    It is optional: the folded layers train with gradients through the batch statistics
    and convert from the moving ones either way. On short fine-tuning it can cost
    accuracy (MobileNet-style model on 10k MNIST, 2 QAT epochs at Adam 5e-4: 96.7%
    never frozen, 96.1% frozen for the second epoch), so freeze late and measure.

    Args:
        epoch: the first epoch that trains with frozen batch norm.

    Raises:
        effkeras.errors.QuantizationError: at the start of ``fit`` when the model has no
            layer with a folded batch norm.
    """

    _what = "layers with a folded batch norm (effkeras.quantize QuantConv2D/QuantDense)"

    def _targets(self):
        from effkeras.quantize import quantization_layers

        return [
            layer for layer in quantization_layers(self.model)
            if getattr(layer, "batch_norm", False)
        ]

    def _variable(self, layer):
        return layer.bn_frozen


class FreezeQuantRanges(_FreezeAt):
    """Stop the activation ranges of a quantization-aware model from moving at ``epoch``.

    Args:
        epoch: the first epoch (0-based) whose training keeps the ranges fixed.

    Raises:
        effkeras.errors.QuantizationError: at the start of ``fit`` when the model has no
            effkeras quantization layers.
    """

    _what = "effkeras quantization layers"

    def _targets(self):
        from effkeras.quantize import quantization_layers

        return [
            layer for layer in quantization_layers(self.model)
            if getattr(layer, "_fixed_range", None) is None
        ]

    def _variable(self, layer):
        return layer.ranges_frozen


from effkeras.prune.callbacks import (  # noqa: E402
    PreserveSparsity,
    PruningSummaries,
    UpdatePruningStep,
)

__all__ = [
    "FreezeBatchNorm",
    "FreezeQuantRanges",
    "PreserveSparsity",
    "PruningSummaries",
    "UpdatePruningStep",
]
