"""Tiny text models without embedding tables: hashed n-gram projections (SGNN, PRADO).

- :class:`Projector`: raw text -> ternary ``T x B`` projection, no vocabulary (pure
  Python + numpy, no TensorFlow); the same projector as portable C, bit-exact
  (:func:`c_sources`, :func:`config_header`, :class:`HostCProjector`). Both are device
  code and live in :mod:`effkeras.deploy.featurizer` and
  :mod:`effkeras.deploy.c_featurizer`; they are re-exported here.
- Converting with ``to_tflite(model, ..., projector=p)`` (automatic for
  :func:`build_sgnn` / :func:`build_prado` models and :func:`text_model` wrappers)
  stores the projector in the .tflite metadata, so
  ``effkeras.deploy.text_sketch(tflite, out_dir)`` needs the file alone.
- Keras layers (:mod:`effkeras.text.layers`) and model builders
  (:mod:`effkeras.text.models`): :func:`build_sgnn`, :func:`build_prado`,
  :func:`build_embedding_baseline`, :func:`text_model` for training on raw strings.
- :func:`load_sms_spam`: the SMS Spam Collection with a fixed split.

Importing this package registers the Keras layers when Keras is installed; the projector
and the C emitter work without TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

from effkeras.text.c_projector import HostCProjector, c_sources, config_header, write_c_projector
from effkeras.text.datasets import TextDataset, load_sms_spam
from effkeras.text.projector import Projector, calibration_data, normalize_text

__all__ = [
    "HostCProjector",
    "Projector",
    "TextDataset",
    "c_sources",
    "calibration_data",
    "config_header",
    "load_sms_spam",
    "normalize_text",
    "write_c_projector",
]

_KERAS_NAMES = {
    "AttentionPooling": "effkeras.text.layers",
    "StringProjection": "effkeras.text.layers",
    "TableEmbedding": "effkeras.text.layers",
    "Vocabulary": "effkeras.text.models",
    "build_embedding_baseline": "effkeras.text.models",
    "build_prado": "effkeras.text.models",
    "build_sgnn": "effkeras.text.models",
    "text_model": "effkeras.text.models",
}
__all__ += sorted(_KERAS_NAMES)

# The Keras layers register on import. Keras (and TensorFlow) load only when needed: at
# once if Keras is already imported, else on first use of a name below (and through
# effkeras._keras_registration's hook when "effkeras.text.layers" is in its list).
if "keras" in sys.modules:
    importlib.import_module("effkeras.text.layers")


def __getattr__(name: str):
    module = _KERAS_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'effkeras.text' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
