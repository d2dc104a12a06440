"""The pruning wrappers: :class:`PruneLowMagnitude` and :class:`ChannelFollower`.

``PruneLowMagnitude`` holds, as non-trainable variables, a ``pruning_step`` and one mask
(and threshold) per prunable weight; its ``call`` runs the wrapped layer with each weight
replaced by ``weight * mask`` (through a ``keras.StatelessScope``), so pruned weights get
no gradient and the user's layer is never modified. Masks are recomputed outside the
graph, by :func:`effkeras.prune.update_pruning_step` (what the ``UpdatePruningStep``
callback calls), which keeps the training step free of sorting and works the same under
``tf.distribute``.

``ChannelFollower`` wraps a layer that keeps channels one-to-one (batch norm, a depthwise
convolution) behind a channel-pruned layer and zeroes the channels its producer pruned,
so those channels are exactly zero and :func:`~effkeras.prune.strip_pruning` can remove
them.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

# Keras exports StatelessScope but not the query for the active one; the wrapper needs it
# to nest inside an outer scope (JAX training, keras stateless_call) without hiding it.
from keras.src.backend import get_stateless_scope, in_stateless_scope

from effkeras.errors import PruningError
from effkeras.prune import schedules, structures

MISSING_CALLBACK = (
    "Layer {name!r} is being trained with pruning, but its pruning step is still -1: "
    "model.fit ran without the UpdatePruningStep callback. Add it: "
    "model.fit(..., callbacks=[effkeras.callbacks.UpdatePruningStep()]). In a custom "
    "training loop, call effkeras.prune.update_pruning_step(model, step) before each step."
)


def _is(layer: Any, *names: str) -> bool:
    return any(isinstance(layer, getattr(keras.layers, n)) for n in names)


def _spec(layer: keras.layers.Layer, structure: structures.Structure) -> list[str] | None:
    """Attribute names of the layer's prunable weights, or None when it has none."""
    channel = isinstance(structure, structures.Channel)
    if _is(layer, "SeparableConv1D", "SeparableConv2D"):
        return ["pointwise_kernel"] if channel else ["depthwise_kernel", "pointwise_kernel"]
    if _is(layer, "DepthwiseConv1D", "DepthwiseConv2D"):
        if channel:
            raise PruningError(
                f"Channel pruning removes filters of layers that mix channels; a depthwise "
                f"layer ({layer.name!r}) follows the channels of its input instead, and "
                f"prune_low_magnitude(model, structure='channel') shrinks it with them. "
                f"Received: DepthwiseConv layer {layer.name!r} with structure='channel'. Use "
                f"structure='unstructured' for it, or prune the whole model."
            )
        return ["kernel"]
    if _is(layer, "Conv1D", "Conv2D", "Conv3D", "Dense"):
        if channel and getattr(layer, "groups", 1) != 1:
            raise PruningError(
                f"Channel pruning does not support grouped convolutions. Received: "
                f"{layer.name!r} with groups={layer.groups}."
            )
        if channel and getattr(layer, "data_format", "channels_last") != "channels_last":
            raise PruningError(
                f"Channel pruning needs data_format='channels_last'. Received: "
                f"{layer.name!r} with data_format={layer.data_format!r}."
            )
        return ["kernel"]
    return None


def is_prunable(layer: keras.layers.Layer, structure: Any = None) -> bool:
    """Whether :class:`PruneLowMagnitude` can wrap ``layer`` with ``structure``."""
    if hasattr(layer, "get_prunable_weights"):
        return not isinstance(structures.get(structure), structures.Channel)
    try:
        return _spec(layer, structures.get(structure)) is not None
    except PruningError:
        return False


@keras.saving.register_keras_serializable(package="effkeras")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Prune a layer's weights by magnitude while it trains.

    Args:
        layer: a ``Dense``, ``Conv1D/2D/3D``, ``DepthwiseConv1D/2D`` or
            ``SeparableConv1D/2D`` layer, or any layer with a
            ``get_prunable_weights()`` method returning its prunable variables.
        pruning_schedule: a :class:`~effkeras.prune.PruningSchedule`; default
            ``ConstantSparsity(0.5, begin_step=0)``.
        block_size: tfmot-style: prune ``(rows, cols)`` blocks of the kernel.
        block_pooling_type: ``"AVG"`` or ``"MAX"``, how a block is scored.
        sparsity_m_by_n: tfmot-style: ``(2, 4)`` keeps 2 of every 4 input-channel weights.
        structure: ``"unstructured"`` (default), ``"channel"`` (whole filters), ``"2:4"``,
            ``"block"`` or a :mod:`~effkeras.prune.structures` instance. Give either this
            or ``block_size``/``sparsity_m_by_n``.
        channel_group: with ``structure="channel"``, layers whose outputs are added
            together share a group name and hence one channel mask (set by
            :func:`~effkeras.prune.prune_low_magnitude` on a model).
        **kwargs: layer arguments (``name``...).
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        pruning_schedule: schedules.PruningSchedule | None = None,
        block_size: tuple[int, int] = (1, 1),
        block_pooling_type: str = "AVG",
        sparsity_m_by_n: tuple[int, int] | None = None,
        structure: Any = None,
        channel_group: str | None = None,
        **kwargs: Any,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise PruningError(
                f"PruneLowMagnitude wraps a keras.layers.Layer. Received: {type(layer).__name__}"
            )
        if isinstance(layer, PruneLowMagnitude | ChannelFollower):
            raise PruningError(f"Layer {layer.name!r} is already pruned; wrap it only once.")
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        if pruning_schedule is None:
            pruning_schedule = schedules.ConstantSparsity(0.5, begin_step=0)
        self.pruning_schedule = schedules.get(pruning_schedule)
        self.block_size = tuple(block_size) if isinstance(block_size, list | tuple) else block_size
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = (
            tuple(sparsity_m_by_n) if isinstance(sparsity_m_by_n, list | tuple) else sparsity_m_by_n
        )
        self._structure_arg = structure
        self.structure = structures.get(
            structure, self.block_size, block_pooling_type, self.sparsity_m_by_n
        )
        self.channel_group = channel_group
        self._custom = hasattr(layer, "get_prunable_weights")
        if self._custom and isinstance(self.structure, structures.Channel):
            raise PruningError(
                f"structure='channel' needs a built-in layer (Dense, Conv); {layer.name!r} "
                f"defines get_prunable_weights(). Received: structure={structure!r}"
            )
        self._weight_names = None if self._custom else _spec(layer, self.structure)
        if not self._custom and self._weight_names is None:
            raise PruningError(
                f"Cannot prune layer {layer.name!r} of type {type(layer).__name__}: prunable "
                f"layers are Dense, Conv1D/2D/3D, DepthwiseConv1D/2D and SeparableConv1D/2D, "
                f"or layers with a get_prunable_weights() method. Leave it unwrapped "
                f"(prune_low_magnitude on a model skips such layers)."
            )
        self.masks: list[keras.Variable] = []
        self.thresholds: list[keras.Variable] = []

    # ---- state ---------------------------------------------------------------------
    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        weights = self.prunable_weights
        for w in weights:
            if not isinstance(w, keras.Variable):
                raise PruningError(
                    f"Layer {self.layer.name!r} computes its weight instead of storing it (LoRA "
                    f"or quantized?), so it cannot be pruned. Received: {type(w).__name__}"
                )
            self.structure.check(tuple(w.shape), f"layer {self.layer.name!r}")
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            dtype="int64",
            initializer=keras.initializers.Constant(-1),
            trainable=False,
        )
        self.masks = [
            self.add_weight(
                name=f"mask_{i}", shape=w.shape, initializer="ones", trainable=False
            )
            for i, w in enumerate(weights)
        ]
        self.thresholds = [
            self.add_weight(name=f"threshold_{i}", shape=(), initializer="zeros", trainable=False)
            for i in range(len(weights))
        ]

    @property
    def prunable_weights(self) -> list[keras.Variable]:
        """The wrapped layer's variables that are masked."""
        if self._custom:
            return list(self.layer.get_prunable_weights())
        return [getattr(self.layer, n) for n in self._weight_names]

    def masked_weights(self) -> list[np.ndarray]:
        """``weight * mask`` of each prunable weight, as numpy arrays."""
        return [
            ops.convert_to_numpy(w.value) * ops.convert_to_numpy(m.value)
            for w, m in zip(self.prunable_weights, self.masks, strict=True)
        ]

    def channel_keep(self) -> np.ndarray | None:
        """With ``structure="channel"``: 1 for each kept output channel, 0 for pruned."""
        if not isinstance(self.structure, structures.Channel) or not self.built:
            return None
        mask = ops.convert_to_numpy(self.masks[-1].value)
        return mask.reshape(-1, mask.shape[-1]).max(axis=0)

    # ---- compute -------------------------------------------------------------------
    def _check_step(self) -> None:
        message = MISSING_CALLBACK.format(name=self.name)
        if keras.backend.backend() != "tensorflow":
            return
        import tensorflow as tf

        step = self.pruning_step.value
        if tf.executing_eagerly():
            if int(step) < 0:
                raise PruningError(message)
            return
        # A runtime check, not a trace-time one: an error while fit traces its first step
        # leaves the model unable to train again, so adding the callback would not help.
        tf.debugging.assert_greater_equal(step, tf.constant(0, step.dtype), message=message)

    def call(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if training:
            self._check_step()
        mapping = [
            (w, ops.multiply(w.value, ops.cast(m.value, w.dtype)))
            for w, m in zip(self.prunable_weights, self.masks, strict=True)
        ]
        outer = get_stateless_scope() if in_stateless_scope() else None
        collect = outer.collect_losses if outer is not None else True
        scope = keras.StatelessScope(state_mapping=mapping, collect_losses=collect)
        if outer is not None:
            scope.state_mapping = {**outer.state_mapping, **scope.state_mapping}
        with scope:
            if training is not None:
                kwargs["training"] = training
            outputs = self.layer(inputs, **kwargs)
        for loss in scope.losses:
            (outer.add_loss(loss) if outer is not None else self.add_loss(loss))
        if isinstance(self.structure, structures.Channel):
            mask = self.masks[-1].value
            keep = ops.max(ops.reshape(mask, (-1, mask.shape[-1])), axis=0)
            outputs = ops.multiply(outputs, ops.cast(keep, outputs.dtype))
        return outputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    # ---- config --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        structure = self._structure_arg
        if isinstance(structure, structures.Structure):
            structure = keras.saving.serialize_keras_object(structure)
        config = {
            "pruning_schedule": keras.saving.serialize_keras_object(self.pruning_schedule),
            "block_size": list(self.block_size),
            "block_pooling_type": self.block_pooling_type,
            "sparsity_m_by_n": (
                list(self.sparsity_m_by_n) if self.sparsity_m_by_n is not None else None
            ),
            "structure": structure,
            "channel_group": self.channel_group,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="effkeras")
class ChannelFollower(keras.layers.Wrapper):
    """Zero the channels a channel-pruned producer removed, after a per-channel layer.

    Wraps a layer that maps channel ``c`` to channel ``c`` (BatchNormalization,
    DepthwiseConv2D with ``depth_multiplier=1``, an activation with ``f(0) != 0``) and
    multiplies its output by ``channel_mask``, which
    :func:`~effkeras.prune.update_pruning_step` copies from the ``channel_group``'s
    producers. Created by :func:`~effkeras.prune.prune_low_magnitude`; not usually by hand.

    Args:
        layer: the per-channel layer.
        channel_group: name of the channel group it follows; or, after a
            ``Concatenate``, its channels as runs ``[[group or None, channels], ...]``
            in order (a None run is never pruned).
        **kwargs: layer arguments (``name``...).
    """

    def __init__(self, layer: keras.layers.Layer, channel_group: str | list, **kwargs: Any):
        self.segments = _check_segments(channel_group)
        kwargs.setdefault("name", f"channel_follower_{layer.name}")
        super().__init__(layer, **kwargs)
        self.channel_group = channel_group if isinstance(channel_group, str) else [
            list(run) for run in self.segments]

    @property
    def groups(self) -> list[str]:
        """The channel groups this layer follows."""
        return [g for g, _ in self.segments if g is not None]

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        out = int(self.layer.compute_output_shape(input_shape)[-1])
        if not isinstance(self.channel_group, str) and sum(n for _, n in self.segments) != out:
            raise PruningError(
                f"ChannelFollower {self.name!r}: the runs of channel_group cover "
                f"{sum(n for _, n in self.segments)} channels, but {self.layer.name!r} has "
                f"{out}. Received: channel_group={self.channel_group!r}"
            )
        self.channel_mask = self.add_weight(
            name="channel_mask", shape=(out,), initializer="ones", trainable=False
        )

    def mask_from(self, keeps: dict[str, np.ndarray]) -> np.ndarray:
        """The channel mask for the groups' current keep vectors (missing: all kept)."""
        if isinstance(self.channel_group, str):
            return keeps[self.channel_group]
        parts = []
        for group, n in self.segments:
            keep = keeps.get(group) if group is not None else None
            parts.append(np.ones(n, "float32") if keep is None or keep.size != n else keep)
        return np.concatenate(parts).astype("float32")

    def call(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        outputs = self.layer(inputs, training=training, **kwargs)
        return ops.multiply(outputs, ops.cast(self.channel_mask.value, outputs.dtype))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channel_group": self.channel_group}


def _check_segments(channel_group: Any) -> list[tuple[str | None, int]]:
    """``channel_group`` as runs of (group, channels); a PruningError naming a bad one."""
    if isinstance(channel_group, str) and channel_group:
        return [(channel_group, -1)]
    ok = isinstance(channel_group, list | tuple) and bool(channel_group)
    runs: list[tuple[str | None, int]] = []
    for run in channel_group if ok else []:
        if (not isinstance(run, list | tuple) or len(run) != 2
                or not (run[0] is None or (isinstance(run[0], str) and run[0]))
                or isinstance(run[1], bool) or not isinstance(run[1], int) or run[1] < 1):
            ok = False
            break
        runs.append((run[0], int(run[1])))
    if not ok or not any(g is not None for g, _ in runs):
        raise PruningError(
            f"channel_group must be a non-empty string, or a list of [group name or None, "
            f"channels] runs with at least one group. Received: {channel_group!r}"
        )
    return runs
