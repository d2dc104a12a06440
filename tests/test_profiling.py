"""effkeras.profile: params, MACs, exact TFLM arena, board fit, report formats."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import effkeras
from effkeras import BOARDS, custom_board, profile
from effkeras.convert import read_tflite, to_tflite
from effkeras.errors import ConversionError, InvalidModelError, UnknownBoardError
from effkeras.profiling import ProfileReport
from effkeras.runtime import TFLMRunner
from effkeras.runtime.tflm import arena_with_margin, measure_arena

REPO = Path(__file__).resolve().parents[1]

REPORT_KEYS = {
    "source",
    "size_bytes",
    "sha256",
    "params",
    "constant_elements",
    "macs",
    "elementwise_ops",
    "ops",
    "arena_bytes",
    "arena_recorded_bytes",
    "arena_with_margin",
    "arena_error",
    "arena_source",
    "fit_arena_bytes",
    "target_arena_bytes",
    "target",
    "tflm_needs",
    "arduino_library_problems",
    "tflm_unsupported_ops",
    "inputs",
    "outputs",
    "is_full_integer",
    "layers",
    "boards",
    "conversion",
    "isolated",
    "gzip_size_bytes",
    "weight_elements",
    "weight_zeros",
    "weight_sparsity",
    "sparse_tensors",
}


def _random_weights(model, seed: int = 0) -> None:
    """Non-zero weights everywhere, so the converter drops no all-zero bias."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])


@pytest.fixture(scope="module")
def int8_report(int8_io_tflite) -> ProfileReport:
    return profile(int8_io_tflite, "nano33ble")


@pytest.fixture(scope="module")
def separable_model():
    """Depthwise, separable, transposed conv and dense layers; no batch norm."""
    import keras

    layers = keras.layers
    x = inputs = keras.Input((16, 16, 3))
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = layers.SeparableConv2D(8, 3, strides=2, padding="valid", activation="relu", name="sep")(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, name="deconv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(5, name="head")(x)
    model = keras.Model(inputs, outputs)
    _random_weights(model)
    return model


@pytest.fixture(scope="module")
def separable_tflite(separable_model) -> bytes:
    return to_tflite(separable_model)


# ---- arena -------------------------------------------------------------------------------
def test_arena_is_measured_by_tflm(int8_report, int8_io_tflite):
    recorded = TFLMRunner(int8_io_tflite).arena_bytes()
    assert recorded > 0
    assert int8_report.arena_recorded_bytes == recorded
    smallest = measure_arena(int8_io_tflite)
    assert int8_report.arena_bytes == smallest
    assert smallest >= recorded and smallest % 16 == 0
    # it really is enough, and 16 bytes less is not
    assert TFLMRunner(int8_io_tflite, arena_size=smallest).arena_bytes() == recorded
    with pytest.raises(InvalidModelError):
        runner = TFLMRunner(int8_io_tflite, arena_size=smallest - 16)
        runner.invoke_raw([np.zeros((1, 8, 8, 1), np.int8)])
    assert int8_report.arena_with_margin == arena_with_margin(smallest)
    assert int8_report.arena_with_margin > smallest
    assert int8_report.arena_error is None
    assert int8_report.tflm_unsupported_ops == []
    assert int8_report.isolated is True  # both runtimes prepare the model in child processes


def test_fits_only_when_both_runtimes_prepared_the_model(monkeypatch, int8_io_tflite):
    """TFLM does not verify what LiteRT does: a model LiteRT cannot allocate gets no arena
    and no "fits", but the reason."""
    from effkeras.runtime import litert

    def refuse(model, kernels):
        raise InvalidModelError("LiteRT could not load <bytes>: tensor 3 has a bad shape")

    monkeypatch.setattr(litert, "_probe", refuse)
    report = profile(int8_io_tflite, "nano33ble")
    assert report.arena_bytes is None and report.fits("nano33ble") is False
    assert "TFLite Micro prepared the model, but LiteRT could not load" in report.arena_error
    assert "tensor 3 has a bad shape" in report.table()


def test_isolated_arena_equals_in_process(int8_report, int8_io_tflite, tmp_path, monkeypatch):
    # the child runs `python -m effkeras.runtime.tflm`: make the package importable there
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    from_bytes = profile(int8_io_tflite, "nano33ble", isolate=True)
    assert from_bytes.isolated is True
    assert from_bytes.arena_error is None
    assert from_bytes.arena_bytes == int8_report.arena_bytes
    assert from_bytes.arena_recorded_bytes == int8_report.arena_recorded_bytes
    file = tmp_path / "model.tflite"
    file.write_bytes(int8_io_tflite)
    from_file = profile(file, "nano33ble", isolate=True)
    assert from_file.arena_bytes == int8_report.arena_bytes
    assert from_file.source == str(file)
    assert from_file.sha256 == int8_report.sha256


# ---- params ------------------------------------------------------------------------------
def test_params_fixture_counts_folded_batch_norm(float_tflite, digits_model):
    import keras

    report = profile(float_tflite, "nano33ble")
    # By hand from the Keras model: BN (gamma, beta, mean, var) folds into one bias per
    # output channel of the conv before it; conv1/conv2 have use_bias=False.
    expected = 0
    bn_channels = 0
    for layer in digits_model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            expected += int(np.prod(layer.kernel.shape)) + layer.filters  # folded bias
        elif isinstance(layer, keras.layers.Dense):
            expected += layer.count_params()
        elif isinstance(layer, keras.layers.BatchNormalization):
            bn_channels += int(layer.gamma.shape[0])
    assert bn_channels == 8 + 16
    assert report.params == expected
    assert report.params == digits_model.count_params() - 3 * bn_channels
    assert report.params == sum(r["params"] for r in report.layers)

    rows = {r["op"]: r for r in report.layers if r["op"] != "CONV_2D"}
    convs = [r for r in report.layers if r["op"] == "CONV_2D"]
    assert [r["params"] for r in convs] == [3 * 3 * 1 * 8 + 8, 3 * 3 * 8 * 16 + 16]
    assert rows["FULLY_CONNECTED"]["params"] == 256 * 10 + 10
    assert rows["RESHAPE"]["params"] == 0  # its int32 shape argument is not a parameter
    # every constant tensor, the RESHAPE's shape argument included
    assert report.constant_elements == read_tflite(float_tflite).params
    assert report.constant_elements > report.params


def test_params_without_batch_norm_equal_count_params():
    import keras

    layers = keras.layers
    x = inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(4, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(3)(x)
    model = keras.Model(inputs, outputs)
    _random_weights(model, seed=1)
    report = profile(model, "nano33ble")
    hand = (3 * 3 * 2 * 4 + 4) + (4 * 4 * 4 * 3 + 3)
    assert model.count_params() == hand
    assert report.params == hand
    # MACs: conv 4x4x4 outputs x 3x3x2 taps; dense 64 x 3
    assert report.macs == 4 * 4 * 4 * 3 * 3 * 2 + 64 * 3


def test_params_separable_model(separable_tflite, separable_model):
    report = profile(separable_tflite, "nano33ble")
    # The converter splits SeparableConv2D into DEPTHWISE_CONV_2D + 1x1 CONV_2D and gives
    # the depthwise half a zero bias of its 6 channels, which Keras does not count.
    assert report.params == separable_model.count_params() + 6
    by_op = [(r["op"], r["params"]) for r in report.layers if r["params"]]
    assert by_op == [
        ("DEPTHWISE_CONV_2D", 3 * 3 * 6 + 6),  # dw: kernel + bias
        ("DEPTHWISE_CONV_2D", 3 * 3 * 6 + 6),  # sep, depthwise half + inserted bias
        ("CONV_2D", 6 * 8 + 8),  # sep, pointwise half + the layer's bias
        ("TRANSPOSE_CONV", 3 * 3 * 8 * 4 + 4),
        ("FULLY_CONNECTED", 4 * 5 + 5),
    ]


# ---- MACs --------------------------------------------------------------------------------
def test_macs_fixture_by_hand(int8_report, digits_model):
    import keras

    # from the Keras graph, independent of the flatbuffer
    expected = 0
    for layer in digits_model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            k_h, k_w = layer.kernel_size
            expected += out_h * out_w * out_c * k_h * k_w * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            expected += layer.input.shape[-1] * layer.units
    # 8x8x8 conv over 3x3x1, 4x4x16 conv over 3x3x8, 256 -> 10 dense
    assert expected == 8 * 8 * 8 * 9 + 4 * 4 * 16 * 9 * 8 + 256 * 10 == 25_600
    assert int8_report.macs == expected
    macs = {(r["op"], tuple(r["output_shape"])): r["macs"] for r in int8_report.layers}
    assert macs[("CONV_2D", (1, 8, 8, 8))] == 4_608
    assert macs[("CONV_2D", (1, 4, 4, 16))] == 18_432
    assert macs[("FULLY_CONNECTED", (1, 10))] == 2_560
    for r in int8_report.layers:
        if r["op"] in ("MAX_POOL_2D", "RESHAPE", "SOFTMAX"):
            assert r["macs"] == 0
    # pool: 4x4x8 outputs x 2x2 window; softmax: 10 outputs
    pool = next(r for r in int8_report.layers if r["op"] == "MAX_POOL_2D")
    assert pool["elementwise_ops"] == 4 * 4 * 8 * 4
    assert int8_report.elementwise_ops == 4 * 4 * 8 * 4 + 10


def test_macs_depthwise_separable_and_transpose_conv(separable_tflite):
    report = profile(separable_tflite, "nano33ble")
    rows = [(r["op"], r["macs"]) for r in report.layers]
    assert rows == [
        ("DEPTHWISE_CONV_2D", 16 * 16 * 6 * 3 * 3),  # depth_multiplier 2: 6 channels
        ("DEPTHWISE_CONV_2D", 7 * 7 * 6 * 3 * 3),  # stride 2, valid: 7x7
        ("CONV_2D", 7 * 7 * 8 * 6),  # pointwise 1x1
        ("TRANSPOSE_CONV", 7 * 7 * 8 * 3 * 3 * 4),  # each input pixel x 3x3x4 filter
        ("MEAN", 0),
        ("FULLY_CONNECTED", 4 * 5),
    ]
    assert report.macs == 13_824 + 2_646 + 2_352 + 14_112 + 20


def test_macs_separable_int8_same_as_float(separable_model, separable_tflite):
    rng = np.random.default_rng(0)
    data = rng.random((16, 16, 16, 3), dtype=np.float32)
    report = profile(separable_model, "nano33ble", quantize="int8", representative_data=data)
    assert report.macs == profile(separable_tflite, "nano33ble").macs
    assert report.is_full_integer
    assert report.conversion == {
        "from": "keras",
        "quantize": "int8",
        "representative_samples": 16,
    }


def test_batch_matmul_macs():
    import keras

    inputs = keras.Input((4, 6))
    x = keras.ops.matmul(inputs, keras.ops.transpose(inputs, (0, 2, 1)))  # (4,6)x(6,4)
    model = keras.Model(inputs, x)
    report = profile(model, "nano33ble")
    assert report.ops == {"BATCH_MATMUL": 1}
    assert report.macs == 4 * 4 * 6
    assert report.params == 0


# ---- layers, I/O, activations ------------------------------------------------------------
def test_layer_rows_and_io_specs(int8_report, int8_io_tflite):
    tm = read_tflite(int8_io_tflite)
    assert [r["op"] for r in int8_report.layers] == [op.name for op in tm.ops]
    assert [r["index"] for r in int8_report.layers] == list(range(len(tm.ops)))
    convs = [r for r in int8_report.layers if r["op"] == "CONV_2D"]
    assert [r["fused_activation"] for r in convs] == ["RELU", "RELU"]  # BN + ReLU fused
    fc = next(r for r in int8_report.layers if r["op"] == "FULLY_CONNECTED")
    assert fc["fused_activation"] is None
    assert fc["output_shape"] == [1, 10] and fc["output_dtype"] == "INT8"
    assert int8_report.ops == tm.op_counts
    assert int8_report.is_full_integer is True

    (inp,) = int8_report.inputs
    assert inp["shape"] == [1, 8, 8, 1] and inp["dtype"] == "INT8"
    q = tm.inputs[0].quantization
    assert inp["scale"] == pytest.approx(float(q.scales[0]))
    assert inp["zero_point"] == int(q.zero_points[0])
    (out,) = int8_report.outputs
    # softmax output is fixed at scale 1/256, zero point -128
    assert out["scale"] == pytest.approx(1 / 256) and out["zero_point"] == -128


def test_float_model_is_not_full_integer(float_tflite):
    report = profile(float_tflite, "nano33ble")
    assert report.is_full_integer is False
    assert report.inputs[0]["dtype"] == "FLOAT32"
    assert report.inputs[0]["scale"] is None and report.inputs[0]["zero_point"] is None


# ---- board fit ---------------------------------------------------------------------------
def test_fits_nano33ble_with_exact_margins(int8_report):
    board = BOARDS["nano33ble"]
    (entry,) = int8_report.boards
    assert entry["name"] == "nano33ble" and entry["title"] == board.title
    flash_needed = int8_report.size_bytes + board.program_flash_kb * 1024
    assert entry["flash"]["needed_bytes"] == flash_needed
    assert entry["flash"]["available_bytes"] == 1024 * 1024
    assert entry["flash"]["margin_bytes"] == 1024 * 1024 - flash_needed > 0
    assert entry["ram"]["needed_bytes"] == int8_report.arena_with_margin
    assert entry["ram"]["margin_bytes"] == 256 * 1024 - int8_report.arena_with_margin > 0
    assert entry["fits"] is True
    assert int8_report.fits() is True
    assert int8_report.fits("nano33ble") is True
    text = int8_report.table()
    assert f"fits on {board.title}: flash" in text
    assert f"(margin {entry['flash']['margin_bytes']:,} bytes)" in text


def test_tiny_custom_board_does_not_fit(float_tflite):
    tiny = custom_board(flash_kb=16, ram_kb=2, clock_mhz=48, program_flash_kb=8, name="tiny")
    report = profile(float_tflite, tiny)
    (entry,) = report.boards
    flash_margin = 16 * 1024 - (report.size_bytes + 8 * 1024)
    ram_margin = 2 * 1024 - report.arena_with_margin
    assert flash_margin < 0 and ram_margin < 0
    assert entry["flash"]["margin_bytes"] == flash_margin
    assert entry["ram"]["margin_bytes"] == ram_margin
    assert entry["flash"]["fits"] is False and entry["ram"]["fits"] is False
    assert entry["fits"] is False
    assert report.fits() is False and report.fits(tiny) is False
    line = report.fit_line()
    assert line.startswith(f"does NOT fit on {tiny.title}")
    assert f"over by {-flash_margin:,} bytes" in line
    assert f"over by {-ram_margin:,} bytes" in line
    assert line in report.table()


def test_ram_fits_but_flash_does_not(int8_report):
    board = custom_board(flash_kb=8, ram_kb=512, program_flash_kb=4, name="smallflash")
    entry = int8_report.board(board)
    assert entry["ram"]["fits"] is True
    assert entry["flash"]["fits"] is False
    assert entry["flash"]["margin_bytes"] == 8 * 1024 - (int8_report.size_bytes + 4 * 1024)
    assert entry["fits"] is False
    assert int8_report.fits(board) is False
    # a board the report was not made for is checked on demand
    assert int8_report.fits("pico") is True


def test_all_boards_when_board_is_none(int8_io_tflite):
    report = profile(int8_io_tflite)
    assert [b["name"] for b in report.boards] == list(BOARDS)
    assert all(b["fits"] is True for b in report.boards)
    with pytest.raises(ValueError, match="name one"):
        report.fits()
    assert report.fits("portenta_h7") is True


def test_unknown_board_lists_valid_boards(int8_io_tflite):
    with pytest.raises(UnknownBoardError) as info:
        profile(int8_io_tflite, "uno")
    assert "'uno'" in str(info.value)
    for name in BOARDS:
        assert name in str(info.value)


# ---- formats -----------------------------------------------------------------------------
def test_to_dict_is_json_serializable(int8_report):
    data = int8_report.to_dict()
    assert set(data) == REPORT_KEYS
    assert json.loads(json.dumps(data)) == data
    assert json.loads(int8_report.to_json()) == data
    assert set(data["boards"][0]) == {"name", "title", "flash", "ram", "fits"}
    assert set(data["boards"][0]["ram"]) == {
        "needed_bytes",
        "available_bytes",
        "fits",
        "margin_bytes",
        "used_percent",
    }
    assert set(data["layers"][0]) == {
        "weight_elements",
        "weight_zeros",
        "weight_sparsity",
        "weight_encoding",
        "weight_stored_bytes",
        "index",
        "op",
        "output_shape",
        "output_dtype",
        "params",
        "macs",
        "elementwise_ops",
        "fused_activation",
    }
    assert data["sha256"] == int8_report.sha256 and len(data["sha256"]) == 64


def test_table_lists_layers_and_totals(int8_report):
    text = int8_report.table()
    assert str(int8_report) == text
    for r in int8_report.layers:
        assert r["op"] in text
    assert f"{int8_report.params:,} params, {int8_report.macs:,} MACs" in text
    assert f"TFLM arena: {int8_report.arena_bytes:,} bytes" in text
    assert "RELU" in text


# ---- inputs ------------------------------------------------------------------------------
def test_keras_model_int8_with_representative_data(digits_model, digits, int8_tflite):
    report = profile(
        digits_model, "nano33ble", quantize="int8", representative_data=digits[0][:200]
    )
    # the same conversion as the fixture: deterministic, identical bytes
    assert report.sha256 == hashlib.sha256(int8_tflite).hexdigest()
    assert report.conversion == {"from": "keras", "quantize": "int8", "representative_samples": 200}
    assert report.source == f"<keras:{digits_model.name}>"
    assert report.is_full_integer
    assert report.arena_recorded_bytes == TFLMRunner(int8_tflite).arena_bytes()
    assert report.arena_bytes == measure_arena(int8_tflite)
    assert "Converted from Keras: quantize='int8'" in report.table()


def test_keras_file_and_tflite_model_inputs(digits_model, float_tflite, tmp_path):
    path = tmp_path / "digits.keras"
    digits_model.save(path)
    from_file = profile(path, "nano33ble")
    assert from_file.conversion == {
        "from": "keras",
        "quantize": None,
        "representative_samples": None,
    }
    assert from_file.source == str(path)
    reference = profile(read_tflite(float_tflite), "nano33ble")
    assert reference.conversion is None
    assert from_file.params == reference.params
    assert from_file.macs == reference.macs
    assert from_file.ops == reference.ops


def test_not_a_model_raises_invalid_model_error(tmp_path):
    with pytest.raises(InvalidModelError, match="not a TFLite model"):
        profile(b"definitely not a flatbuffer", "nano33ble")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidModelError, match="bad.tflite"):
        profile(bad, "nano33ble")
    with pytest.raises(InvalidModelError, match="No such file"):
        profile(tmp_path / "missing.tflite")


def test_quantize_with_tflite_input_is_an_error(int8_io_tflite):
    with pytest.raises(ConversionError, match="Keras models only"):
        profile(int8_io_tflite, "nano33ble", quantize="int8")


def test_exported_at_top_level():
    assert effkeras.profile is profile
    assert effkeras.ProfileReport is ProfileReport


# ---- unsupported ops ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def atan2_tflite() -> bytes:
    import keras

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.ops.arctan2(inputs, inputs + 1.0))
    return to_tflite(model)


def test_unsupported_op_is_reported(atan2_tflite):
    report = profile(atan2_tflite, "nano33ble")
    assert "ATAN2" in report.ops
    assert report.tflm_unsupported_ops == ["ATAN2"]
    assert report.arena_bytes is None and report.arena_with_margin is None
    assert report.arena_recorded_bytes is None
    assert "ATAN2" in report.arena_error
    (entry,) = report.boards
    assert entry["ram"]["needed_bytes"] is None and entry["ram"]["fits"] is None
    assert entry["flash"]["fits"] is True
    assert entry["fits"] is None
    assert report.fits() is False  # never claimed to fit unchecked
    assert "TFLM arena: not measured" in report.table()
    assert "may not fit on" in report.table()
    json.dumps(report.to_dict())


def test_unsupported_op_found_by_tflm_itself(atan2_tflite, monkeypatch):
    # if the static op table missed an op, TFLM's own "Didn't find op" is recorded
    import effkeras.profiling as profiling

    monkeypatch.setattr(profiling, "_unsupported_ops", lambda model: [])
    report = profile(atan2_tflite, "nano33ble")
    assert report.tflm_unsupported_ops == ["ATAN2"]
    assert report.arena_bytes is None
    assert "ATAN2" in report.arena_error


def test_unsupported_op_isolated(atan2_tflite, monkeypatch):
    import effkeras.profiling as profiling

    monkeypatch.setattr(profiling, "_unsupported_ops", lambda model: [])
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    report = profile(atan2_tflite, "nano33ble", isolate=True)
    assert report.tflm_unsupported_ops == ["ATAN2"]
    assert report.arena_bytes is None


@pytest.mark.parametrize("mode", ["float16", "dynamic"])
def test_float16_and_dynamic_weights_count_once(digits_model, float_tflite, mode):
    report = profile(digits_model, "nano33ble", quantize=mode)
    reference = profile(float_tflite, "nano33ble")
    assert report.params == reference.params
    assert report.macs == reference.macs
    conv_params = [r["params"] for r in report.layers if r["op"] == "CONV_2D"]
    assert conv_params == [r["params"] for r in reference.layers if r["op"] == "CONV_2D"]
    # float16 weights are expanded by DEQUANTIZE ops: counted at the conv, not there
    assert all(r["params"] == 0 for r in report.layers if r["op"] == "DEQUANTIZE")
    if mode == "float16":
        assert report.ops.get("DEQUANTIZE", 0) >= 3


# ---- compression and sparsity ------------------------------------------------------------
@pytest.fixture(scope="module")
def zeroed_model():
    """Kernels with known exact zeros: conv 50% (alternate), dense 75% in 1x4 input blocks."""
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu", name="conv"),
         layers.Flatten(), layers.Dense(16, name="fc"), layers.Dense(4, name="head")]
    )  # fmt: skip
    _random_weights(model, seed=3)
    rng = np.random.default_rng(4)
    conv = model.get_layer("conv").kernel
    conv.assign(np.asarray(conv.value) * (np.arange(72).reshape(3, 3, 1, 8) % 2))
    fc = model.get_layer("fc").kernel  # (288 inputs, 16 units): zero 3 of 4 input blocks
    keep = (rng.random((72, 16)) < 0.25).astype("float32")
    fc.assign(np.asarray(fc.value) * np.repeat(keep, 4, axis=0))
    x = rng.random((32, 8, 8, 1), dtype=np.float32)
    return model, x


@pytest.fixture(scope="module")
def zeroed_tflites(zeroed_model):
    model, x = zeroed_model
    return {
        "int8": to_tflite(model, quantize="int8", representative_data=x),
        "int8_sparse": to_tflite(model, quantize="int8", representative_data=x, sparse=True),
        "float_sparse": to_tflite(model, sparse=True),
    }


def test_profile_reports_gzip_size_and_kernel_sparsity(zeroed_model, zeroed_tflites):
    import gzip

    model, _ = zeroed_model
    data = zeroed_tflites["int8"]
    report = profile(data, "nano33ble")
    assert report.gzip_size_bytes == len(gzip.compress(data, compresslevel=9, mtime=0))
    assert report.gzip_size_bytes < report.size_bytes
    kernels = [r for r in report.layers if r["weight_sparsity"] is not None]
    assert [r["op"] for r in kernels] == ["CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    expected = [np.asarray(model.get_layer(n).kernel.value) for n in ("conv", "fc", "head")]
    for row, kernel in zip(kernels, expected, strict=True):
        assert row["weight_elements"] == kernel.size
        # int8 rounding may add zeros (weights below half a step), never remove them.
        assert row["weight_zeros"] >= int((kernel == 0).sum())
        assert row["weight_encoding"] == "dense"
    assert kernels[0]["weight_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert kernels[1]["weight_sparsity"] == pytest.approx(0.75, abs=0.05)
    assert report.weight_elements == sum(k.size for k in expected)
    assert report.weight_zeros == sum(r["weight_zeros"] for r in kernels)
    assert report.sparse_tensors == 0 and report.arena_bytes is not None
    quantize_row = report.layers[0]
    assert quantize_row["op"] == "QUANTIZE" and quantize_row["weight_sparsity"] is None
    d = json.loads(report.to_json())
    assert d["weight_sparsity"] == pytest.approx(report.weight_sparsity)
    assert d["gzip_size_bytes"] == report.gzip_size_bytes
    table = report.table()
    assert "gzip -9" in table and "kernel weight sparsity" in table and "50.0%" in table
    # One implementation: effkeras.prune.sparsity_report counts the same zeros.
    from effkeras.prune import sparsity_report

    pruned = sparsity_report(data)
    assert pruned.gzip_bytes == report.gzip_size_bytes
    assert pruned.zero_elements == report.weight_zeros


def test_sparse_format_is_decoded_and_flagged_for_tflm(zeroed_tflites):
    dense = profile(zeroed_tflites["int8"], "nano33ble")
    sparse = profile(zeroed_tflites["int8_sparse"], "nano33ble")
    assert sparse.sparse_tensors >= 1 and sparse.ops.get("DENSIFY", 0) == sparse.sparse_tensors
    # Decoding the sparse format gives exactly the zeros of the dense int8 model.
    assert sparse.weight_zeros == dense.weight_zeros
    assert sparse.weight_elements == dense.weight_elements
    # DENSIFY outputs are not counted as parameters twice, nor lost.
    assert sparse.params == dense.params
    enc = [r for r in sparse.layers if r["weight_encoding"] == "sparse"]
    assert all(r["weight_stored_bytes"] < r["weight_elements"] for r in enc if r["op"] != "CONV_2D")
    # TFLite Micro itself has no DENSIFY kernel: the profile says so and why.
    assert sparse.arena_bytes is None and sparse.tflm_unsupported_ops == ["DENSIFY"]
    assert "sparse=False" in sparse.arena_error and "sparse format" in sparse.arena_error
    assert "(sparse)" in sparse.table() and "cannot run" in sparse.table()
    assert sparse.fits("nano33ble") is False


def test_tflm_itself_refuses_sparse_models(zeroed_tflites):
    from effkeras.errors import UnsupportedOpsError

    with pytest.raises(UnsupportedOpsError, match="sparse=False"):
        TFLMRunner(zeroed_tflites["int8_sparse"], verify=False)


def test_block_sparse_float_kernel_decodes_exactly(zeroed_model, zeroed_tflites):
    from effkeras.convert.weights import dense_values, is_sparse_encoded, kernel_tensor

    model, _ = zeroed_model
    tm = read_tflite(zeroed_tflites["float_sparse"])
    fcs = [op for op in tm.ops if op.name == "FULLY_CONNECTED"]
    kernel = kernel_tensor(tm, fcs[0])
    assert is_sparse_encoded(tm, kernel)
    params = tm._model.subgraphs[0].tensors[kernel.index].sparsity
    assert params.blockMap is not None and len(params.blockMap) == 1  # 1x4 blocks
    expected = np.asarray(model.get_layer("fc").kernel.value).T  # TFLite stores (units, in)
    np.testing.assert_array_equal(dense_values(tm, kernel), expected)
    conv = kernel_tensor(tm, next(op for op in tm.ops if op.name == "CONV_2D"))
    expected_conv = np.transpose(np.asarray(model.get_layer("conv").kernel.value), (3, 0, 1, 2))
    np.testing.assert_array_equal(dense_values(tm, conv), expected_conv)


def test_arduino_sketch_refuses_sparse_format_with_advice(zeroed_tflites, tmp_path):
    from effkeras.deploy import arduino_sketch
    from effkeras.errors import UnsupportedOpsError

    with pytest.raises(UnsupportedOpsError, match="sparse=False") as info:
        arduino_sketch(zeroed_tflites["int8_sparse"], tmp_path / "sparse_sketch")
    assert info.value.ops == ["DENSIFY"]
