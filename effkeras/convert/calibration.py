"""Representative (calibration) data: accept what users have, check it, yield batches of one.

Accepted forms, for a model with one input:

- a numpy array of shape ``(N, *input_shape)``;
- a ``tf.data.Dataset`` whose elements are ``x`` or ``(x, y)`` (batched or not);
- any iterable of batches (``x`` or ``(x, y)``), e.g. a list of arrays or a generator.

For a model with several inputs each sample is a list/tuple with one array per input
(or a list of per-input arrays ``[x1, x2]`` of equal length N).

Every sample is checked against the model's input: rank, every known dimension, a
numeric dtype, and finite values. Errors name the expected and the received shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from effkeras.errors import CalibrationDataError

InputShape = tuple  # (None | int, ...) including the batch dimension


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "numpy") and callable(x.numpy):
        x = x.numpy()
    return np.asarray(x)


def _is_dataset(obj: Any) -> bool:
    return type(obj).__name__.endswith("Dataset") and hasattr(obj, "element_spec")


def _split_x(element: Any, n_inputs: int) -> list[np.ndarray]:
    """The model-input part of one dataset element (drop labels and sample weights)."""
    if isinstance(element, dict):
        raise CalibrationDataError(
            "Representative data elements are dicts; pass arrays in the order of "
            "model.inputs instead."
        )
    if isinstance(element, tuple | list):
        if n_inputs == 1:
            # (x, y) or (x, y, w): the first entry is the input.
            return [_to_numpy(element[0])]
        first = element[0]
        if isinstance(first, tuple | list) and len(first) == n_inputs:
            return [_to_numpy(a) for a in first]  # ((x1, x2), y)
        if len(element) >= n_inputs:
            return [_to_numpy(a) for a in element[:n_inputs]]
        raise CalibrationDataError(
            f"The model has {n_inputs} inputs but a representative sample has "
            f"{len(element)} arrays."
        )
    return [_to_numpy(element)]


def _iter_batches(data: Any, n_inputs: int) -> Iterable[list[np.ndarray]]:
    if isinstance(data, np.ndarray):
        if n_inputs != 1:
            raise CalibrationDataError(
                f"The model has {n_inputs} inputs; pass a list with one array per input "
                f"instead of one array of shape {data.shape}."
            )
        yield [data]
        return
    if (
        n_inputs > 1
        and isinstance(data, list | tuple)
        and len(data) == n_inputs
        and all(isinstance(a, np.ndarray) for a in data)
    ):
        yield [np.asarray(a) for a in data]
        return
    if _is_dataset(data):
        for element in data:
            yield _split_x(element, n_inputs)
        return
    if isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise CalibrationDataError(
            "representative_data must be a numpy array, a tf.data.Dataset or an iterable "
            f"of batches. Received: {type(data).__name__}"
        )
    for element in data:
        yield _split_x(element, n_inputs)


def _check_one(arr: np.ndarray, spec: InputShape, k: int, i: int, dtype: str) -> np.ndarray:
    want = tuple(spec)
    if arr.dtype.kind not in "fiub":
        raise CalibrationDataError(
            f"Representative data for input {i} has dtype {arr.dtype}; expected numbers "
            f"({dtype}). Received sample {k} of dtype {arr.dtype}."
        )
    # Accept a single sample without its batch dimension.
    if arr.ndim == len(want) - 1:
        arr = arr[None, ...]
    if arr.ndim != len(want) or any(
        w is not None and int(w) != int(g) for w, g in zip(want[1:], arr.shape[1:], strict=False)
    ):
        pretty = "(" + ", ".join("None" if w is None else str(int(w)) for w in want) + ")"
        rest = ", ".join("?" if w is None else str(int(w)) for w in want[1:])
        raise CalibrationDataError(
            f"Representative data does not match the model input {i}: expected shape "
            f"{pretty} (batch first), received {tuple(arr.shape)} in batch {k}. "
            f"Reshape the data to (N, {rest})."
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise CalibrationDataError(
            f"Representative data for input {i} holds {bad} NaN or infinite values in "
            f"batch {k}; calibration needs finite values. Clean or drop those samples."
        )
    return arr.astype(dtype if dtype else np.float32, copy=False)


def calibration_samples(
    data: Any,
    input_shapes: Sequence[InputShape],
    input_dtypes: Sequence[str] | None = None,
    max_samples: int = 500,
) -> list[list[np.ndarray]]:
    """Check representative data and split it into samples of batch size one.

    Args:
        data: the representative data in any accepted form (see the module docstring).
        input_shapes: the model's input shapes, batch dimension first (may be None).
        input_dtypes: the model's input dtypes (default float32).
        max_samples: at most this many samples are used, in order.

    Returns:
        A list of samples; each is a list with one ``(1, *shape)`` array per input.

    Raises:
        CalibrationDataError: wrong type, shape, dtype, empty, or non-finite data.
    """
    if max_samples < 1:
        raise CalibrationDataError(f"max_samples must be at least 1. Received: {max_samples}")
    n_inputs = len(input_shapes)
    dtypes = list(input_dtypes) if input_dtypes else ["float32"] * n_inputs
    samples: list[list[np.ndarray]] = []
    for k, batch in enumerate(_iter_batches(data, n_inputs)):
        if len(batch) != n_inputs:
            raise CalibrationDataError(
                f"The model has {n_inputs} inputs but batch {k} holds {len(batch)} arrays."
            )
        arrays = [
            _check_one(a, input_shapes[i], k, i, dtypes[i]) for i, a in enumerate(batch)
        ]
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            raise CalibrationDataError(
                f"Batch {k} has inputs of different lengths: {[a.shape[0] for a in arrays]}."
            )
        for j in range(n):
            samples.append([a[j : j + 1] for a in arrays])
            if len(samples) >= max_samples:
                return samples
    if not samples:
        raise CalibrationDataError(
            "Representative data is empty: int8 calibration needs at least one sample "
            "(100 to 500 typical samples from the training set are best)."
        )
    return samples
