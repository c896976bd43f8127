"""Qini and uplift curves of a ranking of units by a score (Radcliffe 2007; Gutierrez & Gerardy
2017), their coefficients, and a plot of several rankings' curves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from revealed.ope.uplift.inputs import FloatArray, check

__all__ = ["UpliftCurve", "plot_uplift_curves", "uplift_curve"]


@dataclass(frozen=True)
class UpliftCurve:
    """Qini and uplift curves of a ranking, at each distinct score (ties are targeted together).

    Within the top ``k`` units, let tau(k) be the treated minus the control mean outcome
    (weighted by 1 / propensity when given) and n_t(k) the number of treated units. The Qini
    curve is ``n_t(k) * tau(k)`` (Radcliffe: R_t - R_c n_t / n_c), the uplift curve
    ``k * tau(k)`` (Gutierrez & Gerardy); both start at 0. The coefficients are areas on
    normalised axes (fraction targeted, curve / n): ``qini_coefficient`` between the Qini curve
    and the random ranking's straight line, ``auuc`` under the uplift curve (a random ranking
    scores about half the average uplift).
    """

    targeted: npt.NDArray[np.int64]
    qini: FloatArray
    uplift: FloatArray
    qini_coefficient: float
    auuc: float

    @property
    def n(self) -> int:
        return int(self.targeted[-1])

    @property
    def fraction(self) -> FloatArray:
        return np.asarray(self.targeted / self.n, dtype=float)

    @property
    def random_qini(self) -> FloatArray:
        """The Qini curve of a random ranking: the straight line to the same end point."""
        return np.asarray(self.fraction * self.qini[-1], dtype=float)


def uplift_curve(
    *,
    score: npt.ArrayLike,
    treatment: npt.ArrayLike,
    outcome: npt.ArrayLike,
    propensity: npt.ArrayLike | None = None,
) -> UpliftCurve:
    """Qini and uplift curves of targeting units in decreasing `score` order.

    >>> c = uplift_curve(score=[0.9, 0.8, 0.7, 0.6], treatment=[1, 0, 1, 0], outcome=[1, 0, 0, 1])
    >>> c.qini.tolist(), c.uplift.tolist(), c.qini_coefficient
    ([0.0, 1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 2.0, 1.5, 0.0], 0.1875)
    """
    s = np.asarray(score, dtype=float)
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treatment).astype(np.int8)
    p = None if propensity is None else np.asarray(propensity, dtype=float)
    check(y, t, p)
    if len(s) != len(y) or not np.isfinite(s).all():
        raise ValueError(f"score: expected one finite number per unit ({len(y)}), found {len(s)}")
    order = np.argsort(-s, kind="stable")
    s, y, t = s[order], y[order], t[order]
    w = np.ones(len(y)) if p is None else 1.0 / p[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the last unit of each tie group
    n_t = np.cumsum(t)[ends]
    w_t, r_t = np.cumsum(w * t)[ends], np.cumsum(w * t * y)[ends]
    w_c, r_c = np.cumsum(w * (1 - t))[ends], np.cumsum(w * (1 - t) * y)[ends]
    mean_t = np.divide(r_t, w_t, out=np.zeros_like(r_t), where=w_t > 0)
    mean_c = np.divide(r_c, w_c, out=np.zeros_like(r_c), where=w_c > 0)
    tau = mean_t - mean_c
    k = ends + 1
    targeted = np.r_[0, k].astype(np.int64)
    qini, uplift = np.r_[0.0, n_t * tau], np.r_[0.0, k * tau]
    n = len(y)
    x = targeted / n
    qini_coefficient = float(np.trapezoid(qini / n, x) - qini[-1] / n / 2)
    return UpliftCurve(targeted, qini, uplift, qini_coefficient, float(np.trapezoid(uplift / n, x)))


def plot_uplift_curves(
    curves: Mapping[str, UpliftCurve], *, out: Path, name: str, kind: Literal["qini", "uplift"] = "qini"
) -> Path:
    """Write ``<out>/<name>.png``: each ranking's Qini (or uplift) curve and the random line."""
    import matplotlib

    matplotlib.use("Agg")  # no display here or on servers
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for label, curve in curves.items():
        values = curve.qini if kind == "qini" else curve.uplift
        axes.plot(curve.fraction, values, label=f"{label} (qini {curve.qini_coefficient:.3g})")
    if curves:
        last = next(iter(curves.values()))
        end = last.qini[-1] if kind == "qini" else last.uplift[-1]
        axes.plot([0, 1], [0, end], "--", color="grey", label="random")
    axes.set_xlabel("fraction of units targeted (highest score first)")
    axes.set_ylabel("incremental outcome (Qini)" if kind == "qini" else "incremental outcome (uplift)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = out / f"{name}.png"
    figure.savefig(path)
    plt.close(figure)
    return path
