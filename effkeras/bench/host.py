"""Time models on this host with LiteRT or TFLite Micro, each model in its own child process.

Why a child process: a corrupt or hostile file could crash an interpreter's C++ code,
and the host process must survive it (the flatbuffer is also checked by
:func:`~effkeras.convert.read_tflite` before any child starts). The child also gives a
clean memory figure: its peak resident set size belongs to this model alone.

The child (``python -m effkeras.bench.host``) serves one JSON request a line on stdin
and answers one JSON line on a private copy of its stdout (C code that prints to fd 1 is
redirected to stderr, so it cannot corrupt the answers):

- ``{"op": "load", "path", "kind", "kernels", "threads", "seed"}``: build the runner,
  fill the inputs with fixed pseudo-random values, time the first inference.
- ``{"op": "run", "n"}``: ``n`` timed invocations; returns their microseconds.
- ``{"op": "finish"}``: peak RSS (and for TFLM the exact arena); the child then exits.

What is timed: ``interpreter.invoke()`` alone, with ``time.perf_counter_ns``; inputs are
set once, outputs are not read. Because each model lives in its own child, several
models can be timed *interleaved* (round-robin blocks), so machine drift hits all alike
(:func:`time_interleaved`).

Memory: ``peak_rss_bytes`` is the child's peak resident set size when it finishes (Linux:
``VmHWM`` of /proc/self/status; elsewhere ``getrusage`` ``ru_maxrss``): Python, numpy, the
runtime and the model together;
``model_rss_bytes`` subtracts the child's resident size just before it loaded the model.
TFLM's own memory is its arena, reported exactly in ``arena_bytes``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from effkeras.errors import EffkerasError, InvalidModelError, UnsupportedOpsError

#: Seconds a child may take to start and load a model.
LOAD_TIMEOUT_S = 180.0


class WorkerError(EffkerasError):
    """The child process failed (timeout or an error it reported)."""


# ---- parent side ---------------------------------------------------------------------
class HostWorker:
    """One child process holding one loaded model. Use as a context manager."""

    def __init__(self, path: str, kind: str, kernels: str = "xnnpack", threads: int = 1):
        self.path = path
        self.kind = kind
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "effkeras.bench.host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            preexec_fn=_limit_memory if hasattr(os, "fork") else None,
        )
        self._buf = b""
        self.loaded = self.request(
            {"op": "load", "path": path, "kind": kind, "kernels": kernels, "threads": threads,
             "seed": 0},
            LOAD_TIMEOUT_S,
        )

    def __enter__(self) -> HostWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace").strip()[-400:]

    def _fail(self, what: str) -> EffkerasError:
        code = self.proc.poll()
        if code is not None and code < 0:
            runtime = {"litert": "LiteRT", "tflm": "TFLM"}.get(self.kind, self.kind)
            return InvalidModelError(
                f"{runtime} could not run the model: the interpreter was killed by "
                f"{_signal_name(-code)} ({what}, {self.path}). Either the file is damaged (re-export it) or "
                f"the runtime cannot run this valid model. {self._stderr_tail()}".strip()
            )
        return WorkerError(f"The {self.kind} child process {what}; {self._stderr_tail()}")

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait (at most ``timeout`` s) for its answer."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.proc.wait(timeout=5)
            raise self._fail(f"exited before '{message['op']}'") from None
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerError(
                    f"The {self.kind} child did not answer '{message['op']}' within "
                    f"{timeout:.0f} s on {self.path}; it was stopped."
                )
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise self._fail(f"exited during '{message['op']}'")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        answer = json.loads(line)
        if not answer.get("ok"):
            self.close()
            error = answer.get("error", "unknown error")
            if answer.get("missing_ops"):
                raise UnsupportedOpsError(error, answer["missing_ops"])
            if answer.get("bad_model"):
                raise InvalidModelError(error)
            raise WorkerError(error)
        return answer

    def run(self, n: int) -> list[float]:
        """``n`` timed inferences; their latencies in microseconds."""
        first = float(self.loaded.get("first_us") or 1000.0)
        timeout = 60.0 + n * max(first, 1000.0) * 20 / 1e6
        return [float(v) for v in self.request({"op": "run", "n": int(n)}, timeout)["us"]]

    def finish(self) -> dict[str, Any]:
        """Peak memory (and TFLM arena); the child exits afterwards."""
        answer = self.request({"op": "finish"}, LOAD_TIMEOUT_S)
        self.close()
        return answer

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:  # unflushed bytes to a dead child
                    pass
        if not self._stderr.closed:
            self._stderr.close()


def time_interleaved(
    paths: Sequence[str],
    kind: str,
    kernels: str = "xnnpack",
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    rounds: int = 5,
) -> list[dict[str, Any]]:
    """Time several model files round-robin, each in its own child process.

    Each model gets ``warmup`` untimed inferences, then ``rounds`` rounds in which every
    model runs ``runs / rounds`` timed inferences in turn (the order rotates each round),
    so a slow patch of the machine hits every model alike.

    Returns:
        Per model: ``{samples_us, first_us, init_us, peak_rss_bytes, model_rss_bytes,
        arena_bytes, package}``.
    """
    rounds = max(1, min(int(rounds), int(runs)))
    sizes = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    workers: list[HostWorker] = []
    try:
        for path in paths:
            workers.append(HostWorker(path, kind, kernels, threads))
        for w in workers:
            if warmup:
                w.run(warmup)
        samples: list[list[float]] = [[] for _ in workers]
        for r, size in enumerate(sizes):
            order = list(range(len(workers)))
            order = order[r % len(order) :] + order[: r % len(order)]
            for i in order:
                samples[i].extend(workers[i].run(size))
        results = []
        for w, s in zip(workers, samples, strict=True):
            end = w.finish()
            results.append(
                {
                    "samples_us": s,
                    "first_us": w.loaded.get("first_us"),
                    "init_us": w.loaded.get("init_us"),
                    "peak_rss_bytes": end.get("peak_rss_bytes"),
                    "model_rss_bytes": end.get("model_rss_bytes"),
                    "arena_bytes": end.get("arena_bytes"),
                    "package": w.loaded.get("package"),
                }
            )
        return results
    finally:
        for w in workers:
            w.close()


# ---- child side ----------------------------------------------------------------------
#: address space a timing child may use (MB): Python, numpy, the runtime and the model
CHILD_BASE_MB = 2048


def _limit_memory() -> None:
    """In the child, before exec: cap its address space (the isolation limit + a base)."""
    import resource

    from effkeras.runtime.isolate import limits

    limit = int((CHILD_BASE_MB + limits()[1]) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _rss_now() -> int:
    """Current resident set size in bytes (Linux /proc; else the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _rss_peak()


def _rss_peak() -> int:
    """Peak resident set size of this process in bytes.

    Linux: VmHWM from /proc/self/status, which starts afresh at exec. (getrusage's
    ru_maxrss survives exec, so a child of a big parent would report the parent's size.)
    Elsewhere: getrusage's ru_maxrss.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class _Child:
    def __init__(self) -> None:
        self.runner: Any = None
        self.invoke: Any = None
        self.kind = ""
        self.rss_before = 0

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from effkeras.convert.flatbuffer import read_tflite

        self.kind = req["kind"]
        model = read_tflite(req["path"])
        rng = np.random.default_rng(int(req.get("seed", 0)))
        feeds = []
        for t in model.inputs:
            dt = t.numpy_dtype
            if np.issubdtype(dt, np.integer) and t.quantization is not None:
                # quantized real values: any integer of the type is a valid input
                info = np.iinfo(dt)
                feeds.append(rng.integers(info.min, info.max, size=t.shape, endpoint=True).astype(dt))
            elif np.issubdtype(dt, np.integer):
                # plain integers (token ids, indices): 0 is valid for any lookup table
                feeds.append(np.zeros(t.shape, dt))
            else:
                feeds.append(rng.random(t.shape).astype(dt))
        self.rss_before = _rss_now()
        start = time.perf_counter_ns()
        if self.kind == "litert":
            from effkeras.runtime.litert import LiteRTRunner

            # this child is the isolation: no probe child of its own (it would be timed too)
            runner = LiteRTRunner(model, num_threads=int(req["threads"]), kernels=req["kernels"],
                                  isolate=False)
            interp = runner.interpreter
            for detail, value in zip(interp.get_input_details(), feeds, strict=True):
                interp.set_tensor(detail["index"], value)
            package = runner.package
        elif self.kind == "tflm":
            from effkeras.runtime.tflm import TFLMRunner

            runner = TFLMRunner(model, isolate=False)
            interp = runner.interpreter
            for i, value in enumerate(feeds):
                interp.set_input(value, i)
            package = "tflite_micro"
        else:
            raise ValueError(f"unknown kind {self.kind!r}")
        init_us = (time.perf_counter_ns() - start) / 1000.0
        self.runner = runner
        self.invoke = interp.invoke
        start = time.perf_counter_ns()
        self.invoke()
        first_us = (time.perf_counter_ns() - start) / 1000.0
        return {"init_us": init_us, "first_us": first_us, "package": package}

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        invoke = self.invoke
        clock = time.perf_counter_ns
        out = []
        for _ in range(int(req["n"])):
            start = clock()
            invoke()
            out.append((clock() - start) / 1000.0)
        return {"us": out}

    def finish(self, req: dict[str, Any]) -> dict[str, Any]:
        peak = _rss_peak()
        answer: dict[str, Any] = {
            "peak_rss_bytes": peak,
            "model_rss_bytes": max(0, peak - self.rss_before),
        }
        if self.kind == "tflm":
            from effkeras.runtime.tflm import measure_arena

            answer["arena_bytes"] = measure_arena(self.runner.model)
        return answer


def _child_main() -> int:
    # Answers go to a private copy of stdout; fd 1 now points at stderr so that C code
    # printing to stdout cannot corrupt them.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    child = _Child()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        try:
            answer = getattr(child, op)(req) if op in ("load", "run", "finish") else None
            if answer is None:
                raise ValueError(f"unknown op {op!r}")
            answer["ok"] = True
        except UnsupportedOpsError as exc:
            answer = {"ok": False, "error": str(exc), "missing_ops": list(exc.ops)}
        except InvalidModelError as exc:
            answer = {"ok": False, "error": str(exc), "bad_model": True}
        except Exception as exc:  # reported to the parent, which raises
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()
        if op == "finish" or not answer["ok"]:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
