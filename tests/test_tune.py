"""effkeras.tune: Pareto sorting and oracle, board prechecks, tiny searches, CLI, parallel kill.

Every search here is tiny (digits 8x8 or a 120-line SMS file, 1 epoch, 2-3 trials): the file
takes about 2 minutes (107 s here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import keras_tuner
import numpy as np
import pytest

from effkeras.boards import custom_board, get_board
from effkeras.cli import main
from effkeras.tune import (
    BoardTuner,
    Constraints,
    ImageCNN,
    ParetoOracle,
    ResNet8,
    non_dominated_sort,
    objectives,
    pareto_front,
)
from effkeras.tune.results import collect_trials, pareto_trials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- Pareto sorting, no training ------------------------------------------------------------

def test_non_dominated_sort_respects_directions():
    # (accuracy max, size min)
    pts = [(0.9, 100), (0.8, 50), (0.7, 60), (0.95, 200), (0.6, 300)]
    ranks = non_dominated_sort(pts, ["max", "min"])
    assert ranks == [0, 0, 1, 0, 2]
    assert pareto_front(pts, ["max", "min"]) == [0, 1, 3]
    # the other way round, the worst points win
    assert pareto_front(pts, ["min", "max"]) == [4]
    with pytest.raises(ValueError, match="'min' or 'max'.*Received: direction='maximize'"):
        non_dominated_sort(pts, ["maximize", "min"])


def _space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("width", [0.25, 0.5, 1.0], ordered=True)
    hp.Int("stages", 1, 3)
    hp.Boolean("qat")
    return hp


def test_pareto_oracle_front_skips_infeasible_and_mutates_front(tmp_path):
    oracle = ParetoOracle(objectives(), max_trials=12, seed=3, hyperparameters=_space())
    oracle._set_project_dir(str(tmp_path), "p")
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(12):
        trial = oracle.create_trial("tuner0")
        assert trial.status == "RUNNING"
        v = trial.hyperparameters.values
        assert v["width"] in (0.25, 0.5, 1.0) and 1 <= v["stages"] <= 3
        seen.append(dict(v))
        size = 1000 * v["width"] * v["stages"]
        feasible = size < 2000
        acc = float(np.clip(0.5 + 0.2 * v["width"] * v["stages"] + rng.normal(0, 0.01), 0, 1))
        oracle.update_trial(trial.trial_id, {
            "val_int8_accuracy": acc if feasible else 0.0, "tflite_size_bytes": size,
            "latency_ms": size / 100, "arena_bytes": 1.0, "feasible": float(feasible)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    front = oracle.front()
    assert front, "some trials were feasible"
    for t in front:
        assert t.metrics.get_last_value("feasible") == 1.0
    accs = [t.metrics.get_last_value("val_int8_accuracy") for t in front]
    assert accs == sorted(accs, reverse=True)
    assert oracle.get_best_trials(1)[0] is front[0]
    # proposals after the random start are not repeats of earlier ones
    keys = [tuple(sorted(v.items())) for v in seen]
    assert len(set(keys)) == len(keys)


def test_pareto_oracle_mutation_fills_conditional_entries_it_activates():
    """A parent with one stack has no sparsity_1/_2; a mutation to 2 or 3 stacks must give them
    values (it raised KeyError: 'sparsity_2' in the CIFAR-10 search benchmark)."""
    import random

    def space():
        hp = keras_tuner.HyperParameters()
        hp.Boolean("qat")
        hp.Int("stacks", 1, 3, default=3)
        for i in range(3):
            with hp.conditional_scope("stacks", list(range(i + 1, 4))):
                hp.Choice(f"sparsity_{i}", [0.0, 0.25, 0.5], ordered=True, default=0.0)
        return hp

    oracle = ParetoOracle(objectives(), max_trials=5, seed=0, hyperparameters=space())
    parent = space()
    parent.values["stacks"] = 1
    for name in ("sparsity_1", "sparsity_2"):
        parent.values.pop(name, None)
    grown = 0
    for seed in range(300):
        v = oracle._mutate(parent, random.Random(seed))
        assert {f"sparsity_{i}" for i in range(v["stacks"])} <= set(v), v
        assert all(v[f"sparsity_{i}"] in (0.0, 0.25, 0.5) for i in range(v["stacks"]))
        assert not any(f"sparsity_{i}" in v for i in range(v["stacks"], 3)), v
        grown += v["stacks"] > 1
    assert grown > 0  # the case was exercised


def test_pareto_oracle_bad_objectives_say_what_to_write():
    with pytest.raises(ValueError, match=r"two or more keras_tuner.Objective"):
        ParetoOracle([keras_tuner.Objective("val_int8_accuracy", "max")])


def test_constraints_report_every_reason():
    c = Constraints(custom_board(200, 4), max_latency_ms=1.0)
    fig = {"size_bytes": 50_000, "arena_with_margin": 5000, "arena_error": None, "latency_ms": 3.0}
    reasons = c.check(fig)
    assert [r.split(":")[0] for r in reasons] == ["flash", "RAM", "latency"]
    assert "needs 213,840 B" in reasons[0] and "of 204,800 B" in reasons[0]
    assert c.check({**fig, "size_bytes": 1000, "arena_with_margin": 4000, "latency_ms": 0.5}) == []
    with pytest.raises(Exception, match="Received: max_latency_ms=-1"):
        Constraints(get_board("nano33ble"), max_latency_ms=-1)


# -- tiny searches ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from effkeras.data import load_dataset

    ds = load_dataset("digits")
    return ds.x_train[:360], ds.y_train[:360], ds.x_train[360:480], ds.y_train[360:480]


def test_infeasible_trials_are_rejected_before_training(tmp_path, digits):
    x, y, xv, yv = digits
    # 3 KiB of RAM: no CNN's arena (about 4 KB with margin) fits.
    tuner = BoardTuner(ImageCNN((8, 8, 1), 10, max_stages=2), ParetoOracle(objectives(), max_trials=2),
                       Constraints(custom_board(1024, 3)), epochs=50, directory=str(tmp_path))
    t0 = time.monotonic()
    tuner.search(x, y, validation_data=(xv, yv))
    trials = collect_trials(str(tmp_path / "search"))
    assert len(trials) == 2
    for t in trials:
        assert t["status"] == "COMPLETED" and t["feasible"] is False and not t["trained"]
        assert t["stage"] == "precheck" and t["model"] is None
        assert any(r.startswith("RAM: arena needs") and "of 3,072 B" in r for r in t["reasons"])
        assert t["arena_bytes"] > 3072
    # 50 epochs were asked for; nothing trained, so both trials took seconds.
    assert time.monotonic() - t0 < 60
    assert pareto_trials(trials) == [] and tuner.oracle.front() == []


def test_resnet8_search_precheck_equals_trained_model(tmp_path, digits):
    x, y, xv, yv = digits
    tuner = BoardTuner(ResNet8((8, 8, 1), 10, widths=(0.25, 0.5)),
                       ParetoOracle(objectives(), max_trials=2, seed=1),
                       Constraints(get_board("nano33ble")), epochs=1, directory=str(tmp_path))
    tuner.search(x, y, validation_data=(xv, yv))
    trials = collect_trials(str(tmp_path / "search"))
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    for t in trials:
        assert t["trained"] and t["feasible"] is True
        # size, arena and MACs of the untrained, pruned-to-shape model equal the final file's
        assert t["precheck_matches"] is True
        assert 0.0 <= t["val_int8_accuracy"] <= 1.0 and t["latency_ms"] > 0
        assert os.path.getsize(t["model"]) == t["size_bytes"]
        hp = t["hyperparameters"]  # only the active ones: none of stacks not built
        assert all(f"sparsity_{i}" not in hp for i in range(hp["stacks"], 3))
    best = tuner.load_model(tuner.oracle.front()[0])
    assert best[4:8] == b"TFL3"


# -- the CLI -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--dataset", "nope", "--board", "nano33ble"], "Unknown dataset 'nope'. Valid datasets: digits"),
    (["--dataset", "digits", "--board", "nope"], "Unknown board 'nope'"),
    (["--dataset", "digits", "--board", "nano33ble", "--max-trials", "0"],
     "--max-trials must be an integer >= 1. Received: 0"),
    (["--dataset", "digits", "--board", "nano33ble", "--search", "grid"], "Unknown search 'grid'"),
    (["--dataset", "digits", "--board", "custom", "--flash-kb", "100"], "Missing: --ram-kb"),
    (["--dataset", "digits", "--board", "nano33ble", "--resume"], "nothing to continue"),
])
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, needle):
    rc = main(["tune", *args, "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("effkeras: error: ") and needle in err[0]


def test_cli_existing_out_needs_force_or_resume(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    rc = main(["tune", "--dataset", "digits", "--board", "nano33ble", "--out", str(tmp_path)])
    assert rc == 2 and "pass --resume to continue its search or --force" in capsys.readouterr().err


def test_cli_search_then_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["tune", "--dataset", "digits", "--board", "custom", "--flash-kb", "164", "--ram-kb", "256",
            "--epochs", "1", "--limit-train", "500", "--out", out]
    assert main([*base, "--max-trials", "2"]) == 0
    text = capsys.readouterr().out
    assert sum(line.startswith("trial ") for line in text.splitlines()) == 2
    first = json.load(open(os.path.join(out, "trials.json")))["trials"]
    assert len(first) == 2

    assert main([*base, "--max-trials", "3", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "(resumed)" in text
    trials = json.load(open(os.path.join(out, "trials.json")))["trials"]
    assert len(trials) == 3
    for old, new in zip(first, trials[:2], strict=True):  # not run again
        assert new["hyperparameters"] == old["hyperparameters"] and len(new["attempts"]) == 1
    for t in trials:
        assert t["worker"] == "tuner0" and t["feasible"] in (True, False)
        if t["feasible"] is False:  # 164 KiB flash leaves 4 KiB for the model
            assert not t["trained"] and t["size_bytes"] > 4096
            assert any(r.startswith("flash:") for r in t["reasons"])
        else:
            assert t["trained"] and t["size_bytes"] <= 4096
    summary = json.load(open(os.path.join(out, "pareto.json")))
    feasible = [t for t in trials if t["feasible"]]
    assert summary["best"]["val_int8_accuracy"] == max(t["val_int8_accuracy"] for t in feasible)
    assert [o["direction"] for o in summary["objectives"]] == ["max", "min", "min"]
    with open(os.path.join(out, "best.tflite"), "rb") as f:
        assert f.read() == open(summary["best"]["model"], "rb").read()
    assert os.path.exists(os.path.join(out, "best_sketch", "best_sketch.ino"))
    assert os.path.getsize(os.path.join(out, "pareto.png")) > 5000
    assert 0.0 <= summary["best"]["test_int8_accuracy"] <= 1.0


# -- parallel: two workers, one killed mid-trial ---------------------------------------------

def test_two_workers_survive_a_killed_worker(tmp_path):
    out = str(tmp_path / "par")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "effkeras", "tune", "--dataset", "digits", "--board", "nano33ble",
         "--max-trials", "3", "--epochs", "1", "--limit-train", "400", "--workers", "2", "--out", out],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    deadline = time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            for d in sorted(os.listdir(os.path.join(out, "search"))) if os.path.isdir(
                    os.path.join(out, "search")) else []:
                path = os.path.join(out, "search", d, "attempts.jsonl")
                if os.path.exists(path) and open(path).read().strip():
                    attempt = json.loads(open(path).readline())
                    os.kill(attempt["pid"], signal.SIGKILL)  # mid-trial: right after it began
                    killed = (d[len("trial_"):], attempt["worker"])
                    break
            time.sleep(0.1)
        text, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no trial started"
    assert proc.returncode == 0, text[-3000:]
    assert f"{killed[1]} died (killed by SIGKILL); restarting it" in text
    trials = json.load(open(os.path.join(out, "trials.json")))["trials"]
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    retried = next(t for t in trials if t["trial_id"] == killed[0])
    assert [a["worker"] for a in retried["attempts"]] == [killed[1], killed[1]]
    assert retried["attempts"][0]["pid"] != retried["attempts"][1]["pid"]
    assert {t["worker"] for t in trials} <= {"worker0", "worker1"}
    assert os.path.exists(os.path.join(out, "best.tflite"))


# -- text: SGNN on a tiny SMS-format file the test writes -------------------------------------

def _tiny_sms(path):
    rng = np.random.default_rng(0)
    spam = ["win a free prize call now", "free cash claim your reward txt win", "urgent prize "
            "claim now call 0800", "you won cash text claim to 8888"]
    ham = ["see you at lunch tomorrow", "are we still on for dinner", "ok i will call you later",
           "running late be there soon"]
    lines = [f"{label}\t{rng.choice(texts)} {i}" for i in range(120)
             for label, texts in [("spam" if i % 3 == 0 else "ham", spam if i % 3 == 0 else ham)]]
    path.write_text("\n".join(lines[i] for i in rng.permutation(len(lines))) + "\n")
    return path


def test_cli_text_search_sgnn_on_sms_file(tmp_path, capsys):
    from effkeras.runtime import LiteRTRunner

    data = _tiny_sms(tmp_path / "SMSSpamCollection")
    out = str(tmp_path / "text")
    assert main(["tune", "--dataset", "sms_spam", "--data-dir", str(tmp_path), "--model", "sgnn",
                 "--board", "nano33ble", "--max-trials", "2", "--epochs", "1", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "sgnn on sms_spam" in text and sum(ln.startswith("trial ") for ln in text.splitlines()) == 2
    for name in ("trials.json", "pareto.json", "pareto.png", "best.tflite", "config.json"):
        assert os.path.exists(os.path.join(out, name)), name
    trials = json.load(open(os.path.join(out, "trials.json")))["trials"]
    assert len(trials) == 2
    for t in trials:
        assert t["trained"] and t["feasible"] is True and t["precheck_matches"] is True
        assert 0.0 <= t["val_int8_accuracy"] <= 1.0 and t["size_bytes"] == os.path.getsize(t["model"])
        assert {"num_hashes", "bits", "bottleneck", "hidden"} <= set(t["hyperparameters"])
    summary = json.load(open(os.path.join(out, "pareto.json")))
    assert summary["model"] == "sgnn" and summary["dataset"] == "sms_spam"
    best = summary["best"]
    assert 0.0 <= best["test_int8_accuracy"] <= 1.0
    # the best .tflite carries its projector and runs on projected texts
    from effkeras.deploy.featurizer import read_projector

    tflite = open(os.path.join(out, "best.tflite"), "rb").read()
    projector = read_projector(tflite)
    assert projector is not None and projector.num_hashes == best["hyperparameters"]["num_hashes"]
    from effkeras.text import load_sms_spam

    ds = load_sms_spam(data)
    probs = LiteRTRunner(tflite).predict(projector(list(ds.x_test)))
    assert probs.shape == (len(ds.x_test), 2)
    assert float(np.mean(np.argmax(probs, -1) == ds.y_test)) == pytest.approx(best["test_int8_accuracy"])
    sketch = os.path.join(out, "best_sketch")
    assert os.path.exists(os.path.join(sketch, "best_sketch.ino"))
    assert "projector" in open(os.path.join(sketch, "best_sketch.ino")).read().lower()


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "digits", "--model", "sgnn"],
     "--model sgnn is a text model and --dataset digits is an image dataset"),
    (["--dataset", "sms_spam", "--model", "cnn"],
     "--model cnn is an image model and --dataset sms_spam is a text dataset"),
])
def test_cli_text_and_image_mismatch_exits_2(tmp_path, capsys, args, needle):
    rc = main(["tune", *args, "--board", "nano33ble", "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0]


def test_cli_text_search_on_empty_sms_file_exits_2(tmp_path, capsys):
    (tmp_path / "SMSSpamCollection").write_text("", encoding="utf-8")
    rc = main(["tune", "--dataset", "sms_spam", "--data-dir", str(tmp_path), "--model", "sgnn",
               "--board", "nano33ble", "--max-trials", "1", "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err
    assert rc == 2 and "too few training samples" in err and "Received: 0 samples" in err
