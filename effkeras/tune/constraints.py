"""Hard board constraints of a search, and measuring an int8 .tflite against them.

A model fits when its .tflite plus the board's program estimate fits in flash and its
TFLite Micro arena (measured on this host, plus the 32-bit margin of
:func:`effkeras.runtime.tflm.arena_with_margin`) fits in RAM, as
:func:`effkeras.profile` decides; optionally its estimated latency on the board
(:func:`effkeras.bench.estimate.estimate`) must be under a limit.

None of these depends on the trained weights: size, arena and MACs depend on shapes only.
So :class:`~effkeras.tune.BoardTuner` measures the untrained model first and skips the
training of a model that cannot fit. This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from effkeras.boards import Board, get_board
from effkeras.errors import EffkerasError

__all__ = ["Constraints", "measure_tflite"]


@dataclass(frozen=True)
class Constraints:
    """What a model must meet to be deployable on a board.

    Attributes:
        board: a :class:`~effkeras.boards.Board` (``get_board(name)`` or ``custom_board(...)``).
        max_latency_ms: the largest estimated latency on the board, or None for no limit.
        kernels: ``"cmsis_nn"`` or ``"reference"`` for the latency estimate; None picks
            CMSIS-NN where the board has it.
    """

    board: Board
    max_latency_ms: float | None = None
    kernels: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "board", get_board(self.board))
        m = self.max_latency_ms
        if m is not None and (isinstance(m, bool) or not isinstance(m, int | float)
                              or not math.isfinite(m) or m <= 0):
            raise EffkerasError(
                f"max_latency_ms must be a positive number of milliseconds, or None for no "
                f"limit. Received: max_latency_ms={m!r}"
            )

    def check(self, figures: dict[str, Any]) -> list[str]:
        """The reasons a model with these figures (from :func:`measure_tflite`) does not fit.

        Returns:
            An empty list when it fits.
        """
        b = self.board
        reasons = []
        flash_needed = figures["size_bytes"] + b.program_flash_kb * 1024
        if flash_needed > b.flash_bytes:
            reasons.append(
                f"flash: needs {flash_needed:,} B (model {figures['size_bytes']:,} B + program "
                f"{b.program_flash_kb} KiB) of {b.flash_bytes:,} B"
            )
        if figures.get("arena_error"):
            reasons.append(f"TFLM: {figures['arena_error']}")
        elif figures["arena_with_margin"] > b.ram_bytes:
            reasons.append(
                f"RAM: arena needs {figures['arena_with_margin']:,} B (with margin) of "
                f"{b.ram_bytes:,} B"
            )
        if self.max_latency_ms is not None and figures["latency_ms"] > self.max_latency_ms:
            reasons.append(
                f"latency: estimated {figures['latency_ms']:.2f} ms > max {self.max_latency_ms:g} ms"
            )
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board.to_dict(), "max_latency_ms": self.max_latency_ms,
                "kernels": self.kernels}


def measure_tflite(tflite: bytes, constraints: Constraints) -> dict[str, Any]:
    """Size, exact TFLM arena, MACs and the board latency estimate of a .tflite.

    Returns:
        ``{size_bytes, arena_bytes, arena_with_margin, arena_error, macs, latency_us,
        latency_ms, latency_calibrated}`` (arena figures None when TFLM could not run it).
    """
    from effkeras.bench.estimate import estimate
    from effkeras.profiling import profile

    report = profile(tflite, board=constraints.board)
    est = estimate(tflite, constraints.board, kernels=constraints.kernels)
    return {
        "size_bytes": int(report.size_bytes),
        "arena_bytes": report.arena_bytes,
        "arena_with_margin": report.arena_with_margin,
        "arena_error": report.arena_error,
        "macs": int(report.macs),
        "latency_us": float(est.latency_us),
        "latency_ms": float(est.latency_us) / 1000.0,
        "latency_calibrated": bool(est.calibrated),
    }
