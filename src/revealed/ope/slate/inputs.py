"""Slate estimators' inputs: (n_slates, K) matrices, or OBP's flat rows with ``slate_id`` and
``position`` laid out into them with a mask of the logged rows, and the checks every estimator
runs on rewards and probabilities (field-named errors)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from revealed.ope.slate_arrays import FloatArray, IntArray

__all__ = ["Layout", "RTOL", "check_cascade", "check_joint", "check_pscore", "check_reward", "matrices"]

#: the relative tolerance of the probability checks
RTOL: float = 1e-9


@dataclass(frozen=True)
class Layout:
    """Where OBP's flat rows go in the (n_slates, K) matrices."""

    slate: IntArray
    slot: IntArray
    shape: tuple[int, int]

    @classmethod
    def of(cls, slate_id: npt.ArrayLike, position: npt.ArrayLike | None, rows: int) -> Layout:
        ids = np.asarray(slate_id)
        if ids.shape != (rows,):
            raise ValueError(f"slate_id: expected one id per row ({rows},), found shape {ids.shape}")
        if position is None:
            raise ValueError(
                "position: expected the slot of each row (0 = top) alongside slate_id, found None"
            )
        pos = np.asarray(position)
        if pos.shape != (rows,) or not np.issubdtype(pos.dtype, np.integer) or (rows and pos.min() < 0):
            raise ValueError(
                f"position: expected non-negative integer slots of shape ({rows},), "
                f"found {pos.dtype} of shape {pos.shape}"
            )
        _, slate = np.unique(ids, return_inverse=True)
        slate = slate.reshape(-1).astype(np.int64)
        k = int(pos.max()) + 1 if rows else 0
        shape = (int(slate.max()) + 1 if rows else 0, k)
        key = slate * max(k, 1) + pos
        if len(np.unique(key)) != rows:
            raise ValueError(
                "position: expected each slot at most once per slate, found a repeated (slate_id, position)"
            )
        return cls(slate, pos.astype(np.int64), shape)

    def matrix(self, name: str, value: npt.ArrayLike, fill: float) -> FloatArray:
        flat = np.asarray(value, dtype=np.float64)
        if flat.shape != self.slate.shape:
            raise ValueError(
                f"{name}: expected one value per row {self.slate.shape}, found shape {flat.shape}"
            )
        out = np.full(self.shape, fill)
        out[self.slate, self.slot] = flat
        return out

    def cube(self, name: str, value: npt.ArrayLike, n_actions: int | None) -> FloatArray:
        flat = np.asarray(value, dtype=np.float64)
        if flat.ndim == 1:
            if n_actions is None or flat.size != self.slate.size * n_actions:
                raise ValueError(
                    f"{name}: expected n_rows * n_unique_action = {self.slate.size} * {n_actions} values "
                    f"(set n_unique_action), found {flat.size}"
                )
            flat = flat.reshape(self.slate.size, n_actions)
        if flat.ndim != 2 or flat.shape[0] != self.slate.size:
            raise ValueError(f"{name}: expected ({self.slate.size}, n_actions), found shape {flat.shape}")
        out = np.full((*self.shape, flat.shape[1]), np.nan)
        out[self.slate, self.slot] = flat
        return out

    @property
    def complete(self) -> bool:
        return self.slate.size == self.shape[0] * self.shape[1]


def _check_matrix(name: str, value: FloatArray, shape: tuple[int, ...] | None) -> FloatArray:
    if value.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-d array (slates x slots), or flat rows with slate_id and position; "
            f"found shape {value.shape}"
        )
    if shape is not None and value.shape != shape:
        raise ValueError(f"{name}: expected the shape of reward {shape}, found {value.shape}")
    return value


def matrices(
    arrays: dict[str, npt.ArrayLike],
    slate_id: npt.ArrayLike | None,
    position: npt.ArrayLike | None,
) -> tuple[dict[str, FloatArray], FloatArray, Layout | None]:
    """The arrays as (n_slates, K) matrices and a mask of the rows that were logged."""
    if slate_id is None:
        out: dict[str, FloatArray] = {}
        shape: tuple[int, ...] | None = None
        for name, value in arrays.items():
            out[name] = _check_matrix(name, np.asarray(value, dtype=np.float64), shape)
            shape = out[name].shape
        assert shape is not None
        return out, np.ones(shape), None
    first = np.asarray(next(iter(arrays.values())))
    if first.ndim != 1:
        raise ValueError(f"reward: expected flat rows (n_rows,) with slate_id, found shape {first.shape}")
    layout = Layout.of(slate_id, position, len(first))
    mask = layout.matrix("slate_id", np.ones(len(first)), 0.0)
    return {name: layout.matrix(name, value, np.nan) for name, value in arrays.items()}, mask, layout


def check_reward(reward: FloatArray, mask: FloatArray) -> None:
    if not np.all(np.isfinite(reward[mask > 0])):
        raise ValueError("reward: expected finite slot rewards, found NaN or infinity")


def check_pscore(name: str, value: FloatArray, mask: FloatArray, *, behaviour: bool) -> None:
    v = value[mask > 0]
    ok = (v > 0) & (v <= 1) if behaviour else (v >= 0) & (v <= 1)
    if not np.all(ok):
        bad = v[~ok][0]
        if behaviour and np.isnan(bad):
            hint = "; the marginal was not logged: compute it (slate_arrays) or use another estimator"
        elif behaviour:
            hint = " (the logging policy chose every logged slate, so its probability is positive)"
        else:
            hint = ""
        raise ValueError(
            f"{name}: expected probabilities in {'(0, 1]' if behaviour else '[0, 1]'}, found {bad}{hint}"
        )


def check_joint(name: str, value: FloatArray, mask: FloatArray) -> None:
    """The joint is one number per slate, repeated in its slots (OBP: unique in each slate)."""
    filled = np.where(mask > 0, value, np.nan)
    if not np.allclose(np.nanmax(filled, axis=1), np.nanmin(filled, axis=1), rtol=RTOL, atol=0):
        raise ValueError(
            f"{name}: expected the probability of the whole slate, equal in every slot of a slate, found "
            "it varying; prefix probabilities go to SlateRewardInteractionIPS (pscore_cascade)"
        )


def check_cascade(name: str, value: FloatArray, mask: FloatArray) -> None:
    """A prefix probability cannot grow as the prefix gets longer."""
    if value.shape[1] > 1 and mask.all() and np.any(np.diff(value, axis=1) > RTOL * value[:, :-1]):
        raise ValueError(
            f"{name}: expected prefix probabilities of slots 0..k, non-increasing along the slots, "
            "found one that grows; pass the running product of cond_propensity"
        )
