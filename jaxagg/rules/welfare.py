"""Welfare baselines (SPEC §3): utilitarian, egalitarian, leximin and Nash, on raw or normalised
returns. Each is an LP (or a short sequence of LPs) over the occupancy polytope.

"Scores" below are affine in d: ``score_i(d) = W[i] @ d + c[i]``. Raw: ``W = R``, ``c = 0``.
Normalised: ``u_i = (J_i - min_O J_i) / (max_O J_i - min_O J_i)``; a degenerate agent (constant
return) has ``u_i = 1``, i.e. ``W[i] = 0``, ``c[i] = 1``.
"""

from __future__ import annotations

import numpy as np

from jaxagg.errors import InfeasibleError, ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.rules.outcome import Outcome, SolverStats, make_outcome
from jaxagg.rules.registry import register
from jaxagg.solvers.highs import INF
from jaxagg.solvers.polytope import occupancy_polytope, return_bounds
from jaxagg.solvers.program import OccupancyProgram

LEXIMIN_DUAL_TOL = 1e-9
NASH_GAP_TOL = 1e-6
"""Nash stops when the LP bound on ``sum log score`` is within this of the true value (the
product of scores within a relative 1e-6); tighter gaps hit HiGHS's feasibility tolerance."""
NASH_INITIAL_TANGENTS = 2.0 ** -np.arange(0, 11)


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


def utilitarian(momdp: MOMDP, *, normalized: bool = False, floors: np.ndarray | None = None) -> Outcome:
    """Maximise ``sum_i score_i(d)`` (one LP); ``floors [n]``: only policies with raw returns
    ``J_i >= floors[i]`` (a volumetric rule's completion)."""
    W, c = agent_scores(momdp, normalized)
    stats = SolverStats()
    program = floored_program(momdp, floors)
    result = stats.record(program.solve(W.sum(axis=0), sense="max", what="utilitarian LP"))
    return make_outcome(momdp, _name("utilitarian", normalized), program.occupancy(result), stats,
                        welfare=float(result.objective + c.sum()))


def egalitarian(momdp: MOMDP, *, normalized: bool = False, floors: np.ndarray | None = None) -> Outcome:
    """Maximise ``min_i score_i(d)`` (one LP with a level variable ``t``); ``floors`` as in
    :func:`utilitarian`."""
    W, c = agent_scores(momdp, normalized)
    stats = SolverStats()
    program, t = _level_program(momdp, W, c, np.arange(momdp.num_agents), floors)
    result = stats.record(program.solve(_unit(program.num_cols, t), sense="max", what="egalitarian LP"))
    return make_outcome(momdp, _name("egalitarian", normalized), program.occupancy(result), stats,
                        level=float(result.x[t]))


def leximin(momdp: MOMDP, *, normalized: bool = False, tol: float = 1e-9, floors: np.ndarray | None = None) -> Outcome:
    """Leximin: maximise the minimum over the agents not yet fixed, fix the agents that attain
    it in every optimum, repeat (at most n LPs).

    An agent is fixed when its row ``score_i >= t`` has a positive dual: by complementary
    slackness every maximiser then gives it exactly the level. Fixed agents keep
    ``score_j >= level_j - tol * max(1, |level_j|)``. ``floors`` as in :func:`utilitarian`.
    """
    W, c = agent_scores(momdp, normalized)
    n = momdp.num_agents
    levels = np.full(n, np.nan)
    order: list[list[int]] = []
    stats = SolverStats()
    occupancy = None
    while np.isnan(levels).any():
        free = np.flatnonzero(np.isnan(levels))
        program, t = _level_program(momdp, W, c, free, floors)
        fixed = np.flatnonzero(~np.isnan(levels))
        if fixed.size:
            floor = levels[fixed] - tol * np.maximum(1.0, np.abs(levels[fixed]))
            program.add_rows(W[fixed], lower=floor - c[fixed])
        result = stats.record(program.solve(_unit(program.num_cols, t), sense="max", what=f"leximin LP {len(order) + 1}"))
        occupancy = program.occupancy(result)
        first = program.polytope.E.shape[0] + (0 if floors is None else momdp.num_agents)
        duals = np.abs(result.row_duals[first : first + free.size])
        tight = free[duals > LEXIMIN_DUAL_TOL]
        if tight.size == 0:  # numerically flat duals: fix the worst-off free agent
            tight = free[[np.argmin(W[free] @ occupancy + c[free])]]
        levels[tight] = result.x[t]
        order.append(tight.tolist())
    return make_outcome(momdp, _name("leximin", normalized), occupancy, stats,
                        levels=levels.tolist(), fixed_order=order)


def nash(momdp: MOMDP, *, normalized: bool = True, tol: float = NASH_GAP_TOL, max_iterations: int = 500) -> Outcome:
    """Maximise ``sum_i log score_i(d)`` by Kelley's cutting planes
    (:func:`maximize_separable_concave`), to a gap of ``tol`` in the sum of logs.
    Raw returns must admit a policy where every agent's return is positive.
    """
    W, c = agent_scores(momdp, normalized)
    n = momdp.num_agents
    stats = SolverStats()
    if not normalized:
        best_min = egalitarian(momdp, normalized=False).info["level"]
        if best_min <= 0:
            raise ValidationError(
                f"rule: 'nash-raw' needs a policy where every agent's raw return is positive; the best "
                f"minimum return is {best_min:.6g}. Use 'nash' (normalised returns) instead"
            )
    scale = np.ones(n) if normalized else return_bounds(momdp).upper
    occupancy, value, gap, iterations = maximize_separable_concave(
        floored_program(momdp, None), W, c, lambda x: np.log(np.clip(x, 1e-300, None)), lambda x: 1.0 / x,
        scale[:, None] * NASH_INITIAL_TANGENTS[None, :], stats, tol=tol, max_iterations=max_iterations,
        lowest=1e-12, what="Nash welfare LP")
    return make_outcome(momdp, _name("nash", not normalized, suffix="raw"), occupancy, stats,
                        log_welfare=value, gap=gap, iterations=iterations)


# ------------------------------------------------------------------ helpers
def floored_program(momdp: MOMDP, floors: np.ndarray | None) -> OccupancyProgram:
    """O, plus rows ``J_i(d) >= floors[i]`` when ``floors [n]`` is given (``-inf`` entries: no floor)."""
    program = OccupancyProgram(occupancy_polytope(momdp))
    if floors is not None:
        floors = np.asarray(floors, dtype=np.float64)
        if floors.shape != (momdp.num_agents,):
            raise ValidationError(f"floors: expected shape [{momdp.num_agents}], got {floors.shape}")
        program.add_rows(momdp.reward_matrix, lower=np.maximum(floors, -INF), upper=INF)
    return program


def _level_program(momdp: MOMDP, W: np.ndarray, c: np.ndarray, agents: np.ndarray, floors: np.ndarray | None = None) -> tuple[OccupancyProgram, int]:
    """O (with ``floors``) plus a free level ``t`` and rows ``W[i] d - t >= -c[i]`` for
    ``agents``; returns (program, t)."""
    program = floored_program(momdp, floors)
    (t,) = program.add_variables(1)
    rows = program.rows_in(W[agents], [t], -np.ones((agents.size, 1)))
    program.add_rows(rows, lower=-c[agents], upper=INF)
    return program, int(t)


def maximize_separable_concave(
    program: OccupancyProgram,
    W: np.ndarray,
    c: np.ndarray,
    phi,
    slope,
    tangents: np.ndarray,
    stats: SolverStats,
    *,
    tol: float,
    max_iterations: int,
    lowest: float = -np.inf,
    what: str,
) -> tuple[np.ndarray, float, float, int]:
    """Maximise ``sum_i phi_i(score_i(d))`` over ``program`` (O plus any rows), each ``phi_i``
    concave and increasing, by Kelley's cutting planes on one warm-started model.

    Variables ``z_i <= phi_i(score_i)`` are bounded by tangents
    ``z_i <= phi_i(a) + phi_i'(a) (score_i - a)``; each round adds the tangents at the current
    scores (clipped below at ``lowest``) until the LP bound exceeds the true value by at most
    ``tol``. ``phi(x)`` and ``slope(x)`` act elementwise on ``[n, k]`` arrays of points
    (row i: agent i); ``tangents [n, k]`` are the first points.
    Returns ``(occupancy [S*A], value, gap, iterations)``.
    """
    n = W.shape[0]
    z = program.add_variables(n)
    program.add_rows(*_tangent_rows(program, W, c, z, tangents, phi, slope))
    model = program.build(_unit(program.num_cols, z), sense="max", what=what)
    for iteration in range(1, max_iterations + 1):
        result = stats.record(model.solve())
        occupancy = program.occupancy(result)
        scores = W @ occupancy + c
        value = float(phi(scores[:, None]).sum())
        gap = result.objective - value
        if gap <= tol:
            return occupancy, value, float(gap), iteration
        model.add_rows(*_tangent_rows(program, W, c, z, np.maximum(scores, lowest)[:, None], phi, slope))
    raise ValidationError(f"max_iterations: {what} cutting planes did not reach gap {tol} in {max_iterations} rounds (gap {gap:.3g})")


def _tangent_rows(program: OccupancyProgram, W: np.ndarray, c: np.ndarray, z: np.ndarray, points: np.ndarray, phi, slope):
    """Rows ``z_i - g (W[i] d) <= phi(a) - g a + g c[i]`` with ``g = phi'(a)``, for every agent
    i and tangent point a in ``points[i]`` (``[n, k]``); returns ``(matrix, lower, upper)``."""
    n, k = points.shape
    agent = np.repeat(np.arange(n), k)
    a = points.reshape(-1)
    values = phi(points).reshape(-1)
    g = slope(points).reshape(-1)
    rows = program.rows_in(-g[:, None] * W[agent], z, (agent[:, None] == np.arange(n)[None, :]).astype(float))
    return rows, np.full(a.size, -INF), values - g * a + g * c[agent]


def _unit(size: int, index) -> np.ndarray:
    cost = np.zeros(size)
    cost[index] = 1.0
    return cost


def _name(base: str, flag: bool, suffix: str = "normalized") -> str:
    return f"{base}-{suffix}" if flag else base


for _normalized in (False, True):
    _which = "normalised" if _normalized else "raw"
    register(_name("utilitarian", _normalized), utilitarian, family="welfare", normalized=_normalized,
             description=f"maximise the sum of {_which} returns (LP)")
    register(_name("egalitarian", _normalized), egalitarian, family="welfare", normalized=_normalized,
             description=f"maximise the minimum {_which} return (LP)")
    register(_name("leximin", _normalized), leximin, family="welfare", normalized=_normalized,
             description=f"leximin on {_which} returns: max-min, fix, repeat (<= n LPs)")
register("nash", nash, family="welfare", normalized=True,
         description="maximise the product of normalised returns (LP cutting planes)")
register("nash-raw", nash, family="welfare", normalized=False,
         description="maximise the product of raw returns (all must be positive)")


COMPLETIONS = {
    "utilitarian-normalized": (utilitarian, True),
    "utilitarian": (utilitarian, False),
    "egalitarian-normalized": (egalitarian, True),
    "egalitarian": (egalitarian, False),
    "leximin-normalized": (leximin, True),
    "leximin": (leximin, False),
}
"""How a volumetric rule picks among the policies it treats as equally good (SPEC §3)."""


THRESHOLD_MARGIN = 1e-9
"""Relative amount by which volumetric rules ask to clear a sampled threshold (see
:func:`lift_thresholds`)."""


def lift_thresholds(thresholds: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Sampled thresholds raised by ``THRESHOLD_MARGIN * max(1, |t|)``, so that LP/MILP
    tolerances cannot leave a return just below a sample value (which would cost that agent one
    sample of rank). Infinite thresholds and those at ``upper`` (``max_O J_i``, broadcastable)
    are left alone: nothing lies above them."""
    t = np.asarray(thresholds, dtype=np.float64)
    lifted = t + THRESHOLD_MARGIN * np.maximum(1.0, np.abs(np.where(np.isfinite(t), t, 0.0)))
    return np.where(np.isfinite(t) & (t < upper), lifted, t)


def complete_above(momdp: MOMDP, thresholds: np.ndarray, completion: str) -> Outcome:
    """:func:`complete_within` the lifted ``thresholds``; if that set is empty (the thresholds
    are tight: a single point), within the thresholds themselves."""
    try:
        return complete_within(momdp, lift_thresholds(thresholds, return_bounds(momdp).upper), completion)
    except InfeasibleError:
        return complete_within(momdp, thresholds, completion)


def complete_within(momdp: MOMDP, floors: np.ndarray, completion: str) -> Outcome:
    """The ``completion`` welfare optimum among policies with ``J_i >= floors[i]`` for all i."""
    if completion not in COMPLETIONS:
        raise ValidationError(f"completion: expected one of {sorted(COMPLETIONS)}, got {completion!r}")
    function, normalized = COMPLETIONS[completion]
    return function(momdp, normalized=normalized, floors=floors)
