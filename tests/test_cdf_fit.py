"""Generalised-logistic CDF fits (the borda-concave method): closed forms, parameter recovery,
fit quality and failures, validation."""

import math

import numpy as np
import pytest

from jaxagg.cdf_fit import LogisticCdf, fit_cdfs, fit_logistic_cdf
from jaxagg.errors import ConvergenceError, ShapeError, ValidationError
from jaxagg.samples import ReturnSample


def random_sample(N=500, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return ReturnSample(rng.normal(size=(N, n)), "uniform", seed=seed)


def test_logistic_cdf_closed_forms():
    f = LogisticCdf(m=1.0, s=2.0, nu=1.0)  # the logistic distribution
    assert float(f(1.0)) == pytest.approx(0.5)
    assert float(f.derivative(1.0)) == pytest.approx(1 / 8)
    assert f.mode() == 1.0
    g = LogisticCdf(m=0.5, s=0.3, nu=4.0)
    x = np.linspace(-3, 5, 9)
    np.testing.assert_allclose(g(x), (1 + np.exp(-(x - 0.5) / 0.3)) ** (-1 / 4.0), rtol=1e-13)
    np.testing.assert_allclose(g.quantile(g(x)), x, atol=1e-9)
    assert float(g(g.mode())) == pytest.approx((1 + 4.0) ** (-1 / 4.0))
    # the derivative is the derivative
    h = 1e-6
    np.testing.assert_allclose(g.derivative(x), (g(x + h) - g(x - h)) / (2 * h), rtol=1e-6, atol=1e-9)
    # stable far in both tails
    assert g(-1e4) == 0.0 and g(1e4) == 1.0 and np.isfinite(g.derivative(np.array([-1e4, 1e4]))).all()
    assert g.quantile(0.0) == -np.inf and g.quantile(1.0) == np.inf
    assert set(g.to_dict()) == {"m", "s", "nu", "mode", "max_error"}


@pytest.mark.parametrize("m, s, nu", [(1.5, 0.7, 2.5), (-3.0, 0.2, 0.4), (0.0, 1.0, 1.0)])
def test_logistic_mode_is_numeric_argmax_of_density(m, s, nu):
    f = LogisticCdf(m, s, nu)
    grid = np.linspace(m - 20 * s, m + 20 * s, 400_001)
    numeric = grid[np.argmax(f.derivative(grid))]
    assert f.mode() == pytest.approx(m - s * math.log(nu))
    assert abs(numeric - f.mode()) <= 2 * (grid[1] - grid[0])


def test_fit_recovers_known_richards_parameters():
    true = LogisticCdf(m=1.5, s=0.7, nu=2.5)
    rng = np.random.default_rng(1)
    x = true.quantile(rng.uniform(size=200_000))  # inverse-transform sampling
    sample = ReturnSample(np.stack([x, -x], axis=1), "uniform", seed=1)
    fit = fit_cdfs(sample)[0]
    # worst over 30 seeds: 1.1%, 1.3%, 1.8% relative, mode off by 0.013 (= 0.02 s)
    assert fit.m == pytest.approx(1.5, rel=2e-2)
    assert fit.s == pytest.approx(0.7, rel=3e-2)
    assert fit.nu == pytest.approx(2.5, rel=3e-2)
    assert abs(fit.mode() - true.mode()) < 3e-2
    grid = np.linspace(x.min(), x.max(), 1001)
    assert np.max(np.abs(fit(grid) - true(grid))) < 5e-3
    assert fit.max_error < 3 * sample.dkw_band()  # Kolmogorov distance to the empirical CDF
    fits = fit_cdfs(sample, max_points=500)
    assert len(fits) == 2 and all(isinstance(f, LogisticCdf) for f in fits)
    assert fits[1].max_error < 0.02  # the mirrored agent is fitted too (a different shape)


def test_fit_reports_quality_and_rejects_bad_samples():
    rng = np.random.default_rng(2)
    bimodal = np.concatenate([rng.normal(-5, 0.3, 5000), rng.normal(5, 0.3, 5000)])
    fit = fit_logistic_cdf(bimodal)
    assert fit.max_error > 0.05
    with pytest.raises(ConvergenceError, match=r"bimodal: generalised-logistic CDF fit is .* expected at most 0.01"):
        fit_logistic_cdf(bimodal, max_error=0.01, name="bimodal")
    s = ReturnSample(np.stack([np.repeat([1.0, 2.0, 3.0, 4.0], 5), np.arange(20.0)], axis=1), "policy")
    with pytest.raises(ValidationError, match="agent 0: expected at least 5 distinct returns .* got 4"):
        fit_cdfs(s)
    with pytest.raises(ValidationError, match="max_points: expected an integer >= 3, got 2"):
        fit_cdfs(s, max_points=2)
    with pytest.raises(ShapeError, match=r"values: expected a 1-d array, got shape \(2, 2\)"):
        fit_logistic_cdf(np.ones((2, 2)))


def test_fit_failure_is_a_convergence_error(monkeypatch):
    from scipy import optimize

    class Failed:
        status, x, cost, message = 0, np.zeros(3), 0.0, "max evaluations"

    monkeypatch.setattr(optimize, "least_squares", lambda *a, **k: Failed())
    with pytest.raises(ConvergenceError, match="agent 0: generalised-logistic CDF fit failed .*max evaluations"):
        fit_cdfs(random_sample(N=100, n=2))


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"m": 0.0, "s": 0.0, "nu": 1.0}, "s: expected a positive number, got 0.0"),
        ({"m": 0.0, "s": 1.0, "nu": -1.0}, "nu: expected a positive number, got -1.0"),
        ({"m": float("nan"), "s": 1.0, "nu": 1.0}, "m: expected a finite number, got nan"),
    ],
)
def test_logistic_cdf_validation(kwargs, pattern):
    with pytest.raises(ValidationError, match=pattern):
        LogisticCdf(**kwargs)
