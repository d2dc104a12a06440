"""Run interpreter work on a user's file in a child process, with a memory and a time limit.

LiteRT and TFLM are C++ and trust the flatbuffer far more than they should: hostile or
damaged files have killed them with SIGSEGV, SIGFPE and SIGABRT, and huge shapes ask for
gigabytes. :func:`run_in_child` runs a function in a forked child whose address space is
capped (the parent's size plus ``memory_mb``) and which is killed after ``timeout``
seconds; whatever happens there, the caller gets the function's result or one
:class:`~effkeras.errors.InvalidModelError` that names the stage and what went wrong::

    TFLM could not prepare the model: the interpreter was killed by SIGSEGV (model.tflite)

Limits: ``EFFKERAS_CHILD_MEMORY_MB`` (default 4096 MB above the parent's size) and
``EFFKERAS_CHILD_TIMEOUT`` (default 120 s) override the defaults. Where ``os.fork`` is
missing (Windows) the function runs in this process.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from effkeras import errors
from effkeras.errors import EffkerasError, InvalidModelError

DEFAULT_MEMORY_MB = 4096
DEFAULT_TIMEOUT_S = 120.0


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EffkerasError(f"{name} must be a number. Received: {name}={raw!r}") from None
    if value <= 0:
        raise EffkerasError(f"{name} must be positive. Received: {name}={raw!r}")
    return value


def limits(timeout: float | None = None, memory_mb: float | None = None) -> tuple[float, float]:
    """The time (s) and memory (MB above the parent) limits in force."""
    return (float(timeout) if timeout else _env_number("EFFKERAS_CHILD_TIMEOUT", DEFAULT_TIMEOUT_S),
            float(memory_mb) if memory_mb else _env_number("EFFKERAS_CHILD_MEMORY_MB", DEFAULT_MEMORY_MB))


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _encode_error(exc: BaseException) -> tuple:
    if isinstance(exc, EffkerasError):
        return ("effkeras", type(exc).__name__, str(exc), list(getattr(exc, "ops", []) or []))
    if isinstance(exc, MemoryError):
        return ("memory", "MemoryError", str(exc), [])
    return ("other", type(exc).__name__, str(exc)[:500], [])


def _child(write_fd: int, fn: Callable[..., Any], args: tuple, memory_bytes: int) -> None:
    """In the forked child: cap memory, run, report through the pipe, never return."""
    code = 0
    try:
        import faulthandler

        faulthandler.disable()  # a crash here is reported by the parent, once
        try:
            import resource

            if memory_bytes > 0:
                resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        except (ImportError, ValueError, OSError):  # pragma: no cover - no rlimit here
            pass
        try:
            payload = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            payload = ("error", _encode_error(exc))
        try:
            data = pickle.dumps(payload)
        except Exception as exc:  # noqa: BLE001
            data = pickle.dumps(("error", ("other", type(exc).__name__, f"unpicklable result: {exc}", [])))
        view = memoryview(data)
        while view:
            n = os.write(write_fd, view[:65536])
            view = view[n:]
    except BaseException:  # noqa: BLE001
        code = 3
    finally:
        os._exit(code)


def run_in_child(
    stage: str,
    fn: Callable[..., Any],
    *args: Any,
    source: str = "",
    timeout: float | None = None,
    memory_mb: float | None = None,
) -> Any:
    """``fn(*args)`` in a forked child with a memory and a time limit.

    Args:
        stage: what the child does, as the error's first words ("TFLM could not prepare
            the model").
        fn: a function whose result pickles.
        source: the file the work is about, named in the error.
        timeout: seconds before the child is killed (default: ``limits()``).
        memory_mb: address space the child may add to the parent's (default: ``limits()``).

    Returns:
        What ``fn`` returned.

    Raises:
        InvalidModelError: the child was killed by a signal, ran past the time limit, ran
            out of memory, or raised something other than an effkeras error.
        EffkerasError: the effkeras error ``fn`` raised, rebuilt in this process.
    """
    timeout, memory_mb = limits(timeout, memory_mb)
    where = f" ({source})" if source else ""
    if not hasattr(os, "fork"):  # pragma: no cover - Windows: no isolation available
        return fn(*args)
    memory_bytes = _address_space_bytes() + int(memory_mb * 2**20)
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (coverage cannot see it)
        os.close(read_fd)
        _child(write_fd, fn, args, memory_bytes)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise InvalidModelError(f"{stage}: no answer within {timeout:g} s, the interpreter was stopped{where}. "
                                "A file that hangs the interpreter is damaged; re-export it "
                                "(or raise EFFKERAS_CHILD_TIMEOUT for a very large model).")
    if os.WIFSIGNALED(status):
        name = _signal_name(os.WTERMSIG(status))
        raise InvalidModelError(f"{stage}: the interpreter was killed by {name}{where}. "
                                "Either the file is damaged (check it with effkeras inspect, re-export it) or the "
                                "runtime cannot run this valid model (try the other runtime).")
    if not chunks:
        raise InvalidModelError(f"{stage}: the child process exited with status {os.WEXITSTATUS(status)} "
                                f"and no answer{where}.")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "ok":
        return value
    family, name, message, ops = value
    if family == "effkeras":
        cls = getattr(errors, name, EffkerasError)
        if cls is errors.UnsupportedOpsError or cls is errors.FloatOpsError:
            raise cls(message, ops)
        raise cls(message)
    if family == "memory":
        raise InvalidModelError(f"{stage}: the interpreter ran out of its {memory_mb:g} MB memory limit{where}. "
                                "Tensor shapes in the file are far larger than a device model's; check them "
                                "with effkeras inspect (or raise EFFKERAS_CHILD_MEMORY_MB).")
    raise InvalidModelError(f"{stage}: {name}: {message}{where}")
