"""Artifacts a device consumes: Arduino sketches for TensorFlow Lite Micro.

- :func:`arduino_sketch` writes a sketch folder (``.ino``, model C array,
  ``model_settings.h``, README) for a board from :mod:`effkeras.boards`.
- :mod:`effkeras.deploy.protocol` defines the sketch's serial benchmark protocol and parses
  the board's lines (:func:`~effkeras.deploy.protocol.parse_line`).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from effkeras.deploy import protocol
from effkeras.deploy.arduino import SketchInfo, arduino_sketch
from effkeras.deploy.protocol import parse_line

__all__ = ["SketchInfo", "arduino_sketch", "parse_line", "protocol"]
