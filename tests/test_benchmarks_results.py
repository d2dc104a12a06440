"""The benchmark results files, the recipes and the files generated from them.

BENCHMARKS.md and the README's results table are generated from the committed results
files; these tests prove that they are in sync (``python -m benchmarks report --check``),
that every file follows the schema, and that the renderer keeps a suite to one screen.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import recipes  # noqa: E402
import results  # noqa: E402

MD = """## A suite (`cmd --x`)

- machine: `vm`
- date: 2026-01-01 00:00 UTC

| model | acc |
|---|---:|
| a \\| b | 1.0 |
| c | 0.5 |

Every candidate:

| name | bytes |
|---|---:|
| x | 10 |

- **Target: met.** A note
  that wraps.
"""


def test_parse_markdown_keeps_tables_titles_and_notes():
    tables, notes = results.parse_markdown(MD)
    assert [t["columns"] for t in tables] == [["model", "acc"], ["name", "bytes"]]
    assert tables[0]["rows"] == [["a | b", "1.0"], ["c", "0.5"]]  # an escaped pipe stays in its cell
    assert tables[0]["title"] == "A suite (`cmd --x`)" and tables[1]["title"] == "Every candidate:"
    assert "- **Target: met.** A note that wraps." in notes and "- machine: `vm`" in notes


def _doc(**kw):
    base = dict(title="A suite", markdown=MD, headline=[{"what": "w", "result": "r", "target": "t", "met": "yes"}],
                date="2026-01-01 00:00 UTC", machine_info={"cpu": "cpu", "nproc": "2", "python": "3.11"})
    return results.build("demo", **{**base, **kw})


def test_build_checks_the_schema_and_names_the_field():
    doc = _doc()
    assert doc["summary"] == doc["tables"][0] and doc["command"] == "python -m benchmarks demo"
    with pytest.raises(results.ResultsError, match="met must be one of .*Received: met='maybe'"):
        _doc(headline=[{"what": "w", "result": "r", "target": "t", "met": "maybe"}])
    with pytest.raises(results.ResultsError, match="'headline' must list at least one row"):
        _doc(headline=[])
    bad = dict(doc, summary={"title": "s", "columns": ["a", "b"], "rows": [["1"]]})
    with pytest.raises(results.ResultsError, match="has 2 columns but a row of 1"):
        results.check(bad, "x.json")


def test_load_refuses_missing_and_broken_files(tmp_path):
    with pytest.raises(results.ResultsError, match="no results file at .*run the suite first"):
        results.load(str(tmp_path / "none.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(results.ResultsError, match="not a readable JSON results file"):
        results.load(str(tmp_path / "bad.json"))
    (tmp_path / "old.json").write_text(json.dumps({"schema": 0}))
    with pytest.raises(results.ResultsError, match="schema must be 1. Received: 0"):
        results.load(str(tmp_path / "old.json"))


def test_a_section_is_one_screen_however_many_rows_the_run_has(tmp_path):
    rows = [[f"m{i}", str(i)] for i in range(200)]
    doc = _doc(summary={"title": "All:", "columns": ["model", "acc"], "rows": rows})
    lines = results.render_section(doc, recipes.RECIPES["qat"], "r.json")
    assert len(lines) <= 40 and "(186 more rows in the results file.)" in "\n".join(lines)
    path = tmp_path / "r.json"
    results.save(str(path), doc)
    assert results.load(str(path)) == json.loads(path.read_text())


def test_headline_rows_are_one_line_each_and_link_into_benchmarks_md():
    doc = _doc(headline=[{"what": "a|b", "result": "x\ny", "target": "t", "met": "no"}])
    table = results.readme_table([(doc, None, "r.json")]).splitlines()
    assert table[0] == results.README_BEGIN and table[-1] == results.README_END
    assert table[3] == "| [a\\|b](BENCHMARKS.md#a-suite) | x y | t | no |"
    readme = f"intro\n{results.README_BEGIN}\nold\n{results.README_END}\nrest\n"
    assert results.replace_readme_table(readme, "NEW") == "intro\nNEW\nrest\n"
    with pytest.raises(results.ResultsError, match="no generated results table"):
        results.replace_readme_table("no markers", "NEW")


def test_every_recipe_names_a_script_and_its_results_file():
    for r in recipes.RECIPES.values():
        assert os.path.isfile(os.path.join(ROOT, "benchmarks", r.script)), r.name
        assert "{results}" in r.args and "{results}" in r.quick_args, r.name
        assert r.results.endswith(".json") and (r.keeps_models == r.results.startswith("tflite_models/")), r.name
        assert r.models and r.steps and r.measures and r.seeds, r.name
    with pytest.raises(KeyError, match="unknown suite 'x'; choose from latency"):
        recipes.get("x")


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_committed_results_file_follows_the_schema(name):
    doc = results.load(os.path.join(ROOT, recipes.RECIPES[name].results))
    assert doc["suite"] == name and doc["headline"] and doc["summary"]["rows"]
    assert len(results.render_section(doc, recipes.RECIPES[name], "x")) <= 45  # one screen


def test_benchmarks_md_and_the_readme_table_are_generated_from_the_results():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "report", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = open(os.path.join(ROOT, "BENCHMARKS.md")).read()
    assert md.startswith("# Benchmarks") and "## Headline" in md
    first_section = md.index("\n## ", md.index("## Headline") + 5)
    headline = md[md.index("## Headline"):first_section]
    assert headline.count("\n| [") == sum(len(results.load(os.path.join(ROOT, r.results))["headline"])
                                           for r in recipes.RECIPES.values())


def test_show_prints_every_table_of_a_suite():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "show", "mcu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.count("\n| ") > 50  # all 52 rows of the main table


def test_results_files_sit_next_to_the_models_they_describe():
    for r in recipes.RECIPES.values():
        if r.keeps_models:
            folder = os.path.dirname(os.path.join(ROOT, r.results))
            assert glob.glob(os.path.join(folder, "*.tflite")), r.name
