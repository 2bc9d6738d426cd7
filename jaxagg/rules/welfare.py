"""Welfare baselines (SPEC §3): utilitarian, egalitarian, leximin and Nash, on raw or normalised
returns. Each is an LP (or a short sequence of LPs) over the occupancy polytope; scores are
:func:`jaxagg.rules.base.agent_scores`."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import return_bounds
from jaxagg.rules.base import agent_scores, floored_program, level_program, maximize_separable_concave, unit_cost
from jaxagg.rules.outcome import Outcome, make_outcome
from jaxagg.rules.registry import register
from jaxagg.validation import integer_at_least, positive_number

LEXIMIN_DUAL_TOL = 1e-9
NASH_GAP_TOL = 1e-6
"""Nash stops when the LP bound on ``sum log score`` is within this of the true value (the
product of scores within a relative 1e-6); tighter gaps hit HiGHS's feasibility tolerance."""
NASH_INITIAL_TANGENTS = 2.0 ** -np.arange(0, 11)


def utilitarian(momdp: MOMDP, *, normalized: bool = False, floors: np.ndarray | None = None) -> Outcome:
    """Maximise ``sum_i score_i(d)`` (one LP); ``floors [n]``: only policies with raw returns
    ``J_i >= floors[i]`` (a volumetric rule's completion)."""
    program = floored_program(momdp, floors)
    result = program.solve(utilitarian_cost(momdp, normalized), sense="max", what="utilitarian LP")
    return utilitarian_outcome(momdp, normalized, program.occupancy(result), [result])


def utilitarian_cost(momdp: MOMDP, normalized: bool) -> np.ndarray:
    """The utilitarian LP's objective ``[S*A]``: the sum of the agents' unit-scale scores."""
    return agent_scores(momdp, normalized).W.sum(axis=0)


def utilitarian_outcome(momdp: MOMDP, normalized: bool, occupancy: np.ndarray, solves: list) -> Outcome:
    """The utilitarian Outcome of an optimal ``occupancy [S*A]`` of its LP (its welfare in raw
    or normalised returns)."""
    scores = agent_scores(momdp, normalized)
    return make_outcome(momdp, _name("utilitarian", normalized), occupancy, solves,
                        welfare=float(scores.unit * (solves[-1].objective + scores.c.sum())))


def egalitarian(momdp: MOMDP, *, normalized: bool = False, floors: np.ndarray | None = None) -> Outcome:
    """Maximise ``min_i score_i(d)`` (one LP with a level variable ``t``); ``floors`` as in
    :func:`utilitarian`."""
    scores = agent_scores(momdp, normalized)
    program, t, _ = level_program(momdp, scores, np.arange(momdp.num_agents), floors)
    result = program.solve(unit_cost(program.num_cols, t), sense="max", what="egalitarian LP")
    return make_outcome(momdp, _name("egalitarian", normalized), program.occupancy(result), [result],
                        level=float(scores.unit * result.x[t]))


def leximin(momdp: MOMDP, *, normalized: bool = False, tol: float = 1e-9, floors: np.ndarray | None = None) -> Outcome:
    """Leximin: maximise the minimum over the agents not yet fixed, fix the agents that attain
    it in every optimum, repeat (at most n LPs).

    An agent is fixed when its row ``score_i >= t`` has a positive dual: by complementary
    slackness every maximiser then gives it exactly the level. Fixed agents keep
    ``score_j >= level_j - tol * max(1, |level_j|)``. ``floors`` as in :func:`utilitarian`.
    """
    tol = positive_number("tol", tol)
    scores = agent_scores(momdp, normalized)
    W, c = scores.W, scores.c
    n = momdp.num_agents
    levels = np.full(n, np.nan)
    order: list[list[int]] = []
    solves = []
    occupancy = None
    while np.isnan(levels).any():
        free = np.flatnonzero(np.isnan(levels))
        program, t, first = level_program(momdp, scores, free, floors)
        fixed = np.flatnonzero(~np.isnan(levels))
        if fixed.size:
            floor = levels[fixed] - tol * np.maximum(1.0, np.abs(levels[fixed]))
            program.add_rows(W[fixed], lower=floor - c[fixed])
        result = program.solve(unit_cost(program.num_cols, t), sense="max", what=f"leximin LP {len(order) + 1}")
        solves.append(result)
        occupancy = program.occupancy(result)
        duals = np.abs(result.row_duals[first : first + free.size])
        tight = free[duals > LEXIMIN_DUAL_TOL]
        if tight.size == 0:  # numerically flat duals: fix the worst-off free agent
            tight = free[[np.argmin(W[free] @ occupancy + c[free])]]
        levels[tight] = result.x[t]
        order.append(tight.tolist())
    return make_outcome(momdp, _name("leximin", normalized), occupancy, solves,
                        levels=(scores.unit * levels).tolist(), fixed_order=order)


def nash(momdp: MOMDP, *, normalized: bool = True, tol: float = NASH_GAP_TOL, max_iterations: int = 500) -> Outcome:
    """Maximise ``sum_i log score_i(d)`` by Kelley's cutting planes
    (:func:`~jaxagg.rules.base.maximize_separable_concave`), to a gap of ``tol`` in the sum of
    logs. Raw returns must admit a policy where every agent's return is positive.
    """
    tol = positive_number("tol", tol)
    max_iterations = integer_at_least("max_iterations", max_iterations, 1)
    scores = agent_scores(momdp, normalized)
    n = momdp.num_agents
    solves = []
    if not normalized:
        best_min = egalitarian(momdp, normalized=False)
        solves.extend(best_min.solves)
        if best_min.info["level"] <= 0:
            raise ValidationError(
                f"rule: 'nash-raw' needs a policy where every agent's raw return is positive; the best "
                f"minimum return is {best_min.info['level']:.6g}. Use 'nash' (normalised returns) instead"
            )
    scale = np.ones(n) if normalized else return_bounds(momdp).upper / scores.unit
    occupancy, value, gap, rounds = maximize_separable_concave(
        floored_program(momdp, None), scores.W, scores.c, lambda x: np.log(np.clip(x, 1e-300, None)), lambda x: 1.0 / x,
        scale[:, None] * NASH_INITIAL_TANGENTS[None, :], tol=tol, max_iterations=max_iterations,
        lowest=1e-12 * scale.min(), what="Nash welfare LP")
    solves.extend(rounds)
    return make_outcome(momdp, _name("nash", not normalized, suffix="raw"), occupancy, solves,
                        log_welfare=value + n * float(np.log(scores.unit)), gap=gap, iterations=len(rounds))


def _name(base: str, flag: bool, suffix: str = "normalized") -> str:
    return f"{base}-{suffix}" if flag else base


for _normalized in (False, True):
    _which = "normalised" if _normalized else "raw"
    register(_name("utilitarian", _normalized), utilitarian, family="welfare", invariant=_normalized,
             normalized=_normalized, description=f"maximise the sum of {_which} returns (LP)")
    register(_name("egalitarian", _normalized), egalitarian, family="welfare", invariant=_normalized,
             normalized=_normalized, description=f"maximise the minimum {_which} return (LP)")
    register(_name("leximin", _normalized), leximin, family="welfare", invariant=_normalized,
             normalized=_normalized, description=f"leximin on {_which} returns: max-min, fix, repeat (<= n LPs)")
register("nash", nash, family="welfare", invariant=True, normalized=True,
         description="maximise the product of normalised returns (LP cutting planes)")
register("nash-raw", nash, family="welfare", normalized=False,
         description="maximise the product of raw returns (all must be positive)")
