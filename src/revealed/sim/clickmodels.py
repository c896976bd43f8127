"""Five models of how a user scans a ranked list and clicks: sampled, and solved exactly.

Each session ``i`` shows items in display order; ``attractiveness[i, k]`` (alpha) is the probability
that the item at position ``k`` attracts a click once examined. In every model a position is clicked
iff it is examined and its item attracts (``C = E * A``, ``A ~ Bernoulli(alpha)``); the models differ
in how the latent examination ``E`` is drawn:

- `PositionBasedModel` (``"pbm"``): ``E_k ~ Bernoulli(theta_k)``, independent of everything else.
- `CascadeModel` (``"cascade"``): every position down to the first click, then stop.
- `DependentClickModel` (``"dcm"``): as cascade, but after a click at ``k`` continue with ``lambda_k``.
- `UserBrowsingModel` (``"ubm"``): ``E_k ~ Bernoulli(gamma[k][r'])``, ``r'`` one more than the rank of
  the previous click, 0 when there was none.
- `DynamicBayesianNetwork` (``"dbn"``): a click at ``k`` satisfies with ``satisfaction[i, k]`` (sigma)
  and satisfied users stop; unsatisfied users continue with ``gamma``.

`ClickModel.sample` draws clicks and the examination behind them, with randomness only from the
`numpy.random.Generator` it is given (the attraction draw comes first, so one seed gives every model
the same ``A``). `ClickModel.click_probability` and `ClickModel.examination` are the exact marginals
per session: a closed form (PBM), a forward recursion (cascade, DCM, DBN), or a dynamic programme
over the rank of the last click (UBM). Everything is vectorised over sessions; only positions loop.

Conventions follow Chuklin, Markov & de Rijke, *Click Models for Web Search* (2015), with 0-based
ranks. `click_model` builds a model by name with defaults for ``k`` positions:

>>> import numpy as np
>>> model = click_model("cascade")
>>> alpha = np.full((200_000, 3), 0.5)
>>> model.click_probability(alpha)[0].tolist()
[0.5, 0.25, 0.125]
>>> model.sample(alpha, np.random.default_rng(0)).clicked.mean(axis=0).round(2).tolist()
[0.5, 0.25, 0.12]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLICK_MODELS",
    "CascadeModel",
    "ClickModel",
    "Clicks",
    "DependentClickModel",
    "DynamicBayesianNetwork",
    "PositionBasedModel",
    "UserBrowsingModel",
    "click_model",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_ROWS: Final = "; pass one row per session and one column per position (x[None, :] for one session)"
_SHAPES: Final = {0: "a probability", 1: "a sequence of probabilities", 2: "a 2-D array of probabilities"}


@dataclass(frozen=True)
class Clicks:
    """What `ClickModel.sample` drew for ``n`` sessions of ``K`` positions, in display order.

    ``clicked`` is the observable outcome; ``examined`` the latent examination the model drew
    (a clicked position is always examined).
    """

    clicked: BoolArray
    examined: BoolArray


class ClickModel(ABC):
    """A user model that turns attractiveness (and, for DBN, satisfaction) into clicks.

    Subclasses are frozen dataclasses whose fields are the whole configuration; they implement
    `_sample` and `_marginals` on inputs already validated here. Inputs are ``(n, K)`` matrices of
    probabilities in display order; ``satisfaction`` is required by the models that set
    ``uses_satisfaction`` (DBN) and ignored by the others, so callers may pass it to any model.
    """

    name: ClassVar[str]
    #: the field whose length caps the number of positions, if any
    _positions_field: ClassVar[str | None] = None
    uses_satisfaction: ClassVar[bool] = False

    def sample(
        self,
        attractiveness: npt.ArrayLike,
        rng: np.random.Generator,
        satisfaction: npt.ArrayLike | None = None,
    ) -> Clicks:
        """Draw one click vector per session (row) of ``attractiveness``, shape ``(n, K)``."""
        alpha, sigma = self._inputs(attractiveness, satisfaction)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng: expected a numpy.random.Generator, found {type(rng).__name__}; "
                "pass np.random.default_rng(seed)"
            )
        attractive = rng.random(alpha.shape) < alpha
        clicked, examined = self._sample(alpha, sigma, attractive, rng)
        return Clicks(clicked=clicked, examined=examined)

    def click_probability(
        self, attractiveness: npt.ArrayLike, satisfaction: npt.ArrayLike | None = None
    ) -> FloatArray:
        """The exact marginal probability of a click at each position of each session, ``(n, K)``."""
        alpha, sigma = self._inputs(attractiveness, satisfaction)
        return alpha * self._marginals(alpha, sigma)

    def examination(
        self, attractiveness: npt.ArrayLike, satisfaction: npt.ArrayLike | None = None
    ) -> FloatArray:
        """The exact marginal probability that each position of each session is examined, ``(n, K)``."""
        alpha, sigma = self._inputs(attractiveness, satisfaction)
        return self._marginals(alpha, sigma)

    def params(self) -> dict[str, Any]:
        """The model as JSON-able data; ``click_model(**model.params())`` rebuilds it."""
        return {"name": self.name, **{key: _lists(value) for key, value in vars(self).items()}}

    @classmethod
    @abstractmethod
    def _defaults(cls, k: int) -> dict[str, Any]:
        """Constructor arguments that suit ``k`` positions."""

    @abstractmethod
    def _sample(
        self, alpha: FloatArray, sigma: FloatArray | None, attractive: BoolArray, rng: np.random.Generator
    ) -> tuple[BoolArray, BoolArray]:
        """``(clicked, examined)`` given the attraction draw."""

    @abstractmethod
    def _marginals(self, alpha: FloatArray, sigma: FloatArray | None) -> FloatArray:
        """``P(E_k = 1)`` per session and position; a click's is ``alpha`` times it."""

    def _inputs(
        self, attractiveness: npt.ArrayLike, satisfaction: npt.ArrayLike | None
    ) -> tuple[FloatArray, FloatArray | None]:
        alpha = _probabilities("attractiveness", attractiveness, ndim=2, hint=_ROWS)
        if self._positions_field is not None:
            limit = len(getattr(self, self._positions_field))
            if alpha.shape[1] > limit:
                raise ValueError(
                    f"attractiveness: expected at most {limit} positions (the length of "
                    f"{type(self).__name__}.{self._positions_field}), found {alpha.shape[1]}; "
                    f"build the model with a longer {self._positions_field} or click_model(k=...)"
                )
        if not self.uses_satisfaction:
            return alpha, None
        if satisfaction is None:
            raise ValueError(
                f"satisfaction: {type(self).__name__} needs the probability that a click "
                f"satisfies, shaped like attractiveness {alpha.shape}; found None"
            )
        sigma = _probabilities("satisfaction", satisfaction, ndim=2, hint=_ROWS)
        if sigma.shape != alpha.shape:
            raise ValueError(
                f"satisfaction: expected the shape of attractiveness {alpha.shape}, found {sigma.shape}"
            )
        return alpha, sigma


@dataclass(frozen=True)
class PositionBasedModel(ClickModel):
    """Position-based model: position ``k`` is examined with ``theta[k]``, whatever else happens.

    ``P(click at k) = theta[k] * alpha[k]``. The field is ``theta`` rather than ``examination`` so
    that it does not hide the `ClickModel.examination` method, which here returns ``theta``.

    >>> model = PositionBasedModel(theta=(1.0, 0.5))
    >>> model.click_probability([[0.5, 0.5]]).tolist()
    [[0.5, 0.25]]
    >>> clicks = model.sample(np.full((100_000, 2), 0.5), np.random.default_rng(1))
    >>> clicks.examined.mean(axis=0).round(2).tolist()
    [1.0, 0.5]
    """

    name: ClassVar[str] = "pbm"
    _positions_field: ClassVar[str | None] = "theta"

    theta: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta", _vector("theta", self.theta))

    @classmethod
    def _defaults(cls, k: int) -> dict[str, Any]:
        return {"theta": tuple(float(x) for x in 1.0 / (1.0 + np.arange(k)) ** 0.8)}

    def _sample(
        self, alpha: FloatArray, sigma: FloatArray | None, attractive: BoolArray, rng: np.random.Generator
    ) -> tuple[BoolArray, BoolArray]:
        examined = rng.random(alpha.shape) < self._theta(alpha.shape[1])
        return examined & attractive, examined

    def _marginals(self, alpha: FloatArray, sigma: FloatArray | None) -> FloatArray:
        return np.broadcast_to(self._theta(alpha.shape[1]), alpha.shape).copy()

    def _theta(self, k: int) -> FloatArray:
        return np.asarray(self.theta[:k], dtype=np.float64)


class _SequentialModel(ClickModel):
    """A top-down scan: ``E_0 = 1``, and ``E_{k+1} = E_k * (continue after k)``.

    The continuation probability depends only on whether position ``k`` was clicked, so one
    uniform draw per position decides it and a cumulative AND gives the examination.
    """

    @abstractmethod
    def _continuation(self, alpha: FloatArray, sigma: FloatArray | None) -> tuple[FloatArray, FloatArray]:
        """P(continue | click at k) and P(continue | examined, no click at k), broadcastable to (n, K)."""

    def _sample(
        self, alpha: FloatArray, sigma: FloatArray | None, attractive: BoolArray, rng: np.random.Generator
    ) -> tuple[BoolArray, BoolArray]:
        after_click, after_skip = self._continuation(alpha, sigma)
        goes_on = rng.random(alpha.shape) < np.where(attractive, after_click, after_skip)
        examined = np.ones(alpha.shape, dtype=np.bool_)
        examined[:, 1:] = np.logical_and.accumulate(goes_on[:, :-1], axis=1)
        return examined & attractive, examined

    def _marginals(self, alpha: FloatArray, sigma: FloatArray | None) -> FloatArray:
        after_click, after_skip = self._continuation(alpha, sigma)
        stay = alpha * after_click + (1.0 - alpha) * after_skip
        examined = np.ones(alpha.shape, dtype=np.float64)
        examined[:, 1:] = np.cumprod(stay[:, :-1], axis=1)
        return examined


@dataclass(frozen=True)
class CascadeModel(_SequentialModel):
    """Cascade model: examine top-down until the first click, then stop; at most one click.

    ``P(click at k) = alpha[k] * prod_{j<k} (1 - alpha[j])``.

    >>> CascadeModel().click_probability([[0.5, 0.5, 0.5]]).tolist()
    [[0.5, 0.25, 0.125]]
    """

    name: ClassVar[str] = "cascade"

    @classmethod
    def _defaults(cls, k: int) -> dict[str, Any]:
        return {}

    def _continuation(self, alpha: FloatArray, sigma: FloatArray | None) -> tuple[FloatArray, FloatArray]:
        return np.zeros(1), np.ones(1)


@dataclass(frozen=True)
class DependentClickModel(_SequentialModel):
    """Dependent click model: as cascade, but after a click at ``k`` continue with ``continuation[k]``.

    After a position that is examined and not clicked the user always continues.

    >>> model = DependentClickModel(continuation=(0.5, 0.5, 0.5))
    >>> model.examination([[1.0, 0.0, 1.0]]).tolist()
    [[1.0, 0.5, 0.5]]
    """

    name: ClassVar[str] = "dcm"
    _positions_field: ClassVar[str | None] = "continuation"

    continuation: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "continuation", _vector("continuation", self.continuation))

    @classmethod
    def _defaults(cls, k: int) -> dict[str, Any]:
        # users who click deeper are more likely to have found what they wanted
        return {"continuation": tuple(float(x) for x in np.linspace(0.6, 0.3, k))}

    def _continuation(self, alpha: FloatArray, sigma: FloatArray | None) -> tuple[FloatArray, FloatArray]:
        return np.asarray(self.continuation[: alpha.shape[1]], dtype=np.float64), np.ones(1)


@dataclass(frozen=True)
class UserBrowsingModel(ClickModel):
    """User browsing model: examine rank ``r`` with ``gamma[r][r']``, ``r'`` from the previous click.

    ``r'`` is one more than the rank of the previous click, and 0 when nothing above was clicked, so
    only cells with ``r' <= r`` are ever read. Clicks are ``E * A`` as in every model.

    >>> model = UserBrowsingModel(gamma=((1.0, 1.0), (0.2, 0.8)))
    >>> model.examination([[0.5, 0.5]]).tolist()
    [[1.0, 0.5]]
    """

    name: ClassVar[str] = "ubm"
    _positions_field: ClassVar[str | None] = "gamma"

    gamma: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        matrix = _probabilities("gamma", self.gamma, ndim=2)
        if matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
            raise ValueError(
                f"gamma: expected a square K x K matrix (rank, previous click rank + 1), "
                f"found shape {matrix.shape}"
            )
        object.__setattr__(self, "gamma", tuple(tuple(float(x) for x in row) for row in matrix))

    @classmethod
    def _defaults(cls, k: int) -> dict[str, Any]:
        rank = np.arange(k)[:, None]
        distance = np.maximum(rank - np.arange(k)[None, :], 0)  # cells with r' > r are never read
        gamma = 0.98 / (1.0 + distance) ** 0.5 / (1.0 + rank) ** 0.2
        return {"gamma": tuple(tuple(float(x) for x in row) for row in gamma)}

    def _sample(
        self, alpha: FloatArray, sigma: FloatArray | None, attractive: BoolArray, rng: np.random.Generator
    ) -> tuple[BoolArray, BoolArray]:
        n, k = alpha.shape
        gamma = np.asarray(self.gamma, dtype=np.float64)
        draws = rng.random(alpha.shape)
        examined = np.empty(alpha.shape, dtype=np.bool_)
        last = np.zeros(n, dtype=np.intp)  # previous click rank + 1
        for r in range(k):
            examined[:, r] = draws[:, r] < gamma[r, last]
            last = np.where(examined[:, r] & attractive[:, r], r + 1, last)
        return examined & attractive, examined

    def _marginals(self, alpha: FloatArray, sigma: FloatArray | None) -> FloatArray:
        n, k = alpha.shape
        gamma = np.asarray(self.gamma, dtype=np.float64)
        state = np.zeros((n, k + 1))  # P(previous click rank + 1 = s) before rank r
        state[:, 0] = 1.0
        examined = np.empty(alpha.shape, dtype=np.float64)
        for r in range(k):
            seen = state[:, : r + 1] * gamma[r, : r + 1]
            examined[:, r] = seen.sum(axis=1)
            hit = seen * alpha[:, r, None]
            state[:, : r + 1] -= hit
            state[:, r + 1] = hit.sum(axis=1)
        return np.clip(examined, 0.0, 1.0)


@dataclass(frozen=True)
class DynamicBayesianNetwork(_SequentialModel):
    """Dynamic Bayesian network (Chapelle & Zhang, 2009): satisfied users stop, others persevere.

    ``E_0 = 1``; a click at ``k`` satisfies with ``satisfaction[k]`` and a satisfied user stops; an
    unsatisfied one (clicked or not) continues with ``gamma``. Needs ``satisfaction``.

    >>> model = DynamicBayesianNetwork(gamma=0.5)
    >>> model.examination([[1.0, 1.0, 1.0]], satisfaction=[[0.5, 0.5, 0.5]]).tolist()
    [[1.0, 0.25, 0.0625]]
    """

    name: ClassVar[str] = "dbn"
    uses_satisfaction: ClassVar[bool] = True

    gamma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", float(_probabilities("gamma", self.gamma, ndim=0)))

    @classmethod
    def _defaults(cls, k: int) -> dict[str, Any]:
        return {"gamma": 0.9}

    def _continuation(self, alpha: FloatArray, sigma: FloatArray | None) -> tuple[FloatArray, FloatArray]:
        assert sigma is not None  # _inputs requires it
        return (1.0 - sigma) * self.gamma, np.full(1, self.gamma)


CLICK_MODELS: Final[dict[str, type[ClickModel]]] = {
    model.name: model
    for model in (
        PositionBasedModel,
        CascadeModel,
        DependentClickModel,
        UserBrowsingModel,
        DynamicBayesianNetwork,
    )
}


def click_model(name: str, k: int = 10, **params: Any) -> ClickModel:
    """The model called ``name`` with defaults for ``k`` positions, overridden by ``params``.

    Defaults: PBM ``theta[k] = 1 / (1 + k) ** 0.8``; DCM ``continuation`` from 0.6 down to 0.3;
    UBM ``gamma[r][r'] = 0.98 / (1 + r - r') ** 0.5 / (1 + r) ** 0.2``; DBN ``gamma = 0.9``.

    >>> [round(x, 3) for x in click_model("pbm", k=4).params()["theta"]]
    [1.0, 0.574, 0.415, 0.33]
    >>> click_model("dbn", gamma=0.7)
    DynamicBayesianNetwork(gamma=0.7)
    """
    model = CLICK_MODELS.get(name)
    if model is None:
        raise ValueError(f"name: expected one of {sorted(CLICK_MODELS)}, found {name!r}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k: expected a positive number of positions, found {k!r}")
    defaults = model._defaults(int(k))
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        accepted = f"expected one of {sorted(defaults)}" if defaults else "it takes none"
        raise ValueError(f"{unknown[0]}: not a parameter of {model.__name__} ({name!r}); {accepted}")
    return model(**{**defaults, **params})


def _probabilities(argument: str, value: Any, *, ndim: int, hint: str = "") -> FloatArray:
    """``value`` as a float array of ``ndim`` dimensions, every entry in [0, 1], or a ValueError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{argument}: expected {_SHAPES[ndim]} in [0, 1], found {value!r}") from None
    if array.ndim != ndim:
        raise ValueError(
            f"{argument}: expected {_SHAPES[ndim]} in [0, 1], found an array of shape {array.shape}{hint}"
        )
    outside = ~((array >= 0.0) & (array <= 1.0))  # NaN is outside too
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        at = f" at index {where}" if where else ""
        raise ValueError(f"{argument}: expected probabilities in [0, 1], found {array[where]}{at}")
    return array


def _vector(argument: str, value: Sequence[float]) -> tuple[float, ...]:
    array = _probabilities(argument, value, ndim=1)
    if array.size == 0:
        raise ValueError(f"{argument}: expected one probability per position, found an empty sequence")
    return tuple(float(x) for x in array)


def _lists(value: Any) -> Any:
    return [_lists(x) for x in value] if isinstance(value, tuple) else value
