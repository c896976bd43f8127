"""Meta-learners of per-unit conditional effects (CATE): `TLearner` and `XLearner` (Kuenzel et al.
2019) with scikit-learn regressors, cross-fitted by `cross_fitted_cate` so each unit's prediction
comes from models that never saw it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from revealed.ope.uplift.inputs import FloatArray, check

__all__ = ["CateEstimate", "TLearner", "XLearner", "cross_fitted_cate"]


@dataclass(frozen=True)
class CateEstimate:
    """Out-of-fold conditional average treatment effects per unit, and their mean."""

    learner: str
    cate: FloatArray
    ate: float
    folds: int


def _default_model(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]

    return HistGradientBoostingRegressor(
        max_iter=150, learning_rate=0.05, min_samples_leaf=40, random_state=seed
    )


def _fit(model: Any, x: FloatArray, y: FloatArray) -> Any:
    from sklearn.base import clone  # type: ignore[import-untyped]

    return clone(model).fit(x, y)


def _t_fold(
    model: Any, x: FloatArray, t: npt.NDArray[np.int8], y: FloatArray, test: FloatArray
) -> FloatArray:
    mu1, mu0 = _fit(model, x[t == 1], y[t == 1]), _fit(model, x[t == 0], y[t == 0])
    return np.asarray(mu1.predict(test) - mu0.predict(test), dtype=float)


def _x_fold(
    model: Any, x: FloatArray, t: npt.NDArray[np.int8], y: FloatArray, test: FloatArray, g: FloatArray
) -> FloatArray:
    treated, control = t == 1, t == 0
    mu1, mu0 = _fit(model, x[treated], y[treated]), _fit(model, x[control], y[control])
    # imputed effects: each arm's outcomes against the other arm's model of the counterfactual
    tau1 = _fit(model, x[treated], y[treated] - mu0.predict(x[treated]))
    tau0 = _fit(model, x[control], mu1.predict(x[control]) - y[control])
    return np.asarray(g * tau0.predict(test) + (1 - g) * tau1.predict(test), dtype=float)


def cross_fitted_cate(
    covariates: npt.ArrayLike,
    *,
    treatment: npt.ArrayLike,
    outcome: npt.ArrayLike,
    learner: Literal["t_learner", "x_learner"] = "x_learner",
    treatment_probability: npt.ArrayLike | None = None,
    model: Any = None,
    folds: int = 5,
    seed: int = 0,
    threads: int | None = 1,
) -> CateEstimate:
    """Each unit's CATE from a T- or X-learner fitted on the other folds (stratified by arm).

    The X-learner weighs its two effect models by the probability of treatment g(x): the design's
    `treatment_probability` per unit when given (known from the assignment), else the treated
    share of the training folds. `model` is any scikit-learn regressor (cloned per fit; default a
    histogram gradient-boosting regressor). `threads` caps the native (OpenMP/BLAS) threads of
    each fit; None leaves the libraries' default. One thread is the default because the default
    oversubscribes shared machines badly: a 150-round boosting fit on 2,700 rows took 0.4 s with
    one thread and 21 s with the default on 2 busy cores.
    """
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    x = np.asarray(covariates, dtype=float)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treatment).astype(np.int8)
    if learner not in ("t_learner", "x_learner"):
        raise ValueError(f"learner: expected t_learner or x_learner, found {learner!r}")
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"covariates: expected an (n, d) array with n = {len(y)} units, found {x.shape}")
    check(y, t, None)
    if folds < 2:
        raise ValueError(f"folds: expected at least 2 for cross-fitting, found {folds}")
    if min(int(t.sum()), int(len(t) - t.sum())) < folds:
        raise ValueError(f"treatment: each arm needs at least folds={folds} units for cross-fitting")
    g_all = None if treatment_probability is None else np.asarray(treatment_probability, dtype=float)
    if g_all is not None and (len(g_all) != len(y) or not ((g_all >= 0) & (g_all <= 1)).all()):
        raise ValueError("treatment_probability: expected one probability in [0, 1] per unit")
    base = _default_model(seed) if model is None else model
    cate = np.empty(len(y))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, t)
    with threadpool_limits(limits=threads):
        for train, test in splits:
            if learner == "t_learner":
                cate[test] = _t_fold(base, x[train], t[train], y[train], x[test])
            else:
                g = g_all[test] if g_all is not None else np.full(len(test), t[train].mean())
                cate[test] = _x_fold(base, x[train], t[train], y[train], x[test], g)
    return CateEstimate(learner=learner, cate=cate, ate=float(cate.mean()), folds=folds)


@dataclass(frozen=True)
class _MetaLearner:
    """Hyperparameters of a cross-fitted meta-learner; `fit_predict` gives out-of-fold CATEs."""

    name: ClassVar[Literal["t_learner", "x_learner"]]
    #: a scikit-learn regressor, cloned for every fit (None: histogram gradient boosting)
    model: Any = None
    folds: int = 5
    seed: int = 0
    #: native threads per fit (None: the libraries' default); see `cross_fitted_cate`
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds: expected at least 2 for cross-fitting, found {self.folds}")

    def fit_predict(
        self,
        covariates: npt.ArrayLike,
        *,
        treatment: npt.ArrayLike,
        outcome: npt.ArrayLike,
        treatment_probability: npt.ArrayLike | None = None,
    ) -> CateEstimate:
        """Each unit's CATE from models fitted on the other folds (see `cross_fitted_cate`)."""
        return cross_fitted_cate(
            covariates,
            treatment=treatment,
            outcome=outcome,
            learner=self.name,
            treatment_probability=treatment_probability,
            model=self.model,
            folds=self.folds,
            seed=self.seed,
            threads=self.threads,
        )


@dataclass(frozen=True)
class TLearner(_MetaLearner):
    """Two outcome models, one per arm; the CATE is their difference (cross-fitted).

    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(600, 1))
    >>> t = rng.random(600) < 0.5
    >>> y = x[:, 0] + t * (1 + x[:, 0]) + rng.normal(0, 0.1, 600)
    >>> est = TLearner(model=LinearRegression()).fit_predict(x, treatment=t, outcome=y)
    >>> round(est.ate, 1), bool(np.corrcoef(est.cate, 1 + x[:, 0])[0, 1] > 0.99)
    (1.0, True)
    """

    name: ClassVar[Literal["t_learner"]] = "t_learner"


@dataclass(frozen=True)
class XLearner(_MetaLearner):
    """Kuenzel et al. (2019): per-arm outcome models impute each unit's effect against the other
    arm; an effect model is fitted per arm on those, and the two are blended by the probability
    of treatment g(x): tau(x) = g(x) tau_0(x) + (1 - g(x)) tau_1(x).

    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(2)
    >>> x = rng.normal(size=(800, 2))
    >>> t = rng.random(800) < 0.3
    >>> y = x[:, 1] + t * (0.5 + x[:, 0]) + rng.normal(0, 0.1, 800)
    >>> est = XLearner(model=LinearRegression(), folds=3).fit_predict(
    ...     x, treatment=t, outcome=y, treatment_probability=np.full(800, 0.3))
    >>> round(est.ate, 1), bool(np.corrcoef(est.cate, 0.5 + x[:, 0])[0, 1] > 0.99)
    (0.5, True)
    """

    name: ClassVar[Literal["x_learner"]] = "x_learner"
