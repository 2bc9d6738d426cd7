"""The epsilon-proportional veto core (SPEC §3) by sequential veto on a sample (the paper's
Algorithm 1 on the empirical measure).

Agents take turns in a fixed or seeded order; each removes the ``floor(N (1 - epsilon) / n)``
remaining samples it likes least, and its threshold ``t_i`` is the highest return it removed.
Every surviving sample has ``J_i >= t_i`` for all i, so ``{d in O : J_i(d) >= t_i}`` is not
empty; the rule returns the completion optimum there. With a Pareto-optimal completion
(utilitarian) no coalition can block it on the sample (checked by
:func:`jaxagg.metrics.blocking_coalitions`).
"""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.rules.completion import check_completion, complete_above
from jaxagg.rules.outcome import Outcome, relabelled
from jaxagg.rules.registry import register
from jaxagg.samples import ReturnSample
from jaxagg.validation import probability
from jaxagg.validation import seed as check_seed


def sequential_veto(returns: np.ndarray, epsilon: float, order: np.ndarray) -> np.ndarray:
    """Thresholds ``[n]`` of sequential veto on sample returns ``[N, n]`` in agent ``order``."""
    N, n = returns.shape
    per_agent = int(np.floor(N * (1.0 - epsilon) / n))
    remaining = np.arange(N)
    thresholds = np.full(n, -np.inf)
    for agent in order:
        if per_agent == 0:
            break
        values = returns[remaining, agent]
        worst = np.argpartition(values, per_agent - 1)[:per_agent]
        thresholds[agent] = values[worst].max()
        remaining = np.delete(remaining, worst)
    return thresholds


def veto(
    momdp: MOMDP,
    sample: ReturnSample,
    *,
    epsilon: float = 0.01,
    order: list[int] | str = "fixed",
    seed: int = 0,
    completion: str = "utilitarian-normalized",
) -> Outcome:
    """A policy in the epsilon-proportional veto core of the sample's measure.

    Args:
        epsilon: in (0, 1); each agent vetoes ``floor(N (1 - epsilon) / n)`` samples.
        order: ``"fixed"`` (0, 1, ..., n-1), ``"seeded"`` (a permutation from ``seed``), or an
            explicit permutation of the agents.
        completion: the objective among policies above every threshold (default normalised
            utilitarian, which is Pareto optimal there).

    ``info``: ``thresholds`` ``[n]``, ``order``, ``epsilon``.
    """
    epsilon = probability("epsilon", epsilon)
    check_completion(completion)
    n = momdp.num_agents
    if isinstance(order, str):
        if order not in ("fixed", "seeded"):
            raise ValidationError(f"order: expected 'fixed', 'seeded' or a permutation of the agents, got {order!r}")
        permutation = np.arange(n) if order == "fixed" else np.random.default_rng(check_seed("seed", seed)).permutation(n)
    else:
        permutation = np.asarray(order)
        if permutation.ndim != 1 or permutation.dtype.kind not in "iu" or sorted(permutation.tolist()) != list(range(n)):
            raise ValidationError(f"order: expected a permutation of 0..{n - 1}, got {list(order)!r}")
    thresholds = sequential_veto(sample.returns, epsilon, permutation)
    outcome = complete_above(momdp, thresholds, completion)
    info = {"thresholds": [float(t) for t in thresholds], "order": permutation.tolist(), "epsilon": epsilon,
            "completion": completion}
    return relabelled(outcome, info)


register("veto", veto, family="veto", needs_sample=True, invariant=True,
         description="epsilon-proportional veto core by sequential veto on the sample, then a completion LP")
