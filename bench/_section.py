"""Write one suite's section into a Markdown file (BENCHMARKS.md) between its own markers.

Every suite owns the text between ``<!-- NAME-suite:begin -->`` and
``<!-- NAME-suite:end -->``: a run replaces that text, or appends the section when the
file has none, and leaves every other suite's section as it was. A file that does not
exist yet is created with the section alone.
"""

from __future__ import annotations

import os
import re


def markers(suite: str) -> tuple[str, str]:
    """The begin and end markers of ``suite``'s section."""
    if not re.fullmatch(r"[a-z0-9_]+", suite):
        raise ValueError(f"suite names are lower-case words. Received: {suite!r}")
    return f"<!-- {suite}-suite:begin -->", f"<!-- {suite}-suite:end -->"


def write_section(path: str, text: str, suite: str) -> None:
    """Put ``text`` (without markers) into ``path`` as ``suite``'s section."""
    begin, end = markers(suite)
    body = text.replace(begin, "").replace(end, "").strip("\n")
    block = f"{begin}\n{body}\n{end}\n"
    old = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    if begin in old and end in old:
        pattern = re.escape(begin) + r".*?" + re.escape(end) + r"\n?"
        new = re.sub(pattern, lambda _: block, old, count=1, flags=re.S)
    elif old.strip():
        new = old.rstrip("\n") + "\n\n" + block
    else:
        new = block
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
