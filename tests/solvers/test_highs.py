"""The HiGHS entry point: statuses, typed errors, duals, warm-started models, MILPs."""

import numpy as np
import pytest
import scipy.sparse as sp

from jaxagg.errors import InfeasibleError, SolverTimeoutError, UnboundedError, ValidationError
from jaxagg.solvers.highs import INF, HighsModel, SolveStatus, solve


def test_lp_optimum_objective_and_duals():
    # max x + 2y  s.t.  x + y <= 4, x + 3y <= 6, x, y >= 0  ->  (3, 1), objective 5
    A = sp.csc_matrix([[1.0, 1.0], [1.0, 3.0]])
    result = solve([1.0, 2.0], A, [-INF, -INF], [4.0, 6.0], sense="max")
    assert result.status is SolveStatus.OPTIMAL and result.ok and not result.is_mip
    np.testing.assert_allclose(result.x, [3.0, 1.0], atol=1e-9)
    assert result.objective == pytest.approx(5.0)
    np.testing.assert_allclose(np.abs(result.row_duals), [0.5, 0.5], atol=1e-9)
    assert result.mip_gap == 0.0 and result.solve_time >= 0.0


@pytest.mark.parametrize("solver", ["simplex", "ipm"])
def test_every_solver_reaches_the_same_vertex(solver):
    A = sp.csc_matrix([[1.0, 1.0], [1.0, 3.0]])
    result = solve([1.0, 2.0], A, [-INF, -INF], [4.0, 6.0], sense="max", solver=solver)
    np.testing.assert_allclose(result.x, [3.0, 1.0], atol=1e-8)


def test_offset_and_dense_matrix_and_scalar_bounds():
    result = solve([1.0], np.array([[1.0]]), [2.0], [INF], 0.0, 10.0, offset=3.0)
    assert result.objective == pytest.approx(5.0)


def test_milp_respects_integrality():
    # max x + y  s.t.  2x + 2y <= 3, integers  ->  objective 1 (the LP relaxation has 1.5)
    A = sp.csc_matrix([[2.0, 2.0]])
    result = solve([1.0, 1.0], A, [-INF], [3.0], integrality=[True, True], sense="max")
    assert result.is_mip and result.objective == pytest.approx(1.0)
    assert np.allclose(result.x, np.round(result.x))


def test_infeasible_raises_typed_error_with_result():
    with pytest.raises(InfeasibleError, match="toy LP is infeasible") as info:
        solve([1.0], np.array([[1.0]]), [2.0], [1.0], what="toy LP")
    assert info.value.result.status is SolveStatus.INFEASIBLE


def test_unbounded_raises_typed_error():
    with pytest.raises(UnboundedError, match="unbounded"):
        solve([1.0], np.array([[1.0]]), [0.0], [INF], sense="max")


def test_failures_can_be_returned_instead_of_raised():
    result = solve([1.0], np.array([[1.0]]), [2.0], [1.0], raise_on_failure=False)
    assert result.status is SolveStatus.INFEASIBLE and not result.ok and result.x is None
    assert np.isnan(result.objective)


def test_time_limited_milp_carries_incumbent():
    # A knapsack that HiGHS can't prove optimal within a microsecond.
    rng = np.random.default_rng(0)
    n = 60
    weights = rng.integers(10_000, 20_000, size=n).astype(float)
    values = weights + rng.integers(0, 100, size=n)
    with pytest.raises(SolverTimeoutError, match="knapsack hit the time limit of 1e-06 s") as info:
        solve(values, weights[None, :], [-INF], [weights.sum() / 2 + 0.5], 0.0, 1.0,
              integrality=np.ones(n, bool), sense="max", time_limit=1e-6, what="knapsack")
    assert info.value.result.status is SolveStatus.TIME_LIMIT
    assert info.value.incumbent is None or info.value.incumbent.shape == (n,)


def test_warm_started_model_adds_rows_and_changes_bounds_and_costs():
    model = HighsModel([1.0, 1.0], sp.csc_matrix([[1.0, 1.0]]), [-INF], [2.0], sense="max")
    assert model.solve().objective == pytest.approx(2.0)
    rows = model.add_rows(np.array([[1.0, 0.0]]), -INF, 0.5)
    assert rows.tolist() == [1] and model.num_rows == 2
    model.set_cost([1.0, 0.0])
    assert model.solve().objective == pytest.approx(0.5)
    model.set_row_bounds([1], -INF, 1.5)
    assert model.solve().objective == pytest.approx(1.5)
    model.set_row_bounds([1], 3.0, INF)
    with pytest.raises(InfeasibleError):
        model.solve()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"sense": "maximise"}, "sense: expected 'min' or 'max'"),
        ({"matrix": np.ones((1, 3))}, r"matrix: expected 2 columns to match cost"),
        ({"row_lower": [0.0, 0.0]}, r"row_lower: expected shape \[1\]"),
        ({"col_upper": [np.nan, 1.0]}, "col_upper: contains NaN"),
        ({"solver": "barrier"}, r"solver: expected one of \('choose', 'simplex', 'ipm', 'pdlp'\), got 'barrier'"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    args = {"cost": [1.0, 1.0], "matrix": np.ones((1, 2)), "row_lower": [0.0], "row_upper": [1.0]}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=pattern):
        solve(**args)
