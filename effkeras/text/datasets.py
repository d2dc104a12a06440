"""The SMS Spam Collection, found by path, never downloaded, split with a fixed seed.

Almeida, Gómez Hidalgo and Yamakami (2011), CC BY 4.0: 5,574 SMS messages, 747 spam. The
file is ``SMSSpamCollection`` (or ``.gz``): one message a line, ``ham<TAB>text`` or
``spam<TAB>text``, UTF-8. :func:`load_sms_spam` looks for it at ``path`` (the file or its
folder), else in ``$EFFKERAS_DATA_DIR`` or its ``sms_spam/`` subfolder, so
``EFFKERAS_DATA_DIR=../shared/data`` works as it is.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field

import numpy as np

from effkeras.data import DATA_DIR_ENV
from effkeras.errors import DatasetError

SMS_FILES = ("SMSSpamCollection.gz", "SMSSpamCollection")
SMS_CLASSES = ("ham", "spam")


@dataclass
class TextDataset:
    """A train/test split of texts (numpy object arrays of str) with integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    source: str = ""


def _find(path: str | os.PathLike | None) -> str:
    candidates = []
    roots = [os.fspath(path)] if path is not None else []
    if path is None and os.environ.get(DATA_DIR_ENV):
        roots.append(os.environ[DATA_DIR_ENV])
    for root in roots:
        if os.path.isfile(root):
            return root
        for sub in ("", "sms_spam"):
            for name in SMS_FILES:
                candidates.append(os.path.join(root, sub, name))
    for c in candidates:
        if os.path.isfile(c):
            return c
    where = (
        f"path={path!r}"
        if path is not None
        else f"${DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV)!r}"
    )
    raise DatasetError(
        f"SMSSpamCollection[.gz] not found. Received: {where}. Pass the file or its folder, "
        f"or set {DATA_DIR_ENV} to a folder holding it (or an sms_spam/ subfolder)."
    )


def read_sms_spam(file: str) -> tuple[list[str], np.ndarray]:
    """All messages and labels (0 ham, 1 spam) of the file, in file order."""
    opener = gzip.open if file.endswith(".gz") else open
    texts, labels = [], []
    with opener(file, "rt", encoding="utf-8", errors="replace", newline="\n") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            label, sep, text = line.partition("\t")
            if not sep or label not in SMS_CLASSES:
                raise DatasetError(
                    f"{file} line {number} is not 'ham<TAB>text' or 'spam<TAB>text'. "
                    f"Received: {line[:60]!r}"
                )
            texts.append(text)
            labels.append(SMS_CLASSES.index(label))
    return texts, np.array(labels, np.int64)


def load_sms_spam(
    path: str | os.PathLike | None = None, test_fraction: float = 0.2, seed: int = 0
) -> TextDataset:
    """The SMS Spam Collection, split into train and test, stratified by class.

    Args:
        path: the file or a folder holding it (else ``$EFFKERAS_DATA_DIR``).
        test_fraction: share of each class held out for the test set.
        seed: the split's seed; the same seed gives the same split everywhere.

    Returns:
        A :class:`TextDataset` (texts as numpy object arrays, labels 0 ham / 1 spam).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    file = _find(path)
    texts, labels = read_sms_spam(file)
    rng = np.random.default_rng(seed)
    test_idx = []
    for cls in range(len(SMS_CLASSES)):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))].tolist())
    is_test = np.zeros(len(texts), bool)
    is_test[test_idx] = True
    x = np.array(texts, dtype=object)
    return TextDataset(
        name="sms_spam",
        x_train=x[~is_test],
        y_train=labels[~is_test],
        x_test=x[is_test],
        y_test=labels[is_test],
        class_names=list(SMS_CLASSES),
        source=file,
    )
