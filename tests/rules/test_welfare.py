"""Welfare rules against oracles: brute force on tiny instances, grids over a simplex, LP
certificates, and the reference implementation's leximin behaviour on attention allocation."""

import itertools

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.rules.base import agent_scores
from jaxagg.rules.welfare import NASH_GAP_TOL
from jaxagg.solvers.program import solve_linear

WELFARE = ["utilitarian", "utilitarian-normalized", "egalitarian", "egalitarian-normalized",
           "leximin", "leximin-normalized", "nash"]


@pytest.fixture(scope="module")
def attention():
    return ja.envs.attention_allocation(5, 3, "base", seed=0)


@pytest.fixture(scope="module")
def attention_outcomes(attention):
    return {name: ja.rules.get(name)(attention) for name in WELFARE}


def simplex_grid(m, steps):
    """All points of the m-simplex with coordinates in multiples of 1/steps, ``[k, m]``."""
    points = [c for c in itertools.product(range(steps + 1), repeat=m - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in points], dtype=float) / steps


def deterministic_returns(momdp):
    """Returns ``[A**S, n]`` of every deterministic policy (discounted, exact)."""
    S, A = momdp.num_states, momdp.num_actions
    out = []
    for actions in itertools.product(range(A), repeat=S):
        pi = np.eye(A)[list(actions)]
        out.append(momdp.returns(ja.occupancy_of_policy(momdp, pi)))
    return np.array(out)


def test_registry_lists_every_welfare_rule():
    assert set(WELFARE + ["nash-raw"]) <= set(ja.rules.names("welfare"))
    rule = ja.rules.get("leximin-normalized")
    assert rule.family == "welfare" and not rule.needs_sample and rule.defaults == {"normalized": True}
    with pytest.raises(ValidationError, match="rule: unknown rule 'borda-x'; known rules: utilitarian"):
        ja.rules.get("borda-x")
    with pytest.raises(ValidationError, match="momdp: expected a jaxagg.MOMDP, got ndarray"):
        rule(np.zeros(3))


def test_every_outcome_lies_in_the_polytope_and_is_consistent(attention, attention_outcomes):
    polytope = ja.occupancy_polytope(attention)
    bounds = ja.return_bounds(attention)
    for name, o in attention_outcomes.items():
        assert o.rule == name
        assert polytope.residual(o.occupancy) <= 1e-8, name
        np.testing.assert_allclose(o.returns, attention.returns(o.occupancy))
        np.testing.assert_allclose(o.normalized, (o.returns - bounds.lower) / (bounds.upper - bounds.lower), atol=1e-12)
        np.testing.assert_allclose(o.policy.sum(axis=1), 1.0)
        assert o.stats.solves >= 1 and o.stats.wall_time > 0


def test_leximin_equalises_raw_returns_on_attention(attention_outcomes):
    # The reference implementation's behaviour on the base instance.
    returns = attention_outcomes["leximin"].returns
    np.testing.assert_allclose(returns, returns.mean(), rtol=1e-6)


def test_utilitarian_sum_beats_every_other_rule(attention_outcomes):
    best = attention_outcomes["utilitarian"].returns.sum()
    for name, o in attention_outcomes.items():
        assert o.returns.sum() <= best + 1e-7 * abs(best), name
    best_u = attention_outcomes["utilitarian-normalized"].normalized.sum()
    for name, o in attention_outcomes.items():
        assert o.normalized.sum() <= best_u + 1e-7, name


def test_egalitarian_level_is_the_leximin_minimum(attention_outcomes):
    for suffix, field in (("", "returns"), ("-normalized", "normalized")):
        egal = attention_outcomes["egalitarian" + suffix]
        lex = attention_outcomes["leximin" + suffix]
        level = getattr(egal, field).min()
        assert egal.info["level"] == pytest.approx(level, rel=1e-7, abs=1e-9)
        assert getattr(lex, field).min() == pytest.approx(level, rel=1e-7, abs=1e-9)
        for o in attention_outcomes.values():
            assert getattr(o, field).min() <= level + 1e-7 * max(1.0, abs(level))


@pytest.mark.parametrize("seed", range(4))
def test_welfare_optima_match_brute_force_on_tiny_garnets(seed):
    m = ja.envs.garnet(4, 3, 2, agents=3, seed=seed, criterion="discounted", gamma=0.8)
    J = deterministic_returns(m)  # utilitarian's optimum is attained at a deterministic policy
    assert ja.rules.utilitarian(m).returns.sum() == pytest.approx(J.sum(axis=1).max(), abs=1e-8)
    # egalitarian mixes policies, so deterministic ones only bound it from below
    assert ja.rules.egalitarian(m).info["level"] >= J.min(axis=1).max() - 1e-9


def lexicographically_at_least(a, b, tol):
    """sorted(a) >= sorted(b) lexicographically, treating differences below tol as ties."""
    for x, y in zip(np.sort(a), np.sort(b)):
        if x > y + tol:
            return True
        if x < y - tol:
            return False
    return True


BANDIT = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.8], [0.0, 0.0, 1.0], [0.9, 0.1, 0.0]])  # n = 4, m = 3


def test_leximin_beats_every_grid_point_lexicographically():
    m = ja.envs.bandit(BANDIT)
    lex = ja.rules.leximin(m).returns
    grid = simplex_grid(3, 60) @ BANDIT.T  # returns [k, n] of the grid policies
    assert all(lexicographically_at_least(lex, g, 1e-9) for g in grid)
    # a non-trivial case: after fixing the bottleneck agents leximin raises another one
    assert np.sort(lex)[-1] > np.sort(lex)[0] + 1e-3


def test_nash_matches_grid_search_and_its_optimality_certificate():
    m = ja.envs.bandit(BANDIT)
    outcome = ja.rules.nash(m)
    u_grid = ja.return_bounds(m).normalize(simplex_grid(3, 200) @ BANDIT.T)
    best_grid = np.log(np.clip(u_grid, 1e-300, None)).sum(axis=1).max()
    assert outcome.info["log_welfare"] >= best_grid - 2 * NASH_GAP_TOL
    assert outcome.info["log_welfare"] <= best_grid + 1e-2  # the grid is fine enough to get close
    # First-order optimality of the concave objective: d* maximises sum_i u_i(d) / u_i(d*) over O,
    # whose value at d* is n.
    W, c, _ = agent_scores(m, normalized=True)
    weights = 1.0 / outcome.normalized
    best = solve_linear(ja.occupancy_polytope(m), weights @ W, sense="max")
    assert weights @ (W @ best + c) == pytest.approx(m.num_agents, rel=1e-3)


def test_nash_certificate_on_attention(attention, attention_outcomes):
    outcome = attention_outcomes["nash"]
    W, c, _ = agent_scores(attention, normalized=True)
    weights = 1.0 / outcome.normalized
    best = solve_linear(ja.occupancy_polytope(attention), weights @ W, sense="max")
    assert weights @ (W @ best + c) == pytest.approx(attention.num_agents, rel=1e-3)


def test_raw_nash_needs_positive_returns(attention):
    with pytest.raises(ValidationError, match="'nash-raw' needs a policy where every agent's raw return is positive"):
        ja.rules.get("nash-raw")(attention)
    m = ja.envs.bandit(BANDIT + 1.0)
    raw = ja.rules.get("nash-raw")(m)
    grid = simplex_grid(3, 200) @ (BANDIT + 1.0).T
    assert np.log(raw.returns).sum() >= np.log(grid).sum(axis=1).max() - 1e-9


@pytest.mark.parametrize("name", ["utilitarian-normalized", "egalitarian-normalized", "leximin-normalized", "nash"])
def test_normalised_rules_ignore_positive_affine_reward_changes(name):
    m = ja.envs.garnet(6, 3, 3, agents=3, seed=1, criterion="discounted", gamma=0.9)
    R = m.R.copy()
    R[0] = 7.0 * R[0] + 3.0
    R[2] = 0.01 * R[2] - 5.0
    scaled = m.with_rewards(R)
    np.testing.assert_allclose(ja.rules.get(name)(scaled).normalized, ja.rules.get(name)(m).normalized, atol=1e-6)


def test_raw_utilitarian_is_sensitive_to_reward_scale():
    m = ja.envs.bandit(np.array([[1.0, 0.0], [0.0, 1.0]]) + 0.0)
    R = m.R.copy()
    R[1] *= 3.0
    assert ja.rules.utilitarian(m.with_rewards(R)).occupancy.argmax() == 1
    R[0] *= 5.0
    assert ja.rules.utilitarian(m.with_rewards(R)).occupancy.argmax() == 0


def test_two_state_chain_closed_form(chain_average):
    m = chain_average
    bounds = ja.return_bounds(m)
    np.testing.assert_allclose(bounds.upper, [0.8, 0.8], atol=1e-9)
    np.testing.assert_allclose(bounds.lower, [0.2, 0.2], atol=1e-9)
    np.testing.assert_allclose(ja.rules.egalitarian(m).returns, [0.5, 0.5], atol=1e-9)


def test_interior_point_path_for_large_polytopes_gives_the_same_outcomes(monkeypatch):
    m = ja.envs.attention_allocation(3, 3, seed=3)
    simplex = {name: ja.rules.get(name)(m).returns for name in ("utilitarian", "egalitarian", "leximin")}
    monkeypatch.setattr(ja.solvers.program, "IPM_MIN_DIM", 0)  # every one-shot LP now uses ipm
    fresh = ja.envs.attention_allocation(3, 3, seed=3)  # new instance: nothing cached
    for name, returns in simplex.items():
        np.testing.assert_allclose(ja.rules.get(name)(fresh).returns, returns, rtol=1e-7, atol=1e-9)
