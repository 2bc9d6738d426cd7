"""Average reward beyond one maximal end component (issue 11, items 2 and 3).

* O is the set of long-run occupancies reached from ``mu``: the multichain dual LP (transient-flow
  auxiliary columns) when the MDP has several maximal end components, the flow polytope
  (unchanged) when it has one;
* every Outcome's returns are achieved from ``mu`` by its stationary policy or by its policy
  mixture, evaluated exactly;
* oracles: brute force over every deterministic stationary policy of tiny random multichain
  MDPs, with long-run returns from ``mu`` by Cesàro doubling (independent of jaxagg's maps).
"""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import jaxagg as ja
from jaxagg.errors import DegenerateAgentWarning, PolicyError, ShapeError, ValidationError
from jaxagg.rules.outcome import make_outcome, mixture_returns
from jaxagg.solvers.mixture import DECOMPOSITION_TOL, decompose
from jaxagg.solvers.polytope import (
    _ChainClasses,
    build_polytope,
    deterministic_policy_of_vertex,
    end_component_count,
    gain_and_bias,
    gain_optimal_policy,
    is_unichain_for_full_support,
    occupancy_of_policy,
    policy_of_vertex,
    sizes_of,
    transition_matrix,
)
from jaxagg.solvers.program import OccupancyProgram, solve_linear

RETURN_RTOL = 1e-8
"""Exact evaluation of an Outcome's policy or mixture reproduces its returns to this, relative to the range."""
ORACLE_TOL = 1e-7
"""LP optima against brute force over deterministic policies (absolute; rewards in [0, 1])."""


# ------------------------------------------------------------------ instances
def two_classes(mu=(1, 0, 0, 0)):
    """Issue 11's case 2: closed classes {0, 1} and {2, 3} that cannot reach one another."""
    P = np.zeros((4, 2, 4))
    for s in range(4):
        b = 0 if s < 2 else 2
        P[s, 0, s] = 1
        P[s, 1, b + 1 - (s - b)] = 1
    R = np.zeros((2, 4, 2))
    R[0, 1, :] = 1
    R[0, 0, 0] = 0.5
    R[1, 2, :] = 1
    R[1, 3, 1] = 0.3
    return ja.MOMDP(P, R, mu=list(mu), criterion="average")


def communicating():
    """Issue 11's case 3: a communicating MDP (one end component) with two recurrent classes
    {1} (agent 0 earns 1) and {2} (agent 1 earns 3) that policies can choose between."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = P[1, 0, 1] = P[1, 1, 0] = P[2, 0, 2] = P[2, 1, 0] = 1
    R = np.zeros((2, 3, 2))
    R[0, 1, 0] = 1
    R[1, 2, 0] = 3
    return ja.MOMDP(P, R, criterion="average")


def random_multichain(seed: int) -> ja.MOMDP:
    """A tiny random MDP (S <= 4, A <= 2, branching 1 or 2, random rewards in [0, 1], a random
    mu with some zeros), redrawn until it has several maximal end components."""
    rng = np.random.default_rng(seed)
    while True:
        S, A, n = int(rng.integers(3, 5)), 2, int(rng.integers(2, 4))
        P = np.zeros((S, A, S))
        for s, a in itertools.product(range(S), range(A)):
            successors = rng.choice(S, size=int(rng.integers(1, 3)), replace=False)
            P[s, a, successors] = rng.dirichlet(np.ones(successors.size))
        mu = rng.dirichlet(np.ones(S)) * (rng.random(S) < 0.7)
        if mu.sum() == 0 or end_component_count(P) < 2:
            continue
        return ja.MOMDP(P, rng.random((n, S, A)), mu=mu / mu.sum(), criterion="average")


@pytest.mark.parametrize("seed", range(3))
def test_a_built_transition_matrix_stands_for_its_transitions(seed):
    """Callers making many exact evaluations (the mixture's pricing) build the CSR once and pass it as P."""
    m = random_multichain(seed)
    flat = transition_matrix(m.P)
    assert sizes_of(flat) == sizes_of(m.P)
    assert (transition_matrix(flat) != flat).nnz == 0
    policy = np.eye(m.num_actions)[np.arange(m.num_states) % m.num_actions]
    np.testing.assert_array_equal(occupancy_of_policy(flat, m.mu, None, policy), occupancy_of_policy(m.P, m.mu, None, policy))
    with pytest.raises(ShapeError, match=r"P: expected a transition matrix \[S\*A, S\], got shape \(7, 3\)"):
        sizes_of(sp.csr_matrix((7, 3)))


def cesaro(P_pi: np.ndarray, mu: np.ndarray, doublings: int = 50) -> np.ndarray:
    """``(1/T) sum_{t<T} mu^T P^t`` for ``T = 2**doublings`` by doubling (renormalised rows)."""
    M, power = np.eye(P_pi.shape[0]), P_pi.copy()
    for _ in range(doublings):
        M = 0.5 * (M + power @ M)
        power = power @ power
        power /= power.sum(axis=1, keepdims=True)
        M /= M.sum(axis=1, keepdims=True)
    return mu @ M


def returns_of_all_deterministic_policies(m: ja.MOMDP) -> np.ndarray:
    """``[A**S, n]``: each deterministic stationary policy's long-run returns from mu."""
    S, states = m.num_states, np.arange(m.num_states)
    rows = []
    for actions in itertools.product(range(m.num_actions), repeat=S):
        actions = np.array(actions)
        rows.append(m.R[:, states, actions] @ cesaro(m.P[states, actions], m.mu))
    return np.array(rows)


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateAgentWarning)
        return call(*args, **kwargs)


def assert_achieved(m: ja.MOMDP, outcome: ja.Outcome) -> None:
    """The outcome's policy (no mixture) or mixture reaches its returns from mu, exactly."""
    span = np.maximum(quiet(ja.return_bounds, m).span, 1e-12)
    if outcome.mixture is None:
        achieved = m.returns(ja.occupancy_of_policy(m, outcome.policy))
    else:
        weights = np.array([w for w, _ in outcome.mixture])
        np.testing.assert_allclose(mixture_returns(m, outcome.mixture), sum(w * m.returns(ja.occupancy_of_policy(m, pi))
                                                                            for w, pi in outcome.mixture), atol=1e-15)
        assert len(outcome.mixture) <= m.num_agents + 1
        assert (weights > 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-12)
        assert all(np.isin(pi, [0.0, 1.0]).all() and (pi.sum(axis=1) == 1).all() for _, pi in outcome.mixture)
        np.testing.assert_array_equal(outcome.policy, outcome.mixture[0][1])  # the highest-weight component
        achieved = sum(w * m.returns(ja.occupancy_of_policy(m, pi)) for w, pi in outcome.mixture)
    assert np.max(np.abs(achieved - outcome.returns) / span) <= RETURN_RTOL, outcome.rule


# ------------------------------------------------------------------ issue 11's examples
WELFARE = ["egalitarian", "leximin", "utilitarian", "nash"]
VOLUMETRIC = ["max-quantile", "borda", "approval", "veto"]
EXAMPLES = {"case 2": (two_classes, "hull"), "case 2, mu (3/4, 0, 1/4, 0)": (lambda: two_classes((0.75, 0, 0.25, 0)), "hull"),
            "case 3": (communicating, "policy")}


@pytest.fixture(scope="module", params=list(EXAMPLES))
def example(request):
    make, measure = EXAMPLES[request.param]
    m = make()
    return request.param, m, quiet(ja.sample, m, 500, measure=measure, seed=0, precision="float64")


def test_every_rule_reaches_its_returns_on_issue_11s_examples(example):
    name, m, sample = example
    mixtures = 0
    for rule in WELFARE + VOLUMETRIC:
        outcome = quiet(ja.rules.get(rule), m, sample) if rule in VOLUMETRIC else quiet(ja.rules.get(rule), m)
        assert_achieved(m, outcome)
        assert ja.occupancy_polytope(m).residual(outcome.occupancy) <= 1e-8
        mixtures += outcome.mixture is not None
    if name == "case 3":
        assert mixtures >= 3  # egalitarian, leximin, nash at least: their optima mix the two classes


def test_egalitarian_on_issue_11s_examples():
    # Case 2, mu = state 0: agent 1's states {2, 3} are never reached, so it gets 0 under every
    # policy and the best reachable worst-off value is 0; agent 0 gets 0.5 (stay in 0) to 1 (go
    # to 1 and stay). The flow polytope claimed [0.5, 0.5].
    outcome = quiet(ja.rules.get("egalitarian"), two_classes())
    assert outcome.returns[1] == 0.0 and 0.5 - 1e-9 <= outcome.returns[0] <= 1.0 + 1e-9
    # Case 2, mu = (3/4, 0, 1/4, 0): each class keeps its share of mu. Agent 1 earns at most 1 per
    # step in class {2, 3} (stay in 2), so at most 1/4; agent 0 at least 3/4 * 1/2 = 3/8 > 1/4
    # whatever happens in class {0, 1}. The best worst-off value is 1/4 (the flow polytope: 1/2).
    m = two_classes((0.75, 0, 0.25, 0))
    outcome = ja.rules.get("egalitarian")(m)
    assert min(outcome.returns) == pytest.approx(0.25, abs=1e-9)
    assert outcome.returns[1] == pytest.approx(0.25, abs=1e-9) and outcome.returns[0] >= 0.375 - 1e-9
    flow = build_polytope(m.P, m.mu, None, multichain=False)
    assert solve_linear(flow, m.reward_matrix[1]) @ m.reward_matrix[1] == pytest.approx(1.0)  # unreachable from mu
    # Case 3: 3/4 of the time in class {1} (agent 0: 1) and 1/4 in {2} (agent 1: 3) equalises at 3/4,
    # which needs a mixture of the two deterministic policies.
    m = communicating()
    outcome = ja.rules.get("egalitarian")(m)
    np.testing.assert_allclose(outcome.returns, [0.75, 0.75], atol=1e-9)
    # which deterministic policies carry it depends on the simplex's vertices (e.g. 1/4 "stay in
    # {2}" + 3/4 "go to {1}", or 3/8 of a policy splitting mu between the classes + 5/8 "go to
    # {1}"); what must hold: weights on the simplex, deterministic policies, the exact returns
    assert outcome.mixture is not None and len(outcome.mixture) >= 2
    assert sum(w for w, _ in outcome.mixture) == pytest.approx(1.0, abs=1e-12) and all(w > 0 for w, _ in outcome.mixture)
    assert all(set(np.unique(pi)) <= {0.0, 1.0} for _, pi in outcome.mixture)
    exact = sum(w * m.returns(ja.occupancy_of_policy(m, pi)) for w, pi in outcome.mixture)
    np.testing.assert_allclose(exact, [0.75, 0.75], atol=1e-9)
    data = json.loads(json.dumps(outcome.to_dict(include_policy=True)))
    assert [entry["weight"] for entry in data["mixture"]] == [w for w, _ in outcome.mixture]
    np.testing.assert_array_equal(data["mixture"][1]["policy"], outcome.mixture[1][1])
    assert quiet(ja.rules.get("utilitarian"), communicating()).to_dict(include_policy=True)["mixture"] is None


def test_sampling_measures_give_reachable_returns():
    m = two_classes((0.75, 0, 0.25, 0))
    bounds = ja.return_bounds(m)
    np.testing.assert_allclose(bounds.upper, [0.75, 0.25], atol=1e-12)
    hull = ja.sample(m, 200, measure="hull", seed=1)
    assert (hull.returns <= bounds.upper + 1e-9).all() and (hull.returns >= bounds.lower - 1e-9).all()
    with pytest.raises(ValidationError, match="'uniform' measure on that projection"):
        ja.sample(m, 10, measure="uniform")
    with pytest.raises(ValidationError, match="'policy' measure .* several closed classes"):
        ja.sample(m, 10, measure="policy")


def test_an_unreachable_occupancy_is_refused_loudly():
    """All the mass on state 2's self-loop is a stationary flow, but from mu = (3/4, 0, 1/4, 0)
    at most 1/4 reaches state 2: no policy or mixture gets agent 1 a return of 1."""
    m = two_classes((0.75, 0, 0.25, 0))
    d = np.zeros(m.dim)
    d[2 * m.num_actions] = 1.0
    assert ja.occupancy_polytope(m).residual(d) > 0.1
    with pytest.raises(PolicyError, match="outside every policy's reach from mu"):
        make_outcome(m, "made up", d)


# ------------------------------------------------------------------ brute-force oracles
SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_multichain_polytope_returns_are_the_hull_of_deterministic_policies(seed):
    m = random_multichain(seed)
    table = returns_of_all_deterministic_policies(m)  # [K, n]
    polytope = ja.occupancy_polytope(m)
    assert polytope.multichain and polytope.num_aux == m.dim
    bounds = quiet(ja.return_bounds, m)
    assert bounds.method == "lp"
    np.testing.assert_allclose(bounds.upper, table.max(axis=0), rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(bounds.lower, table.min(axis=0), rtol=0, atol=ORACLE_TOL)
    # the LP optimum of every weighting is the best deterministic policy's: O's returns are their hull
    rng = np.random.default_rng(seed)
    for weights in rng.standard_normal((10, m.num_agents)):
        cost = weights @ m.reward_matrix
        assert cost @ solve_linear(polytope, cost) == pytest.approx((table @ weights).max(), abs=ORACLE_TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_basic_solutions_give_deterministic_policies_that_reach_them(seed):
    """Puterman's construction: a simplex (basic) solution's policy, evaluated exactly from mu,
    has the solution's occupancy."""
    m = random_multichain(seed)
    polytope = ja.occupancy_polytope(m)
    program = OccupancyProgram(polytope)
    rng = np.random.default_rng(seed)
    for cost in rng.standard_normal((6, m.dim)):
        result = program.solve(cost, sense="max", solver="simplex")
        point = program.point(result)
        assert polytope.residual(point) <= 1e-9
        policy = deterministic_policy_of_vertex(point, m.num_states, m.num_actions)
        np.testing.assert_allclose(occupancy_of_policy(m.P, m.mu, None, policy), point[: m.dim], rtol=0, atol=1e-9)


def test_noise_level_mass_on_a_basic_solution_does_not_derail_its_policy():
    """The attention (5, 3) seed-12 bug: HiGHS's basic solutions are feasible to 1e-10 only, so
    degenerate entries that are 0 at the vertex come back as +-1e-11. Read as mass (threshold
    1e-12), such an entry on a transient state picks an action that leaves for another closed
    class, and the policy's occupancy is far from the vertex. Here state 0 (mu = 1) moves to the
    rewarding class {1} by action 0 (the vertex: y(0, 0) = 1, d(1, 0) = 1) and to the absorbing
    state 2 by action 1, which carries 5e-11 of noise."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = P[1, :, 1] = P[2, :, 2] = 1
    R = np.zeros((1, 3, 2))
    R[0, 1, :] = 1
    m = ja.MOMDP(P, R, mu=[1, 0, 0], criterion="average")
    polytope = build_polytope(m.P, m.mu, None, multichain=True)
    point = np.zeros(polytope.num_columns)
    point[1 * 2 + 0] = 1.0  # d(1, 0)
    point[m.dim + 0 * 2 + 0] = 1.0  # y(0, 0)
    assert polytope.residual(point) == 0
    point[0 * 2 + 1] = 5e-11  # noise: d(0, 1)
    assert polytope.residual(point) <= 1e-10  # within HiGHS's feasibility tolerance
    naive = deterministic_policy_of_vertex(point, 3, 2, threshold=1e-12)
    assert naive[0, 1] == 1 and occupancy_of_policy(m.P, m.mu, None, naive).reshape(3, 2)[2].sum() == 1  # all in state 2
    policy, occupancy, error = policy_of_vertex(m.P, m.mu, point)
    assert policy[0, 0] == 1 and error <= 1e-9
    np.testing.assert_allclose(occupancy, occupancy_of_policy(m.P, m.mu, None, policy), atol=0)
    np.testing.assert_allclose(occupancy, point[: m.dim], atol=1e-9)
    # policy iteration from the derailed policy finds the optimum (reward 1 from mu)
    optimal = gain_optimal_policy(m.P, m.reward_matrix[0], naive)
    assert m.reward_matrix[0] @ occupancy_of_policy(m.P, m.mu, None, optimal) == pytest.approx(1.0, abs=1e-12)


def test_absorption_rows_sum_to_one_so_one_class_spreads_one_gain():
    """A slowly absorbing transient part (leaks of 1e-9 into one closed class): the sparse solve
    leaves absorption rows off 1 by ~4e-9, which spread the class's gain unevenly and made
    policy iteration on attention (7, 3) cycle on spurious gain improvements of 5e-9."""
    rng = np.random.default_rng(0)
    t, leak = 40, 1e-9
    P = np.zeros((t + 2, t + 2))
    P[:t, :t] = rng.random((t, t))
    P[:t, :t] *= (1 - leak) / P[:t, :t].sum(axis=1, keepdims=True)
    P[:t, t] = leak * rng.random(t)
    P[:t, t + 1] = leak - P[:t, t]
    P[np.arange(t), np.arange(t)] += 1 - P[:t].sum(axis=1)
    P[t, t + 1] = P[t + 1, t] = 1.0  # the closed class: a 2-cycle
    chain = _ChainClasses.of(P)
    np.testing.assert_allclose(chain.absorption.sum(axis=1), 1.0, rtol=0, atol=2e-16)
    gain, _ = gain_and_bias(P, rng.random(t + 2))
    assert np.ptp(gain) == 0.0


def test_policy_iteration_stops_when_a_policy_comes_back(monkeypatch):
    """Rounding noise that favours whichever action is not taken (a bias read off the other
    successor) would flip state 0 forever: the second visit raises at once."""
    import jaxagg.solvers.polytope as polytope_module

    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, :, 1] = 1.0  # state 0: action a moves to state a; state 1 stays

    def noisy(P_pi, r_pi):
        stays = P_pi[0, 0] == 1.0 if not sp.issparse(P_pi) else P_pi.toarray()[0, 0] == 1.0
        return np.zeros(2), (np.array([0.0, 1.0]) if stays else np.array([1.0, 0.0]))

    monkeypatch.setattr(polytope_module, "gain_and_bias", noisy)
    with pytest.raises(ja.errors.ConvergenceError, match="a policy came back after 2 improvements"):
        gain_optimal_policy(P, np.zeros(4), np.eye(2)[[0, 0]])


@pytest.mark.parametrize("seed", SEEDS)
def test_policy_iteration_is_gain_optimal_against_brute_force(seed):
    """:func:`gain_optimal_policy` (the pricing fallback of the mixtures) from any start reaches
    the best deterministic policy's long-run return from mu (Cesàro oracle)."""
    m = random_multichain(seed)
    table = returns_of_all_deterministic_policies(m)  # [K, n]
    rng = np.random.default_rng(seed)
    for weights in rng.standard_normal((4, m.num_agents)):
        start = np.eye(m.num_actions)[rng.integers(0, m.num_actions, m.num_states)]
        policy = gain_optimal_policy(m.P, weights @ m.reward_matrix, start)
        assert np.isin(policy, [0.0, 1.0]).all() and (policy.sum(axis=1) == 1).all()
        value = weights @ m.returns(occupancy_of_policy(m.P, m.mu, None, policy))
        assert value == pytest.approx((table @ weights).max(), abs=ORACLE_TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_any_point_of_o_is_reached_by_a_small_policy_mixture(seed):
    m = random_multichain(seed)
    polytope = ja.occupancy_polytope(m)
    rng = np.random.default_rng(seed)
    vertices = np.array([solve_linear(polytope, c) for c in rng.standard_normal((4, m.dim))])
    d = rng.dirichlet(np.ones(4)) @ vertices  # a point of O, generally no vertex
    bounds = quiet(ja.return_bounds, m)
    live = ~bounds.degenerate
    mixture = quiet(ja.polytope.policy_mixture, m, m.returns(d))
    assert len(mixture.weights) <= live.sum() + 1 and mixture.distance <= DECOMPOSITION_TOL
    achieved = mixture.weights @ (mixture.occupancies @ m.reward_matrix.T)
    assert np.max(np.abs(achieved - m.returns(d))[live] / bounds.span[live]) <= 2 * DECOMPOSITION_TOL
    for policy, occupancy in zip(mixture.policies, mixture.occupancies, strict=True):
        np.testing.assert_allclose(occupancy, occupancy_of_policy(m.P, m.mu, None, policy), atol=1e-15)
    outcome = make_outcome(m, "point", d)  # the Outcome's own construction agrees
    assert_achieved(m, outcome)


def test_decompose_checks_its_inputs():
    m = communicating()
    with pytest.raises(ValidationError, match="multichain"):
        build_polytope(m.P, m.mu, 0.9, multichain=True)
    lifted = ja.polytope.multichain_polytope(m)
    assert lifted.multichain and lifted is ja.polytope.multichain_polytope(m)  # cached
    with pytest.raises(ja.errors.ShapeError, match=r"W, target"):
        decompose(m.P, m.mu, m.reward_matrix, np.zeros(3))
    with pytest.raises(ja.errors.ShapeError, match=r"W, target"):
        decompose(m.P, m.mu, m.reward_matrix[:, :-1], np.zeros(m.num_agents))


# ------------------------------------------------------------------ which formulation
def test_one_end_component_keeps_the_flow_polytope_unchanged(garnet_average, attention_2_3):
    for m in (garnet_average, attention_2_3, communicating()):
        assert end_component_count(m.P) == 1
        S, A = m.num_states, m.num_actions
        polytope = ja.occupancy_polytope(m)
        assert not polytope.multichain and polytope.num_aux == 0 and polytope.num_columns == S * A
        # the rows written out by hand: flow balance per state, then sum d = 1
        flow = np.kron(np.eye(S), np.ones((1, A))) - m.P.reshape(S * A, S).T
        np.testing.assert_allclose(polytope.E.toarray(), np.vstack([flow, np.ones((1, S * A))]), atol=1e-15)
        np.testing.assert_array_equal(polytope.b, np.concatenate([np.zeros(S), [1.0]]))
        assert (polytope.E != build_polytope(m.P, m.mu, None, multichain=False).E).nnz == 0
        assert ja.rules.get("utilitarian")(m).stats.solves == 1  # no mixture LPs on a vertex


def test_discounted_polytope_is_unchanged(garnet_discounted):
    m = garnet_discounted
    S, A = m.num_states, m.num_actions
    polytope = ja.occupancy_polytope(m)
    assert polytope.num_aux == 0
    expected = np.kron(np.eye(S), np.ones((1, A))) - m.gamma * m.P.reshape(S * A, S).T
    np.testing.assert_allclose(polytope.E.toarray(), expected, atol=1e-15)
    np.testing.assert_allclose(polytope.b, (1 - m.gamma) * m.mu, atol=1e-15)


def test_several_end_components_use_the_multichain_rows():
    m = two_classes((0.75, 0, 0.25, 0))
    S, A = m.num_states, m.num_actions
    polytope = ja.occupancy_polytope(m)
    flow = sp.kron(sp.identity(S), np.ones((1, A))) - sp.csr_matrix(m.P.reshape(S * A, S).T)
    outflow = sp.kron(sp.identity(S), np.ones((1, A)))
    expected = sp.bmat([[flow, None], [outflow, flow]]).toarray()
    np.testing.assert_allclose(polytope.E.toarray(), expected, atol=1e-15)
    np.testing.assert_array_equal(polytope.b, np.concatenate([np.zeros(S), m.mu]))


def test_unichain_for_full_support_is_not_enough_for_the_flow_polytope():
    """State 0 can stay (earning 1) or leave for the absorbing state 1. Every full-support policy
    is unichain (it leaks to 1), yet from mu = state 1 staying in 0 is out of reach: two end
    components, so O is the multichain formulation and agent 0's best is 0, not the flow
    polytope's 1."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, :, 1] = 1.0
    R = np.zeros((2, 2, 2))
    R[0, 0, 0] = 1.0
    R[1, 1, :] = 1.0
    m = ja.MOMDP(P, R, mu=[0.0, 1.0], criterion="average")
    assert is_unichain_for_full_support(m.P) and end_component_count(m.P) == 2
    bounds = quiet(ja.return_bounds, m)
    np.testing.assert_allclose(bounds.upper, [0.0, 1.0], atol=1e-12)
    with pytest.raises(ValidationError, match="policy iteration bounds the returns over the flow polytope"):
        ja.polytope.return_bounds(ja.MOMDP(P, R, mu=[0.5, 0.5], criterion="average"), method="policy-iteration")
    half = ja.MOMDP(P, R, mu=[0.5, 0.5], criterion="average")
    np.testing.assert_allclose(ja.return_bounds(half).upper, [0.5, 1.0], atol=1e-12)  # half the mass can stay in 0
    assert ja.return_bounds(half).method == "lp"


def test_lift_and_residual_of_an_occupancy():
    m = two_classes((0.75, 0, 0.25, 0))
    polytope = ja.occupancy_polytope(m)
    policy = np.eye(2)[[1, 0, 0, 1]]  # 0 -> 1 and stay; stay in 2; 3 -> 2
    d = occupancy_of_policy(m.P, m.mu, None, policy)
    point = polytope.lift(d)
    assert point.shape == (polytope.num_columns,)
    np.testing.assert_array_equal(point[: m.dim], d)
    assert polytope.residual(point) <= 1e-12 and polytope.residual(d) <= 1e-12 and polytope.contains(d)
    with pytest.raises(ja.errors.ShapeError, match="occupancy: expected 8 entries"):
        polytope.residual(np.zeros(5))


def test_the_oracle_instances_are_discriminating():
    """Guard on :func:`random_multichain`: on most seeds the flow polytope's bounds differ from
    what policies reach from mu (so the oracles above would catch the old polytope), and the
    random points of O above need a mixture on most seeds."""
    differs = mixed = 0
    for seed in SEEDS:
        m = random_multichain(seed)
        table = returns_of_all_deterministic_policies(m)
        flow = build_polytope(m.P, m.mu, None, multichain=False)
        upper = np.array([r @ solve_linear(flow, r) for r in m.reward_matrix])
        lower = np.array([r @ solve_linear(flow, r, sense="min") for r in m.reward_matrix])
        differs += bool(max(np.abs(upper - table.max(axis=0)).max(), np.abs(lower - table.min(axis=0)).max()) > 1e-6)
        polytope = ja.occupancy_polytope(m)
        rng = np.random.default_rng(seed)
        vertices = np.array([solve_linear(polytope, c) for c in rng.standard_normal((4, m.dim))])
        mixed += quiet(make_outcome, m, "point", rng.dirichlet(np.ones(4)) @ vertices).mixture is not None
    assert differs >= len(SEEDS) // 2 and mixed >= len(SEEDS) // 2


def test_large_multichain_bounds_use_the_lp_not_policy_iteration():
    """Past POLICY_ITERATION_MIN_PAIRS state-action pairs "auto" picks policy iteration, whose
    certificate bounds the flow polytope: on a multichain instance it must take the LPs."""
    rng = np.random.default_rng(0)
    sizes = (500, 501)  # two closed blocks: 1001 states, 2002 pairs
    S, A = sum(sizes), 2
    assert S * A > ja.polytope.POLICY_ITERATION_MIN_PAIRS
    P = np.zeros((S, A, S))
    first = 0
    for size in sizes:
        for s, a in itertools.product(range(first, first + size), range(A)):
            P[s, a, first + rng.choice(size, 3, replace=False)] = 1 / 3
        first += size
    mu = np.zeros(S)
    mu[0] = 1.0  # only the first block is reached
    R = np.zeros((1, S, A))
    R[0, sizes[0]:, :] = 1.0  # rewards only in the unreachable block
    m = ja.MOMDP(P, R, mu=mu, criterion="average")
    with pytest.warns(DegenerateAgentWarning):
        bounds = ja.return_bounds(m)
    assert bounds.method == "lp" and bounds.upper[0] == pytest.approx(0.0, abs=1e-9)


def test_the_contract_instance_exercises_mixtures(garnet_multichain):
    """Guard on conftest's garnet_multichain (swept by tests/rules/test_contract.py): several end
    components, full-support policies unichain (the policy measure and the tuner apply), and
    its egalitarian optimum needs a mixture."""
    m = garnet_multichain
    assert ja.occupancy_polytope(m).multichain and is_unichain_for_full_support(m.P)
    outcome = ja.rules.get("egalitarian")(m)
    assert outcome.mixture is not None
    assert_achieved(m, outcome)


def test_the_tuner_refuses_several_closed_classes():
    m = two_classes((0.75, 0, 0.25, 0))
    sample = ja.sample(m, 50, measure="hull")
    with pytest.raises(ValidationError, match="the tuner evaluates full-support policies .* several closed classes"):
        ja.rules.get("tune-quantile")(m, sample, steps=5, restarts=1)
