"""Model builders: SGNN and PRADO on projections, an embedding-table baseline, string input.

All three classifiers share one head (``Dense(hidden, relu) -> Dropout -> Dense(classes,
softmax)``) so that they differ only in how text becomes a vector:

- :func:`build_sgnn`: projection ``(T*B,)`` -> dense bottleneck -> head (Ravi and
  Kozareva 2018).
- :func:`build_prado`: per-token projection ``(L, T*B)`` -> projected embedding (a dense
  layer per token) -> 1-D convolutions with attention pooling -> head (Kaliamoorthi et
  al. 2019).
- :func:`build_embedding_baseline`: token ids ``(L,)`` -> ``Embedding(V, d)`` -> average
  over tokens -> head, with :class:`Vocabulary` for the ids.

The deployed models take numbers only and convert with :func:`effkeras.convert.to_tflite`
to builtin int8 ops that TFLite Micro runs. :func:`text_model` wraps one with
:class:`~effkeras.text.layers.StringProjection` so that ``fit`` takes raw strings while the
wrapped model (shared weights) is what you convert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from effkeras.text.layers import AttentionPooling, StringProjection, TableEmbedding
from effkeras.text.projector import Projector, tokenize_bytes


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _check_dropout(dropout: Any) -> float:
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
    return float(dropout)


def _head(x, num_classes: int, hidden: int, dropout: float):
    x = keras.layers.Dense(hidden, activation="relu", name="head_dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)


def _with_projector(model: keras.Model, projector: Projector) -> keras.Model:
    """Remember the projector on the model: ``to_tflite`` stores it in the .tflite file.

    (An attribute of this Python object only: a model loaded from a ``.keras`` file has
    none, so convert that one with ``to_tflite(model, ..., projector=p)``.)
    """
    model._effkeras_projector = projector
    return model


def build_sgnn(
    projector: Projector,
    num_classes: int,
    *,
    bottleneck: int = 64,
    hidden: int = 64,
    dropout: float = 0.2,
    name: str = "sgnn",
) -> keras.Model:
    """SGNN-style classifier: projection -> ``Dense(bottleneck, relu)`` -> head.

    Args:
        projector: a bag-of-features :class:`~effkeras.text.Projector`
            (``max_tokens=None``); the model's input is its ``(T*B,)`` output.
        num_classes: output classes (softmax).
        bottleneck: units of the dense layer on the projection.
        hidden: units of the head's hidden layer.
        dropout: dropout before the classifier (training only).

    ``effkeras.convert.to_tflite`` of the returned model stores ``projector`` in the
    .tflite file's metadata (so the file alone deploys as a text sketch).
    """
    if not isinstance(projector, Projector) or projector.max_tokens is not None:
        raise ValueError(
            f"build_sgnn needs a Projector with max_tokens=None (one vector per text). "
            f"Received: projector={projector!r}"
        )
    num_classes, bottleneck, hidden = (
        _positive(n, v)
        for n, v in (("num_classes", num_classes), ("bottleneck", bottleneck), ("hidden", hidden))
    )
    dropout = _check_dropout(dropout)
    inputs = keras.Input(projector.output_shape, name="projection")
    x = keras.layers.Dense(bottleneck, activation="relu", name="bottleneck")(inputs)
    model = keras.Model(inputs, _head(x, num_classes, hidden, dropout), name=name)
    return _with_projector(model, projector)


def build_prado(
    projector: Projector,
    num_classes: int,
    *,
    embedding_dim: int = 64,
    filters: int = 64,
    kernel_sizes: Sequence[int] = (1, 3),
    hidden: int = 64,
    dropout: float = 0.2,
    name: str = "prado",
) -> keras.Model:
    """PRADO-style classifier: per-token projection -> projected embedding -> conv with
    attention pooling -> head.

    For each kernel size ``k`` two ``Conv1D(filters, k, padding="same")`` layers read the
    projected embeddings: one gives values, one attention logits, and
    :class:`~effkeras.text.layers.AttentionPooling` pools them over the tokens. The pooled
    vectors of all kernel sizes are concatenated.

    Args:
        projector: a :class:`~effkeras.text.Projector` with ``max_tokens=L``; the model's
            input is its ``(L, T*B)`` output (tokens past ``L`` are dropped, short texts
            zero-padded).
        num_classes: output classes (softmax).
        embedding_dim: size of the projected embedding of each token (a dense layer, the
            only "embedding": ``T*B x embedding_dim`` weights, no vocabulary).
        filters: channels of each convolution.
        kernel_sizes: convolution widths, in tokens (word n-gram lengths).
        hidden, dropout: the shared head.

    ``effkeras.convert.to_tflite`` of the returned model stores ``projector`` in the
    .tflite file's metadata (so the file alone deploys as a text sketch).
    """
    if not isinstance(projector, Projector) or projector.max_tokens is None:
        raise ValueError(
            f"build_prado needs a Projector with max_tokens=L (one row per token). "
            f"Received: projector={projector!r}"
        )
    num_classes, embedding_dim, filters, hidden = (
        _positive(n, v)
        for n, v in (
            ("num_classes", num_classes),
            ("embedding_dim", embedding_dim),
            ("filters", filters),
            ("hidden", hidden),
        )
    )
    kernel_sizes = [_positive("kernel_sizes", k) for k in kernel_sizes]
    if not kernel_sizes:
        raise ValueError(f"kernel_sizes must not be empty. Received: kernel_sizes={kernel_sizes!r}")
    dropout = _check_dropout(dropout)
    inputs = keras.Input(projector.output_shape, name="projection")
    e = keras.layers.Dense(embedding_dim, name="projected_embedding")(inputs)
    pooled = []
    for k in kernel_sizes:
        v = keras.layers.Conv1D(filters, k, padding="same", activation="relu", name=f"value_k{k}")(
            e
        )
        a = keras.layers.Conv1D(filters, k, padding="same", name=f"attention_k{k}")(e)
        pooled.append(AttentionPooling(name=f"attention_pool_k{k}")([v, a]))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="concat")(pooled)
    model = keras.Model(inputs, _head(x, num_classes, hidden, dropout), name=name)
    return _with_projector(model, projector)


class Vocabulary:
    """Token -> id for the embedding baseline, with the projector's tokenizer.

    Ids: 0 padding, 1 out of vocabulary, then the ``size - 2`` most frequent training
    tokens (ties broken by the token's bytes, so the vocabulary is deterministic).

    Args:
        texts: training texts.
        size: vocabulary size, padding and OOV included.
        max_tokens: sequence length of :meth:`encode` (truncate, pad with 0).
        tokenizer: the :class:`~effkeras.text.Projector` whose normalization and token
            rules to use (its hashing is not used); default ``Projector()``.
    """

    def __init__(
        self, texts: Iterable[str], size: int, max_tokens: int, tokenizer: Projector | None = None
    ):
        self.size = _positive("size", size)
        if self.size < 3:
            raise ValueError(
                f"size must be at least 3 (pad, OOV, one token). Received: size={size}"
            )
        self.max_tokens = _positive("max_tokens", max_tokens)
        self.tokenizer = tokenizer or Projector()
        counts: Counter[bytes] = Counter()
        for t in texts:
            counts.update(self._tokens(t))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.size - 2]
        self.index = {tok: i + 2 for i, (tok, _) in enumerate(ranked)}

    def _tokens(self, text: str) -> list[bytes]:
        tk = self.tokenizer
        return tokenize_bytes(tk.to_bytes(text), tk.keep_punctuation)

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """Texts -> int32 ids ``(N, max_tokens)``."""
        rows = []
        for t in texts:
            ids = [self.index.get(tok, 1) for tok in self._tokens(t)][: self.max_tokens]
            rows.append(ids + [0] * (self.max_tokens - len(ids)))
        return np.array(rows, np.int32).reshape(-1, self.max_tokens)

    def __len__(self) -> int:
        return self.size


def build_embedding_baseline(
    vocab_size: int,
    max_tokens: int,
    num_classes: int,
    *,
    embedding_dim: int = 64,
    hidden: int = 64,
    dropout: float = 0.2,
    name: str = "embedding_baseline",
) -> keras.Model:
    """The baseline with an embedding table: ids -> ``TableEmbedding(V, d)`` -> mean -> head.

    Input: int32 token ids ``(max_tokens,)`` from :class:`Vocabulary`. The table holds
    ``vocab_size * embedding_dim`` weights: the memory the projection models avoid.
    """
    vocab_size, max_tokens, num_classes, embedding_dim, hidden = (
        _positive(n, v)
        for n, v in (
            ("vocab_size", vocab_size),
            ("max_tokens", max_tokens),
            ("num_classes", num_classes),
            ("embedding_dim", embedding_dim),
            ("hidden", hidden),
        )
    )
    dropout = _check_dropout(dropout)
    inputs = keras.Input((max_tokens,), dtype="int32", name="token_ids")
    x = TableEmbedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = keras.layers.GlobalAveragePooling1D(name="mean_over_tokens")(x)
    return keras.Model(inputs, _head(x, num_classes, hidden, dropout), name=name)


def text_model(model: keras.Model, projector: Projector, name: str | None = None) -> keras.Model:
    """A model that takes raw strings: ``StringProjection(projector)`` then ``model``.

    ``model`` is reused as a layer (its weights are shared), so after
    ``text_model(m, p).fit(texts, labels)`` convert ``m`` itself: the deployed model's
    input is the projection, computed on the device by the C projector.
    (``to_tflite(text_model(m, p), ...)`` does just that, and stores ``p`` in the file.)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model. Received: {type(model).__name__}")
    want = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    if want != projector.output_shape:
        raise ValueError(
            f"The model's input shape {want} is not the projector's output shape "
            f"{projector.output_shape}. Received: projector={projector!r}"
        )
    inputs = keras.Input((), dtype="string", name="text")
    outputs = model(StringProjection(projector, name="string_projection")(inputs))
    return keras.Model(inputs, outputs, name=name or f"{model.name}_text")
