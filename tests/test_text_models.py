"""SGNN, PRADO and the embedding baseline: raw-string training, int8 conversion, TFLM."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from effkeras.convert import read_tflite, to_tflite  # noqa: E402
from effkeras.runtime import LiteRTRunner, TFLMRunner  # noqa: E402
from effkeras.runtime.quant import quantize  # noqa: E402
from effkeras.runtime.tflm_ops import tflm_unsupported_ops  # noqa: E402
from effkeras.text import (  # noqa: E402
    AttentionPooling,
    Projector,
    StringProjection,
    TableEmbedding,
    Vocabulary,
    build_embedding_baseline,
    build_prado,
    build_sgnn,
    calibration_data,
    text_model,
)

SPAM = [
    "WIN a FREE prize now, call 0800!",
    "Urgent: claim your cash reward txt WIN",
    "free entry to win £100 call now",
]
HAM = [
    "see you at lunch tomorrow?",
    "ok, I'll be home late tonight",
    "can you pick up the kids after school",
]
TEXTS = np.array((SPAM + HAM) * 6, dtype=object)
LABELS = np.array(([1] * 3 + [0] * 3) * 6)


@pytest.fixture(scope="module")
def sgnn():
    p = Projector(16, 8)
    keras.utils.set_random_seed(0)
    model = build_sgnn(p, 2, bottleneck=16, hidden=16)
    trainer = text_model(model, p)
    trainer.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    history = trainer.fit(TEXTS, LABELS, epochs=8, batch_size=8, verbose=0)  # raw strings
    return p, model, trainer, history


def _int8_vs_keras(model, projector, texts):
    x = projector(texts)
    tfl = to_tflite(
        model, quantize="int8", representative_data=calibration_data(x), io_dtype="int8"
    )
    info = read_tflite(tfl)
    inp = info.inputs[0]
    # -1, 0, +1 are stored exactly: scale 1/127, zero point 0.
    assert float(inp.quantization.scales[0]) == pytest.approx(1 / 127, rel=1e-6)
    assert int(inp.quantization.zero_points[0]) == 0
    q = quantize(x, inp)
    assert set(np.unique(q)) <= {-127, 0, 127}
    assert tflm_unsupported_ops(info) == []
    tflm, lite = TFLMRunner(tfl), LiteRTRunner(tfl)
    keras_pred = model.predict(x, verbose=0).argmax(-1)
    tflm_pred = np.array([tflm.invoke_raw([r[None]])[0][0].argmax() for r in q])
    lite_pred = np.array([lite.invoke_raw([r[None]])[0][0].argmax() for r in q])
    assert (tflm_pred == lite_pred).all()
    assert (tflm_pred == keras_pred).mean() >= 0.9
    return tfl, info, tflm_pred


def test_sgnn_trains_on_raw_strings_and_converts(sgnn):
    p, model, trainer, history = sgnn
    assert history.history["accuracy"][-1] == 1.0
    probs = trainer.predict(
        np.array(["call now to WIN free cash", "see you tomorrow at lunch"], dtype=object),
        verbose=0,
    )
    assert probs.argmax(-1).tolist() == [1, 0]
    # The trainer's prediction is the deployable model's prediction on the projection.
    np.testing.assert_allclose(
        trainer.predict(TEXTS[:4], verbose=0), model.predict(p(TEXTS[:4]), verbose=0), atol=1e-6
    )
    tfl, info, pred = _int8_vs_keras(model, p, TEXTS)
    assert info.op_names == ["FULLY_CONNECTED", "SOFTMAX"]
    assert (pred == LABELS).all()


def test_prado_converts_to_builtin_ops_and_runs_in_tflm():
    p = Projector(4, 8, mode="ternary", ngram_range=(1, 1), char_ngrams=(3, 3), max_tokens=12)
    keras.utils.set_random_seed(0)
    model = build_prado(p, 2, embedding_dim=16, filters=8, kernel_sizes=(1, 3), hidden=8)
    assert model.input_shape == (None, 12, 32)
    model.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    history = model.fit(p(TEXTS), LABELS, epochs=10, batch_size=8, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    _, info, pred = _int8_vs_keras(model, p, TEXTS)
    assert {"CONV_2D", "SOFTMAX", "SUM", "MUL"} <= set(info.op_names)
    assert (pred == LABELS).mean() >= 0.9


def test_builders_reject_the_wrong_projector():
    with pytest.raises(ValueError, match="max_tokens=None"):
        build_sgnn(Projector(max_tokens=4), 2)
    with pytest.raises(ValueError, match="max_tokens=L"):
        build_prado(Projector(), 2)
    with pytest.raises(ValueError, match="bottleneck=0"):
        build_sgnn(Projector(), 2, bottleneck=0)
    with pytest.raises(ValueError, match="not the projector's output shape"):
        text_model(build_sgnn(Projector(4, 4), 2), Projector(8, 4))


def test_attention_pooling_is_a_softmax_over_time():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((2, 5, 3)).astype("float32")
    a = rng.standard_normal((2, 5, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(AttentionPooling()([v, a]))
    w = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, (w * v).sum(axis=1), rtol=1e-5)
    with pytest.raises(ValueError, match="equal time"):
        AttentionPooling()([v, a[:, :4]])


def test_layers_serialize(tmp_path, sgnn):
    p, _, trainer, _ = sgnn
    layer = StringProjection(p, cache_size=10)
    clone = StringProjection.from_config(layer.get_config())
    assert clone.projector == p and clone.cache_size == 10
    emb = TableEmbedding(7, 3, name="e")
    assert TableEmbedding.from_config(emb.get_config()).get_config() == emb.get_config()
    with pytest.raises(ValueError, match="input_dim=0"):
        TableEmbedding(0, 3)
    path = tmp_path / "sgnn_text.keras"
    trainer.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(TEXTS[:3], verbose=0), trainer.predict(TEXTS[:3], verbose=0), atol=1e-6
    )


def test_embedding_baseline_and_vocabulary():
    vocab = Vocabulary(TEXTS, 20, 10)
    ids = vocab.encode(["free free ZZZunknown", ""])
    assert ids.shape == (2, 10) and ids.dtype == np.int32
    assert ids[0, 0] == ids[0, 1] >= 2 and ids[0, 2] == 1 and (ids[1] == 0).all()
    assert len(vocab) == 20 and max(vocab.index.values()) == 19
    keras.utils.set_random_seed(0)
    model = build_embedding_baseline(20, 10, 2, embedding_dim=8, hidden=8)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(vocab.encode(TEXTS), LABELS, epochs=2, verbose=0)
    assert model.get_layer("embedding").embeddings.shape == (20, 8)
