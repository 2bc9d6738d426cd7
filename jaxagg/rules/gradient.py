"""Gradient-tuned volumetric rules: ``ja.tune`` runs the Optax ascent (:mod:`jaxagg.kernels.ascent`)
and certifies its best policy *exactly* on the full sample. Registered as ``tune-quantile``,
``tune-borda`` and ``tune-approval``; ``ja.tune(objective=...)`` calls them through the registry.

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
from jaxagg.kernels import transitions as T
from jaxagg.kernels.ascent import OBJECTIVES, TuneProblem, softmax_occupancies, tune_logits
from jaxagg.kernels.occupancy import LINEAR_SOLVES
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.kernels.smooth import quantile_grid
from jaxagg.momdp import DENSE_LIMIT_BYTES, MOMDP
from jaxagg.polytope import (
    is_unichain_for_full_support,
    occupancy_of_policy,
    occupancy_polytope,
    policy_from_occupancy,
    return_bounds,
)
from jaxagg.rules.outcome import Outcome, make_outcome
from jaxagg.rules.registry import get, register
from jaxagg.rules.welfare import utilitarian
from jaxagg.samples import ReturnSample
from jaxagg.sampling import recorded_engine, sample_occupancies
from jaxagg.validation import approval_level, choice, integer_at_least, optional_positive_number, positive_number, precision

ITERATIVE_MIN_STATES = 500
"""``linear_solve="auto"`` uses warm-started GMRES from this many states on (a dense LU per step costs
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


def tune(momdp: MOMDP, sample: ReturnSample, *, objective: str = "quantile", **options) -> Outcome:
    """Tune a policy by gradient ascent on a smoothed volumetric objective, then certify it:
    the registered rule ``tune-<objective>`` (``objective`` is ``"quantile"``, ``"borda"`` or
    ``"approval"``), run through the registry's door. ``options`` and ``info`` are those of
    :func:`certified_ascent` (``help(ja.rules.get("tune-quantile"))``)."""
    return get(f"tune-{choice('objective', objective, OBJECTIVES)}")(momdp, sample, **options)


def certified_ascent(
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
    linear_solve: str = "auto",
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
        linear_solve: how each step's state distribution is solved for: ``"dense"`` LU,
            ``"iterative"`` (warm-started GMRES on the MOMDP's transition operator, matrix-free)
            or ``"auto"`` (iterative from :data:`ITERATIVE_MIN_STATES` states, or when the dense
            transitions are too large to build).
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
    ``learning_rate``, ``grid_size``, ``linear_solve``, ``tune_seconds``, ``residual`` (of the
    occupancy in O: ``max(|E d - b|, -min d)``).
    """
    options = _check_options(objective, q, restarts, steps, learning_rate, temperature, grid_size, linear_solve, precision,
                             seed, momdp)
    time_limit = optional_positive_number("time_limit", time_limit)
    began = time.perf_counter()
    solves = []
    starts, kinds = _starts(momdp, sample, objective, q, restarts, seed, lp_start, solves)
    dtype = PRECISIONS[precision]
    sorted_returns = np.asarray(sample.sorted_returns)
    scale = np.maximum(sample.returns.std(axis=0), 1e-12 * np.maximum(1.0, np.abs(sample.returns).max(axis=0)))
    operator = momdp.transitions if options["linear_solve"] == "iterative" else T.DenseTransitions(momdp.P)
    with precision_scope(precision):
        problem = TuneProblem(T.astype(operator, dtype), jnp.asarray(momdp.mu, dtype), jnp.asarray(momdp.R, dtype),
                              jnp.asarray(quantile_grid(sorted_returns, grid_size), dtype), jnp.asarray(scale, dtype),
                              jnp.asarray(q, dtype))
        remaining = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - began))
        logits, trace = tune_logits(jnp.asarray(starts, dtype), problem, objective=objective, gamma=momdp.gamma, steps=steps,
                                    learning_rate=float(learning_rate), temperature=tuple(map(float, temperature)),
                                    linear_solve=options["linear_solve"], time_limit=remaining)
        logits = np.asarray(logits, dtype=np.float64)
        trace = np.asarray(trace, dtype=np.float64)
    with precision_scope("float64"):
        occupancies = np.asarray(softmax_occupancies(jnp.asarray(logits), T.astype(operator, jnp.float64), jnp.asarray(momdp.mu),
                                                     momdp.gamma, options["linear_solve"])).reshape(restarts, -1)
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
    certificates[f"approvals_{q:g}"] = int(sample.approves(momdp.returns(occupancy), q).sum())
    steps_done = trace.shape[0]
    every = max(1, math.ceil(steps_done / TRACE_POINTS))
    points = sorted(set(range(0, steps_done, every)) | {steps_done - 1})
    tune_seconds = time.perf_counter() - began
    return make_outcome(
        momdp, f"tune-{objective}", occupancy, solves, objective=objective, q=q,
        value=float(exact_objective(momdp.returns(occupancy)[None], sample, objective, q)[0]),
        certificates=certificates, restart_values=values.tolist(), starts=kinds, best_restart=best,
        trace=[[k, float(trace[k].max())] for k in points], steps=steps, steps_done=steps_done,
        stopped_by="time limit" if steps_done < steps else "steps", time_limit=time_limit, restarts=restarts,
        temperature=list(map(float, temperature)), learning_rate=float(learning_rate), grid_size=min(grid_size, sample.num_samples),
        linear_solve=options["linear_solve"], precision=precision, tune_seconds=tune_seconds, residual=residual, measure=sample.measure,
        num_samples=sample.num_samples,
    )


def exact_objective(returns: np.ndarray, sample: ReturnSample, objective: str, q: float) -> np.ndarray:
    """The exact empirical objective ``[B]`` of returns ``[B, n]``: quantile level, Borda score
    or approval count at level q."""
    returns = np.asarray(returns, dtype=np.float64)
    if objective == "approval":
        return sample.approves(returns, q).sum(axis=-1).astype(np.float64)
    ranks = sample.rank(returns)
    return ranks.min(axis=-1) if objective == "quantile" else ranks.sum(axis=-1)


def _starts(momdp: MOMDP, sample: ReturnSample, objective: str, q: float, restarts: int, seed: int,
            lp_start: bool | None, solves: list) -> tuple[np.ndarray, list[str]]:
    """Starting logits ``[restarts, S, A]`` and what each start is (the LP start's solves are
    appended to ``solves``)."""
    S, A = momdp.num_states, momdp.num_actions
    policies, kinds = [np.full((S, A), 1.0 / A)], ["uniform"]
    for index, policy in _best_sampled_policies(momdp, sample, objective, q):
        policies.append(policy)
        kinds.append(f"sample {index}")
    if lp_start if lp_start is not None else S * A < LP_START_MAX_DIM:
        lp = utilitarian(momdp, normalized=True)
        solves.extend(lp.solves)
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
    values = exact_objective(sample.returns, sample, objective, q)
    tie = sample.rank(sample.returns).sum(axis=1)
    indices = np.lexsort((-tie, -values))[:SAMPLE_STARTS]
    d = sample_occupancies(momdp, indices, "policy", sample.seed, precision=sample.info["precision"], **recorded_engine(sample))
    replayed = d @ momdp.reward_matrix.T
    span = np.maximum(return_bounds(momdp).span, 1e-12)
    if not np.allclose(replayed / span, sample.returns[indices] / span, atol=1e-4):
        return []
    return [(int(k), policy_from_occupancy(row, momdp.num_states, momdp.num_actions)) for k, row in zip(indices, d, strict=True)]


def _check_options(objective, q, restarts, steps, learning_rate, temperature, grid_size, linear_solve, precision_, seed_,
                   momdp) -> dict:
    choice("objective", objective, OBJECTIVES)
    approval_level("q", q)
    integer_at_least("restarts", restarts, 1)
    integer_at_least("steps", steps, 1)
    integer_at_least("grid_size", grid_size, 1)
    integer_at_least("seed", seed_, 0)
    positive_number("learning_rate", learning_rate)
    try:
        t0, t1 = (float(t) for t in temperature)
        valid = math.isfinite(t0) and 0.0 < t1 <= t0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValidationError(f"temperature: expected (T0, T1) with T0 >= T1 > 0, got {temperature!r}")
    precision("precision", precision_)
    if momdp.criterion == "average" and not is_unichain_for_full_support(momdp):
        raise ValidationError("momdp: the tuner evaluates full-support policies under the average-reward criterion, which "
                              "needs each of them to be unichain, but this MOMDP has several closed classes of states; use "
                              "the exact rules (max-quantile, borda, approval, veto) or the discounted criterion")
    choice("linear_solve", linear_solve, ("auto", *LINEAR_SOLVES))
    dense_fits = momdp.transition_form == "dense" or momdp.num_states**2 * momdp.num_actions * 8 <= DENSE_LIMIT_BYTES
    if linear_solve == "auto":
        linear_solve = "iterative" if momdp.num_states >= ITERATIVE_MIN_STATES or not dense_fits else "dense"
    if linear_solve == "dense" and not dense_fits:
        raise ValidationError(f"linear_solve: 'dense' needs the dense transitions, which this MOMDP ({momdp.num_states} states) "
                              "does not build; use 'iterative' or 'auto'")
    return {"linear_solve": linear_solve}


for _objective, _what in (("quantile", "the soft minimum of the agents' smoothed ranks"),
                          ("borda", "the sum of the agents' smoothed ranks"),
                          ("approval", "the smoothed number of agents ranking the policy in their top 1-q")):
    register(f"tune-{_objective}", certified_ascent, family="tune", needs_sample=True, exact=False, invariant=True,
             objective=_objective,
             description=f"Optax ascent on {_what}; exact certificates on the sample (no optimality guarantee)")
