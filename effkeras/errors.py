"""Exceptions raised by effkeras.

Every error says what was received and what to do about it. All derive from
:class:`EffkerasError` (a ``ValueError``), so ``except ValueError`` still catches them;
the CLI maps them to exit code 2.
"""

from __future__ import annotations


class EffkerasError(ValueError):
    """Base class of every error effkeras raises on bad input."""


class InvalidModelError(EffkerasError):
    """A file or object is not a model effkeras can read (missing, corrupt, wrong kind)."""


class CalibrationDataError(EffkerasError):
    """Representative (calibration) data does not match the model's input."""


class ConversionError(EffkerasError):
    """The TFLite converter failed or produced something other than what was asked."""


class FloatOpsError(ConversionError):
    """Full-integer conversion left float operators in the graph.

    Attributes:
        ops: names of the operators that still compute in float.
    """

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = list(ops)


class UnsupportedOpsError(EffkerasError):
    """The model uses operators the chosen runtime (e.g. TFLite Micro) does not have.

    Attributes:
        ops: names of the missing operators.
    """

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = list(ops)


class BoardFitError(EffkerasError):
    """The model does not fit the chosen board's flash or RAM."""


class OutputExistsError(EffkerasError):
    """An output file or folder exists and ``force`` was not given."""


class UnknownBoardError(EffkerasError):
    """A board name that is not in the board table."""


class DatasetError(EffkerasError):
    """A dataset could not be found or read."""


class UnknownTargetError(EffkerasError):
    """A benchmark target that is not one of the valid forms (see effkeras.bench.targets)."""


class BenchConfigError(EffkerasError):
    """Benchmark settings that cannot work (runs < 1, threads on a single-threaded target...)."""


class DeviceError(EffkerasError):
    """A phone or board could not be reached or answered wrongly (adb, serial, timeouts)."""


class ModelMismatchError(DeviceError):
    """The device runs a different model than the one given (size or checksum differ)."""


class PruningError(EffkerasError):
    """Pruning was set up or used wrongly (bad schedule or structure, missing callback)."""


class QuantizationError(EffkerasError):
    """A model or layer that quantization-aware training cannot rewrite or train.

    The message names the layer (or model) and says what to change.
    """


class DistillationError(EffkerasError):
    """Knowledge distillation was set up wrongly (models, temperature, loss weight)."""


class ToolchainError(EffkerasError):
    """A tool or library a build or an emulated run needs is missing (arm-none-eabi-g++,
    qemu-system-arm, the Arduino_TensorFlowLite library); the message says how to get it."""


class BuildError(EffkerasError):
    """Compiling or linking a sketch failed, or the folder is not a sketch effkeras can build.

    The message names the file and carries the compiler's first error lines.
    """
