"""Approval voting (SPEC §3): agent i approves d iff ``J_i(d) >= tau_i(q)`` (its top ``1-q`` of
the reference measure). Maximise the number of approving agents (a MILP with binaries ``y_i``
and the valid big-M ``M_i = tau_i(q) - min_O J_i``), then pick the best policy under a linear
completion among *all* policies that reach that count (a second MILP with ``sum y >= count``).
"""

from __future__ import annotations

import numpy as np

from jaxagg.errors import InfeasibleError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_polytope, return_bounds
from jaxagg.rules.base import agent_scores, threshold_binaries, unit_cost
from jaxagg.rules.completion import LINEAR_COMPLETIONS, check_completion, complete_above
from jaxagg.rules.outcome import Outcome, relabelled
from jaxagg.rules.registry import register
from jaxagg.rules.starts import mip_start
from jaxagg.samples import ReturnSample
from jaxagg.solvers.highs import INF
from jaxagg.solvers.program import OccupancyProgram
from jaxagg.validation import approval_level, finite_number, optional_positive_number


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
            ``J_i >= tau_i(q)``. ``info["start"]`` reports its source, MILP score (its count) and
            feasibility.

    ``info``: ``count``, ``approvers`` (agent indices), ``thresholds`` ``[n]``, ``q``.
    """
    q = approval_level("q", q)
    check_completion(completion, LINEAR_COMPLETIONS)
    time_limit = optional_positive_number("time_limit", time_limit)
    mip_gap = finite_number("mip_gap", mip_gap)
    n = momdp.num_agents
    thresholds = np.asarray(sample.quantile(q), dtype=np.float64)
    program = OccupancyProgram(occupancy_polytope(momdp))
    y, target = threshold_binaries(program, momdp, thresholds[:, None])  # y_i = 1 only if J_i >= tau_i (lifted)
    y, target = y[:, 0], target[:, 0]
    options = {"time_limit": time_limit, "mip_gap": mip_gap}
    start_x, start_info = (None, None) if start is None else mip_start(program, momdp, sample, start, "approval", y, target, q=q)
    first = program.solve(unit_cost(program.num_cols, y), sense="max", what=f"approval({q}) count MILP", start=start_x, **options)
    count = int(round(first.objective))
    program.add_rows(program.rows_in(np.zeros((1, program.polytope.dim)), y, np.ones((1, n))), lower=count, upper=INF)
    W = agent_scores(momdp, completion == "utilitarian-normalized").W
    second_start = start_x if start_x is not None and start_x[y].sum() >= count else None
    try:
        second = program.solve(W.sum(axis=0), sense="max", what=f"approval({q}) completion MILP", start=second_start, **options)
    except InfeasibleError:  # the count was reached only with a threshold met exactly: keep the first MILP's set
        second = first
    # Polish: with the approving set read off the binaries, one LP at the tight LP tolerance
    # gives the completion optimum for that set, with every approver truly above its threshold
    # (or exactly on it, when the lifted threshold is out of reach).
    chosen = np.round(second.x[y]) == 1.0
    polished = complete_above(momdp, np.where(chosen, thresholds, -INF), completion)
    approvers = np.flatnonzero(sample.approves(polished.returns, q) | return_bounds(momdp).degenerate)
    info = dict(q=q, count=count, approvers=approvers.tolist(), thresholds=thresholds.tolist(), completion=completion,
                milp_seconds=[float(first.solve_time), float(second.solve_time)],
                **({"start": start_info} if start_info is not None else {}))
    return relabelled(polished, info, before=[first, second])


register("approval", approval, family="approval", needs_sample=True, invariant=True,
         description="most agents whose top 1-q includes the policy (MILP, valid big-M), q=0.9 by default")
register("approval-refine", approval, family="approval", needs_sample=True, invariant=True, start="tune",
         description="approval, with the tuner's policy (ja.tune, approval objective) as the MILP start")
register("approval-0.8", approval, family="approval", needs_sample=True, invariant=True, q=0.8,
         description="approval with q = 0.8 (each agent approves its top 20%)")
