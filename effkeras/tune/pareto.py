"""Non-dominated sorting (Deb et al., NSGA-II, 2002) on plain lists of numbers.

Used by :class:`effkeras.tune.ParetoOracle` while searching and by the result writer
afterwards; imports nothing but the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["crowding_distance", "non_dominated_sort", "pareto_front"]


def _check_directions(directions: Sequence[str]) -> list[str]:
    out = []
    for d in directions:
        if d not in ("min", "max"):
            raise ValueError(
                f"Each direction must be 'min' or 'max', e.g. keras_tuner.Objective('val_int8_accuracy', "
                f"'max'). Received: direction={d!r}"
            )
        out.append(d)
    return out


def _dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        if d == "max":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def non_dominated_sort(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """The Pareto rank of each point: 0 for the non-dominated front, 1 for the next, ...

    Args:
        points: one sequence of objective values per point.
        directions: ``"min"`` or ``"max"`` for each objective.

    Returns:
        A rank per point, in the order given.
    """
    directions = _check_directions(directions)
    n = len(points)
    dominated_by: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if _dominates(points[i], points[j], directions):
                dominated_by[i].append(j)
                count[j] += 1
            elif _dominates(points[j], points[i], directions):
                dominated_by[j].append(i)
                count[i] += 1
    ranks = [0] * n
    current = [i for i in range(n) if count[i] == 0]
    rank = 0
    while current:
        nxt = []
        for i in current:
            ranks[i] = rank
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        current = nxt
        rank += 1
    return ranks


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (rank 0), in the order given."""
    return [i for i, r in enumerate(non_dominated_sort(points, directions)) if r == 0]


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within one front (inf at the extremes)."""
    n = len(points)
    if n == 0:
        return []
    dist = [0.0] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][k])
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            dist[i] += (points[b][k] - points[a][k]) / (hi - lo)
    return dist
