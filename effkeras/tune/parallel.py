"""Run a search as a keras-tuner chief and N workers on this machine (127.0.0.1 only).

keras-tuner's distributed mode: every process builds the same tuner; the one whose
``KERASTUNER_TUNER_ID`` contains ``chief`` serves the oracle over gRPC at
``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT``, the others ask it for trials and report
back. :func:`run_parallel` starts them, prints a line per finished trial, and supervises:

- a worker that dies (killed, out of memory) is started again with the same tuner id;
  the chief hands it the trial it was running, which is so retried. A trial whose workers
  died ``max_attempts`` times (:class:`~effkeras.tune.BoardTuner`) is marked FAILED. A
  worker that died ``max_restarts`` times is not started again;
- when every worker has finished, the chief (which keras-tuner leaves polling every 20 s)
  is stopped: its oracle state is saved at each trial's start and end;
- if the chief dies, the workers are stopped and the search can be continued with
  ``effkeras tune --resume``: trials that were running are retried.

This module imports neither TensorFlow, Keras nor keras-tuner.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from effkeras.tune.results import RECORD_FILE, progress_line

__all__ = ["free_port", "run_parallel"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _exit_text(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


class _Proc:
    def __init__(self, tuner_id: str, out_dir: str, env: dict[str, str]):
        self.tuner_id = tuner_id
        self.out_dir = out_dir
        self.env = {**env, "KERASTUNER_TUNER_ID": tuner_id}
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self.done = False
        self.start()

    def start(self) -> None:
        logs = os.path.join(self.out_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        log = open(os.path.join(logs, f"{self.tuner_id}.log"), "ab")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "effkeras.tune.search", self.out_dir],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc is not None else 0

    def stop(self, grace: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _finished_records(project: str, seen: dict[str, int]) -> list[dict[str, Any]]:
    """Trial records finished since the last call (a retried trial's again)."""
    new = []
    try:
        names = os.listdir(project)
    except OSError:
        return new
    for name in names:
        path = os.path.join(project, name, RECORD_FILE)
        if not name.startswith("trial_") or not os.path.exists(path):
            continue
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if rec.get("stage") not in ("precheck", "trained", "abandoned"):
            continue
        n = len(rec.get("attempts") or [])
        if seen.get(name, 0) < n:
            seen[name] = n
            new.append(rec)
    return sorted(new, key=lambda r: str(r.get("trial_id")))


def run_parallel(out_dir: str, workers: int, *, max_restarts: int = 2, startup_timeout: float = 300.0,
                 log: Callable[[str], Any] = print) -> int:
    """Run the search of ``out_dir/config.json`` with a chief and ``workers`` workers.

    Args:
        out_dir: the search folder (``config.json`` written).
        workers: worker processes (>= 1).
        max_restarts: how often one worker is restarted after dying.
        startup_timeout: seconds for the chief to start listening.
        log: where progress lines go.

    Returns:
        0 when the search ended, 1 when the chief died or no worker could finish.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer. Received: workers={workers!r}")
    port = free_port()
    env = {**os.environ, "KERASTUNER_ORACLE_IP": HOST, "KERASTUNER_ORACLE_PORT": str(port),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    project = os.path.join(out_dir, "search")
    chief = _Proc("chief", out_dir, env)
    pool: list[_Proc] = []
    try:
        deadline = time.monotonic() + startup_timeout
        while not _listening(port):
            if chief.poll() is not None:
                log(f"effkeras tune: the chief stopped ({_exit_text(chief.poll())}) before serving; "
                    f"see {os.path.join(out_dir, 'logs', 'chief.log')}")
                return 1
            if time.monotonic() > deadline:
                log(f"effkeras tune: the chief did not listen on {HOST}:{port} within "
                    f"{startup_timeout:g} s")
                return 1
            time.sleep(0.2)
        log(f"effkeras tune: chief on {HOST}:{port}, {workers} worker(s); logs in "
            f"{os.path.join(out_dir, 'logs')}")
        pool = [_Proc(f"worker{i}", out_dir, env) for i in range(workers)]
        seen: dict[str, int] = {}
        while True:
            for rec in _finished_records(project, seen):
                log(progress_line(str(rec.get("trial_id")), rec))
            for w in pool:
                if w.done:
                    continue
                rc = w.poll()
                if rc is None:
                    continue
                if rc == 0:
                    w.done = True
                elif chief.poll() is None and w.restarts < max_restarts:
                    w.restarts += 1
                    log(f"effkeras tune: {w.tuner_id} died ({_exit_text(rc)}); restarting it "
                        f"({w.restarts}/{max_restarts}): its trial is retried")
                    w.start()
                else:
                    w.done = True
                    log(f"effkeras tune: {w.tuner_id} died ({_exit_text(rc)}); not restarted")
            if chief.poll() is not None and not all(w.done for w in pool):
                if chief.poll() != 0:
                    log(f"effkeras tune: the chief stopped ({_exit_text(chief.poll())}); continue "
                        f"with --resume")
                    return 1
            if all(w.done for w in pool):
                for rec in _finished_records(project, seen):
                    log(progress_line(str(rec.get("trial_id")), rec))
                ok = any(w.poll() == 0 for w in pool)
                return 0 if ok else 1
            time.sleep(0.3)
    finally:
        for w in pool:
            w.stop()
        deadline = time.monotonic() + 3.0
        while chief.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        chief.stop()
