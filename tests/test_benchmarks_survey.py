"""Smoke test of the survey suite (bench/survey.py): every stage, tiny, on random data.

Trains the teacher, a survey model, a distilled student and its channel-pruned version for
one epoch on 128 random CIFAR-shaped images (TensorFlow backend, CPU), converts them
(survey PTQ; effkeras PTQ and QAT with batch-norm folding), evaluates them with LiteRT,
measures the TFLM arena and the nano33ble estimate, and writes the BENCHMARKS.md section
and the tflite_models/ entry into a temporary folder. No ../shared data is needed.
"""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import survey_models as sm  # noqa: E402


def test_augment_keeps_shape_and_flips():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    a = sm.augment(x, rng)
    assert a.shape == x.shape and a.dtype == np.uint8
    one = sm.augment(x[:1], np.random.default_rng(1), shift=0)[0]
    assert np.array_equal(one, x[0]) or np.array_equal(one, x[0, :, ::-1])
    s = sm.scale(x)
    assert s.min() >= -1.0 and s.max() <= 1.0


def test_survey_architecture_matches_published_shapes():
    pytest.importorskip("keras")
    m = sm.survey_cnn(0.05)
    convs = [la for la in m.layers if la.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 32, 3, 3, 6, 6]  # as in wm_005_aug_quantized.tflite
    dense = [la for la in m.layers if la.__class__.__name__ == "Dense"]
    assert [d.units for d in dense] == [26, 10]
    f = sm.survey_cnn(0.05, order="bn_relu")
    assert not any(c.use_bias for c in f.layers if c.__class__.__name__ == "Conv2D")


def test_survey_suite_smoke(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    import results
    import survey

    res = tmp_path / "results.json"
    models = tmp_path / "models"
    out = tmp_path / "r.json"
    models.mkdir()
    stale = models / "survey_w05_effkeras_budget_int8.tflite"  # from an earlier run, not rewritten
    stale.write_bytes(b"old")
    (models / "unrelated.tflite").write_bytes(b"keep")
    assert survey.main(["--smoke", "--results", str(res), "--models", str(models), "--json", str(out)]) == 0
    assert not stale.exists() and (models / "unrelated.tflite").exists()
    doc = results.load(str(res))
    text = results.full_markdown(doc)
    assert doc["suite"] == "survey" and "smoke" in doc["raw"]["info"]["mode"] and "smoke" in text
    assert doc["headline"][0]["met"] in ("yes", "no", "partly") and doc["summary"]["rows"][0][0] == "0.05"
    side = json.loads((models / "survey_w005_effkeras_int8.json").read_text())
    assert side["size_bytes"] == os.path.getsize(models / "survey_w005_effkeras_int8.tflite")
    assert side["arena_bytes"] and side["arena_bytes"] > 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["survey"]["int8_bytes"] > 0 and rows[0]["effkeras"]["int8_bytes"] > 0
    cands = rows[0]["effkeras"]["candidates"]
    assert sorted(c["scope"] for c in cands) == ["all", "head", "head", "per-0.5-0.5-0-0-0.3-0.5-0.5"]
    kd = [c for c in cands if c.get("kd_epochs")]
    assert [c["kd_epochs"] for c in kd] == [1] and "then KL-distilled 1 epochs" in text
    # every candidate says how its student was distilled (the smoke student: effkeras.distill, KL)
    assert all(c["student_kd"] == "kl" for c in cands) and "KL-distilled student" in text
    assert all(0.0 <= c["selection_acc"] <= 1.0 for c in cands)
    again = tmp_path / "again.json"  # --render rewrites the results from an earlier results file alone
    assert survey.main(["--render", str(res), "--results", str(again)]) == 0
    redone = results.load(str(again))
    assert redone["tables"] == doc["tables"] and "Every pruned candidate" in results.full_markdown(redone)
    eff = rows[0]["effkeras"]
    # the smoke runs QAT twice (seeds 0, 1) and quotes the lower median, with both runs' range
    assert len(eff["qat_accs"]) == 2 and eff["qat_acc"] == min(eff["qat_accs"]) and "2 runs)" in text
    if importlib.util.find_spec("tensorflow_model_optimization") is not None:  # the bench extra
        assert eff.get("tfmot_bytes", 0) > 0, eff.get("tfmot_error")
        assert 0.0 <= eff["tfmot_acc"] <= 1.0 and len(eff["tfmot_accs"]) == 2
        assert "tensorflow-model-optimization" in text


def test_median_run_and_spread():
    import survey

    runs = [{"acc": 0.8, "tflite": b"b"}, {"acc": 0.7, "tflite": b"a"}, {"acc": 0.9, "tflite": b"c"}]
    m = survey.median_run(runs)
    assert m["tflite"] == b"b" and m["accs"] == [0.7, 0.8, 0.9]
    assert survey.median_run(runs[:2])["acc"] == 0.7  # even count: the lower median, a run that happened
    assert survey.spread({"qat_acc": 0.8, "qat_accs": m["accs"]}, "qat_acc") == "80.00% (70.00-90.00, 3 runs)"
    assert survey.spread({"qat_acc": 0.8}, "qat_acc") == "80.00%"
    assert survey.spread({}, "qat_acc") == "-"


@pytest.mark.parametrize("n", ["0", "-1"])
def test_qat_repeats_must_be_positive(n, capsys):
    import mcu
    import survey

    for mod in (survey, mcu):
        with pytest.raises(SystemExit) as e:
            mod.parse(["--qat-repeats", n])
        assert e.value.code == 2
        assert f"--qat-repeats must be 1 or more (QAT runs per model). Received: {n}" in capsys.readouterr().err


def test_survey_train_checks_teacher_weights_first(tmp_path, capsys):
    """A wrong --teacher-weights path stops at parse time, not after the pruning epochs."""
    import survey_train

    with pytest.raises(SystemExit) as e:
        survey_train.parse(["--data", "random", "--out", str(tmp_path), "--job", "optimize:0.05:0.4",
                            "--kd-epochs", "1", "--teacher-weights", "bkd_missing.weights.h5"])
    assert e.value.code == 2
    assert "--teacher-weights: no such file" in capsys.readouterr().err
    (tmp_path / "t.weights.h5").write_bytes(b"")
    args = survey_train.parse(["--data", "random", "--out", str(tmp_path), "--job", "distill:0.05",
                               "--teacher-weights", str(tmp_path / "t.weights.h5")])
    assert args.teacher_weights.endswith("t.weights.h5")


def test_load_saved_names_the_bad_file(tmp_path):
    """A corrupt architecture file or weights of another model stop with the file named."""
    pytest.importorskip("keras")
    import keras
    import survey_models as sm

    (tmp_path / "empty.model.json").write_text("")
    (tmp_path / "empty.weights.h5").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"empty.model.json is not a Keras model architecture.*Received: 'empty'"):
        sm.load_saved(str(tmp_path), "empty")
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    big = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    (tmp_path / "m.model.json").write_text(small.to_json())
    big.save_weights(str(tmp_path / "m.weights.h5"))
    with pytest.raises(SystemExit, match=r"m.weights.h5 does not hold the weights of .*Received: 'm'"):
        sm.load_saved(str(tmp_path), "m")
    small.save_weights(str(tmp_path / "m.weights.h5"))
    assert sm.load_saved(str(tmp_path), "m").count_params() == small.count_params()
