"""How the first centroids of a clustered weight are placed: :class:`CentroidInitialization`.

The four methods tensorflow-model-optimization offers, by the same names, computed with
numpy on the weight's values when the wrapper is built:

- ``LINEAR``: evenly spaced between the smallest and the largest weight;
- ``RANDOM``: uniform between them (a fixed seed, so clustering is repeatable);
- ``DENSITY_BASED``: evenly spaced in the weights' cumulative distribution (quantiles),
  so dense regions of the histogram get more centroids;
- ``KMEANS_PLUS_PLUS``: k-means++ seeding (Arthur and Vassilvitskii 2007) with a fixed
  seed: each next centroid is a weight drawn with probability proportional to its
  squared distance to the nearest centroid so far.

And one tfmot does not have:

- ``KMEANS``: those k-means++ seeds refined by Lloyd's iterations until no weight changes
  cluster (what ``sklearn.cluster.KMeans`` does): the centroids start at a local minimum of
  the squared error instead of at sampled weights. tfmot's ``KMEANS_PLUS_PLUS`` stops at
  the seeds, and fine-tuning has to make up the difference: the MLPerf Tiny ResNet-8 of
  tflite_models/mcu, clustered to 8 centroids per output channel (16 on the first and
  last layers), scores 50.4% on the 10,000 CIFAR-10 JPEG test images with the seeds and
  79.0% with ``KMEANS``, against 83.4% unclustered, before any training.

Training then moves the centroids (see :class:`~effkeras.cluster.ClusterWeights`).
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from effkeras.errors import EffkerasError


class ClusteringError(EffkerasError):
    """Weight clustering was asked for something it cannot do (bad argument, layer)."""


class CentroidInitialization(str, enum.Enum):
    """Where the centroids start (tfmot's ``CentroidInitialization``)."""

    LINEAR = "LINEAR"
    RANDOM = "RANDOM"
    DENSITY_BASED = "DENSITY_BASED"
    KMEANS_PLUS_PLUS = "KMEANS_PLUS_PLUS"
    KMEANS = "KMEANS"

    def __str__(self) -> str:
        return self.value


def get(init: Any) -> CentroidInitialization:
    """A :class:`CentroidInitialization` from itself or its name (any case)."""
    if isinstance(init, CentroidInitialization):
        return init
    if isinstance(init, str):
        key = init.rsplit(".", 1)[-1].upper()
        if key in CentroidInitialization.__members__:
            return CentroidInitialization[key]
    names = ", ".join(f"CentroidInitialization.{m}" for m in CentroidInitialization.__members__)
    raise ClusteringError(
        f"cluster_centroids_init must be one of {names} (or its name as a string). "
        f"Received: cluster_centroids_init={init!r}"
    )


def initial_centroids(
    values: np.ndarray, number: int, init: CentroidInitialization | str, seed: int = 0
) -> np.ndarray:
    """``number`` centroids (float32, sorted) for the 1-D array ``values``.

    Args:
        values: the weights to cluster (flattened; may be empty, then all centroids are 0).
        number: how many centroids.
        init: the method (or its name).
        seed: seed of ``RANDOM`` and ``KMEANS_PLUS_PLUS``.
    """
    init = get(init)
    v = np.asarray(values, dtype=np.float64).ravel()
    if number <= 0:
        return np.zeros((0,), np.float32)
    if v.size == 0:
        return np.zeros((number,), np.float32)
    lo, hi = float(v.min()), float(v.max())
    if init is CentroidInitialization.LINEAR:
        c = np.linspace(lo, hi, number)
    elif init is CentroidInitialization.RANDOM:
        c = np.random.default_rng(seed).uniform(lo, hi, number)
    elif init is CentroidInitialization.DENSITY_BASED:
        c = np.quantile(v, np.linspace(0.0, 1.0, number))
    else:
        c = _kmeans_plus_plus(v, number, np.random.default_rng(seed))
        if init is CentroidInitialization.KMEANS:
            c = _lloyd(v, c)
    return np.sort(c).astype(np.float32)


#: Lloyd iterations at most for ``KMEANS`` (1-D k-means converges in far fewer).
LLOYD_ITERATIONS = 300


def _lloyd(v: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Lloyd's k-means in 1-D from ``seeds``: each weight joins its nearest centroid (the
    boundaries are the midpoints of the sorted centroids), each centroid moves to its members'
    mean; until the assignment stops changing. A centroid left with no member stays put."""
    x = np.sort(v)
    c = np.sort(np.asarray(seeds, np.float64))
    labels = None
    for _ in range(LLOYD_ITERATIONS):
        new = np.searchsorted((c[1:] + c[:-1]) / 2.0, x)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = np.bincount(labels, weights=x, minlength=c.size)
        sizes = np.bincount(labels, minlength=c.size)
        c = np.where(sizes > 0, sums / np.maximum(sizes, 1), c)
        c = np.sort(c)
    return c


def _kmeans_plus_plus(v: np.ndarray, number: int, rng: np.random.Generator) -> np.ndarray:
    chosen = [float(v[rng.integers(v.size)])]
    nearest = (v - chosen[0]) ** 2
    for _ in range(1, number):
        total = float(nearest.sum())
        if total <= 0.0:  # fewer distinct values than centroids: repeat the last one
            chosen.append(chosen[-1])
            continue
        pick = float(v[rng.choice(v.size, p=nearest / total)])
        chosen.append(pick)
        nearest = np.minimum(nearest, (v - pick) ** 2)
    return np.asarray(chosen)
