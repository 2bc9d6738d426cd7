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


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.5, 0.9])
def test_enumerating_the_approval_sets_agrees_with_the_milps_and_brute_force(seed, q):
    m = ja.envs.garnet(4, 3, 4, agents=4, seed=seed)
    sample = ja.sample(m, 400, seed=seed)
    by_milp = ja.rules.get("approval")(m, sample, q=q, method="milp")
    enumerated = ja.rules.get("approval")(m, sample, q=q, method="enumerate")
    assert by_milp.info["method"] == "milp" and enumerated.info["method"] == "enumerate"
    assert enumerated.info["count"] == by_milp.info["count"] == best_count_by_enumeration(m, np.asarray(sample.quantile(q)))
    assert len(enumerated.info["approvers"]) == enumerated.info["count"]
    # the same completion optimum (the sets may differ on ties, the value may not)
    assert enumerated.normalized.sum() == pytest.approx(by_milp.normalized.sum(), abs=1e-7)
    assert 1 <= enumerated.info["lps"] <= 2 ** m.num_agents


def test_an_enumerated_set_lp_out_of_time_is_a_timeout_not_an_infeasible_set():
    m = ja.envs.garnet(4, 3, 4, agents=4, seed=0)
    sample = ja.sample(m, 400, seed=0)
    with pytest.raises(ja.errors.SolverTimeoutError, match=r"approval\(0.9\) set LP of agents \[0, 1, 2, 3\] hit the time limit"):
        ja.rules.get("approval")(m, sample, method="enumerate", time_limit=1e-9)


def test_auto_enumerates_where_the_lps_go_through_column_generation(monkeypatch):
    from jaxagg.solvers import columns

    m = ja.envs.attention_allocation(3, 3)
    sample = ja.sample(m, 500, seed=1)
    assert ja.rules.get("approval")(m, sample).info["method"] == "milp"  # 108 pairs: HiGHS
    monkeypatch.setattr(columns, "MIN_DIM", 10)
    outcome = ja.rules.get("approval")(m, sample)
    assert outcome.info["method"] == "enumerate"
    assert all(result.highs_status == "column-generation" for result in outcome.solves[: outcome.info["lps"]])
    reference = ja.rules.get("approval")(m, sample, method="milp")
    assert outcome.info["count"] == reference.info["count"]
    assert outcome.normalized.sum() == pytest.approx(reference.normalized.sum(), abs=1e-6)
    assert ja.rules.get("approval")(m, sample, start=reference).info["method"] == "milp"  # a MIP start asks for the MILPs


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
    with pytest.raises(ValidationError, match="method: expected one of"):
        ja.rules.get("approval")(m, sample, method="branch-and-price")
