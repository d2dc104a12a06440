"""What every benchmark section records: the machine, the date, and where the data is."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine() -> dict[str, str]:
    """uname -a, CPU model, nproc, Python version and the UTC date."""
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    return {"uname": uname, "cpu": cpu, "nproc": str(os.cpu_count()),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip


def machine_lines() -> list[str]:
    """The machine as the Markdown bullet lines BENCHMARKS.md sections start with."""
    m = machine()
    return [f"- machine: `{m['uname']}`", f"- CPU: {m['cpu']}; nproc: {m['nproc']}",
            f"- Python {m['python']}; date: {m['date']}"]  # fmt: skip


def default_data_dir() -> str:
    """$EFFKERAS_DATA_DIR, else ../shared/data beside the repository."""
    return os.environ.get("EFFKERAS_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")
