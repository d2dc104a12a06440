"""Datasets for the demo and the benchmarks, found by path, never downloaded.

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), the embedded default that
  needs no files. Split 80/20, stratified, with a fixed seed.
- ``mnist``: 28x28 digits from a folder holding any of: ``mnist.npz`` (Keras layout:
  x_train, y_train, x_test, y_test); ``mnist_train_first10k.npz`` (``x``, ``y``) plus the
  test set as IDX (``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``); or
  the four canonical IDX files.
- ``cifar10``: 32x32x3 images from a folder holding ``cifar10_train_jpg.tar.gz`` and
  ``cifar10_test_jpg.tar.gz`` (``CIFAR-10-images/{train,test}/<class>/*.jpg``), the same
  tree extracted, or the Python pickles (``cifar-10-batches-py``).

The folder is the ``data_dir`` argument, else the ``EFFKERAS_DATA_DIR`` environment
variable; dataset files may sit in it directly or in a subfolder named after the dataset
(``mnist/``, ``cifar10_jpg/``, ``cifar10/``), so ``../shared/data`` works as it is.

Images come back as float32 in [0, 1] with a channel axis (N, H, W, C); labels as int64.
"""

from __future__ import annotations

import collections
import gzip
import io
import os
import pickle
import struct
import tarfile
from dataclasses import dataclass, field

import numpy as np

from effkeras.errors import DatasetError

DATASETS = ("digits", "mnist", "cifar10")
DATA_DIR_ENV = "EFFKERAS_DATA_DIR"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@dataclass
class Dataset:
    """A train/test split of images in [0, 1] with integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_dataset(
    name: str = "digits",
    data_dir: str | os.PathLike | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """Load one of :data:`DATASETS`.

    Args:
        name: ``"digits"``, ``"mnist"`` or ``"cifar10"``.
        data_dir: folder with the files (see the module docstring); defaults to
            ``$EFFKERAS_DATA_DIR``. Not needed for ``digits``.
        limit_train, limit_test: keep only the first N samples of each split.

    Raises:
        DatasetError: unknown name, or the files are missing or malformed.
    """
    if name not in DATASETS:
        raise DatasetError(f"Unknown dataset {name!r}. Valid datasets: {', '.join(DATASETS)}.")
    for label, lim in (("limit_train", limit_train), ("limit_test", limit_test)):
        if lim is not None and lim < 1:
            raise DatasetError(f"{label} must be at least 1. Received: {label}={lim}")
    if name == "digits":
        ds = _load_digits()
    else:
        root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
        if not root:
            raise DatasetError(
                f"Dataset {name!r} is read from files: pass --data-dir DIR (API: data_dir=) or "
                f"set {DATA_DIR_ENV}. See effkeras.data for the accepted layouts."
            )
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise DatasetError(f"Data folder {root!r} does not exist.")
        ds = _load_mnist(root) if name == "mnist" else _load_cifar10(root, limit_train, limit_test)
    if limit_train is not None:
        ds.x_train, ds.y_train = ds.x_train[:limit_train], ds.y_train[:limit_train]
    if limit_test is not None:
        ds.x_test, ds.y_test = ds.x_test[:limit_test], ds.y_test[:limit_test]
    return ds


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    return Dataset(
        "digits", x_train, y_train, x_test, y_test, [str(i) for i in range(10)], "sklearn"
    )


def _candidates(root: str, subdirs: tuple[str, ...]) -> list[str]:
    return [root] + [os.path.join(root, s) for s in subdirs if os.path.isdir(os.path.join(root, s))]


def _find(dirs: list[str], *names: str) -> str | None:
    for d in dirs:
        for n in names:
            for candidate in (n, n + ".gz"):
                p = os.path.join(d, candidate)
                if os.path.isfile(p):
                    return p
    return None


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims as big-endian uint32, data."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DatasetError(f"Cannot read IDX file {path!r}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path!r} is not an IDX file (bad magic {raw[:4]!r}).")
    dtype_code, ndim = raw[2], raw[3]
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise DatasetError(f"{path!r}: unknown IDX dtype code {dtype_code:#x}.")
    header = 4 + 4 * ndim
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    count = int(np.prod(dims))
    dt = np.dtype(dtypes[dtype_code])
    if len(raw) - header < count * dt.itemsize:
        raise DatasetError(f"{path!r} is truncated: dims {dims} need more bytes.")
    return np.frombuffer(raw, dtype=dt, count=count, offset=header).reshape(dims)


def _images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    return x.astype(np.float32) / 255.0


def _load_mnist(root: str) -> Dataset:
    dirs = _candidates(root, ("mnist",))
    names = [str(i) for i in range(10)]
    full = _find(dirs, "mnist.npz")
    if full:
        with np.load(full) as z:
            return Dataset(
                "mnist", _images(z["x_train"]), z["y_train"].astype(np.int64),
                _images(z["x_test"]), z["y_test"].astype(np.int64), names, full,
            )
    test_x = _find(dirs, "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte")
    test_y = _find(dirs, "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")
    train_x = _find(dirs, "train-images-idx3-ubyte", "train-images.idx3-ubyte")
    train_y = _find(dirs, "train-labels-idx1-ubyte", "train-labels.idx1-ubyte")
    first10k = _find(dirs, "mnist_train_first10k.npz")
    if test_x and test_y and (train_x and train_y or first10k):
        if train_x and train_y:
            xt, yt, src = read_idx(train_x), read_idx(train_y), train_x
        else:
            with np.load(first10k) as z:
                xt, yt, src = z["x"], z["y"], first10k
        return Dataset(
            "mnist", _images(xt), yt.astype(np.int64), _images(read_idx(test_x)),
            read_idx(test_y).astype(np.int64), names, os.path.dirname(src),
        )
    raise DatasetError(
        f"No MNIST files under {root!r} (looked in {dirs}): expected mnist.npz, or "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz with either "
        f"mnist_train_first10k.npz or train-images/labels IDX files."
    )


def _decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _read_cifar_tar(path: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Images from a tar.gz of <split>/<class>/NNNN.jpg, in sorted member order."""
    xs, ys = [], []
    try:
        with tarfile.open(path, "r:*") as tar:
            members = sorted(
                (m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")),
                key=lambda m: m.name,
            )
            per_class: dict[str, list] = {}
            for m in members:
                per_class.setdefault(m.name.split("/")[-2], []).append(m)
            order = _interleave(per_class, limit)
            for cls, _ in order:
                if cls not in CIFAR10_CLASSES:
                    raise DatasetError(f"{path!r}: unknown class folder {cls!r}.")
            # Read in archive order (a gzip stream only reads forward; sorted order made
            # it decompress from the start again and again: minutes instead of seconds),
            # then decode in the interleaved order.
            wanted = {id(m) for _, m in order}
            data = {id(m): tar.extractfile(m).read() for m in tar.getmembers() if id(m) in wanted}
            for cls, m in order:
                xs.append(_decode_jpeg(data[id(m)]))
                ys.append(CIFAR10_CLASSES.index(cls))
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"Cannot read {path!r}: {exc}") from None
    return np.stack(xs), np.asarray(ys, np.int64)


def _interleave(per_class: dict[str, list], limit: int | None) -> list:
    """Members taken round-robin over classes, so a limit keeps the classes balanced."""
    order = []
    queues = {k: collections.deque(v) for k, v in sorted(per_class.items())}
    while any(queues.values()) and (limit is None or len(order) < limit):
        for cls, q in queues.items():
            if q and (limit is None or len(order) < limit):
                order.append((cls, q.popleft()))
    return order


def _read_cifar_tree(split_dir: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    per_class = {
        cls: [os.path.join(split_dir, cls, f) for f in sorted(os.listdir(os.path.join(split_dir, cls)))]
        for cls in CIFAR10_CLASSES
        if os.path.isdir(os.path.join(split_dir, cls))
    }
    if len(per_class) != 10:
        raise DatasetError(f"{split_dir!r} must hold the 10 CIFAR-10 class folders.")
    xs, ys = [], []
    for cls, p in _interleave(per_class, limit):
        with open(p, "rb") as f:
            xs.append(_decode_jpeg(f.read()))
        ys.append(CIFAR10_CLASSES.index(cls))
    return np.stack(xs), np.asarray(ys, np.int64)


def _read_cifar_pickles(d: str) -> tuple[np.ndarray, ...]:
    def batch(name):
        with open(os.path.join(d, name), "rb") as f:
            b = pickle.load(f, encoding="bytes")
        x = b[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(b[b"labels"], np.int64)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xt = np.concatenate([p[0] for p in parts])
    yt = np.concatenate([p[1] for p in parts])
    xs, ys = batch("test_batch")
    return xt, yt, xs, ys


def _load_cifar10(root: str, limit_train: int | None, limit_test: int | None) -> Dataset:
    dirs = _candidates(root, ("cifar10_jpg", "cifar10", "cifar-10-batches-py"))
    names = list(CIFAR10_CLASSES)
    train_tar = _find(dirs, "cifar10_train_jpg.tar")
    test_tar = _find(dirs, "cifar10_test_jpg.tar")
    if train_tar and test_tar:
        xt, yt = _read_cifar_tar(train_tar, limit_train)
        xs, ys = _read_cifar_tar(test_tar, limit_test)
        return Dataset("cifar10", _images(xt), yt, _images(xs), ys, names, os.path.dirname(train_tar))
    for d in dirs:
        tree = os.path.join(d, "CIFAR-10-images")
        base = tree if os.path.isdir(tree) else d
        if os.path.isdir(os.path.join(base, "train")) and os.path.isdir(os.path.join(base, "test")):
            xt, yt = _read_cifar_tree(os.path.join(base, "train"), limit_train)
            xs, ys = _read_cifar_tree(os.path.join(base, "test"), limit_test)
            return Dataset("cifar10", _images(xt), yt, _images(xs), ys, names, base)
        if os.path.isfile(os.path.join(d, "data_batch_1")):
            xt, yt, xs, ys = _read_cifar_pickles(d)
            return Dataset("cifar10", _images(xt), yt, _images(xs), ys, names, d)
    raise DatasetError(
        f"No CIFAR-10 files under {root!r} (looked in {dirs}): expected "
        f"cifar10_train_jpg.tar.gz and cifar10_test_jpg.tar.gz, an extracted "
        f"CIFAR-10-images/{{train,test}} tree, or cifar-10-batches-py pickles."
    )
