"""Callbacks for pruning: UpdatePruningStep (required), PruningSummaries, PreserveSparsity.

Re-exported from :mod:`effkeras.callbacks`.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.errors import PruningError
from effkeras.prune.update import advance, pruning_layers, set_steps


def _iterations(model: Any) -> int:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise PruningError(
            f"Model {model.name!r} has no optimizer: compile it before model.fit "
            f"(UpdatePruningStep reads optimizer.iterations)."
        )
    return int(ops.convert_to_numpy(optimizer.iterations))


class UpdatePruningStep(keras.callbacks.Callback):
    """Advance pruning before every training batch; required by ``model.fit``.

    The step is the optimizer's ``iterations``, so training resumed from a checkpoint
    (``BackupAndRestore``, ``ModelCheckpoint`` + ``load_model``) continues the schedule
    exactly where it stopped. Without this callback, training a pruned model raises an
    error that says to add it.

    Each layer's ``pruning_step`` variable is brought up to date at the first batch,
    whenever that layer's mask changes, and at the end of each epoch and of training
    (not at every batch: that would be most of the callback's cost); the schedule itself
    always follows ``optimizer.iterations``.
    """

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._last: int | None = None
        self._prunes, self._followers = pruning_layers(self.model)
        if not self._prunes:
            raise PruningError(
                f"UpdatePruningStep was given to model.fit, but {self.model.name!r} has no "
                f"pruned layers. Prune it first: "
                f"model = effkeras.prune.prune_low_magnitude(model, ...)."
            )

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = _iterations(self.model)
        # Host work per batch is kept to reading the step and evaluating the schedule:
        # every layer's pruning_step is written on the first batch (which arms the
        # missing-callback check), whenever its mask changes, and at each epoch's end.
        if any(not layer.built for layer in self._prunes):  # built during this fit
            self._prunes, self._followers = pruning_layers(self.model)
        advance(self._prunes, self._followers, step, self._last, assign_steps=self._last is None)
        self._last = step

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._last is not None:
            set_steps(self._prunes, self._last)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.on_epoch_end(-1)


def _scalar(tf: Any, tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar, written with core TF only (tf.summary.scalar needs the
    tensorboard package)."""
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    tf.summary.write(
        tag, tf.constant(value, tf.float32), step=step, metadata=metadata.SerializeToString()
    )


class PruningSummaries(keras.callbacks.Callback):
    """Write each pruned layer's sparsity and threshold to TensorBoard.

    Scalars ``<layer>/sparsity`` (fraction of zeros in its masks) and
    ``<layer>/threshold`` (the smallest magnitude kept at the last pruning: weights, or
    block/channel scores, below it were pruned) at the optimizer's step.

    Args:
        log_dir: the TensorBoard log folder (created if missing).
        update_freq: ``"epoch"`` (after each epoch) or an integer N (every N batches).
    """

    def __init__(self, log_dir: str | os.PathLike, update_freq: str | int = "epoch"):
        super().__init__()
        if not isinstance(log_dir, str | os.PathLike) or not os.fspath(log_dir):
            raise PruningError(f"log_dir must be a folder path. Received: log_dir={log_dir!r}")
        if update_freq != "epoch" and not (
            isinstance(update_freq, int) and not isinstance(update_freq, bool) and update_freq > 0
        ):
            raise PruningError(
                f"update_freq must be 'epoch' or a positive integer (batches). "
                f"Received: update_freq={update_freq!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self._writer = None

    def _write(self) -> None:
        import tensorflow as tf

        if self._writer is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._writer = tf.summary.create_file_writer(self.log_dir)
        step = _iterations(self.model)
        with self._writer.as_default():
            for layer in pruning_layers(self.model)[0]:
                if not layer.built:
                    continue
                masks = [ops.convert_to_numpy(m.value) for m in layer.masks]
                zeros = sum(int((m == 0).sum()) for m in masks)
                total = sum(m.size for m in masks)
                threshold = max(float(ops.convert_to_numpy(t.value)) for t in layer.thresholds)
                _scalar(tf, f"{layer.name}/sparsity", zeros / max(total, 1), step)
                _scalar(tf, f"{layer.name}/threshold", threshold, step)
        self._writer.flush()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.update_freq != "epoch" and (batch + 1) % self.update_freq == 0:
            self._write()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.update_freq == "epoch":
            self._write()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


class PreserveSparsity(keras.callbacks.Callback):
    """Keep the zeros of a stripped, pruned model while it trains on (fine-tuning, QAT).

    At the start of training, records which kernel weights are exactly zero; after each
    batch, sets them back to zero, so the optimizer cannot regrow them. Use it when
    training a model after :func:`~effkeras.prune.strip_pruning`, e.g. for
    quantization-aware training.

    Args:
        min_sparsity: kernels with a smaller fraction of zeros are not tracked.
    """

    def __init__(self, min_sparsity: float = 0.05):
        super().__init__()
        if not isinstance(min_sparsity, int | float) or not 0.0 <= min_sparsity < 1.0:
            raise PruningError(
                f"min_sparsity must be in [0, 1). Received: min_sparsity={min_sparsity!r}"
            )
        self.min_sparsity = float(min_sparsity)
        self._masks: list[tuple[Any, np.ndarray]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._masks = []
        for v in self.model.trainable_variables:
            if v.name.split("/")[-1] not in _KERNELS:
                continue
            value = ops.convert_to_numpy(v.value)
            keep = (value != 0).astype(value.dtype)
            if 1.0 - keep.mean() >= self.min_sparsity:
                self._masks.append((v, keep))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for v, keep in self._masks:
            v.assign(ops.convert_to_numpy(v.value) * keep)

    @property
    def tracked(self) -> list[str]:
        """Paths of the kernels being kept sparse."""
        return [v.path for v, _ in self._masks]
