"""The ``uniform`` reference measure (SPEC §2): the volume measure on O's affine hull, sampled by
hit-and-run in JAX (:mod:`jaxagg.kernels.hit_and_run`), many chains at once.

Preparation (solvers, float64): the support and a relative-interior point from one LP, an
orthonormal basis of the affine hull (:func:`~jaxagg.solvers.interior.parametrise_hull`), and the
analytic centre (:func:`~jaxagg.solvers.interior.analytic_center`). Rounding: the chains run in
coordinates scaled by the analytic centre, where its Dikin ellipsoid is a ball, along an
orthonormal basis of the scaled hull; optional pilot rounds then re-round by the covariance of
where the chains went. The chains start at the centre, run ``burn_in`` sweeps, then keep a point
every ``thin`` sweeps (a sweep is k steps, k the hull dimension). The diagnostics of Vehtari et
al. (2021) of every agent's return are recorded (:mod:`jaxagg.diagnostics`: ``info["rhat"]`` the
rank-normalised split R-hat, ``info["ess"]`` the smallest of the bulk, tail and quantile ESS, each
also under its own key, and the classic ``split_rhat`` / ``ess_classic``) and a
With the default thinning the sampler runs until those diagnostics pass (``ess_target``, default
400 per agent, and R-hat <= 1.01): while they fail it doubles the thinning, keeping every other
kept point (the later ones) and drawing the rest further along the same chains, so each doubling
costs about as much as everything before it; ``max_doublings`` and ``max_seconds`` cap the run.
A :class:`~jaxagg.errors.MixingWarning` says what was reached when a cap stops it short of the
target, or when an explicit ``thin`` (which is kept as given) ends with R-hat > 1.01 or an ESS
below the target.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxagg.diagnostics import ESS_MINIMUM, RHAT_LIMIT, diagnose
from jaxagg.errors import MixingWarning, ValidationError
from jaxagg.kernels.hit_and_run import DIRECTION_KINDS, make_directions, run_chains
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_polytope
from jaxagg.solvers.interior import analytic_center, parametrise_hull
from jaxagg.validation import integer_at_least, positive_number

DEFAULT_CHAINS = 32
THIN_DIMENSIONS_PER_SWEEP = 64
MIN_THIN = 10
"""Default thinning: ``max(10, ceil(k / 64))`` sweeps (of k steps each) between kept samples.
The integrated autocorrelation time of the agents' returns measured about ``0.15 k`` sweeps on
attention (3,3), (4,3) and (5,3) (k = 81, 324, 1215; bench/RESULTS.md), so on large instances the
default keeps an effective sample size of about 6% of the samples, at a cost per sample that
grows like k^2; small instances get relatively more."""
DEFAULT_ROUNDING_ROUNDS = 0
ROUNDING_POINTS_PER_DIMENSION = 2
ROUNDING_MIN_PER_CHAIN = 20
DEFAULT_MAX_DOUBLINGS = 4
"""The default thinning doubles at most this many times (16 times the first run's sweeps in all)."""
UNIFORM_OPTIONS = ("chains", "thin", "burn_in", "rounding_rounds", "directions", "ess_target", "max_doublings", "max_seconds")
"""The keyword options a caller may pass through ``ja.sample(..., uniform_options=...)``."""
PROGRESS_SEGMENTS = 20
"""Sampling runs in this many equal calls (at most), so that progress can be reported."""


def uniform_occupancies(
    momdp: MOMDP,
    num_samples: int,
    seed: int,
    *,
    chains: int = DEFAULT_CHAINS,
    thin: int | None = None,
    burn_in: int | None = None,
    rounding_rounds: int = DEFAULT_ROUNDING_ROUNDS,
    directions: str = "coordinate",
    ess_target: int = ESS_MINIMUM,
    max_doublings: int = DEFAULT_MAX_DOUBLINGS,
    max_seconds: float | None = None,
    precision: str = "float32",
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict]:
    """``[num_samples, S*A]`` points of the uniform measure on O and a dict of settings and
    diagnostics.

    Args:
        chains: chains run together (vmapped); samples are interleaved chain by chain.
        thin: sweeps between kept samples; a sweep is k steps, k the hull dimension. Default:
            ``max(10, ceil(k / 64))`` at first, doubled while the diagnostics miss their targets
            (see ``ess_target``); an explicit ``thin`` is kept as given.
        burn_in: sweeps run before the first kept sample (default k; rounded up to a multiple
            of ``thin``). The chains start together at the analytic centre.
        rounding_rounds: pilot runs, each re-estimating the covariance the directions follow.
        directions: ``"coordinate"`` (systematic sweeps over the rounded basis; O(d) per step) or
            ``"random"`` (isotropic directions in the rounded basis; O(d k) per step).
        ess_target: with the default thinning, run until every agent's bulk, tail and quantile
            ESS reach ``min(ess_target, num_samples / 2)`` and its rank-normalised R-hat is at
            most 1.01 (0: no adaptation); an explicit ``thin`` warns below it.
        max_doublings, max_seconds: caps of the adaptation (doublings of the thinning, and
            seconds of sampling after the first run); ``settings`` reports what was reached.
        precision: ``"float32"`` or ``"float64"`` chains.
        progress: called with the number of samples kept, about 20 times during sampling.
    """
    if directions not in DIRECTION_KINDS:
        raise ValidationError(f"directions: expected one of {', '.join(map(repr, DIRECTION_KINDS))}, got {directions!r}")
    options = {
        "chains": integer_at_least("chains", chains, 1),
        "thin": None if thin is None else integer_at_least("thin", thin, 1),
        "burn_in": None if burn_in is None else integer_at_least("burn_in", burn_in, 0),
        "rounding_rounds": integer_at_least("rounding_rounds", rounding_rounds, 0),
        "directions": directions,
        "ess_target": integer_at_least("ess_target", ess_target, 0),
        "max_doublings": integer_at_least("max_doublings", max_doublings, 0),
        "max_seconds": None if max_seconds is None else positive_number("max_seconds", max_seconds),
    }
    num_samples = integer_at_least("num_samples", num_samples, 1)
    with precision_scope(precision):
        return _run(momdp, num_samples, seed, options, PRECISIONS[precision], progress)


def _run(momdp: MOMDP, num_samples: int, seed: int, options: dict, dtype, progress) -> tuple[np.ndarray, dict]:
    """Barrier rounding -> pilot rounding -> burn-in -> samples; see :func:`uniform_occupancies`.

    The chains run in coordinates scaled by the analytic centre, ``y = x / x_c``, so that every
    coordinate is about 1 at the start whatever its size (some occupancies of attention (5, 3)
    are 1e-8 there); the uniform measure in y maps to the uniform measure in x."""
    polytope = occupancy_polytope(momdp)
    if polytope.multichain:
        raise ValidationError(
            "measure: this average-reward MDP has several maximal end components, so O (the occupancies reached from mu) "
            "is the projection of the multichain LP, whose transient-flow columns are unbounded; the 'uniform' measure "
            "on that projection has no hit-and-run sampler in jaxagg. Use the 'hull' measure (reachable returns) or the "
            "discounted criterion")
    hull = parametrise_hull(polytope)
    k, chains, kind = hull.dimension, options["chains"], options["directions"]
    adaptive = options["thin"] is None and options["ess_target"] > 0
    thin = max(MIN_THIN, math.ceil(k / THIN_DIMENSIONS_PER_SWEEP)) if options["thin"] is None else options["thin"]
    burn_in = k if options["burn_in"] is None else options["burn_in"]
    target = min(options["ess_target"], num_samples / 2)
    settings = {**options, "thin": int(thin), "burn_in": int(burn_in), "hull_dimension": int(k), "ess_target": target}
    if k == 0:  # O is a single point
        return np.repeat(hull.center[None, :], num_samples, axis=0), {**settings, "rhat": None, "ess": None}
    analytic, barrier_iterations = analytic_center(hull)
    scale = analytic[hull.support]
    scaled_basis = hull.basis / scale[:, None]  # hull directions in y coordinates
    orthonormal = np.linalg.qr(scaled_basis)[0]
    key = jax.random.key(seed)
    ids = jnp.arange(chains, dtype=jnp.uint32)
    ones, hull_basis = jnp.ones(scale.size, dtype), jnp.asarray(orthonormal, dtype)
    state = jnp.ones((chains, scale.size), dtype)
    sweep = 0

    def advance(state, directions, count, sweep, thin=thin):
        samples, state = run_chains(key, state, directions, ids, ones, hull_basis, sweep,
                                    num_samples=count, thin=thin, kind=kind)
        return samples, state, sweep + count * thin

    # Scaled by the analytic centre, the Dikin ellipsoid is a ball in the orthonormal basis (see
    # analytic_center): that basis is the rounded one. Pilot rounds (optional) refine it by the
    # covariance of where the chains went.
    directions = make_directions(hull_basis)
    pilot_length = max(ROUNDING_MIN_PER_CHAIN, math.ceil(ROUNDING_POINTS_PER_DIMENSION * k / chains))
    for _ in range(options["rounding_rounds"]):
        pilot, state, sweep = advance(state, directions, pilot_length, sweep)
        u = (np.asarray(pilot, dtype=np.float64).reshape(-1, scale.size) - 1.0) @ orthonormal
        directions = make_directions(jnp.asarray(orthonormal @ _covariance_factor(u), dtype))
    if burn_in:
        _, state, sweep = advance(state, directions, math.ceil(burn_in / thin), sweep)
    per_chain = math.ceil(num_samples / chains)
    segment = math.ceil(per_chain / PROGRESS_SEGMENTS)
    pieces = []
    for _ in range(math.ceil(per_chain / segment)):
        piece, state, sweep = advance(state, directions, segment, sweep)
        pieces.append(np.asarray(piece, dtype=np.float64))
        if progress is not None:
            progress(min(segment * chains, num_samples - (len(pieces) - 1) * segment * chains))
    samples = np.concatenate(pieces, axis=1)[:, :per_chain]  # [chains, per_chain, d_s], in y
    rewards = momdp.reward_matrix[:, hull.support] * scale  # returns of points in y
    mixing, problems = _mixing(samples @ rewards.T, target)
    began, doublings = time.perf_counter(), 0
    while adaptive and problems and doublings < options["max_doublings"] and (
            options["max_seconds"] is None or time.perf_counter() - began < options["max_seconds"]):
        # every other kept point, ending with the last, is 2 * thin sweeps apart; the chains go on from there
        kept = samples[:, (per_chain - 1) % 2::2]
        thin, doublings = 2 * thin, doublings + 1
        more, state, sweep = advance(state, directions, per_chain - kept.shape[1], sweep, thin)
        samples = np.concatenate([kept, np.asarray(more, dtype=np.float64)], axis=1)
        mixing, problems = _mixing(samples @ rewards.T, target)
    if problems:
        cap = ("" if not adaptive else f" after {doublings} doubling(s) of the thinning (to {thin} sweeps; caps: max_doublings "
               f"{options['max_doublings']}, max_seconds {options['max_seconds']})")
        warnings.warn(f"uniform sampler: chains may not have mixed ({'; '.join(problems)}){cap}; raise thin, burn_in, the "
                      "sample count or max_doublings", MixingWarning, stacklevel=3)
    x = (samples * scale).transpose(1, 0, 2).reshape(-1, scale.size)[:num_samples]  # back in x
    d = np.zeros((num_samples, momdp.dim))
    d[:, hull.support] = x
    settings.update(thin=int(thin), thin_doublings=doublings, mixing_met=not problems, steps=int(sweep * k * chains),
                    barrier_iterations=barrier_iterations, **mixing)
    return d, settings


def _covariance_factor(u: np.ndarray) -> np.ndarray:
    """Cholesky factor ``[k, k]`` of the covariance of points ``u [m, k]`` (ridged so that it is
    positive definite even with fewer points than dimensions)."""
    k = u.shape[1]
    covariance = np.cov(u, rowvar=False).reshape(k, k)
    ridge = 1e-9 * max(np.trace(covariance) / k, np.finfo(float).tiny)
    return np.linalg.cholesky(covariance + ridge * np.eye(k))


def _mixing(chain_returns: np.ndarray, ess_target: float) -> tuple[dict, list[str]]:
    """Diagnostics of every agent's return over the chains ``[chains, draws, n]``
    (:func:`jaxagg.diagnostics.diagnose`), and the thresholds they miss: the rank-normalised
    R-hat above 1.01 or a bulk, tail or quantile ESS below ``ess_target`` (Vehtari et al. 2021;
    400 by default).

    Recorded per agent: ``rhat`` (rank-normalised), ``ess`` (the smallest checked ESS, what the
    DKW band of a chained sample uses), ``ess_bulk``, ``ess_tail``, ``ess_quantile`` (``{level:
    [n]}``, levels as strings), and the classic ``split_rhat`` and ``ess_classic``."""
    if chain_returns.shape[1] < 4:
        return {"rhat": None, "ess": None}, []
    stats = diagnose(np.moveaxis(chain_returns, 2, 0))  # every statistic [n]
    problems = stats.problems(RHAT_LIMIT, ess_target)
    return {"rhat": _listed(stats.rhat), "ess": _listed(stats.ess_min), "ess_bulk": _listed(stats.ess_bulk),
            "ess_tail": _listed(stats.ess_tail), "ess_quantile": {f"{p:g}": _listed(v) for p, v in stats.ess_quantile.items()},
            "split_rhat": _listed(stats.split_rhat), "ess_classic": _listed(stats.ess)}, problems


def _listed(value) -> list[float]:
    """A statistic ``[n]`` (or a float) as a JSON-ready list of floats."""
    return np.atleast_1d(value).astype(float).tolist()
