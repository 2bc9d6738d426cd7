"""Metrics for comparing outcomes (SPEC §5). Inputs are normalised returns ``u [n]`` in [0, 1]."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ShapeError


def _vector(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 1 or u.size == 0:
        raise ShapeError(f"u: expected a non-empty vector of normalised returns [n], got shape {u.shape}")
    return u


def gini(u: np.ndarray) -> float:
    """Gini index ``sum_i sum_j |u_i - u_j| / (2 n sum_i u_i)``: 0 is perfect equality.

    Defined as 0 when every ``u_i`` is 0 (everyone equally badly off)."""
    u = _vector(u)
    total = u.sum()
    if total <= 0.0:
        return 0.0
    return float(np.abs(u[:, None] - u[None, :]).sum() / (2.0 * u.size * total))


def nash_welfare(u: np.ndarray) -> float:
    """Nash welfare ``(prod_i u_i)^(1/n)``, the geometric mean (0 if any ``u_i <= 0``)."""
    u = _vector(u)
    if (u <= 0.0).any():
        return 0.0
    return float(np.exp(np.log(u).mean()))


def min_normalized(u: np.ndarray) -> float:
    """The worst-off agent's normalised return."""
    return float(_vector(u).min())


def welfare_summary(u: np.ndarray) -> dict[str, float]:
    """Minimum, mean, Gini and Nash welfare of normalised returns ``[n]``."""
    u = _vector(u)
    return {"min": min_normalized(u), "mean": float(u.mean()), "gini": gini(u), "nash_welfare": nash_welfare(u)}


def quantile_level(returns: np.ndarray, sample) -> float:
    """Quantile-fairness level ``min_i F_i(J_i(d))`` of raw returns ``[n]`` under a ReturnSample."""
    return float(np.min(sample.rank(np.asarray(returns, dtype=np.float64))))
