"""Machinery every rule shares: agents' affine scores, programs over O with return floors and a
level variable, sampled thresholds lifted past solver tolerances, and Kelley's cutting planes for
separable concave objectives. Rule modules compose these; none of them lives inside one rule.

Every LP and MILP runs in *unit scales*, whatever the scale of the rewards (1e-12 and 1e12 alike):

* normalised scores ``u_i = (J_i - min_O J_i) / (max_O J_i - min_O J_i)``, in [0, 1] on O, are
  ``W[i] @ d`` with the centred, scaled rewards ``W[i] = (R_i - min_O J_i) / span_i`` (every
  occupancy sums to 1, so the shift folds into the rewards); floors and sampled thresholds
  become rows on ``W`` in these units, and are reported back in the user's units;
* raw scores ``J_i`` (the scale-dependent welfare rules) are ``unit * (W[i] @ d)`` with one
  global factor ``unit = max |R|``.

A degenerate agent (its return is the same for every policy, up to
:data:`jaxagg.solvers.program.DEGENERATE_RTOL`) is indifferent: it gets ``u_i = 1``
(``W[i] = 0``, ``c[i] = 1``), every floor or threshold of it is met by every policy and adds no
row, and it approves and ranks every policy at the top. The same in every rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from jaxagg.errors import ConvergenceError, ShapeError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import normalized_rewards, occupancy_polytope, return_bounds
from jaxagg.solvers.highs import INF, SolveResult
from jaxagg.solvers.program import OccupancyProgram

THRESHOLD_MARGIN = 1e-9
"""Relative amount by which volumetric rules ask to clear a sampled threshold (see
:func:`lift_thresholds`)."""


class Scores(NamedTuple):
    """Agents' scores ``unit * (W @ d + c)`` in the user's units (see the module docstring).

    Attributes:
        W: ``[n, S*A]`` unit-scale coefficients.
        c: ``[n]`` constants (1 for a degenerate agent's normalised score, else 0).
        unit: the factor back to the user's units (1 for normalised scores, ``max |R|`` for raw).
    """

    W: np.ndarray
    c: np.ndarray
    unit: float


def agent_scores(momdp: MOMDP, normalized: bool) -> Scores:
    """Raw returns or normalised returns as unit-scale :class:`Scores`."""
    if not normalized:
        unit = float(np.abs(momdp.reward_matrix).max())
        return Scores(momdp.reward_matrix / unit, np.zeros(momdp.num_agents), unit)
    return Scores(normalized_rewards(momdp), return_bounds(momdp).degenerate.astype(np.float64), 1.0)


def floor_bounds(momdp: MOMDP, floors: np.ndarray) -> np.ndarray:
    """Row bounds, in unit scale, of the floor rows of :func:`floored_program` for raw-return
    ``floors [n]`` (``-inf``: no floor); one per non-degenerate agent."""
    floors = np.asarray(floors, dtype=np.float64)
    if floors.shape != (momdp.num_agents,):
        raise ShapeError(f"floors: expected shape [{momdp.num_agents}], got {floors.shape}")
    bounds = return_bounds(momdp)
    live = ~bounds.degenerate
    return np.maximum((floors[live] - bounds.lower[live]) / bounds.span[live], -INF)


def floored_program(momdp: MOMDP, floors: np.ndarray | None) -> OccupancyProgram:
    """O, plus (when ``floors [n]`` is given) one row ``J_i(d) >= floors[i]`` per
    non-degenerate agent, in unit scale (``-inf`` entries: no floor; the bounds can be changed
    later with :func:`floor_bounds`)."""
    program = OccupancyProgram(occupancy_polytope(momdp))
    if floors is not None:
        lower = floor_bounds(momdp, floors)
        live = ~return_bounds(momdp).degenerate
        program.add_rows(normalized_rewards(momdp)[live], lower=lower, upper=INF)
    return program


def level_program(momdp: MOMDP, scores: Scores, agents: np.ndarray,
                  floors: np.ndarray | None = None) -> tuple[OccupancyProgram, int, int]:
    """O (with ``floors``) plus a free level ``t`` and rows ``W[i] d - t >= -c[i]`` for
    ``agents``; returns (program, column of t, index of the first level row)."""
    program = floored_program(momdp, floors)
    (t,) = program.add_variables(1)
    rows = program.rows_in(scores.W[agents], [t], -np.ones((agents.size, 1)))
    first = program.num_rows
    program.add_rows(rows, lower=-scores.c[agents], upper=INF)
    return program, int(t), first


class LevelProbe:
    """``max_{d in O} min_i (u_i(d) - f_i)`` over the non-degenerate agents for raw-return floors
    ``f [n]`` (in unit scale), on one warm-started LP (:func:`level_program`, normalised scores,
    maximise the free level ``t``). It is always feasible, so a probe whose floors no policy
    meets costs a few dual simplex pivots and keeps the warm start (a feasibility LP took 1,000+
    iterations to prove such floors infeasible on attention (5, 3), and lost its basis)."""

    def __init__(self, momdp: MOMDP, what: str) -> None:
        self.momdp = momdp
        self.live = ~return_bounds(momdp).degenerate
        program, t, first = level_program(momdp, agent_scores(momdp, True), np.flatnonzero(self.live))
        self.program = program
        self.rows = np.arange(first, first + int(self.live.sum()))
        self.model = program.build(unit_cost(program.num_cols, t), sense="max", what=what)

    def __call__(self, floors: np.ndarray) -> tuple[float, np.ndarray, SolveResult]:
        """``(slack, raw returns [n] of the maximiser, the solve)`` for raw ``floors [n]``;
        ``slack >= 0`` iff some policy meets every floor."""
        self.model.set_row_bounds(self.rows, floor_bounds(self.momdp, floors), INF)
        result = self.model.solve()
        return float(result.objective), self.momdp.returns(self.program.occupancy(result)), result


def highest_level(probe: LevelProbe, floors_at: Callable[[int], np.ndarray], reached: Callable[[np.ndarray], int],
                  low: int, high: int, solves: list) -> int:
    """The largest ``k`` in ``[low, high]`` at which some policy meets every floor ``floors_at(k)
    [n]`` (raw returns, ascending in ``k``; level ``low`` is known to hold), by bisection with
    :class:`LevelProbe` probes (appended to ``solves``). A probe that holds has a maximiser
    meeting the floors of every level up to ``reached(its returns [n])``, so the lower end jumps
    there (typically 20-25% fewer LPs than plain bisection, each a cheap warm start)."""
    if not probe.live.any():
        return high
    while low < high:
        middle = (low + high + 1) // 2
        slack, returns, result = probe(floors_at(middle))
        solves.append(result)
        if slack >= 0.0:
            low = max(middle, min(reached(returns), high))
        else:
            high = middle - 1
    return low


def unit_cost(size: int, index) -> np.ndarray:
    """A cost vector ``[size]``: 1 at ``index`` (an int or an index array), 0 elsewhere."""
    cost = np.zeros(size)
    cost[index] = 1.0
    return cost


def lift_thresholds(momdp: MOMDP, thresholds: np.ndarray) -> np.ndarray:
    """Sampled raw-return thresholds ``[n]`` or ``[n, K]`` raised by ``THRESHOLD_MARGIN`` of each
    agent's return range, so that LP/MILP tolerances cannot leave a return just below a sample
    value (which would cost that agent one sample of rank). Infinite thresholds and those at
    ``max_O J_i`` are left alone: nothing lies above them; a degenerate agent's become ``-inf``."""
    bounds = return_bounds(momdp)
    t = np.asarray(thresholds, dtype=np.float64)
    shape = (-1,) + (1,) * (t.ndim - 1)
    span, upper = bounds.span.reshape(shape), bounds.upper.reshape(shape)
    lifted = np.where(np.isfinite(t) & (t < upper), t + THRESHOLD_MARGIN * span, t)
    return np.where(bounds.degenerate.reshape(shape), -np.inf, lifted)  # met by every policy


def threshold_binaries(program: OccupancyProgram, momdp: MOMDP, thresholds: np.ndarray, *,
                       lift: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Add binaries ``b [n, K]`` to ``program`` with ``b_ik = 1`` only if agent i's return
    reaches the lifted raw threshold ``thresholds[i, k]`` (approval, epsilon-Borda; with
    ``lift=False`` the threshold as given, for relaxations that must admit every policy reaching it).

    Rows, in unit scale: ``u_i(d) - M_ik b_ik >= target_ik - M_ik`` with ``target`` the lifted
    threshold as a normalised score and the valid big-M ``M_ik = max(target_ik, 0)`` (``u >= 0``
    on O, so a row with ``b = 0`` never cuts O). ``u_i`` is a defined variable
    (:meth:`OccupancyProgram.add_defined`: one dense row per agent), so each big-M row has two
    entries, not ``S*A + 1``: the epsilon-Borda MILP on attention (5, 3), K = 20, solved 4-6x
    faster (bench/RESULTS.md). A degenerate agent's binaries are fixed to 1 without rows.
    Returns ``(b [n, K] column indices, lifted raw targets [n, K])``.
    """
    bounds = return_bounds(momdp)
    n, K = thresholds.shape
    lifted = lift_thresholds(momdp, thresholds) if lift else np.where(bounds.degenerate[:, None], -np.inf, thresholds)
    target = to_unit_scale(momdp, lifted)
    big_m = np.maximum(target, 0.0)
    live = ~bounds.degenerate
    fixed = np.repeat(bounds.degenerate.astype(np.float64), K)
    b = program.add_variables(n * K, lower=fixed, upper=1.0, integer=True).reshape(n, K)
    if live.any():
        score = program.add_defined(normalized_rewards(momdp)[live])  # [n_live] u_i(d), one dense row each
        binaries = b[live].reshape(-1)
        rows = np.arange(binaries.size)
        coefficients = sp.csr_matrix(
            (np.concatenate([np.ones(binaries.size), -big_m[live].reshape(-1)]),
             (np.concatenate([rows, rows]), np.concatenate([np.repeat(score, K), binaries]))),
            shape=(binaries.size, program.num_cols))
        program.add_rows(coefficients, lower=(target - big_m)[live].reshape(-1), upper=INF)
    return b, lifted


def to_unit_scale(momdp: MOMDP, thresholds: np.ndarray) -> np.ndarray:
    """Raw-return thresholds ``[n, ...]`` as normalised scores ``(t - min_O J_i) / span_i``."""
    bounds = return_bounds(momdp)
    t = np.asarray(thresholds, dtype=np.float64)
    shape = (-1,) + (1,) * (t.ndim - 1)
    return (t - bounds.lower.reshape(shape)) / bounds.span.reshape(shape)


def maximize_separable_concave(
    program: OccupancyProgram,
    W: np.ndarray,
    c: np.ndarray,
    phi: Callable[[np.ndarray], np.ndarray],
    slope: Callable[[np.ndarray], np.ndarray],
    tangents: np.ndarray,
    *,
    tol: float,
    max_iterations: int,
    lowest: float = -np.inf,
    what: str,
) -> tuple[np.ndarray, float, float, list[SolveResult]]:
    """Maximise ``sum_i phi_i(score_i(d))`` over ``program`` (O plus any rows), each ``phi_i``
    concave and increasing, by Kelley's cutting planes on one warm-started model.

    Variables ``z_i <= phi_i(score_i)`` are bounded by tangents
    ``z_i <= phi_i(a) + phi_i'(a) (score_i - a)``; each round adds the tangents at the current
    scores (clipped below at ``lowest``) until the LP bound exceeds the true value by at most
    ``tol``. ``phi(x)`` and ``slope(x)`` act elementwise on ``[n, k]`` arrays of points
    (row i: agent i); ``tangents [n, k]`` are the first points.

    Returns ``(occupancy [S*A], value, gap, solves)`` (one SolveResult per round).

    Raises:
        ConvergenceError: the gap is still above ``tol`` after ``max_iterations`` rounds.
    """
    n = W.shape[0]
    z = program.add_variables(n)
    program.add_rows(*_tangent_rows(program, W, c, z, tangents, phi, slope))
    model = program.build(unit_cost(program.num_cols, z), sense="max", what=what)
    solves: list[SolveResult] = []
    gap = np.inf
    for _ in range(max_iterations):
        result = model.solve()
        solves.append(result)
        occupancy = program.occupancy(result)
        scores = W @ occupancy + c
        value = float(phi(scores[:, None]).sum())
        gap = result.objective - value
        if gap <= tol:
            return occupancy, value, float(gap), solves
        model.add_rows(*_tangent_rows(program, W, c, z, np.maximum(scores, lowest)[:, None], phi, slope))
    raise ConvergenceError(f"{what}: cutting planes did not reach gap {tol} in {max_iterations} rounds "
                           f"(gap {gap:.3g}); raise max_iterations")


def _tangent_rows(program: OccupancyProgram, W: np.ndarray, c: np.ndarray, z: np.ndarray, points: np.ndarray,
                  phi, slope) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Rows ``z_i - g (W[i] d) <= phi(a) - g a + g c[i]`` with ``g = phi'(a)``, for every agent
    i and tangent point a in ``points[i]`` (``[n, k]``); returns ``(matrix, lower, upper)``."""
    n, k = points.shape
    agent = np.repeat(np.arange(n), k)
    a = points.reshape(-1)
    values = phi(points).reshape(-1)
    g = slope(points).reshape(-1)
    rows = program.rows_in(-g[:, None] * W[agent], z, (agent[:, None] == np.arange(n)[None, :]).astype(float))
    return rows, np.full(a.size, -INF), values - g * a + g * c[agent]
