"""Approval voting (SPEC §3): agent i approves d iff ``J_i(d) >= tau_i(q)`` (its top ``1-q`` of
the reference measure). Maximise the number of approving agents (a MILP with binaries ``y_i``
and the valid big-M ``M_i = tau_i(q) - min_O J_i``), then pick the best policy under a linear
completion among *all* policies that reach that count (a second MILP with ``sum y >= count``).

On instances whose LPs go through column generation (:data:`jaxagg.solvers.columns.MIN_DIM`
state-action pairs and more) the MILPs stay whole in HiGHS (13 and 9.6 minutes on attention
(7, 3)), so there ``method="auto"`` enumerates the approval sets instead: one completion LP per
set, largest sets first, on one warm column-generation model; the count is the size of the
largest feasible set and the completion the best LP optimum among the sets of that size. Both
ways solve the same problem (the tests hold them to each other and to brute force).
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from jaxagg.errors import InfeasibleError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_polytope, return_bounds
from jaxagg.rules.base import agent_scores, floor_bounds, floored_program, lift_thresholds, threshold_binaries, unit_cost
from jaxagg.rules.completion import LINEAR_COMPLETIONS, check_completion, complete_above
from jaxagg.rules.outcome import Outcome, relabelled
from jaxagg.rules.registry import register
from jaxagg.rules.starts import mip_start
from jaxagg.samples import ReturnSample
from jaxagg.solvers.highs import INF, SolveStatus, error_of
from jaxagg.solvers.program import OccupancyProgram
from jaxagg.validation import approval_level, choice, finite_number, optional_positive_number

METHODS = ("auto", "milp", "enumerate")
ENUMERATION_MAX_AGENTS = 10
"""``method="auto"`` enumerates the approval sets only up to this many (non-degenerate) agents:
at most ``2**n`` LPs."""


def approval(
    momdp: MOMDP,
    sample: ReturnSample,
    *,
    q: float = 0.9,
    completion: str = "utilitarian-normalized",
    time_limit: float | None = None,
    mip_gap: float = 0.0,
    start=None,
    method: str = "auto",
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
        method: ``"milp"`` (the two MILPs), ``"enumerate"`` (one completion LP per approval set,
            largest first; ``time_limit`` per LP, ``mip_gap`` and ``start`` unused) or
            ``"auto"``: enumerate where the LPs go through column generation, there are at most
            :data:`ENUMERATION_MAX_AGENTS` agents and no ``start`` is given; else the MILPs.

    ``info``: ``count``, ``approvers`` (agent indices), ``thresholds`` ``[n]``, ``q``,
    ``method``; the MILPs' ``milp_seconds``, or the enumeration's ``lps`` and ``lp_seconds``.
    """
    q = approval_level("q", q)
    check_completion(completion, LINEAR_COMPLETIONS)
    time_limit = optional_positive_number("time_limit", time_limit)
    mip_gap = finite_number("mip_gap", mip_gap)
    method = choice("method", method, METHODS)
    n = momdp.num_agents
    thresholds = np.asarray(sample.quantile(q), dtype=np.float64)
    if method == "auto":
        method = "enumerate" if start is None and _enumeration_pays(momdp) else "milp"
    if method == "enumerate":
        return _approval_by_enumeration(momdp, sample, q, thresholds, completion, time_limit)
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
    chosen = np.round(second.x[y]) == 1.0  # the approving set, read off the binaries
    return _polished(momdp, sample, q, thresholds, completion, chosen, count, [first, second], method="milp",
                     milp_seconds=[float(first.solve_time), float(second.solve_time)],
                     **({"start": start_info} if start_info is not None else {}))


def _polished(momdp: MOMDP, sample: ReturnSample, q: float, thresholds: np.ndarray, completion: str, chosen: np.ndarray,
              count: int, solves: list, **info) -> Outcome:
    """The Outcome for the approving set ``chosen [n]`` (bool): one LP at the tight LP tolerance
    gives the completion optimum for that set, with every approver truly above its threshold
    (or exactly on it, when the lifted threshold is out of reach); ``info`` adds to the rule's."""
    polished = complete_above(momdp, np.where(chosen, thresholds, -INF), completion)
    approvers = np.flatnonzero(sample.approves(polished.returns, q) | return_bounds(momdp).degenerate)
    info = dict(q=q, count=count, approvers=approvers.tolist(), thresholds=thresholds.tolist(), completion=completion, **info)
    return relabelled(polished, info, before=solves)


def _enumeration_pays(momdp: MOMDP) -> bool:
    """Whether ``method="auto"`` enumerates: LPs by column generation, few enough agents."""
    live = int((~return_bounds(momdp).degenerate).sum())
    return OccupancyProgram(occupancy_polytope(momdp)).uses_column_generation() and live <= ENUMERATION_MAX_AGENTS


def _approval_by_enumeration(momdp: MOMDP, sample: ReturnSample, q: float, thresholds: np.ndarray, completion: str,
                             time_limit: float | None) -> Outcome:
    """approval(q) by one completion LP per approval set (module docstring): sets of the
    non-degenerate agents able to reach their lifted threshold at all (``max_O J_i``), largest
    first; the first size with a feasible set is the count, and among that size's feasible sets
    the best completion optimum is kept (the first in lexicographic order on ties). Degenerate
    agents approve every policy."""
    began = time.perf_counter()
    bounds = return_bounds(momdp)
    lifted = lift_thresholds(momdp, thresholds)  # [n] what an approver's return must reach
    reachable = np.flatnonzero(~bounds.degenerate & (lifted <= bounds.upper))
    program = floored_program(momdp, np.full(momdp.num_agents, -INF))
    floor_rows = np.arange(program.polytope.E.shape[0], program.num_rows)
    cost = agent_scores(momdp, completion == "utilitarian-normalized").W.sum(axis=0)
    model = program.build(program.full_cost(cost), sense="max", what=f"approval({q}) set LP",
                          **({} if time_limit is None else {"time_limit": time_limit}))
    solves = []
    for size in range(reachable.size, -1, -1):
        best = None
        for coalition in itertools.combinations(reachable.tolist(), size):
            floors = np.full(momdp.num_agents, -INF)
            floors[list(coalition)] = lifted[list(coalition)]
            model.set_row_bounds(floor_rows, floor_bounds(momdp, floors), INF)
            result = model.solve(raise_on_failure=False)
            solves.append(result)
            if result.status is SolveStatus.INFEASIBLE:
                continue
            if not result.ok:
                raise error_of(result, f"approval({q}) set LP of agents {list(coalition)}", time_limit)
            if best is None or result.objective > best[0]:
                best = (result.objective, coalition)
        if best is not None:
            break
    lp_seconds = time.perf_counter() - began
    chosen = np.zeros(momdp.num_agents, dtype=bool)
    chosen[list(best[1])] = True
    return _polished(momdp, sample, q, thresholds, completion, chosen, size + int(bounds.degenerate.sum()), solves,
                     method="enumerate", lps=len(solves), lp_seconds=lp_seconds)


register("approval", approval, family="approval", needs_sample=True, invariant=True,
         description="most agents whose top 1-q includes the policy (MILP, valid big-M), q=0.9 by default")
register("approval-refine", approval, family="approval", needs_sample=True, invariant=True, start="tune",
         description="approval, with the tuner's policy (ja.tune, approval objective) as the MILP start")
register("approval-0.8", approval, family="approval", needs_sample=True, invariant=True, q=0.8,
         description="approval with q = 0.8 (each agent approves its top 20%)")
