"""Dataset loading by path, with files the tests make themselves (no downloads)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from effkeras.data import CIFAR10_CLASSES, load_dataset, read_idx
from effkeras.errors import DatasetError


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_digits_split_is_fixed_and_stratified():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1437, 8, 8, 1) and a.x_test.shape == (360, 8, 8, 1)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.dtype == np.float32 and 0 <= a.x_train.min() and a.x_train.max() <= 1
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}
    assert load_dataset("digits", limit_train=10).x_train.shape[0] == 10


def test_idx_reader_and_mnist_layouts(tmp_path, rng):
    xs = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    ys = rng.integers(0, 10, 7).astype(np.uint8)
    mn = tmp_path / "mnist"
    mn.mkdir()
    (mn / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(xs)))
    (mn / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(ys)))
    np.testing.assert_array_equal(read_idx(str(mn / "t10k-images-idx3-ubyte.gz")), xs)
    with pytest.raises(DatasetError, match="No MNIST files"):
        load_dataset("mnist", tmp_path)  # no training part yet
    np.savez(mn / "mnist_train_first10k.npz", x=xs[:5], y=ys[:5])
    ds = load_dataset("mnist", tmp_path)  # the parent folder works: mnist/ is searched
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_test.shape == (7, 28, 28, 1)
    np.testing.assert_allclose(ds.x_test[..., 0], xs / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, ys)
    os.environ["EFFKERAS_DATA_DIR"] = str(mn)
    try:
        assert load_dataset("mnist").x_train.shape[0] == 5
    finally:
        del os.environ["EFFKERAS_DATA_DIR"]


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(DatasetError, match="not an IDX"):
        read_idx(str(bad))
    short = tmp_path / "short.idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + b"\x00" * 10)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(str(short))


def _jpeg(color) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_cifar10_from_jpeg_tarballs(tmp_path):
    folder = tmp_path / "cifar10_jpg"
    folder.mkdir()
    for split, per_class in (("train", 2), ("test", 1)):
        with tarfile.open(folder / f"cifar10_{split}_jpg.tar.gz", "w:gz") as tar:
            for c, cls in enumerate(CIFAR10_CLASSES):
                for k in range(per_class):
                    data = _jpeg((c * 25, 0, 255 - c * 25))
                    info = tarfile.TarInfo(f"CIFAR-10-images/{split}/{cls}/{k:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (10, 32, 32, 3)
    assert ds.class_names == list(CIFAR10_CLASSES)
    # round-robin order keeps classes balanced under a limit
    limited = load_dataset("cifar10", tmp_path, limit_train=10)
    assert sorted(limited.y_train.tolist()) == list(range(10))
    # colours survive decoding: class 9 is the most red
    red = ds.x_test[..., 0].mean(axis=(1, 2))
    assert int(ds.y_test[np.argmax(red)]) == 9


def test_cifar10_tarball_in_any_member_order(tmp_path):
    """Members stored out of order (the archive is read in its own order, for speed) come
    back in the sorted, class-interleaved order, the same as from sorted members."""
    order = [(c, k) for c in range(10) for k in range(3)]
    rng = np.random.default_rng(0)
    for name, members in (("sorted", order), ("shuffled", [order[i] for i in rng.permutation(30)])):
        folder = tmp_path / name
        folder.mkdir()
        for split in ("train", "test"):
            with tarfile.open(folder / f"cifar10_{split}_jpg.tar.gz", "w:gz") as tar:
                for c, k in members:
                    data = _jpeg((c * 25, k * 80, 10))
                    info = tarfile.TarInfo(f"CIFAR-10-images/{split}/{CIFAR10_CLASSES[c]}/{k:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    a = load_dataset("cifar10", tmp_path / "sorted", limit_train=25)
    b = load_dataset("cifar10", tmp_path / "shuffled", limit_train=25)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert a.y_train.tolist() == [*range(10), *range(10), *range(5)]
    green = b.x_train[..., 1].mean(axis=(1, 2))  # k = 0, 1, 2 in turn
    assert green[0] < green[10] < green[20]


def test_cifar10_from_pickles(tmp_path, rng):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (3, 3072)).astype(np.uint8),
                 b"labels": [1, 2, 3]}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="Unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    env = os.environ.pop("EFFKERAS_DATA_DIR", None)
    try:
        with pytest.raises(DatasetError, match="EFFKERAS_DATA_DIR"):
            load_dataset("mnist")
    finally:
        if env is not None:
            os.environ["EFFKERAS_DATA_DIR"] = env
    with pytest.raises(DatasetError, match="No CIFAR-10 files"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="limit_train"):
        load_dataset("digits", limit_train=0)


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")),
    reason="../shared/data is not present (optional real-data check)",
)
def test_real_mnist_when_present():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    ds = load_dataset("mnist", root)
    assert ds.x_train.shape == (10000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_test).min() > 800
