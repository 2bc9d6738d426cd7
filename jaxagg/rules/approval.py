"""Approval voting (SPEC §3): agent i approves d iff ``J_i(d) >= tau_i(q)`` (its top ``1-q`` of
the reference measure). Maximise the number of approving agents (a MILP with binaries ``y_i``
and the valid big-M ``M_i = tau_i(q) - min_O J_i``), then pick the best policy under a linear
completion among *all* policies that reach that count (a second MILP with ``sum y >= count``).
"""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.measures import ReturnSample
from jaxagg.momdp import MOMDP
from jaxagg.rules.outcome import Outcome, SolverStats, make_outcome
from jaxagg.rules.quantile import check_sample
from jaxagg.rules.registry import register
from jaxagg.rules.welfare import agent_scores, complete_above, lift_thresholds
from jaxagg.solvers.highs import INF
from jaxagg.solvers.polytope import occupancy_polytope, return_bounds
from jaxagg.solvers.program import OccupancyProgram

LINEAR_COMPLETIONS = {"utilitarian-normalized": True, "utilitarian": False}


def approval(
    momdp: MOMDP,
    sample: ReturnSample,
    *,
    q: float = 0.9,
    completion: str = "utilitarian-normalized",
    time_limit: float | None = None,
    mip_gap: float = 0.0,
    start=None,
) -> Outcome:
    """approval(q): the most agents with ``J_i >= tau_i(q)``, then the best ``completion``.

    Args:
        q: approval level in [0, 1) (0.9: each agent approves its top 10%).
        completion: ``"utilitarian-normalized"`` (default) or ``"utilitarian"``.
        time_limit: seconds per MILP (a timeout raises SolverTimeoutError with the incumbent).
        mip_gap: relative MIP gap (default 0: exact counts).
        start: a MIP start for both MILPs: ``"tune"`` (run :func:`jaxagg.tune` with the approval
            objective first), an Outcome, or an occupancy ``[S*A]``; ``y_i = 1`` iff
            ``J_i >= tau_i(q)``. ``info["start"]`` reports its source, count and feasibility.

    ``info``: ``count``, ``approvers`` (agent indices), ``thresholds`` ``[n]``, ``q``.
    """
    check_sample(momdp, sample)
    check_approval_level(q)
    if completion not in LINEAR_COMPLETIONS:
        raise ValidationError(f"completion: expected one of {sorted(LINEAR_COMPLETIONS)}, got {completion!r}")
    n = momdp.num_agents
    thresholds = np.asarray(sample.quantile(q), dtype=np.float64)
    bounds = return_bounds(momdp)
    target = lift_thresholds(thresholds, bounds.upper)  # so solver tolerances cannot lose an approval
    big_m = np.maximum(target - bounds.lower, 0.0)  # valid: never cuts O
    program = OccupancyProgram(occupancy_polytope(momdp))
    y = program.add_variables(n, lower=0.0, upper=1.0, integer=True)
    # J_i(d) - M_i y_i >= tau_i - M_i  <=>  J_i(d) >= tau_i - M_i (1 - y_i)
    program.add_rows(program.rows_in(momdp.reward_matrix, y, -np.diag(big_m)), lower=target - big_m, upper=INF)
    stats = SolverStats()
    options = {"time_limit": time_limit, "mip_gap": mip_gap}
    count_cost = np.zeros(program.num_cols)
    count_cost[y] = 1.0
    start_x, start_info = None, None
    if start is not None:
        from jaxagg.rules.tune import start_occupancy

        d0, start_info = start_occupancy(momdp, sample, start, "approval", q)
        start_x = np.zeros(program.num_cols)
        start_x[: program.polytope.dim] = d0
        start_x[y] = momdp.returns(d0) >= target
        start_info.update(count=int(start_x[y].sum()), feasible=program.violation(start_x) <= 1e-9)
        start_x = start_x if start_info["feasible"] else None
    first = stats.record(program.solve(count_cost, sense="max", what=f"approval({q}) count MILP", start=start_x, **options))
    count = int(round(first.objective))
    program.add_rows(program.rows_in(np.zeros((1, program.polytope.dim)), y, np.ones((1, n))), lower=count, upper=INF)
    W, _ = agent_scores(momdp, LINEAR_COMPLETIONS[completion])
    second_start = start_x if start_x is not None and start_x[y].sum() >= count else None
    second = stats.record(program.solve(W.sum(axis=0), sense="max", what=f"approval({q}) completion MILP", start=second_start, **options))
    # Polish: with the approving set read off the binaries, one LP at the tight LP tolerance
    # gives the completion optimum for that set, with every approver truly above its threshold.
    chosen = np.round(second.x[y]) == 1.0
    polished = complete_above(momdp, np.where(chosen, thresholds, -INF), completion)
    stats.add(polished.stats)
    approvers = np.flatnonzero(polished.returns >= thresholds)
    return make_outcome(momdp, f"approval({q:g})", polished.occupancy, stats, q=q, count=count,
                        approvers=approvers.tolist(), thresholds=thresholds.tolist(), completion=completion,
                        milp_seconds=[float(first.solve_time), float(second.solve_time)],
                        **({"start": start_info} if start_info is not None else {}))


def check_approval_level(q) -> float:
    """``q`` in [0, 1): agent i approves the policies in its top ``1 - q``."""
    if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0.0 <= q < 1.0:
        raise ValidationError(f"q: expected an approval level in [0, 1), got {q!r}")
    return float(q)


register("approval", approval, family="approval", needs_sample=True,
         description="most agents whose top 1-q includes the policy (MILP, valid big-M), q=0.9 by default")
register("approval-refine", approval, family="approval", needs_sample=True, start="tune",
         description="approval, with the tuner's policy (ja.tune, approval objective) as the MILP start")
register("approval-0.8", approval, family="approval", needs_sample=True, q=0.8,
         description="approval with q = 0.8 (each agent approves its top 20%)")
