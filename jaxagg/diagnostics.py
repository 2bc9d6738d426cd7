"""MCMC diagnostics for chain-based samplers: split R-hat and effective sample size (the
conventions of Gelman et al., Bayesian Data Analysis 3rd ed., §11.4-11.5). Inputs are draws
``[chains, draws]`` of one scalar (an agent's return)."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ShapeError

RHAT_LIMIT = 1.01
ESS_MINIMUM = 400


def _draws(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 4:
        raise ShapeError(f"draws: expected [chains, draws] with at least 4 draws per chain, got shape {x.shape}")
    return x


def _split(x: np.ndarray) -> np.ndarray:
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, half : 2 * half]], axis=0)


def split_rhat(draws: np.ndarray) -> float:
    """Split R-hat: each chain halved, then sqrt(pooled variance estimate / within variance)."""
    x = _split(_draws(draws))
    n = x.shape[1]
    within = x.var(axis=1, ddof=1).mean()
    between = n * x.mean(axis=1).var(ddof=1)
    if within == 0.0:
        return 1.0 if between == 0.0 else float("inf")
    pooled = (n - 1) / n * within + between / n
    return float(np.sqrt(pooled / within))


def effective_sample_size(draws: np.ndarray) -> float:
    """ESS from the chains' autocorrelations (FFT), summed over Geyer's initial positive and
    monotone sequence of paired lags."""
    x = _split(_draws(draws))
    m, n = x.shape
    centered = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centered, size, axis=1)
    autocov = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, :n] / n  # [m, n]
    within = (autocov[:, 0] * n / (n - 1)).mean()
    between = n * x.mean(axis=1).var(ddof=1)
    pooled = (n - 1) / n * within + between / n
    if pooled == 0.0:
        return float(m * n)
    rho = 1.0 - (within - autocov.mean(axis=0)) / pooled
    rho[0] = 1.0
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
    positive = np.flatnonzero(pairs <= 0.0)
    pairs = pairs[: positive[0] if positive.size else pairs.size]
    pairs = np.minimum.accumulate(pairs)
    tau = -1.0 + 2.0 * pairs.sum()
    return float(m * n / max(tau, 1.0 / np.log10(max(m * n, 10))))
