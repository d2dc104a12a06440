"""TensorFlow Lite Micro on the host: the real micro kernels, exact arena sizes.

The tflite-micro package runs TFLM's reference kernels in this process. Its recording
allocator prints "[RecordingMicroAllocator] Arena allocation total N bytes" to the C-level
stderr, which :func:`measure_arena` captures. The host is 64-bit while a Cortex-M is
32-bit: pointers and structs are smaller on the board, so the host figure is an upper
bound in practice; :data:`ARENA_MARGIN` is the margin the sketch adds on top of it.

TFLM does not verify flatbuffers. Models are read and checked first
(:func:`effkeras.convert.read_tflite`), LiteRT's flatbuffer verifier runs on them before
TFLM sees them, and TFLM first prepares and invokes each model in a child process with a
memory and a time limit (:mod:`effkeras.runtime.isolate`), so that a kernel crash on a
hostile file ends in an :class:`~effkeras.errors.InvalidModelError`, never in the caller.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import numpy as np

from effkeras._capture import capture_fds
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.errors import InvalidModelError, UnsupportedOpsError
from effkeras.runtime.isolate import run_in_child
from effkeras.runtime.quant import dequantize, quantize
from effkeras.runtime.tflm_ops import unsupported_hint

#: Fraction added to the host-measured arena for a 32-bit board, plus fixed bytes.
ARENA_MARGIN = 0.10
ARENA_MARGIN_BYTES = 1024

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD_RE = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL_RE = re.compile(r"Arena allocation tail (\d+) bytes")
_MISSING_OP_RE = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'")


def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _verify_with_litert(model: TFLiteModel) -> None:
    """LiteRT's flatbuffer verifier (C++) runs when it builds a model from bytes."""
    from effkeras.runtime.litert import load_interpreter_class

    interpreter_cls, _, _ = load_interpreter_class()
    try:
        interpreter_cls(model_content=model.data)
    except ValueError as exc:
        raise InvalidModelError(
            f"{model.source} failed flatbuffer verification: {str(exc)[:300]}"
        ) from None
    except RuntimeError:
        pass  # verified, but LiteRT lacks an op (e.g. a TFLM-only one): TFLM decides


def default_arena_size(model: TFLiteModel) -> int:
    """A generous arena for a first load (the exact need is measured afterwards)."""
    activations = sum(t.nbytes or 0 for t in model.tensors)
    act = sum(int(np.prod(t.shape)) * 4 for t in model.tensors if not t.is_constant and t.shape)
    return int(max(256 * 1024, 4 * act + 2 * activations + 64 * 1024))


class TFLMRunner:
    """Run a .tflite model in the TFLite Micro interpreter on this host.

    Args:
        model: .tflite bytes, a path, or a :class:`TFLiteModel`.
        arena_size: tensor arena bytes; by default a generous size (measure the exact
            need with :meth:`arena_bytes`).
        verify: run LiteRT's flatbuffer verifier first (keep True for files).

        isolate: prepare and invoke the model once in a child process (memory and time
            limits, :mod:`effkeras.runtime.isolate`) before loading it here; a model
            already probed with the same arena in this process is not probed again.

    Raises:
        UnsupportedOpsError: the model uses ops TFLM has no kernel for.
        InvalidModelError: TFLM cannot prepare or run the model (crash, hang, memory).
    """

    def __init__(self, model: Any, arena_size: int | None = None, verify: bool = True,
                 isolate: bool = True):
        self.model: TFLiteModel = read_tflite(model)
        if verify:
            _verify_with_litert(self.model)
        self.arena_size = int(arena_size or default_arena_size(self.model))
        if isolate and (self.model.sha256, self.arena_size) not in _PROBED:
            run_in_child("TFLM could not prepare the model", _probe, self.model, self.arena_size,
                         source=self.model.source)
            _PROBED.add((self.model.sha256, self.arena_size))
        runtime = _runtime()
        with capture_fds((2,)) as log:
            try:
                self.interpreter = runtime.Interpreter.from_bytes(
                    self.model.data, arena_size=self.arena_size
                )
                err = None
            except (RuntimeError, ValueError) as exc:
                err = exc
        if err is not None:
            text = f"{err} {log.text}"
            missing = sorted(set(_MISSING_OP_RE.findall(text)))
            if missing:
                raise UnsupportedOpsError(
                    f"TFLite Micro has no kernel for {', '.join(missing)} in "
                    f"{self.model.source}; replace the layers that produce them."
                    + unsupported_hint(missing),
                    missing,
                ) from None
            raise InvalidModelError(
                f"TFLite Micro could not load {self.model.source} with a {self.arena_size}-byte "
                f"arena: {str(err)[:200]} {log.text.strip()[-300:]}"
            ) from None
        self._invoked = False

    def invoke_raw(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Set inputs in the model's dtypes and shapes, invoke, return the outputs."""
        for i, value in enumerate(inputs):
            self.interpreter.set_input(value, i)
        with capture_fds((2,)) as log:
            try:
                self.interpreter.invoke()
                err = None
            except RuntimeError as exc:
                err = exc
        if err is not None:
            raise InvalidModelError(
                f"TFLite Micro failed to run {self.model.source}: {err} {log.text.strip()[-300:]}"
            ) from None
        self._invoked = True
        return [np.array(self.interpreter.get_output(k)) for k in range(len(self.model.outputs))]

    def predict(self, x: np.ndarray | list[np.ndarray], raw_outputs: bool = False):
        """Like :meth:`LiteRTRunner.predict`: real inputs in, real (or raw) outputs out."""
        xs = x if isinstance(x, list | tuple) else [x]
        outs: list[list[np.ndarray]] = [[] for _ in self.model.outputs]
        for i in range(xs[0].shape[0]):
            feed = [
                quantize(a[i : i + 1], t).reshape(t.shape)
                for a, t in zip(xs, self.model.inputs, strict=True)
            ]
            results = self.invoke_raw(feed)
            for k, (value, t) in enumerate(zip(results, self.model.outputs, strict=True)):
                value = value.reshape(t.shape)
                outs[k].append(value if raw_outputs else dequantize(value, t))
        stacked = [np.concatenate(o, axis=0) for o in outs]
        return stacked[0] if len(stacked) == 1 else stacked

    def allocations(self) -> dict[str, int]:
        """Arena use from the recording allocator: total, head and tail bytes."""
        if not self._invoked:
            self.invoke_raw([np.zeros(t.shape, t.numpy_dtype) for t in self.model.inputs])
        with capture_fds((2,)) as log:
            self.interpreter.print_allocations()
        total = _TOTAL_RE.search(log.text)
        if total is None:
            raise RuntimeError(
                "The TFLM recording allocator printed no arena total; output was: "
                + log.text[:300]
            )
        head = _HEAD_RE.search(log.text)
        tail = _TAIL_RE.search(log.text)
        return {
            "total": int(total.group(1)),
            "head": int(head.group(1)) if head else 0,
            "tail": int(tail.group(1)) if tail else 0,
        }

    def arena_bytes(self) -> int:
        """The arena total reported by TFLM's recording allocator on this (64-bit) host.

        A few bytes of temporary memory used while kernels prepare are not in it; use
        :func:`measure_arena` for the smallest arena that really works.
        """
        return self.allocations()["total"]


#: (sha256, arena size) of the models whose child-process probe passed in this process
_PROBED: set[tuple[str, int]] = set()


def _probe(model: TFLiteModel, arena_size: int) -> None:
    """Load the model and invoke it once on zeros (in a child: see TFLMRunner's ``isolate``)."""
    runner = TFLMRunner(model, arena_size=arena_size, verify=False, isolate=False)
    runner.invoke_raw([np.zeros(t.shape, t.numpy_dtype) for t in model.inputs])


def _loads_with(model: TFLiteModel, arena_size: int) -> bool:
    """Whether TFLM loads and runs the model in an arena of this size.

    TFLM can crash (not just fail) at arena sizes just below what a model needs, so each
    probe runs in a child process: a crash there only means "too small".
    """
    try:
        run_in_child("TFLM arena probe", _probe, model, arena_size, source=model.source)
        return True
    except InvalidModelError:
        return False


def measure_arena(model: Any) -> int:
    """The smallest tensor arena (bytes, 16-byte steps) with which TFLM loads and runs the model.

    Starts from the recording allocator's total ("Arena allocation total N bytes"), which
    leaves out a few bytes of temporary allocations made while kernels prepare, then
    searches upward for the smallest arena that really works. Exact for this host's
    (64-bit) TFLM build.
    """
    runner = TFLMRunner(model)
    parsed = runner.model
    recorded = runner.arena_bytes()
    lo = recorded - 16  # known (assumed) too small
    hi = (recorded + 15) // 16 * 16
    step = 256
    while not _loads_with(parsed, hi):
        lo = hi
        hi += step
        step *= 2
        if hi > runner.arena_size * 4:
            return runner.arena_size  # the generous default worked; never expected here
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if mid <= lo:
            break
        if _loads_with(parsed, mid):
            hi = mid
        else:
            lo = mid
    return int(hi)


def arena_with_margin(arena_bytes: int) -> int:
    """Arena size for a 32-bit board: measured + ARENA_MARGIN + ARENA_MARGIN_BYTES, 16-aligned."""
    size = int(arena_bytes * (1 + ARENA_MARGIN)) + ARENA_MARGIN_BYTES
    return (size + 15) // 16 * 16


def _arena_figures(model: TFLiteModel) -> dict[str, int]:
    """In a child already: the runner needs no probe of its own."""
    runner = TFLMRunner(model, isolate=False)
    _PROBED.add((model.sha256, runner.arena_size))
    return {"arena_bytes": measure_arena(model), "arena_recorded_bytes": runner.arena_bytes()}


def run_isolated(model: Any, timeout: float | None = None) -> dict[str, Any]:
    """Prepare, invoke and measure a model with TFLM in a child process; report arena or error.

    Args:
        model: a path, bytes or a :class:`TFLiteModel`.
        timeout: seconds before the child is stopped (default: the isolation limit).

    Returns:
        ``{"arena_bytes": n, "arena_recorded_bytes": m}`` when TFLM prepared and ran the
        model, else ``{"error": ...}`` (and ``missing_ops``). A crash, a hang or a memory
        blow-up of the child is reported as an error, never propagated to the caller.
    """
    try:
        parsed = read_tflite(model)
        _verify_with_litert(parsed)
        return run_in_child("TFLM could not prepare the model", _arena_figures, parsed,
                            source=parsed.source, timeout=timeout)
    except UnsupportedOpsError as exc:
        return {"error": str(exc), "missing_ops": list(exc.ops)}
    except InvalidModelError as exc:
        return {"error": str(exc)}


def _main(argv: list[str]) -> int:
    print(json.dumps(run_isolated(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
