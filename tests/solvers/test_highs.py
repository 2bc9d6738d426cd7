"""The HiGHS entry point: statuses, typed errors, duals, warm-started models, MILPs."""

import highspy
import numpy as np
import pytest
import scipy.sparse as sp

from jaxagg.errors import InfeasibleError, SolverError, SolverTimeoutError, UnboundedError, ValidationError
from jaxagg.solvers import highs
from jaxagg.solvers.highs import INF, HighsModel, SolveResult, SolveStatus, error_of, solve, status_of


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


@pytest.mark.parametrize("simplex", ["dual", "primal"])
def test_both_simplex_strategies_follow_a_change_of_costs(simplex):
    # max x + 2y  s.t.  x + y <= 4, x + 3y <= 6: the vertex (3, 1); then max 3x + y: the vertex (4, 0)
    A = sp.csc_matrix([[1.0, 1.0], [1.0, 3.0]])
    model = HighsModel(np.array([1.0, 2.0]), A, [-INF, -INF], [4.0, 6.0], sense="max", solver="simplex", simplex=simplex)
    np.testing.assert_allclose(model.solve().x, [3.0, 1.0], atol=1e-9)
    model.set_cost(np.array([3.0, 1.0]))
    result = model.solve()
    np.testing.assert_allclose(result.x, [4.0, 0.0], atol=1e-9)
    assert result.objective == pytest.approx(12.0)


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


def knapsack(n=60):
    """A knapsack that HiGHS can't prove optimal within a microsecond: values, weights, capacity."""
    rng = np.random.default_rng(0)
    weights = rng.integers(10_000, 20_000, size=n).astype(float)
    values = weights + rng.integers(0, 100, size=n)
    return values, weights, weights.sum() / 2 + 0.5


def greedy_packing(values, weights, capacity):
    """A feasible 0/1 packing: items by value density while they fit."""
    x = np.zeros(values.size)
    for j in np.argsort(-values / weights):
        if weights @ x + weights[j] <= capacity:
            x[j] = 1.0
    return x


def test_time_limited_milp_carries_incumbent():
    values, weights, capacity = knapsack()
    n = values.size
    model = HighsModel(values, weights[None, :], [-INF], [capacity], 0.0, 1.0, integrality=np.ones(n, bool), sense="max",
                       time_limit=1e-6, what="knapsack")
    start = greedy_packing(values, weights, capacity)
    assert model.set_start(start)  # a feasible MIP start: the time-limited solve has a point to return
    with pytest.raises(SolverTimeoutError, match=r"knapsack hit the time limit of 1e-06 s \(incumbent objective") as info:
        model.solve()
    result = info.value.result
    assert result.status is SolveStatus.TIME_LIMIT and result.highs_status == "kTimeLimit" and result.is_mip
    incumbent = info.value.incumbent
    assert incumbent is result.x and incumbent.shape == (n,)
    np.testing.assert_array_equal(incumbent, np.round(incumbent))  # integral
    assert np.all((incumbent >= 0.0) & (incumbent <= 1.0))
    assert weights @ incumbent <= capacity  # feasible
    assert result.objective == pytest.approx(values @ incumbent, rel=1e-12)
    assert values @ incumbent >= values @ start  # at least as good as the start
    assert result.mip_gap > 0.0  # not proven optimal


def test_time_limited_milp_without_a_start_reports_what_it_has():
    values, weights, capacity = knapsack()
    with pytest.raises(SolverTimeoutError, match="knapsack hit the time limit of 1e-06 s") as info:
        solve(values, weights[None, :], [-INF], [capacity], 0.0, 1.0,
              integrality=np.ones(values.size, bool), sense="max", time_limit=1e-6, what="knapsack")
    result = info.value.result
    assert result.status is SolveStatus.TIME_LIMIT
    if info.value.incumbent is None:
        assert np.isnan(result.objective) and "no feasible point found" in str(info.value)
    else:  # HiGHS may find a point before it checks the clock
        assert weights @ result.x <= capacity and result.objective == pytest.approx(values @ result.x)


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
        ({"simplex": "devex"}, r"simplex: expected one of \('dual', 'primal'\), got 'devex'"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    args = {"cost": [1.0, 1.0], "matrix": np.ones((1, 2)), "row_lower": [0.0], "row_upper": [1.0]}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=pattern):
        solve(**args)


# ------------------------------------------------------- statuses and errors
EXPECTED_STATUS = {
    "kOptimal": SolveStatus.OPTIMAL,
    "kInfeasible": SolveStatus.INFEASIBLE,
    "kUnbounded": SolveStatus.UNBOUNDED,
    "kUnboundedOrInfeasible": SolveStatus.UNBOUNDED_OR_INFEASIBLE,
    "kTimeLimit": SolveStatus.TIME_LIMIT,
    "kIterationLimit": SolveStatus.ITERATION_LIMIT,
    "kSolutionLimit": SolveStatus.ITERATION_LIMIT,
    "kObjectiveBound": SolveStatus.ITERATION_LIMIT,
    "kObjectiveTarget": SolveStatus.ITERATION_LIMIT,
}
"""The statuses that say what HiGHS proved or which limit stopped it; every other one (errors,
empty model, unknown, interrupts, memory, not set) is an ERROR."""

EXPECTED_ERROR = {
    SolveStatus.INFEASIBLE: InfeasibleError,
    SolveStatus.UNBOUNDED: UnboundedError,
    SolveStatus.TIME_LIMIT: SolverTimeoutError,
}
"""The typed error of a status; the others raise a plain SolverError."""


def hand_made_result(status, x=None, highs_status=""):
    return SolveResult(status=status, x=x, objective=float("nan") if x is None else 1.5, row_duals=None, mip_gap=0.25,
                       solve_time=0.0, is_mip=True, message=f"HiGHS said {status.label}", highs_status=highs_status)


@pytest.mark.parametrize("name", list(highspy.HighsModelStatus.__members__))
def test_every_highs_model_status_maps_to_a_solve_status_and_an_error(name):
    member = highspy.HighsModelStatus.__members__[name]
    status = status_of(member)
    assert isinstance(status, SolveStatus)
    assert status is EXPECTED_STATUS.get(name, SolveStatus.ERROR)
    assert (status is SolveStatus.OPTIMAL) == (name == "kOptimal")
    result = hand_made_result(status, x=np.array([1.0, 0.5]), highs_status=name)
    assert result.ok == (name == "kOptimal")
    if status is SolveStatus.OPTIMAL:
        return
    error = error_of(result, "toy MILP", time_limit=7.0)
    assert type(error) is EXPECTED_ERROR.get(status, SolverError)
    assert isinstance(error, SolverError) and error.result is result
    assert "toy MILP" in str(error)
    if status is SolveStatus.TIME_LIMIT:
        assert "time limit of 7.0 s (incumbent objective 1.5, gap 0.25)" in str(error)
        np.testing.assert_array_equal(error.incumbent, [1.0, 0.5])
    elif type(error) is SolverError:
        assert f"status '{result.message}' ({status.message})" in str(error)


def test_time_limit_error_without_a_point():
    error = error_of(hand_made_result(SolveStatus.TIME_LIMIT), "toy MILP", time_limit=2.0)
    assert type(error) is SolverTimeoutError and error.incumbent is None
    assert "time limit of 2.0 s (no feasible point found)" in str(error)


def test_every_solve_status_has_a_label_and_a_message():
    labels = [status.label for status in SolveStatus]
    assert len(set(labels)) == len(labels)
    for status in SolveStatus:
        assert str(status) == status.label and status.message
    assert set(EXPECTED_STATUS.values()) | {SolveStatus.ERROR} == set(SolveStatus)


def test_a_refused_option_raises_solver_error():
    h = highspy.Highs()
    with pytest.raises(SolverError, match="toy: HiGHS refused the option no_such_option=1"):
        highs._option(h, "no_such_option", 1, "toy")
    with pytest.raises(SolverError, match="toy LP: HiGHS refused the option time_limit=-1.0"):
        solve([1.0], np.array([[1.0]]), [0.0], [1.0], time_limit=-1.0, what="toy LP")


ERROR = highspy.HighsStatus.kError


@pytest.mark.parametrize(
    "method, action, pattern",
    [
        ("passModel", lambda model: HighsModel([1.0], np.array([[1.0]]), [0.0], [1.0], what="toy LP"),
         "toy LP: HiGHS rejected the model"),
        ("addRows", lambda model: model.add_rows(np.array([[1.0]]), 0.0, 1.0), "toy LP: HiGHS rejected the new rows"),
        ("changeRowsBounds", lambda model: model.set_row_bounds([0], 0.0, 1.0), "toy LP: HiGHS rejected the new row bounds"),
        ("changeColsCost", lambda model: model.set_cost([2.0]), "toy LP: HiGHS rejected the new costs"),
    ],
)
def test_a_highs_call_returning_kerror_raises_solver_error(monkeypatch, method, action, pattern):
    model = HighsModel([1.0], np.array([[1.0]]), [0.0], [1.0], what="toy LP")
    monkeypatch.setattr(highspy.Highs, method, lambda self, *args: ERROR)
    with pytest.raises(SolverError, match=pattern):
        action(model)


def test_a_failed_run_is_an_error_status(monkeypatch):
    model = HighsModel([1.0], np.array([[1.0]]), [0.0], [1.0], sense="max", what="toy LP")
    monkeypatch.setattr(highspy.Highs, "run", lambda self: ERROR)  # HiGHS fails without solving: model status kNotset
    with pytest.raises(SolverError, match=r"toy LP: HiGHS stopped with status") as info:
        model.solve()
    assert type(info.value) is SolverError
    result = info.value.result
    assert result.status is SolveStatus.ERROR and result.highs_status == "kNotset" and result.x is None
    monkeypatch.undo()
    assert model.solve().objective == pytest.approx(1.0)  # the model itself was fine


def test_a_refused_mip_start_is_reported(monkeypatch):
    model = HighsModel([1.0], np.array([[1.0]]), [0.0], [1.0], integrality=[True], what="toy MILP")
    assert model.set_start([1.0])
    monkeypatch.setattr(highspy.Highs, "setSolution", lambda self, *args: ERROR)
    assert not model.set_start([1.0])


class BrokenUntilCleared:
    """A HiGHS stand-in whose runs end in ``status`` (default a solve error) until its solver
    state is cleared (the breakdown a warm start from an ill-conditioned basis can give, or a
    spurious verdict of unboundedness after a change of costs)."""

    def __init__(self, inner, status=highspy.HighsModelStatus.kSolveError):
        self.inner, self.status, self.broken, self.cleared = inner, status, True, 0

    def getModelStatus(self):
        return self.status if self.broken else self.inner.getModelStatus()

    def clearSolver(self):
        self.broken, self.cleared = False, self.cleared + 1
        return self.inner.clearSolver()

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("verdict", ["kSolveError", "kUnbounded", "kInfeasible", "kUnboundedOrInfeasible"])
def test_a_warm_start_that_fails_is_solved_again_from_scratch(verdict):
    A = sp.csc_matrix([[1.0, 1.0], [1.0, 3.0]])
    model = HighsModel(np.array([1.0, 2.0]), A, [-INF, -INF], [4.0, 6.0], sense="max")
    model.solve()
    model._highs = stand_in = BrokenUntilCleared(model._highs, getattr(highspy.HighsModelStatus, verdict))
    model.set_cost(np.array([3.0, 1.0]))
    result = model.solve()
    assert stand_in.cleared == 1 and result.ok
    np.testing.assert_allclose(result.x, [4.0, 0.0], atol=1e-9)


def test_a_warm_started_lp_that_is_unbounded_is_still_reported_unbounded():
    # max -x1 s.t. x0 - x1 <= 4, x >= 0: optimum 0; then max x0: unbounded (x0 = 4 + x1)
    model = HighsModel(np.array([0.0, -1.0]), sp.csc_matrix([[1.0, -1.0]]), [-INF], [4.0], 0.0, INF, sense="max",
                       what="test LP")
    assert model.solve().objective == pytest.approx(0.0)
    model.set_cost(np.array([1.0, 0.0]))
    model._highs = stand_in = BrokenUntilCleared(model._highs, highspy.HighsModelStatus.kUnbounded)
    with pytest.raises(UnboundedError, match="test LP is unbounded"):
        model.solve()
    assert stand_in.cleared == 1  # checked from scratch, and the verdict stands


def test_a_first_solve_that_fails_is_reported_not_retried():
    model = HighsModel(np.array([1.0, 2.0]), sp.csc_matrix([[1.0, 1.0]]), [-INF], [4.0], sense="max", what="test LP")
    model._highs = stand_in = BrokenUntilCleared(model._highs)
    with pytest.raises(SolverError, match="test LP: HiGHS stopped with status"):
        model.solve()
    assert stand_in.cleared == 0
