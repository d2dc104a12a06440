"""Build the notebooks from their sources in src/ and execute them, saving real outputs.

Each source is a Python file in "percent" format: a line ``# %%`` starts a code cell and
``# %% [markdown]`` a Markdown cell (its lines are comments, ``# `` is stripped). Run

    python notebooks/make_notebooks.py            # build + execute every notebook
    python notebooks/make_notebooks.py 01_quickstart

from the repository root (``make notebooks`` does this). tests/test_notebooks.py checks
that each .ipynb matches its source and runs top to bottom.
"""

from __future__ import annotations

import os
import sys

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "src")
TIMEOUT = 600


def cells_from_source(text: str) -> list:
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        else:
            lines.append(line)
    flush()
    return cells


def build(name: str) -> nbformat.NotebookNode:
    with open(os.path.join(SRC, name + ".py"), encoding="utf-8") as f:
        nb = nbformat.v4.new_notebook(cells=cells_from_source(f.read()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, workdir: str) -> nbformat.NotebookNode:
    env_before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                       resources={"metadata": {"path": workdir}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = env_before
    return nb


def names() -> list[str]:
    return sorted(f[:-3] for f in os.listdir(SRC) if f.endswith(".py"))


def main(argv: list[str]) -> int:
    for name in argv or names():
        print(f"executing {name} ...", flush=True)
        nb = execute(build(name), HERE)
        nbformat.write(nb, os.path.join(HERE, name + ".ipynb"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
