"""``cluster_weights`` and ``strip_clustering``: wrap layers, or a whole model by cloning.

A model is cloned with ``keras.models.clone_model`` (recursively, so nested Sequential
and Functional models are clustered too); clusterable layers come back wrapped in
:class:`~effkeras.cluster.ClusterWeights` with the original weights copied in and the
centroids placed on them. The user's model is left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from effkeras.cluster.centroids import CentroidInitialization, ClusteringError
from effkeras.cluster.wrapper import ClusterWeights, check_number_of_clusters, is_clusterable

_ARGS = ("number_of_clusters", "cluster_centroids_init", "preserve_sparsity", "cluster_per_channel")


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    return layer.__class__.from_config(layer.get_config())


def _is_graph_model(model: Any) -> bool:
    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")


def walk_layers(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included (wrappers, not their insides)."""
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(walk_layers(layer))
    return out


def _layer_args(base: dict[str, Any], override: Any, name: str) -> dict[str, Any] | None:
    """The ClusterWeights arguments of one layer (None: leave it unclustered)."""
    if override is None:
        return None
    if isinstance(override, bool) or not isinstance(override, int | np.integer | Mapping):
        raise ClusteringError(
            f"layer_params[{name!r}] must be a number of clusters, a dict of ClusterWeights "
            f"arguments ({', '.join(_ARGS)}) or None (not clustered). Received: {override!r}"
        )
    if not isinstance(override, Mapping):
        override = {"number_of_clusters": override}
    unknown = sorted(set(override) - set(_ARGS))
    if unknown:
        raise ClusteringError(
            f"layer_params[{name!r}] has unknown arguments {unknown}; the arguments are "
            f"{', '.join(_ARGS)}. Received: {dict(override)!r}"
        )
    args = {**base, **override}
    if args.get("number_of_clusters") is None:
        raise ClusteringError(
            f"layer_params[{name!r}] gives no number_of_clusters and none was given for the "
            f"model. Received: {dict(override)!r}"
        )
    return args


def cluster_weights(
    to_cluster: Any,
    number_of_clusters: int | None = None,
    cluster_centroids_init: CentroidInitialization | str = CentroidInitialization.KMEANS_PLUS_PLUS,
    *,
    preserve_sparsity: bool = False,
    cluster_per_channel: bool = False,
    layer_params: Mapping[str, int | Mapping[str, Any] | None] | None = None,
) -> Any:
    """Cluster the weights of a layer, a list of layers or a model's clusterable layers.

    tensorflow-model-optimization's call on Keras 3 (``tfmot.clustering.keras.
    cluster_weights``); no callback is needed while training. After training, call
    :func:`strip_clustering`: each kernel then holds at most ``number_of_clusters``
    distinct values (per output channel with ``cluster_per_channel=True``).

    Args:
        to_cluster: a ``keras.layers.Layer`` (returns a :class:`ClusterWeights` wrapping
            it, for use in ``keras.models.clone_model(..., clone_function=...)``), a list
            of layers (a list of wrappers), or a Sequential/Functional model (returns a
            clustered clone; layers that are not clusterable are kept as they are).
        number_of_clusters: centroids per kernel, at least 2. With ``layer_params`` on a
            model it may be None: then only the layers named there are clustered.
        cluster_centroids_init: :class:`CentroidInitialization` ``KMEANS_PLUS_PLUS``
            (default, tfmot's: k-means++ seeds), ``KMEANS`` (those seeds refined by
            Lloyd's iterations; not in tfmot, a better start), ``LINEAR``,
            ``DENSITY_BASED`` or ``RANDOM``.
        preserve_sparsity: keep exact zeros at zero (cluster a pruned, stripped model).
        cluster_per_channel: one set of centroids per output channel.
        layer_params: models only: ``{layer name: number_of_clusters | {argument: value}
            | None}``: the named layers get their own arguments (``None``: not
            clustered); the other clusterable layers get the call's arguments.

    Returns:
        The wrapped layer(s) or the clustered model.

    Raises:
        ClusteringError: a bad argument, an unsupported layer or model, or nothing to
            cluster.
    """
    base = {
        "number_of_clusters": number_of_clusters,
        "cluster_centroids_init": cluster_centroids_init,
        "preserve_sparsity": preserve_sparsity,
        "cluster_per_channel": cluster_per_channel,
    }
    if number_of_clusters is not None or not layer_params:
        check_number_of_clusters(number_of_clusters)
    if layer_params is not None and not isinstance(to_cluster, keras.Model):
        raise ClusteringError(
            f"layer_params applies when clustering a model; to_cluster is a "
            f"{type(to_cluster).__name__}. Wrap each layer with its own arguments instead."
        )
    if layer_params is not None and not isinstance(layer_params, Mapping):
        raise ClusteringError(
            f"layer_params must be a dict of layer name -> number of clusters, dict or None. "
            f"Received: {type(layer_params).__name__}"
        )
    if isinstance(to_cluster, list | tuple):
        return [ClusterWeights(layer, **base) for layer in to_cluster]
    if isinstance(to_cluster, keras.Model):
        if not _is_graph_model(to_cluster):
            raise ClusteringError(
                f"cluster_weights clones Sequential and Functional models; "
                f"{type(to_cluster).__name__} {to_cluster.name!r} is a subclassed model. Wrap "
                f"its layers where you build them instead: self.dense = "
                f"cluster_weights(keras.layers.Dense(64), number_of_clusters=16)."
            )
        return _cluster_model(to_cluster, base, dict(layer_params or {}))
    if isinstance(to_cluster, keras.layers.Layer):
        return ClusterWeights(to_cluster, **base)
    raise ClusteringError(
        f"cluster_weights takes a keras layer, a list of layers or a Keras 3 model. "
        f"Received: {type(to_cluster).__module__}.{type(to_cluster).__name__}"
    )


def _cluster_model(model: keras.Model, base: dict, layer_params: dict) -> keras.Model:
    names = {layer.name for layer in walk_layers(model)}
    missing = sorted(set(layer_params) - names)
    if missing:
        raise ClusteringError(
            f"layer_params names layers that {model.name!r} does not have: {missing}. "
            f"Its layers: {sorted(names)[:20]}"
        )
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, ClusterWeights):
            raise ClusteringError(
                f"Layer {layer.name!r} of {model.name!r} is already clustered; strip "
                f"clustering first (strip_clustering) or cluster the original model."
            )
        if type(layer).__name__ in ("PruneLowMagnitude", "ChannelFollower"):
            raise ClusteringError(
                f"Layer {layer.name!r} of {model.name!r} is being pruned. Strip pruning "
                f"first (effkeras.prune.strip_pruning), then cluster with "
                f"preserve_sparsity=True to keep its zeros."
            )
        copy = _copy(layer)
        pairs.append((layer, copy))
        if not is_clusterable(layer):
            if layer.name in layer_params and layer_params[layer.name] is not None:
                raise ClusteringError(
                    f"layer_params names {layer.name!r}, a {type(layer).__name__}, which "
                    f"cannot be clustered (clusterable: Dense, Conv, DepthwiseConv, "
                    f"SeparableConv, or a get_clusterable_weights() method)."
                )
            return copy
        if layer.name in layer_params:
            args = _layer_args(base, layer_params[layer.name], layer.name)
        else:
            args = base if base["number_of_clusters"] is not None else None
        if args is None:
            return copy
        return ClusterWeights(copy, **args)

    clustered = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    if not clustered.built and model.built and model.inputs:
        clustered.build(model.inputs[0].shape)
    for old, new in pairs:
        if old.built and old.weights:
            if not new.built:
                raise ClusteringError(
                    f"Layer {old.name!r} was not rebuilt by cloning {model.name!r}; build the "
                    f"model with a keras.Input before clustering it."
                )
            new.set_weights(old.get_weights())
    wrapped = [layer for layer in walk_layers(clustered) if isinstance(layer, ClusterWeights)]
    for layer in wrapped:
        layer.initialize_clusters()  # on the copied weights, not the clone's random ones
    if not wrapped:
        raise ClusteringError(
            f"No layer of {model.name!r} can be clustered: it has no Dense, Conv or "
            f"DepthwiseConv/SeparableConv layer (or layer_params left them all out)."
        )
    return clustered


def _stripped_layer(wrapper: ClusterWeights) -> tuple[keras.layers.Layer, list[np.ndarray]]:
    """A copy of the wrapped layer holding the clustered weights."""
    inner = wrapper.layer
    clustered = {id(w): v for w, v in zip(wrapper.clusterable_weights,
                                          wrapper.clustered_weights(), strict=True)}
    values = [clustered.get(id(w), None) for w in inner.weights]
    values = [ops.convert_to_numpy(w.value) if v is None else v
              for w, v in zip(inner.weights, values, strict=True)]
    return _copy(inner), values


def strip_clustering(to_strip: Any) -> Any:
    """The plain Keras model (or layer) with every kernel set to its clustered values.

    Every :class:`ClusterWeights` becomes a copy of its wrapped layer whose clusterable
    weights are ``centroids[pulling_indices]``: at most ``number_of_clusters`` distinct
    values a kernel (a channel with ``cluster_per_channel``), zeros kept with
    ``preserve_sparsity``. Convert the result (:func:`effkeras.convert.to_tflite`),
    compress it (:func:`effkeras.convert.compress.compress_tflite`), or quantize it
    and keep the clusters through QAT (:class:`~effkeras.cluster.PreserveClusters`).

    Args:
        to_strip: a model from :func:`cluster_weights` (any Sequential/Functional model
            holding :class:`ClusterWeights`) or one ``ClusterWeights`` layer.

    Returns:
        A new model (or layer); the argument is left untouched.
    """
    if isinstance(to_strip, ClusterWeights):
        copy, values = _stripped_layer(to_strip)
        shapes = getattr(to_strip.layer, "_build_shapes_dict", None) or {}
        if to_strip.layer.built:
            if len(shapes) != 1:
                raise ClusteringError(
                    f"Layer {to_strip.layer.name!r} was built without a recorded input shape; "
                    f"strip the model that holds it instead."
                )
            copy.build(next(iter(shapes.values())))
            copy.set_weights(values)
        return copy
    if not isinstance(to_strip, keras.Model) or not _is_graph_model(to_strip):
        raise ClusteringError(
            f"strip_clustering takes a Sequential or Functional model (or a ClusterWeights "
            f"layer). Received: {type(to_strip).__module__}.{type(to_strip).__name__}"
        )
    weights: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, ClusterWeights):
            copy, values = _stripped_layer(layer)
        else:
            copy = _copy(layer)
            values = layer.get_weights() if layer.built else []
        weights.append((copy, values))
        return copy

    stripped = keras.models.clone_model(to_strip, clone_function=clone_function, recursive=True)
    if not stripped.built and to_strip.built and to_strip.inputs:
        stripped.build(to_strip.inputs[0].shape)
    for layer, values in weights:
        if values:
            layer.set_weights(values)
    return stripped


def unique_weight_counts(model: Any, per_channel: bool = False) -> dict[str, int]:
    """Distinct values of each kernel of a (stripped or clustered) model: ``{path: n}``.

    Args:
        model: a Keras model; for a clustered one the clustered values are counted.
        per_channel: the largest count over output channels (the kernel's last axis)
            instead of the count over the whole kernel.
    """
    out: dict[str, int] = {}
    for layer in walk_layers(model):
        if isinstance(layer, ClusterWeights):
            pairs = list(zip(layer.clusterable_weights, layer.clustered_weights(), strict=True))
        elif is_clusterable(layer) and layer.built:
            names = [w for w in ("kernel", "depthwise_kernel", "pointwise_kernel")
                     if hasattr(layer, w)]
            ws = [getattr(layer, n) for n in names]
            pairs = [(w, ops.convert_to_numpy(w.value)) for w in ws]
        else:
            continue
        for w, value in pairs:
            if per_channel and value.ndim >= 2:
                flat = value.reshape(-1, value.shape[-1])
                out[w.path] = max(len(np.unique(flat[:, c])) for c in range(flat.shape[1]))
            else:
                out[w.path] = len(np.unique(value))
    return out
