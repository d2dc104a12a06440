"""Weight clustering (effkeras.cluster): wrappers, training, strip, sparsity, save/load, QAT.

Tiny models on scikit-learn's digits (8x8); each test trains for an epoch at most.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import ops  # noqa: E402

from effkeras.cluster import (  # noqa: E402
    CentroidInitialization,
    ClusteringError,
    ClusterWeights,
    PreserveClusters,
    cluster_weights,
    strip_clustering,
    unique_weight_counts,
)
from effkeras.cluster.centroids import initial_centroids  # noqa: E402

K = 6


@pytest.fixture(scope="module")
def data():
    from effkeras.data import load_dataset

    ds = load_dataset("digits")
    return ds.x_train[:600], ds.y_train[:600]


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, activation="relu", name="dw")(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, name="dense")(h)
    return keras.Model(inp, out)


def _compile(model: keras.Model) -> keras.Model:
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _kernel(model: keras.Model, name: str) -> np.ndarray:
    return ops.convert_to_numpy(model.get_layer(name).kernel.value)


def test_centroid_initializations():
    v = np.random.default_rng(0).normal(size=500)
    lin = initial_centroids(v, 5, CentroidInitialization.LINEAR)
    np.testing.assert_allclose(lin, np.linspace(v.min(), v.max(), 5), rtol=1e-6)
    dens = initial_centroids(v, 5, CentroidInitialization.DENSITY_BASED)
    np.testing.assert_allclose(dens, np.quantile(v, np.linspace(0, 1, 5)), rtol=1e-5)
    # density-based puts more centroids where the weights are: the middle gap is smaller
    assert dens[2] - dens[1] < lin[2] - lin[1]
    rand = initial_centroids(v, 5, CentroidInitialization.RANDOM)
    assert v.min() <= rand.min() and rand.max() <= v.max()
    np.testing.assert_array_equal(rand, initial_centroids(v, 5, "random"))  # seeded
    km = initial_centroids(v, 5, CentroidInitialization.KMEANS_PLUS_PLUS)
    assert np.isin(km, v.astype(np.float32)).all() and len(set(km)) == 5


def _sse(v: np.ndarray, c: np.ndarray) -> float:
    return float(np.sum(np.min((v[:, None] - c[None].astype(np.float64)) ** 2, axis=1)))


def test_kmeans_init_is_lloyds_fixed_point_from_the_kmeans_plus_plus_seeds():
    v = np.concatenate([np.random.default_rng(1).normal(m, 0.1, 200) for m in (-2, -1, 0, 1.5, 3)])
    seeds = initial_centroids(v, 5, CentroidInitialization.KMEANS_PLUS_PLUS)
    km = initial_centroids(v, 5, "kmeans")
    assert _sse(v, km) < _sse(v, seeds)
    assert np.all(np.diff(km) > 0)
    # a fixed point: every centroid is the mean of the weights nearest to it
    nearest = np.argmin(np.abs(v[:, None] - km[None]), axis=1)
    for i, c in enumerate(km):
        assert abs(v[nearest == i].mean() - c) < 1e-5
    np.testing.assert_array_equal(km, initial_centroids(v, 5, CentroidInitialization.KMEANS))  # seeded
    # fewer distinct values than centroids: every value is a centroid, nothing is NaN
    few = initial_centroids(np.array([0.5, 0.5, -1.0]), 4, CentroidInitialization.KMEANS)
    assert np.isfinite(few).all() and {-1.0, 0.5} <= set(few.tolist())


def test_kmeans_init_clusters_a_kernel_closer_than_the_tfmot_seeds():
    model = _model()
    err = {}
    for init in (CentroidInitialization.KMEANS_PLUS_PLUS, CentroidInitialization.KMEANS):
        clustered = cluster_weights(model, number_of_clusters=K, cluster_centroids_init=init,
                                    cluster_per_channel=True)
        layer = clustered.get_layer("cluster_conv")
        err[init] = float(np.sum((layer.clustered_weights()[0] - _kernel(model, "conv")) ** 2))
    assert err[CentroidInitialization.KMEANS] < err[CentroidInitialization.KMEANS_PLUS_PLUS]


@pytest.mark.parametrize("init", list(CentroidInitialization))
def test_every_init_clusters_each_kernel_to_k_values(init):
    model = _model()
    clustered = cluster_weights(model, number_of_clusters=K, cluster_centroids_init=init)
    counts = unique_weight_counts(clustered)
    assert len(counts) == 3 and all(1 < n <= K for n in counts.values())
    assert unique_weight_counts(model)["conv/kernel"] > K  # the user's model is untouched


def test_training_moves_centroids_and_strip_keeps_k_values(data):
    x, y = data
    clustered = _compile(cluster_weights(_model(), number_of_clusters=K))
    wrapper = clustered.get_layer("cluster_dense")
    before = ops.convert_to_numpy(wrapper.cluster_centroids[0].value).copy()
    loss = clustered.fit(x, y, epochs=2, batch_size=64, verbose=0).history["loss"]
    assert loss[-1] < loss[0]
    assert not np.allclose(ops.convert_to_numpy(wrapper.cluster_centroids[0].value), before)
    stripped = strip_clustering(clustered)
    assert not any(isinstance(layer, ClusterWeights) for layer in stripped.layers)
    counts = unique_weight_counts(stripped)
    assert set(counts) == {"conv/kernel", "dw/kernel", "dense/kernel"}
    assert all(n <= K for n in counts.values())
    centroids = set(ops.convert_to_numpy(wrapper.cluster_centroids[0].value).ravel())
    assert set(np.unique(_kernel(stripped, "dense"))) <= centroids
    np.testing.assert_allclose(stripped.predict(x[:32], verbose=0),
                               clustered.predict(x[:32], verbose=0), atol=1e-5)


def test_per_layer_clustering_three_ways():
    model = _model()
    by_name = cluster_weights(model, number_of_clusters=K,
                              layer_params={"dense": 3, "dw": None, "conv": {"cluster_per_channel": True}})
    assert not isinstance(by_name.get_layer("dw"), ClusterWeights)
    assert by_name.get_layer("cluster_dense").number_of_clusters == 3
    assert by_name.get_layer("cluster_conv").cluster_per_channel
    only = cluster_weights(model, layer_params={"dense": 4})
    assert [type(layer).__name__ for layer in only.layers if isinstance(layer, ClusterWeights)] == [
        "ClusterWeights"]
    # tfmot's form: wrap layers in clone_model's clone_function
    cloned = keras.models.clone_model(
        model, clone_function=lambda layer: cluster_weights(layer, number_of_clusters=4)
        if isinstance(layer, keras.layers.Dense) else layer.__class__.from_config(layer.get_config()))
    assert isinstance(cloned.get_layer("cluster_dense"), ClusterWeights)
    wrapped = cluster_weights([keras.layers.Dense(3), keras.layers.Conv2D(2, 3)], number_of_clusters=4)
    assert all(isinstance(w, ClusterWeights) for w in wrapped)


def test_per_channel_clustering_counts_per_channel():
    clustered = cluster_weights(_model(), number_of_clusters=3, cluster_per_channel=True)
    stripped = strip_clustering(clustered)
    per_kernel = unique_weight_counts(stripped)
    per_channel = unique_weight_counts(stripped, per_channel=True)
    assert per_channel["conv/kernel"] <= 3 < per_kernel["conv/kernel"]
    assert per_channel["dense/kernel"] <= 3 < per_kernel["dense/kernel"]
    dw = _kernel(stripped, "dw")  # (3, 3, 8, 1): one set per depthwise channel
    assert max(len(np.unique(dw[:, :, c, 0])) for c in range(8)) <= 3


def test_preserve_sparsity_keeps_pruned_zeros(data):
    x, y = data
    model = _model()
    rng = np.random.default_rng(0)
    for name in ("conv", "dense"):
        w = _kernel(model, name)
        model.get_layer(name).kernel.assign(w * (rng.uniform(size=w.shape) > 0.5))
    zeros = {name: _kernel(model, name) == 0 for name in ("conv", "dense")}
    results = {}
    for preserve in (True, False):
        c = _compile(cluster_weights(model, number_of_clusters=4, preserve_sparsity=preserve))
        c.fit(x, y, epochs=1, batch_size=64, verbose=0)
        results[preserve] = strip_clustering(c)
    kept, lost = results[True], results[False]
    for name in ("conv", "dense"):
        assert (_kernel(kept, name)[zeros[name]] == 0).all()
        assert len(np.unique(_kernel(kept, name))) <= 4  # zero is one of the 4 values
        assert (_kernel(lost, name)[zeros[name]] != 0).any()


def test_save_load_and_resume(tmp_path, data):
    x, y = data
    clustered = _compile(cluster_weights(_model(), number_of_clusters=K,
                                         cluster_centroids_init="density_based",
                                         layer_params={"dense": {"preserve_sparsity": True}}))
    clustered.fit(x, y, epochs=1, batch_size=64, verbose=0)
    wrapper = clustered.get_layer("cluster_dense")
    config = wrapper.get_config()
    assert {k: config[k] for k in ("number_of_clusters", "cluster_centroids_init",
                                   "preserve_sparsity", "cluster_per_channel")} == {
        "number_of_clusters": K, "cluster_centroids_init": "DENSITY_BASED",
        "preserve_sparsity": True, "cluster_per_channel": False}
    path = tmp_path / "clustered.keras"
    clustered.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x[:32], verbose=0), clustered.predict(x[:32], verbose=0))
    for a, b in zip(loaded.get_layer("cluster_dense").weights, wrapper.weights, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(a.value), ops.convert_to_numpy(b.value))
    steps = int(loaded.optimizer.iterations.numpy())
    assert steps == int(clustered.optimizer.iterations.numpy()) > 0
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)  # resume: same optimizer state
    assert int(loaded.optimizer.iterations.numpy()) > steps
    assert all(n <= K for n in unique_weight_counts(strip_clustering(loaded)).values())


def test_clear_errors():
    with pytest.raises(ClusteringError, match=r"Received: number_of_clusters=1"):
        cluster_weights(_model(), number_of_clusters=1)
    with pytest.raises(ClusteringError, match=r"Received: cluster_centroids_init='kmeans\+\+'"):
        cluster_weights(keras.layers.Dense(2), 4, cluster_centroids_init="kmeans++")
    with pytest.raises(ClusteringError, match="Cannot cluster layer 'bn'"):
        ClusterWeights(keras.layers.BatchNormalization(name="bn"), 4)
    with pytest.raises(ClusteringError, match="already clustered"):
        ClusterWeights(ClusterWeights(keras.layers.Dense(2), 4), 4)
    with pytest.raises(ClusteringError, match=r"does not have: \['nope'\]"):
        cluster_weights(_model(), 4, layer_params={"nope": 2})
    with pytest.raises(ClusteringError, match="BatchNormalization, which cannot be clustered"):
        cluster_weights(_model(), 4, layer_params={"bn": 2})

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ClusteringError, match="subclassed model"):
        cluster_weights(Sub(), 4)


def test_cluster_preserving_qat_keeps_k_values_in_the_int8_file(data):
    from effkeras.convert import read_tflite, to_tflite
    from effkeras.quantize import quantize_model

    x, y = data
    stripped = strip_clustering(cluster_weights(_model(), number_of_clusters=K))
    results = {}
    for preserve in (True, False):
        qat = _compile(quantize_model(stripped, calibration_data=x[:128]))
        callbacks = [PreserveClusters(K)] if preserve else []
        qat.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=callbacks)
        results[preserve] = qat
    kernels = [v for v in results[True].trainable_variables if v.path.endswith("kernel")]
    assert len(kernels) == 3
    assert all(len(np.unique(ops.convert_to_numpy(v.value))) <= K for v in kernels)
    drifted = [v for v in results[False].trainable_variables if v.path.endswith("kernel")]
    assert any(len(np.unique(ops.convert_to_numpy(v.value))) > K for v in drifted)
    parsed = read_tflite(to_tflite(results[True], quantize="int8"))
    filters = [parsed.tensors[op.inputs[1]] for op in parsed.ops
               if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert len(filters) == 3
    for t in filters:
        values = parsed.tensor_data(t)
        axis = t.quantization.axis if t.quantization.per_channel else None
        rows = [values] if axis is None else list(np.moveaxis(values, axis, 0))
        assert max(len(np.unique(r)) for r in rows) <= K
    with pytest.raises(ClusteringError, match="found no kernel with at most"):
        _compile(_model()).fit(x[:64], y[:64], epochs=1, verbose=0, callbacks=[PreserveClusters(K)])
