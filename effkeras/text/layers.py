"""Keras layers for projection text models.

- :class:`StringProjection`: raw strings -> the :class:`~effkeras.text.Projector`'s
  projection, inside a model, so ``model.fit`` takes strings (TensorFlow backend; it runs
  the Python projector through ``tf.numpy_function`` and is never part of a deployed
  model, whose input is the projection).
- :class:`AttentionPooling`: PRADO's attention pooling over time, ``sum_t softmax_t(a) *
  v``, built from builtin TFLite ops (SOFTMAX, MUL, SUM).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from effkeras.text.projector import Projector


@keras.saving.register_keras_serializable(package="effkeras")
class StringProjection(keras.layers.Layer):
    """Strings -> float32 projections with a :class:`~effkeras.text.Projector`.

    Input: a string tensor of shape ``(batch,)`` or ``(batch, 1)``. Output: ``(batch,
    *projector.output_shape)`` float32 in {-1, 0, 1}. Nothing is learned. Recent texts'
    projections are cached (``cache_size`` entries), so epochs after the first cost
    little. TensorFlow backend only (Keras 3 has no strings on the other backends).

    Args:
        projector: a :class:`~effkeras.text.Projector` or its ``get_config()`` dict.
        cache_size: how many projections to keep (0: none).
    """

    #: marks the layer for effkeras.convert.to_tflite without importing this module
    _effkeras_projection = True

    def __init__(self, projector: Projector | dict[str, Any], cache_size: int = 100_000, **kwargs):
        super().__init__(trainable=False, **kwargs)
        if isinstance(projector, dict):
            projector = Projector.from_config(projector)
        if not isinstance(projector, Projector):
            raise TypeError(
                f"projector must be an effkeras.text.Projector or its config dict. "
                f"Received: projector={projector!r}"
            )
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(
                f"cache_size must be an integer >= 0. Received: cache_size={cache_size!r}"
            )
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                f"StringProjection needs the TensorFlow backend (strings). Received: backend "
                f"{keras.backend.backend()!r}. Project with the Projector in numpy instead: "
                f"model.fit(projector(texts), y)."
            )
        self.projector = projector
        self.cache_size = cache_size
        self._cache: dict[bytes, np.ndarray] = {}

    def _project_one(self, item: Any) -> np.ndarray:
        data = item if isinstance(item, bytes) else str(item).encode("utf-8", "surrogatepass")
        cached = self._cache.get(data)
        if cached is not None:
            return cached
        text = data.decode("utf-8", "surrogatepass")
        row = self.projector.project(text).astype(np.float32)
        if len(self._cache) < self.cache_size:
            self._cache[data] = row
        return row

    def _project_batch(self, texts: np.ndarray) -> np.ndarray:
        flat = np.asarray(texts).reshape(-1)
        if flat.size == 0:
            return np.zeros((0, *self.projector.output_shape), np.float32)
        return np.stack([self._project_one(t) for t in flat])

    def call(self, inputs):
        import tensorflow as tf

        out = tf.numpy_function(self._project_batch, [inputs], tf.float32, stateful=False)
        return tf.reshape(out, (-1, *self.projector.output_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.projector.output_shape)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        base_config.pop("trainable", None)
        config = {"projector": self.projector.get_config(), "cache_size": self.cache_size}
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package="effkeras")
class AttentionPooling(keras.layers.Layer):
    """PRADO's attention pooling: ``sum over time of softmax_time(logits) * values``.

    Call on ``[values, logits]``, both ``(batch, time, channels)``; returns ``(batch,
    channels)``. Each channel gets its own attention distribution over time. Converts to
    SOFTMAX (with TRANSPOSEs around it: softmax runs over time), MUL and SUM, all builtin
    and int8 in TFLite and TFLite Micro. Padding is not masked: zero rows of a padded
    projection give a constant value the model learns to ignore.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        if not isinstance(input_shape, list | tuple) or len(input_shape) != 2:
            raise ValueError(
                f"AttentionPooling is called on [values, logits]. Received: input_shape={input_shape}"
            )
        v, a = (tuple(s) for s in input_shape)
        if len(v) != 3 or v[1:] != a[1:]:
            raise ValueError(
                f"values and logits must both be (batch, time, channels) with equal time and "
                f"channels. Received: values {v}, logits {a}"
            )

    def call(self, inputs):
        values, logits = inputs
        weights = keras.ops.softmax(logits, axis=1)
        return keras.ops.sum(weights * values, axis=1)

    def compute_output_shape(self, input_shape):
        v = input_shape[0]
        return (v[0], v[2])

    def get_config(self) -> dict[str, Any]:
        return super().get_config()


@keras.saving.register_keras_serializable(package="effkeras")
class TableEmbedding(keras.layers.Layer):
    """An embedding table lookup that converts to one TFLite GATHER.

    ``keras.layers.Embedding`` wraps negative ids (``where(ids < 0, ids + V, ids)``), which
    converts to LESS, ADD and SELECT, and TFLite Micro has no SELECT kernel. Ids here are
    ``0 <= id < input_dim`` by contract (see :class:`~effkeras.text.models.Vocabulary`), so
    the lookup is a bare gather (``tf.gather`` on the TensorFlow backend).

    Args:
        input_dim: number of rows (vocabulary size).
        output_dim: embedding size.
        embeddings_initializer: initializer of the table.
    """

    def __init__(
        self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform", **kwargs
    ):
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )

    def call(self, inputs):
        ids = keras.ops.cast(inputs, "int32")
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.gather(self.embeddings, ids)
        return keras.ops.take(self.embeddings, ids, axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self) -> dict[str, Any]:
        base_config = super().get_config()
        config = {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
        return {**base_config, **config}
