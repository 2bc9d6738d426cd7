"""Gradient-tuned volumetric rules: ``ja.tune`` runs the Optax tuner (:mod:`jaxagg.solvers.tuner`)
and certifies its best policy *exactly* on the full sample.

The tuner optimises a smoothed objective on a fixed quantile grid of the sample (``grid_size``
points per agent, :func:`jaxagg.kernels.smooth.quantile_grid`); every restart's policy is then
evaluated in float64 and ranked by the exact empirical objective (quantile level, Borda score or
approval count, ties broken by the Borda score), and the winner's certificates come from the
exact empirical CDFs of all N samples (:func:`jaxagg.metrics.sample_certificates`). The tuner
gives no optimality guarantee: compare it with the exact rules where they finish.
"""

from __future__ import annotations

import math
import time

import jax.numpy as jnp
import numpy as np

from jaxagg import metrics
from jaxagg.errors import ValidationError
from jaxagg.kernels.precision import PRECISIONS, check_precision, precision_scope
from jaxagg.kernels.smooth import quantile_grid
from jaxagg.measures import ReturnSample
from jaxagg.momdp import MOMDP
from jaxagg.rules.outcome import Outcome, SolverStats, make_outcome
from jaxagg.rules.approval import check_approval_level
from jaxagg.rules.quantile import check_sample, check_sample_matches
from jaxagg.rules.registry import register
from jaxagg.solvers.polytope import (
    occupancy_of_policy,
    occupancy_polytope,
    policy_from_occupancy,
    return_bounds,
)
from jaxagg.solvers.tuner import OBJECTIVES, TuneProblem, batch_occupancies, tune_logits
from jaxagg.validation import finite_array, integer_at_least

ITERATIVE_MIN_STATES = 500
"""``solver="auto"`` uses warm-started GMRES from this many states on (a dense LU per step costs
``S^3/3``: 3.5 GFLOP at S = 2187), the dense LU below."""
LP_START_MAX_DIM = 5000
"""``lp_start=None`` adds a restart at the normalised-utilitarian LP policy below this many
occupancy coordinates (one LP: 0.06 s on attention (5, 3), about a minute on (7, 3))."""
SAMPLE_STARTS = 2
"""Restarts started from the best sampled policies (by the exact objective on the sample)."""
POLICY_FLOOR = 0.02
"""A start policy is mixed with this much of the uniform policy before taking logs."""
TRACE_POINTS = 100
RESIDUAL_TOL = 1e-9
"""Largest ``max(|E d - b|, -min d)`` accepted for the outcome's occupancy from the float64
kernel; above it the exact reference map (:func:`jaxagg.solvers.polytope.occupancy_of_policy`)
is tried and the smaller residual kept. ``info["residual"]`` reports it."""


def tune(
    momdp: MOMDP,
    sample: ReturnSample,
    *,
    objective: str = "quantile",
    q: float = 0.9,
    restarts: int = 8,
    steps: int = 300,
    learning_rate: float = 0.1,
    temperature: tuple[float, float] = (0.3, 0.003),
    grid_size: int = 1024,
    seed: int = 0,
    solver: str = "auto",
    precision: str = "float32",
    lp_start: bool | None = None,
    time_limit: float | None = None,
) -> Outcome:
    """Tune a policy by gradient ascent on a smoothed volumetric objective, then certify it.

    Args:
        momdp: the instance.
        sample: a ReturnSample of this instance (ranks and certificates are on it).
        objective: ``"quantile"`` (smooth max-quantile), ``"borda"`` or ``"approval"``.
        q: approval level in [0, 1) for ``"approval"``.
        restarts: random starts optimised together (``jax.vmap``); the first ones start at the
            uniform policy, the best sampled policies (a ``policy`` sample with a seed) and the
            normalised-utilitarian LP policy (see ``lp_start``), the rest at random logits.
        steps: Adam steps per restart.
        learning_rate: peak Adam step size (cosine decay to a tenth).
        temperature: ``(T0, T1)``, ``T0 >= T1 > 0``, annealed geometrically; the CDF
            temperature is a fraction of each agent's sample standard deviation, the soft
            min/count temperature is in rank units.
        grid_size: reference points per agent for the smoothed CDF (a quantile grid of the
            sample; the whole sample when N <= grid_size).
        seed: seed of the random restarts.
        solver: ``"dense"`` LU, ``"iterative"`` (warm-started GMRES) or ``"auto"`` (iterative
            from :data:`ITERATIVE_MIN_STATES` states).
        precision: ``"float32"`` (default) or ``"float64"`` for the ascent; restarts are always
            ranked and certified in float64.
        lp_start: add a restart at the LP policy (``None``: when ``S*A <`` :data:`LP_START_MAX_DIM`).
        time_limit: seconds from the call's start after which the ascent stops (checked every
            10 steps; the schedules stay those of ``steps``), then the restarts are certified as
            usual (seconds more on large instances). ``None``: all ``steps``.

    ``info``: ``objective``, ``certificates`` (exact: ranks, quantile_level, borda_score,
    approvals_0.9, approvals_0.8, approvals at ``q``), ``value`` (the exact objective), the
    per-restart ``restart_values`` and ``starts``, ``trace`` (``[step, best smoothed objective
    over restarts]``, at most 100 points), ``steps``, ``steps_done`` and ``stopped_by`` (``"steps"``
    or ``"time limit"``), ``time_limit``, ``restarts``, ``temperature``,
    ``learning_rate``, ``grid_size``, ``solver``, ``tune_seconds``, ``residual`` (of the
    occupancy in O: ``max(|E d - b|, -min d)``).
    """
    check_sample(momdp, sample)
    check_sample_matches(sample, momdp, "sample")
    options = _check_options(objective, q, restarts, steps, learning_rate, temperature, grid_size, solver, precision, momdp)
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not math.isfinite(time_limit) or time_limit <= 0):
        raise ValidationError(f"time_limit: expected a number of seconds > 0 or None, got {time_limit!r}")
    began = time.perf_counter()
    stats = SolverStats()
    starts, kinds = _starts(momdp, sample, objective, q, restarts, seed, lp_start, stats)
    dtype = PRECISIONS[precision]
    sorted_returns = np.asarray(sample.sorted_returns)
    scale = np.maximum(sample.returns.std(axis=0), 1e-12 * np.maximum(1.0, np.abs(sample.returns).max(axis=0)))
    with precision_scope(precision):
        problem = TuneProblem(jnp.asarray(momdp.P, dtype), jnp.asarray(momdp.mu, dtype), jnp.asarray(momdp.R, dtype),
                              jnp.asarray(quantile_grid(sorted_returns, grid_size), dtype), jnp.asarray(scale, dtype),
                              jnp.asarray(q, dtype))
        remaining = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - began))
        logits, trace = tune_logits(jnp.asarray(starts, dtype), problem, objective=objective, gamma=momdp.gamma, steps=steps,
                                    learning_rate=float(learning_rate), temperature=tuple(map(float, temperature)),
                                    solver=options["solver"], time_limit=remaining)
        logits = np.asarray(logits, dtype=np.float64)
        trace = np.asarray(trace, dtype=np.float64)
    with precision_scope("float64"):
        occupancies = np.asarray(batch_occupancies(jnp.asarray(logits), jnp.asarray(momdp.P), jnp.asarray(momdp.mu),
                                                   momdp.gamma, options["solver"])).reshape(restarts, -1)
    returns = occupancies @ momdp.reward_matrix.T
    values = exact_objective(returns, sample, objective, q)
    best = int(np.lexsort((-sample.rank(returns).sum(axis=1), -values))[0])
    occupancy = occupancies[best]
    residual = occupancy_polytope(momdp).residual(occupancy)
    if residual > RESIDUAL_TOL:  # the iterative solve did not converge: use the exact reference map
        policy = policy_from_occupancy(occupancy, momdp.num_states, momdp.num_actions)
        exact = occupancy_of_policy(momdp, policy)
        if occupancy_polytope(momdp).residual(exact) < residual:
            occupancy, residual = exact, occupancy_polytope(momdp).residual(exact)
    certificates = metrics.sample_certificates(momdp.returns(occupancy), sample)
    certificates[f"approvals_{q:g}"] = int((momdp.returns(occupancy) >= sample.quantile(q)).sum())
    steps_done = trace.shape[0]
    every = max(1, math.ceil(steps_done / TRACE_POINTS))
    points = sorted(set(range(0, steps_done, every)) | {steps_done - 1})
    tune_seconds = time.perf_counter() - began
    return make_outcome(
        momdp, f"tune-{objective}", occupancy, stats, objective=objective, q=q,
        value=float(exact_objective(momdp.returns(occupancy)[None], sample, objective, q)[0]),
        certificates=certificates, restart_values=values.tolist(), starts=kinds, best_restart=best,
        trace=[[k, float(trace[k].max())] for k in points], steps=steps, steps_done=steps_done,
        stopped_by="time limit" if steps_done < steps else "steps", time_limit=time_limit, restarts=restarts,
        temperature=list(map(float, temperature)), learning_rate=float(learning_rate), grid_size=min(grid_size, sample.num_samples),
        solver=options["solver"], precision=precision, tune_seconds=tune_seconds, residual=residual, measure=sample.measure,
        num_samples=sample.num_samples,
    )


def exact_objective(returns: np.ndarray, sample: ReturnSample, objective: str, q: float) -> np.ndarray:
    """The exact empirical objective ``[B]`` of returns ``[B, n]``: quantile level, Borda score
    or approval count at level q."""
    returns = np.asarray(returns, dtype=np.float64)
    if objective == "approval":
        return (returns >= sample.quantile(q)).sum(axis=-1).astype(np.float64)
    ranks = sample.rank(returns)
    return ranks.min(axis=-1) if objective == "quantile" else ranks.sum(axis=-1)


def _starts(momdp: MOMDP, sample: ReturnSample, objective: str, q: float, restarts: int, seed: int,
            lp_start: bool | None, stats: SolverStats) -> tuple[np.ndarray, list[str]]:
    """Starting logits ``[restarts, S, A]`` and what each start is."""
    S, A = momdp.num_states, momdp.num_actions
    policies, kinds = [np.full((S, A), 1.0 / A)], ["uniform"]
    for index, policy in _best_sampled_policies(momdp, sample, objective, q):
        policies.append(policy)
        kinds.append(f"sample {index}")
    if lp_start if lp_start is not None else S * A < LP_START_MAX_DIM:
        from jaxagg.rules.welfare import utilitarian

        lp = utilitarian(momdp, normalized=True)
        stats.add(lp.stats)
        policies.append(lp.policy)
        kinds.append("utilitarian-normalized LP")
    policies, kinds = policies[:restarts], kinds[:restarts]
    logits = [np.log((1.0 - POLICY_FLOOR) * p + POLICY_FLOOR / A) for p in policies]
    rng = np.random.default_rng(seed)
    for _ in range(restarts - len(logits)):
        logits.append(rng.normal(size=(S, A)))
        kinds.append("random")
    return np.stack(logits), kinds


def _best_sampled_policies(momdp: MOMDP, sample: ReturnSample, objective: str, q: float) -> list[tuple[int, np.ndarray]]:
    """The policies behind the best :data:`SAMPLE_STARTS` samples of a seeded ``policy``
    sample, recomputed from their keys; none when the sample cannot be replayed (another
    measure, no seed, several parts) or the replay does not reproduce its returns."""
    if sample.measure != "policy" or sample.seed is None or sample.info.get("start", 0) != 0 or "precision" not in sample.info:
        return []
    from jaxagg.sampling import occupancies

    values = exact_objective(sample.returns, sample, objective, q)
    tie = sample.rank(sample.returns).sum(axis=1)
    indices = np.lexsort((-tie, -values))[:SAMPLE_STARTS]
    d = occupancies(momdp, indices, "policy", sample.seed, precision=sample.info["precision"])
    replayed = d @ momdp.reward_matrix.T
    span = np.maximum(return_bounds(momdp).span, 1e-12)
    if not np.allclose(replayed / span, sample.returns[indices] / span, atol=1e-4):
        return []
    return [(int(k), policy_from_occupancy(row, momdp.num_states, momdp.num_actions)) for k, row in zip(indices, d, strict=True)]


def _check_options(objective, q, restarts, steps, learning_rate, temperature, grid_size, solver, precision, momdp) -> dict:
    if objective not in OBJECTIVES:
        raise ValidationError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    check_approval_level(q)
    integer_at_least("restarts", restarts, 1)
    integer_at_least("steps", steps, 1)
    integer_at_least("grid_size", grid_size, 1)
    if (not isinstance(learning_rate, (int, float)) or isinstance(learning_rate, bool) or not math.isfinite(learning_rate)
            or learning_rate <= 0):
        raise ValidationError(f"learning_rate: expected a finite number > 0, got {learning_rate!r}")
    try:
        t0, t1 = (float(t) for t in temperature)
        valid = math.isfinite(t0) and 0.0 < t1 <= t0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValidationError(f"temperature: expected (T0, T1) with T0 >= T1 > 0, got {temperature!r}")
    check_precision(precision)
    if solver not in ("auto", "dense", "iterative"):
        raise ValidationError(f"solver: expected 'auto', 'dense' or 'iterative', got {solver!r}")
    if solver == "auto":
        solver = "iterative" if momdp.num_states >= ITERATIVE_MIN_STATES else "dense"
    return {"solver": solver}


def _tuned(objective: str):
    def rule(momdp: MOMDP, sample: ReturnSample, **options) -> Outcome:
        return tune(momdp, sample, objective=objective, **options)

    return rule


for _objective, _what in (("quantile", "the soft minimum of the agents' smoothed ranks"),
                          ("borda", "the sum of the agents' smoothed ranks"),
                          ("approval", "the smoothed number of agents ranking the policy in their top 1-q")):
    register(f"tune-{_objective}", _tuned(_objective), family="tune", needs_sample=True,
             description=f"Optax ascent on {_what}; exact certificates on the sample (no optimality guarantee)")



def start_occupancy(momdp: MOMDP, sample: ReturnSample, start, objective: str, q: float = 0.9) -> tuple[np.ndarray, dict]:
    """A starting occupancy ``[S*A]`` for a MILP rule, and what it is: ``start="tune"`` runs
    :func:`tune` with ``objective`` (default options); an :class:`Outcome` or an occupancy
    ``[S*A]`` in O is used as given."""
    if isinstance(start, str):
        if start != "tune":
            raise ValidationError(f"start: expected 'tune', an Outcome or an occupancy [S*A], got {start!r}")
        tuned = tune(momdp, sample, objective=objective, q=q)
        return tuned.occupancy, {"source": f"tune-{objective}", "tune_seconds": tuned.info["tune_seconds"],
                                 "tune_value": tuned.info["value"]}
    if isinstance(start, Outcome):
        return start.occupancy, {"source": start.rule}
    d = finite_array("start", start, 1)
    polytope = occupancy_polytope(momdp)
    if d.shape != (polytope.dim,) or not polytope.contains(d):
        raise ValidationError(f"start: expected an occupancy of {polytope.dim} entries (S*A) in O, got shape {d.shape}"
                              + ("" if d.shape != (polytope.dim,) else f" off O by {polytope.residual(d):.3g}"))
    return d, {"source": "occupancy"}
