"""TFLM LUT compression of a clustered int8 model (effkeras.convert.compress).

A small conv + dense model is clustered to 8 values a kernel, stripped and converted to
int8 once; the compressed file must run in the tflite-micro package's interpreter with
exactly the uncompressed file's outputs, be smaller, and be refused for the 2023 Arduino
library with a message that says what it needs.
"""

from __future__ import annotations

import os

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


# ---- cluster_filters: post-training per-channel weight sharing on an int8 file ------------

from effkeras.convert.compress import _kmeans_1d, cluster_filters  # noqa: E402


@pytest.fixture(scope="module")
def plain():
    """(x, an int8 file of an unclustered conv + dense model: up to 255 values a channel)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(48, activation="relu"),
        keras.layers.Dense(10),
    ])
    x = np.random.default_rng(0).uniform(0, 1, (64, 8, 8, 1)).astype("float32")
    return x, to_tflite(model, "int8", representative_data=x)


def _filter_tensors(model):
    return [model.tensors[op.inputs[1]] for op in model.ops if op.name in ("CONV_2D", "FULLY_CONNECTED")]


def test_kmeans_1d_is_optimal_over_contiguous_splits():
    import itertools

    values = np.array([-9.0, -4, -3, 0, 2, 7, 8])
    counts = np.array([1.0, 3, 2, 5, 1, 2, 4])

    def sse(labels):
        return sum(float(np.sum(counts[labels == m] * (values[labels == m] - np.average(
            values[labels == m], weights=counts[labels == m])) ** 2)) for m in set(labels))

    best = min(sse(np.repeat(np.arange(3), np.diff([0, *cuts, 7])))
               for cuts in itertools.combinations(range(1, 7), 2))
    labels = _kmeans_1d(values, counts, 3)
    assert sorted(set(labels)) == [0, 1, 2] and np.all(np.diff(labels) >= 0)
    assert sse(labels) == pytest.approx(best)


def test_cluster_filters_k_values_a_channel_keep_untouched(plain):
    x, int8 = plain
    before = read_tflite(int8)
    assert max(p.unique for p in compression_plan(int8)) > 16
    for k in (16, 4):
        after = read_tflite(cluster_filters(int8, k, keep=(-1,)))
        # the same data, repacked (buffers 16-byte aligned): clustering alone does not shrink it
        assert abs(after.size_bytes - before.size_bytes) <= 16 * len(after.tensors)
        t0, t1, t2 = _filter_tensors(after)
        for t in (t0, t1):  # per output channel (axis 0 of OHWI / OI)
            v = after.tensor_data(t).reshape(t.shape[0], -1)
            assert max(np.unique(row).size for row in v) <= k
            # each value moved to its cluster's mean: error below the unclustered spread
            orig = before.tensor_data(before.tensors[t.index]).reshape(t.shape[0], -1).astype(int)
            assert np.abs(v.astype(int) - orig).max() < np.ptp(orig, axis=1).max() / 2
        kept = before.tensors[t2.index]
        assert bytes(after._buffer_bytes(t2.buffer)) == bytes(before._buffer_bytes(kept.buffer))
        for t in after.tensors:  # scales and biases unchanged
            b = before.tensors[t.index]
            if t.quantization is not None:
                np.testing.assert_array_equal(t.quantization.scales, b.quantization.scales)
            if t.dtype == "INT32" and t.is_constant:
                np.testing.assert_array_equal(after.tensor_data(t), before.tensor_data(b))


def test_clustered_file_compresses_to_equal_tflm_outputs(plain):
    x, int8 = plain
    clustered = cluster_filters(int8, 4)
    plan = compression_plan(clustered)
    assert all(p.unique <= 4 and p.index_bits <= 2 for p in plan)
    packed = compress_tflite(clustered)
    assert len(packed) < len(int8)
    np.testing.assert_array_equal(TFLMRunner(packed).predict(x), TFLMRunner(clustered).predict(x))


def test_cluster_filters_refuses_bad_arguments(plain):
    _, int8 = plain
    for k in (1, 129, 2.5, True):
        with pytest.raises(ConversionError, match=f"Received: k={k!r}"):
            cluster_filters(int8, k)
    with pytest.raises(ConversionError, match=r"Received: keep=\(7,\)"):
        cluster_filters(int8, 8, keep=(7,))
    every = [op.index for op in read_tflite(int8).ops if op.name in ("CONV_2D", "FULLY_CONNECTED")]
    with pytest.raises(ConversionError, match="no int8 filter"):
        cluster_filters(int8, 8, keep=every)


# ---- sketches refuse a compressed file before writing anything ----------------------------


def test_sketch_refuses_compressed_file_and_writes_nothing(files, tmp_path):
    from effkeras.deploy import arduino_sketch

    _, int8, packed = files
    decoded = [read_tflite(packed).tensors[op.outputs[0]].name
               for op in read_tflite(packed).ops if op.name == DECODE_OP]
    path = tmp_path / "packed.tflite"
    path.write_bytes(packed)
    out = tmp_path / "packed_sketch"
    with pytest.raises(UnsupportedOpsError) as info:
        arduino_sketch(str(path), out)
    msg = str(info.value)
    assert info.value.ops == [DECODE_OP]
    assert str(path) in msg and "compressed" in msg and "2 TFLM_DECODE" in msg
    assert all(repr(name) in msg for name in decoded)
    assert "Arduino_TensorFlowLite library 2.4.0-ALPHA" in msg and "no DECODE kernel" in msg
    assert "without --compress" in msg and "int4" in msg and "AddDecode" in msg
    assert not out.exists()
    # an existing folder with force=True is left as it was
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(UnsupportedOpsError, match="compressed"):
        arduino_sketch(packed, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # the uncompressed twin still makes a sketch
    info_ok = arduino_sketch(int8, tmp_path / "plain_sketch")
    assert os.path.exists(info_ok.ino_path) and DECODE_OP not in info_ok.ops


def test_text_sketch_refuses_compressed_file_first(files, tmp_path):
    from effkeras.deploy import text_sketch

    _, _, packed = files
    out = tmp_path / "text_sketch"
    # refused for compression before it is told that the file stores no projector
    with pytest.raises(UnsupportedOpsError, match="is compressed.*without --compress"):
        text_sketch(packed, out)
    assert not out.exists()


def test_cli_sketch_refuses_compressed_file_with_exit_2(files, tmp_path, capsys):
    from effkeras.cli import main

    _, int8, packed = files
    path, plain = tmp_path / "packed.tflite", tmp_path / "plain.tflite"
    path.write_bytes(packed)
    plain.write_bytes(int8)
    out = tmp_path / "cli_sketch"
    assert main(["sketch", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "effkeras: error:" in err and str(path) in err and "TFLM_DECODE" in err
    assert "without --compress" in err and "no DECODE kernel" in err
    assert not out.exists()
    assert main(["sketch", str(plain), "--out", str(out)]) == 0
    assert (out / "cli_sketch.ino").exists()
