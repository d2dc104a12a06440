"""A text model's own sketch, built for real and run on the emulated board.

:func:`run_qemu_text` is :func:`~effkeras.bench.qemu.run_qemu` for projection text models:
it writes :func:`~effkeras.deploy.text_sketch` (the C featurizer and the model, read from
the .tflite's ``effkeras.projector`` metadata), builds it for ``mps2_an386`` against the real
``Arduino_TensorFlowLite`` library, runs it in ``qemu-system-arm -icount shift=0`` and
sends each text as a serial line, as a user's terminal would. For every text the board's
``CLASS`` line is checked against the host:

- ``input_fnv``: the FNV-1a hash of the input tensor the board's C projector wrote equals
  the one of the Python projector's input (:func:`~effkeras.deploy.text_sketch.
  expected_input_fnv`): the featurizer is bit-exact on the target;
- ``argmax``: the board's class equals LiteRT's reference kernels on that same input.

The serial port is a TCP socket that QEMU opens before it starts the CPU
(``server=on,wait=on``), so the ``READY`` line the sketch prints once at start-up (model
checksum and projector self-test) is never lost. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from effkeras.bench.qemu import (
    INSTRUCTIONS_PER_US,
    START_TIMEOUT_S,
    QemuBoard,
    _qemu,
    sketch_board,
)
from effkeras.convert.flatbuffer import read_tflite
from effkeras.deploy.build import BuildResult, build_sketch
from effkeras.errors import BenchConfigError, DeviceError


@dataclass
class QemuTextRun:
    """What one emulated run of a text sketch measured.

    Attributes:
        build: the :class:`~effkeras.deploy.build.BuildResult`.
        ready: the sketch's parsed READY line (``fnv_ok``, ``projector_ok`` as "0"/"1").
        lines: the parsed CLASS line of each text, in order.
        expected_fnv: the host's ``input_fnv`` of each text.
        reference_argmax: LiteRT's reference-kernel class of each text.
        fnv_agreement: fraction of texts whose board input hash equals the host's.
        argmax_agreement: fraction of texts whose board class equals LiteRT's.
        project_instructions / invoke_instructions: medians per text (virtual us x 1000).
    """

    build: BuildResult
    ready: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    expected_fnv: list[int] = field(default_factory=list)
    reference_argmax: list[int] = field(default_factory=list)

    @property
    def fnv_agreement(self) -> float:
        same = [ln["input_fnv"] == f for ln, f in zip(self.lines, self.expected_fnv, strict=True)]
        return float(np.mean(same)) if same else 0.0

    @property
    def argmax_agreement(self) -> float:
        same = [ln["argmax"] == a for ln, a in zip(self.lines, self.reference_argmax, strict=True)]
        return float(np.mean(same)) if same else 0.0

    @property
    def project_instructions(self) -> float:
        return float(statistics.median(ln["project_us"] for ln in self.lines)) * INSTRUCTIONS_PER_US

    @property
    def invoke_instructions(self) -> float:
        return float(statistics.median(ln["invoke_us"] for ln in self.lines)) * INSTRUCTIONS_PER_US

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "board": self.build.board.name,
            "texts": len(self.lines),
            "projector_self_test": self.ready.get("projector_ok") == "1",
            "model_checksum_ok": bool(self.ready.get("fnv_ok")),
            "fnv_agreement": self.fnv_agreement,
            "argmax_agreement": self.argmax_agreement,
            "project_instructions_median": self.project_instructions,
            "invoke_instructions_median": self.invoke_instructions,
            "labels": [ln["label"] for ln in self.lines],
            "text": self.build.text,
            "data": self.build.data,
            "bss": self.build.bss,
            "library_version": self.build.library_version,
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _QemuSocketBoard(QemuBoard):
    """qemu-system-arm with its UART on a TCP server that waits for the host to connect
    (stopping it is QemuBoard's)."""

    def __init__(self, elf: str, machine: str):
        self.tcp_port = _free_port()
        self.cmd = [_qemu(), "-M", machine, "-display", "none", "-monitor", "none",
                    "-chardev", f"socket,id=efkser,host=127.0.0.1,port={self.tcp_port},"
                    "server=on,wait=on", "-serial", "chardev:efkser",
                    "-icount", "shift=0", "-kernel", elf]
        self.proc: subprocess.Popen | None = None
        self._lines: list[str] = []

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.tcp_port}"

    def __enter__(self) -> _QemuSocketBoard:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)

        def reader() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._lines.append(line.rstrip())

        threading.Thread(target=reader, daemon=True).start()
        return self

    def connect(self, timeout: float):
        """The host's one connection (a BoardClient); QEMU starts the CPU once it is made,
        so nothing the sketch prints is lost."""
        from effkeras.bench.serial_board import BoardClient

        end = time.monotonic() + START_TIMEOUT_S
        while self.proc is not None and self.proc.poll() is None:
            try:
                return BoardClient(self.url, timeout=timeout)
            except DeviceError:  # QEMU is not listening yet
                if time.monotonic() > end:
                    break
                time.sleep(0.05)
        self.close()
        raise DeviceError(f"QEMU did not start ({' '.join(self.cmd)}): "
                          f"{self.output() or 'no output'}")


def _check_texts(texts: Any, max_text_bytes: int) -> list[bytes]:
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise BenchConfigError(f"texts must be a list of strings. Received: texts={texts!r}")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, (str, bytes)):
            raise BenchConfigError(f"texts[{i}] is not a string. Received: {t!r}")
        raw = t.encode("utf-8") if isinstance(t, str) else bytes(t)
        if b"\n" in raw or b"\r" in raw or not raw.strip():
            raise BenchConfigError(f"texts[{i}] must be one non-empty line (the sketch reads "
                                   f"one text per line). Received: {t!r}")
        if len(raw) > max_text_bytes:
            raise BenchConfigError(f"texts[{i}] is {len(raw)} bytes; the sketch's line buffer "
                                   f"holds {max_text_bytes} (max_text_bytes). Received: {t!r}")
        out.append(raw)
    if not out:
        raise BenchConfigError("texts is empty: give at least one text to classify.")
    return out


def run_qemu_text(
    tflite: Any,
    texts: Any,
    *,
    labels: list[str] | None = None,
    tflm_lib: str | os.PathLike | None = None,
    timeout: float = 60.0,
    work_dir: str | os.PathLike | None = None,
    max_text_bytes: int = 256,
    jobs: int | None = None,
) -> QemuTextRun:
    """Generate, build and run a projection text model's sketch on the emulated board.

    Args:
        tflite: a projection text model written by ``to_tflite`` (it stores its projector).
        texts: the lines to classify (str or UTF-8 bytes, one line each).
        labels: class names the sketch prints.
        tflm_lib: the Arduino_TensorFlowLite folder.
        timeout: seconds each line from the board may take.
        work_dir: where the sketch and the build go (default: a temporary folder).
        max_text_bytes: the sketch's line buffer.
        jobs: parallel compiles of the first build.

    Raises:
        BenchConfigError: bad ``texts``.
        InvalidModelError: the file stores no projector.
        ToolchainError / BuildError: as for :func:`~effkeras.bench.qemu.run_qemu`.
        DeviceError: QEMU did not start, the sketch failed its self-test, crashed or hung.
    """
    from effkeras.deploy.text_sketch import expected_input_fnv, model_projector, projection_to_input
    from effkeras.runtime.litert import LiteRTRunner

    model = read_tflite(tflite)
    projector = model_projector(model)
    lines_out = _check_texts(texts, max_text_bytes)
    _qemu()
    with tempfile.TemporaryDirectory(prefix="effkeras_qemu_text_") as tmp:
        base = os.fspath(work_dir) if work_dir is not None else tmp
        os.makedirs(base, exist_ok=True)
        from effkeras.deploy.text_sketch import text_sketch

        name = re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(os.path.basename(model.source))[0])
        sketch = text_sketch(model, os.path.join(base, f"efk_text_{model.sha256[:12]}"),
                             board=sketch_board("mps2_an386"), labels=labels, force=True,
                             name=(name or "text_model")[:40], max_text_bytes=max_text_bytes)
        build = build_sketch(sketch.path, "mps2_an386", tflm_lib, jobs=jobs)
        with _QemuSocketBoard(build.elf, build.board.qemu_machine) as qemu:
            client = qemu.connect(timeout)
            try:
                ready = client.read_message(("READY",), time.monotonic() + timeout,
                                            "the READY line")
                if ready.get("projector_ok") != "1" or not ready.get("fnv_ok"):
                    raise DeviceError(
                        f"The text sketch failed its start-up self-test on the emulated board "
                        f"(READY fnv_ok={ready.get('fnv_ok')} projector_ok="
                        f"{ready.get('projector_ok')}): its C projector or model array differs "
                        f"from the host's.")
                got = []
                for i, raw in enumerate(lines_out):
                    client.send(raw + b"\n")
                    got.append(client.read_message(("CLASS",), time.monotonic() + timeout,
                                                   f"the CLASS line of text {i}"))
            except DeviceError as exc:
                state = "QEMU is still running" if qemu.alive() else "QEMU exited"
                raise DeviceError(f"The emulated {build.board.title} failed: {exc} ({state}; "
                                  f"its output: {qemu.output() or 'none'})"
                                  ) from None
            finally:
                client.close()
    ref = LiteRTRunner(model, kernels="reference")
    reference = []
    for raw in lines_out:
        x = projection_to_input(projector.project(raw), model)
        reference.append(int(np.argmax(ref.invoke_raw([x])[0])))
    return QemuTextRun(build=build, ready=ready, lines=got,
                       expected_fnv=[expected_input_fnv(raw, projector, model)
                                     for raw in lines_out],
                       reference_argmax=reference)


__all__ = ["QemuTextRun", "run_qemu_text"]
