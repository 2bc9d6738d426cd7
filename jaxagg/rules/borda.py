"""Borda count (SPEC §3): maximise ``sum_i F_i(J_i(d))``, each agent scoring a policy by the
fraction of the reference measure it beats.

``method="milp"`` (epsilon-Borda): K levels per agent, binaries ``z_ik`` with
``J_i(d) >= t_ik - M_ik (1 - z_ik)`` at the order statistics ``t_ik = x_i(ceil(kN/K))`` (valid
big-M, in unit scale: :func:`jaxagg.rules.base.threshold_binaries`), ``z_ik >= z_i,k+1``, maximise
``sum z / K``. Since ``F_i(t_ik) >= k/K``, the optimum is
within ``n/K`` of the best empirical Borda score. An exact local step then raises every agent's
secured rank by LP bisection over sample positions (:func:`raise_floors`), and a completion LP
picks the policy (normalised utilitarian by default) among those keeping the floors.

Certificate (:func:`certify`): a relaxation MILP whose levels sit at chosen sample positions
``p_1 < ... < p_L`` per agent, each reachable by every policy whose rank reaches it (thresholds
lowered by the ranks' tie tolerance, not lifted), credits a policy between levels ``l`` and
``l + 1`` with ``p_{l+1} / N`` -- at least its empirical rank. Its proven bound is therefore an
upper bound ``U`` on the best empirical Borda score over O. The levels are refined where the
relaxation's optimum sits (the midpoint of that interval and the optimum's own position) until
``U`` is within ``n/N`` of the best completed policy's exact score (each relaxation optimum is
also completed as a candidate), or the rounds or time run out; ``info`` reports ``U`` and the gap.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from jaxagg.cdf_fit import fit_logistic_cdf
from jaxagg.errors import InfeasibleError, SolverTimeoutError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import normalized_rewards, occupancy_polytope, return_bounds
from jaxagg.rules.base import (
    LevelProbe,
    floor_bounds,
    floored_program,
    highest_level,
    maximize_separable_concave,
    threshold_binaries,
    to_unit_scale,
)
from jaxagg.rules.completion import Completer, check_completion
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
CERTIFY_ROUNDS = 40
"""Relaxation MILPs at most in :func:`certify`."""
CERTIFY_SPLIT = 4
""":func:`certify` splits each agent's interval at the relaxation's optimum in this many parts."""


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
    certify: bool = False,
    certify_rounds: int = CERTIFY_ROUNDS,
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
            ``optimal=False`` and the gap in ``info``; when the MILP found no feasible point at
            all, the local step from no floors gives the policy, ``milp_score`` is NaN) or
            ``"raise"`` (SolverTimeoutError carrying the incumbent, if any).
        start: a MIP start for the MILP: ``"tune"`` (run :func:`jaxagg.tune` with the Borda
            objective first), an Outcome, or an occupancy ``[S*A]``; its binaries are read off
            its returns (``z_ik = 1`` iff ``J_i >= x_i(ceil(kN/K))``). ``info["start"]`` reports its
            source, its MILP score and whether it was feasible.
        local_step: after the MILP, raise every agent's secured rank as far as all of them can
            be kept, by LP bisection over sample positions (:func:`raise_floors`), from the
            MILP's levels and from none (which passes through the max-quantile point); the
            completed policy with the best exact empirical score is kept (so it never scores
            below the MILP's levels, nor below max-quantile with the same completion).
        certify: prove the score within ``n/N`` of the best empirical Borda score over O by
            refined relaxation MILPs (:func:`certify`; at most ``certify_rounds`` of them, within
            what is left of ``time_limit``); their optima are candidates too. If the rounds or
            the time run out first, a warning gives the gap proven. Off by default: small
            instances certify in seconds, but on attention (4, 3) with 20,000 samples each
            round takes 7-25 s and the gap shrinks by about 0.001 per round (0.010 after 8).

    ``info``: ``borda_score`` (exact, empirical), ``milp_score``, ``bound`` (n/K), ``levels_reached``;
    with ``certify``: ``upper_bound`` (proven, on the best empirical score), ``certified_gap``
    (``upper_bound - borda_score``), ``certified`` (gap <= n/N) and ``certify_rounds``.
    """
    choice("method", method, ("milp", "concave"))
    check_completion(completion)
    if method == "concave":
        return _concave_borda(momdp, sample)
    K = integer_at_least("levels", levels, 1, maximum=MAX_BINARIES // momdp.num_agents)
    began = time.perf_counter()
    choice("on_timeout", on_timeout, ("incumbent", "raise"))
    certify_rounds = integer_at_least("certify_rounds", certify_rounds, 1)
    time_limit = optional_positive_number("time_limit", time_limit)
    n = momdp.num_agents
    # Level k at the order statistic x_(ceil(kN/K)): reaching it means a rank of at least k/K (the
    # top level is the sample maximum, which a policy can reach, not max_O J).
    positions = np.ceil(np.arange(1, K + 1) * sample.num_samples / K).astype(np.int64) - 1
    thresholds = sample.sorted_returns[positions].T  # [n, K]
    program = OccupancyProgram(occupancy_polytope(momdp))
    z, target = threshold_binaries(program, momdp, thresholds)  # z_ik = 1 only if J_i >= t_ik (lifted)
    _monotone(program, z)  # z_ik - z_i,k+1 >= 0
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
        if on_timeout == "raise" or (exc.incumbent is None and not local_step):
            raise
        result = exc.result
        if exc.incumbent is None:
            warnings.warn(f"borda: the MILP found no feasible point within its {time_limit} s time limit; the policy comes "
                          "from the local step from no floors (through the max-quantile point)", stacklevel=3)
        else:
            warnings.warn(f"borda: the MILP hit its {time_limit} s time limit; using the incumbent "
                          f"(score {result.objective:.4g}, relative gap {result.mip_gap:.3g})", stacklevel=3)
    # [n] levels kept per agent (none without an incumbent)
    reached = np.zeros(n, dtype=int) if result.x is None else np.round(result.x[z]).sum(axis=1).astype(int)
    secured = np.where(reached > 0, positions[np.maximum(reached - 1, 0)], -1)  # [n] sorted positions
    candidates, local_lps = [secured], []
    if local_step:  # from the MILP's levels, and from none (through the max-quantile point)
        for begin in (secured, np.full(n, -1)):
            common, raised, lps = raise_floors(momdp, sample, begin)
            candidates += [raised, common]
            local_lps += lps
    kept, raised, best = None, secured, -np.inf
    completed_already: set[tuple[int, ...]] = set()
    completer = Completer(momdp, completion)

    def consider(positions_: np.ndarray) -> None:
        """Complete above ``positions_ [n]`` (once per distinct vector) and keep the best by exact
        score (the Outcome, with its policy, is built for the kept candidate only)."""
        nonlocal kept, raised, best
        if tuple(positions_.tolist()) in completed_already:
            return
        completed_already.add(tuple(positions_.tolist()))
        completed = completer.candidate(_floors_at(sample, positions_))
        score = borda_score(completed.returns, sample)
        if score > best:
            kept, raised, best = completed, positions_, score

    for positions_ in candidates:  # in order: the best completed policy by exact empirical score
        consider(positions_)
    certificate = {}
    if certify:
        remaining = None if time_limit is None else max(time_limit - (time.perf_counter() - began), 1.0)
        certificate, certify_solves = _certify_around(momdp, sample, K, consider, lambda: best, remaining, certify_rounds)
        local_lps += certify_solves
        if not certificate["certified"]:
            warnings.warn(f"borda: proved the score within {certificate['certified_gap']:.4g} of the best empirical Borda "
                          f"score (target n/N = {n / sample.num_samples:.3g}) before the rounds or the time ran out",
                          stacklevel=3)
    outcome = kept.finish()
    info = {"method": method, "levels": K, "milp_score": float(result.objective), "bound": n / K,
            "local_step": {"secured_before": float((secured + 1).sum() / sample.num_samples),
                           "secured_after": float((raised + 1).sum() / sample.num_samples), "lps": len(local_lps)},
            "optimal": result.ok, "mip_gap": float(result.mip_gap),
            "levels_reached": reached.tolist(), "borda_score": borda_score(outcome.returns, sample), "completion": completion,
            "milp_seconds": float(result.solve_time), **({"start": start_info} if start_info is not None else {}), **certificate}
    return relabelled(outcome, info, before=[result, *local_lps])


def _certify_around(momdp: MOMDP, sample: ReturnSample, levels: int, consider, best, time_limit: float | None,
                    max_rounds: int) -> tuple[dict, list]:
    """:func:`certify` with ``levels`` initial levels per agent, completing every relaxation
    optimum through ``consider`` and reading the best exact score from ``best()``; returns
    ``info`` entries and the solves."""
    n, N = momdp.num_agents, sample.num_samples
    upper, rounds, solves = certify(momdp, sample, levels, consider, best, time_limit=time_limit, max_rounds=max_rounds)
    gap = max(upper - best(), 0.0)
    return {"upper_bound": upper, "certified_gap": gap, "certified": bool(gap <= n / N * (1 + 1e-9)),
            "certify_rounds": rounds}, solves


def certify(momdp: MOMDP, sample: ReturnSample, levels: int, consider, best, *,
            time_limit: float | None = None, max_rounds: int = CERTIFY_ROUNDS) -> tuple[float, int, list]:
    """A proven upper bound on ``max_{d in O} sum_i F_i(J_i(d))`` (the empirical Borda score
    with the sample's tie tolerance), refined until it is within ``n/N`` of ``best()``.

    Relaxation: agent i's levels at sorted sample positions ``p_1 < ... < p_L`` (in ``[0, N)``),
    binaries ``z_il = 1`` only if ``J_i >= x_i(p_l) - tol_i``; credit ``p_1/N + sum_l z_il
    (p_{l+1} - p_l)/N`` with ``p_{L+1} = N``. A policy whose highest reached level is l has at
    most ``p_{l+1}`` samples at or below ``J_i + tol_i``, so its credit is at least its rank,
    and the MILP's proven bound bounds the best score, wherever the levels are.

    Placement: a policy with an agent at rank ``<= best - (n - 1)`` cannot beat ``best``, so
    the levels start at that position (the cut, raised as ``best`` improves) with ``levels``
    of them spread evenly above it. After each round the optimum's exact positions go to
    ``consider`` (which completes them as a candidate and may raise ``best``), and each agent's
    interval ``(p_l, p_{l+1})`` at the optimum is split in :data:`CERTIFY_SPLIT` parts, plus a
    level at the optimum's own position. Stops when the bound is within ``n/N`` of ``best()``,
    when no interval can be split, or after ``max_rounds`` rounds or ``time_limit`` seconds.

    Returns ``(upper bound, rounds, solves)``."""
    n, N = momdp.num_agents, sample.num_samples
    tolerance = np.broadcast_to(np.asarray(sample.tie_tolerance(), dtype=np.float64), (n,))
    cut = _cut(best(), n, N)
    spread = np.unique(np.linspace(cut, N - 1, max(int(levels), 1)).astype(np.int64))
    positions = [spread.copy() for _ in range(n)]
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    upper, solves, rounds = float(n), [], 0
    while rounds < max_rounds and upper - best() > n / N * (1 + 1e-9):
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            break
        rounds += 1
        cut = _cut(best(), n, N)
        positions = [np.union1d(p[p > cut], [cut]) for p in positions]
        # a loose MILP gap while the bound is far from best (its proven bound is used either way)
        gap = max(0.25 / N, 0.2 * (min(upper, float(n)) - best()) / n)
        result, program, z, bound = _relaxation(momdp, sample, positions, tolerance, left, rounds, gap)
        solves.append(result)
        upper = min(upper, bound)
        if result.x is None:
            break
        reached = np.rint(sample.rank(momdp.returns(program.occupancy(result))) * N).astype(np.int64) - 1  # [n] (-1: none)
        consider(reached)
        refined = False
        credited = np.rint(result.x[z]).sum(axis=1).astype(int)  # [n] levels the relaxation credits (within its tolerances)
        for i, p in enumerate(positions):
            at = min(int(credited[i]), len(p))
            low = p[at - 1] if at > 0 else -1
            high = p[at] if at < len(p) else N
            new = [v for v in [*np.linspace(low, high, CERTIFY_SPLIT + 1)[1:-1].astype(np.int64), reached[i]] if low < v < high]
            if new:
                positions[i] = np.union1d(p, new)
                refined = True
        if not refined and result.ok:
            break
    return upper, rounds, solves


def _cut(best: float, n: int, N: int) -> int:
    """The lowest sample position worth a level: an agent at or below rank ``best - (n - 1)``
    leaves the others at most ``n - 1``, so such a policy cannot beat ``best``."""
    return int(np.clip(np.floor(N * (best - (n - 1))), 0, N - 1))


def _relaxation(momdp: MOMDP, sample: ReturnSample, positions: list[np.ndarray], tolerance: np.ndarray,
                time_limit: float | None, round_: int, mip_gap: float):
    """One relaxation MILP of :func:`certify` (levels at ``positions[i]`` for agent i): its
    result, program, binaries ``z [n, L]`` and proven upper bound (``n`` without one)."""
    n, N = momdp.num_agents, sample.num_samples
    counts = np.array([len(p) for p in positions])
    width = counts.max()
    padded = np.stack([np.concatenate([p, np.full(width - len(p), p[-1])]) for p in positions])  # [n, L]
    above = np.concatenate([padded[:, 1:], np.full((n, 1), N)], axis=1)
    real = np.arange(width)[None, :] < counts[:, None]
    last = np.arange(width)[None, :] == (counts - 1)[:, None]
    credit = np.where(real, np.where(last, N, above) - padded, 0)  # repeated padding levels add nothing
    program = OccupancyProgram(occupancy_polytope(momdp))
    z, _ = threshold_binaries(program, momdp, sample.sorted_returns[padded, np.arange(n)[:, None]] - tolerance[:, None], lift=False)
    _monotone(program, z)
    cost = np.zeros(program.num_cols)
    cost[z.reshape(-1)] = credit.reshape(-1) / N
    offset = float(padded[:, 0].sum()) / N
    try:
        result = program.solve(cost, sense="max", mip_gap=mip_gap, time_limit=time_limit,
                               what=f"Borda certificate MILP (round {round_})")
    except SolverTimeoutError as exc:
        result = exc.result
    bound = result.dual_bound + offset if np.isfinite(result.dual_bound) else float(n)
    return result, program, z, bound


def _monotone(program: OccupancyProgram, z: np.ndarray) -> None:
    """Rows ``z_il - z_i,l+1 >= 0`` for binaries ``z [n, L]``."""
    if z.shape[1] < 2:
        return
    first, second = z[:, :-1].reshape(-1), z[:, 1:].reshape(-1)
    pairs = np.zeros((first.size, first.size * 2))
    pairs[np.arange(first.size), np.arange(first.size)] = 1.0
    pairs[np.arange(first.size), first.size + np.arange(first.size)] = -1.0
    program.add_rows(program.rows_in(np.zeros((first.size, program.polytope.dim)), np.concatenate([first, second]), pairs),
                     lower=0.0, upper=INF)


def _floors_at(sample: ReturnSample, positions: np.ndarray) -> np.ndarray:
    """Raw-return floors ``[n]``: each agent's sample at sorted position ``positions [n]``
    (``-1``: no floor, ``-inf``)."""
    agents = np.arange(positions.shape[0])
    return np.where(positions >= 0, sample.sorted_returns[np.maximum(positions, 0), agents], -INF)


def raise_floors(momdp: MOMDP, sample: ReturnSample, positions: np.ndarray,
                 sweeps: int = LOCAL_SWEEPS) -> tuple[np.ndarray, np.ndarray, list]:
    """The exact local step after the MILP: raise every agent's secured sorted position
    ``positions [n]`` (``-1``: none) as far as a policy can keep them all, on warm-started models
    (one per objective). First every agent together (the max-quantile step inside the MILP's box:
    :func:`~jaxagg.rules.base.highest_level`), then each agent alone, lowest rank first, for ``sweeps``
    rounds or until nothing moves: one LP maximising the agent's return under the others'
    floors gives its highest reachable position directly (the largest whose floor that return
    meets; a bisection would need about log2 N feasibility LPs). Every step keeps all floors, so
    the secured Borda score ``sum (positions + 1) / N`` never drops. Returns ``(positions after
    the common raise [n], final positions [n], solves)``."""
    N, n = sample.num_samples, momdp.num_agents
    program = floored_program(momdp, np.full(n, -INF))
    floor_rows = np.arange(program.polytope.E.shape[0], program.num_rows)
    live = ~return_bounds(momdp).degenerate
    unit = to_unit_scale(momdp, sample.sorted_returns.T)  # [n, N] every sample position's floor, in unit scale
    scores = normalized_rewards(momdp)  # [n, S*A]: a floor row's coefficients (unit-scale return)
    # One model per agent's return (and the common raise's LevelProbe), each warm-started from its
    # own last basis: only the floors change between its solves, which the dual simplex repairs
    # in a few pivots (one shared model whose cost switched between agents took 500-1,400 each).
    models: dict[int, object] = {}
    solves = []

    def solve_with(candidate: np.ndarray, agent: int) -> bool:
        """Solve with floors at ``candidate [n]`` maximising agent ``agent``'s return."""
        if agent not in models:
            models[agent] = program.build(program.full_cost(scores[agent]), sense="max", what="Borda local-step LP")
        model = models[agent]
        model.set_row_bounds(floor_rows, floor_bounds(momdp, _floors_at(sample, candidate)), INF)
        solves.append(model.solve(raise_on_failure=False))
        return solves[-1].ok

    def reached(returns: np.ndarray) -> int:
        """The highest k at which ``returns [n]`` meet every live agent's floor at position k."""
        return min(int(np.searchsorted(sample.sorted_returns[:, i], returns[i], side="right")) - 1 for i in np.flatnonzero(live))

    def highest_alone(i: int) -> int:
        """Agent i's highest position under the others' floors (its own current one holds)."""
        if not live[i]:  # a constant return meets every floor
            return N - 1
        others = positions.copy()
        others[i] = -1
        if not solve_with(others, i):
            return int(positions[i])
        reachable = int(np.searchsorted(unit[i], solves[-1].objective, side="right")) - 1
        return int(np.clip(reachable, positions[i], N - 1))

    positions = np.asarray(positions, dtype=np.int64).copy()
    start = positions.copy()
    common = highest_level(LevelProbe(momdp, "Borda common-raise LP"), lambda k: _floors_at(sample, np.maximum(start, k)),
                           reached, -1, N - 1, solves)
    positions = np.maximum(positions, common)
    after_common = positions.copy()
    for _ in range(sweeps):
        before = positions.copy()
        for i in np.argsort(positions):
            positions[i] = highest_alone(int(i))
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
