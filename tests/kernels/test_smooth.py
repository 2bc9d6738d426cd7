"""Smoothed CDFs, soft minimum and soft count: limits T -> 0 against the exact empirical
quantities, and gradients against closed forms and finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxagg.kernels.precision import precision_scope
from jaxagg.kernels.smooth import (
    quantile_grid,
    smooth_cdf,
    smooth_cdf_grad,
    smooth_count,
    smooth_min,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    grid = np.stack([rng.normal(0.0, 1.0, 200), rng.normal(50.0, 20.0, 200)], axis=1)  # [G, n], two scales
    x = np.stack([rng.normal(0.0, 1.0, 30), rng.normal(50.0, 20.0, 30)], axis=1)  # [30, n]
    return grid, x, grid.std(axis=0)


def test_limit_is_the_exact_empirical_cdf(data):
    grid, x, scale = data
    exact = (grid[None, :, :] <= x[:, None, :]).mean(axis=1)
    with precision_scope("float64"):
        smooth = np.asarray(smooth_cdf(jnp.asarray(x), jnp.asarray(grid), jnp.asarray(scale), 1e-9))
    # x is never a grid point here (continuous draws), so the limit is exact to float64 rounding
    np.testing.assert_allclose(smooth, exact, atol=1e-12)


def test_gradient_matches_closed_form_and_finite_differences(data):
    grid, x, scale = data
    with precision_scope("float64"):
        g, xs, sc = jnp.asarray(grid), jnp.asarray(x), jnp.asarray(scale)
        T = 0.2
        auto = jax.vmap(jax.grad(lambda v: smooth_cdf(v, g, sc, T).sum()))(xs)
        closed = smooth_cdf_grad(xs, g, sc, T)
        eps = 1e-6 * scale
        fd = (smooth_cdf(xs + eps, g, sc, T) - smooth_cdf(xs - eps, g, sc, T)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(auto), np.asarray(closed), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(closed), np.asarray(fd), rtol=1e-7, atol=1e-12)


def test_smooth_min_bounds_and_limit():
    rng = np.random.default_rng(1)
    v = rng.uniform(size=(50, 6))
    with precision_scope("float64"):
        for T in (0.3, 0.01, 1e-6):
            soft = np.asarray(smooth_min(jnp.asarray(v), T))
            assert np.all(soft <= v.min(axis=1) + 1e-15)
            assert np.all(soft >= v.min(axis=1) - T * np.log(6) - 1e-15)
        np.testing.assert_allclose(np.asarray(smooth_min(jnp.asarray(v), 1e-9)), v.min(axis=1), atol=1e-8)


def test_smooth_count_limit():
    rng = np.random.default_rng(2)
    v = rng.uniform(size=(40, 5))
    with precision_scope("float64"):
        soft = np.asarray(smooth_count(jnp.asarray(v), 0.5, 1e-9))
    np.testing.assert_allclose(soft, (v > 0.5).sum(axis=1), atol=1e-9)


def test_quantile_grid():
    sorted_returns = np.sort(np.random.default_rng(3).normal(size=(1000, 2)), axis=0)
    with precision_scope("float64"):
        np.testing.assert_array_equal(np.asarray(quantile_grid(jnp.asarray(sorted_returns), 5000)), sorted_returns)
        grid = np.asarray(quantile_grid(jnp.asarray(sorted_returns), 100))
    assert grid.shape == (100, 2)
    # the grid's CDF is within 1/(2G) + 1/N of the full sample's at every sample point
    for i in range(2):
        full = np.arange(1, 1001) / 1000
        coarse = np.searchsorted(grid[:, i], sorted_returns[:, i], side="right") / 100
        assert np.abs(full - coarse).max() <= 1 / 200 + 1 / 1000 + 1e-12
