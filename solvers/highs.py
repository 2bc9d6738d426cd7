"""The one entry point to HiGHS for every LP and MILP jaxagg solves.

:class:`HighsModel` takes arrays (a scipy.sparse matrix, bounds, integrality), passes the model
to HiGHS in bulk with ``passModel`` (CSC) and keeps it, so that sequences of solves with new rows,
bounds or costs warm-start; :func:`solve` is the one-shot form. Both return a
:class:`SolveResult`. By default a solve
raises a typed error unless the solve is optimal: :class:`~jaxagg.errors.InfeasibleError`,
:class:`~jaxagg.errors.UnboundedError`, :class:`~jaxagg.errors.SolverTimeoutError` (carrying the
incumbent) or :class:`~jaxagg.errors.SolverError`.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from jaxagg.errors import (
    InfeasibleError,
    SolverError,
    SolverTimeoutError,
    UnboundedError,
    ValidationError,
)

INF = highspy.kHighsInf
DEFAULT_THREADS = 1
"""HiGHS threads unless told otherwise: 1 keeps runs reproducible and leaves the cores to JAX."""
FEASIBILITY_TOL = 1e-10
"""Primal and dual feasibility tolerance. HiGHS's default (1e-7) leaves occupancies up to ~1e-7
outside O; 1e-10 gives residuals near machine precision at no measurable cost."""
MIP_FEASIBILITY_TOL = 1e-9
"""MILP row and integrality tolerance (HiGHS's default 1e-6 let approval rows fall short of a
threshold by enough to lose the approving sample)."""

OPTIMAL_RESIDUAL_LIMIT = 1e-7
"""Largest constraint violation accepted from a solve HiGHS calls optimal (see ``_result``)."""

SOLVERS = ("choose", "simplex", "ipm", "pdlp")
SIMPLEX_STRATEGIES = {"dual": 1, "primal": 4}
"""HiGHS's ``simplex_strategy`` values (its default is the dual simplex)."""


class SolveStatus(enum.Enum):
    """What a solve proved. Each member's ``label`` is a short name, its ``message`` says what
    it means for the caller; :attr:`SolveResult.highs_status` keeps HiGHS's own status."""

    OPTIMAL = ("optimal", "an optimal point was found and proven optimal")
    INFEASIBLE = ("infeasible", "the program has no feasible point")
    UNBOUNDED = ("unbounded", "the objective is unbounded on the feasible set")
    UNBOUNDED_OR_INFEASIBLE = ("unbounded or infeasible", "HiGHS proved there is no optimum but not which of the two")
    TIME_LIMIT = ("time limit", "the time limit was reached before optimality was proven")
    ITERATION_LIMIT = ("iteration limit", "an iteration, node or solution limit was reached before optimality was proven")
    ERROR = ("error", "HiGHS failed (a model, presolve, solve or postsolve error, memory, an interrupt, or an unusable point)")

    def __init__(self, label: str, message: str):
        self.label = label
        self.message = message

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one HiGHS solve.

    Attributes:
        status: what HiGHS proved.
        x: primal point ``[num_cols]`` (optimal, or the incumbent of a limited solve; ``None``
            if HiGHS has no feasible point).
        objective: objective value at ``x`` in the caller's sense (``nan`` without ``x``).
        row_duals: row dual values ``[num_rows]`` of an LP (``None`` for a MILP or no solution).
        mip_gap: relative MIP gap (0 for an LP).
        solve_time: seconds spent in HiGHS.
        is_mip: whether integrality was imposed.
        message: HiGHS's model status, in words (or why the point was not usable).
        highs_status: HiGHS's raw model status name (``"kOptimal"``, ``"kTimeLimit"``, ...).
        dual_bound: a MILP's proven bound on the optimum in the caller's sense (an upper bound
            when maximising), valid also for a time-limited solve; ``objective`` for an LP.
        mixture: column generation only (:mod:`jaxagg.solvers.columns`): ``(weights [K],
            policies [K, S, A])``, the policies whose occupancies the point's ``d`` combines with
            those weights; ``None`` otherwise.
    """

    status: SolveStatus
    x: np.ndarray | None
    objective: float
    row_duals: np.ndarray | None
    mip_gap: float
    solve_time: float
    is_mip: bool
    message: str
    highs_status: str = ""
    dual_bound: float = float("nan")
    mixture: tuple | None = None

    @property
    def ok(self) -> bool:
        return self.status is SolveStatus.OPTIMAL


def solve(
    cost: np.ndarray,
    matrix: sp.spmatrix | np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    col_lower: np.ndarray | float = 0.0,
    col_upper: np.ndarray | float = INF,
    *,
    raise_on_failure: bool = True,
    **options,
) -> SolveResult:
    """Solve one program from scratch: ``HighsModel(...).solve()``; see :class:`HighsModel`."""
    model = HighsModel(cost, matrix, row_lower, row_upper, col_lower, col_upper, **options)
    return model.solve(raise_on_failure=raise_on_failure)


class HighsModel:
    """A program held by HiGHS, so that a sequence of related solves (new rows, new bounds, new
    costs) warm-starts from the previous basis.

    The program is ``sense  cost @ x + offset  s.t.  row_lower <= matrix @ x <= row_upper,
    col_lower <= x <= col_upper, x[j] integer where integrality[j]``.

    Args:
        cost: ``[num_cols]`` objective coefficients.
        matrix: ``[num_rows, num_cols]`` constraint matrix (any scipy.sparse format or dense);
            passed to HiGHS in bulk as CSC.
        row_lower, row_upper: ``[num_rows]`` bounds; use ``±INF`` for one-sided rows.
        col_lower, col_upper: ``[num_cols]`` bounds or scalars.
        integrality: ``[num_cols]`` booleans; any True makes it a MILP.
        sense: ``"min"`` or ``"max"``.
        time_limit: seconds per solve (``None``: no limit).
        mip_gap: relative MIP gap at which HiGHS may stop (``None``: HiGHS's default 1e-4).
        threads: HiGHS threads.
        solver: HiGHS's ``solver`` option: ``"choose"`` (default), ``"simplex"``, ``"ipm"``
            (interior point + crossover; measured faster on the largest attention LPs) or
            ``"pdlp"``.
        simplex: ``"dual"`` (HiGHS's default) or ``"primal"``: the primal simplex suits a sequence
            of solves that change only the costs (the last basis stays feasible; measured about 3x
            faster than the dual on the policy-mixture pricing LPs of attention (5, 3)).
        verbose: print HiGHS's log.
        what: a short name of the program for error messages (``"utilitarian LP"``).
    """

    def __init__(
        self,
        cost: np.ndarray,
        matrix: sp.spmatrix | np.ndarray,
        row_lower: np.ndarray,
        row_upper: np.ndarray,
        col_lower: np.ndarray | float = 0.0,
        col_upper: np.ndarray | float = INF,
        *,
        integrality: np.ndarray | None = None,
        sense: str = "min",
        offset: float = 0.0,
        time_limit: float | None = None,
        mip_gap: float | None = None,
        threads: int = DEFAULT_THREADS,
        solver: str = "choose",
        simplex: str = "dual",
        verbose: bool = False,
        what: str = "program",
    ):
        cost = _vector("cost", cost, None)
        num_cols = cost.shape[0]
        A = sp.csc_matrix(matrix, dtype=np.float64)
        num_rows = A.shape[0]
        if A.shape[1] != num_cols:
            raise ValidationError(f"matrix: expected {num_cols} columns to match cost, got shape {A.shape}")
        if sense not in ("min", "max"):
            raise ValidationError(f"sense: expected 'min' or 'max', got {sense!r}")
        if solver not in SOLVERS:
            raise ValidationError(f"solver: expected one of {SOLVERS}, got {solver!r}")
        if simplex not in SIMPLEX_STRATEGIES:
            raise ValidationError(f"simplex: expected one of {tuple(SIMPLEX_STRATEGIES)}, got {simplex!r}")
        self.what = what
        self.time_limit = time_limit
        self.is_mip = integrality is not None and bool(np.any(integrality))

        lp = highspy.HighsLp()
        lp.num_col_ = num_cols
        lp.num_row_ = num_rows
        lp.col_cost_ = cost
        lp.offset_ = float(offset)
        lp.col_lower_ = _vector("col_lower", col_lower, num_cols)
        lp.col_upper_ = _vector("col_upper", col_upper, num_cols)
        lp.row_lower_ = _vector("row_lower", row_lower, num_rows)
        lp.row_upper_ = _vector("row_upper", row_upper, num_rows)
        lp.sense_ = highspy.ObjSense.kMaximize if sense == "max" else highspy.ObjSense.kMinimize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = num_cols
        lp.a_matrix_.num_row_ = num_rows
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data
        if self.is_mip:
            integer = np.asarray(integrality, dtype=bool)
            lp.integrality_ = [highspy.HighsVarType.kInteger if k else highspy.HighsVarType.kContinuous for k in integer]

        self._highs = _new_highs(verbose, threads, time_limit, mip_gap, what)
        self._solved = False  # whether HiGHS holds a basis from an earlier solve (a warm start)
        _option(self._highs, "solver", solver, what)
        _option(self._highs, "simplex_strategy", SIMPLEX_STRATEGIES[simplex], what)
        _checked(self._highs.passModel(lp), f"{what}: HiGHS rejected the model")

    @property
    def num_rows(self) -> int:
        return self._highs.getNumRow()

    @property
    def num_cols(self) -> int:
        return self._highs.getNumCol()

    def add_rows(self, matrix: sp.spmatrix | np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> np.ndarray:
        """Append rows ``lower <= matrix @ x <= upper`` (``matrix`` is ``[k, num_cols]``); returns their indices."""
        block = sp.csr_matrix(matrix, dtype=np.float64)
        if block.shape[1] != self.num_cols:
            raise ValidationError(f"matrix: expected {self.num_cols} columns, got shape {block.shape}")
        k = block.shape[0]
        first = self.num_rows
        _checked(self._highs.addRows(
            k, _vector("lower", lower, k), _vector("upper", upper, k), block.nnz,
            block.indptr[:-1].astype(np.int32), block.indices.astype(np.int32), block.data,
        ), f"{self.what}: HiGHS rejected the new rows")
        return np.arange(first, first + k)

    def add_columns(self, matrix: sp.spmatrix | np.ndarray, cost: np.ndarray | float, lower: np.ndarray | float = 0.0,
                    upper: np.ndarray | float = INF) -> np.ndarray:
        """Append continuous columns (``matrix`` is ``[num_rows, k]``, ``cost [k]``, bounds
        ``[k]`` or scalars); returns their indices. The basis is kept: a new column starts
        nonbasic at its lower bound."""
        block = sp.csc_matrix(matrix, dtype=np.float64)
        if block.shape[0] != self.num_rows:
            raise ValidationError(f"matrix: expected {self.num_rows} rows, got shape {block.shape}")
        k = block.shape[1]
        first = self.num_cols
        _checked(self._highs.addCols(
            k, _vector("cost", cost, k), _vector("lower", lower, k), _vector("upper", upper, k), block.nnz,
            block.indptr[:-1].astype(np.int32), block.indices.astype(np.int32), block.data,
        ), f"{self.what}: HiGHS rejected the new columns")
        return np.arange(first, first + k)

    def set_col_bounds(self, columns: np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> None:
        """Change the bounds of existing columns ``[k]``."""
        columns = np.asarray(columns, dtype=np.int32).reshape(-1)
        k = columns.size
        _checked(self._highs.changeColsBounds(k, columns, _vector("lower", lower, k), _vector("upper", upper, k)),
                 f"{self.what}: HiGHS rejected the new column bounds")

    def set_row_bounds(self, rows: np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> None:
        """Change the bounds of existing rows ``[k]``."""
        rows = np.asarray(rows, dtype=np.int32).reshape(-1)
        k = rows.size
        _checked(self._highs.changeRowsBounds(k, rows, _vector("lower", lower, k), _vector("upper", upper, k)),
                 f"{self.what}: HiGHS rejected the new row bounds")

    def set_cost(self, cost: np.ndarray) -> None:
        """Replace the objective coefficients ``[num_cols]``."""
        cost = _vector("cost", cost, self.num_cols)
        _checked(self._highs.changeColsCost(cost.size, np.arange(cost.size, dtype=np.int32), cost),
                 f"{self.what}: HiGHS rejected the new costs")

    def set_start(self, x: np.ndarray) -> bool:
        """Give HiGHS a starting point ``x [num_cols]`` (a MIP start: once HiGHS has checked it
        is feasible it is the first incumbent, so a time limit always has a point to return).
        Returns whether HiGHS took the values (it ignores an infeasible start)."""
        solution = highspy.HighsSolution()
        solution.col_value = _vector("start", x, self.num_cols)
        solution.value_valid = True
        return self._highs.setSolution(solution) != highspy.HighsStatus.kError

    def solve(self, raise_on_failure: bool = True) -> SolveResult:
        """Run HiGHS from the current basis; raise a typed error unless optimal (by default).

        A warm-started run that ends in one of :data:`RECHECKED_FROM_SCRATCH` is run once more
        from scratch before the status is reported."""
        highs = self._highs
        start = time.perf_counter()
        _run(highs, self.what)
        model_status = highs.getModelStatus()
        if self._solved and status_of(model_status) in RECHECKED_FROM_SCRATCH:
            highs.clearSolver()
            _run(highs, self.what)
            model_status = highs.getModelStatus()
        self._solved = True
        if model_status == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            # Presolve could not tell which; the simplex without presolve can.
            _option(highs, "presolve", "off", self.what)
            _run(highs, self.what)
            _option(highs, "presolve", "choose", self.what)
            model_status = highs.getModelStatus()
        result = _result(highs, model_status, self.is_mip, time.perf_counter() - start, self.num_rows)
        if raise_on_failure and not result.ok:
            raise error_of(result, self.what, self.time_limit)
        return result


RECHECKED_FROM_SCRATCH = frozenset({SolveStatus.ERROR, SolveStatus.UNBOUNDED, SolveStatus.INFEASIBLE,
                                    SolveStatus.UNBOUNDED_OR_INFEASIBLE})
"""Verdicts of a warm-started solve that :meth:`HighsModel.solve` confirms by a solve from scratch
before reporting them. Seen: the simplex breaking down from a basis that new rows made
ill-conditioned (a Nash cutting-plane round, attention (5, 3) seed 35: an error), and the primal
simplex declaring the policy-mixture pricing LP unbounded after a change of costs (attention (5,
3) seed 75, max-quantile, with single-threaded BLAS: the LP is bounded, its objective is on the
occupancy, and from scratch it is solved to optimality)."""


def _new_highs(verbose: bool, threads: int, time_limit: float | None, mip_gap: float | None, what: str) -> highspy.Highs:
    highs = _construct_quietly()
    _option(highs, "output_flag", bool(verbose), what)
    if threads != _THREADS_IN_USE[0]:
        # HiGHS keeps one global scheduler; it must be reset to change the thread count.
        highspy.Highs.resetGlobalScheduler(True)
        _THREADS_IN_USE[0] = threads
    options = {"threads": int(threads), "primal_feasibility_tolerance": FEASIBILITY_TOL,
               "dual_feasibility_tolerance": FEASIBILITY_TOL, "mip_feasibility_tolerance": MIP_FEASIBILITY_TOL}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    if mip_gap is not None:
        options["mip_rel_gap"] = float(mip_gap)
    for name, value in options.items():
        _option(highs, name, value, what)
    return highs


def _checked(status: highspy.HighsStatus, message: str) -> highspy.HighsStatus:
    """Raise :class:`SolverError` with ``message`` when a HiGHS call returns ``kError``
    (``kWarning`` is HiGHS's "done, with a remark" and passes)."""
    if status == highspy.HighsStatus.kError:
        raise SolverError(message)
    return status


def _option(highs: highspy.Highs, name: str, value, what: str) -> None:
    _checked(highs.setOptionValue(name, value), f"{what}: HiGHS refused the option {name}={value!r}")


def _run(highs: highspy.Highs, what: str) -> None:
    """``highs.run()``; its ``kError`` is not raised here: the model status (an error status)
    says what happened and becomes the result."""
    highs.run()


_THREADS_IN_USE = [0]
_BANNER_SHOWN = [False]


def _construct_quietly() -> highspy.Highs:
    """A new Highs object; the first one per process prints a banner to fd 1, which we swallow."""
    if _BANNER_SHOWN[0]:
        return highspy.Highs()
    _BANNER_SHOWN[0] = True
    with _stdout_to_devnull():
        return highspy.Highs()


@contextlib.contextmanager
def _stdout_to_devnull():
    try:
        fd = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters): nothing to silence
        yield
        return
    try:
        sys.stdout.flush()
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def _vector(name: str, value, size: int | None) -> np.ndarray:
    """A contiguous float64 vector of length ``size`` (scalars are broadcast), NaN-free."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0 and size is not None:
        array = np.full(size, float(array))
    if array.ndim != 1 or (size is not None and array.shape[0] != size):
        raise ValidationError(f"{name}: expected shape [{size if size is not None else 'n'}], got {array.shape}")
    if np.isnan(array).any():
        raise ValidationError(f"{name}: contains NaN")
    return np.ascontiguousarray(np.clip(array, -INF, INF))


_STATUS = {
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
"""HiGHS model statuses by name -> SolveStatus; every other status (not set, load, model,
presolve, solve and postsolve errors, an empty model, unknown, interrupts, memory) is ERROR."""


def status_of(model_status: highspy.HighsModelStatus) -> SolveStatus:
    """The :class:`SolveStatus` of a HiGHS model status."""
    return _STATUS.get(_status_name(model_status), SolveStatus.ERROR)


def _status_name(model_status: highspy.HighsModelStatus) -> str:
    return getattr(model_status, "name", str(model_status).rsplit(".", 1)[-1])


def _result(highs: highspy.Highs, model_status: highspy.HighsModelStatus, is_mip: bool, elapsed: float,
            num_rows: int) -> SolveResult:
    status = status_of(model_status)
    info = highs.getInfo()
    # HiGHS can report "Optimal" after unscaling leaves a residual a little above the (tight)
    # feasibility tolerance, and then flags the point infeasible: such a point is kept when its
    # worst violation is within OPTIMAL_RESIDUAL_LIMIT, and a larger one is reported as an error.
    has_point = info.primal_solution_status == highspy.kSolutionStatusFeasible or (
        status is SolveStatus.OPTIMAL and info.max_primal_infeasibility <= OPTIMAL_RESIDUAL_LIMIT)
    message = highs.modelStatusToString(model_status)
    if status is SolveStatus.OPTIMAL and not has_point:
        status = SolveStatus.ERROR
        message = f"optimal, but its point violates a constraint by {info.max_primal_infeasibility:.2g}"
    solution = highs.getSolution()
    x = np.array(solution.col_value, dtype=np.float64) if has_point else None
    duals = None
    if has_point and not is_mip and solution.dual_valid and num_rows:
        duals = np.array(solution.row_dual, dtype=np.float64)
    return SolveResult(
        status=status,
        x=x,
        objective=float(info.objective_function_value) if has_point else float("nan"),
        row_duals=duals,
        mip_gap=float(info.mip_gap) if is_mip else 0.0,
        solve_time=elapsed,
        is_mip=is_mip,
        message=message,
        highs_status=_status_name(model_status),
        dual_bound=float(info.mip_dual_bound) if is_mip else (float(info.objective_function_value) if has_point else float("nan")),
    )


def error_of(result: SolveResult, what: str, time_limit: float | None = None) -> SolverError:
    """The typed error for a result that is not optimal: :class:`InfeasibleError`,
    :class:`UnboundedError`, :class:`SolverTimeoutError` (carrying the incumbent) or
    :class:`SolverError`, with ``what`` (the program's name) in the message."""
    if result.status is SolveStatus.INFEASIBLE:
        return InfeasibleError(f"{what} is infeasible: no policy satisfies its constraints", result)
    if result.status is SolveStatus.UNBOUNDED:
        return UnboundedError(f"{what} is unbounded", result)
    if result.status is SolveStatus.TIME_LIMIT:
        found = "no feasible point found" if result.x is None else f"incumbent objective {result.objective:.6g}, gap {result.mip_gap:.3g}"
        return SolverTimeoutError(f"{what} hit the time limit of {time_limit} s ({found})", result)
    return SolverError(f"{what}: HiGHS stopped with status '{result.message}' ({result.status.message})", result)
