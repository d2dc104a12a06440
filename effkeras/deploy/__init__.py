"""Artifacts a device consumes: Arduino sketches for TensorFlow Lite Micro.

- :func:`arduino_sketch` writes a sketch folder (``.ino``, model C array,
  ``model_settings.h``, README) for a board from :mod:`effkeras.boards`.
- :func:`text_sketch` writes a sketch for a projection text model (:mod:`effkeras.text`):
  it reads a line from Serial, projects it with the portable C projector and classifies it.
  The projector comes from the model file's metadata (``to_tflite`` stores it).
- :mod:`effkeras.deploy.featurizer` (the text projector, its specification, and reading /
  storing it in a .tflite: :func:`~effkeras.deploy.featurizer.read_projector`,
  :func:`~effkeras.deploy.featurizer.attach_projector`) and
  :mod:`effkeras.deploy.c_featurizer` (the same projector as portable C, bit-exact).
- :mod:`effkeras.deploy.protocol` defines the sketch's serial benchmark protocol and parses
  the board's lines (:func:`~effkeras.deploy.protocol.parse_line`).

Nothing here imports TensorFlow, Keras or the training side (:mod:`effkeras.text`).
"""

from __future__ import annotations

from effkeras.deploy import protocol
from effkeras.deploy.arduino import SketchInfo, arduino_sketch
from effkeras.deploy.protocol import parse_line
from effkeras.deploy.text_sketch import TextSketchInfo, text_sketch

__all__ = ["SketchInfo", "TextSketchInfo", "arduino_sketch", "parse_line", "protocol", "text_sketch"]
