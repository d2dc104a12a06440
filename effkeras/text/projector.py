"""The text projector (raw text -> hashed n-gram projection): see :mod:`effkeras.deploy.featurizer`.

The projector is device code (the reference the C projector is bit-exact with, and what
a deployed model's file carries), so it lives in :mod:`effkeras.deploy.featurizer`, whose
docstring is the specification; this module re-exports it under its old names and adds
:func:`calibration_data`, which only training needs.
"""

from __future__ import annotations

import numpy as np

from effkeras.deploy.featurizer import (  # noqa: F401 - re-exported
    BOS,
    EOS,
    FNV_BASIS,
    FNV_PRIME,
    GOLDEN,
    MAX_NGRAM,
    MODES,
    NORMALIZATIONS,
    PROJECTOR_METADATA,
    SPEC_VERSION,
    Projector,
    fmix32,
    fnv1a32,
    hash_keys,
    normalize_text,
    split_chars,
    tokenize_bytes,
)


def calibration_data(projections: np.ndarray, max_samples: int = 300) -> np.ndarray:
    """Representative data that pins a model's int8 input to scale 1/127, zero point 0.

    The converter sets the input's range from the calibration data's min and max. The
    projections span [-1, 1]; one extra sample whose first value is -128/127 makes the
    range [-128/127, 1], whose int8 scale is exactly 2.0127.../255 = 1/127 with zero point
    0, so -1, 0 and +1 are stored as -127, 0 and 127: exact.
    """
    x = np.asarray(projections, np.float32)[:max_samples]
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"projections must be a non-empty batch (N, ...). Received: shape {x.shape}"
        )
    pin = np.ones_like(x[:1])
    pin.reshape(-1)[0] = -128.0 / 127.0
    return np.concatenate([x, pin], axis=0)
