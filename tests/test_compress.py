"""TFLM LUT compression of a clustered int8 model (effkeras.convert.compress).

A small conv + dense model is clustered to 8 values a kernel, stripped and converted to
int8 once; the compressed file must run in the tflite-micro package's interpreter with
exactly the uncompressed file's outputs, be smaller, and be refused for the 2023 Arduino
library with a message that says what it needs.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from effkeras.cluster import cluster_weights, strip_clustering  # noqa: E402
from effkeras.convert import read_tflite, to_tflite  # noqa: E402
from effkeras.convert.compress import (  # noqa: E402
    DECODE_OP,
    check_tflm_library,
    compress_tflite,
    compression_plan,
    tflm_requirements,
)
from effkeras.errors import ConversionError, UnsupportedOpsError  # noqa: E402
from effkeras.runtime import TFLMRunner  # noqa: E402

K = 8


@pytest.fixture(scope="module")
def files():
    """(x, int8 file of the clustered model, its compressed file)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(48, activation="relu"),
        keras.layers.Dense(10),
    ])
    x = np.random.default_rng(0).uniform(0, 1, (64, 8, 8, 1)).astype("float32")
    stripped = strip_clustering(cluster_weights(model, number_of_clusters=K))
    int8 = to_tflite(stripped, "int8", representative_data=x)
    return x, int8, compress_tflite(int8)


def test_clustered_filters_have_at_most_k_values_a_channel(files):
    _, int8, _ = files
    plan = compression_plan(int8)
    assert len(plan) == 3
    assert all(1 < p.unique <= K for p in plan)
    assert all(p.index_bits == int(np.ceil(np.log2(p.unique))) for p in plan)
    # the small conv filter (72 bytes) would grow; the dense ones shrink
    assert [p.compress for p in plan] == [False, True, True]


def test_compressed_outputs_equal_uncompressed_in_tflm(files):
    x, int8, packed = files
    parsed = read_tflite(packed)
    assert parsed.op_counts[DECODE_OP] == 2
    assert len(packed) < len(int8)
    plan = [p for p in compression_plan(int8) if p.compress]
    saved = sum(p.bytes_before - p.bytes_after for p in plan)
    assert len(int8) - len(packed) > saved // 2  # the DECODE ops and names cost some
    np.testing.assert_array_equal(TFLMRunner(packed).predict(x), TFLMRunner(int8).predict(x))


def test_requirements_name_decode_and_refuse_the_2023_library(files):
    _, int8, packed = files
    plain, compressed = tflm_requirements(int8), tflm_requirements(packed)
    assert plain.arduino_2023 and plain.decode_ops == 0
    assert not compressed.arduino_2023 and compressed.decode_ops == 2
    assert "DECODE" in compressed.needs
    check_tflm_library(int8)
    check_tflm_library(packed, library="decode")
    with pytest.raises(UnsupportedOpsError, match="2 TFLM_DECODE.*no DECODE kernel") as info:
        check_tflm_library(packed)
    assert info.value.ops == [DECODE_OP]


def test_refusals(files):
    _, int8, packed = files
    bits = min(p.index_bits for p in compression_plan(int8) if p.compress)
    with pytest.raises(ConversionError, match=f"need {bits}-bit indices.*cluster"):
        compress_tflite(int8, max_index_bits=bits - 1)
    with pytest.raises(ConversionError, match="compressed already"):
        compress_tflite(packed)
    with pytest.raises(ConversionError, match="Received: max_index_bits=8"):
        compress_tflite(int8, max_index_bits=8)
