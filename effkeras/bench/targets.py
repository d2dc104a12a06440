"""Where to measure a model: the decision, kept apart from the running.

A target is written as a short string and parsed into a frozen dataclass; the code that
runs it (:mod:`effkeras.bench.host`, :mod:`~effkeras.bench.android`,
:mod:`~effkeras.bench.serial_board`, :mod:`~effkeras.bench.estimate`) never parses
strings, and parsing never touches a device. The valid forms:

========================================  ==================================================
``litert`` / ``litert:KERNELS``           LiteRT on this host; KERNELS = xnnpack (default),
                                          builtin or reference (LiteRT's OpResolverType)
``tflm``                                  TensorFlow Lite Micro kernels on this host
``android`` / ``android:SERIAL``          LiteRT's benchmark_model on a phone over adb;
``android[:SERIAL]@DELEGATE``             DELEGATE = xnnpack (default), cpu (no delegate)
                                          or gpu. SERIAL as ``adb devices`` lists it (it
                                          may contain ':', e.g. 192.168.1.5:5555)
``serial:PORT``                           the generated Arduino sketch's benchmark mode on
                                          a serial port, e.g. serial:/dev/ttyACM0, serial:COM3
``qemu`` / ``qemu:BOARD``                  the generated sketch built with arm-none-eabi-g++
                                          against the Arduino TFLM library and run in
                                          qemu-system-arm; BOARD = mps2_an386 (default)
``estimate:BOARD`` / ``estimate:BOARD:K``  a cycles-per-MAC estimate for a board of
                                          :data:`effkeras.boards.BOARDS`; K = cmsis_nn or
                                          reference (default: cmsis_nn where the board has it)
========================================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from effkeras.boards import get_board
from effkeras.errors import UnknownTargetError

LITERT_KERNELS = ("xnnpack", "builtin", "reference")
ANDROID_DELEGATES = ("xnnpack", "cpu", "gpu")
ESTIMATE_KERNELS = ("cmsis_nn", "reference")

VALID_FORMS = (
    "litert",
    "litert:xnnpack",
    "litert:builtin",
    "litert:reference",
    "tflm",
    "android",
    "android:SERIAL",
    "android[:SERIAL]@xnnpack|cpu|gpu",
    "serial:PORT",
    "qemu",
    "qemu:mps2_an386",
    "estimate:BOARD",
    "estimate:BOARD:cmsis_nn|reference",
)


@dataclass(frozen=True)
class Target:
    """Base of every target. ``kind`` names the runner; ``spec`` is the canonical string."""

    @property
    def kind(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def spec(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    #: Whether the target honours ``threads`` > 1.
    threaded = False
    #: Whether the target takes time measurements (False for the estimate).
    measures = True

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class LiteRTTarget(Target):
    """LiteRT's interpreter on this host with one of its kernel sets."""

    kernels: str = "xnnpack"
    threaded = True

    @property
    def kind(self) -> str:
        return "litert"

    @property
    def spec(self) -> str:
        return f"litert:{self.kernels}"


@dataclass(frozen=True)
class TFLMTarget(Target):
    """The TensorFlow Lite Micro interpreter (its reference C++ kernels) on this host."""

    @property
    def kind(self) -> str:
        return "tflm"

    @property
    def spec(self) -> str:
        return "tflm"


@dataclass(frozen=True)
class AndroidTarget(Target):
    """benchmark_model on an Android device over adb; ``serial`` None = the only device."""

    serial: str | None = None
    delegate: str = "xnnpack"
    threaded = True

    @property
    def kind(self) -> str:
        return "android"

    @property
    def spec(self) -> str:
        return "android" + (f":{self.serial}" if self.serial else "") + f"@{self.delegate}"


@dataclass(frozen=True)
class SerialTarget(Target):
    """The generated Arduino sketch's benchmark protocol on a serial port."""

    port: str = ""

    @property
    def kind(self) -> str:
        return "serial"

    @property
    def spec(self) -> str:
        return f"serial:{self.port}"


@dataclass(frozen=True)
class QemuTarget(Target):
    """The generated sketch, built for an emulated board and run in qemu-system-arm."""

    board: str = "mps2_an386"

    @property
    def kind(self) -> str:
        return "qemu"

    @property
    def spec(self) -> str:
        return f"qemu:{self.board}"


@dataclass(frozen=True)
class EstimateTarget(Target):
    """A latency estimate for a board from MACs and cycles per MAC (nothing runs)."""

    board: str = "nano33ble"
    kernels: str = "cmsis_nn"
    measures = False

    @property
    def kind(self) -> str:
        return "estimate"

    @property
    def spec(self) -> str:
        return f"estimate:{self.board}:{self.kernels}"


def _unknown(spec: object, why: str) -> UnknownTargetError:
    return UnknownTargetError(
        f"{why} Valid targets: {', '.join(VALID_FORMS)}. Received: target={spec!r}"
    )


def parse_target(spec: str | Target) -> Target:
    """Parse a target string (see the module docstring); a :class:`Target` passes through.

    Raises:
        UnknownTargetError: not one of the valid forms (the message lists them).
        UnknownBoardError: ``estimate:BOARD`` with a board not in the table (lists them).
    """
    if isinstance(spec, Target):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise _unknown(spec, "A target must be a non-empty string.")
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind.startswith("android"):
        # android, android@gpu, android:SERIAL, android:SERIAL@gpu
        body = text[len("android") :]
        delegate = "xnnpack"
        if "@" in body:
            body, _, delegate = body.rpartition("@")
            delegate = delegate.lower()
            if delegate not in ANDROID_DELEGATES:
                raise _unknown(spec, f"Unknown Android delegate {delegate!r}; use one of "
                               f"{', '.join(ANDROID_DELEGATES)}.")
        if body and not body.startswith(":"):
            raise _unknown(spec, "Write android, android:SERIAL or android:SERIAL@DELEGATE.")
        serial = body[1:] or None
        if serial is not None and any(c.isspace() for c in serial):
            raise _unknown(spec, "An adb serial has no spaces.")
        return AndroidTarget(serial=serial, delegate=delegate)
    if kind == "litert":
        kernels = (rest or "xnnpack").lower()
        if kernels not in LITERT_KERNELS:
            raise _unknown(spec, f"Unknown LiteRT kernel set {rest!r}; use one of "
                           f"{', '.join(LITERT_KERNELS)}.")
        return LiteRTTarget(kernels=kernels)
    if kind == "tflm":
        if rest:
            raise _unknown(spec, "tflm takes no option.")
        return TFLMTarget()
    if kind == "serial":
        if not rest:
            raise _unknown(spec, "serial needs a port, e.g. serial:/dev/ttyACM0 or serial:COM3.")
        return SerialTarget(port=rest)
    if kind == "qemu":
        from effkeras.bench.qemu import emulated_boards

        board_name = (rest or "mps2_an386").strip().lower().replace("-", "_")
        board_name = {"mps2": "mps2_an386", "an386": "mps2_an386"}.get(board_name, board_name)
        if board_name not in emulated_boards():
            raise _unknown(spec, f"QEMU emulates {', '.join(emulated_boards())}; other boards "
                           f"only build (`effkeras build SKETCH --board NAME`).")
        return QemuTarget(board=board_name)
    if kind == "estimate":
        board_name, _, kernels = rest.partition(":")
        if not board_name:
            raise _unknown(spec, "estimate needs a board, e.g. estimate:nano33ble.")
        board = get_board(board_name)  # UnknownBoardError lists the valid boards
        if kernels:
            kernels = kernels.lower().replace("-", "_")
            if kernels not in ESTIMATE_KERNELS:
                raise _unknown(spec, f"Unknown kernel set {kernels!r} for an estimate; use "
                               f"{' or '.join(ESTIMATE_KERNELS)}.")
        else:
            kernels = "cmsis_nn" if board.cmsis_nn else "reference"
        if kernels == "cmsis_nn" and not board.cmsis_nn:
            raise _unknown(spec, f"Board {board.name} ({board.core}) cannot use CMSIS-NN; use "
                           f"estimate:{board.name}:reference.")
        return EstimateTarget(board=board.name, kernels=kernels)
    raise _unknown(spec, f"Unknown target kind {kind!r}.")
