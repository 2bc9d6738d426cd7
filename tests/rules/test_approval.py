"""approval(q) against enumeration of every approval set by LP on tiny instances."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.solvers.highs import INF, solve


def best_count_by_enumeration(momdp, thresholds):
    """The largest |C| such that {d in O : J_i(d) >= tau_i for i in C} is non-empty."""
    polytope = ja.occupancy_polytope(momdp)
    n = momdp.num_agents
    for size in range(n, -1, -1):
        for coalition in itertools.combinations(range(n), size):
            rows = sp.vstack([polytope.E, sp.csr_matrix(momdp.reward_matrix[list(coalition)])]) if coalition else polytope.E
            lower = np.concatenate([polytope.b, thresholds[list(coalition)]])
            upper = np.concatenate([polytope.b, np.full(len(coalition), INF)])
            if solve(np.zeros(polytope.dim), rows, lower, upper, raise_on_failure=False).ok:
                return size
    return 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.5, 0.9])
def test_count_matches_enumeration_on_tiny_garnets(seed, q):
    m = ja.envs.garnet(4, 3, 4, agents=4, seed=seed)
    sample = ja.sample(m, 400, seed=seed)
    outcome = ja.rules.get("approval")(m, sample, q=q)
    thresholds = np.asarray(sample.quantile(q))
    assert outcome.info["count"] == best_count_by_enumeration(m, thresholds)
    assert len(outcome.info["approvers"]) == outcome.info["count"]
    approving = outcome.returns >= thresholds
    assert approving.sum() == outcome.info["count"]
    assert (sample.rank(outcome.returns)[approving] >= q).all()
    assert ja.occupancy_polytope(m).residual(outcome.occupancy) <= 1e-8


def test_completion_is_the_best_among_all_maximal_sets():
    # Agents 0 and 1 want opposite arms, agent 2 is happy with either: any maximal approval set
    # has two agents; utilitarian completion must still pick the better of the two sets.
    rewards = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.2], [0.5, 0.6, 0.0]])
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 2000, seed=0, precision="float64")
    outcome = ja.rules.get("approval")(m, sample, q=0.9, completion="utilitarian")
    thresholds = np.asarray(sample.quantile(0.9))
    grid = np.array([[a, b, 1 - a - b] for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201) if a + b <= 1 + 1e-12])
    returns = grid @ rewards.T
    counts = (returns >= thresholds).sum(axis=1)
    best_sum = returns[counts == counts.max()].sum(axis=1).max()
    assert outcome.info["count"] == counts.max()
    assert outcome.returns.sum() >= best_sum - 1e-6


def test_bad_arguments(attention_2_3, attention_2_3_sample):
    m, sample = attention_2_3, attention_2_3_sample
    with pytest.raises(ValidationError, match=r"q: expected an approval level in \[0, 1\), got 1.5"):
        ja.rules.get("approval")(m, sample, q=1.5)
    with pytest.raises(ValidationError, match="completion: expected one of"):
        ja.rules.get("approval")(m, sample, completion="leximin")
