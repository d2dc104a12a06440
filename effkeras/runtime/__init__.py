"""Run .tflite models on this host: LiteRT (the phone runtime) and TFLite Micro kernels.

Needs only numpy, ai-edge-litert (or tflite-runtime, or TensorFlow) and tflite-micro,
never TensorFlow itself, so it runs on a Raspberry Pi or a laptop next to a board.
"""

from effkeras.runtime.litert import LiteRTRunner, load_interpreter_class
from effkeras.runtime.quant import dequantize, quantize
from effkeras.runtime.tflm import TFLMRunner, measure_arena

__all__ = [
    "LiteRTRunner",
    "TFLMRunner",
    "dequantize",
    "load_interpreter_class",
    "measure_arena",
    "quantize",
]
