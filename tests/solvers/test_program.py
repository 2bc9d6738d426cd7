"""OccupancyProgram's defined variables, the threshold binaries built on them, and the stationary
distribution every outcome's exact returns go through."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import jaxagg as ja
from jaxagg.errors import ShapeError
from jaxagg.polytope import normalized_rewards, return_bounds
from jaxagg.rules.base import threshold_binaries
from jaxagg.solvers.polytope import LARGE_CLASS, _stationary, _stationary_by_state_reduction, occupancy_of_policy
from jaxagg.solvers.program import OccupancyProgram


@pytest.mark.parametrize("fixture", ["garnet_average", "garnet_discounted", "garnet_multichain"])
def test_defined_variables_equal_their_linear_form_at_an_optimum_and_in_a_lift(fixture, request):
    m = request.getfixturevalue(fixture)
    program = OccupancyProgram(ja.occupancy_polytope(m))
    W = normalized_rewards(m)  # [n, S*A]
    scores = program.add_defined(W)
    assert scores.shape == (m.num_agents,)
    cost = np.zeros(program.num_cols)
    cost[scores] = np.arange(1.0, m.num_agents + 1)  # the objective sees d only through the defined columns
    result = program.solve(cost, sense="max", what="defined-variable LP")
    np.testing.assert_allclose(result.x[scores], W @ program.occupancy(result), atol=1e-8)
    # the same optimum as the objective written on d directly
    direct = OccupancyProgram(ja.occupancy_polytope(m)).solve(np.arange(1.0, m.num_agents + 1) @ W, sense="max")
    assert result.objective == pytest.approx(direct.objective, abs=1e-8)
    # a policy's occupancy lifts to a feasible point with every defined variable filled
    rng = np.random.default_rng(0)
    policy = rng.dirichlet(np.ones(m.num_actions), size=m.num_states)
    d = occupancy_of_policy(m.P, m.mu, m.gamma, policy)
    point = program.lift(d)
    assert point.shape == (program.num_cols,)
    np.testing.assert_allclose(point[scores], W @ d, rtol=1e-12, atol=1e-14)
    assert program.violation(point) <= 1e-9


def test_add_defined_refuses_coefficients_of_the_wrong_shape(garnet_average):
    program = OccupancyProgram(ja.occupancy_polytope(garnet_average))
    with pytest.raises(ShapeError, match=r"occupancy_coefficients: expected \[k, "):
        program.add_defined(np.zeros((2, garnet_average.dim + 1)))
    with pytest.raises(ShapeError, match="occupancy_coefficients"):
        program.add_defined(np.zeros(garnet_average.dim))


def test_threshold_binaries_share_one_dense_row_per_agent(attention_2_3, attention_2_3_sample):
    """K thresholds per agent add one dense return row per agent and 2-entry big-M rows, and
    the binaries still switch on only where the return reaches the lifted threshold."""
    m, sample = attention_2_3, attention_2_3_sample
    K = 6
    positions = np.linspace(0, sample.num_samples - 1, K).astype(int)
    thresholds = sample.sorted_returns[positions].T  # [n, K]
    program = OccupancyProgram(ja.occupancy_polytope(m))
    rows_of_o = program.num_rows
    b, target = threshold_binaries(program, m, thresholds)
    live = int((~return_bounds(m).degenerate).sum())
    matrix = sp.vstack(program._rows, format="csr")
    entries = np.diff(matrix.indptr)  # [rows added]
    assert matrix.shape[0] == program.num_rows - rows_of_o == live + live * K
    assert (entries[live:] == 2).all() and (entries[:live] > 2).all()
    # maximise the number of thresholds reached: the binaries must agree with the exact returns
    cost = np.zeros(program.num_cols)
    cost[b.reshape(-1)] = 1.0
    result = program.solve(cost, sense="max", what="threshold MILP")
    returns = m.returns(program.occupancy(result))
    on = np.round(result.x[b]).astype(bool)
    assert (returns[:, None] >= target - 1e-9)[on].all()
    assert result.objective == pytest.approx((returns[:, None] >= target - 1e-9).sum())


def _power_iteration(P: np.ndarray, steps: int = 20_000) -> np.ndarray:
    """The stationary distribution of an aperiodic irreducible P by iterating ``pi P`` (an oracle)."""
    pi = np.full(P.shape[0], 1.0 / P.shape[0])
    for _ in range(steps):
        pi = pi @ P
    return pi


@pytest.mark.parametrize("seed", range(4))
def test_stationary_distribution_matches_power_iteration_and_least_squares(seed):
    rng = np.random.default_rng(seed)
    m = 25
    P = rng.random((m, m)) * (rng.random((m, m)) < 0.3)
    P[np.arange(m), (np.arange(m) + 1) % m] += 0.5  # a cycle through every state: irreducible
    P[0, 0] += 0.1  # and a self-loop: aperiodic
    P /= P.sum(axis=1, keepdims=True)
    pi = _stationary(P)
    np.testing.assert_allclose(pi, _power_iteration(P), atol=1e-12)
    lstsq, *_ = scipy.linalg.lstsq(np.vstack([P.T - np.eye(m), np.ones((1, m))]), np.concatenate([np.zeros(m), [1.0]]))
    np.testing.assert_allclose(pi, lstsq, atol=1e-13)
    np.testing.assert_allclose(_stationary(sp.csr_matrix(P)), pi, atol=1e-15)


def test_a_nearly_decomposable_class_gets_its_exact_stationary_distribution():
    """Two well-mixed blocks of 3 states coupled by 1e-17 and 3e-17 (rows sum to 1 in float64):
    block masses 3/4 and 1/4 by the balance of the two links. The LU's answer has a tiny residual
    and wrong masses (0.08/0.92); LAPACK flags the system, and state reduction solves it
    exactly, with no warning passed on."""
    P = np.zeros((6, 6))
    P[:3, :3] = P[3:, 3:] = 1 / 3
    P[0, 3], P[3, 0] = 1e-17, 3e-17
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pi = _stationary(P)
    np.testing.assert_allclose(pi, [1 / 4] * 3 + [1 / 12] * 3, rtol=1e-14)
    rng = np.random.default_rng(0)
    for m in (2, 7, 60):  # and on ordinary chains state reduction agrees with the LU
        Q = rng.random((m, m))
        Q /= Q.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(_stationary_by_state_reduction(Q), _stationary(Q), atol=1e-15)
    np.testing.assert_allclose(_stationary_by_state_reduction(np.roll(np.eye(5), 1, axis=1)), np.full(5, 0.2), atol=1e-16)


def test_stationary_distribution_of_a_periodic_chain_and_a_large_class():
    cycle = np.roll(np.eye(7), 1, axis=1)  # period 7: power iteration never settles
    np.testing.assert_allclose(_stationary(cycle), np.full(7, 1 / 7), atol=1e-15)
    m = LARGE_CLASS + 5  # the sparse path: a lazy random walk on a ring, uniform by symmetry
    ring = sp.diags([np.full(m, 0.5), np.full(m - 1, 0.25), np.full(m - 1, 0.25)], [0, 1, -1], format="lil")
    ring[0, m - 1] = ring[m - 1, 0] = 0.25
    np.testing.assert_allclose(_stationary(ring.tocsr()), np.full(m, 1 / m), atol=1e-12)
