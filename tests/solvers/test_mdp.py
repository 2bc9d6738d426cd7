"""Return bounds by batched policy iteration (``jaxagg.solvers.mdp``) against the LP bounds.

Oracles: ``program.return_bounds`` (2n HiGHS LPs over O) on seeded garnets and attention
allocation, both criteria; brute-force enumeration of the tiny multichain case; the certificate
checked against the LP optimum for random value vectors. Tolerances: the bounds agree with the
LP to ``BOUND_RTOL`` of the agent's return range; certificates close to ``TOL`` of half the
reward range (the module's scale).

Compiling one program costs seconds, so the instances share shapes: garnets have the shape of
attention (3, 3) (S = 27, A = 4, n = 3).
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.envs.attention import factory_transition
from jaxagg.errors import ConvergenceError, SolverError
from jaxagg.kernels import transitions as T
from jaxagg.solvers import mdp
from jaxagg.solvers.polytope import build_polytope, closed_classes
from jaxagg.solvers.program import return_bounds, solve_linear

BOUND_RTOL = 1e-8
TOL = mdp.TOL
GAMMA = 0.9


def attention_factors(m) -> tuple[np.ndarray, ...]:
    theta = np.array(m.info["theta"])
    F = theta.shape[0]
    return tuple(np.stack([factory_transition(theta[f], monitored=(f == a)) for a in range(F + 1)]) for f in range(F))


def operator(m, form: str):
    if form == "dense":
        return T.DenseTransitions(m.P)
    if form == "sparse":
        return T.sparse_from_dense(m.P)
    factors = attention_factors(m)
    np.testing.assert_array_equal(T.kronecker_dense(factors), m.P)
    return T.KroneckerTransitions(factors)


INSTANCES = {
    "garnet-discounted-0": lambda: ja.envs.garnet(27, 4, 3, 3, seed=0, criterion="discounted", gamma=GAMMA),
    "garnet-discounted-1": lambda: ja.envs.garnet(27, 4, 2, 3, seed=1, criterion="discounted", gamma=0.95),
    "garnet-average-0": lambda: ja.envs.garnet(27, 4, 3, 3, seed=0),
    "garnet-average-2": lambda: ja.envs.garnet(27, 4, 2, 3, seed=2),
    "attention-3-3": lambda: ja.envs.attention_allocation(3, 3, seed=0),
    "attention-4-3": lambda: ja.envs.attention_allocation(4, 3, seed=1),
}
CASES = [
    ("garnet-discounted-0", "dense"),
    ("garnet-discounted-1", "dense"),
    ("garnet-average-0", "dense"),
    ("garnet-average-2", "sparse"),
    ("attention-3-3", "dense"),
    ("attention-3-3", "kronecker"),
    pytest.param("attention-4-3", "kronecker", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "form"), CASES, ids=lambda v: v)
def test_policy_iteration_bounds_equal_the_lp_bounds(name, form):
    m = INSTANCES[name]()
    R = m.reward_matrix
    bounds, certificates = mdp.return_bounds_by_policy_iteration(operator(m, form), m.mu, m.gamma, R)
    polytope = build_polytope(m.P, m.mu, m.gamma, multichain=False)
    lp = return_bounds(polytope, R)
    span = np.maximum(lp.upper - lp.lower, 1e-12)
    np.testing.assert_array_less(np.abs(bounds.upper - lp.upper) / span, BOUND_RTOL)
    np.testing.assert_array_less(np.abs(bounds.lower - lp.lower) / span, BOUND_RTOL)
    np.testing.assert_array_equal(bounds.degenerate, lp.degenerate)
    for d in np.concatenate([bounds.argmax, bounds.argmin]):  # attaining occupancies lie in O
        assert polytope.residual(d) <= 1e-9
    np.testing.assert_allclose(np.einsum("ij,ij->i", R, bounds.argmax), bounds.upper, rtol=0, atol=1e-12 * np.abs(R).max())
    assert len(certificates) == 2 * m.num_agents
    half_range = (R.max(axis=1) - R.min(axis=1)) / 2
    for c in certificates:
        assert c.method == "policy-iteration" and c.sense in ("min", "max")
        assert c.lower <= c.upper + 1e-12 * half_range[c.agent]  # float64 rounding only
        assert c.gap <= TOL * half_range[c.agent]
        assert c.value == (bounds.upper if c.sense == "max" else bounds.lower)[c.agent]
        exact = (lp.upper if c.sense == "max" else lp.lower)[c.agent]
        assert c.lower - 1e-9 * span[c.agent] <= exact <= c.upper + 1e-9 * span[c.agent]


def test_solve_mdps_reports_its_certificates():
    m = INSTANCES["garnet-discounted-0"]()
    R = m.R
    out = mdp.solve_mdps(T.DenseTransitions(m.P), np.concatenate([R, -R]), m.mu, m.gamma)
    assert out.certified.all() and out.converged.all() and not out.stuck.any()
    np.testing.assert_array_equal(out.value, out.lower)
    assert (out.residual <= mdp.FEASIBILITY_TOL).all() and (out.evaluation_residual <= 1e-10).all()
    np.testing.assert_allclose(out.occupancy.reshape(-1, m.num_states, m.num_actions).sum(axis=-1).sum(axis=-1), 1.0, atol=1e-12)
    # the policies are deterministic (policy iteration's greedy steps) and reproduce the occupancy
    assert np.isin(out.policy, [0.0, 1.0]).all()
    np.testing.assert_allclose(np.einsum("ksa,ksa->k", np.concatenate([R, -R]), out.occupancy.reshape(out.policy.shape)), out.lower,
                               atol=1e-12)


def test_certificate_bounds_the_lp_optimum_for_any_value_vector():
    """The certificate holds for arbitrary h (so a wrong certificate cannot pass silently), and
    equals the optimum at the value vector policy iteration returns."""
    rng = np.random.default_rng(0)
    for name in ("garnet-discounted-0", "garnet-average-0"):
        m = INSTANCES[name]()
        op = T.DenseTransitions(m.P)
        polytope = build_polytope(m.P, m.mu, m.gamma, multichain=False)
        optimum = np.array([m.reward_matrix[i] @ solve_linear(polytope, m.reward_matrix[i]) for i in range(m.num_agents)])
        for scale in (1e-3, 1.0, 100.0):
            h = scale * rng.standard_normal((m.num_agents, m.num_states))
            bound = mdp.certificate_bound(op, m.R, m.mu, m.gamma, h)
            assert (bound >= optimum - 1e-9).all(), (name, scale, bound - optimum)
        assert (mdp.certificate_bound(op, m.R, m.mu, m.gamma, np.zeros((m.num_agents, m.num_states))) >= optimum - 1e-12).all()
        rewards = np.concatenate([m.R, -m.R])  # the shape the other tests compile
        solved = mdp.solve_mdps(op, rewards, m.mu, m.gamma)
        np.testing.assert_allclose(solved.upper[:m.num_agents], optimum, atol=1e-8)
        centre = (rewards.max((1, 2)) + rewards.min((1, 2))) / 2  # the certificate is of the centred rewards
        again = mdp.certificate_bound(op, rewards - centre[:, None, None], m.mu, m.gamma, solved.value_vector) + centre
        np.testing.assert_allclose(again, solved.upper, atol=1e-12)


def two_state_mdp(stay0: float, stay1: float) -> np.ndarray:
    """States 0 and 1; action 0 stays, action 1 moves to the other state (communicating)."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0
    P[0, 1, 1] = P[1, 1, 0] = 1.0
    return P


def test_multichain_greedy_policy_is_handled():
    """Greedy from the uniform policy picks "stay" in both states: two closed classes with gains
    1 and 0.5 (no solution to its value system); the optimum is 1 (stay in 0, move 1 -> 0)."""
    P = two_state_mdp(1.0, 0.5)
    r = np.array([[[1.0, 0.0], [0.5, 0.0]]])  # [K=1, S, A]
    stay = np.einsum("sa,sat->st", np.array([[1.0, 0.0], [1.0, 0.0]]), P)
    assert len(closed_classes(stay > 0)[1]) == 2  # the greedy policy is multichain
    mu = np.array([0.5, 0.5])
    out = mdp.solve_mdps(T.DenseTransitions(P), r, mu, None)
    assert out.certified[0] and out.mixes[0] >= 1 and not out.stuck[0]
    assert abs(out.value[0] - 1.0) <= 1e-12 and out.upper[0] >= out.lower[0] - 1e-15
    np.testing.assert_allclose(out.occupancy[0], [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    # equal gains (1 and 1): the value system is singular but consistent; any stationary mix is optimal
    out = mdp.solve_mdps(T.DenseTransitions(P), np.array([[[1.0, 0.0], [1.0, 0.0]]]), mu, None)
    assert out.certified[0] and abs(out.value[0] - 1.0) <= 1e-12 and out.residual[0] <= mdp.FEASIBILITY_TOL


def test_uncertified_rows_are_reported_not_passed_off():
    """State 1 absorbs; staying in 0 earns 1. Full-support policies are unichain (they leak to 1)
    but the flow polytope's optimum (1, at d = (0, stay)) is a closed class no unichain policy
    reaches: policy iteration cannot attain it and must say so; its bracket still contains the
    optimum. (Two maximal end components: jaxagg's O is the multichain formulation, where from
    this mu the optimum is 0.5, and return bounds never use policy iteration there.)"""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1.0  # stay
    P[0, 1, 1] = 1.0  # leave
    P[1, :, 1] = 1.0  # absorbing
    r = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    out = mdp.solve_mdps(T.DenseTransitions(P), r, np.array([0.5, 0.5]), None)
    optimum = r.reshape(-1) @ solve_linear(build_polytope(P, np.array([0.5, 0.5]), None, multichain=False), r.reshape(-1))
    assert abs(optimum - 1.0) < 1e-9
    assert out.lower[0] <= optimum + 1e-12 and optimum <= out.upper[0] + 1e-12
    assert out.certified[0] == (out.gap[0] <= TOL * out.scale[0])
    if not out.certified[0]:
        assert out.value[0] < optimum - 0.5  # reported as a bound only, flagged


def test_fallback_is_called_when_certification_fails():
    m = INSTANCES["garnet-discounted-0"]()
    R = m.reward_matrix
    op = T.DenseTransitions(m.P)
    polytope = build_polytope(m.P, m.mu, m.gamma, multichain=False)
    calls = []

    def fallback(agent, sense):
        calls.append((agent, sense))
        return solve_linear(polytope, R[agent], sense=sense)

    solved = mdp.solve_mdps(op, np.concatenate([m.R, -m.R]), m.mu, m.gamma, max_iterations=1)  # the uniform policy only
    assert not solved.certified.any() and (solved.iterations == 1).all()
    bounds, certificates = mdp.return_bounds_by_policy_iteration(op, m.mu, m.gamma, R, fallback=fallback, max_iterations=1)
    assert sorted(calls) == sorted((i, s) for i in range(m.num_agents) for s in ("min", "max"))
    lp = return_bounds(polytope, R)
    np.testing.assert_allclose(bounds.upper, lp.upper, rtol=0, atol=1e-9 * np.abs(R).max())
    np.testing.assert_allclose(bounds.lower, lp.lower, rtol=0, atol=1e-9 * np.abs(R).max())
    assert {c.method for c in certificates} == {"lp"}
    assert all(c.lower <= c.upper for c in certificates)
    with pytest.raises(ConvergenceError, match="agent 0"):
        mdp.return_bounds_by_policy_iteration(op, m.mu, m.gamma, R, max_iterations=1)
    # tol = 0 is a certificate nobody passes except by luck of rounding: the fallback answers
    calls.clear()
    bounds, certificates = mdp.return_bounds_by_policy_iteration(op, m.mu, m.gamma, R, fallback=fallback, tol=0.0)
    assert len(calls) == sum(c.method == "lp" for c in certificates)
    np.testing.assert_allclose(bounds.upper, lp.upper, rtol=0, atol=1e-9 * np.abs(R).max())
    # a fallback returning nonsense (outside the certified bracket) is refused
    with pytest.raises(SolverError, match="outside"):
        mdp.return_bounds_by_policy_iteration(op, m.mu, m.gamma, R, max_iterations=1,
                                              fallback=lambda i, s: solve_linear(polytope, R[i], sense="min" if s == "max" else "max"))
