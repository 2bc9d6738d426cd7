"""Smooth CDF fits: a generalised-logistic (Richards) CDF per agent, fitted to a sample's
empirical CDF by least squares. Used by the reference implementation's Borda method
(``borda-concave``, SPEC §3): above its mode the fitted CDF is concave.

Pure NumPy/SciPy; inputs are 1-d samples ``[N]`` or a :class:`~jaxagg.samples.ReturnSample`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from jaxagg.errors import ConvergenceError, ValidationError
from jaxagg.validation import finite_array, finite_number, integer_at_least, levels

FIT_MAX_POINTS = 2000
_FIT_NU_STARTS = (0.3, 1.0, 3.0)
_FIT_LOG_NU_BOUNDS = (math.log(1e-3), math.log(1e3))
_FIT_LOG_S_BOUNDS = (-20.0, 5.0)


def fit_cdfs(sample, *, max_points: int = FIT_MAX_POINTS, max_error: float | None = None) -> tuple[LogisticCdf, ...]:
    """One :class:`LogisticCdf` per agent of a ReturnSample; errors name the agent."""
    ordered = sample.sorted_returns
    return tuple(fit_logistic_cdf(ordered[:, i], max_points=max_points, max_error=max_error, name=f"agent {i}",
                                  is_sorted=True) for i in range(sample.num_agents))


@dataclass(frozen=True)
class LogisticCdf:
    """Generalised-logistic (Richards) CDF ``F(x) = (1 + exp(-(x - m) / s)) ** (-1 / nu)``.

    Lower asymptote 0, upper 1; ``nu = 1`` is the logistic distribution. With
    ``z = (x - m) / s`` the density is ``f(x) = exp(-z) (1 + exp(-z)) ** (-1/nu - 1) / (nu s)``;
    it is log-concave with its single peak (the inflection point of ``F``) at
    ``x = m - s log(nu)``, where ``F = (1 + nu) ** (-1/nu)``. ``F`` is convex below the mode and
    concave above it.

    Args:
        m: location (finite). s: scale (> 0). nu: shape (> 0).
        max_error: fit quality, ``sup_x |F(x) - F_emp(x)|`` against the sample it was fitted to
            (``None`` for a hand-made curve).
    """

    m: float
    s: float
    nu: float
    max_error: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "m", finite_number("m", self.m))
        for name in ("s", "nu"):
            value = finite_number(name, getattr(self, name))
            if not value > 0.0:
                raise ValidationError(f"{name}: expected a positive number, got {value!r}")
            object.__setattr__(self, name, value)
        if self.max_error is not None:
            object.__setattr__(self, "max_error", finite_number("max_error", self.max_error))

    def _log_base(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        z = (np.asarray(x, dtype=np.float64) - self.m) / self.s
        return z, np.logaddexp(0.0, -z)  # log(1 + exp(-z)), stable both ways

    def __call__(self, x: Any) -> np.ndarray:
        """``F(x)``, elementwise; same shape as ``x``."""
        _, log_base = self._log_base(x)
        return np.exp(-log_base / self.nu)

    def derivative(self, x: Any) -> np.ndarray:
        """The density ``F'(x)``, elementwise; same shape as ``x``."""
        z, log_base = self._log_base(x)
        return np.exp(-z - (1.0 / self.nu + 1.0) * log_base) / (self.nu * self.s)

    def mode(self) -> float:
        """Where the density peaks (the inflection point of ``F``): ``m - s log(nu)``.

        Derivation: with ``t = exp(-z)``, ``log f = const + log t - (1/nu + 1) log(1 + t)``, and
        ``d/dt = 1/t - (1 + nu) / (nu (1 + t)) = 0`` gives ``t = nu``, i.e. ``z = -log(nu)``."""
        return self.m - self.s * math.log(self.nu)

    def quantile(self, q: Any) -> np.ndarray:
        """The inverse ``F^{-1}(q) = m - s log(q ** (-nu) - 1)`` for ``q`` in ``[0, 1]``
        (``-inf`` at 0, ``inf`` at 1); same shape as ``q``."""
        qs = levels("q", q)
        with np.errstate(divide="ignore"):
            return self.m - self.s * np.log(np.expm1(-self.nu * np.log(qs)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (and the mode)."""
        return {"m": self.m, "s": self.s, "nu": self.nu, "mode": self.mode(), "max_error": self.max_error}


def fit_logistic_cdf(
    values: Any,
    *,
    max_points: int = FIT_MAX_POINTS,
    max_error: float | None = None,
    name: str = "values",
    is_sorted: bool = False,
) -> LogisticCdf:
    """Least-squares fit of a :class:`LogisticCdf` to the empirical CDF of a 1-d sample.

    The sample is standardised (minus its median, divided by its IQR, or its standard deviation
    when the IQR is 0); the curve is fitted at most ``max_points`` evenly spaced order statistics
    (targets: the middle of the empirical CDF's jump there), in ``(m, log s, log nu)`` with
    ``nu`` in ``[1e-3, 1e3]``, from several starts (each matching the sample's median and IQR)
    with :func:`scipy.optimize.least_squares`; the best is kept. Its ``max_error`` is the
    Kolmogorov distance to the full empirical CDF.

    Args:
        values: ``[N]`` finite sample.
        max_points: at most this many fit points (>= 3).
        max_error: if given, raise when the fitted curve is further than this from the empirical
            CDF anywhere.
        name: how errors refer to the sample (e.g. ``"agent 2"``).
        is_sorted: skip sorting (``values`` already ascending).

    Raises:
        ValidationError: fewer than 5 distinct values or a constant sample.
        ConvergenceError: the least-squares fit failed from every start, or is further than
            ``max_error`` from the empirical CDF.
    """
    xs = finite_array(name, values, ndim=1)
    if not is_sorted:
        xs = np.sort(xs)
    max_points = integer_at_least("max_points", max_points, 3)
    if max_error is not None:
        max_error = finite_number("max_error", max_error)
    N = xs.size
    distinct = np.unique(xs)
    if distinct.size < 5:
        raise ValidationError(
            f"{name}: expected at least 5 distinct returns to fit a 3-parameter logistic CDF, got {distinct.size}"
        )
    center = float(np.median(xs))
    q25, q75 = np.quantile(xs, [0.25, 0.75])
    width = float(q75 - q25)
    if not width > 0.0:
        width = float(np.std(xs))
    if not width > 0.0 or not math.isfinite(width):  # pragma: no cover - excluded by the distinct check
        raise ValidationError(f"{name}: returns have no spread; cannot fit a CDF")

    idx = np.unique(np.linspace(0, N - 1, min(N, int(max_points))).round().astype(np.int64))
    points = (xs[idx] - center) / width
    targets = (np.searchsorted(xs, xs[idx], side="left") + np.searchsorted(xs, xs[idx], side="right")) / (2.0 * N)
    lo_q, hi_q = (np.array([0.25, 0.75]) if q75 > q25 else (0.5 - 0.5 * 0.6827, 0.5 + 0.5 * 0.6827))
    lo_z, hi_z = (float(np.quantile(points, lo_q)), float(np.quantile(points, hi_q)))
    span = hi_z - lo_z if hi_z > lo_z else 1.0

    def residuals(theta: np.ndarray) -> np.ndarray:
        m, log_s, log_nu = theta
        z = (points - m) / math.exp(log_s)
        return np.exp(-np.logaddexp(0.0, -z) / math.exp(log_nu)) - targets

    lower = [-np.inf, _FIT_LOG_S_BOUNDS[0], _FIT_LOG_NU_BOUNDS[0]]
    upper = [np.inf, _FIT_LOG_S_BOUNDS[1], _FIT_LOG_NU_BOUNDS[1]]
    best, problems = None, []
    for nu0 in _FIT_NU_STARTS:
        # Match the start's quartiles (or +-1 sd points) and median to the sample's.
        z_lo, z_hi, z_mid = (-math.log(p ** (-nu0) - 1.0) for p in (lo_q, hi_q, 0.5))
        s0 = span / (z_hi - z_lo)
        m0 = float(np.median(points)) - s0 * z_mid
        start = np.clip([m0, math.log(s0), math.log(nu0)], np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        try:
            result = optimize.least_squares(residuals, start, bounds=(lower, upper), method="trf", x_scale="jac")
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            problems.append(f"start nu={nu0}: {exc}")
            continue
        if result.status <= 0 or not np.all(np.isfinite(result.x)) or not math.isfinite(result.cost):
            problems.append(f"start nu={nu0}: {result.message}")
            continue
        if best is None or result.cost < best.cost:
            best = result
    if best is None:
        raise ConvergenceError(f"{name}: generalised-logistic CDF fit failed ({'; '.join(problems)})")
    m, log_s, log_nu = (float(v) for v in best.x)
    curve = LogisticCdf(m=center + width * m, s=width * math.exp(log_s), nu=math.exp(log_nu))
    fitted = curve(distinct)
    right = np.searchsorted(xs, distinct, side="right") / N
    left = np.searchsorted(xs, distinct, side="left") / N
    error = float(max(np.max(np.abs(fitted - right)), np.max(np.abs(fitted - left))))
    if max_error is not None and error > max_error:
        raise ConvergenceError(
            f"{name}: generalised-logistic CDF fit is {error:.3g} from the empirical CDF, expected at most {max_error:g}"
        )
    return LogisticCdf(m=curve.m, s=curve.s, nu=curve.nu, max_error=error)
