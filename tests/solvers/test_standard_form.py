"""Standard-form export of O (issue 14, item 3): full row rank, the same feasible set as O, the
column labels, every formulation (discounted, average-reward flow rows, multichain)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import jaxagg as ja
from jaxagg.solvers import highs
from jaxagg.solvers.polytope import build_polytope
from jaxagg.solvers.standard_form import harmonic_basis, standard_form

FEASIBILITY_TOL = 1e-8  # HiGHS's primal feasibility tolerance is 1e-7 on scaled rows; these are small
OBJECTIVE_RTOL = 1e-7
NUM_OBJECTIVES = 8

INSTANCES = {
    "garnet_discounted": lambda: ja.envs.garnet(8, 3, 2, 2, seed=1, criterion="discounted", gamma=0.9),
    "garnet_average": lambda: ja.envs.garnet(8, 3, 2, 2, seed=1),
    "attention_2_3": lambda: ja.envs.attention_allocation(2, 3),
    "garnet_multichain": lambda: ja.envs.garnet(6, 3, 1, 3, seed=5),
}


@pytest.fixture(scope="module", params=sorted(INSTANCES))
def instance(request):
    momdp = INSTANCES[request.param]()
    return momdp, ja.occupancy_polytope(momdp), ja.standard_form(momdp)


def disjoint_pair(criterion_gamma=None):
    """Two disjoint random MDPs side by side (no action links them): H has dimension 2, so the
    average-reward forms lose two flow rows, one per block."""
    rng = np.random.default_rng(3)
    S, A = 4, 2
    P = np.zeros((2 * S, A, 2 * S))
    for block in range(2):
        raw = rng.random((S, A, S)) + 0.05
        P[block * S:(block + 1) * S, :, block * S:(block + 1) * S] = raw / raw.sum(axis=-1, keepdims=True)
    mu = np.full(2 * S, 1.0 / (2 * S))
    return P, mu


def full_row_rank(A) -> bool:
    dense = A.toarray()
    return np.linalg.matrix_rank(dense) == dense.shape[0]


def test_full_row_rank_and_the_same_row_space(instance):
    momdp, poly, form = instance
    assert full_row_rank(form.A)
    assert np.linalg.matrix_rank(poly.E.toarray()) == form.A.shape[0]
    assert form.A.shape[0] + form.dropped_rows.size == poly.E.shape[0]
    assert np.array_equal(np.sort(np.concatenate([form.kept_rows, form.dropped_rows])), np.arange(poly.E.shape[0]))


def test_which_rows_are_dropped(instance):
    momdp, poly, form = instance
    if momdp.criterion == "discounted":
        assert form.dropped_rows.size == 0  # I - gamma P_pi^T is nonsingular for every policy
    else:
        assert form.dropped_rows.size == 1  # H is the constants: one flow row, among the first S
        assert form.dropped_rows[0] < poly.num_states


@pytest.mark.parametrize("multichain", [False, True])
def test_disjoint_blocks_lose_one_flow_row_each(multichain):
    P, mu = disjoint_pair()
    poly = build_polytope(P, mu, None, multichain=multichain)
    form = standard_form(poly)
    basis = harmonic_basis(poly.E, poly.num_states, poly.num_actions)
    assert basis.shape[1] == 2
    assert form.dropped_rows.size == 2 and (form.dropped_rows < poly.num_states).all()
    assert full_row_rank(form.A)
    assert np.linalg.matrix_rank(poly.E.toarray()) == form.A.shape[0]
    # one dropped row per block: dropping two rows of the same block would leave a dependency
    assert sorted(form.dropped_rows // 4) == [0, 1]


@pytest.mark.parametrize("name", sorted(name for name in INSTANCES if "discounted" not in name))
def test_harmonic_basis_is_the_left_null_space_of_the_flow_rows(name):
    # (average reward only: under discounting there are no flow rows to have a null space)
    poly = ja.occupancy_polytope(INSTANCES[name]())
    S, A = poly.num_states, poly.num_actions
    flow = poly.E.toarray()[:S, : S * A]
    basis = harmonic_basis(poly.E, S, A)
    np.testing.assert_allclose(basis.T @ flow, 0.0, atol=1e-10)
    assert basis.shape[1] == S - np.linalg.matrix_rank(flow)


def test_columns_and_bounds(instance):
    momdp, poly, form = instance
    S, A = poly.num_states, poly.num_actions
    assert len(form.columns) == poly.num_columns == form.A.shape[1]
    assert form.columns[:S * A] == tuple(("x", s, a) for s in range(S) for a in range(A))
    assert form.columns[S * A:] == tuple(("y", s, a) for s in range(S) for a in range(A))[: poly.num_aux]
    assert (form.lower == 0).all() and np.isinf(form.upper).all() and form.dim == S * A
    np.testing.assert_array_equal(form.b, poly.b[form.kept_rows])


def _lp(cost, matrix, rhs, lower, upper):
    return highs.solve(cost, matrix, rhs, rhs, lower, upper, sense="max", solver="simplex")


def test_same_feasible_set_by_random_lps(instance):
    """Vertices of O satisfy A z = b; vertices of the standard form satisfy E z = b; the optima
    of random objectives on the occupancy columns agree."""
    momdp, poly, form = instance
    rng = np.random.default_rng(0)
    for _ in range(NUM_OBJECTIVES):
        cost = np.concatenate([rng.normal(size=poly.dim), np.zeros(poly.num_aux)])
        over_poly = _lp(cost, poly.E, poly.b, 0.0, highs.INF)
        over_form = _lp(cost, form.A, form.b, form.lower, form.upper)
        assert np.abs(form.A @ over_poly.x - form.b).max() <= FEASIBILITY_TOL
        assert np.abs(poly.E @ over_form.x - poly.b).max() <= FEASIBILITY_TOL
        assert over_form.x.min() >= -FEASIBILITY_TOL
        assert over_form.objective == pytest.approx(over_poly.objective, rel=OBJECTIVE_RTOL, abs=1e-10)


def test_to_dict_and_save_round_trip(tmp_path, garnet_multichain):
    form = ja.standard_form(garnet_multichain)
    path = tmp_path / "poly.npz"
    form.save(path)
    with np.load(path) as data:
        A = sp.csr_matrix((data["A_data"], data["A_indices"], data["A_indptr"]), shape=tuple(data["A_shape"]))
        assert (A != form.A).nnz == 0
        np.testing.assert_array_equal(data["b"], form.b)
        assert [tuple(row) for row in zip(data["column_kind"].tolist(), data["column_state"].tolist(),
                                          data["column_action"].tolist())] == list(form.columns)
        np.testing.assert_array_equal(data["dropped_rows"], form.dropped_rows)


def test_dense_rank_agrees_with_svd_on_the_attention_instance():
    form = ja.standard_form(ja.envs.attention_allocation(2, 3))
    sigma = scipy.linalg.svdvals(form.A.toarray())
    assert sigma.min() > 1e-8 * sigma.max()
