"""The architectures suite (benchmarks/architectures.py, issue 20 item 8): the tfmot child must
train the weights the effkeras side trained, and the verdicts must follow the figures."""

from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import architectures as arch  # noqa: E402


def test_every_issue_family_is_in_the_table():
    import keras

    issue = {"MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0",
             "EfficientNetB1", "EfficientNetB2", "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2",
             "ResNet50", "ResNet50V2", "DenseNet121", "NASNetMobile"}
    ctors = {ctor for ctor, _ in arch.FAMILIES.values()}
    assert issue <= ctors
    assert {kw.get("minimalistic") for ctor, kw in arch.FAMILIES.values() if ctor.startswith("MobileNetV3")} == {
        None, True}
    assert all(hasattr(keras.applications, c) for c in ctors)


def test_weights_load_by_order_where_the_names_differ():
    """tf_keras names MobileNetV3's layers ``Conv/BatchNorm``, Keras 3 ``conv_bn``: the child
    falls back to the order of the weighted layers, and refuses a shape mismatch."""
    import keras

    src = arch.build(keras, "MobileNetV3SmallMinimalistic", 32)
    saved = arch.weights_by_layer(src)
    renamed = {f"{k.split(':')[0]}:other_{k.split(':', 1)[1]}": v for k, v in saved.items()}
    dst = arch.build(keras, "MobileNetV3SmallMinimalistic", 32)
    for w in dst.weights:
        w.assign(keras.ops.zeros_like(w))
    assert arch.load_weights(dst, renamed) == []
    assert all(np.array_equal(a, b) for a, b in zip(src.get_weights(), dst.get_weights(), strict=True))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(src.predict(x, verbose=0), dst.predict(x, verbose=0), atol=1e-6)

    other = arch.build(keras, "MobileNet", 32)
    problems = arch.load_weights(other, saved)
    assert problems and "weighted layers in the model" in problems[0]


def _row(family, float_acc, ptq, qat, tfmot=None, qat_bytes=300, float_bytes=1000, qat_ops=0):
    r = {"family": family, "params": 1e6, "train": 100, "test": 50, "size": 32, "float_epochs": 1, "qat_epochs": 1, "float_acc": float_acc, "ptq_acc": ptq, "float_bytes": float_bytes,
         "float_train_s": 1.0, "qat_s": 1.0, "tfmot_s": 1.0, "ptq_float_ops": 0}
    if qat is not None:
        r.update(qat_acc=qat, qat_bytes=qat_bytes, qat_float_ops=qat_ops)
    else:
        r["qat_error"] = "FloatOpsError: x"
    if tfmot is not None:
        r["tfmot_acc"] = tfmot
    else:
        r["tfmot_error"] = "RuntimeError: Layer rescaling is not supported"
    return r


def test_headline_follows_the_figures():
    rows = [_row("MobileNet", 0.5, 0.48, 0.49, tfmot=0.47, qat_bytes=260),
            _row("EfficientNetB0", 0.5, 0.45, 0.44, qat_bytes=300)]
    h = {r["what"]: r for r in arch.headline(rows)}
    assert h["QAT int8 vs PTQ int8 of the same float weights (the QAT epoch is also more training)"]["met"] == "partly"
    assert "1 of 2 at least PTQ (-1.00 to +1.00 pt)" in h["QAT int8 vs PTQ int8 of the same float weights (the QAT epoch is also more training)"]["result"]
    assert h["QAT int8 vs tfmot QAT int8"]["met"] == "yes"
    assert "tfmot failed on 1 of 2" in h["QAT int8 vs tfmot QAT int8"]["result"]
    assert h["int8 size vs float .tflite"]["met"] == "partly"  # 0.26x and 0.30x against 0.27x
    assert h["effkeras QAT full int8 on every family"]["met"] == "yes"

    assert "QAT int8 vs PTQ int8 after the same extra float training" not in h
    rows[0]["ptq_more_acc"] = 0.495  # the control: PTQ after the QAT epoch's training in float
    h = {r["what"]: r for r in arch.headline(rows)}
    assert h["QAT int8 vs PTQ int8 after the same extra float training"]["met"] == "no"
    assert "0 of 1 at least PTQ (-0.50 to -0.50 pt)" in h["QAT int8 vs PTQ int8 after the same extra float training"][
        "result"]
    rows.append(_row("DenseNet121", 0.5, 0.4, None))
    h = {r["what"]: r for r in arch.headline(rows)}
    assert h["effkeras QAT full int8 on every family"]["result"].startswith("2 of 3")
    assert h["effkeras QAT full int8 on every family"]["met"] == "partly"
    md = arch.markdown(rows, type("A", (), {"argv": ["--quick"]})(), ["- machine: x"])
    assert "| DenseNet121 (1.00 M) | 50.00% | 40.00% | - | failed | failed |" in md
    assert "- DenseNet121, effkeras QAT: `FloatOpsError: x`" in md


def test_one_family_end_to_end(tmp_path):
    """The effkeras child on a tiny run (made-up images): float, PTQ and QAT files full-int8,
    scored, kept, and the float weights saved for the tfmot child."""
    rng = np.random.default_rng(0)
    npz = tmp_path / "data.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), y_train=rng.integers(0, 10, 64),
             x_test=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), y_test=rng.integers(0, 10, 16))
    assert arch.main(["--one", "MobileNet", "--npz", str(npz), "--out", str(tmp_path), "--float-epochs", "1"]) == 0
    import json

    row = json.load(open(tmp_path / "MobileNet.json"))
    assert "qat_error" not in row, row.get("qat_error")
    assert row["ptq_float_ops"] == 0 and row["qat_float_ops"] == 0
    assert 0 <= row["qat_acc"] <= 1 and row["qat_bytes"] < 0.4 * row["float_bytes"]
    for kind in ("float", "ptq", "qat"):
        assert (tmp_path / f"MobileNet_{kind}.tflite").stat().st_size == row[f"{kind}_bytes"]
    # the control: the saved float weights, one more float epoch, PTQ
    assert arch.main(["--control", "MobileNet", "--npz", str(npz), "--out", str(tmp_path)]) == 0
    row = json.load(open(tmp_path / "MobileNet.json"))
    assert 0 <= row["ptq_more_acc"] <= 1 and "qat_acc" in row  # added to the row, nothing lost
    saved = np.load(tmp_path / "MobileNet_weights.npz")
    assert len({k.split(":")[0] for k in saved.files}) == sum(1 for la in arch.build(
        __import__("keras"), "MobileNet", 32).layers if la.get_weights())
