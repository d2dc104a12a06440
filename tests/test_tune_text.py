"""effkeras tune on texts beyond the one-process SGNN search of test_tune.py: PRADO from the
command line, a stopped text search continued with --resume, and a text search with two
workers (each rebuilds the projector from the stored config)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from effkeras.cli import main
from effkeras.tune.results import RECORD_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_sms(path):
    rng = np.random.default_rng(1)
    spam = ["win a free prize call now", "free cash claim your reward txt win",
            "urgent prize claim now call 0800", "you won cash text claim to 8888"]
    ham = ["see you at lunch tomorrow", "are we still on for dinner",
           "ok i will call you later", "running late be there soon"]
    lines = [f"{'spam' if i % 3 == 0 else 'ham'}\t{rng.choice(spam if i % 3 == 0 else ham)} {i}"
             for i in range(120)]
    path.write_text("\n".join(lines[i] for i in rng.permutation(len(lines))) + "\n")
    return path


def _trials(out):
    with open(os.path.join(out, "trials.json")) as f:
        return json.load(f)["trials"]


def test_cli_prado_search_then_resume(tmp_path, capsys):
    from effkeras.deploy.featurizer import read_projector

    _tiny_sms(tmp_path / "SMSSpamCollection")
    out = str(tmp_path / "prado")
    base = ["tune", "--dataset", "sms_spam", "--data-dir", str(tmp_path), "--model", "prado",
            "--board", "nano33ble", "--epochs", "1", "--out", out]
    assert main([*base, "--max-trials", "1"]) == 0
    text = capsys.readouterr().out
    assert "prado on sms_spam" in text
    first = _trials(out)
    assert len(first) == 1 and first[0]["trained"] and first[0]["feasible"] is True
    assert main([*base, "--max-trials", "2", "--resume"]) == 0
    assert "(resumed)" in capsys.readouterr().out
    trials = _trials(out)
    assert len(trials) == 2
    assert trials[0]["hyperparameters"] == first[0]["hyperparameters"]
    assert len(trials[0]["attempts"]) == 1  # not run again
    for t in trials:
        assert t["trained"] and t["feasible"] is True
        assert t["size_bytes"] == os.path.getsize(t["model"])
        assert 0.0 <= t["val_int8_accuracy"] <= 1.0
        # the untrained precheck is an upper bound on size: softmax over tokens leaves the
        # attention biases at zero, and the converter stores equal constants once
        with open(os.path.join(out, "search", f"trial_{t['trial_id']}", RECORD_FILE)) as f:
            record = json.load(f)
        pre, final = record["precheck"], record["figures"]
        assert final["size_bytes"] <= pre["size_bytes"] <= final["size_bytes"] + 512
        assert (final["arena_bytes"], final["macs"]) == (pre["arena_bytes"], pre["macs"])
    summary = json.load(open(os.path.join(out, "pareto.json")))
    assert summary["model"] == "prado"
    with open(os.path.join(out, "best.tflite"), "rb") as f:
        projector = read_projector(f.read())
    assert projector is not None  # the PRADO file carries its tokenizer/projection config


def test_text_search_with_two_workers(tmp_path):
    _tiny_sms(tmp_path / "SMSSpamCollection")
    out = str(tmp_path / "par")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "effkeras", "tune", "--dataset", "sms_spam", "--data-dir",
         str(tmp_path), "--model", "sgnn", "--board", "nano33ble", "--max-trials", "2",
         "--epochs", "1", "--workers", "2", "--out", out],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    trials = _trials(out)
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    assert {t["worker"] for t in trials} <= {"worker0", "worker1"}
    assert all(t["trained"] and t["feasible"] is True for t in trials)
    assert os.path.exists(os.path.join(out, "best.tflite"))
