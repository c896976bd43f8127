"""Checks of the OBP-style arrays, cheap by default.

The default (``"sample"``) checks every 1-D array in full (O(n)), the probabilities gathered at
the logged (action, position) of each round (computed once and reused by the estimators), and a
seeded sample of `SAMPLE_ROWS` rounds of each ``(n_rounds, n_actions, len_list)`` array: finite,
non-negative and, for policies, summing to 1 over actions. ``"full"`` checks every round of the
3-D arrays, in chunks; ``"none"`` checks only shapes.

Every failure is a `ValidationFailed` (a ValueError) whose message names the argument, what was
expected and what was found.

>>> import numpy as np
>>> try:
...     check_probabilities("pscore", np.array([0.5, 0.0]), low_open=True)
... except ValueError as error:
...     print(str(error).split(" (hint")[0])
pscore: expected probabilities in (0, 1], found 1 outside (first at round 1: 0.0)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from revealed.errors import ValidationFailed

__all__ = [
    "SAMPLE_ROWS",
    "Validation",
    "check_distribution",
    "check_finite",
    "check_index",
    "check_probabilities",
    "check_shape",
]

Validation = Literal["sample", "full", "none"]
#: rounds of each 3-D array checked under ``validate="sample"``
SAMPLE_ROWS: Final = 1_000
#: rounds per chunk when a 3-D array is checked in full
CHUNK_ROWS: Final = 16_384
#: tolerance on a policy's probabilities summing to 1
SUM_TOLERANCE: Final = 1e-6


def _fail(message: str, hint: str = "") -> ValidationFailed:
    return ValidationFailed([message], hint=hint)


def check_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    """`array` has len(shape) dimensions and the given sizes where they are not None."""
    if array.ndim != len(shape) or any(
        want is not None and have != want for have, want in zip(array.shape, shape, strict=True)
    ):
        expected = " x ".join("*" if s is None else str(s) for s in shape)
        raise _fail(f"{name}: expected an array of shape ({expected}), found shape {array.shape}")


def check_finite(name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), array.shape)
        raise _fail(
            f"{name}: expected finite numbers, found {int(bad.sum())} NaN or infinite "
            f"(first at {tuple(int(i) for i in first)})"
        )


def check_index(name: str, array: np.ndarray, size: int, what: str) -> None:
    """Integer indices in [0, size)."""
    if not np.issubdtype(array.dtype, np.integer):
        raise _fail(
            f"{name}: expected integer {what} indices, found dtype {array.dtype}",
            hint=f"map {what}s to 0..{size - 1} and pass an integer array",
        )
    if len(array) and (int(array.min()) < 0 or int(array.max()) >= size):
        bad = (array < 0) | (array >= size)
        first = int(np.argmax(bad))
        raise _fail(
            f"{name}: expected {what} indices in [0, {size}), found {int(bad.sum())} outside "
            f"(first at round {first}: {int(array[first])})",
            hint=f"the last axis sizes of action_dist fix the number of {what}s",
        )


def check_probabilities(name: str, values: np.ndarray, *, low_open: bool = False) -> None:
    """Probabilities in [0, 1] (or (0, 1] with `low_open`), per round."""
    low_bad = values <= 0 if low_open else values < 0
    bad = low_bad | (values > 1) | ~np.isfinite(values)
    if bad.any():
        first = int(np.argmax(bad))
        interval = "(0, 1]" if low_open else "[0, 1]"
        hint = "the logging policy must give every logged action a probability > 0" if low_open else ""
        raise _fail(
            f"{name}: expected probabilities in {interval}, found {int(bad.sum())} outside "
            f"(first at round {first}: {float(values[first])})",
            hint=hint,
        )


def _rows(n: int, validate: Validation, seed: int = 0) -> Iterator[np.ndarray | slice]:
    if validate == "none" or n == 0:
        return
    if validate == "sample" and n > SAMPLE_ROWS:
        yield np.sort(np.random.default_rng(seed).choice(n, SAMPLE_ROWS, replace=False))
        return
    for start in range(0, n, CHUNK_ROWS):
        yield slice(start, min(n, start + CHUNK_ROWS))


def check_distribution(name: str, array: np.ndarray, validate: Validation, *, policy: bool = True) -> None:
    """Rows of a (n_rounds, n_actions, len_list) array: finite; for a policy also in [0, 1] and
    summing to 1 over actions at every position. Sampled or full per `validate`."""
    for rows in _rows(array.shape[0], validate):
        block = np.asarray(array[rows], dtype=np.float64)
        index = rows if isinstance(rows, np.ndarray) else np.arange(rows.start, rows.stop)
        check_finite(name, block)
        if not policy:
            continue
        bad = (block < 0) | (block > 1)
        if bad.any():
            i, a, k = np.unravel_index(int(np.argmax(bad)), block.shape)
            raise _fail(
                f"{name}: expected probabilities in [0, 1], found {float(block[i, a, k])} "
                f"at round {int(index[i])}, action {int(a)}, position {int(k)}"
            )
        sums = block.sum(axis=1)
        off = np.abs(sums - 1.0) > SUM_TOLERANCE
        if off.any():
            i, k = np.unravel_index(int(np.argmax(off)), sums.shape)
            raise _fail(
                f"{name}: expected the probabilities over actions to sum to 1 at every round and "
                f"position, found {float(sums[i, k])} at round {int(index[i])}, position {int(k)}",
                hint="normalise each [i, :, k] slice; a position the policy never fills still needs a "
                "distribution (OBP's convention)",
            )


def as_index(name: str, values: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise _fail(f"{name}: expected a 1-D array of indices, found shape {array.shape}")
    return array
