"""Whether a model fits a board: flash and RAM needed against what the board has.

:func:`board_fit` compares a .tflite size plus the board's program estimate (flash) and an
arena with margin (RAM) with a board of :mod:`effkeras.boards`; ``_fit_text`` words the
result as one sentence (:meth:`effkeras.profiling.ProfileReport.fit_line`).

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from typing import Any

from effkeras.boards import Board, get_board

__all__ = ["board_fit"]


def board_fit(board: str | Board, size_bytes: int, arena_bytes: int | None) -> dict[str, Any]:
    """Whether a model fits a board's flash and RAM.

    Args:
        board: a board name from :data:`effkeras.boards.BOARDS` or a :class:`Board`.
        size_bytes: the .tflite size.
        arena_bytes: the arena the board needs (with margin), or None when unknown.

    Returns:
        ``{name, title, flash: {needed_bytes, available_bytes, fits, margin_bytes,
        used_percent}, ram: {...}, fits}``; the RAM figures and ``fits`` are None when
        ``arena_bytes`` is None and the flash fits (a model that does not fit in flash
        does not fit, whatever its arena).
    """
    b = get_board(board)
    flash_needed = int(size_bytes) + int(b.program_flash_kb) * 1024
    flash = _resource(flash_needed, b.flash_bytes)
    if arena_bytes is None:
        ram = {
            "needed_bytes": None,
            "available_bytes": b.ram_bytes,
            "fits": None,
            "margin_bytes": None,
            "used_percent": None,
        }
    else:
        ram = _resource(int(arena_bytes), b.ram_bytes)
    if not flash["fits"] or ram["fits"] is False:
        fits: bool | None = False
    else:
        fits = ram["fits"]
    return {"name": b.name, "title": b.title, "flash": flash, "ram": ram, "fits": fits}


def _resource(needed: int, available: int) -> dict[str, Any]:
    return {
        "needed_bytes": needed,
        "available_bytes": int(available),
        "fits": needed <= available,
        "margin_bytes": int(available) - needed,
        "used_percent": round(100.0 * needed / available, 1),
    }


def _fit_text(entry: dict[str, Any]) -> str:
    verdict = {True: "fits on", False: "does NOT fit on", None: "may not fit on"}
    parts = [f"flash {_resource_text(entry['flash'])}"]
    ram = entry["ram"]
    if ram["needed_bytes"] is None:
        parts.append(
            f"RAM unknown (arena not measured; {ram['available_bytes']:,} bytes available)"
        )
    else:
        parts.append(f"RAM {_resource_text(ram)}")
    return f"{verdict[entry['fits']]} {entry['title']}: " + ", ".join(parts)


def _resource_text(r: dict[str, Any]) -> str:
    if r["fits"]:
        return f"{r['used_percent']:g}% used (margin {r['margin_bytes']:,} bytes)"
    return (
        f"{r['used_percent']:g}% used (over by {-r['margin_bytes']:,} bytes: needs "
        f"{r['needed_bytes']:,} of {r['available_bytes']:,})"
    )
