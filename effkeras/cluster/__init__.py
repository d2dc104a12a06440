"""Weight clustering for Keras 3, with the names tensorflow-model-optimization users know.

    from effkeras.cluster import CentroidInitialization, cluster_weights, strip_clustering

    clustered = cluster_weights(model, number_of_clusters=16,
                                cluster_centroids_init=CentroidInitialization.KMEANS_PLUS_PLUS)
    clustered.compile(...)
    clustered.fit(...)                      # no callback needed
    model = strip_clustering(clustered)     # each kernel: at most 16 distinct values

Sparsity-preserving clustering (``preserve_sparsity=True``) keeps a pruned model's zeros;
per-layer arguments go in ``layer_params``. To keep the clusters through quantization-aware
training, train the QAT model of the stripped model with :class:`PreserveClusters`; the
int8 file then holds at most ``number_of_clusters`` values per output channel, which
:func:`effkeras.convert.compress.compress_tflite` turns into TFLM look-up-table compression.

Importing this module registers :class:`ClusterWeights` with Keras serialization
(package ``"effkeras"``), so ``keras.saving.load_model`` needs no ``custom_objects``.
"""

from effkeras.cluster.apply import cluster_weights, strip_clustering, unique_weight_counts
from effkeras.cluster.centroids import CentroidInitialization, ClusteringError
from effkeras.cluster.preserve import PreserveClusters, cluster_assignments
from effkeras.cluster.wrapper import ClusterWeights, is_clusterable

__all__ = [
    "CentroidInitialization",
    "ClusterWeights",
    "ClusteringError",
    "PreserveClusters",
    "cluster_assignments",
    "cluster_weights",
    "is_clusterable",
    "strip_clustering",
    "unique_weight_counts",
]
