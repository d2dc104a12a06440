"""Measure a .tflite's latency on a target: host LiteRT or TFLM, a phone, a board, an estimate.

- :func:`parse_target` decides *where* (:mod:`~effkeras.bench.targets`); :func:`measure`
  and :func:`compare` run it (:mod:`~effkeras.bench.measure`) and return
  :class:`BenchResult` s (median, p5, p95, mean, std, first inference, peak memory, arena).
- :func:`format_table`, :func:`to_json`, :func:`write_csv` report them;
  :func:`plot_tradeoff` draws size, latency and accuracy across models.
- :func:`estimate` is the cycles-per-MAC model behind ``estimate:BOARD``.

No TensorFlow here: this package runs next to a board with numpy, ai-edge-litert,
tflite-micro and (for boards) pyserial.
"""

from effkeras.bench.estimate import Estimate, estimate
from effkeras.bench.measure import compare, measure
from effkeras.bench.plot import plot_tradeoff
from effkeras.bench.report import format_table, to_json, write_csv
from effkeras.bench.result import BenchResult
from effkeras.bench.stats import LatencyStats
from effkeras.bench.targets import (
    AndroidTarget,
    EstimateTarget,
    LiteRTTarget,
    SerialTarget,
    Target,
    TFLMTarget,
    parse_target,
)

__all__ = [
    "AndroidTarget",
    "BenchResult",
    "Estimate",
    "EstimateTarget",
    "LatencyStats",
    "LiteRTTarget",
    "SerialTarget",
    "TFLMTarget",
    "Target",
    "compare",
    "estimate",
    "format_table",
    "measure",
    "parse_target",
    "plot_tradeoff",
    "to_json",
    "write_csv",
]
