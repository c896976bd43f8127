"""The assistant world's configuration: the logistic `Link` from a response's quality to a signal's
probability, `AssistantConfig` and its validation, the world's fixed shapes (daily cycle, delays,
edit distances), and what those imply: `signal_probabilities` for responses of given quality and
`expected_signal_rates` per version."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

__all__ = [
    "AssistantConfig",
    "DELAYS_S",
    "DIURNAL_AMPLITUDE",
    "EDIT_SHAPE",
    "Link",
    "PEAK_HOUR",
    "expected_signal_rates",
    "signal_probabilities",
]

_DEFAULT_VERSIONS: Final = {"assistant@v1": 0.55, "assistant@v2": 0.65}
#: daily cycle of conversation starts: intensity 1 + A cos(2 pi (hour - peak) / 24), hours UTC
DIURNAL_AMPLITUDE: Final = 0.6
PEAK_HOUR: Final = 15.0
#: delays in seconds: (floor, median above the floor, log-normal sigma)
DELAYS_S: Final = {
    "regenerate": (1.0, 12.0, 0.7),  # reading the first response, then clicking regenerate
    "generation": (1.0, 3.0, 0.5),  # serving the regenerated response
    "think": (8.0, 50.0, 0.9),  # reading the kept response and typing the next prompt
    "leave": (3.0, 25.0, 0.6),  # from a response to the abandoning session_end
}
#: edit distances are 1 + Poisson(Gamma(shape, mean / shape)): over-dispersed around the mean
EDIT_SHAPE: Final = 2.0


@dataclass(frozen=True)
class Link:
    """A logistic link: P(signal | x) = 1 / (1 + exp(-(intercept + slope * x))).

    >>> float(Link(0.0, 4.0)(np.array([0.5]))[0])
    0.8807970779778823
    """

    intercept: float
    slope: float

    def __post_init__(self) -> None:
        for name in ("intercept", "slope"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"Link.{name}: expected a finite number, found {value!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = 1.0 / (1.0 + np.exp(-(self.intercept + self.slope * np.asarray(x, dtype=float))))
        return out

    def as_json(self) -> dict[str, float]:
        return {"intercept": float(self.intercept), "slope": float(self.slope)}


@dataclass(frozen=True)
class AssistantConfig:
    """The parameters of the assistant world; every one has a default.

    `versions` maps each model version to its mean latent quality; `traffic` the share of
    conversations each version serves (equal by default). Quality is Beta with mean m and
    concentration k (a = m k, b = (1 - m) k). `drift` holds change points
    `(hours after start, version, new mean quality)`. Links take the response quality `q`, except
    `thumbs` (the chance of any explicit feedback), which takes the extremity |2q - 1|;
    `thumbs_up` is P(up | thumbs); `abandon` is P(session_end | the user does not continue).
    An edit's mean distance is `1 + edit_distance_scale * exp(-edit_distance_decay * q)`.

    >>> AssistantConfig(drift=((36, "assistant@v2", 0.4),)).drift
    ((36.0, 'assistant@v2', 0.4),)
    >>> AssistantConfig(versions={"m@1": 1.5})
    Traceback (most recent call last):
    ...
    ValueError: AssistantConfig.versions['m@1']: expected a mean quality in (0, 1), found 1.5
    """

    users: int | None = None
    versions: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_VERSIONS))
    traffic: Mapping[str, float] | None = None
    concentration: float = 6.0
    days: float = 3.0
    max_turns: int = 50
    temperature: float = 0.7
    regenerate: Link = Link(0.0, -6.0)
    copy: Link = Link(-3.0, 4.0)
    edit: Link = Link(-1.5, -2.0)
    edit_distance_scale: float = 150.0
    edit_distance_decay: float = 3.0
    thumbs: Link = Link(-3.6, 1.0)
    thumbs_up: Link = Link(-4.0, 8.0)
    continuation: Link = Link(-1.0, 3.5)
    abandon: Link = Link(1.0, -6.0)
    drift: tuple[tuple[float, str, float], ...] = ()

    def __post_init__(self) -> None:
        users, versions, traffic = self.users, self.versions, self.traffic
        _require(users is None or _integer(users, 1), "users", "an integer >= 1 or None (n // 8)", users)
        _require(
            isinstance(versions, Mapping) and bool(versions),
            "versions",
            "a non-empty mapping of version name to mean quality",
            versions,
        )
        for name, mean in versions.items():
            _require(isinstance(name, str) and 0 < len(name) <= 512, "versions", "names 1-512 long", name)
            _require(_number(mean) and 0 < mean < 1, f"versions[{name!r}]", "a mean quality in (0, 1)", mean)
        object.__setattr__(self, "versions", {k: float(v) for k, v in versions.items()})
        if traffic is not None:
            known = f"shares of known versions ({', '.join(versions)})"
            _require(set(traffic) <= set(versions), "traffic", known, sorted(set(traffic) - set(versions)))
            shares = [traffic.get(v, 0.0) for v in versions]
            ok = all(_number(s) and s >= 0 for s in shares) and sum(shares) > 0
            _require(ok, "traffic", "finite shares >= 0 with a positive sum", shares)
            object.__setattr__(self, "traffic", {v: float(s) for v, s in zip(versions, shares, strict=True)})
        for name, low, what in (
            ("concentration", 0.0, "a number > 0"),
            ("days", 0.0, "a number of days > 0"),
            ("temperature", 0.0, "a sampling temperature > 0"),
            ("edit_distance_scale", -1.0, "a number >= 0"),
            ("edit_distance_decay", -1.0, "a number >= 0"),
        ):
            value = getattr(self, name)
            _require(_number(value) and value > low and value >= 0, name, what, value)
        _require(_integer(self.max_turns, 1), "max_turns", "an integer >= 1", self.max_turns)
        for name in ("regenerate", "copy", "edit", "thumbs", "thumbs_up", "continuation", "abandon"):
            link = getattr(self, name)
            _require(isinstance(link, Link), name, "a Link(intercept, slope)", link)
        points = []
        for i, point in enumerate(self.drift):
            where = f"drift[{i}]"
            shape = "(hours after start, version, new mean quality)"
            _require(isinstance(point, tuple | list) and len(point) == 3, where, shape, point)
            hours, version, quality = point
            _require(_number(hours) and hours >= 0, where, "hours >= 0", hours)
            _require(version in versions, where, f"a version of versions ({', '.join(versions)})", version)
            _require(_number(quality) and 0 < quality < 1, where, "a new mean quality in (0, 1)", quality)
            points.append((float(hours), str(version), float(quality)))
        object.__setattr__(self, "drift", tuple(sorted(points, key=lambda p: p[0])))

    def shares(self) -> np.ndarray:
        """The traffic share of each version, in the order of `versions`, summing to 1."""
        raw = np.array([1.0] * len(self.versions) if self.traffic is None else list(self.traffic.values()))
        out: np.ndarray = raw / raw.sum()
        return out

    def as_json(self, *, users: int | None = None) -> dict[str, Any]:
        """The configuration as JSON, with the link functions spelled out."""
        links = {
            name: {**getattr(self, name).as_json(), "of": of}
            for name, of in (
                ("regenerate", "q of a first response"),
                ("copy", "q of the kept response"),
                ("edit", "q of the kept response"),
                ("thumbs", "|2q - 1| of any response"),
                ("thumbs_up", "q, given thumbs"),
                ("continuation", "q of the kept response"),
                ("abandon", "q of the kept response, given no next turn"),
            )
        }
        return {
            "users": self.users if users is None else users,
            "versions": dict(self.versions),
            "traffic": dict(zip(self.versions, self.shares().tolist(), strict=True)),
            "quality": {"distribution": "beta(m k, (1 - m) k)", "concentration": self.concentration},
            "days": self.days,
            "max_turns": self.max_turns,
            "temperature": self.temperature,
            "links": {"form": "1 / (1 + exp(-(intercept + slope * x)))", **links},
            "edit_distance": {
                "mean": "1 + scale * exp(-decay * q)",
                "scale": self.edit_distance_scale,
                "decay": self.edit_distance_decay,
                "gamma_shape": EDIT_SHAPE,
            },
            "drift": [{"hours": h, "version": v, "quality": q} for h, v, q in self.drift],
            "diurnal": {"amplitude": DIURNAL_AMPLITUDE, "peak_hour_utc": PEAK_HOUR},
            "delays_s": {
                k: dict(zip(("floor", "median", "sigma"), v, strict=True)) for k, v in DELAYS_S.items()
            },
        }


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _integer(value: Any, low: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


def _require(ok: bool, where: str, expected: str, found: object) -> None:
    if not ok:
        raise ValueError(f"AssistantConfig.{where}: expected {expected}, found {found!r}")


def expected_signal_rates(config: AssistantConfig | None = None) -> dict[str, dict[str, float]]:
    """Per version, the probability of each signal for a response whose quality is drawn from the
    version's quality distribution at its base mean (no drift, no selection by regeneration):
    what a first response of the version gets. `edit_distance` is the mean distance of an edit.

    >>> rates = expected_signal_rates()
    >>> rates["assistant@v2"]["copy"] > rates["assistant@v1"]["copy"]
    True
    >>> rates["assistant@v2"]["regenerate"] < rates["assistant@v1"]["regenerate"]
    True
    """
    cfg = config or AssistantConfig()
    q = (np.arange(4000) + 0.5) / 4000
    out = {}
    for version, mean in cfg.versions.items():
        a, b = mean * cfg.concentration, (1 - mean) * cfg.concentration
        log_pdf = (a - 1) * np.log(q) + (b - 1) * np.log1p(-q)
        w = np.exp(log_pdf - log_pdf.max())
        w /= w.sum()
        p = signal_probabilities(cfg, q)
        out[version] = {name: float(np.dot(w, values)) for name, values in p.items()}
    return out


def signal_probabilities(cfg: AssistantConfig, q: np.ndarray) -> dict[str, np.ndarray]:
    """Each signal's probability for responses of quality `q` (``thumbs_up``/``thumbs_down``
    include the chance of any thumbs; ``edit_distance`` is the mean distance of an edit)."""
    thumbs = cfg.thumbs(np.abs(2 * q - 1))
    up = cfg.thumbs_up(q)
    cont = cfg.continuation(q)
    return {
        "regenerate": cfg.regenerate(q),
        "copy": cfg.copy(q),
        "edit": cfg.edit(q),
        "edit_distance": 1 + cfg.edit_distance_scale * np.exp(-cfg.edit_distance_decay * q),
        "thumbs": thumbs,
        "thumbs_up": thumbs * up,
        "thumbs_down": thumbs * (1 - up),
        "continue": cont,
        "abandon": (1 - cont) * cfg.abandon(q),
    }
