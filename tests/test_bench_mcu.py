"""Smoke test of the microcontroller suite (bench/mcu.py + bench/mcu_train.py).

Trains the full ResNet-8, the 12/22/42 one and a channel-pruned full one for one epoch on
128 random CIFAR-shaped images (TensorFlow backend, CPU), channel-prunes the narrow one on
the host, converts every model to int8, evaluates it with LiteRT, profiles it, measures
the TFLM arena and the nano33ble estimate, and writes the BENCHMARKS.md section and the
tflite_models/mcu entries into a temporary folder. No ../shared data is needed.
"""

import json
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)


def test_resnet8_is_the_mlperf_shape():
    pytest.importorskip("keras")
    import mcu_train as mt

    m = mt.resnet8()
    convs = [la for la in m.layers if la.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [16, 16, 16, 32, 32, 32, 64, 64, 64]
    assert sum(la.__class__.__name__ == "Add" for la in m.layers) == 3
    assert 77_000 < m.count_params() < 79_000  # MLPerf Tiny ResNet-8: about 78k
    assert mt.parse_widths("12/22/42") == (12, 22, 42)


def test_mcu_suite_smoke(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    import mcu

    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nother suites stay\n")
    models = tmp_path / "mcu"
    out = tmp_path / "r.json"
    assert mcu.main(["--smoke", "--markdown", str(md), "--models", str(models), "--json", str(out)]) == 0
    text = md.read_text()
    assert "other suites stay" in text and "<!-- mcu-suite:end -->" in text and "smoke" in text
    rows = json.loads(out.read_text())["rows"]
    full = next(r for r in rows if r["stem"] == "full")
    assert full["macs"] == 12_501_632 and full["int8_bytes"] > 0
    assert any(r["stem"].endswith("+prune0.1") for r in rows)
    # QAT ran for the smoke's QAT stem (full), and tfmot QAT of the same residual model beside it
    assert full["qat_bytes"] > 0 and 0 <= full["qat_acc"] <= 1
    assert full["tfmot_bytes"] > 0 and 0 <= full["tfmot_acc"] <= 1, full.get("tfmot_error")
    assert len(full["qat_accs"]) == len(full["tfmot_accs"]) == 2  # the smoke repeats QAT twice
    assert "| tfmot QAT |" in text
    side = json.loads((models / "resnet8_full_int8.json").read_text())
    assert side["size_bytes"] == os.path.getsize(models / "resnet8_full_int8.tflite")
    assert side["arena_bytes"] and side["arena_bytes"] > 0 and side["suite"] == "mcu"
    for key in ("name", "command", "mode", "recipe", "dataset", "accuracy", "test_samples",
                "nano33ble_estimate_ms", "io"):
        assert key in side


def test_kd_job_distills_a_saved_model_again(tmp_path):
    """``kd:STEM`` loads any saved model of the folder (here a narrow one), distills it from
    ``full`` with effkeras.distill and saves ``STEM_kdN`` beside it with its lineage."""
    pytest.importorskip("tensorflow")
    import mcu_train as mt
    import numpy as np

    common = ["--data", "random", "--out", str(tmp_path), "--epochs", "1",
              "--limit-train", "128", "--limit-test", "32"]
    for job in ("full", "narrow:4/4/4"):
        mt.run_job(mt.parse(common + ["--job", job]))
    info = mt.run_job(mt.parse(common + ["--job", "kd:narrow_4_4_4", "--lr", "1e-2"]))
    assert info["distill_loss"] == "kl" and info["epochs"] == 1
    assert info["source"]["job"] == "narrow:4/4/4" and "log" not in info["source"]
    before = mt.load_saved(str(tmp_path), "narrow_4_4_4")
    after = mt.load_saved(str(tmp_path), "narrow_4_4_4_kd1")
    assert after.count_params() == before.count_params() == info["params"]
    changed = [not np.array_equal(a, b) for a, b in zip(before.get_weights(), after.get_weights(), strict=True)]
    assert any(changed)  # it trained, and the source's files were left as they were
    with pytest.raises(SystemExit, match="no saved model .*Received: 'nope'"):
        mt.run_job(mt.parse(common + ["--job", "kd:nope"]))
