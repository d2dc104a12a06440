"""Cluster-preserving training: :class:`PreserveClusters` keeps a stripped model's clusters.

After :func:`~effkeras.cluster.strip_clustering` each kernel holds at most ``k`` distinct
values. Training it on (fine-tuning, or quantization-aware training of
``effkeras.quantize.quantize_model(stripped)``, whose layers copy the kernels) would let
every weight drift apart. This callback records, when training begins, which weights
share a value, and after each batch sets every group to its mean: the centroid moves by
the average of its members' updates (tfmot's cluster-preserving QAT trains one variable a
centroid with the summed gradient; the mean is the same direction, scaled by the
cluster's size), and the assignment never changes. Groups whose value is exactly zero
stay zero (sparsity-preserving clustering).

The QAT layers fold batch norm into the kernel with one factor per output channel and
quantize per channel, so a kernel with ``k`` values becomes at most ``k`` int8 values per
output channel in the converted file: what LUT compression needs
(:func:`effkeras.convert.compress.compress_tflite`).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.cluster.centroids import ClusteringError
from effkeras.cluster.wrapper import check_number_of_clusters

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def cluster_assignments(value: np.ndarray, number_of_clusters: int) -> np.ndarray | None:
    """Group ids (``value``'s shape) of the weights that share a value, or None.

    The kernel is taken as clustered when it has at most ``number_of_clusters`` distinct
    values, or when each slice along its last axis (an output channel) has; ids are
    unique across channels in the second case.
    """
    v = np.asarray(value)
    values, inverse = np.unique(v, return_inverse=True)
    if values.size <= number_of_clusters:
        return inverse.reshape(v.shape).astype(np.int64)
    if v.ndim < 2:
        return None
    flat = v.reshape(-1, v.shape[-1])
    ids = np.empty(flat.shape, np.int64)
    for c in range(flat.shape[1]):
        values, inverse = np.unique(flat[:, c], return_inverse=True)
        if values.size > number_of_clusters:
            return None
        ids[:, c] = inverse + c * number_of_clusters
    return ids.reshape(v.shape)


class PreserveClusters(keras.callbacks.Callback):
    """Keep the clusters of a stripped, clustered model's kernels while it trains on.

    Args:
        number_of_clusters: the ``number_of_clusters`` the model was clustered with;
            kernels with more distinct values (per kernel and per output channel) are
            not tracked.
        require: raise at the start of training if no kernel is clustered (a model that
            was not stripped from :func:`~effkeras.cluster.cluster_weights`, or a larger
            ``number_of_clusters`` is needed).
    """

    def __init__(self, number_of_clusters: int, require: bool = True):
        super().__init__()
        self.number_of_clusters = check_number_of_clusters(number_of_clusters)
        self.require = bool(require)
        self._groups: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._groups = []
        for v in self.model.trainable_variables:
            if v.path.split("/")[-1] not in _KERNELS:
                continue
            value = ops.convert_to_numpy(v.value)
            ids = cluster_assignments(value, self.number_of_clusters)
            if ids is None:
                continue
            flat = ids.ravel()
            count = np.bincount(flat).astype(np.float64)
            sums = np.bincount(flat, weights=value.ravel().astype(np.float64))
            zero = (sums == 0) & (np.bincount(flat, weights=np.abs(value.ravel())) == 0)
            self._groups.append((v, flat, np.maximum(count, 1.0), zero))
        if self.require and not self._groups:
            raise ClusteringError(
                f"PreserveClusters found no kernel with at most {self.number_of_clusters} "
                f"distinct values (per kernel or per output channel) in model "
                f"{self.model.name!r}. Train the model from strip_clustering(...) (or its "
                f"quantize_model) and pass the number_of_clusters it was clustered with."
            )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for v, flat, count, zero in self._groups:
            value = ops.convert_to_numpy(v.value)
            means = np.bincount(flat, weights=value.ravel().astype(np.float64)) / count
            means[zero] = 0.0
            v.assign(means[flat].reshape(value.shape).astype(value.dtype))

    @property
    def tracked(self) -> list[str]:
        """Paths of the kernels whose clusters are kept."""
        return [v.path for v, *_ in self._groups]
