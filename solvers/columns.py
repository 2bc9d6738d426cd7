"""LPs over a large occupancy polytope by column generation (Dantzig-Wolfe), with MDPs as the
pricing problem: the exact LP rules past a few thousand states.

Every LP a rule solves is "O plus a few rows and variables" (:mod:`jaxagg.solvers.program`):
``opt c.d + c_x.x`` over ``d`` in O and the rule's variables ``x``, subject to the rule's rows
``lo <= G d + H x <= up`` (``G [k, S*A]``: the occupancy coefficients, typically the agents'
returns; k is small). O is a polytope whose vertices are the occupancies of deterministic
policies, and the occupancies sum to 1, so every ``d`` in O is a convex combination
``d = sum_j lambda_j d_j`` of occupancies ``d_j`` of policies. The **master LP** replaces ``d``
by ``lambda`` over the columns found so far:

    opt  sum_j (c.d_j) lambda_j + c_x.x
    s.t. sum_j lambda_j = 1                      (the convexity row, dual sigma)
         lo <= sum_j (G d_j) lambda_j + H x <= up (dual y)
         lambda >= 0, x within its bounds.

It has ``k + 1`` rows and a handful of columns, where the full LP has S + k rows and S*A
columns with the transitions' nonzeros (attention (7, 3): 2,188 rows, 17,496 columns, 434,000
nonzeros, 60-270 s in HiGHS). **Pricing**: a column ``d`` improves the master when its reduced
cost ``(c - G^T y).d - sigma`` is positive (maximising; negative minimising), and the best
column is the optimum of the ordinary MDP with reward ``c - G^T y``: solved by the certified
batched policy iteration of :mod:`jaxagg.solvers.mdp` on the transition operator, never the
LP.

**The certificate.** Policy iteration returns a value vector whose dual bound ``U >= max_O
(c - G^T y).d`` holds for any value vector, converged or not. By LP duality (Lagrangian
relaxation of the rule's rows at ``y``), the full LP's optimum is at most the master's optimum
plus ``U - sigma`` (maximising). Within a phase the master's optimum never gets worse as columns
enter, so the tightest such bound of any round holds for the current master: a phase stops,
optimal, when it is within ``COLUMN_TOL * scale`` of the master's optimum (``scale``: half the
range of the current pricing reward), and the result reports it as ``dual_bound``. A column
enters only if its occupancy lies in O (membership residual at most
:data:`jaxagg.solvers.mdp.FEASIBILITY_TOL`), so every point reported is a convex combination of
exact occupancies.

**Feasibility.** Each rule row gets two nonnegative artificial columns (``+a`` and ``-a``). Phase
one minimises their sum by the same column generation; if its certified optimum is above
:data:`PHASE_ONE_TOL` the LP is infeasible (:class:`~jaxagg.errors.InfeasibleError`), else the
artificials are fixed at 0 and phase two optimises the objective. The master's feasible set is a
subset of the full LP's, so an unbounded master proves the full LP unbounded.

**Fallback.** If a pricing round gives neither a bound that ends the phase nor an improving
column in O, or :data:`MAX_ROUNDS` rounds pass, the model solves the full LP in HiGHS from then
on (the result's message says so and why); a correct answer never depends on the column
generation converging.

Columns stay in the pool across solves, so a sequence of related solves (a rule's probes with
new floors, new cuts, new costs) warm-starts from every column found before.

:class:`ColumnModel` has the interface of :class:`jaxagg.solvers.highs.HighsModel` that programs
use (``add_rows``, ``set_row_bounds``, ``set_cost``, ``solve``) over the program's columns
``[d | x]``; results are :class:`~jaxagg.solvers.highs.SolveResult` with ``x [num_cols]``
(``d = sum_j lambda_j d_j``) and ``row_duals`` for the rule's rows (O's rows get NaN: their
duals are the pricing value vectors, which are not reported).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp

from jaxagg.errors import ValidationError
from jaxagg.solvers import mdp
from jaxagg.solvers import polytope as exact
from jaxagg.solvers.highs import INF, HighsModel, SolveResult, SolveStatus, error_of

MIN_DIM = 10_000
"""From this many occupancy coordinates on, LPs (not MILPs) over a flow polytope whose MDP is
known are solved by column generation unless a HiGHS ``solver`` is named (bench/lp.py)."""
COLUMN_TOL = 1e-8
"""A pricing MDP's certified best reduced cost at most this times ``scale`` ends a phase."""
MIN_IMPROVEMENT = mdp.TOL / COLUMN_TOL
"""A pricing column enters the master when it improves on the master's objective by more than
this fraction of the stopping tolerance: the fraction a certified pricing MDP's bracket is at
most, so while the gap is above the tolerance a certified pricing MDP always gives a column.
(With the whole tolerance as the threshold there was a window where neither held: on attention
(7, 3) a gap of 5.5e-8 and a column improving by 5.2e-8 against a tolerance of 5.25e-8 sent
concave Borda's LP to HiGHS.)"""
PHASE_ONE_TOL = 1e-9
"""Largest total artificial (absolute row violation) of a feasible LP after phase one."""
MIXTURE_WEIGHT_TOL = 1e-12
"""Columns of a smaller master weight are left out of a result's ``mixture``."""
LARGE_RESTART = 100
"""GMRES dimension of the value solves in the last pricing attempt of a round."""
MAX_ROUNDS = 500
"""Pricing rounds at most per solve before the full LP takes over."""


def applies(polytope) -> bool:
    """Whether an LP over ``polytope`` can be priced by MDPs: O is the flow polytope of a known
    MDP (no auxiliary columns)."""
    return polytope.transitions is not None and polytope.num_aux == 0


class ColumnModel:
    """An LP over O plus a program's rows and variables, solved by column generation (module
    docstring).

    Args:
        program: the :class:`~jaxagg.solvers.program.OccupancyProgram` (its rows and variables
            at this moment are copied; :func:`applies` must hold for its polytope, and it must
            have no integer variables).
        cost: ``[num_cols]`` objective over the program's columns.
        sense: ``"max"`` or ``"min"``.
        time_limit: seconds per :meth:`solve` (``None``: none); a solve that reaches it raises
            :class:`~jaxagg.errors.SolverTimeoutError` carrying the current master point (feasible
            once phase one has ended).
        what: the program's name for messages.
        fallback_solver: HiGHS's ``solver`` for the full LP if it takes over (``"ipm"`` suits a
            one-shot solve of a large LP, ``"choose"`` a warm-started sequence).
        options: passed on to the full LP's :class:`HighsModel` if it takes over.
    """

    def __init__(self, program, cost: np.ndarray, sense: str = "max", *, time_limit: float | None = None,
                 what: str = "program", fallback_solver: str = "choose", **options) -> None:
        polytope = program.polytope
        if not applies(polytope):
            raise ValidationError(f"{what}: column generation needs the flow polytope of a known MDP")
        if any(program._integer_flags()):
            raise ValidationError(f"{what}: column generation solves LPs, not MILPs")
        if sense not in ("min", "max"):
            raise ValidationError(f"sense: expected 'min' or 'max', got {sense!r}")
        self.program = program
        self.polytope = polytope
        self.sense = sense
        self.what = what
        self.time_limit = time_limit
        self.options = dict(options, time_limit=time_limit, what=what, solver=fallback_solver)
        self.dim = polytope.dim
        self.num_o_rows = polytope.E.shape[0]
        self.num_cols = program.num_cols
        self.cost = program.full_cost(cost)
        self.col_lower = np.concatenate(program._col_lower) if program._col_lower else np.zeros(0)
        self.col_upper = np.concatenate(program._col_upper) if program._col_upper else np.zeros(0)
        self.rows = sp.csr_matrix((0, self.num_cols))  # the rule's rows over [d | x]
        self.row_lower = np.zeros(0)
        self.row_upper = np.zeros(0)
        self.columns = np.zeros((self.dim, 0))  # the occupancies d_j, one per lambda column
        self.policies: list[np.ndarray] = []  # their policies [S, A]
        self.rounds = 0
        self._last_policy: np.ndarray | None = None  # [1, S, A], the last pricing optimum
        self._exact_transitions = None  # the sparse [S*A, S] matrix, built if the exact map is needed
        self._full: HighsModel | None = None
        self._why_full = ""
        # master columns: x first, then artificials and lambdas in the order they are added
        num_extra = self.num_cols - self.dim
        self._extra_columns = np.arange(num_extra)
        self._artificial_columns = np.zeros(0, dtype=np.int64)
        self._lambda_columns = np.zeros(0, dtype=np.int64)
        self.master = HighsModel(self.cost[self.dim:], sp.csr_matrix((1, num_extra)), [1.0], [1.0], self.col_lower,
                                 self.col_upper, sense=sense, what=f"{what} (master)", solver="simplex")
        if program._rows:
            self.add_rows(sp.vstack([exact.pad_columns(sp.csr_matrix(block, dtype=np.float64), self.num_cols) for block in program._rows],
                                    format="csr"),
                          np.concatenate(program._row_lower), np.concatenate(program._row_upper))

    # ------------------------------------------------------------ HighsModel's interface
    @property
    def num_rows(self) -> int:
        """O's rows plus the rule's rows (the program's row numbering)."""
        return self.num_o_rows + self.rows.shape[0]

    def add_rows(self, matrix: sp.spmatrix | np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> np.ndarray:
        """Append rows ``lower <= matrix @ [d | x] <= upper`` (``matrix [k, num_cols]``); returns
        their indices in the program's numbering."""
        block = sp.csr_matrix(matrix, dtype=np.float64)
        if block.shape[1] != self.num_cols:
            raise ValidationError(f"matrix: expected {self.num_cols} columns, got shape {block.shape}")
        k = block.shape[0]
        lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (k,)).copy()
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (k,)).copy()
        first = self.num_rows
        self.rows = sp.vstack([self.rows, block], format="csr")
        self.row_lower = np.concatenate([self.row_lower, lower])
        self.row_upper = np.concatenate([self.row_upper, upper])
        if self._full is not None:
            self._full.add_rows(block, lower, upper)
            return np.arange(first, first + k)
        master_rows = np.zeros((k, self.master.num_cols))
        master_rows[:, self._extra_columns] = block[:, self.dim:].toarray()
        master_rows[:, self._lambda_columns] = block[:, : self.dim] @ self.columns
        self.master.add_rows(master_rows, lower, upper)
        # two artificials (+a, -a) per new row: the rows can always be met in phase one
        pair = sp.vstack([sp.csc_matrix((self.master.num_rows - k, k)), sp.identity(k, format="csc")], format="csc")
        added = self.master.add_columns(sp.hstack([pair, -pair], format="csc"), 0.0, 0.0, INF)
        self._artificial_columns = np.concatenate([self._artificial_columns, added])
        return np.arange(first, first + k)

    def set_row_bounds(self, rows: np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> None:
        """Change the bounds of rule rows ``[k]`` (program numbering; O's rows are fixed)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and rows.min() < self.num_o_rows:
            raise ValidationError(f"rows: the occupancy polytope's rows (< {self.num_o_rows}) cannot change")
        k = rows.size
        lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (k,))
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (k,))
        self.row_lower[rows - self.num_o_rows] = lower
        self.row_upper[rows - self.num_o_rows] = upper
        if self._full is not None:
            self._full.set_row_bounds(rows, lower, upper)
        else:
            self.master.set_row_bounds(1 + rows - self.num_o_rows, lower, upper)

    def set_cost(self, cost: np.ndarray) -> None:
        """Replace the objective ``[num_cols]``."""
        cost = np.asarray(cost, dtype=np.float64).reshape(-1)
        if cost.shape != (self.num_cols,):
            raise ValidationError(f"cost: expected [{self.num_cols}], got shape {cost.shape}")
        self.cost = cost.copy()
        if self._full is not None:
            self._full.set_cost(cost)

    def set_start(self, x: np.ndarray) -> bool:
        """LPs take no start: returns False."""
        return False

    def solve(self, raise_on_failure: bool = True) -> SolveResult:
        """Phase one, then phase two, by column generation (module docstring); the full LP in
        HiGHS if the column generation cannot finish. Raises a typed error unless optimal (by
        default)."""
        began = time.perf_counter()
        if self._full is None:
            result = self._generate(began)
            if result is None:
                self._full = self._full_model()
        if self._full is not None:
            full = self._full.solve(raise_on_failure=False)
            result = _with(full, solve_time=time.perf_counter() - began,
                           message=f"{full.message} (full LP: {self._why_full})")
        if raise_on_failure and not result.ok:
            raise error_of(result, self.what, self.time_limit)
        return result

    # ------------------------------------------------------------ the generation
    def _add_columns(self, occupancies: np.ndarray, policies: np.ndarray) -> None:
        """Append occupancies ``[K, S*A]`` of ``policies [K, S, A]`` as lambda columns (their
        objective is set per phase)."""
        occupancies = np.atleast_2d(occupancies)
        self.policies.extend(np.asarray(policies).reshape(occupancies.shape[0], self.polytope.num_states, -1))
        entries = np.vstack([np.ones((1, occupancies.shape[0])), self.rows[:, : self.dim] @ occupancies.T])
        added = self.master.add_columns(entries, 0.0, 0.0, INF)
        self._lambda_columns = np.concatenate([self._lambda_columns, added])
        self.columns = np.hstack([self.columns, occupancies.T])

    def _master_cost(self, phase: int) -> np.ndarray:
        """The master's objective: phase 1 the artificials' sum (minimised: so their cost is -1
        when maximising), phase 2 the program's cost."""
        cost = np.zeros(self.master.num_cols)
        if phase == 1:
            cost[self._artificial_columns] = -1.0 if self.sense == "max" else 1.0
        else:
            cost[self._extra_columns] = self.cost[self.dim:]
            cost[self._lambda_columns] = self.cost[: self.dim] @ self.columns
        return cost

    def _pricing_reward(self, phase: int, duals: np.ndarray) -> np.ndarray:
        """``[S*A]``: ``c - G^T y`` (``c`` zero in phase one)."""
        base = np.zeros(self.dim) if phase == 1 else self.cost[: self.dim]
        return base - self.rows[:, : self.dim].T @ duals[1:]

    def _price(self, reward: np.ndarray) -> tuple[np.ndarray | None, float, float, np.ndarray]:
        """``(occupancy [S*A] or None, attained, bound, policy [1, S, A])`` for ``sense <reward, d>`` over O, in the
        master's sense: ``occupancy`` is the best policy-iteration occupancy found in O (else
        ``None``, and ``attained`` is -inf maximising), ``bound`` the tightest dual bound of the
        runs' value vectors, valid whether or not an MDP was certified (an upper bound
        maximising, NaN if none is finite).

        Policy iteration starts from the uniform policy; while the best column and the best
        bound are not within the certification tolerance of each other it is run again from the
        last pricing policy mixed with the uniform one (full support: unichain where the
        average-reward engine needs it), then from there with GMRES(:data:`LARGE_RESTART`) value
        solves. The column and the bound are kept separately (each run's column is attained and
        each run's bound is valid, so the best of each serves): one run's exact occupancy can
        be the best column while another's value vector gives the best bound. A policy whose
        occupancy the batched kernel could not evaluate gets it from the exact sparse map
        (:func:`jaxagg.solvers.polytope.occupancy_of_policy`). (On attention (7, 3) slowly
        mixing policies defeat GMRES(30) value and occupancy solves; each fallback here
        certified pricing MDPs the others could not.)"""
        sign = 1.0 if self.sense == "max" else -1.0
        A = self.polytope.num_actions
        warm = None if self._last_policy is None else 0.5 * (self._last_policy + 1.0 / A)
        occupancy, attained, policy, bound = None, -sign * np.inf, None, float("nan")
        attempts = [(None, None)] + ([] if warm is None else [(warm, None)]) + [(warm, LARGE_RESTART)]
        for start, restart in attempts:
            run_occupancy, run_attained, run_bound, scale, run_policy = self._pricing_run(reward, start, restart)
            if run_occupancy is not None and (occupancy is None or sign * run_attained > sign * attained):
                occupancy, attained, policy = run_occupancy, run_attained, run_policy
            if np.isfinite(run_bound) and (np.isnan(bound) or sign * run_bound < sign * bound):
                bound = run_bound
            if occupancy is not None and sign * (bound - attained) <= mdp.TOL * scale:
                break
        if occupancy is not None:
            self._last_policy = policy
        return occupancy, attained, bound, policy

    def _pricing_run(self, reward: np.ndarray, start: np.ndarray | None, restart: int | None) -> tuple:
        """One policy iteration on the pricing MDP: ``(occupancy or None, attained, bound,
        scale, policy [1, S, A])`` in the master's sense (``attained`` -inf maximising without
        an occupancy in O, ``bound`` NaN when not finite)."""
        sign = 1.0 if self.sense == "max" else -1.0
        polytope = self.polytope
        S, A = polytope.num_states, polytope.num_actions
        out = mdp.solve_mdps(polytope.transitions, (sign * reward).reshape(1, S, A), polytope.mu, polytope.gamma,
                             start=start, **({} if restart is None else {"restart": restart}))
        occupancy = out.occupancy[0]
        if not out.residual[0] <= mdp.FEASIBILITY_TOL and np.isfinite(out.policy).all():
            if self._exact_transitions is None:
                self._exact_transitions = exact.transition_matrix(polytope.transitions)
            occupancy = exact.occupancy_of_policy(self._exact_transitions, polytope.mu, polytope.gamma, out.policy[0])
        inside = bool(np.isfinite(occupancy).all()) and polytope.residual(occupancy) <= mdp.FEASIBILITY_TOL
        attained = float(reward @ occupancy) if inside else -sign * np.inf
        bound = sign * float(out.upper[0]) if np.isfinite(out.upper[0]) else float("nan")
        return (occupancy if inside else None), attained, bound, float(out.scale[0]), out.policy

    def _generate(self, began: float) -> SolveResult | None:
        """Both phases; ``None`` when the full LP must take over (``_why_full`` says why)."""
        if not self.columns.shape[1]:
            occupancy, _, _, policy = self._price(self.cost[: self.dim])
            if occupancy is None:
                self._why_full = "policy iteration found no first column"
                return None
            self._add_columns(occupancy, policy)
        self.master.set_col_bounds(self._artificial_columns, 0.0, INF)
        result = self._phase(1, began)
        if result is None or not result.ok:
            return result
        infeasibility = abs(result.objective)
        if infeasibility > PHASE_ONE_TOL:
            return SolveResult(status=SolveStatus.INFEASIBLE, x=None, objective=float("nan"), row_duals=None, mip_gap=0.0,
                               solve_time=time.perf_counter() - began, is_mip=False,
                               message=f"infeasible: the rows cannot be met within {infeasibility:.3g} (certified by column "
                                       "generation)", highs_status="column-generation", dual_bound=float("nan"))
        self.master.set_col_bounds(self._artificial_columns, 0.0, 0.0)
        return self._phase(2, began)

    def _phase(self, phase: int, began: float) -> SolveResult | None:
        """Column generation to a certified optimum of one phase's master."""
        sign = 1.0 if self.sense == "max" else -1.0
        best_bound = sign * np.inf  # the tightest Lagrangian bound on the phase's optimum so far
        while True:
            self.master.set_cost(self._master_cost(phase))
            master = self.master.solve(raise_on_failure=False)
            if not master.ok:
                if master.status is SolveStatus.UNBOUNDED and phase == 2:  # the master's feasible set is in the LP's
                    return _with(master, solve_time=time.perf_counter() - began, x=None)
                self._why_full = f"the phase-{phase} master ended '{master.message}'"
                return None
            if phase == 1 and abs(master.objective) <= PHASE_ONE_TOL / 10:
                return self._result(master, 0.0, began)
            reward = self._pricing_reward(phase, master.row_duals)
            occupancy, attained, bound, policy = self._price(reward)
            tol = COLUMN_TOL * max((reward.max() - reward.min()) / 2.0, np.abs(reward).max() * 1e-12, 1e-300)
            if np.isfinite(bound):  # the master's objective only improves within a phase, so every bound stays valid
                round_bound = master.objective + bound - master.row_duals[0]
                best_bound = min(best_bound, round_bound) if sign > 0 else max(best_bound, round_bound)
            gap = sign * (best_bound - master.objective)
            if gap <= tol:
                return self._result(master, max(gap, 0.0), began)
            if not sign * (attained - master.row_duals[0]) > MIN_IMPROVEMENT * tol:
                self._why_full = "policy iteration could not certify a pricing MDP"
                return None
            self.rounds += 1
            if self.rounds > MAX_ROUNDS:
                self._why_full = f"column generation did not finish in {MAX_ROUNDS} rounds"
                return None
            if self.time_limit is not None and time.perf_counter() - began > self.time_limit:
                return self._timed_out(master if phase == 2 else None, began)
            self._add_columns(occupancy, policy)

    def _timed_out(self, master: SolveResult | None, began: float) -> SolveResult:
        """The time-limit result, with the master's point when it is feasible (phase two)."""
        return SolveResult(status=SolveStatus.TIME_LIMIT, x=None if master is None else self._point(master.x),
                           objective=float("nan") if master is None else master.objective, row_duals=None, mip_gap=0.0,
                           solve_time=time.perf_counter() - began, is_mip=False, message="time limit (column generation)",
                           highs_status="column-generation", dual_bound=float("nan"))

    def _point(self, master_x: np.ndarray) -> np.ndarray:
        """The program's point ``[num_cols]`` of a master point: ``[sum_j lambda_j d_j | x]``."""
        return np.concatenate([self.columns @ master_x[self._lambda_columns], master_x[self._extra_columns]])

    def _result(self, master: SolveResult, gap: float, began: float) -> SolveResult:
        sign = 1.0 if self.sense == "max" else -1.0
        duals = np.concatenate([np.full(self.num_o_rows, np.nan), master.row_duals[1:]])
        weights = np.clip(master.x[self._lambda_columns], 0.0, None)
        used = np.flatnonzero(weights > MIXTURE_WEIGHT_TOL)
        mixture = (weights[used] / weights[used].sum(), np.stack([self.policies[k] for k in used])) if used.size else None
        return SolveResult(status=SolveStatus.OPTIMAL, x=self._point(master.x), objective=master.objective, row_duals=duals,
                           mip_gap=0.0, solve_time=time.perf_counter() - began, is_mip=False,
                           message=f"optimal (column generation: {self.columns.shape[1]} columns, {self.rounds} rounds, "
                                   f"certified gap {gap:.3g})",
                           highs_status="column-generation", dual_bound=master.objective + sign * gap, mixture=mixture)

    def _full_model(self) -> HighsModel:
        """The full LP in HiGHS, with every row and bound added so far."""
        matrix = sp.vstack([exact.pad_columns(sp.csr_matrix(self.polytope.E), self.num_cols), self.rows], format="csc")
        return HighsModel(self.cost, matrix, np.concatenate([self.polytope.b, self.row_lower]),
                          np.concatenate([self.polytope.b, self.row_upper]),
                          np.concatenate([np.zeros(self.dim), self.col_lower]), np.concatenate([np.full(self.dim, INF), self.col_upper]),
                          sense=self.sense, **self.options)


def _with(result: SolveResult, **changes) -> SolveResult:
    return dataclasses.replace(result, **changes)
