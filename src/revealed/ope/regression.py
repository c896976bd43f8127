"""Reward regression for DM and DR, cross-fitted: each round is predicted by a model that never saw it.

`fit_reward_model` splits the rounds into `n_folds` folds; for each fold it fits a clone of
`model` on the other folds, on features ``[context, action, position]`` (action and position as
categorical features when the model is scikit-learn's histogram gradient boosting), and predicts
q_hat(x_i, a, k) for every action a and position k of the held-out rounds: OBP's
``estimated_rewards_by_reg_model`` ``(n_rounds, n_actions, len_list)``. Cross-fitting keeps the
DR correction term centred, so its analytic interval stays honest with a flexible model.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((400, 2)); a = rng.integers(0, 3, 400)
>>> r = (rng.random(400) < 0.2 + 0.2 * (a == 1)).astype(float)
>>> fit_reward_model(x, a, r, n_actions=3, seed=0).shape
(400, 3, 1)
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from revealed.errors import MissingDependency
from revealed.ope.result import FloatArray
from revealed.ope.validate import as_index, check_finite, check_index, check_shape

__all__ = ["fit_reward_model"]

#: at most this many categories go to histogram gradient boosting as a categorical feature
MAX_CATEGORIES: Final = 255


def _default_model(n_actions: int, len_list: int, seed: int) -> Any:
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency of this module
        raise MissingDependency(
            "fit_reward_model needs scikit-learn", hint="pip install scikit-learn"
        ) from exc
    categorical = [i for i, size in enumerate((n_actions, len_list)) if size <= MAX_CATEGORIES]
    return HistGradientBoostingRegressor(
        max_iter=300,
        learning_rate=0.1,
        min_samples_leaf=50,
        early_stopping=True,
        categorical_features=categorical or None,
        random_state=seed,
    )


def _features(context: np.ndarray, action: np.ndarray, position: np.ndarray) -> FloatArray:
    return np.column_stack([action, position, context]).astype(np.float64)


def fit_reward_model(
    context: npt.ArrayLike,
    action: npt.ArrayLike,
    reward: npt.ArrayLike,
    *,
    n_actions: int,
    position: npt.ArrayLike | None = None,
    len_list: int = 1,
    model: Any = None,
    n_folds: int = 3,
    seed: int = 0,
    n_threads: int | None = 1,
) -> FloatArray:
    """Cross-fitted q_hat(x_i, a, k) for every round, action and position: (n_rounds, n_actions, len_list).

    `model` is any scikit-learn regressor (cloned per fold; a classifier with ``predict_proba``
    is used for its positive-class probability); by default histogram gradient boosting (up to 300
    rounds at rate 0.1, stopped early on a 10% validation split, leaves of at least 50 rounds) with
    action and position as categorical features (the first two columns).
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    x = np.asarray(context, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    act = as_index("action", action)
    check_shape("action", act, (n,))
    check_index("action", act, n_actions, "action")
    rew = np.asarray(reward, dtype=np.float64)
    check_shape("reward", rew, (n,))
    check_finite("reward", rew)
    check_finite("context", x)
    pos = np.zeros(n, dtype=np.int64) if position is None else as_index("position", position)
    check_shape("position", pos, (n,))
    check_index("position", pos, len_list, "position")
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds: expected an integer in [2, n_rounds={n}], found {n_folds}")
    base = model if model is not None else _default_model(n_actions, len_list, seed)
    fold = np.random.default_rng(seed).permutation(n) % n_folds
    features = _features(x, act, pos)
    out = np.empty((n, n_actions, len_list))
    with threadpool_limits(limits=n_threads):
        _cross_fit(base, features, rew, x, fold, n_folds, out)
    return out


def _cross_fit(
    base: Any,
    features: FloatArray,
    rew: FloatArray,
    x: FloatArray,
    fold: np.ndarray,
    n_folds: int,
    out: FloatArray,
) -> None:
    from sklearn.base import clone, is_classifier  # type: ignore[import-untyped]

    _, n_actions, len_list = out.shape
    grid_a = np.repeat(np.arange(n_actions), len_list)
    grid_k = np.tile(np.arange(len_list), n_actions)
    for f in range(n_folds):
        test = np.flatnonzero(fold == f)
        fitted = clone(base).fit(features[fold != f], rew[fold != f])
        # every (action, position) of each held-out round, rows ordered round-major
        grid = _features(
            np.repeat(x[test], n_actions * len_list, axis=0),
            np.tile(grid_a, len(test)),
            np.tile(grid_k, len(test)),
        )
        pred = fitted.predict_proba(grid)[:, 1] if is_classifier(fitted) else fitted.predict(grid)
        out[test] = np.asarray(pred, dtype=np.float64).reshape(len(test), n_actions, len_list)
