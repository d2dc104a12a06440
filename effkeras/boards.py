"""Microcontroller boards: memory, clock and core, for fit checks and sketch generation.

Figures are the vendors' published specifications. ``program_flash_kb`` is an estimate,
not a measurement: the flash taken by the Arduino core plus the TFLite Micro interpreter
with a handful of kernels (measure your own build with ``arduino-cli compile``); it is
added to the model size when checking whether the model fits in flash.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from effkeras.errors import EffkerasError, UnknownBoardError


@dataclass(frozen=True)
class Board:
    """One target board.

    Attributes:
        name: short name used on the command line.
        title: the board's full name.
        mcu: microcontroller part.
        core: CPU core (e.g. "Cortex-M4F").
        clock_mhz: CPU clock.
        flash_kb: on-chip or on-module flash available for the program, KiB.
        ram_kb: SRAM, KiB (the tensor arena lives here).
        fqbn: Arduino fully qualified board name for arduino-cli ("" if none).
        program_flash_kb: estimated flash used by core + TFLM runtime (see module doc).
        cmsis_nn: whether TFLM's optimized CMSIS-NN kernels apply (Arm Cortex-M with DSP).
        notes: anything a user must know.
    """

    name: str
    title: str
    mcu: str
    core: str
    clock_mhz: float
    flash_kb: int
    ram_kb: int
    fqbn: str = ""
    program_flash_kb: int = 160
    cmsis_nn: bool = False
    notes: str = ""

    def __post_init__(self):
        for field in ("clock_mhz", "flash_kb", "ram_kb"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value <= 0:
                raise EffkerasError(f"Board {field} must be a finite positive number. Received: {field}={value!r}")

    @property
    def flash_bytes(self) -> int:
        return int(self.flash_kb * 1024)

    @property
    def ram_bytes(self) -> int:
        return int(self.ram_kb * 1024)

    def to_dict(self) -> dict:
        return asdict(self)


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            "nano33ble",
            "Arduino Nano 33 BLE Sense",
            "nRF52840",
            "Cortex-M4F",
            64,
            1024,
            256,
            fqbn="arduino:mbed_nano:nano33ble",
            program_flash_kb=180,
            cmsis_nn=True,
            notes="The board of the official TFLM Arduino examples (Mbed OS core).",
        ),
        Board(
            "pico",
            "Raspberry Pi Pico",
            "RP2040",
            "Cortex-M0+",
            133,
            2048,
            264,
            fqbn="arduino:mbed_rp2040:pico",
            program_flash_kb=180,
            notes="Cortex-M0+: no DSP instructions and no FPU; int8 models strongly preferred.",
        ),
        Board(
            "nano_rp2040_connect",
            "Arduino Nano RP2040 Connect",
            "RP2040",
            "Cortex-M0+",
            133,
            16384,
            264,
            fqbn="arduino:mbed_nano:nanorp2040connect",
            program_flash_kb=180,
            notes="16 MB external QSPI flash; same RP2040 core and RAM as the Pico.",
        ),
        Board(
            "portenta_h7",
            "Arduino Portenta H7 (M7 core)",
            "STM32H747XI",
            "Cortex-M7F",
            480,
            2048,
            1024,
            fqbn="arduino:mbed_portenta:envie_m7",
            program_flash_kb=200,
            cmsis_nn=True,
            notes="1 MB internal SRAM counted; the 8 MB SDRAM is not used for the arena.",
        ),
        Board(
            "esp32s3",
            "Espressif ESP32-S3 (DevKitC-1 N8)",
            "ESP32-S3",
            "Xtensa LX7 (dual core)",
            240,
            8192,
            512,
            fqbn="esp32:esp32:esp32s3",
            program_flash_kb=300,
            notes="Flash is the module's (8 MB on N8 variants). Use the ESP-NN optimized "
            "TFLM port (esp-tflite-micro); Arduino_TensorFlowLite targets Arm boards.",
        ),
    )
}


def get_board(board: str | Board) -> Board:
    """Look up a board by name (case-insensitive; '-' and '_' alike) or pass one through."""
    if isinstance(board, Board):
        return board
    key = str(board).strip().lower().replace("-", "_")
    if key in BOARDS:
        return BOARDS[key]
    raise UnknownBoardError(
        f"Unknown board {board!r}. Valid boards: {', '.join(BOARDS)}; or describe your own "
        f"with custom_board(...) (CLI: --board custom --flash-kb N --ram-kb N --clock-mhz N)."
    )


def custom_board(
    flash_kb: int,
    ram_kb: int,
    clock_mhz: float = 64,
    core: str = "Cortex-M4F",
    name: str = "custom",
    program_flash_kb: int = 160,
    cmsis_nn: bool = False,
) -> Board:
    """A board that is not in the table, from its flash, RAM and clock."""
    return Board(
        name=name,
        title=f"Custom board ({core}, {clock_mhz:g} MHz)",
        mcu="custom",
        core=core,
        clock_mhz=clock_mhz,
        flash_kb=flash_kb,
        ram_kb=ram_kb,
        program_flash_kb=program_flash_kb,
        cmsis_nn=cmsis_nn,
    )
