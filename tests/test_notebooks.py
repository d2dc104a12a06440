"""The notebooks match their sources in notebooks/src and run top to bottom."""

from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NB_DIR = os.path.join(ROOT, "notebooks")
spec = importlib.util.spec_from_file_location("make_notebooks", os.path.join(NB_DIR, "make_notebooks.py"))
make_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_notebooks)
NAMES = make_notebooks.names()


def test_every_source_has_a_saved_notebook_with_outputs():
    import nbformat

    assert len(NAMES) >= 2
    for name in NAMES:
        path = os.path.join(NB_DIR, name + ".ipynb")
        assert os.path.exists(path), f"run `make notebooks` to build {name}.ipynb"
        saved = nbformat.read(path, as_version=4)
        built = make_notebooks.build(name)
        assert [c.source for c in saved.cells] == [c.source for c in built.cells], (
            f"{name}.ipynb is out of date with src/{name}.py: run `make notebooks`"
        )
        code = [c for c in saved.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{name}: saved without outputs"
        assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name):
    nb = make_notebooks.execute(make_notebooks.build(name), NB_DIR)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    assert errors == []
