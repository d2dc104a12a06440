"""The clustering wrapper: :class:`ClusterWeights`.

``ClusterWeights`` holds, for each clusterable weight of the layer it wraps:

- ``cluster_centroids``: trainable, shape ``(groups, number_of_clusters)`` (one group per
  kernel, or one per output channel with ``cluster_per_channel=True``);
- ``pulling_indices``: non-trainable int32 of the weight's shape, which centroid each
  weight takes;
- ``sparsity_mask`` (with ``preserve_sparsity=True``): non-trainable, 0 where the weight
  was exactly zero when clustering began.

Its ``call`` runs the wrapped layer with each weight replaced by
``centroids[pulling_indices]`` (through a ``keras.StatelessScope``; the user's layer is
never modified). While training, each step first re-assigns every weight to its nearest
centroid (a non-trainable variable update, as batch norm updates its moving statistics,
so no callback is needed), and the gradient passes straight through to the original
weight as well as to the centroids (the sum over each cluster), as tfmot trains them.

With ``preserve_sparsity=True`` the first centroid of each group is pinned at zero and
every weight that was zero stays assigned to it, so a pruned model's zeros stay zero and
a kernel still holds at most ``number_of_clusters`` distinct values, zero included.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from keras.src.backend import get_stateless_scope, in_stateless_scope

from effkeras.cluster import centroids as _centroids
from effkeras.cluster.centroids import CentroidInitialization, ClusteringError


def _is(layer: Any, *names: str) -> bool:
    return any(isinstance(layer, getattr(keras.layers, n)) for n in names)


def _weight_names(layer: keras.layers.Layer) -> list[str] | None:
    """Attribute names of the built-in layer's clusterable weights, or None."""
    if _is(layer, "SeparableConv1D", "SeparableConv2D"):
        return ["depthwise_kernel", "pointwise_kernel"]
    if _is(
        layer, "DepthwiseConv1D", "DepthwiseConv2D", "Conv1D", "Conv2D", "Conv3D",
        "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Dense",
    ):
        return ["kernel"]
    return None


def is_clusterable(layer: keras.layers.Layer) -> bool:
    """Whether :class:`ClusterWeights` can wrap ``layer``.

    True for ``Dense``, ``Conv1D/2D/3D`` (and their ``Transpose``), ``DepthwiseConv1D/2D``,
    ``SeparableConv1D/2D`` and any layer with a ``get_clusterable_weights()`` method (tfmot's
    ``ClusterableLayer`` protocol: a list of ``(name, variable)`` pairs or of variables).
    """
    return hasattr(layer, "get_clusterable_weights") or _weight_names(layer) is not None


def check_number_of_clusters(number_of_clusters: Any) -> int:
    """``number_of_clusters`` as an int, or a :class:`ClusteringError` saying why not."""
    if (
        isinstance(number_of_clusters, bool)
        or not isinstance(number_of_clusters, int | np.integer)
        or number_of_clusters < 2
    ):
        raise ClusteringError(
            f"number_of_clusters must be an integer of at least 2 (one cluster would make "
            f"every weight equal). Received: number_of_clusters={number_of_clusters!r}"
        )
    return int(number_of_clusters)


@keras.saving.register_keras_serializable(package="effkeras")
class ClusterWeights(keras.layers.Wrapper):
    """Cluster a layer's weights onto ``number_of_clusters`` trainable centroids.

    Args:
        layer: a clusterable layer (see :func:`is_clusterable`).
        number_of_clusters: centroids per kernel (or per output channel), at least 2.
        cluster_centroids_init: a :class:`~effkeras.cluster.CentroidInitialization` (or
            its name): where the centroids start.
        preserve_sparsity: keep the weights that are exactly zero at zero (one centroid
            pinned at 0), for clustering a pruned model.
        cluster_per_channel: one set of centroids per output channel (the last axis; for
            depthwise kernels each input channel times multiplier), as tfmot's
            ``cluster_per_channel``; matches per-channel int8 weights.
        **kwargs: layer arguments (``name``...).
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        number_of_clusters: int,
        cluster_centroids_init: CentroidInitialization | str = CentroidInitialization.KMEANS_PLUS_PLUS,
        preserve_sparsity: bool = False,
        cluster_per_channel: bool = False,
        **kwargs: Any,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise ClusteringError(
                f"ClusterWeights wraps a keras.layers.Layer. Received: {type(layer).__name__}"
            )
        if isinstance(layer, ClusterWeights):
            raise ClusteringError(f"Layer {layer.name!r} is already clustered; wrap it only once.")
        if type(layer).__name__ in ("PruneLowMagnitude", "ChannelFollower"):
            raise ClusteringError(
                f"Layer {layer.name!r} is being pruned. Strip pruning first "
                f"(effkeras.prune.strip_pruning), then cluster with preserve_sparsity=True "
                f"to keep its zeros."
            )
        if not is_clusterable(layer):
            raise ClusteringError(
                f"Cannot cluster layer {layer.name!r} of type {type(layer).__name__}: "
                f"clusterable layers are Dense, Conv1D/2D/3D (and Transpose), "
                f"DepthwiseConv1D/2D and SeparableConv1D/2D, or layers with a "
                f"get_clusterable_weights() method. Leave it unwrapped (cluster_weights on a "
                f"model skips such layers)."
            )
        for flag, value in (("preserve_sparsity", preserve_sparsity),
                            ("cluster_per_channel", cluster_per_channel)):
            if not isinstance(value, bool | np.bool_):
                raise ClusteringError(f"{flag} must be True or False. Received: {flag}={value!r}")
        if cluster_per_channel and _is(
            layer, "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"
        ):
            raise ClusteringError(
                f"cluster_per_channel needs the output channels on the kernel's last axis; "
                f"{type(layer).__name__} {layer.name!r} keeps them on the one before. "
                f"Received: cluster_per_channel=True. Cluster it per kernel."
            )
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        self.number_of_clusters = check_number_of_clusters(number_of_clusters)
        self.cluster_centroids_init = _centroids.get(cluster_centroids_init)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.cluster_per_channel = bool(cluster_per_channel)
        self._custom = hasattr(layer, "get_clusterable_weights")
        self.cluster_centroids: list[keras.Variable] = []
        self.pulling_indices: list[keras.Variable] = []
        self.sparsity_masks: list[keras.Variable] = []

    # ---- state ---------------------------------------------------------------------
    @property
    def clusterable_weights(self) -> list[keras.Variable]:
        """The wrapped layer's variables that are clustered."""
        if self._custom:
            found = self.layer.get_clusterable_weights()
            return [w[1] if isinstance(w, tuple | list) else w for w in found]
        return [getattr(self.layer, n) for n in _weight_names(self.layer)]

    def _groups(self, w: keras.Variable) -> tuple[int, int]:
        """(weights per group, groups) of the (N, G) view of ``w``."""
        shape = tuple(int(d) for d in w.shape)
        size = int(np.prod(shape)) if shape else 1
        if not self.cluster_per_channel or len(shape) < 2:
            return size, 1
        depthwise = w.path.endswith("depthwise_kernel") or _is(
            self.layer, "DepthwiseConv1D", "DepthwiseConv2D"
        )
        channel_dims = 2 if depthwise and len(shape) >= 3 else 1
        groups = int(np.prod(shape[-channel_dims:]))
        return size // groups, groups

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        k = self.number_of_clusters
        self.cluster_centroids, self.pulling_indices, self.sparsity_masks = [], [], []
        for i, w in enumerate(self.clusterable_weights):
            if not isinstance(w, keras.Variable):
                raise ClusteringError(
                    f"Layer {self.layer.name!r} computes its weight instead of storing it "
                    f"(LoRA or quantized?), so it cannot be clustered. Received: "
                    f"{type(w).__name__}"
                )
            _, groups = self._groups(w)
            self.cluster_centroids.append(self.add_weight(
                name=f"cluster_centroids_{i}", shape=(groups, k), initializer="zeros",
                trainable=True,
            ))
            self.pulling_indices.append(self.add_weight(
                name=f"pulling_indices_{i}", shape=w.shape, dtype="int32",
                initializer="zeros", trainable=False,
            ))
            if self.preserve_sparsity:
                self.sparsity_masks.append(self.add_weight(
                    name=f"sparsity_mask_{i}", shape=w.shape, initializer="ones",
                    trainable=False,
                ))
        self.initialize_clusters()

    def initialize_clusters(self) -> None:
        """Place the centroids (``cluster_centroids_init``) on the layer's current weights,
        record the zeros (``preserve_sparsity``) and assign every weight to a centroid."""
        k = self.number_of_clusters
        for i, w in enumerate(self.clusterable_weights):
            per_group, groups = self._groups(w)
            value = ops.convert_to_numpy(w.value).astype(np.float32).reshape(per_group, groups)
            keep = value != 0 if self.preserve_sparsity else np.ones_like(value, bool)
            table = np.zeros((groups, k), np.float32)
            free = k - 1 if self.preserve_sparsity else k
            for g in range(groups):
                table[g, k - free:] = _centroids.initial_centroids(
                    value[keep[:, g], g], free, self.cluster_centroids_init, seed=g
                )
            self.cluster_centroids[i].assign(table)
            if self.preserve_sparsity:
                self.sparsity_masks[i].assign(keep.astype(np.float32).reshape(w.shape))
            self.pulling_indices[i].assign(
                ops.reshape(self._assign(i, ops.convert_to_tensor(value)), w.shape)
            )

    # ---- compute -------------------------------------------------------------------
    def _table(self, i: int) -> Any:
        table = self.cluster_centroids[i].value
        if self.preserve_sparsity:  # centroid 0 is zero and gets no gradient
            pin = np.ones((1, self.number_of_clusters), np.float32)
            pin[0, 0] = 0.0
            table = ops.multiply(table, ops.convert_to_tensor(pin, table.dtype))
        return table

    def _assign(self, i: int, flat: Any) -> Any:
        """Nearest-centroid indices (N, G) of the (N, G) weights ``flat``."""
        table = ops.stop_gradient(self._table(i))
        distance = ops.abs(ops.expand_dims(flat, -1) - ops.expand_dims(table, 0))
        indices = ops.cast(ops.argmin(distance, axis=-1), "int32")
        if self.preserve_sparsity:
            w = self.clusterable_weights[i]
            per_group, groups = self._groups(w)
            mask = ops.reshape(self.sparsity_masks[i].value, (per_group, groups))
            indices = ops.where(mask > 0, indices, ops.zeros_like(indices))
        return indices

    def _clustered(self, i: int, training: bool) -> Any:
        w = self.clusterable_weights[i]
        per_group, groups = self._groups(w)
        flat_w = ops.reshape(w.value, (per_group, groups))
        if training:
            indices = self._assign(i, ops.stop_gradient(flat_w))
            self.pulling_indices[i].assign(ops.reshape(indices, w.shape))
        else:
            indices = ops.reshape(self.pulling_indices[i].value, (per_group, groups))
        k = self.number_of_clusters
        offsets = ops.reshape(ops.arange(groups, dtype="int32") * k, (1, groups))
        flat = ops.take(ops.reshape(self._table(i), (-1,)), indices + offsets)
        if training:  # straight-through: the original weight gets the weight's gradient
            through = ops.subtract(flat_w, ops.stop_gradient(flat_w))
            if self.preserve_sparsity:
                through = ops.multiply(
                    through, ops.reshape(self.sparsity_masks[i].value, (per_group, groups))
                )
            flat = ops.add(flat, through)
        return ops.cast(ops.reshape(flat, w.shape), w.dtype)

    def clustered_weights(self) -> list[np.ndarray]:
        """Each clusterable weight as it is used: ``centroids[pulling_indices]`` (numpy)."""
        return [ops.convert_to_numpy(self._clustered(i, False))
                for i in range(len(self.cluster_centroids))]

    def call(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        mapping = [
            (w, self._clustered(i, bool(training)))
            for i, w in enumerate(self.clusterable_weights)
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
        return outputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    # ---- config --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = {
            "number_of_clusters": self.number_of_clusters,
            "cluster_centroids_init": self.cluster_centroids_init.value,
            "preserve_sparsity": self.preserve_sparsity,
            "cluster_per_channel": self.cluster_per_channel,
        }
        return {**super().get_config(), **config}
