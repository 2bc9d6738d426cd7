"""Borda count (SPEC §3): maximise ``sum_i F_i(J_i(d))``, each agent scoring a policy by the
fraction of the reference measure it beats.

``method="milp"`` (epsilon-Borda): K levels per agent, binaries ``z_ik`` with
``J_i(d) >= t_ik - M_ik (1 - z_ik)`` at the order statistics ``t_ik = x_i(ceil(kN/K))`` (valid
big-M, in unit scale: :func:`jaxagg.rules.base.threshold_binaries`), ``z_ik >= z_i,k+1``, maximise
``sum z / K``. Since ``F_i(t_ik) >= k/K``, the optimum is
within ``n/K`` of the best empirical Borda score. An exact local step then raises every agent's
secured rank by LP bisection over sample positions (:func:`raise_floors`), and a completion LP
picks the policy (normalised utilitarian by default) among those keeping the floors.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxagg.cdf_fit import fit_logistic_cdf
from jaxagg.errors import InfeasibleError, SolverTimeoutError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import normalized_rewards, occupancy_polytope, return_bounds
from jaxagg.rules.base import floor_bounds, floored_program, maximize_separable_concave, threshold_binaries, to_unit_scale
from jaxagg.rules.completion import check_completion, complete_above
from jaxagg.rules.outcome import Outcome, make_outcome, relabelled
from jaxagg.rules.registry import register
from jaxagg.rules.starts import mip_start
from jaxagg.samples import ReturnSample
from jaxagg.solvers.highs import INF
from jaxagg.solvers.program import OccupancyProgram
from jaxagg.validation import choice, integer_at_least, optional_positive_number

DEFAULT_LEVELS = 20
MAX_BINARIES = 2_000
"""At most this many binaries ``n * K``: each adds a dense row of S*A coefficients to the MILP."""
DEFAULT_TIME_LIMIT = 60.0
LOCAL_SWEEPS = 3
"""Rounds of agent-by-agent raising in the local step (it stops earlier when nothing moves)."""


def borda_score(returns: np.ndarray, sample: ReturnSample) -> float:
    """The empirical Borda score ``sum_i F_i(J_i)`` of raw returns ``[n]`` (between 0 and n)."""
    return float(sample.rank(np.asarray(returns, dtype=np.float64)).sum())


def borda(
    momdp: MOMDP,
    sample: ReturnSample,
    *,
    method: str = "milp",
    levels: int = DEFAULT_LEVELS,
    completion: str = "utilitarian-normalized",
    time_limit: float | None = DEFAULT_TIME_LIMIT,
    on_timeout: str = "incumbent",
    start=None,
    local_step: bool = True,
) -> Outcome:
    """Borda count on the sample's measure.

    Args:
        method: ``"milp"`` (epsilon-Borda) or ``"concave"`` (the reference implementation's: a
            generalised-logistic CDF fitted per agent, restricted to the region where every agent
            is above its fitted mode (there the CDFs are concave), maximised by tangent cuts).
        levels: K levels per agent, at the order statistics ``x_(ceil(kN/K))``: reaching level k
            means a rank of at least k/K, so the score is within ``n/K`` of the optimum.
        completion: objective among policies that keep every agent's level.
        time_limit: seconds for the MILP (``None``: no limit). Some instances with many agents
            take long to prove optimal (attention subsets, 10 agents: 15 s to several minutes).
        on_timeout: ``"incumbent"`` (default: warn, use the best policy found, and report
            ``optimal=False`` and the gap in ``info``) or ``"raise"`` (SolverTimeoutError
            carrying the incumbent).
        start: a MIP start for the MILP: ``"tune"`` (run :func:`jaxagg.tune` with the Borda
            objective first), an Outcome, or an occupancy ``[S*A]``; its binaries are read off
            its returns (``z_ik = 1`` iff ``J_i >= x_i(ceil(kN/K))``). ``info["start"]`` reports its
            source, its MILP score and whether it was feasible.
        local_step: after the MILP, raise every agent's secured rank as far as all of them can
            be kept, by LP bisection over sample positions (:func:`raise_floors`), from the
            MILP's levels and from none (which passes through the max-quantile point); the
            completed policy with the best exact empirical score is kept (so it never scores
            below the MILP's levels, nor below max-quantile with the same completion).

    ``info``: ``borda_score`` (exact, empirical), ``milp_score``, ``bound`` (n/K), ``levels_reached``.
    """
    choice("method", method, ("milp", "concave"))
    check_completion(completion)
    if method == "concave":
        return _concave_borda(momdp, sample)
    K = integer_at_least("levels", levels, 1, maximum=MAX_BINARIES // momdp.num_agents)
    choice("on_timeout", on_timeout, ("incumbent", "raise"))
    time_limit = optional_positive_number("time_limit", time_limit)
    n = momdp.num_agents
    # Level k at the order statistic x_(ceil(kN/K)): reaching it means a rank of at least k/K (the
    # top level is the sample maximum, which a policy can reach, not max_O J).
    positions = np.ceil(np.arange(1, K + 1) * sample.num_samples / K).astype(np.int64) - 1
    thresholds = sample.sorted_returns[positions].T  # [n, K]
    program = OccupancyProgram(occupancy_polytope(momdp))
    z, target = threshold_binaries(program, momdp, thresholds)  # z_ik = 1 only if J_i >= t_ik (lifted)
    if K > 1:  # z_ik - z_i,k+1 >= 0
        first, second = z[:, :-1].reshape(-1), z[:, 1:].reshape(-1)
        pairs = np.zeros((first.size, first.size * 2))
        pairs[np.arange(first.size), np.arange(first.size)] = 1.0
        pairs[np.arange(first.size), first.size + np.arange(first.size)] = -1.0
        program.add_rows(program.rows_in(np.zeros((first.size, program.polytope.dim)), np.concatenate([first, second]), pairs),
                         lower=0.0, upper=INF)
    cost = np.zeros(program.num_cols)
    cost[z.reshape(-1)] = 1.0 / K
    # z_ik = 1 iff J_i >= target_ik: monotone in k, since the targets ascend.
    start_x, start_info = (None, None) if start is None else mip_start(program, momdp, sample, start, "borda", z, target,
                                                                      weight=1.0 / K)
    # Scores are multiples of 1/K and at most n, so a relative gap below 1/(K n) already proves
    # optimality: no need to close it to zero.
    try:
        result = program.solve(cost, sense="max", mip_gap=0.99 / (K * n), time_limit=time_limit, what=f"epsilon-Borda MILP (K={K})",
                               start=start_x)
    except SolverTimeoutError as exc:
        if on_timeout == "raise" or exc.incumbent is None:
            raise
        result = exc.result
        warnings.warn(f"borda: the MILP hit its {time_limit} s time limit; using the incumbent "
                      f"(score {result.objective:.4g}, relative gap {result.mip_gap:.3g})", stacklevel=3)
    reached = np.round(result.x[z]).sum(axis=1).astype(int)  # [n] levels kept per agent
    secured = np.where(reached > 0, positions[np.maximum(reached - 1, 0)], -1)  # [n] sorted positions
    candidates, local_lps = [secured], []
    if local_step:  # from the MILP's levels, and from none (through the max-quantile point)
        for begin in (secured, np.full(n, -1)):
            common, raised, lps = raise_floors(momdp, sample, begin)
            candidates += [raised, common]
            local_lps += lps
    outcome, raised, best = None, secured, -np.inf
    distinct = {tuple(c.tolist()): c for c in candidates}  # in order; equal candidates complete once
    for positions_ in distinct.values():  # the best completed policy by exact empirical score
        completed = complete_above(momdp, _floors_at(sample, positions_), completion)
        score = borda_score(completed.returns, sample)
        if score > best:
            outcome, raised, best = completed, positions_, score
    info = {"method": method, "levels": K, "milp_score": float(result.objective), "bound": n / K,
            "local_step": {"secured_before": float((secured + 1).sum() / sample.num_samples),
                           "secured_after": float((raised + 1).sum() / sample.num_samples), "lps": len(local_lps)},
            "optimal": result.ok, "mip_gap": float(result.mip_gap),
            "levels_reached": reached.tolist(), "borda_score": borda_score(outcome.returns, sample), "completion": completion,
            "milp_seconds": float(result.solve_time), **({"start": start_info} if start_info is not None else {})}
    return relabelled(outcome, info, before=[result, *local_lps])


def _floors_at(sample: ReturnSample, positions: np.ndarray) -> np.ndarray:
    """Raw-return floors ``[n]``: each agent's sample at sorted position ``positions [n]``
    (``-1``: no floor, ``-inf``)."""
    agents = np.arange(positions.shape[0])
    return np.where(positions >= 0, sample.sorted_returns[np.maximum(positions, 0), agents], -INF)


def raise_floors(momdp: MOMDP, sample: ReturnSample, positions: np.ndarray,
                 sweeps: int = LOCAL_SWEEPS) -> tuple[np.ndarray, np.ndarray, list]:
    """The exact local step after the MILP: raise every agent's secured sorted position
    ``positions [n]`` (``-1``: none) as far as a policy can keep them all, by LP bisection over
    sample positions on one warm-started model. First every agent together (the max-quantile
    step inside the MILP's box), then each agent alone, lowest rank first, for ``sweeps`` rounds
    or until nothing moves. Every step keeps all floors, so the secured Borda score
    ``sum (positions + 1) / N`` never drops. Returns ``(positions after the common raise [n],
    final positions [n], solves)``."""
    N, n = sample.num_samples, momdp.num_agents
    program = floored_program(momdp, np.full(n, -INF))
    model = program.build(np.zeros(program.num_cols), sense="max", what="Borda local-step LP")
    floor_rows = np.arange(program.polytope.E.shape[0], program.num_rows)
    solves = []

    def feasible(candidate: np.ndarray) -> bool:
        model.set_row_bounds(floor_rows, floor_bounds(momdp, _floors_at(sample, candidate)), INF)
        solves.append(model.solve(raise_on_failure=False))
        return solves[-1].ok

    def highest(low: int, high: int, candidate_at) -> int:
        """The largest k in [low, high] with candidate_at(k) feasible (low is known feasible)."""
        while low < high:
            middle = (low + high + 1) // 2
            if feasible(candidate_at(middle)):
                low = middle
            else:
                high = middle - 1
        return low

    positions = np.asarray(positions, dtype=np.int64).copy()
    common = highest(-1, N - 1, lambda k: np.maximum(positions, k))
    positions = np.maximum(positions, common)
    after_common = positions.copy()
    for _ in range(sweeps):
        before = positions.copy()
        for i in np.argsort(positions):
            def alone(k, i=i):
                candidate = positions.copy()
                candidate[i] = k
                return candidate
            positions[i] = highest(int(positions[i]), N - 1, alone)
        if (positions == before).all():
            break
    return after_common, positions, solves


register("borda", borda, family="borda", needs_sample=True, exact=False, invariant=True,
         description="maximise the sum of the agents' quantile ranks (epsilon-Borda MILP, within n/K)")
register("borda-refine", borda, family="borda", needs_sample=True, exact=False, invariant=True, start="tune",
         description="borda, with the tuner's policy (ja.tune, Borda objective) as the MILP start")


CONCAVE_GAP_TOL = 1e-7
"""The concave method stops when the LP bound on the fitted score is within this of its value."""


def _concave_borda(momdp: MOMDP, sample: ReturnSample) -> Outcome:
    """Borda on fitted CDFs (the reference implementation's method); see :func:`borda`.

    Runs in normalised scores (each agent's returns mapped to [0, 1] over O, an exact affine map
    that leaves its CDF's shape alone); degenerate agents rank every policy at the top and are
    left out of the fit and the objective."""
    bounds = return_bounds(momdp)
    live = np.flatnonzero(~bounds.degenerate)
    units = to_unit_scale(momdp, sample.sorted_returns.T)  # [n, N], every row ascending
    fits = [fit_logistic_cdf(units[i], name=f"agent {i}", is_sorted=True) for i in live]
    modes = np.array([f.mode() for f in fits])
    if (modes >= 1.0).any():
        raise InfeasibleError("borda-concave: some agent's fitted mode is at or above its best return, so the concave "
                              "region of the fitted CDFs contains no policy; use method='milp'")
    floors = np.full(momdp.num_agents, -np.inf)
    floors[live] = bounds.lower[live] + bounds.span[live] * modes
    program = floored_program(momdp, floors)

    def per_agent(function):
        return lambda points: np.stack([function(fit, row) for fit, row in zip(fits, points)])

    tangents = modes[:, None] + (1.0 - modes)[:, None] * np.linspace(0.0, 1.0, 9)[None, :]
    try:
        occupancy, value, gap, solves = maximize_separable_concave(
            program, normalized_rewards(momdp)[live], np.zeros(live.size), per_agent(lambda f, x: f(x)),
            per_agent(lambda f, x: f.derivative(x)), tangents, tol=CONCAVE_GAP_TOL, max_iterations=500,
            what="concave Borda LP")
    except InfeasibleError as exc:
        raise InfeasibleError(
            "borda-concave: the concave region of the fitted CDFs (every agent at or above its fitted mode) "
            "contains no policy; use method='milp'", exc.result) from None
    return make_outcome(momdp, "borda-concave", occupancy, solves, method="concave",
                        fitted_score=value + float(bounds.degenerate.sum()), gap=gap, iterations=len(solves),
                        modes=floors.tolist(), fit_errors=[f.max_error for f in fits],
                        borda_score=borda_score(momdp.returns(occupancy), sample))


register("borda-concave", borda, family="borda", needs_sample=True, exact=False, invariant=True, method="concave",
         description="Borda on fitted generalised-logistic CDFs, above every agent's mode (the reference's LP)")
