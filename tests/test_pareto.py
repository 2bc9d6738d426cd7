"""Tests of exact Pareto fronts (:mod:`jaxagg.pareto`).

Oracles: on tiny instances every deterministic policy is enumerated and evaluated exactly
(``occupancy_of_policy``); the front's vertices are the vertices of the upper-right hull of those
returns (an independent monotone-chain hull for two agents, weighted maxima for three), and no
sampled stochastic policy lies beyond the front.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ShapeError, ValidationError

TOL = 1e-7


def tiny(states: int, actions: int, agents: int, seed: int, criterion: str = "discounted") -> ja.MOMDP:
    gamma = 0.9 if criterion == "discounted" else None
    return ja.envs.garnet(states, actions, 2, agents, seed, criterion=criterion, gamma=gamma)


def deterministic_returns(momdp: ja.MOMDP) -> np.ndarray:
    """``[A^S, n]`` returns of every deterministic policy."""
    S, A = momdp.num_states, momdp.num_actions
    out = []
    for actions in itertools.product(range(A), repeat=S):
        pi = np.zeros((S, A))
        pi[np.arange(S), actions] = 1.0
        out.append(momdp.returns(ja.occupancy_of_policy(momdp, pi)))
    return np.stack(out)


def upper_right_hull_2d(points: np.ndarray, tol: float) -> np.ndarray:
    """Vertices of ``conv(points) - R^2_+``: the Pareto-optimal points on the upper hull,
    by Andrew's monotone chain, sorted by the first coordinate, largest first."""
    order = np.lexsort((-points[:, 1], -points[:, 0]))  # x descending, then y descending
    chain: list[np.ndarray] = []
    for p in points[order]:
        if chain and p[1] <= chain[-1][1] + tol:  # dominated by (or equal to) the last kept point
            continue
        while len(chain) >= 2:
            a, b = chain[-2], chain[-1]
            # b is not a vertex unless a -> b -> p turns left (counterclockwise): b above the segment a -> p
            cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
            if cross <= tol:
                chain.pop()
            else:
                break
        chain.append(p)
    return np.stack(chain)


# ----------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("seed", range(4))
def test_two_agent_front_is_the_hull_of_deterministic_policies(seed):
    momdp = tiny(4, 3, 2, seed)
    front = ja.pareto_front(momdp)
    expected = upper_right_hull_2d(deterministic_returns(momdp), 1e-12)
    assert front.returns.shape == expected.shape, (front.returns, expected)
    np.testing.assert_allclose(front.returns, expected, atol=1e-9)


@pytest.mark.parametrize("agents, seed, criterion", [(2, 0, "average"), pytest.param(3, 1, "discounted", marks=pytest.mark.slow),
                                                     pytest.param(3, 2, "average", marks=pytest.mark.slow),
                                                     pytest.param(2, 5, "discounted", marks=pytest.mark.slow)])
def test_vertices_are_attained_and_nothing_lies_beyond(agents, seed, criterion):
    momdp = tiny(5, 3, agents, seed, criterion)
    front = ja.pareto_front(momdp)
    polytope = ja.occupancy_polytope(momdp)
    for d, vertex, pi in zip(front.occupancies, front.returns, front.policies(momdp)):
        assert polytope.contains(d, tol=1e-9)
        np.testing.assert_allclose(momdp.returns(d), vertex, atol=1e-12)
        np.testing.assert_allclose(momdp.returns(ja.occupancy_of_policy(momdp, pi)), vertex, atol=1e-8)
    span = ja.return_bounds(momdp).span
    sample = ja.sample(momdp, 2000, seed=0, precision="float64")
    assert front.excess(sample.returns).max() <= TOL
    # No sampled policy strictly dominates a vertex.
    for vertex in front.returns:
        assert not ((sample.returns >= vertex + TOL * span).all(axis=1)).any()
    # The facets touch the vertices: every facet's level is attained.
    u = (front.returns - front.lower) / front.span
    np.testing.assert_allclose((u @ front.weights.T).max(axis=0), front.levels, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_three_agent_front_supports_the_same_weighted_maxima(seed):
    momdp = tiny(4, 3, 3, seed)
    front = ja.pareto_front(momdp)
    points = deterministic_returns(momdp)
    # Every vertex is some deterministic policy's returns.
    assert all(np.abs(points - v).max(axis=1).min() <= 1e-9 for v in front.returns)
    weights = np.random.default_rng(seed).dirichlet(np.ones(3), 500)
    np.testing.assert_allclose((front.returns @ weights.T).max(axis=0), (points @ weights.T).max(axis=0), atol=1e-9)
    # And every vertex is needed: it is the unique maximiser of some positive weights.
    assert len(front) == len(np.unique(np.round(front.returns, 9), axis=0))


def test_single_policy_front():
    # Both agents want the same arm: the front is one point.
    momdp = ja.envs.bandit(np.array([[1.0, 0.0, 0.2], [2.0, 0.0, 0.1]]))
    front = ja.pareto_front(momdp)
    np.testing.assert_allclose(front.returns, [[1.0, 2.0]], atol=1e-12)


def test_bandit_front_skips_the_dominated_mixture(bandit):
    # Arm 2 gives both agents what the even mix of arms 0 and 1 gives: on the front, not a vertex.
    front = ja.pareto_front(bandit)
    np.testing.assert_allclose(front.returns, [[1.0, 0.0], [0.0, 1.0]], atol=1e-12)
    check = ja.check_front(bandit, [[1.0, 0.0], [0.5, 0.5], [0.4, 0.4], [1.0, 1.0]], convention="normalized")
    assert check.status == ("vertex", "on front", "dominated", "beyond")
    assert not check.matches


# ----------------------------------------------------------------------------- check_front
def test_check_front_against_itself_and_perturbed():
    momdp = tiny(5, 3, 2, 3)
    front = ja.pareto_front(momdp)
    episodic = front.returns / (1 - momdp.gamma)
    assert ja.check_front(momdp, episodic).matches
    shrunk = ja.check_front(momdp, episodic - 0.01 * np.abs(episodic).max())
    assert set(shrunk.status) == {"dominated"} and len(shrunk.missing) == len(front)
    beyond = ja.check_front(momdp, episodic + 0.01 * np.abs(episodic).max())
    assert set(beyond.status) == {"beyond"}
    assert "differs" in beyond.report()


def test_check_front_for_more_agents_classifies_and_searches():
    momdp = tiny(4, 2, 4, 0)
    points = deterministic_returns(momdp)
    weights = np.random.default_rng(0).dirichlet(np.ones(4), 64)
    best = np.unique(points[(points @ weights.T).argmax(axis=0)], axis=0)
    check = ja.check_front(momdp, best, convention="normalized", weights=64)
    assert check.front is None and not check.exhaustive
    assert set(check.status) == {"on front"}
    partial = ja.check_front(momdp, best[:1], convention="normalized", weights=64)
    if len(best) > 1:
        assert not partial.matches and len(partial.missing) >= 1


# ----------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValidationError, match="2 to 3 agents"):
        ja.pareto_front(tiny(3, 2, 4, 0))
    with pytest.raises(ValidationError, match="2 to 3 agents"):
        ja.pareto_front(ja.envs.garnet(3, 2, 2, 1, 0))
    with pytest.raises(ValidationError, match="momdp"):
        ja.pareto_front("not an instance")
    with pytest.raises(ValidationError, match="tol"):
        ja.pareto_front(tiny(3, 2, 2, 0), tol=0.0)
    momdp = tiny(3, 2, 2, 0)
    with pytest.raises(ShapeError, match="reference"):
        ja.check_front(momdp, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValidationError, match="convention"):
        ja.check_front(ja.envs.garnet(3, 2, 2, 2, 0), [[0.5, 0.5]])
