"""The search benchmark (benchmarks/tune_search.py): verdicts, arguments, one tiny real run.

The end-to-end test searches scikit-learn's digits (no files needed), not CIFAR-10.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import tune_search as ts  # noqa: E402


def _row(search, acc, size, val=None):
    return {"search": search, "trials": 4, "feasible": 3, "infeasible": 1, "failed": 0, "wall_s": 60.0,
            "best": None if acc is None else {"hyperparameters": {"width": 0.5}, "size_bytes": size,
                                               "val_int8_accuracy": val if val is not None else acc,
                                               "test_int8_accuracy": acc}}


def test_the_goal_is_met_only_at_least_as_accurate_and_under_the_limit():
    rows = [_row("random", 0.70, 40_000), _row("pareto", 0.83, 60_000), _row("bayesian", None, None)]
    # the 83% model is over 49,248 B: it does not count
    assert ts.best_search(rows)["search"] == "random"
    assert ts.goal_verdict(rows) == "no"
    assert ts.goal_verdict(rows + [_row("hyperband", 0.8202, 49_248)]) == "yes"  # both limits inclusive
    assert ts.goal_verdict(rows + [_row("hyperband", 0.8201, 49_248)]) == "no"
    assert ts.goal_verdict([_row("hyperband", 0.90, 49_249)]) == "no"
    assert ts.goal_verdict([]) == "no"
    # the searches' bests are compared on validation accuracy; the test accuracy is only measured
    picked = ts.best_search([_row("random", 0.85, 40_000, val=0.60), _row("pareto", 0.80, 40_000, val=0.70)])
    assert picked["search"] == "pareto"
    assert ts.goal_verdict([_row("random", 0.85, 40_000, val=0.60), _row("pareto", 0.80, 40_000, val=0.70)]) == "no"
    # the baseline row is no search: it never wins the goal
    assert ts.goal_verdict([_row(ts.BASELINE, 0.95, 40_000)]) == "no"


def test_the_baseline_verdict_compares_test_accuracy_at_the_same_budget():
    base = _row(ts.BASELINE, 0.55, 48_500)
    assert ts.baseline_verdict([_row("random", 0.50, 30_000), base]) == "no"
    assert ts.baseline_verdict([_row("random", 0.55, 30_000), base]) == "yes"
    assert ts.baseline_verdict([_row("random", 0.60, 30_000)]) == "no"  # no baseline: not shown


def test_the_table_shows_every_search_the_baseline_and_the_goal(tmp_path):
    args = ts.parse_args(["--dataset", "digits", "--train", "100", "--out", str(tmp_path)])
    rows = [_row("pareto", 0.61, 20_000), _row("random", 0.64, 30_000), _row(ts.BASELINE, 0.70, 48_000)]
    text = ts.markdown(rows, args, "cmd")
    assert "| random | width=0.5 | 30,000 | 64.00% | 64.00% | 4 (3 / 1 / 0) | 1.0 min |" in text
    assert "| hand-found architecture, same budget |" in text
    assert "| goal: hand-found, published (mcu suite) |" in text and "82.02%" in text
    assert "**no** (the search model best on the validation images: test 64.00% at 30,000 B, random)" in text
    head = ts.headline(rows, args)
    assert [h["met"] for h in head] == ["no", "no"]
    assert "30,000 B, 64.00% (random" in head[0]["result"]
    assert head[1]["result"].startswith("64.00% vs 70.00%")


def test_the_size_board_is_exactly_the_limit():
    board = ts.size_board(49_248, 256)
    assert board.flash_bytes == 49_248 and board.program_flash_kb == 0 and board.ram_bytes == 256 * 1024
    from effkeras.tune import Constraints

    c = Constraints(board)
    fig = {"size_bytes": 49_248, "arena_with_margin": 1000, "arena_error": None, "latency_ms": 1.0}
    assert c.check(fig) == []
    assert c.check({**fig, "size_bytes": 49_249})[0].startswith("flash: needs 49,249 B")


@pytest.mark.parametrize("argv, message", [
    (["--searches", "random,grid"], "--searches takes a comma-separated list"),
    (["--searches", ""], "--searches takes a comma-separated list"),
    (["--max-trials", "0"], "--max-trials must be a positive integer. Received: '0'"),
    (["--epochs", "two"], "--epochs must be a positive integer. Received: 'two'"),
    (["--qat-epochs", "-1"], "--qat-epochs must be an integer >= 0. Received: '-1'"),
    (["--data", "/nonexistent/folder"], "--data folder '/nonexistent/folder' does not exist"),
])
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ts.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_data_folder_without_cifar10_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ts.parse_args(["--data", str(tmp_path)])
    assert exc.value.code == 2
    assert "has neither cifar10_jpg/cifar10_train_jpg.tar.gz nor" in capsys.readouterr().err


def test_a_tiny_search_and_the_baseline_end_to_end_on_digits(tmp_path):
    """A real random search (2 trials) and the hand-found architecture on 100 digits; a second
    run (a Bayesian search, 1 trial) merges into the same table; --report rewrites it."""
    out, res = tmp_path / "out", tmp_path / "r.json"
    common = ["--dataset", "digits", "--train", "100", "--epochs", "1", "--qat-epochs", "0", "--model", "cnn",
              "--out", str(out), "--results", str(res)]
    assert ts.main(common + ["--searches", "random", "--max-trials", "2"]) == 0
    assert ts.main(common + ["--searches", "bayesian", "--max-trials", "1", "--no-baseline"]) == 0
    first = json.loads(res.read_text())["raw"]["rows"]
    # --report runs nothing and writes the same rows
    assert ts.main(common + ["--report", "--run-command", "the run"]) == 0
    doc = json.loads(res.read_text())
    assert doc["raw"]["rows"] == first
    assert any("command: `the run`" in n for n in doc["notes"])
    rows = {r["search"]: r for r in doc["raw"]["rows"]}
    assert set(rows) == {"random", "bayesian", ts.BASELINE}
    for name in ("random", "bayesian"):
        r = rows[name]
        n = 2 if name == "random" else 1
        assert r["trials"] == n and r["feasible"] + r["infeasible"] + r["failed"] == n
        assert r["wall_s"] > 0
        if r["best"]:
            assert r["best"]["size_bytes"] <= ts.MAX_BYTES
            assert 0.0 <= r["best"]["test_int8_accuracy"] <= 1.0
            assert os.path.isfile(out / name / "best.tflite")
    base = rows[ts.BASELINE]["best"]
    # the hand-found architecture at 8x8: per-tensor int8, the last stack pruned, under the limit
    assert base["size_bytes"] <= ts.MAX_BYTES and base["fits"]
    assert set(base["pruning"]) == {"b2_conv1", "b2_conv2", "b2_short"}
    assert doc["suite"] == "tune_search" and [h["met"] for h in doc["headline"]][0] == "no"
    summary = doc["summary"]["rows"]
    assert [r[0] for r in summary] == ["random", "bayesian", "hand-found architecture, same budget",
                                       "goal: hand-found, published (mcu suite)"]
