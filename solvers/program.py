"""Linear and mixed-integer programs over the occupancy polytope, assembled in bulk, and the
programs every caller needs: one linear objective over O (:func:`solve_linear`) and every agent's
return range (:func:`return_bounds`).

Every rule is "O plus a few variables and rows": a level ``t`` with ``J_i(d) >= t``, binaries
``y_i`` with big-M rows, tangent cuts. :class:`OccupancyProgram` holds O's rows once and lets a
rule append variables and rows as sparse blocks; :meth:`OccupancyProgram.solve` stacks them and
calls the single HiGHS entry point. Columns are ``[d (S*A) | O's auxiliary columns (num_aux) | extra
variables in order added]``: the auxiliary columns (the transient flow of the multichain
average-reward formulation, :mod:`jaxagg.solvers.polytope`) are nonnegative, appear only in O's
rows, and get zero cost and zero coefficients in every row a rule adds, so a rule never sees
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from jaxagg.errors import ShapeError
from jaxagg.solvers import columns as column_generation
from jaxagg.solvers.bounds import DEGENERATE_RTOL, ReturnBounds
from jaxagg.solvers.highs import INF, HighsModel, SolveResult
from jaxagg.solvers.polytope import OccupancyPolytope, pad_columns

__all__ = ["DEGENERATE_RTOL", "IPM_MIN_DIM", "OccupancyProgram", "ReturnBounds", "return_bounds", "solve_linear"]

IPM_MIN_DIM = 5000
"""From this many occupancy coordinates on, one-shot LPs default to interior point + crossover."""


@dataclass
class OccupancyProgram:
    """A growing LP/MILP whose first ``S*A`` columns are the occupancy ``d`` in O, followed by
    O's ``num_aux`` auxiliary columns, then the variables added (module docstring)."""

    polytope: OccupancyPolytope
    _col_lower: list[np.ndarray] = field(default_factory=list)
    _col_upper: list[np.ndarray] = field(default_factory=list)
    _integer: list[np.ndarray] = field(default_factory=list)
    _rows: list[sp.csr_matrix] = field(default_factory=list)
    _row_lower: list[np.ndarray] = field(default_factory=list)
    _row_upper: list[np.ndarray] = field(default_factory=list)
    _defined: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def num_cols(self) -> int:
        return self.polytope.num_columns + sum(len(lo) for lo in self._col_lower)

    @property
    def num_rows(self) -> int:
        return self.polytope.E.shape[0] + sum(r.shape[0] for r in self._rows)

    def add_variables(self, count: int, lower: float | np.ndarray = -INF, upper: float | np.ndarray = INF,
                      integer: bool = False) -> np.ndarray:
        """Append ``count`` variables; returns their column indices ``[count]``."""
        first = self.num_cols
        self._col_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (count,)).copy())
        self._col_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (count,)).copy())
        self._integer.append(np.full(count, bool(integer)))
        return np.arange(first, first + count)

    def add_rows(self, coefficients: sp.spmatrix | np.ndarray, lower: float | np.ndarray = -INF,
                 upper: float | np.ndarray = INF) -> np.ndarray:
        """Append rows ``lower <= coefficients @ x <= upper``; ``coefficients`` is ``[k, c]`` with
        ``c <= num_cols`` (missing trailing columns are zero). Returns the row indices ``[k]``."""
        block = sp.csr_matrix(coefficients, dtype=np.float64)
        if block.shape[1] > self.num_cols:
            raise ShapeError(f"coefficients: at most {self.num_cols} columns, got {block.shape[1]}")
        k = block.shape[0]
        first = self.num_rows
        self._rows.append(block)
        self._row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (k,)).copy())
        self._row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (k,)).copy())
        return np.arange(first, first + k)

    def add_defined(self, occupancy_coefficients: np.ndarray) -> np.ndarray:
        """Append free variables ``v = occupancy_coefficients @ d`` (``[k, S*A]``: one equality
        row each) and return their columns ``[k]``. Rows that many binaries share (a return
        against K thresholds) then refer to ``v`` with one coefficient instead of repeating
        ``S*A`` of them: fewer nonzeros for every LP of a branch and bound. :meth:`lift` fills them."""
        coefficients = np.asarray(occupancy_coefficients, dtype=np.float64)
        if coefficients.ndim != 2 or coefficients.shape[1] != self.polytope.dim:
            raise ShapeError(f"occupancy_coefficients: expected [k, {self.polytope.dim}], got {coefficients.shape}")
        k = coefficients.shape[0]
        columns = self.add_variables(k)
        self.add_rows(self.rows_in(coefficients, columns, -np.eye(k)), lower=0.0, upper=0.0)
        self._defined.append((columns, coefficients))
        return columns

    def lift(self, occupancy: np.ndarray) -> np.ndarray:
        """A point ``[num_cols]`` for ``occupancy [S*A]``: O's auxiliary columns filled
        (:meth:`OccupancyPolytope.lift`), every :meth:`add_defined` variable at its value, the
        other added variables zero."""
        x = np.zeros(self.num_cols)
        x[: self.polytope.num_columns] = self.polytope.lift(occupancy)
        for columns, coefficients in self._defined:
            x[columns] = coefficients @ x[: self.polytope.dim]
        return x

    def rows_in(self, occupancy_coefficients: np.ndarray, columns: np.ndarray, column_coefficients: np.ndarray) -> sp.csr_matrix:
        """Build ``[k, num_cols]`` rows: ``occupancy_coefficients [k, S*A]`` on d plus
        ``column_coefficients [k, len(columns)]`` on the given extra columns (a column listed
        twice gets the sum of its coefficients); zero on O's auxiliary columns."""
        k = occupancy_coefficients.shape[0]
        columns = np.asarray(columns).reshape(-1)
        coefficients = np.asarray(column_coefficients, dtype=np.float64).reshape(k, columns.size)
        rows = np.repeat(np.arange(k), columns.size)
        if columns.size and columns.min() < self.polytope.num_columns:
            raise ShapeError(f"columns: expected added variables (indices >= {self.polytope.num_columns}), got {columns.min()}")
        first = self.polytope.dim
        extra = sp.coo_matrix((coefficients.reshape(-1), (rows, np.tile(columns - first, k))), shape=(k, self.num_cols - first))
        extra = extra.tocsr()
        return sp.hstack([sp.csr_matrix(occupancy_coefficients), extra], format="csr")

    def solve(self, cost: np.ndarray, sense: str = "max", *, start: np.ndarray | None = None, **options) -> SolveResult:
        """Solve once with objective ``cost [num_cols]`` (or ``[S*A]``, zero on extra columns).
        ``options`` go to :class:`jaxagg.solvers.highs.HighsModel` (time_limit, mip_gap, what, ...);
        ``start [num_cols]`` is a MIP start (:meth:`HighsModel.set_start`).

        A one-shot LP over a large polytope (``S*A >= IPM_MIN_DIM``) uses HiGHS's interior
        point method with crossover unless ``solver`` is given (measured 3x faster than the
        default dual simplex on attention (7, 3), bench/RESULTS.md), or column generation where
        :meth:`build` chooses it."""
        if self.polytope.dim >= IPM_MIN_DIM and not any(self._integer_flags()):
            if self.uses_column_generation(options):
                options["fallback_solver"] = "ipm"
            else:
                options.setdefault("solver", "ipm")
        model = self.build(cost, sense, **options)
        if start is not None:
            model.set_start(start)
        return model.solve()

    def full_cost(self, cost: np.ndarray) -> np.ndarray:
        """``cost`` on the first columns (e.g. ``[S*A]``, the occupancy), zero on the rest:
        ``[num_cols]`` (what :meth:`build` and ``HighsModel.set_cost`` take)."""
        cost = np.asarray(cost, dtype=np.float64)
        return np.concatenate([cost, np.zeros(self.num_cols - cost.shape[0])]) if cost.shape[0] < self.num_cols else cost

    def build(self, cost: np.ndarray, sense: str = "max", **options) -> HighsModel:
        """The program as a :class:`HighsModel`, for warm-started sequences of solves; or, for an
        LP over a polytope of at least :data:`jaxagg.solvers.columns.MIN_DIM` occupancy
        coordinates whose MDP is known, a :class:`jaxagg.solvers.columns.ColumnModel` (the same
        interface; column generation with MDP pricing). ``solver="columns"`` asks for the
        column generation at any size; naming a HiGHS ``solver`` asks for HiGHS."""
        if self.uses_column_generation(options):
            options.pop("solver", None)
            options.pop("simplex", None)
            return column_generation.ColumnModel(self, cost, sense, **options)
        cost = self.full_cost(cost)
        matrix = self._constraint_matrix("csc")
        b = self.polytope.b
        integer = self._integer_flags()
        return HighsModel(
            cost,
            matrix,
            np.concatenate([b] + self._row_lower),
            np.concatenate([b] + self._row_upper),
            np.concatenate([np.zeros(self.polytope.num_columns)] + self._col_lower),
            np.concatenate([np.full(self.polytope.num_columns, INF)] + self._col_upper),
            integrality=integer if integer.any() else None,
            sense=sense,
            **options,
        )

    def _constraint_matrix(self, format: str) -> sp.spmatrix:
        """``[E; rows]`` over every column: the polytope's equalities, then the rows added so far
        (O's own matrix, not a copy, when nothing was added: the 2n bound LPs of an instance
        share it)."""
        E = self.polytope.E
        if not self._rows and self.num_cols == E.shape[1] and E.has_canonical_format:
            return E.asformat(format)
        blocks = [sp.csr_matrix(self.polytope.E)] + self._rows
        return sp.vstack([pad_columns(b, self.num_cols) for b in blocks], format=format)

    def uses_column_generation(self, options: dict | None = None) -> bool:
        """Whether :meth:`build` (and :meth:`solve`) with these ``options`` make a
        column-generation model: asked for (``solver="columns"``), or no ``solver`` named and an
        LP of at least :data:`jaxagg.solvers.columns.MIN_DIM` occupancy coordinates on a
        polytope that MDPs can price."""
        options = {} if options is None else options
        if options.get("solver") == "columns":
            return True
        return ("solver" not in options and self.polytope.dim >= column_generation.MIN_DIM
                and column_generation.applies(self.polytope) and not self._integer_flags().any())

    def violation(self, x: np.ndarray) -> float:
        """Largest violation ``[0, inf)`` of a point ``x [num_cols]``: rows, column bounds and
        integrality (to check a MIP start before handing it to HiGHS)."""
        x = np.asarray(x, dtype=np.float64)
        matrix = self._constraint_matrix("csr")
        lower = np.concatenate([self.polytope.b] + self._row_lower)
        upper = np.concatenate([self.polytope.b] + self._row_upper)
        col_lower = np.concatenate([np.zeros(self.polytope.num_columns)] + self._col_lower)
        col_upper = np.concatenate([np.full(self.polytope.num_columns, INF)] + self._col_upper)
        activity = matrix @ x
        integer = self._integer_flags()
        parts = [lower - activity, activity - upper, col_lower - x, x - col_upper, np.abs(x[integer] - np.round(x[integer]))]
        return float(max(0.0, *(p.max(initial=0.0) for p in parts)))

    def _integer_flags(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.polytope.num_columns, dtype=bool)] + self._integer)

    def occupancy(self, result: SolveResult) -> np.ndarray:
        """The occupancy part ``[S*A]`` of a solution, clipped at 0."""
        return np.clip(result.x[: self.polytope.dim], 0.0, None)

    def point(self, result: SolveResult) -> np.ndarray:
        """O's part ``[S*A + num_aux]`` of a solution (occupancy and auxiliary columns), clipped at 0."""
        return np.clip(result.x[: self.polytope.num_columns], 0.0, None)


def return_bounds(polytope: OccupancyPolytope, reward_matrix: np.ndarray, degenerate_rtol: float = DEGENERATE_RTOL) -> ReturnBounds:
    """``min_O J_i`` and ``max_O J_i`` of every agent (rows of ``reward_matrix [n, S*A]``): 2n
    independent LPs. Agents whose range is at most ``degenerate_rtol * max |R_i|`` are marked
    degenerate (their normalised return is 1)."""
    # Independent solves: warm-starting the next objective from the previous basis was measured
    # slower on attention (5, 3) (dual simplex from a dual-infeasible basis) and can fail in
    # HiGHS's ratio test.
    extremes = {
        sense: np.stack([
            solve_linear(polytope, reward_matrix[i], sense=sense, what=f"{sense}imum return LP of agent {i}")
            for i in range(reward_matrix.shape[0])
        ])
        for sense in ("min", "max")
    }
    lower = np.einsum("ij,ij->i", reward_matrix, extremes["min"])
    upper = np.einsum("ij,ij->i", reward_matrix, extremes["max"])
    degenerate = upper - lower <= degenerate_rtol * np.abs(reward_matrix).max(axis=1)
    return ReturnBounds(lower=lower, upper=upper, argmin=extremes["min"], argmax=extremes["max"], degenerate=degenerate)


def solve_linear(polytope: OccupancyPolytope, cost: np.ndarray, sense: str = "max", what: str = "LP") -> np.ndarray:
    """An optimal vertex ``[S*A]`` of ``sense <cost, d>`` over O (raises typed errors on failure).
    The cost is scaled to unit max-norm first (the optimum does not change), so that rewards of
    any scale (1e-12 or 1e12) reach HiGHS as well-scaled numbers."""
    cost = np.asarray(cost, dtype=np.float64)
    largest = float(np.abs(cost).max(initial=0.0))
    program = OccupancyProgram(polytope)
    return program.occupancy(program.solve(cost / largest if largest > 0 else cost, sense=sense, what=what))
