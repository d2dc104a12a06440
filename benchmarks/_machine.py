"""What every benchmark run records: the machine, the date, and where the data is."""

from __future__ import annotations

import os

from results import machine as host
from results import now

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine() -> dict[str, str]:
    """uname -a, CPU model, nproc, Python version and the UTC date."""
    return {**host(), "date": now()}


def machine_lines() -> list[str]:
    """The machine as the Markdown bullet lines a suite's output starts with."""
    m = machine()
    return [f"- machine: `{m['uname']}`", f"- CPU: {m['cpu']}; nproc: {m['nproc']}",
            f"- Python {m['python']}; date: {m['date']}"]  # fmt: skip


def default_data_dir() -> str:
    """$EFFKERAS_DATA_DIR, else ../shared/data beside the repository."""
    return os.environ.get("EFFKERAS_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")
