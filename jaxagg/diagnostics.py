"""MCMC diagnostics for chain-based samplers, as Vehtari, Gelman, Simpson, Carpenter and Bürkner
(2021, "Rank-normalization, folding, and localization: an improved R-hat", Bayesian Analysis)
define them, plus the classic split R-hat and ESS (Gelman et al., BDA3 §11.4-11.5) they build on.

Inputs are draws ``[..., chains, draws]`` of scalars (the leading axes: agents, say); every
statistic is computed per leading index and returned with shape ``[...]`` (a float for
``[chains, draws]``). Every statistic is computed on split chains (each chain's first and last
``draws // 2`` draws); ranks are pooled over the split chains (so an odd chain's middle draw is
left out, as ArviZ does).

* :func:`rhat`: rank-normalised split R-hat, the max of the bulk (rank-normalised draws) and the
  tail (rank-normalised draws folded about the median) split R-hat;
* :func:`ess_bulk`: ESS of the rank-normalised draws;
* :func:`ess_quantile`: ESS of the indicator ``draws <= q_p`` (``q_p`` the pooled p-quantile):
  how well the chains pin down the quantile a rule consumes;
* :func:`ess_tail`: the smaller of the 5% and 95% quantile ESS.

The thresholds :data:`RHAT_LIMIT` and :data:`ESS_MINIMUM` are the paper's, stated for these
statistics; :func:`diagnose` computes all of them and :meth:`Diagnostics.problems` checks them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.special
import scipy.stats

from jaxagg.errors import ShapeError, ValidationError

RHAT_LIMIT = 1.01
ESS_MINIMUM = 400
TAIL_LEVELS = (0.05, 0.95)
QUANTILE_LEVELS = (0.8, 0.9)
"""Quantile levels whose ESS :func:`diagnose` checks by default (the upper quantiles the quantile
rules consume); the tails 5% / 95% are always checked through :func:`ess_tail`."""


# ------------------------------------------------------------------ shapes and helpers
def _draws(x: np.ndarray) -> np.ndarray:
    """``x`` as float64 ``[..., chains, draws]`` with at least 4 draws per chain."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 4:
        raise ShapeError(f"draws: expected [..., chains, draws] with at least 4 draws per chain, got shape {x.shape}")
    return x


def _scalar(result: np.ndarray) -> float | np.ndarray:
    """A 0-d result as a Python float, else the array."""
    return float(result) if np.ndim(result) == 0 else result


def _split(x: np.ndarray) -> np.ndarray:
    """``[..., m, n]`` -> ``[..., 2m, n // 2]``: each chain's first and second half (a middle
    draw of an odd-length chain is left out)."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., x.shape[-1] - half :]], axis=-2)


def _rhat_of_chains(x: np.ndarray) -> np.ndarray:
    """R-hat ``[...]`` of chains ``x [..., m, n]`` (already split): sqrt(pooled / within);
    1 for constant draws, ``inf`` for chains constant at different values."""
    n = x.shape[-1]
    within = x.var(axis=-1, ddof=1).mean(axis=-1)
    between = n * x.mean(axis=-1).var(axis=-1, ddof=1)
    pooled = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(pooled / within)
    return np.where(within > 0, ratio, np.where(between > 0, np.inf, 1.0))


def _ess_of_chains(x: np.ndarray) -> np.ndarray:
    """ESS ``[...]`` of chains ``x [..., m, n]`` (already split): ``m n / tau`` with the chains'
    autocorrelations ``rho_t`` by FFT combined across chains (BDA3 eq. 11.7), summed over Geyer's
    initial positive sequence of pairs ``rho_2k + rho_2k+1`` made monotone, plus the even lag of
    the first non-positive pair (or the last pair within lag ``n - 2``) when it is positive (Stan's and Vehtari et al.'s estimator):
    ``tau = -1 + 2 sum_{k<L} pair_k + max(rho_2L, 0)``, bounded below by ``1 / log10(m n)``.
    Constant draws give ``m n``."""
    m, n = x.shape[-2:]
    centered = x - x.mean(axis=-1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centered, size, axis=-1)
    autocov = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=-1)[..., :n] / n  # [..., m, n]
    within = (autocov[..., 0] * n / (n - 1)).mean(axis=-1)
    between = n * x.mean(axis=-1).var(axis=-1, ddof=1)
    pooled = (n - 1) / n * within + between / n  # [...]
    safe = np.where(pooled > 0, pooled, 1.0)
    rho = 1.0 - (within[..., None] - autocov.mean(axis=-2)) / safe[..., None]  # [..., n]
    rho[..., 0] = 1.0
    count = (n - 1) // 2  # pairs up to lag n - 2; when all are positive the last one plays the first non-positive
    pairs = rho[..., : 2 * count].reshape(*rho.shape[:-1], count, 2).sum(axis=-1)  # [..., count]
    length = np.minimum(np.cumprod(pairs > 0.0, axis=-1).sum(axis=-1), count - 1)  # L
    positive = np.arange(count) < length[..., None]
    monotone = np.minimum.accumulate(pairs, axis=-1)
    next_even = np.take_along_axis(np.concatenate([rho, np.zeros((*rho.shape[:-1], 1))], axis=-1),
                                   np.minimum(2 * length, n)[..., None], axis=-1)[..., 0]  # rho_2L (0 past the end)
    tau = -1.0 + 2.0 * np.where(positive, monotone, 0.0).sum(axis=-1) + np.maximum(next_even, 0.0)
    ess = m * n / np.maximum(tau, 1.0 / np.log10(max(m * n, 10)))
    return np.where(pooled > 0, ess, float(m * n))


def rank_normalize(draws: np.ndarray) -> np.ndarray:
    """``[..., chains, draws]``: normal scores of the pooled ranks, ``Phi^{-1}((r - 3/8) / (N +
    1/4))`` (Blom), ``r`` the average rank of a draw among all ``N`` draws of its leading index."""
    return _normal_scores(_draws(draws))


def _normal_scores(x: np.ndarray) -> np.ndarray:
    """:func:`rank_normalize` of float64 ``x [..., m, n]`` (unchecked)."""
    flat = x.reshape(*x.shape[:-2], -1)
    ranks = scipy.stats.rankdata(flat, axis=-1)
    N = flat.shape[-1]
    return scipy.special.ndtri((ranks - 0.375) / (N + 0.25)).reshape(x.shape)


def _fold(x: np.ndarray) -> np.ndarray:
    """``|x - median|``, the median pooled over a leading index's chains: ``[..., m, n]``."""
    return np.abs(x - np.median(x.reshape(*x.shape[:-2], -1), axis=-1)[..., None, None])


def _quantile_indicator(x: np.ndarray, prob: float) -> np.ndarray:
    """``x <= q_prob`` as 0/1 ``[..., m, n]``, ``q_prob`` the pooled quantile per leading index."""
    q = np.quantile(x.reshape(*x.shape[:-2], -1), prob, axis=-1)
    return (x <= q[..., None, None]).astype(np.float64)


def _level(prob: float, name: str = "prob") -> float:
    """A quantile level strictly inside (0, 1), else :class:`ValidationError` naming ``name``."""
    try:
        p = float(prob)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: expected a quantile level in (0, 1), got {prob!r}") from None
    if not 0.0 < p < 1.0:
        raise ValidationError(f"{name}: expected a quantile level in (0, 1), got {prob!r}")
    return p


# ------------------------------------------------------------------ the classic statistics
def split_rhat(draws: np.ndarray) -> float | np.ndarray:
    """Classic split R-hat ``[...]``: each chain halved, then sqrt(pooled variance / within)."""
    return _scalar(_rhat_of_chains(_split(_draws(draws))))


def effective_sample_size(draws: np.ndarray) -> float | np.ndarray:
    """Classic ESS ``[...]`` of the draws themselves (split chains; see :func:`_ess_of_chains`)."""
    return _scalar(_ess_of_chains(_split(_draws(draws))))


# ------------------------------------------------------------------ Vehtari et al. (2021)
def rhat(draws: np.ndarray) -> float | np.ndarray:
    """Rank-normalised split R-hat ``[...]``: max of the bulk and the folded (tail) split R-hat."""
    x = _draws(draws)
    bulk = _rhat_of_chains(_normal_scores(_split(x)))
    tail = _rhat_of_chains(_normal_scores(_fold(_split(x))))
    return _scalar(np.maximum(bulk, tail))


def ess_bulk(draws: np.ndarray) -> float | np.ndarray:
    """Bulk ESS ``[...]``: the ESS of the rank-normalised draws."""
    return _scalar(_ess_of_chains(_normal_scores(_split(_draws(draws)))))


def ess_quantile(draws: np.ndarray, prob: float) -> float | np.ndarray:
    """ESS ``[...]`` of the ``prob`` quantile: the ESS of the indicator ``draws <= q_prob``."""
    return _scalar(_ess_of_chains(_split(_quantile_indicator(_draws(draws), _level(prob)))))


def ess_tail(draws: np.ndarray) -> float | np.ndarray:
    """Tail ESS ``[...]``: the smaller of the 5% and 95% quantile ESS."""
    x = _draws(draws)
    return _scalar(np.minimum(*(np.asarray(ess_quantile(x, p)) for p in TAIL_LEVELS)))


class Diagnostics(NamedTuple):
    """Every statistic of one set of draws ``[..., chains, draws]``, each ``[...]`` (floats for
    one scalar's chains).

    Attributes:
        rhat: rank-normalised split R-hat (checked against :data:`RHAT_LIMIT`).
        ess_bulk, ess_tail: bulk and tail ESS (checked against :data:`ESS_MINIMUM`).
        ess_quantile: ``{level: ESS}`` for the checked quantile levels (checked too).
        split_rhat, ess: the classic statistics (recorded, not checked).
    """

    rhat: float | np.ndarray
    ess_bulk: float | np.ndarray
    ess_tail: float | np.ndarray
    ess_quantile: dict[float, float | np.ndarray]
    split_rhat: float | np.ndarray
    ess: float | np.ndarray

    @property
    def ess_min(self) -> float | np.ndarray:
        """The smallest checked ESS (bulk, tail, quantiles) ``[...]``."""
        return _scalar(np.minimum.reduce([np.asarray(self.ess_bulk), np.asarray(self.ess_tail),
                                          *(np.asarray(v) for v in self.ess_quantile.values())]))

    def problems(self, rhat_limit: float = RHAT_LIMIT, ess_minimum: float = ESS_MINIMUM) -> list[str]:
        """Human-readable failures of the thresholds (empty when the chains pass)."""
        out = []
        worst_rhat = float(np.max(self.rhat))
        if not worst_rhat <= rhat_limit:
            out.append(f"max rank-normalised R-hat {worst_rhat:.3f}, limit {rhat_limit}")
        for name, value in (("bulk", self.ess_bulk), ("tail", self.ess_tail),
                            *((f"{level:g}-quantile", v) for level, v in self.ess_quantile.items())):
            if float(np.min(value)) < ess_minimum:
                out.append(f"min {name} ESS {float(np.min(value)):.0f}, want {ess_minimum}")
        return out


def diagnose(draws: np.ndarray, quantiles=QUANTILE_LEVELS) -> Diagnostics:
    """:class:`Diagnostics` of ``draws [..., chains, draws]``, with the ESS of each level in
    ``quantiles`` (levels in (0, 1))."""
    x = _draws(draws)
    levels = tuple(_level(p, "quantiles") for p in np.atleast_1d(np.asarray(quantiles, dtype=object)).tolist())
    return Diagnostics(rhat=rhat(x), ess_bulk=ess_bulk(x), ess_tail=ess_tail(x),
                       ess_quantile={p: ess_quantile(x, p) for p in levels},
                       split_rhat=split_rhat(x), ess=effective_sample_size(x))
