"""The effkeras CLI: every bad input gets one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from effkeras.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a child process, as a user runs it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "effkeras", *args], capture_output=True, text=True, timeout=300,
        env=env,
    )


@pytest.fixture
def files(tmp_path, int8_io_tflite, rng):
    good = tmp_path / "good.tflite"
    good.write_bytes(int8_io_tflite)
    paths = {
        "good": good,
        "truncated": tmp_path / "truncated.tflite",
        "magic": tmp_path / "magic.tflite",
        "random": tmp_path / "random.tflite",
        "text": tmp_path / "notes.txt",
        "empty": tmp_path / "empty.tflite",
    }
    paths["truncated"].write_bytes(int8_io_tflite[: len(int8_io_tflite) // 3])
    paths["magic"].write_bytes(int8_io_tflite[:4] + b"ABCD" + int8_io_tflite[8:])
    paths["random"].write_bytes(rng.bytes(4096))
    paths["text"].write_text("not a model\n")
    paths["empty"].write_bytes(b"")
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize("kind", ["truncated", "magic", "random", "text", "empty", "missing"])
@pytest.mark.parametrize("command", ["inspect", "profile", "carray", "sketch"])
def test_bad_model_files_exit_2(files, tmp_path, capsys, kind, command):
    path = files.get(kind, str(tmp_path / "missing.tflite"))
    extra = ["--out", str(tmp_path / "out")] if command in ("carray", "sketch") else []
    assert main([command, path, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("effkeras: error: ")
    assert "Traceback" not in err
    assert any(w in err for w in ("No such", "not a TFLite", "truncated", "corrupt", "too short"))


def test_bad_files_in_a_child_process_never_crash(files):
    for kind in ("truncated", "random", "magic"):
        proc = run_cli("profile", files[kind], "--json")
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("effkeras: error:")


def test_inspect_and_profile_good_model(files, capsys):
    assert main(["inspect", files["good"], "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["op_counts"]["CONV_2D"] == 2 and d["inputs"][0]["dtype"] == "INT8"
    assert main(["profile", files["good"], "--board", "nano33ble", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["arena_bytes"] > 0 and p["size_bytes"] == os.path.getsize(files["good"])


def test_unknown_board_lists_valid_ones(files, capsys):
    assert main(["profile", files["good"], "--board", "uno"]) == 2
    err = capsys.readouterr().err
    assert "Unknown board 'uno'" in err and "nano33ble" in err and "portenta_h7" in err


def test_custom_board_needs_sizes(files, capsys):
    assert main(["profile", files["good"], "--board", "custom"]) == 2
    assert "--flash-kb" in capsys.readouterr().err
    assert main(["profile", files["good"], "--board", "custom", "--flash-kb", "-1",
                 "--ram-kb", "2"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_model_too_big_for_board_says_by_how_much(files, tmp_path, capsys):
    code = main(["sketch", files["good"], "--out", str(tmp_path / "s"), "--board", "custom",
                 "--flash-kb", "1", "--ram-kb", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bytes" in err and ("flash" in err.lower() or "ram" in err.lower())
    assert not (tmp_path / "s").exists()


def test_existing_output_refused_without_force(files, tmp_path, capsys):
    out = tmp_path / "sk"
    assert main(["sketch", files["good"], "--out", str(out)]) == 0
    capsys.readouterr()
    ino = next(out.glob("*.ino"))
    ino.write_text("// user edit\n")
    assert main(["sketch", files["good"], "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert ino.read_text() == "// user edit\n"
    assert main(["sketch", files["good"], "--out", str(out), "--force"]) == 0
    assert "user edit" not in ino.read_text()

    assert main(["carray", files["good"], "--out", str(tmp_path / "c"), "--name", "m"]) == 0
    capsys.readouterr()
    assert main(["carray", files["good"], "--out", str(tmp_path / "c"), "--name", "m"]) == 2
    assert "--force" in capsys.readouterr().err or "force" in capsys.readouterr().err


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, digits_model):
    path = tmp_path_factory.mktemp("k") / "cnn.keras"
    digits_model.save(path)
    return str(path)


def test_convert_int8_with_calibration(keras_file, tmp_path, digits, capsys):
    calib = tmp_path / "calib.npy"
    np.save(calib, digits[0][:64])
    out = tmp_path / "m.tflite"
    args = ["convert", keras_file, "-o", str(out), "--quantize", "int8", "--calibration",
            str(calib), "--io-dtype", "int8"]
    assert main(args) == 0
    assert out.read_bytes()[4:8] == b"TFL3"
    capsys.readouterr()
    assert main(args) == 2  # exists
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_convert_per_tensor(keras_file, tmp_path, digits, capsys):
    from effkeras.convert import read_tflite

    calib = tmp_path / "calib.npy"
    np.save(calib, digits[0][:64])
    sizes = {}
    for flag in ([], ["--per-tensor"]):
        out = tmp_path / f"m{len(flag)}.tflite"
        assert main(["convert", keras_file, "-o", str(out), "--quantize", "int8", "--calibration",
                     str(calib), *flag]) == 0
        m = read_tflite(out.read_bytes())
        conv = [op for op in m.ops if op.name == "CONV_2D"]
        scales = {m.tensors[op.inputs[1]].quantization.scales.size for op in conv}
        assert (scales == {1}) == bool(flag), scales
        sizes[bool(flag)] = out.stat().st_size
    assert sizes[True] < sizes[False]
    capsys.readouterr()
    assert main(["convert", keras_file, "-o", str(tmp_path / "f.tflite"), "--per-tensor"]) == 2
    err = capsys.readouterr().err
    assert "--per-tensor sets the int8 weight scales" in err and "Received: --quantize None" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "array,needle",
    [
        (np.zeros((5, 28, 28, 1), np.float32), "expected shape"),
        (np.zeros((0, 8, 8, 1), np.float32), "empty"),
        (np.full((3, 8, 8, 1), np.nan, np.float32), "NaN"),
        (np.array(["a", "b"]), "dtype"),
    ],
)
def test_convert_bad_calibration_exit_2(keras_file, tmp_path, capsys, array, needle):
    calib = tmp_path / "calib.npy"
    np.save(calib, array)
    code = main(["convert", keras_file, "-o", str(tmp_path / "o.tflite"), "--quantize", "int8",
                 "--calibration", str(calib)])
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o.tflite").exists()


def test_convert_rejects_non_keras_files(files, tmp_path, capsys):
    assert main(["convert", files["good"]]) == 2
    assert "not a Keras model file" in capsys.readouterr().err
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("garbage")
    assert main(["convert", str(bogus), "-o", str(tmp_path / "x.tflite")]) == 2
    assert "could not be loaded" in capsys.readouterr().err
    notnpy = tmp_path / "c.npy"
    notnpy.write_text("nope")
    assert main(["convert", str(bogus), "--quantize", "int8", "--calibration", str(notnpy)]) == 2


def test_int8_without_calibration_exit_2(keras_file, tmp_path, capsys):
    assert main(["convert", keras_file, "-o", str(tmp_path / "o.tflite"), "--quantize",
                 "int8"]) == 2
    assert "representative_data" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--epochs", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


def test_demo_bad_dataset_dir_exit_2(tmp_path, capsys):
    assert main(["demo", "--dataset", "mnist", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "No MNIST files" in capsys.readouterr().err
    assert main(["demo", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_boards_lists_table(capsys):
    assert main(["boards", "--json"]) == 0
    boards = json.loads(capsys.readouterr().out)
    assert boards["nano33ble"]["ram_kb"] == 256 and boards["nano33ble"]["flash_kb"] == 1024
    assert boards["pico"]["core"] == "Cortex-M0+" and boards["portenta_h7"]["clock_mhz"] == 480


def test_sketch_arena_size_too_small_exit_2(files, tmp_path, capsys):
    assert main(["sketch", files["good"], "--out", str(tmp_path / "s"), "--arena-size", "64"]) == 2
    err = capsys.readouterr().err
    assert "arena_size must be at least" in err and "Received: arena_size=64" in err
    assert main(["sketch", files["good"], "--out", str(tmp_path / "s2"), "--arena-size",
                 "65536"]) == 0
    assert "kTensorArenaSize = 65536" in (tmp_path / "s2" / "model_settings.h").read_text()


def test_convert_int4_and_compress(digits_model, digits, tmp_path, capsys):
    """--int4 stores a 4-bit-trained model's filters as INT4; --compress LUT-compresses a
    clustered model's; both refuse a mode that is not int8."""
    from effkeras.cluster import cluster_weights, strip_clustering
    from effkeras.convert import read_tflite
    from effkeras.quantize import quantize_model

    calib = tmp_path / "calib.npy"
    np.save(calib, digits[0][:64])
    qat = quantize_model(digits_model, weight_bits=4, calibration_data=digits[0][:64])
    qat.save(tmp_path / "w4.keras")
    out4 = tmp_path / "w4.tflite"
    assert main(["convert", str(tmp_path / "w4.keras"), "-o", str(out4), "--quantize", "int8",
                 "--calibration", str(calib), "--int4"]) == 0
    m4 = read_tflite(str(out4))
    filters = [m4.tensors[op.inputs[1]] for op in m4.ops
               if op.name in ("CONV_2D", "FULLY_CONNECTED")]
    assert filters and all(t.dtype == "INT4" for t in filters)

    clustered = strip_clustering(cluster_weights(digits_model, number_of_clusters=8))
    clustered.save(tmp_path / "c8.keras")
    plain, packed = tmp_path / "c8.tflite", tmp_path / "c8_lut.tflite"
    base = ["convert", str(tmp_path / "c8.keras"), "--quantize", "int8", "--calibration",
            str(calib)]
    assert main([*base, "-o", str(plain)]) == 0
    assert main([*base, "-o", str(packed), "--compress"]) == 0
    assert "needs a TFLM with the DECODE kernel" in capsys.readouterr().out
    lut = read_tflite(str(packed))
    assert any(op.is_custom and op.name == "TFLM_DECODE" for op in lut.ops)
    assert packed.stat().st_size < plain.stat().st_size
    assert main(["convert", str(tmp_path / "c8.keras"), "-o", str(tmp_path / "x.tflite"),
                 "--compress"]) == 2
    assert "give --quantize int8" in capsys.readouterr().err
