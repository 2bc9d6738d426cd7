"""The LP optima over the occupancy polytope are right (SPEC §1).

Oracles written here, independently of ``jaxagg.solvers.polytope``:

* discounted: brute-force enumeration of all ``A**S`` deterministic policies with
  ``J = (1-gamma) mu @ inv(I - gamma P_pi) @ r_pi``, and value iteration for a larger instance;
* average reward: the flow polytope ``{d >= 0, flow balance, sum d = 1}`` does not involve ``mu``;
  its vertices are the stationary distributions of deterministic policies restricted to one closed
  recurrent class. So its ``max J_i`` is the max over deterministic policies of the max over the
  policy's closed classes of that class's stationary gain (and ``min`` likewise). That is O when
  the MDP has one maximal end component; with several, O is the set reachable from ``mu`` (the
  multichain formulation), whose ``max J_i`` is the max over deterministic policies of their
  long-run return from ``mu`` (Cesàro limit by doubling, below);
* Cesàro limits: ``(1/T) sum_{t<T} mu^T P^t`` by repeated doubling up to ``T = 2**50``, a plain
  running mean, and a multichain example solved by hand.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

import jaxagg
from jaxagg import MOMDP
from jaxagg.envs import attention_allocation, garnet
from jaxagg.solvers.polytope import build_polytope, maximal_end_components
from jaxagg.solvers.program import return_bounds as program_return_bounds

RETURN_TOL = 1e-6
MEMBERSHIP_TOL = 1e-8
ROUNDTRIP_TOL = 1e-8
GAMMA = 0.9


# ----------------------------------------------------------------------------- oracles
def deterministic_policies(S: int, A: int) -> np.ndarray:
    """All ``A**S`` deterministic policies as action indices ``[K, S]``."""
    return np.array(list(itertools.product(range(A), repeat=S)), dtype=int)


def discounted_returns_of_all_policies(momdp: MOMDP) -> np.ndarray:
    """``[K, n]``: every deterministic policy's normalised discounted return, every agent."""
    S, gamma = momdp.num_states, momdp.gamma
    policies = deterministic_policies(S, momdp.num_actions)
    states = np.arange(S)
    out = np.empty((len(policies), momdp.num_agents))
    for k, pol in enumerate(policies):
        P_pi = momdp.P[states, pol]  # [S, S]
        r_pi = momdp.R[:, states, pol]  # [n, S]
        values = np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi.T)  # [S, n]
        out[k] = (1.0 - gamma) * momdp.mu @ values
    return out


def closed_classes(P_pi: np.ndarray) -> list[np.ndarray]:
    """Strongly connected components of the support graph with no edge leaving them."""
    support = P_pi > 0
    count, labels = connected_components(sp.csr_matrix(support), directed=True, connection="strong")
    classes = []
    for c in range(count):
        members = np.flatnonzero(labels == c)
        outside = np.flatnonzero(labels != c)
        if outside.size == 0 or not support[np.ix_(members, outside)].any():
            classes.append(members)
    return classes


def stationary_of_class(P_class: np.ndarray) -> np.ndarray:
    """Unique stationary distribution of an irreducible block, by least squares."""
    m = P_class.shape[0]
    system = np.vstack([P_class.T - np.eye(m), np.ones((1, m))])
    rhs = np.zeros(m + 1)
    rhs[-1] = 1.0
    x, *_ = np.linalg.lstsq(system, rhs, rcond=None)
    assert np.abs(system @ x - rhs).max() < 1e-10
    return x


def average_gains_of_all_classes(momdp: MOMDP) -> np.ndarray:
    """``[K', n]``: stationary gain of every closed class of every deterministic policy."""
    S = momdp.num_states
    states = np.arange(S)
    gains = []
    for pol in deterministic_policies(S, momdp.num_actions):
        P_pi = momdp.P[states, pol]
        r_pi = momdp.R[:, states, pol]
        for members in closed_classes(P_pi):
            stat = stationary_of_class(P_pi[np.ix_(members, members)])
            gains.append(r_pi[:, members] @ stat)
    return np.array(gains)


def average_returns_from_mu(momdp: MOMDP) -> np.ndarray:
    """``[K, n]``: every deterministic policy's long-run average return from ``mu``
    (:func:`cesaro_by_doubling`)."""
    S = momdp.num_states
    states = np.arange(S)
    out = []
    for pol in deterministic_policies(S, momdp.num_actions):
        rho = cesaro_by_doubling(momdp.P[states, pol], momdp.mu)
        out.append(momdp.R[:, states, pol] @ rho)
    return np.array(out)


def value_iteration(momdp: MOMDP, agent: int, sense: str) -> float:
    """``(1-gamma) mu @ V*`` of agent ``agent`` for ``sense`` in {"max", "min"}."""
    gamma, R, P = momdp.gamma, momdp.R[agent], momdp.P
    pick = np.max if sense == "max" else np.min
    V = np.zeros(momdp.num_states)
    for _ in range(5000):
        V_new = pick(R + gamma * P @ V, axis=1)
        if np.abs(V_new - V).max() < 1e-14:
            V = V_new
            break
        V = V_new
    else:  # pragma: no cover
        raise AssertionError("value iteration did not converge")
    return float((1.0 - gamma) * momdp.mu @ V)


def cesaro_by_doubling(P: np.ndarray, mu: np.ndarray, doublings: int = 50) -> np.ndarray:
    """``(1/T) sum_{t<T} mu^T P^t`` for ``T = 2**doublings``, using
    ``M_{2T} = (M_T + P^T M_T) / 2`` with ``M_T = (1/T) sum_{t<T} P^t`` and ``P^{2T} = (P^T)^2``."""
    M = np.eye(P.shape[0])
    power = P.copy()
    for _ in range(doublings):
        M = 0.5 * (M + power @ M)
        power = power @ power
        # Squaring doubles any rounding drift of the row sums every step (2**50 * eps is not
        # small); both matrices are stochastic in exact arithmetic, so keep them so.
        power /= power.sum(axis=1, keepdims=True)
        M /= M.sum(axis=1, keepdims=True)
    return mu @ M


def cesaro_by_running_mean(P: np.ndarray, mu: np.ndarray, steps: int) -> np.ndarray:
    total = np.zeros_like(mu)
    x = mu.copy()
    for _ in range(steps):
        total += x
        x = x @ P
    return total / steps


def make_momdp(P, R, mu=None, criterion="average", gamma=None) -> MOMDP:
    return MOMDP(P=np.asarray(P, float), R=np.asarray(R, float), mu=mu, criterion=criterion, gamma=gamma)


# ----------------------------------------------------------------------------- instances
# (states, actions, branching, seed): branching 1 gives deterministic, typically multichain
# dynamics; branching = states gives full-support rows (every policy irreducible).
SMALL = [
    (3, 2, 1, 0),
    (3, 3, 2, 1),
    (3, 2, 3, 2),
    (4, 2, 2, 3),
    (4, 3, 1, 4),
    (4, 3, 4, 5),
    (5, 2, 1, 6),
    (5, 2, 2, 7),
    (5, 3, 2, 8),
    (5, 3, 5, 9),
    # Deterministic dynamics where some LP solutions give multichain policies and the polytope's
    # optimum beats every policy's gain from the uniform mu (found by searching seeds).
    (4, 2, 1, 1),
    (4, 2, 1, 4),
    (4, 3, 1, 34),
    (5, 2, 1, 32),
    (5, 3, 1, 26),
]
MULTICHAIN = [(4, 2, 1, 1), (4, 2, 1, 4), (4, 3, 1, 34), (5, 2, 1, 32), (5, 3, 1, 26)]
CRITERIA = [("discounted", GAMMA), ("average", None)]


def small_garnet(case, criterion, gamma, agents=3):
    S, A, b, seed = case
    return garnet(S, A, b, agents, seed, criterion=criterion, gamma=gamma)


def flow_polytope(momdp):
    """The polytope of the flow equations, at the solvers' level (``multichain=False``): O when
    the MDP has one maximal end component; with several, jaxagg's O is the multichain
    formulation (what a policy reaches depends on mu), but the flow polytope and its LPs are
    still what these oracles check."""
    return build_polytope(momdp.P, momdp.mu, momdp.gamma, multichain=False)


def flow_bounds(momdp):
    return program_return_bounds(flow_polytope(momdp), momdp.reward_matrix)


def several_end_components(momdp):
    labels = maximal_end_components(momdp.P)
    return momdp.criterion == "average" and np.unique(labels[labels >= 0]).size > 1


# ----------------------------------------------------------------------------- LP optima vs brute force
@pytest.mark.parametrize("criterion, gamma", CRITERIA, ids=["discounted", "average"])
@pytest.mark.parametrize("case", SMALL, ids=[f"S{c[0]}A{c[1]}b{c[2]}s{c[3]}" for c in SMALL])
def test_return_bounds_match_brute_force(case, criterion, gamma):
    momdp = small_garnet(case, criterion, gamma)
    if several_end_components(momdp):  # O is what deterministic policies reach from mu
        from_mu = average_returns_from_mu(momdp)
        bounds = jaxagg.return_bounds(momdp)
        np.testing.assert_allclose(bounds.upper, from_mu.max(axis=0), rtol=0, atol=RETURN_TOL)
        np.testing.assert_allclose(bounds.lower, from_mu.min(axis=0), rtol=0, atol=RETURN_TOL)
    bounds = flow_bounds(momdp)
    if criterion == "discounted":
        table = discounted_returns_of_all_policies(momdp)
    else:
        table = average_gains_of_all_classes(momdp)
    np.testing.assert_allclose(bounds.upper, table.max(axis=0), rtol=0, atol=RETURN_TOL)
    np.testing.assert_allclose(bounds.lower, table.min(axis=0), rtol=0, atol=RETURN_TOL)
    # The reported optimisers attain the reported values.
    for i in range(momdp.num_agents):
        assert momdp.returns(bounds.argmax[i])[i] == pytest.approx(bounds.upper[i], abs=1e-9)
        assert momdp.returns(bounds.argmin[i])[i] == pytest.approx(bounds.lower[i], abs=1e-9)


@pytest.mark.parametrize("case", [(4, 3, 1, 4), (5, 2, 1, 6), (5, 3, 2, 8)])
def test_average_bounds_ignore_mu(case):
    """mu plays no role in the average-reward polytope, hence none in its LP optima."""
    base = small_garnet(case, "average", None)
    rng = np.random.default_rng(0)
    mu = np.zeros(base.num_states)
    mu[0] = 1.0
    for other_mu in (mu, rng.dirichlet(np.ones(base.num_states))):
        other = MOMDP(P=base.P, R=base.R, mu=other_mu, criterion="average")
        b0, b1 = flow_bounds(base), flow_bounds(other)
        np.testing.assert_allclose(b1.upper, b0.upper, rtol=0, atol=RETURN_TOL)
        np.testing.assert_allclose(b1.lower, b0.lower, rtol=0, atol=RETURN_TOL)


def test_larger_discounted_garnet_matches_value_iteration():
    momdp = garnet(30, 4, 3, 3, 11, criterion="discounted", gamma=GAMMA)
    bounds = jaxagg.return_bounds(momdp)
    for i in range(momdp.num_agents):
        assert bounds.upper[i] == pytest.approx(value_iteration(momdp, i, "max"), abs=RETURN_TOL)
        assert bounds.lower[i] == pytest.approx(value_iteration(momdp, i, "min"), abs=RETURN_TOL)


# ----------------------------------------------------------------------------- LP solutions lie in O and round-trip
def _check_solutions_round_trip(momdp: MOMDP, require_unichain: bool) -> tuple[int, int]:
    """Membership and the occupancy -> policy -> occupancy round trip for every LP solution.

    Returns how many solutions were checked with full equality, and how many only class by class
    (their policy has several closed classes).

    Discounted: every state has mass >= (1-gamma) mu(s) > 0, so the policy read from d is
    determined everywhere and its occupancy is d exactly.

    Average reward: rho(s) = sum_a d(s,a) is a stationary distribution of P_pi (where a state has
    no mass, d(s,.) = 0 = rho(s) pi(.|s)). The policy's occupancy from mu is the Cesàro limit from
    mu, which mixes *all* closed classes of P_pi (mu is uniform, so it reaches all of them), while
    an LP vertex sits on one class. So the full round trip ``occupancy_of_policy(pi) == d`` holds
    exactly when P_pi has a single closed class (always true with branching = S, where every row
    has full support); with several classes we check it class by class: on each closed class
    that d uses, the two occupancies agree after normalising to that class.
    """
    polytope = flow_polytope(momdp)
    bounds = flow_bounds(momdp)
    S, A = momdp.num_states, momdp.num_actions
    full_checks = classwise_checks = 0
    for d in list(bounds.argmax) + list(bounds.argmin):
        assert polytope.residual(d) <= MEMBERSHIP_TOL
        assert d.min() >= 0.0
        assert d.sum() == pytest.approx(1.0, abs=1e-9)
        pi = jaxagg.policy_from_occupancy(d, S, A)
        assert pi.shape == (S, A)
        np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-12)
        d_back = jaxagg.occupancy_of_policy(momdp, pi)
        assert polytope.residual(d_back) <= MEMBERSHIP_TOL
        if momdp.criterion == "discounted":
            np.testing.assert_allclose(d_back, d, rtol=0, atol=ROUNDTRIP_TOL)
            full_checks += 1
            continue
        P_pi = np.einsum("sa,sat->st", pi, momdp.P)
        rho = d.reshape(S, A).sum(axis=1)
        np.testing.assert_allclose(rho @ P_pi, rho, rtol=0, atol=1e-9)
        classes = closed_classes(P_pi)
        if require_unichain:
            assert len(classes) == 1
        if len(classes) == 1:
            np.testing.assert_allclose(d_back, d, rtol=0, atol=ROUNDTRIP_TOL)
            full_checks += 1
        else:
            classwise_checks += 1
        d2, b2 = d.reshape(S, A), d_back.reshape(S, A)
        for members in classes:
            used = d2[members].sum()
            if used <= 1e-9:
                continue
            reached = b2[members].sum()
            assert reached > 0, "mu is uniform, so the policy's chain reaches every closed class"
            np.testing.assert_allclose(b2[members] / reached, d2[members] / used, rtol=0, atol=ROUNDTRIP_TOL)
    return full_checks, classwise_checks


@pytest.mark.parametrize("case", SMALL, ids=[f"S{c[0]}A{c[1]}b{c[2]}s{c[3]}" for c in SMALL])
def test_discounted_solutions_in_polytope_and_round_trip(case):
    momdp = small_garnet(case, "discounted", GAMMA)
    assert _check_solutions_round_trip(momdp, require_unichain=False) == (2 * momdp.num_agents, 0)


@pytest.mark.parametrize("case", SMALL, ids=[f"S{c[0]}A{c[1]}b{c[2]}s{c[3]}" for c in SMALL])
def test_average_solutions_in_polytope_and_round_trip(case):
    momdp = small_garnet(case, "average", None)
    unichain = case[2] == case[0]  # branching = S: every P_pi has full support
    full, classwise = _check_solutions_round_trip(momdp, require_unichain=unichain)
    assert full + classwise == 2 * momdp.num_agents
    if unichain:
        assert classwise == 0


def test_multichain_cases_are_exercised_and_discriminating():
    """Guard on the instances above: some LP policies are multichain (so the class-wise branch of
    the round trip runs), and the flow polytope's optimum can exceed the best deterministic gain
    reached from the uniform mu: the reason ``jaxagg`` uses the multichain formulation on such
    instances under average reward (their several maximal end components make the reachable
    returns depend on mu), whose optimum is that best gain."""
    classwise_total = 0
    strictly_above = False
    for case in MULTICHAIN:
        momdp = small_garnet(case, "average", None)
        classwise_total += _check_solutions_round_trip(momdp, require_unichain=False)[1]
        S, A = momdp.num_states, momdp.num_actions
        from_mu = np.array(
            [
                momdp.returns(jaxagg.occupancy_of_policy(momdp, np.eye(A)[pol]))
                for pol in deterministic_policies(S, A)
            ]
        )
        assert several_end_components(momdp)  # so jaxagg uses the multichain formulation
        assert jaxagg.occupancy_polytope(momdp).multichain
        np.testing.assert_allclose(jaxagg.return_bounds(momdp).upper, from_mu.max(axis=0), rtol=0, atol=RETURN_TOL)
        upper = flow_bounds(momdp).upper
        assert (upper >= from_mu.max(axis=0) - RETURN_TOL).all()
        strictly_above |= bool((upper > from_mu.max(axis=0) + 1e-3).any())
    assert classwise_total > 0
    assert strictly_above


@pytest.mark.parametrize("states, branching", [(12, 12), (30, 30)])
def test_average_unichain_garnet_round_trip_larger(states, branching):
    momdp = garnet(states, 3, branching, 3, 21, criterion="average")
    assert _check_solutions_round_trip(momdp, require_unichain=True) == (2 * momdp.num_agents, 0)


def test_larger_discounted_round_trip():
    momdp = garnet(30, 4, 3, 3, 11, criterion="discounted", gamma=GAMMA)
    assert _check_solutions_round_trip(momdp, require_unichain=False) == (2 * momdp.num_agents, 0)


# ----------------------------------------------------------------------------- occupancy_of_policy vs Cesàro
def _attention_policies(momdp: MOMDP) -> list[np.ndarray]:
    S, A = momdp.num_states, momdp.num_actions
    F = A - 1
    phases = momdp.info["phases"]
    rng = np.random.default_rng(5)
    policies = [rng.dirichlet(np.ones(A), size=S) for _ in range(3)]
    policies.append(np.full((S, A), 1.0 / A))
    for a in range(A):  # "always monitor factory a" / "always monitor none"
        pi = np.zeros((S, A))
        pi[:, a] = 1.0
        policies.append(pi)
    # Monitor the first incident factory, else none.
    pi = np.zeros((S, A))
    for s, label in enumerate(momdp.state_names):
        incident = [f for f in range(F) if int(label[f]) == phases - 1]
        pi[s, incident[0] if incident else F] = 1.0
    policies.append(pi)
    # Random deterministic policies.
    for _ in range(3):
        pi = np.zeros((S, A))
        pi[np.arange(S), rng.integers(0, A, size=S)] = 1.0
        policies.append(pi)
    return policies


def test_occupancy_of_policy_matches_cesaro_on_attention():
    momdp = attention_allocation(3, 3, "base", 0)
    S, A = momdp.num_states, momdp.num_actions
    rng = np.random.default_rng(9)
    polytope = jaxagg.occupancy_polytope(momdp)
    for mu in (momdp.mu, rng.dirichlet(np.ones(S))):
        m = MOMDP(P=momdp.P, R=momdp.R, mu=mu, criterion="average", state_names=momdp.state_names, info=momdp.info)
        for k, pi in enumerate(_attention_policies(m)):
            P_pi = np.einsum("sa,sat->st", pi, m.P)
            rho = cesaro_by_doubling(P_pi, m.mu)
            expected = (rho[:, None] * pi).reshape(-1)
            got = jaxagg.occupancy_of_policy(m, pi)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8, err_msg=f"policy {k}")
            assert polytope.residual(got) <= MEMBERSHIP_TOL
    # The plain running mean agrees too, to its O(1/T) accuracy.
    pi = _attention_policies(momdp)[0]
    P_pi = np.einsum("sa,sat->st", pi, momdp.P)
    rho = cesaro_by_running_mean(P_pi, momdp.mu, 20000)
    got = jaxagg.occupancy_of_policy(momdp, pi).reshape(S, A).sum(axis=1)
    np.testing.assert_allclose(got, rho, rtol=0, atol=1e-3)


def test_always_monitor_none_absorbs_in_all_incident_state():
    momdp = attention_allocation(3, 3, "base", 0)
    S, A = momdp.num_states, momdp.num_actions
    pi = np.zeros((S, A))
    pi[:, A - 1] = 1.0
    expected = np.zeros((S, A))
    expected[S - 1, A - 1] = 1.0  # state "222", action "monitor none"
    np.testing.assert_allclose(jaxagg.occupancy_of_policy(momdp, pi), expected.reshape(-1), atol=1e-10)


@pytest.mark.parametrize("mu", [[1.0, 0.0], [0.5, 0.5], [0.3, 0.7]])
def test_occupancy_of_periodic_two_state_chain(mu):
    # Action 0 swaps the two states; action 1 stays.
    P = np.array([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    R = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    momdp = make_momdp(P, R, mu=np.array(mu))
    pi = np.array([[1.0, 0.0], [1.0, 0.0]])
    got = jaxagg.occupancy_of_policy(momdp, pi)
    np.testing.assert_allclose(got, [0.5, 0.0, 0.5, 0.0], rtol=0, atol=1e-12)
    P_pi = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(cesaro_by_running_mean(P_pi, np.array(mu), 20000), [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(cesaro_by_doubling(P_pi, np.array(mu)), [0.5, 0.5], atol=1e-12)
    # A stochastic policy that swaps with probability 0.3 from state 0 and 0.6 from state 1:
    # stationary rho solves rho0 * 0.3 = rho1 * 0.6, so rho = [2/3, 1/3].
    pi2 = np.array([[0.3, 0.7], [0.6, 0.4]])
    expected = np.array([2 / 3 * 0.3, 2 / 3 * 0.7, 1 / 3 * 0.6, 1 / 3 * 0.4])
    np.testing.assert_allclose(jaxagg.occupancy_of_policy(momdp, pi2), expected, rtol=0, atol=1e-12)


def _hand_multichain():
    """Seven states under action 0 (action 1 has the same rows, so any policy gives this chain).

    0 -> 0 (.2), 1 (.3), 4 (.4), 5 (.1)     transient, in the transient class {0, 4}
    1 -> 1                                   absorbing
    2 -> 3, 3 -> 2                           closed, period 2, stationary (1/2, 1/2)
    4 -> 0 (.5), 2 (.5)                      transient
    5 -> 5 (.25), 6 (.75); 6 -> 5            closed, aperiodic, stationary (4/7, 3/7)

    Absorption from 0 into {1}, {2,3}, {5,6}: 1/2, 1/3, 1/6; from 4: 1/4, 2/3, 1/12.
    With mu = (.3, .1, .1, 0, .2, .1, .2) the classes receive 3/10, 1/3, 11/30, so the Cesàro
    limit is rho = (0, 3/10, 1/6, 1/6, 0, 22/105, 11/70).
    """
    P0 = np.zeros((7, 7))
    P0[0, [0, 1, 4, 5]] = [0.2, 0.3, 0.4, 0.1]
    P0[1, 1] = 1.0
    P0[2, 3] = 1.0
    P0[3, 2] = 1.0
    P0[4, [0, 2]] = [0.5, 0.5]
    P0[5, [5, 6]] = [0.25, 0.75]
    P0[6, 5] = 1.0
    P = np.stack([P0, P0], axis=1)  # [S, A, S]
    R = np.arange(14, dtype=float).reshape(1, 7, 2)
    mu = np.array([0.3, 0.1, 0.1, 0.0, 0.2, 0.1, 0.2])
    rho = np.array([0.0, 3 / 10, 1 / 6, 1 / 6, 0.0, 22 / 105, 11 / 70])
    return P0, make_momdp(P, R, mu=mu), rho


def test_occupancy_of_policy_on_hand_built_multichain():
    P0, momdp, rho = _hand_multichain()
    assert rho.sum() == pytest.approx(1.0, abs=1e-15)
    assert len(closed_classes(P0)) == 3
    np.testing.assert_allclose(cesaro_by_doubling(P0, momdp.mu), rho, rtol=0, atol=1e-10)
    rng = np.random.default_rng(3)
    for pi in (np.tile([1.0, 0.0], (7, 1)), rng.dirichlet(np.ones(2), size=7)):
        got = jaxagg.occupancy_of_policy(momdp, pi)
        np.testing.assert_allclose(got, (rho[:, None] * pi).reshape(-1), rtol=0, atol=1e-10)
        assert flow_polytope(momdp).residual(got) <= MEMBERSHIP_TOL


def test_discounted_occupancy_of_policy_matches_series():
    """The discounted map against a truncated series (1-gamma) sum_t gamma^t mu^T P_pi^t."""
    momdp = garnet(6, 3, 2, 2, 4, criterion="discounted", gamma=0.8)
    pi = np.random.default_rng(1).dirichlet(np.ones(3), size=6)
    P_pi = np.einsum("sa,sat->st", pi, momdp.P)
    rho = np.zeros(6)
    x = momdp.mu.copy()
    for t in range(400):
        rho += (1 - 0.8) * 0.8**t * x
        x = x @ P_pi
    np.testing.assert_allclose(
        jaxagg.occupancy_of_policy(momdp, pi), (rho[:, None] * pi).reshape(-1), rtol=0, atol=1e-12
    )
