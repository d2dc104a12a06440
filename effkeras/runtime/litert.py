"""LiteRT (TFLite) interpreter on the host: the runtime an Android phone uses.

The interpreter comes from ``ai_edge_litert`` (the maintained package), falling back to
``tflite_runtime`` and then ``tf.lite``. Kernel sets map onto LiteRT's OpResolverType:
``"xnnpack"`` (AUTO: builtin kernels plus the XNNPACK delegate), ``"builtin"`` (optimized
builtin kernels, no delegate) and ``"reference"`` (the slow reference kernels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from effkeras._capture import capture_fds
from effkeras.convert.flatbuffer import TFLiteModel, read_tflite
from effkeras.errors import EffkerasError, InvalidModelError
from effkeras.runtime.isolate import run_in_child
from effkeras.runtime.quant import dequantize, quantize

KERNELS = ("xnnpack", "builtin", "reference")


def load_interpreter_class() -> tuple[Any, Any, str]:
    """(Interpreter class, OpResolverType enum, package name), newest package first."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "ai_edge_litert"
    except ImportError:  # pragma: no cover - depends on what is installed
        pass
    try:  # pragma: no cover
        from tflite_runtime.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "tflite_runtime"
    except ImportError:  # pragma: no cover
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, "tensorflow"


def _resolver(op_resolver_type, kernels: str):
    if kernels not in KERNELS:
        raise EffkerasError(f"kernels must be one of {KERNELS}. Received: kernels={kernels!r}")
    return {
        "xnnpack": op_resolver_type.AUTO,
        "builtin": op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": op_resolver_type.BUILTIN_REF,
    }[kernels]


#: (sha256, kernels) of the models whose child-process probe passed in this process
_PROBED: set[tuple[str, str]] = set()


#: What LiteRT says when its resolver has no kernel for an op (or an op version): the
#: reference resolver lags the builtin one (it has no DEPTHWISE_CONV_2D version 7, the
#: int4-filter version, in ai-edge-litert 2.x).
MISSING_KERNEL = "Didn't find op for builtin opcode"


def lacks_kernel(exc: BaseException) -> bool:
    """Whether ``exc`` says LiteRT's resolver has no kernel for an op of the model."""
    return MISSING_KERNEL in str(exc)


def _probe(model: TFLiteModel, kernels: str) -> None:
    """Load, allocate and invoke once on zeros (in a child: see LiteRTRunner's ``isolate``)."""
    runner = LiteRTRunner(model, kernels=kernels, isolate=False)
    runner.invoke_raw([np.zeros(d["shape"], d["dtype"]) for d in runner._in])


class LiteRTRunner:
    """Run a .tflite model with LiteRT on real-valued inputs, one sample at a time.

    Args:
        model: .tflite bytes, a path, or a :class:`TFLiteModel`. It is checked before the
            interpreter sees it, and LiteRT verifies the flatbuffer again on load.
        num_threads: interpreter threads.
        kernels: ``"xnnpack"``, ``"builtin"`` or ``"reference"``.
        isolate: prepare and invoke the model once in a child process (memory and time
            limits, :mod:`effkeras.runtime.isolate`) before loading it here, so that a
            file that crashes LiteRT raises InvalidModelError instead; a model already
            probed with the same kernels in this process is not probed again.

    ``predict`` takes float inputs, quantizes them when the model has integer inputs,
    and returns real-valued (dequantized) outputs; ``invoke_raw`` works on the model's
    own dtypes.
    """

    def __init__(self, model: Any, num_threads: int = 1, kernels: str = "xnnpack", isolate: bool = True):
        if not isinstance(num_threads, int) or num_threads < 1:
            raise EffkerasError(f"num_threads must be a positive integer. Received: {num_threads!r}")
        self.model: TFLiteModel = read_tflite(model)
        interpreter_cls, resolver_type, self.package = load_interpreter_class()
        resolver = _resolver(resolver_type, kernels)
        if isolate and (self.model.sha256, kernels) not in _PROBED:
            run_in_child("LiteRT could not prepare the model", _probe, self.model, kernels,
                         source=self.model.source)
            _PROBED.add((self.model.sha256, kernels))
        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2: keep it
        # out of the user's terminal, but show it if loading fails.
        with capture_fds((2,)) as log:
            try:
                self.interpreter = interpreter_cls(
                    model_content=self.model.data,
                    num_threads=num_threads,
                    experimental_op_resolver_type=resolver,
                )
                self.interpreter.allocate_tensors()
                self._in = self.interpreter.get_input_details()
                self._out = self.interpreter.get_output_details()
                err = None
            except (ValueError, RuntimeError, UnicodeDecodeError) as exc:
                err = exc
        if err is not None:
            raise InvalidModelError(
                f"LiteRT could not load {self.model.source}: {str(err)[:400]} "
                f"{log.text.strip()[-300:]}"
            ) from None
        self.kernels = kernels
        self.num_threads = num_threads

    def invoke_raw(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Set the inputs (model dtypes, full shape), invoke, return copies of the outputs."""
        try:
            for detail, value in zip(self._in, inputs, strict=True):
                self.interpreter.set_tensor(detail["index"], value)
            self.interpreter.invoke()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(
                f"LiteRT failed to run {self.model.source}: {str(exc)[:300]}"
            ) from None
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self._out]

    def predict(self, x: np.ndarray | list[np.ndarray], raw_outputs: bool = False):
        """Run every sample of ``x`` (batch first) and stack the outputs.

        Args:
            x: real-valued inputs, shape (N, *input_shape), or a list for several inputs.
            raw_outputs: return the output tensors' own dtype (e.g. int8) without
                dequantizing.

        Returns:
            An array (N, *output_shape), or a list of them for several outputs.
        """
        xs = x if isinstance(x, list | tuple) else [x]
        n = xs[0].shape[0]
        batch = self.model.inputs[0].shape[0] if self.model.inputs[0].shape else 1
        if batch != 1:
            raise InvalidModelError(
                f"predict runs one sample at a time; the model's batch size is {batch}."
            )
        outs: list[list[np.ndarray]] = [[] for _ in self._out]
        for i in range(n):
            feed = [
                quantize(a[i : i + 1], t).reshape(t.shape)
                for a, t in zip(xs, self.model.inputs, strict=True)
            ]
            for k, (value, t) in enumerate(zip(self.invoke_raw(feed), self.model.outputs, strict=True)):
                outs[k].append(value if raw_outputs else dequantize(value, t))
        stacked = [np.concatenate(o, axis=0) for o in outs]
        return stacked[0] if len(stacked) == 1 else stacked
