"""Machinery every rule shares: agents' affine scores, programs over O with return floors and a
level variable, sampled thresholds lifted past solver tolerances, and Kelley's cutting planes for
separable concave objectives. Rule modules compose these; none of them lives inside one rule.

"Scores" are affine in the flat occupancy d: ``score_i(d) = W[i] @ d + c[i]``. Raw: ``W = R``,
``c = 0``. Normalised: ``u_i = (J_i - min_O J_i) / (max_O J_i - min_O J_i)``; a degenerate agent
(constant return) has ``u_i = 1``, i.e. ``W[i] = 0``, ``c[i] = 1``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from jaxagg.errors import ConvergenceError, ShapeError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_polytope, return_bounds
from jaxagg.solvers.highs import INF, SolveResult
from jaxagg.solvers.program import OccupancyProgram

THRESHOLD_MARGIN = 1e-9
"""Relative amount by which volumetric rules ask to clear a sampled threshold (see
:func:`lift_thresholds`)."""


def agent_scores(momdp: MOMDP, normalized: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(W [n, S*A], c [n])`` with score ``W @ d + c``: raw returns or normalised returns."""
    if not normalized:
        return momdp.reward_matrix, np.zeros(momdp.num_agents)
    bounds = return_bounds(momdp)
    W = momdp.reward_matrix / bounds.span[:, None]
    c = -bounds.lower / bounds.span
    W = np.where(bounds.degenerate[:, None], 0.0, W)
    c = np.where(bounds.degenerate, 1.0, c)
    return W, c


def floored_program(momdp: MOMDP, floors: np.ndarray | None) -> OccupancyProgram:
    """O, plus rows ``J_i(d) >= floors[i]`` when ``floors [n]`` is given (``-inf`` entries: no floor)."""
    program = OccupancyProgram(occupancy_polytope(momdp))
    if floors is not None:
        floors = np.asarray(floors, dtype=np.float64)
        if floors.shape != (momdp.num_agents,):
            raise ShapeError(f"floors: expected shape [{momdp.num_agents}], got {floors.shape}")
        program.add_rows(momdp.reward_matrix, lower=np.maximum(floors, -INF), upper=INF)
    return program


def level_program(momdp: MOMDP, W: np.ndarray, c: np.ndarray, agents: np.ndarray,
                  floors: np.ndarray | None = None) -> tuple[OccupancyProgram, int]:
    """O (with ``floors``) plus a free level ``t`` and rows ``W[i] d - t >= -c[i]`` for
    ``agents``; returns (program, column of t)."""
    program = floored_program(momdp, floors)
    (t,) = program.add_variables(1)
    rows = program.rows_in(W[agents], [t], -np.ones((agents.size, 1)))
    program.add_rows(rows, lower=-c[agents], upper=INF)
    return program, int(t)


def unit_cost(size: int, index) -> np.ndarray:
    """A cost vector ``[size]``: 1 at ``index`` (an int or an index array), 0 elsewhere."""
    cost = np.zeros(size)
    cost[index] = 1.0
    return cost


def lift_thresholds(thresholds: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Sampled thresholds raised by ``THRESHOLD_MARGIN * max(1, |t|)``, so that LP/MILP
    tolerances cannot leave a return just below a sample value (which would cost that agent one
    sample of rank). Infinite thresholds and those at ``upper`` (``max_O J_i``, broadcastable)
    are left alone: nothing lies above them."""
    t = np.asarray(thresholds, dtype=np.float64)
    lifted = t + THRESHOLD_MARGIN * np.maximum(1.0, np.abs(np.where(np.isfinite(t), t, 0.0)))
    return np.where(np.isfinite(t) & (t < upper), lifted, t)


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
