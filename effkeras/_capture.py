"""Capture what C/C++ code writes to the process's stdout/stderr file descriptors."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    """Text written to the captured descriptors; filled when the ``with`` block ends."""

    text: str = ""


@contextlib.contextmanager
def capture_fds(fds: tuple[int, ...] = (1, 2)) -> Iterator[Captured]:
    """Redirect file descriptors (default stdout and stderr) into a temporary file.

    C++ code such as the TFLite converter and the TFLM recording allocator writes to the
    descriptors directly, so Python-level redirection does not catch it. The captured
    text is available as ``captured.text`` after the block.
    """
    result = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = {}
        try:
            for fd in fds:
                saved[fd] = os.dup(fd)
                os.dup2(tmp.fileno(), fd)
            yield result
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, dup in saved.items():
                os.dup2(dup, fd)
                os.close(dup)
            tmp.seek(0)
            result.text = tmp.read().decode("utf-8", errors="replace")
