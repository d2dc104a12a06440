"""The main job end to end on the embedded digits, in a temporary folder."""

from __future__ import annotations

import json
import os

import pytest

from effkeras.convert import parse_c_array, read_tflite
from effkeras.demo import format_summary, run_demo
from effkeras.errors import OutputExistsError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo("digits", out_dir=str(out), epochs=8, force=True, verbose=0)


def test_demo_writes_models_sidecars_carray_and_sketch(demo):
    out = demo.out_dir
    int8 = open(os.path.join(out, "tflite_models", "digits_cnn_int8.tflite"), "rb").read()
    side = json.load(open(os.path.join(out, "tflite_models", "digits_cnn_int8.json")))
    m = read_tflite(int8)
    assert side["sha256"] == m.sha256 and side["size_bytes"] == len(int8)
    assert m.is_full_integer and m.inputs[0].dtype == "INT8"
    assert side["arena_bytes"] == demo.arena_bytes > 0
    cc = open(os.path.join(out, "deploy", "c_arrays", "digits_cnn_int8.cc")).read()
    assert parse_c_array(cc) == int8
    sketch = os.path.join(out, "deploy", "digits_cnn_int8_nano33ble")
    assert any(f.endswith(".ino") for f in os.listdir(sketch))
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["accuracy_tflm_int8"] == demo.accuracy_tflm_int8


def test_demo_accuracies_are_real_and_consistent(demo):
    assert demo.accuracy_keras > 0.85
    assert abs(demo.accuracy_litert_int8 - demo.accuracy_keras) < 0.03
    # TFLM runs the same int8 kernels as LiteRT's reference path: within 1 LSB, so
    # the accuracies agree closely
    assert abs(demo.accuracy_tflm_int8 - demo.accuracy_litert_int8) < 0.01
    assert demo.fits["fits"] is True
    text = format_summary(demo)
    assert "digits_cnn_int8.tflite" in text and "TFLM arena" in text and "nano33ble" in text


def test_demo_refuses_to_overwrite(demo):
    with pytest.raises(OutputExistsError, match="--force"):
        run_demo("digits", out_dir=demo.out_dir, epochs=1, verbose=0)
