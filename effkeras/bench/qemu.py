"""Benchmark on an emulated board: the generated sketch, built for real, run in QEMU.

:func:`run_qemu` takes a .tflite through the whole device path:

1. :func:`~effkeras.deploy.arduino_sketch` writes the sketch for the emulated board;
2. :func:`~effkeras.deploy.build.build_sketch` compiles it with arm-none-eabi-g++ against
   the real ``Arduino_TensorFlowLite`` library (CMSIS-NN kernels);
3. ``qemu-system-arm -M mps2-an386 -icount shift=0`` runs the ELF with its serial port on
   a pty; the host speaks the sketch's own protocol over it with
   :mod:`effkeras.bench.serial_board` (the code of ``--target serial``): handshake and
   model check, ``BENCH``, then ``RUN`` for each comparison input;
4. the outputs are compared with LiteRT's reference kernels on the host.

With ``-icount shift=0`` QEMU executes one instruction per nanosecond of virtual time, so
the sketch's ``micros()`` (a 25 MHz hardware timer of the emulated board) counts
instructions / 1000: :data:`INSTRUCTIONS_PER_US` converts. That is an instruction count,
not a cycle count of any real chip (no wait states, caches or pipeline). The arena is what
the sketch reports: ``interpreter.arena_used_bytes()`` on the 32-bit target.

A crash on the board prints ``EFK ERROR msg=hard_fault`` (the firmware's fault handlers);
a hang runs into the per-line timeout; QEMU is always killed. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from effkeras.boards import Board
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.deploy.build import APT_HINT, BUILD_BOARDS, BuildResult, build_sketch
from effkeras.errors import BenchConfigError, DeviceError, EffkerasError, ToolchainError

#: Virtual nanoseconds per instruction is 2**shift; shift=0: one instruction a nanosecond.
ICOUNT_SHIFT = 0
INSTRUCTIONS_PER_US = 1000 // (2**ICOUNT_SHIFT)
#: Seconds QEMU may take to start and name its pty.
START_TIMEOUT_S = 20.0
QEMU_HINT = "On Debian/Ubuntu: sudo apt-get install qemu-system-arm."


def emulated_boards() -> list[str]:
    """Names of the boards QEMU can run (``qemu:BOARD``)."""
    return [name for name, b in BUILD_BOARDS.items() if b.emulated]


def sketch_board(name: str = "mps2_an386") -> Board:
    """The :class:`~effkeras.boards.Board` a sketch for an emulated board is generated for.

    Its clock is nominal: 1000 MHz stands for ``-icount shift=0`` (one instruction a ns).
    """
    b = BUILD_BOARDS.get(name)
    if b is None or not b.emulated:
        raise BenchConfigError(
            f"QEMU emulates {', '.join(emulated_boards())}; other boards only build "
            f"(`effkeras build SKETCH --board NAME`). Received: board={name!r}"
        )
    return Board(name=b.name, title=b.title, mcu="Arm MPS2 FPGA image AN386", core=b.core,
                 clock_mhz=1000.0 / 2**ICOUNT_SHIFT, flash_kb=b.flash_bytes // 1024,
                 ram_kb=b.ram_bytes // 1024, program_flash_kb=100, cmsis_nn=True,
                 notes="Emulated by qemu-system-arm; its clock counts instructions.")


@dataclass
class QemuRun:
    """What one emulated run measured.

    Attributes:
        build: the :class:`~effkeras.deploy.build.BuildResult` (ELF, text/data/bss).
        info: the sketch's parsed INFO line (``arena_used``: the 32-bit target's arena).
        samples_us: virtual microseconds of each timed inference.
        instructions: median instructions per inference (samples x 1000; resolution 1000).
        instructions_mean: ``total_us`` / n x 1000 (dithered by the runs, finer).
        host_arena_bytes: the arena TFLM measured on this 64-bit host for the same model.
        outputs: the board's raw outputs, one array per comparison input (model dtype).
        reference: LiteRT outputs for the same inputs, with ``reference_kernels``:
            ``"reference"``, or ``"builtin"`` when the reference resolver lacks an op
            version of the model (int4 filters).
        within_1lsb: fraction of output elements within 1 LSB of the reference.
        max_abs_diff: the largest element difference (in LSB for integer outputs).
        argmax_agreement: fraction of inputs whose argmax equals the reference's.
        log: the last non-protocol lines the board printed.
    """

    build: BuildResult
    info: dict[str, Any]
    samples_us: list[float]
    instructions: float
    instructions_mean: float
    host_arena_bytes: int
    outputs: list[np.ndarray] = field(default_factory=list)
    reference: list[np.ndarray] = field(default_factory=list)
    within_1lsb: float | None = None
    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    argmax: list[int] = field(default_factory=list)
    expected_argmax: int | None = None
    log: list[str] = field(default_factory=list)
    reference_kernels: str = "reference"
    library_problems: list[str] = field(default_factory=list)

    @property
    def arena_bytes(self) -> int:
        return int(self.info["arena_used"])

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (no arrays)."""
        return {
            "board": self.build.board.name,
            "machine": self.build.board.qemu_machine,
            "icount_shift": ICOUNT_SHIFT,
            "instructions_per_inference": self.instructions,
            "instructions_mean": self.instructions_mean,
            "arena_used_target": self.arena_bytes,
            "arena_host_64bit": self.host_arena_bytes,
            "arena_size": self.info.get("arena_size"),
            "text": self.build.text,
            "data": self.build.data,
            "bss": self.build.bss,
            "flash_bytes": self.build.flash_bytes,
            "ram_bytes": self.build.ram_bytes,
            "elf": self.build.elf,
            "library": self.build.library,
            "library_version": self.build.library_version,
            "tflm_sync": self.build.tflm_sync,
            "build_seconds": round(self.build.seconds, 2),
            "compiled_library_sources": self.build.compiled,
            "compared_inputs": len(self.outputs),
            "within_1lsb": self.within_1lsb,
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "reference_kernels": self.reference_kernels,
            "library_problems": list(self.library_problems),
            "fixed_input_argmax": self.argmax,
            "expected_argmax": self.expected_argmax,
        }


def _qemu() -> str:
    path = shutil.which("qemu-system-arm")
    if path is None:
        raise ToolchainError(f"qemu-system-arm is not on PATH; the qemu target needs it. "
                             f"{QEMU_HINT} (Building also needs: {APT_HINT})")
    return path


class QemuBoard:
    """``qemu-system-arm`` running an ELF, its UART on a pty; a context manager that always
    kills QEMU. ``port`` is the pty path for :class:`~effkeras.bench.serial_board.BoardClient`.
    """

    def __init__(self, elf: str, machine: str = "mps2-an386", icount_shift: int = ICOUNT_SHIFT):
        self.cmd = [_qemu(), "-M", machine, "-display", "none", "-monitor", "none",
                    "-serial", "pty", "-icount", f"shift={icount_shift}", "-kernel", elf]
        self.proc: subprocess.Popen | None = None
        self.port = ""
        self._lines: list[str] = []

    def __enter__(self) -> QemuBoard:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        found = threading.Event()

        def reader() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._lines.append(line.rstrip())
                m = re.search(r"char device redirected to (\S+)", line)
                if m and not self.port:
                    self.port = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=reader, daemon=True).start()
        found.wait(START_TIMEOUT_S)
        if not self.port:
            self.close()
            raise DeviceError(f"QEMU did not start ({' '.join(self.cmd)}): "
                              f"{' | '.join(self._lines[-5:]) or 'no output'}")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return " | ".join(self._lines[-5:])

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __exit__(self, *exc) -> None:
        self.close()


def load_inputs(inputs: Any, model: TFLiteModel) -> np.ndarray:
    """Comparison inputs as an (N, *input_shape) array in the input tensor's dtype.

    Args:
        inputs: an array or a .npy path: (N, *shape) or one (*shape) sample; real values
            (float, quantized here) or already in the input's integer dtype.

    Raises:
        BenchConfigError: not loadable, or the element count does not match the input.
    """
    from effkeras.runtime.quant import quantize

    inp = model.inputs[0]
    if isinstance(inputs, str | os.PathLike):
        try:
            inputs = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BenchConfigError(f"Could not read --inputs {os.fspath(inputs)!r}: {exc}. "
                                   f"Give a .npy of shape (N, {', '.join(map(str, inp.shape))})."
                                   ) from None
    x = np.asarray(inputs)
    per = int(np.prod(inp.shape))
    if x.size % per or x.size == 0:
        raise BenchConfigError(
            f"inputs must hold whole samples of the model's input {list(inp.shape)} ({per} "
            f"elements each). Received: shape {list(x.shape)}"
        )
    x = x.reshape((-1, *inp.shape))
    return np.stack([np.asarray(quantize(s, inp)).astype(inp.numpy_dtype) for s in x])


def default_inputs(model: TFLiteModel, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random inputs over the input dtype's range (integers) or [0, 1) (floats)."""
    inp = model.inputs[0]
    rng = np.random.default_rng(seed)
    dtype = inp.numpy_dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=(n, *inp.shape)).astype(dtype)
    return rng.random((n, *inp.shape)).astype(dtype)


def _compare(outputs: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float, float]:
    got = np.stack([o.reshape(-1) for o in outputs]).astype(np.float64)
    ref = np.stack([r.reshape(-1) for r in reference]).astype(np.float64)
    diff = np.abs(got - ref)
    within = float(np.mean(diff <= 1.0))
    agree = float(np.mean(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
    return within, float(diff.max()), agree


def run_qemu(
    tflite: Any,
    board: str = "mps2_an386",
    runs: int = 20,
    warmup: int = 2,
    *,
    inputs: Any = None,
    compare: int = 10,
    tflm_lib: str | os.PathLike | None = None,
    timeout: float = 60.0,
    work_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
) -> QemuRun:
    """Generate, build and run the sketch for ``tflite`` on an emulated board.

    Args:
        tflite: .tflite bytes, a path or a :class:`~effkeras.convert.TFLiteModel`.
        board: an emulated board (:func:`emulated_boards`).
        runs, warmup: ``BENCH`` inferences timed and discarded.
        inputs: comparison inputs (see :func:`load_inputs`); default ``compare`` random ones.
        compare: how many random inputs when ``inputs`` is None (0: no comparison).
        tflm_lib: the Arduino_TensorFlowLite folder (see :func:`~effkeras.deploy.build.find_library`).
        timeout: seconds each line from the board may take (a hang fails after it).
        work_dir: where the sketch and the build go (default: a temporary folder).
        jobs: parallel compiles of the first build.

    Raises:
        ToolchainError: no arm-none-eabi-g++, qemu-system-arm or library.
        BuildError: the sketch does not build.
        DeviceError: QEMU did not start, the board crashed (``hard_fault``...), hung past
            ``timeout``, or answered wrongly.
        ModelMismatchError: the board runs another model (a bug: it was built for this one).
    """
    from effkeras.bench.serial_board import run_serial
    from effkeras.deploy.arduino import arduino_sketch
    from effkeras.runtime.litert import LiteRTRunner, lacks_kernel
    from effkeras.runtime.tflm_ops import arduino_library_problems

    model = read_tflite(tflite)
    sketch_b = sketch_board(board)
    _qemu()
    if isinstance(compare, bool) or not isinstance(compare, int) or compare < 0:
        raise BenchConfigError(f"compare must be an integer >= 0. Received: compare={compare!r}")
    if inputs is not None:
        x = load_inputs(inputs, model)
    else:
        x = default_inputs(model, compare)
    with tempfile.TemporaryDirectory(prefix="effkeras_qemu_") as tmp:
        base = os.fspath(work_dir) if work_dir is not None else tmp
        os.makedirs(base, exist_ok=True)
        sketch_dir = os.path.join(base, f"efk_qemu_{model.sha256[:12]}")
        info = arduino_sketch(model, sketch_dir, board=sketch_b, force=True,
                              name=re.sub(r"[^A-Za-z0-9_.\-]", "_",
                                          os.path.basename(model.source))[:40] or "model")
        build = build_sketch(sketch_dir, board, tflm_lib, jobs=jobs)
        with QemuBoard(build.elf, build.board.qemu_machine) as qemu:
            try:
                out = run_serial(model, qemu.port, runs, warmup, timeout=timeout,
                                 handshake_timeout=timeout, inputs=[s.tobytes() for s in x])
            except DeviceError as exc:
                state = "QEMU is still running" if qemu.alive() else "QEMU exited"
                raise DeviceError(f"The emulated {build.board.title} failed: {exc} ({state}; "
                                  f"its output: {qemu.output() or 'none'})") from None
    out_t = model.outputs[0]
    outputs = [np.frombuffer(r["out"], dtype=out_t.numpy_dtype).reshape(out_t.shape).copy()
               for r in out["results"]]
    reference: list[np.ndarray] = []
    within = max_diff = agree = None
    reference_kernels = "reference"
    if len(x):
        try:
            ref_runner = LiteRTRunner(model, kernels="reference")
        except EffkerasError as exc:
            if not lacks_kernel(exc):
                raise
            # e.g. int4 filters (DEPTHWISE_CONV_2D v7): the reference resolver lags.
            reference_kernels = "builtin"
            ref_runner = LiteRTRunner(model, kernels="builtin")
        reference = [ref_runner.invoke_raw([s])[0] for s in x]
        within, max_diff, agree = _compare(outputs, reference)
    samples = out["samples_us"]
    done = out["done"]
    return QemuRun(
        build=build, info=out["info"], samples_us=samples,
        instructions=float(statistics.median(samples)) * INSTRUCTIONS_PER_US,
        instructions_mean=done["total_us"] * INSTRUCTIONS_PER_US / max(done["n"], 1),
        host_arena_bytes=info.arena_bytes, outputs=outputs, reference=reference,
        within_1lsb=within, max_abs_diff=max_diff, argmax_agreement=agree,
        argmax=out["argmax"], expected_argmax=out["expected_argmax"], log=out["log"],
        reference_kernels=reference_kernels,
        library_problems=arduino_library_problems(model),
    )


def save_outputs(run: QemuRun, path: str | os.PathLike) -> None:
    """Write the board's outputs (N, *output_shape), model dtype, as a .npy."""
    if not run.outputs:
        raise EffkerasError("No outputs to save: the run compared no inputs (compare=0).")
    np.save(path, np.stack(run.outputs))


__all__ = [
    "ICOUNT_SHIFT",
    "INSTRUCTIONS_PER_US",
    "QemuBoard",
    "QemuRun",
    "default_inputs",
    "emulated_boards",
    "load_inputs",
    "run_qemu",
    "save_outputs",
    "sketch_board",
]
