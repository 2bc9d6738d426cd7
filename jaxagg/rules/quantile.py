"""Quantile fairness (SPEC §3): the max-quantile rule.

A policy d is q-quantile fair if every agent ranks it at least q: ``F_i(J_i(d)) >= q``. With the
empirical CDFs of a ReturnSample, ``min_i F_i(J_i(d))`` only takes the values ``(k+1)/N``, and
it reaches ``(k+1)/N`` exactly when ``J_i(d) >= x_i[k]`` for every agent (``x_i`` agent i's sorted
sample, 0-based; ``k = N`` stands for ``max_O J_i``, level 1). Feasibility of those thresholds is
monotone in k, so bisection over k finds

    q* = max over d in O of min_i F_i(J_i(d))

exactly (resolution 1/N), in at most about log2(N) warm-started LPs
(:func:`jaxagg.rules.base.highest_level`: each probe maximises the smallest margin above the
thresholds, which is never infeasible, and a probe that holds lifts the lower end to the level its
maximiser reaches). The policy is then chosen among the
q*-fair ones by an explicit completion objective.
"""

from __future__ import annotations

import numpy as np

from jaxagg.errors import InfeasibleError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import return_bounds
from jaxagg.rules.base import LevelProbe, highest_level
from jaxagg.rules.completion import check_completion, complete_above
from jaxagg.rules.outcome import Outcome, relabelled
from jaxagg.rules.registry import register
from jaxagg.samples import ReturnSample
from jaxagg.validation import probability


def level_thresholds(sample: ReturnSample, k: int) -> np.ndarray:
    """Thresholds ``[n]`` that guarantee level ``(k+1)/N`` (``k = N``: the exact maxima)."""
    return np.asarray(sample.quantile_of_index(k), dtype=np.float64)


def level_of_index(k: int, num_samples: int) -> float:
    return 1.0 if k >= num_samples else (k + 1) / num_samples


def max_quantile(momdp: MOMDP, sample: ReturnSample, *, completion: str = "utilitarian-normalized", delta: float = 0.05) -> Outcome:
    """The max-quantile rule: the highest empirical quantile-fairness level ``q*`` any policy
    reaches, then the ``completion`` optimum among the policies that reach it.

    Args:
        sample: a ReturnSample of this instance (its ``max_returns`` are the exact ``max_O J``).
        completion: ``"utilitarian-normalized"`` (default), ``"utilitarian"``, ``"egalitarian"``,
            ``"egalitarian-normalized"``, ``"leximin"`` or ``"leximin-normalized"``.
        delta: confidence for the reported DKW band (``q*`` holds for the true measure within
            ``± band`` with probability ``1 - delta``).

    ``info``: ``q_star``, ``index`` (k*), ``thresholds`` ``[n]``, ``dkw_band``, ``bisection_lps``.
    """
    check_completion(completion)
    delta = probability("delta", delta)
    N = sample.num_samples
    bisection: list = []
    live = np.flatnonzero(~return_bounds(momdp).degenerate)

    def reached(returns: np.ndarray) -> int:
        """The highest k whose thresholds ``returns [n]`` meet (k = N: every live agent at its maximum)."""
        sorted_returns, top = sample.sorted_returns, sample.max_returns
        return min(N if returns[i] >= top[i] else int(np.searchsorted(sorted_returns[:, i], returns[i], side="right")) - 1
                   for i in live)

    # low = -1 (no floor) holds; k = N (every agent at its maximum) is the highest level
    low = highest_level(LevelProbe(momdp, "max-quantile level LP"), lambda k: level_thresholds(sample, k), reached,
                        -1, N, bisection)
    if low < 0:
        raise InfeasibleError(
            "max-quantile: no policy reaches even the smallest sampled return of every agent, so the sample's "
            "returns lie outside O (a float32 sample rounded past an exact bound?)", bisection[-1])
    thresholds = level_thresholds(sample, low)
    outcome = complete_above(momdp, thresholds, completion)
    info = dict(q_star=level_of_index(low, N), index=int(low), thresholds=thresholds.tolist(), completion=completion,
                dkw_band=sample.dkw_band(delta), bisection_lps=len(bisection), measure=sample.measure, num_samples=N)
    return relabelled(outcome, info, before=bisection)


register("max-quantile", max_quantile, family="quantile", needs_sample=True, invariant=True,
         description="highest level q such that some policy is in every agent's top 1-q, exact at 1/N (LP bisection)")
