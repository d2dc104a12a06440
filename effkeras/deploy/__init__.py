"""Artifacts a device consumes: Arduino sketches for TensorFlow Lite Micro.

- :func:`arduino_sketch` writes a sketch folder (``.ino``, model C array,
  ``model_settings.h``, README) for a board from :mod:`effkeras.boards`.
- :func:`text_sketch` writes a sketch for a projection text model (:mod:`effkeras.text`):
  it reads a line from Serial, projects it with the portable C projector and classifies it.
- :mod:`effkeras.deploy.protocol` defines the sketch's serial benchmark protocol and parses
  the board's lines (:func:`~effkeras.deploy.protocol.parse_line`).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from effkeras.deploy import protocol
from effkeras.deploy.arduino import SketchInfo, arduino_sketch
from effkeras.deploy.protocol import parse_line
from effkeras.deploy.text_sketch import TextSketchInfo, text_sketch

__all__ = ["SketchInfo", "TextSketchInfo", "arduino_sketch", "parse_line", "protocol", "text_sketch"]
