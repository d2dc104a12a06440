"""effkeras: make Keras 3 models smaller and faster, and put them on phones and boards.

The public API, in one place:

- ``effkeras.convert``: ``to_tflite`` (Keras -> .tflite), ``read_tflite`` (ops, tensors,
  quantization), ``strip_tensor_names`` (smaller files), ``to_c_array`` / ``parse_c_array``
  (TFLM C arrays); ``convert.int4.to_int4`` (int4 weights, two a byte) and
  ``convert.compress.compress_tflite`` (TFLM look-up-table compression).
- ``effkeras.deploy``: ``arduino_sketch`` (a ready-to-open Arduino folder).
- ``effkeras.profile``: size, params, MACs, ops, exact TFLM arena, board fit.
- ``effkeras.runtime``: ``LiteRTRunner`` and ``TFLMRunner`` to run models on the host.
- ``effkeras.boards``: the board table (``BOARDS``, ``get_board``, ``custom_board``).
- ``effkeras.quantize``: QAT with batch-norm folding and PTQ (``quantize_model``, with
  ``weight_bits=8|4``), per-layer control with tfmot's names (``QuantizeConfig``,
  ``quantize_annotate_layer``, ``quantize_annotate_model``, ``quantize_apply``,
  ``quantize_scope``) and ``register_rule``, the one place to give a custom layer its rule.
- ``effkeras.callbacks``: ``FreezeBatchNorm``, ``FreezeQuantRanges``, ``UpdatePruningStep``,
  ``PruningSummaries``, ``PreserveSparsity``.
- ``effkeras.distill``: knowledge distillation on ``keras.distillation`` (``distiller``,
  ``logits_distillation``: a KL loss that is right, unlike Keras's default).
- ``effkeras.cluster``: weight clustering with tfmot's names (``cluster_weights``,
  ``strip_clustering``, ``CentroidInitialization``, ``PreserveClusters`` for
  cluster-preserving QAT, sparsity-preserving clustering).
- ``effkeras.prune``: pruning (``prune_low_magnitude`` with per-layer ``layer_schedules``,
  schedules, ``strip_pruning``).
- ``effkeras.text``: projection text models (``Projector``, ``build_sgnn``, ``build_prado``).
- ``effkeras.bench``: latency on host, TFLM, Android, a board over serial, or an estimate.
- ``effkeras.data``: the datasets the demo and benchmarks use.
- ``effkeras.errors``: every exception effkeras raises.

Only ``convert.to_tflite``, the demo and training code import TensorFlow; the rest runs
with numpy, ai-edge-litert and tflite-micro.
"""

__version__ = "0.1.0"

from effkeras import boards, convert, deploy, errors, runtime  # noqa: E402
from effkeras._keras_registration import install as _install_keras_registration  # noqa: E402
from effkeras.boards import BOARDS, Board, custom_board, get_board  # noqa: E402
from effkeras.profiling import ProfileReport, profile  # noqa: E402

# QAT layers become loadable by keras.saving.load_model as soon as Keras is imported,
# without importing Keras (and TensorFlow) here.
_install_keras_registration()


def __getattr__(name: str):
    # effkeras.quantize and effkeras.callbacks need Keras: import them on first use.
    if name in ("quantize", "callbacks", "cluster", "distill", "prune", "text", "tune"):
        import importlib

        return importlib.import_module(f"effkeras.{name}")
    raise AttributeError(f"module 'effkeras' has no attribute {name!r}")

__all__ = [
    "BOARDS",
    "Board",
    "ProfileReport",
    "__version__",
    "boards",
    "callbacks",
    "cluster",
    "convert",
    "custom_board",
    "deploy",
    "distill",
    "errors",
    "get_board",
    "profile",
    "quantize",
    "runtime",
]
