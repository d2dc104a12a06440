"""The other inputs a user hands over: calibration files, label lists, board figures, ports.
Each bad one is one 'effkeras: error:' line and exit code 2, never a traceback."""

from __future__ import annotations

import os

import numpy as np
import pytest

from effkeras import cli
from effkeras.boards import custom_board
from effkeras.errors import EffkerasError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tflite_models", "digits_cnn_int8.tflite")


def _run(capsys, *argv):
    code = cli.main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 0.0, True, "10"])
def test_board_figures_must_be_finite_and_positive(value):
    with pytest.raises(EffkerasError, match="must be a finite positive number. Received: flash_kb="):
        custom_board(flash_kb=value, ram_kb=64)


@pytest.mark.parametrize("flash", ["1e309", "nan", "-5", "0"])
def test_custom_board_on_the_cli(capsys, flash):
    code, err = _run(capsys, "profile", MODEL, "--board", "custom", "--flash-kb", flash, "--ram-kb", "64")
    assert code == 2 and len(err) == 1 and err[0].startswith("effkeras: error:")


def test_a_binary_labels_file(capsys, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(bytes(range(256)) * 40)
    code, err = _run(capsys, "sketch", MODEL, "--out", str(tmp_path / "s"), "--labels-file", str(labels))
    assert code == 2 and "is not UTF-8 text" in err[0] and len(err) == 1


def _calib(tmp_path, name, writer):
    path = tmp_path / name
    writer(path)
    return str(path)


@pytest.mark.parametrize("name,writer,match", [
    ("scalar.npy", lambda p: np.save(p, np.float32(1)), "holds a single value"),
    ("keys.npz", lambda p: np.savez(p, y=np.zeros(3)), r"has arrays \['y'\]; expected 'x'"),
    ("bad.npz", lambda p: p.write_bytes(b"PK\x03\x04junk"), "is not a .npy or .npz file"),
    ("cut.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr'"), "is not a .npy or .npz file"),
    ("obj.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "not a .npy"),
    ("empty.npy", lambda p: p.write_bytes(b""), "is not a .npy or .npz file"),
])
def test_bad_calibration_files(tmp_path, name, writer, match):
    with pytest.raises(cli.CLIError, match=match):
        cli._load_calibration(_calib(tmp_path, name, writer))


def test_a_huge_calibration_file_is_memory_mapped_and_capped(tmp_path):
    path = tmp_path / "huge.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(400_000, 8, 8, 1))
    big[-1] = 1.0
    del big
    x = cli._load_calibration(str(path))  # 100 MB on disk; only the first samples are read
    assert x.shape == (cli.MAX_CALIBRATION_SAMPLES, 8, 8, 1) and not isinstance(x, np.memmap)


def test_a_serial_port_that_is_a_plain_file(capsys, tmp_path):
    fake = tmp_path / "ttyACM0"
    fake.write_text("not a port")
    code, err = _run(capsys, "bench", MODEL, "--target", f"serial:{fake}", "--runs", "2")
    assert code == 2 and len(err) == 1 and "Could not open serial port" in err[0]
