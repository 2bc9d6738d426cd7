"""Sequential veto and the proportional-veto-core certificate."""

import itertools

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.rules.veto import sequential_veto


def blocking_by_enumeration(returns, sample, epsilon):
    n = sample.num_agents
    found = []
    for size in range(1, n + 1):
        for coalition in itertools.combinations(range(n), size):
            prefer = (sample.returns[:, list(coalition)] > returns[list(coalition)]).all(axis=1)
            if prefer.mean() >= 1 - size / n + epsilon - 1e-12:
                found.append(list(coalition))
    return sorted(found)


@pytest.mark.parametrize("seed", range(4))
def test_certificate_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    sample = ja.ReturnSample(rng.normal(size=(500, 4)), measure="policy")
    for _ in range(5):
        returns = rng.normal(size=4) - 0.5
        assert sorted(ja.metrics.blocking_coalitions(returns, sample, 0.05)) == blocking_by_enumeration(returns, sample, 0.05)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("order", ["fixed", "seeded"])
def test_veto_outcome_is_in_the_core_of_its_own_sample(seed, order):
    m = ja.envs.garnet(6, 3, 6, agents=4, seed=seed)
    sample = ja.sample(m, 800, seed=seed)
    for epsilon in (0.01, 0.1):
        outcome = ja.rules.get("veto")(m, sample, epsilon=epsilon, order=order, seed=seed)
        assert ja.metrics.blocking_coalitions(outcome.returns, sample, epsilon) == []
        assert (outcome.returns >= np.array(outcome.info["thresholds"])).all()
        assert ja.occupancy_polytope(m).residual(outcome.occupancy) <= 1e-8


@pytest.mark.slow
def test_attention_veto_in_core_while_utilitarian_is_blocked():
    m = ja.envs.attention_allocation(5, 3, seed=0)  # utilitarian leaves agents 0 and 2 near 0
    sample = ja.sample(m, 2000, seed=0)
    assert ja.metrics.blocking_coalitions(ja.rules.get("veto")(m, sample).returns, sample, 0.01) == []
    assert ja.metrics.blocking_coalitions(ja.rules.get("utilitarian")(m).returns, sample, 0.01) != []


def test_sequential_veto_removes_the_stated_number_and_survivors_clear_thresholds():
    rng = np.random.default_rng(0)
    returns = rng.normal(size=(103, 3))
    thresholds = sequential_veto(returns, 0.1, np.array([2, 0, 1]))
    per_agent = int(np.floor(103 * 0.9 / 3))
    survivors = (returns > thresholds).all(axis=1)
    assert survivors.sum() >= 103 - 3 * per_agent
    # agent 2 vetoes first: its threshold is its per_agent-th smallest return overall
    assert thresholds[2] == np.sort(returns[:, 2])[per_agent - 1]


def test_bad_arguments(attention_2_3, attention_2_3_sample):
    m, sample = attention_2_3, attention_2_3_sample
    with pytest.raises(ValidationError, match=r"epsilon: expected a number in \(0, 1\) \(exclusive\), got 0"):
        ja.rules.get("veto")(m, sample, epsilon=0)
    with pytest.raises(ValidationError, match="order: expected a permutation of 0..1, got \\[0, 0\\]"):
        ja.rules.get("veto")(m, sample, order=[0, 0])
    with pytest.raises(ValidationError, match="order: expected 'fixed', 'seeded'"):
        ja.rules.get("veto")(m, sample, order="random")
