"""Differentiable CDFs and soft extremes for gradient-based fairness tuning (SPEC §2-3).

Pure JAX, no solver imports. Shapes: ``grid [G, n]`` (each agent's reference points, one column
per agent, e.g. a sorted quantile grid of a ReturnSample), ``scale [n]`` (positive, in each
agent's return units), ``x [..., n]`` (one return per agent).

The sigmoid-smoothed empirical CDF at temperature ``T > 0``

    F_i^T(x_i) = mean_j sigmoid((x_i - grid[j, i]) / (T * scale_i))

tends to the empirical CDF of ``grid[:, i]`` as ``T -> 0`` at every ``x_i`` that is not a
grid point (and to the midpoint of its jump at a grid point: ``sigmoid(0) = 1/2``). Dividing by
a per-agent scale (say each agent's sample standard deviation) lets one temperature fit agents
whose returns live on different scales; ranks are unit-free, so the rules' invariance to positive
affine reward changes survives smoothing when ``scale`` transforms with the rewards.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smooth_cdf(x: jax.Array, grid: jax.Array, scale: jax.Array, temperature: jax.Array | float) -> jax.Array:
    """Sigmoid-smoothed empirical CDFs ``[..., n]`` at returns ``x [..., n]``.

    Args:
        x: ``[..., n]`` one return per agent.
        grid: ``[G, n]`` each agent's reference returns (sample points or a quantile grid).
        scale: ``[n]`` positive per-agent return scale (same units as ``x``).
        temperature: positive scalar, unit-free (a fraction of ``scale``).
    """
    z = (x[..., None, :] - grid) / (temperature * scale)  # [..., G, n]
    return jax.nn.sigmoid(z).mean(axis=-2)


def smooth_cdf_grad(x: jax.Array, grid: jax.Array, scale: jax.Array, temperature: jax.Array | float) -> jax.Array:
    """``d F_i^T / d x_i`` in closed form, ``[..., n]`` (a smoothed density): the mean of
    ``s (1 - s) / (T scale_i)`` with ``s`` the sigmoids of :func:`smooth_cdf`."""
    width = temperature * scale
    s = jax.nn.sigmoid((x[..., None, :] - grid) / width)
    return (s * (1.0 - s)).mean(axis=-2) / width


def smooth_min(values: jax.Array, temperature: jax.Array | float, axis: int = -1) -> jax.Array:
    """Soft minimum ``-T log sum_i exp(-v_i / T)`` along ``axis``: a lower bound on the
    minimum, within ``T log n`` of it, exact as ``T -> 0``."""
    return -temperature * jax.nn.logsumexp(-values / temperature, axis=axis)


def smooth_count(levels: jax.Array, threshold: jax.Array | float, temperature: jax.Array | float, axis: int = -1) -> jax.Array:
    """Soft count ``sum_i sigmoid((v_i - threshold) / T)`` of the entries above ``threshold``
    (approval: ``levels`` are quantile ranks, ``threshold`` the approval level q)."""
    return jax.nn.sigmoid((levels - threshold) / temperature).sum(axis=axis)


def quantile_grid(sorted_returns: jax.Array, size: int) -> jax.Array:
    """A fixed ``[G, n]`` reference grid of ``G = min(size, N)`` points from ``sorted_returns
    [N, n]`` (each column ascending): the order statistics at levels ``(k + 1/2) / G``, so that
    the smoothed CDF of the grid approximates the empirical CDF of the full sample (within
    ``1/(2G)`` plus the smoothing) at a cost independent of ``N``. With ``size >= N`` the grid
    is the whole sample."""
    N = sorted_returns.shape[0]
    if size >= N:
        return sorted_returns
    index = jnp.floor((jnp.arange(size) + 0.5) * N / size).astype(jnp.int32)
    return sorted_returns[index]
