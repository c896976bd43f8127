"""What every uplift estimate checks of its per-unit arrays (one outcome, a 0/1 treatment with
both arms present, and optionally a probability in (0, 1] per unit), with field-named errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "check"]

FloatArray = npt.NDArray[np.float64]


def check(outcome: FloatArray, treatment: npt.NDArray[Any], propensity: FloatArray | None) -> None:
    n = len(outcome)
    if len(treatment) != n or (propensity is not None and len(propensity) != n):
        found = f"outcome {n}, treatment {len(treatment)}" + (
            f", propensity {len(propensity)}" if propensity is not None else ""
        )
        raise ValueError(f"outcome, treatment, propensity: expected one value per unit each, found {found}")
    if not np.isin(treatment, (0, 1)).all():
        raise ValueError("treatment: expected 0/1 (or booleans) per unit, found other values")
    for arm, label in ((1, "treated"), (0, "control")):
        if not (treatment == arm).any():
            raise ValueError(f"treatment: the {label} arm is empty; uplift needs units in both arms")
    if not np.isfinite(outcome).all():
        raise ValueError("outcome: expected finite numbers, found NaN or infinity")
    if propensity is not None and not ((propensity > 0) & (propensity <= 1)).all():
        bad = propensity[~((propensity > 0) & (propensity <= 1))][:3]
        raise ValueError(f"propensity: expected probabilities in (0, 1], found e.g. {bad.tolist()}")
