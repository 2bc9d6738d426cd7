"""Sample a reference measure of a MOMDP: N returns of every agent (SPEC §2).

``ja.sample(momdp, 100_000, measure="policy", seed=0)`` composes the JAX kernels (random
policies -> occupancies -> returns, streamed in chunks) with the exact return bounds from the
solvers, and wraps the result in a :class:`~jaxagg.samples.ReturnSample` stamped with the
instance's fingerprint.

Measures:
    ``policy``  ``pi(.|s) ~ Dirichlet(1_A)`` i.i.d. per state, pushed forward to occupancies;
    ``hull``    ``d = sum_j lambda_j d_j*`` with ``lambda ~ Dirichlet(1_n)`` and ``d_j*`` agent j's
                optimal occupancy (LP);
    ``uniform`` the volume measure on O, by hit-and-run chains (:mod:`jaxagg.uniform`): correlated
                draws, with R-hat and ESS in ``info``.

The indexed measures (``policy``, ``hull``) continue a run (:func:`extend`) or split it over
processes or machines and join the parts (:func:`split_ranges`, :func:`merge_samples`) bit for
bit, within one jax, jaxlib and jaxagg version (recorded in ``info``; a change is refused unless
asked for).
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from jaxagg.errors import ConvergenceError, SolverError, ValidationError, VersionWarning
from jaxagg.kernels import transitions as T
from jaxagg.kernels.evaluation import (
    PRECONDITIONER_MAX_STATES,
    PRECONDITIONERS,
    SOLVERS,
    bytes_per_policy,
    default_preconditioner,
    default_solver,
    mean_policy_preconditioner,
)
from jaxagg.kernels.evaluation import TOL as EVALUATION_TOL
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.kernels.returns import (
    BLOCK,
    POLICY_BLOCKS,
    MeasureProblem,
    block_size,
    evaluate_indices,
    hull_block,
    instance_group_size,
    lane_limit,
    sample_devices,
    stream,
    stream_instances,
)
from jaxagg.momdp import MOMDP
from jaxagg.polytope import is_unichain_for_full_support, return_bounds
from jaxagg.samples import ReturnSample, index_ranges
from jaxagg.uniform import UNIFORM_OPTIONS, uniform_occupancies
from jaxagg.validation import choice, flag, integer_at_least
from jaxagg.validation import seed as check_seed
from jaxagg.version import __version__

SAMPLED_MEASURES = ("policy", "hull", "uniform")
INDEXED_MEASURES = ("policy", "hull")
"""Measures whose sample i depends only on (seed, i): they can be resumed, split and re-evaluated."""
VERSION_KEYS = ("jax", "jaxlib", "jaxagg")
"""The versions a sample records in ``info`` (its numbers are bit-identical only within them:
XLA's kernels change with jax and jaxlib, the evaluation arithmetic with jaxagg)."""
DEFAULT_CHUNK = 4096
METHODS = ("auto", "krylov", "lu")
"""How the ``policy`` measure evaluates its policies (see :func:`engine_settings`)."""
LU_MAX_STATES = 64
"""``method="auto"`` uses a dense LU per policy up to this many states (dense transitions only),
batched GMRES beyond (measured crossover: bench/sampling.py)."""
FLOAT32_MIN_ONE_MINUS_GAMMA = 1e-3
"""Below this ``1 - gamma`` float32 samples are off by more than about 1e-4 of the return range
(measured: about ``7e-8 / (1 - gamma)``; 9% at ``1 - 1e-6``), so ``"auto"`` picks float64 and an
explicit ``"float32"`` is refused."""


def sample(
    momdp: MOMDP,
    num_samples: int = 100_000,
    measure: str = "policy",
    seed: int = 0,
    *,
    precision: str = "auto",
    chunk_size: int = DEFAULT_CHUNK,
    start: int = 0,
    progress: bool | Callable[[int], None] = False,
    devices: list | None = None,
    uniform_options: dict | None = None,
    method: str = "auto",
    operator: str | None = None,
    block: int | None = None,
    solver: str | None = None,
    preconditioner: str | None = None,
) -> ReturnSample:
    """Draw ``num_samples`` points of ``measure`` and return every agent's return at each.

    Args:
        momdp: the instance.
        num_samples: N >= 1.
        measure: ``"policy"``, ``"hull"`` or ``"uniform"`` (hit-and-run chains; see
            :mod:`jaxagg.uniform`).
        seed: integer seed; for ``policy`` and ``hull`` sample ``i`` depends only on ``(seed, i)``.
        precision: ``"float32"``, ``"float64"`` or ``"auto"`` (default: float32, or float64 for a
            discount factor with ``1 - gamma <`` :data:`FLOAT32_MIN_ONE_MINUS_GAMMA`, where
            float32 policy evaluation loses more than about 1e-4 of the return range; asking for
            float32 there is refused).
        chunk_size: samples per device call (memory is bounded by one chunk); results do not
            depend on it.
        start: index of the first sample (to continue an earlier run: see :func:`extend`; to
            draw one part of a run split over processes or machines: see :func:`split_ranges`).
        progress: ``True`` for a progress bar on stderr, or a callable given each chunk's count.
        devices: devices of this process to shard chunks over (default: all its accelerators,
            ``jax.local_devices()``, or one CPU device; under ``jax.distributed`` each process
            samples on its own devices: see :func:`split_ranges`).
        uniform_options: for ``measure="uniform"``: ``chains``, ``thin``, ``burn_in``,
            ``rounding_rounds``, ``directions`` (see :func:`jaxagg.uniform.uniform_occupancies`).
        method: how the ``policy`` measure evaluates policies: ``"krylov"`` (batched GMRES on the
            shared transition operator, any size, all host devices at once), ``"lu"`` (a dense
            LU per policy, small instances) or ``"auto"`` (see :func:`engine_settings`). Either
            way every sample's float64 residual ``||E rho - b||_inf / ||b||_inf`` is computed,
            its maximum recorded in ``info["residual_max"]``, and a sample above
            :data:`jaxagg.kernels.evaluation.TOL` raises :class:`~jaxagg.errors.ConvergenceError`.
            Sample ``i`` depends only on ``(seed, i, method, operator, block, solver,
            preconditioner)``: all are recorded in ``info["evaluation"]`` and a resume keeps them.
        operator: the transition operator form GMRES runs on: ``"dense"`` or the instance's own
            form; default as :func:`engine_settings` picks (pass the recorded one to continue).
        block: policies per compiled block of the ``policy`` measure (default: 32 on a CPU, 128
            for its dense LU, up to 16384 on a GPU, see :func:`jaxagg.kernels.returns.block_size`).
            The float rounding of a sample depends on it (XLA picks kernels by shape), not on the
            chunk size or the number of devices; the recorded one is kept when a sample is continued
            (on another kind of device the numbers then agree to rounding, not bit for bit).
        solver: the Krylov solver of ``method="krylov"``: ``"gmres"`` or ``"bicgstab"``
            (default: GMRES on a CPU, BiCGSTAB on an accelerator up to 1024 states, see
            :func:`jaxagg.kernels.evaluation.default_solver`); recorded and kept like ``block``.
        preconditioner: the right preconditioner of ``method="krylov"``: ``"none"`` or
            ``"mean-policy"`` (the inverse of the uniform policy's system, a dense ``[S, S]``
            matrix shared by all policies, up to 4096 states: about half the iterations for one
            GEMM per product; default: ``"mean-policy"`` on an accelerator up to 1024 states,
            ``"none"`` on a CPU, see :func:`jaxagg.kernels.evaluation.default_preconditioner`);
            recorded and kept like ``block``.

    Raises:
        ConvergenceError: a sampled policy's linear solve did not reach the tolerance.

    Returns:
        A ReturnSample with ``returns [N, n]`` (float64 copy of the kernel's precision), the
        exact ``max_returns``/``min_returns`` from LPs, and ``info`` recording how it was made.
    """
    num_samples = integer_at_least("num_samples", num_samples, 1)
    chunk_size = integer_at_least("chunk_size", chunk_size, 1)
    start = integer_at_least("start", start, 0)
    if start + num_samples > 2**32:
        raise ValidationError(f"num_samples: start + num_samples must be at most 2**32, got {start + num_samples}")
    seed = check_seed("seed", seed)
    _check_instance(momdp)
    precision = resolve_precision(momdp, precision)
    choice("measure", measure, SAMPLED_MEASURES)
    if measure != "policy" and (method != "auto" or any(v is not None for v in (operator, block, solver, preconditioner))):
        raise ValidationError(f"method, operator, block, solver, preconditioner: choose how the 'policy' measure evaluates "
                              f"policies; the {measure!r} measure solves no linear systems (leave them out)")
    devices = _check_devices(devices)
    bounds = return_bounds(momdp)
    if measure == "uniform":
        if start:
            raise ValidationError("start: 'uniform' samples come from Markov chains and cannot start at an index")
        return _uniform(momdp, num_samples, seed, precision, bounds, uniform_options or {}, progress)
    engine = engine_settings(momdp, method, operator, block=block, solver=solver, preconditioner=preconditioner,
                             devices=devices) if measure == "policy" else None
    block_fn, operands_fn = _measure_kernel(momdp, measure, engine)
    began = time.perf_counter()
    with precision_scope("float64"), _progress(progress, num_samples) as tick:
        returns, residuals = stream(block_fn, operands_fn(PRECISIONS[precision]), jax.random.key(seed), num_samples,
                                    start=start, chunk_size=chunk_size, progress=tick, devices=devices,
                                    block=BLOCK if engine is None else engine["block"], **_concurrency(momdp, engine))
    seconds = time.perf_counter() - began
    _check_residuals(residuals, start, precision)
    info = _run_info(precision, start, chunk_size, seconds, num_samples, devices)
    if engine is not None:
        info.update(evaluation=engine, residual_max=float(residuals.max()))
    return ReturnSample(returns=_snap_degenerate(returns, bounds), measure=measure, seed=seed,
                        max_returns=bounds.upper, min_returns=bounds.lower, info=info, fingerprint=momdp.fingerprint)


def _run_info(precision: str, start: int, chunk_size: int, seconds: float, num_samples: int, devices: list) -> dict[str, Any]:
    """How a policy/hull sample was drawn (``sample.info``): precision, first index, chunk size,
    seconds and rate, devices, backend and the jax, jaxlib and jaxagg versions."""
    return {
        "precision": precision,
        "start": int(start),
        "chunk_size": int(chunk_size),
        "seconds": seconds,
        "samples_per_second": num_samples / seconds if seconds > 0 else None,
        "devices": len(devices),
        "backend": jax.default_backend(),
        **running_versions(),
    }


def running_versions() -> dict[str, str]:
    """The versions this process samples with, as a sample records them: ``{"jax", "jaxlib",
    "jaxagg"}``."""
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "jaxagg": __version__}


def sample_instances(
    momdps: Sequence[MOMDP],
    num_samples: int = 100_000,
    measure: str = "policy",
    seeds: int | Sequence[int] = 0,
    *,
    precision: str = "auto",
    chunk_size: int = DEFAULT_CHUNK,
    group_size: int | None = None,
    start: int = 0,
    progress: bool | Callable[[int], None] = False,
    devices: list | None = None,
    method: str = "auto",
    operator: str | None = None,
    block: int | None = None,
    solver: str | None = None,
    preconditioner: str | None = None,
) -> list[ReturnSample]:
    """:func:`sample` for many instances of one shape in one compiled call per group of
    instances: ``sample_instances(ms, N, seeds=ss)[k]`` is bit-identical to ``sample(ms[k], N,
    seed=ss[k])`` (returns, bounds, fingerprint, seed, ``info["evaluation"]`` and
    ``info["residual_max"]``), so each result can be used, saved and :func:`extend`-ed like one.

    The ``policy`` measure stacks the instances' operators, ``mu``, rewards and keys and runs
    every group of instances through one compiled call (:func:`jaxagg.kernels.returns.stream_instances`):
    the instances of a call go one after another through exactly the computation of
    :func:`sample`, with the same array shapes, which is what keeps the numbers identical (a
    ``vmap`` over instances lets XLA pick other kernels and fusions and changes float32 policy
    draws by an ulp). What it saves is the per-instance dispatch and set-up; the per-policy
    arithmetic is the same (bench/sweep.py). The instances' return bounds (the same LPs or
    policy iterations as :func:`sample`'s) are computed on a background thread meanwhile, on
    the core a CPU's sampling leaves. ``hull`` and ``uniform`` are sampled by a loop of
    :func:`sample` (``uniform`` has its own chains per instance).

    Args:
        momdps: a non-empty list of instances with the same shape: states, actions, agents,
            criterion, gamma and transition operator (form and array shapes of the operator
            the engine uses: a dense LU needs only S and A to match).
        num_samples: N >= 1 per instance.
        measure: ``"policy"`` (batched), ``"hull"`` or ``"uniform"`` (a loop of :func:`sample`).
        seeds: one seed for every instance, or one per instance.
        precision, method, operator, block, solver, preconditioner, devices, start: as in
            :func:`sample`, the same for every instance (the evaluation engine's settings only
            for ``policy``; ``start`` not for ``uniform``).
        chunk_size: samples per instance per compiled call; results do not depend on it.
        group_size: instances per compiled call; default from a memory estimate
            (:func:`jaxagg.kernels.returns.instance_group_size`, 256 MiB of operands and chunk
            outputs); results do not depend on it. Memory is bounded by one group x one chunk.
        progress: ``True`` for one progress bar over instances x samples, or a callable given
            each call's count of (instance, sample) pairs.

    Returns:
        One :class:`~jaxagg.samples.ReturnSample` per instance, in order. ``info["seconds"]``
        is the instance's share of the batch's wall time (the batch's time / K).

    Raises:
        ValidationError: a bad argument or instances of different shapes (naming the instance
            and what differs), or an instance :func:`sample` refuses (named ``momdps[k]``).
        ConvergenceError: a sampled policy's linear solve missed the tolerance (names the instance).
    """
    if not isinstance(momdps, (list, tuple)) or not momdps:
        raise ValidationError(f"momdps: expected a non-empty list of jaxagg.MOMDP, got {type(momdps).__name__}"
                              + (" (empty)" if isinstance(momdps, (list, tuple)) else ""))
    for k, momdp in enumerate(momdps):
        if not isinstance(momdp, MOMDP):
            raise ValidationError(f"momdps[{k}]: expected a jaxagg.MOMDP, got {type(momdp).__name__}")
    K = len(momdps)
    num_samples = integer_at_least("num_samples", num_samples, 1)
    chunk_size = integer_at_least("chunk_size", chunk_size, 1)
    start = integer_at_least("start", start, 0)
    if start + num_samples > 2**32:
        raise ValidationError(f"num_samples: start + num_samples must be at most 2**32, got {start + num_samples}")
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, (bool, np.bool_)):
        seeds = [check_seed("seeds", seeds)] * K
    elif isinstance(seeds, (list, tuple, np.ndarray)):
        if len(seeds) != K:
            raise ValidationError(f"seeds: expected one seed per instance ({K}), got {len(seeds)}")
        seeds = [check_seed(f"seeds[{k}]", value) for k, value in enumerate(seeds)]
    else:
        raise ValidationError(f"seeds: expected an integer or a list of {K} integers, got {seeds!r}")
    choice("measure", measure, SAMPLED_MEASURES)
    if group_size is not None:
        group_size = integer_at_least("group_size", group_size, 1)
    if measure != "policy":
        return _sample_each(momdps, num_samples, measure, seeds, progress, precision=precision, chunk_size=chunk_size,
                            start=start, devices=devices, method=method, operator=operator, block=block, solver=solver,
                            preconditioner=preconditioner)
    devices = _check_devices(devices)
    engine = engine_settings(momdps[0], method, operator, block=block, solver=solver, preconditioner=preconditioner,
                             devices=devices)
    precision = resolve_precision(momdps[0], precision)
    _check_same_shape(momdps, engine)
    kernels = []
    for k, momdp in enumerate(momdps):  # what sample() checks first, instance by instance
        with _instance(k):
            kernels.append(_measure_kernel(momdp, "policy", engine, keep_preconditioner=False))
    dtype = PRECISIONS[precision]
    block_fn = kernels[0][0]
    gamma = momdps[0].gamma

    def problems(group):
        with precision_scope("float64"):
            # each instance's operands exactly as sample() builds them, stacked on the host (a
            # device stack of hundreds of arrays would compile a concatenation of that many)
            parts = [jax.tree.map(np.asarray, kernels[k][1](dtype)[0]._replace(gamma=None)) for k in group]
            stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *parts)
            keys = jax.random.wrap_key_data(np.stack([np.asarray(jax.random.key_data(jax.random.key(seeds[k]))) for k in group]))
            return stacked, keys

    if group_size is None:
        with precision_scope("float64"):
            group_size = min(K, instance_group_size(kernels[0][1](dtype)[0], chunk_size, block=engine["block"]))
    began = time.perf_counter()
    with _bounds_alongside(momdps) as all_bounds, precision_scope("float64"), _progress(progress, K * num_samples) as tick:
        returns, residuals = stream_instances(block_fn, problems, K, gamma, num_samples, start=start, chunk_size=chunk_size,
                                              group_size=group_size, progress=tick, devices=devices,
                                              block=engine["block"], **_concurrency(momdps[0], engine))
        bounds = all_bounds()
    seconds = (time.perf_counter() - began) / K
    samples = []
    for k, momdp in enumerate(momdps):
        with _instance(k):
            _check_residuals(residuals[k], start, precision)
        info = {**_run_info(precision, start, chunk_size, seconds, num_samples, devices),
                "evaluation": dict(engine), "residual_max": float(residuals[k].max())}
        samples.append(ReturnSample(returns=_snap_degenerate(returns[k], bounds[k]), measure="policy", seed=seeds[k],
                                    max_returns=bounds[k].upper, min_returns=bounds[k].lower, info=info,
                                    fingerprint=momdp.fingerprint))
    return samples


@contextlib.contextmanager
def _bounds_alongside(momdps: Sequence[MOMDP]):
    """Compute the instances' return bounds (:func:`jaxagg.return_bounds`, cached per instance)
    on one background thread while the caller samples, and yield a function that waits for them
    and returns them in order, raising the first failure named ``momdps[k]``.

    HiGHS and JAX both release the GIL, and a CPU's LU sampling keeps one core busy, so the
    small instances' LPs run beside it: 1,000 Garnets (S = 50, A = 4, n = 4) x 2,000 samples spend
    about a quarter of a loop of :func:`sample` in their 8 LPs each (bench/sweep.py). The bounds
    are the same as :func:`sample`'s (the same function on the same instance)."""
    def bounds_of(k: int, momdp: MOMDP):
        with _instance(k):
            return return_bounds(momdp)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxagg-bounds")
    try:
        futures = [pool.submit(bounds_of, k, momdp) for k, momdp in enumerate(momdps)]
        yield lambda: [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _sample_each(momdps: Sequence[MOMDP], num_samples: int, measure: str, seeds: list[int],
                 progress: bool | Callable[[int], None], **options: Any) -> list[ReturnSample]:
    """``hull`` and ``uniform``: one :func:`sample` per instance, under one progress bar."""
    if measure == "uniform":
        if options["start"]:
            raise ValidationError("start: 'uniform' samples come from Markov chains and cannot start at an index")
        del options["start"], options["chunk_size"]
    samples = []
    with _progress(progress, len(momdps) * num_samples) as tick:
        for k, momdp in enumerate(momdps):
            with _instance(k):
                samples.append(sample(momdp, num_samples, measure, seeds[k], progress=tick or False, **options))
    return samples


def _check_same_shape(momdps: Sequence[MOMDP], engine: dict[str, Any]) -> None:
    """Refuse instances that cannot share one compiled call, naming the first that differs."""
    first = momdps[0]

    def signature(momdp: MOMDP) -> dict[str, Any]:
        described = {"states": momdp.num_states, "actions": momdp.num_actions, "agents": momdp.num_agents,
                     "criterion": momdp.criterion, "gamma": momdp.gamma}
        if engine["operator"] != "dense":
            described["transition form"] = momdp.transition_form
            if momdp.transition_form == first.transition_form:
                described["transition array shapes"] = [tuple(np.shape(leaf)) for leaf in jax.tree.leaves(momdp.transitions)]
        return described

    expected = signature(first)
    for k, momdp in enumerate(momdps[1:], start=1):
        given = signature(momdp)
        for what, value in expected.items():
            if given.get(what) != value:
                raise ValidationError(
                    f"momdps[{k}]: {what} {given.get(what)!r} differs from momdps[0]'s {value!r}; instances sampled together "
                    "must have the same shape (states, actions, agents, criterion, gamma and the engine's transition "
                    "operator): sample differently shaped instances in separate calls")


@contextlib.contextmanager
def _instance(k: int):
    """Prefix an error raised for one instance of a batch with ``momdps[k]: ``."""
    try:
        yield
    except (ValidationError, SolverError) as exc:
        renamed = type(exc)(f"momdps[{k}]: {exc}") if isinstance(exc, ValidationError) else \
            type(exc)(f"momdps[{k}]: {exc}", getattr(exc, "result", None))
        raise renamed from exc


def engine_settings(momdp: MOMDP, method: str = "auto", operator: str | None = None, *, block: int | None = None,
                    solver: str | None = None, preconditioner: str | None = None,
                    devices: list | None = None) -> dict[str, Any]:
    """How the ``policy`` measure evaluates policies on ``momdp``: ``{"method", "operator",
    "tol", "block"}``, and ``"solver"`` and ``"preconditioner"`` for Krylov. ``"auto"``: a dense LU up to
    :data:`LU_MAX_STATES` states, else a Krylov solver on the instance's own operator (the
    Kronecker products beat a dense GEMM from attention (4, 3) on: bench/kernels.py).
    ``operator`` forces a form (``"dense"`` or the instance's own), as recorded by an earlier run.
    ``block`` (policies per compiled block), ``solver`` and ``preconditioner`` default to what
    :func:`jaxagg.kernels.returns.block_size`, :func:`jaxagg.kernels.evaluation.default_solver`
    and :func:`jaxagg.kernels.evaluation.default_preconditioner` pick for the first of
    ``devices`` (the sampling default when None); an LU takes neither solver nor preconditioner."""
    choice("method", method, METHODS)
    native = momdp.transition_form
    small = momdp.num_states <= LU_MAX_STATES
    if operator is None:
        operator = "dense" if native == "dense" or method == "lu" or (method == "auto" and small) else native
    elif operator not in ("dense", native):
        raise ValidationError(f"operator: expected 'dense' or this instance's own form {native!r}, got {operator!r}")
    if method == "auto":
        method = "lu" if operator == "dense" and small else "krylov"
    if method == "lu" and operator != "dense":
        raise ValidationError(f"method: 'lu' needs dense transitions, but this run uses the {operator} operator")
    for name, value, allowed in (("solver", solver, SOLVERS), ("preconditioner", preconditioner, PRECONDITIONERS)):
        if value is not None:
            choice(name, value, allowed)
            if method != "krylov":
                raise ValidationError(f"{name}: only the 'krylov' method has one, but this run uses method {method!r}")
    if preconditioner == "mean-policy" and momdp.num_states > PRECONDITIONER_MAX_STATES:
        raise ValidationError(f"preconditioner: 'mean-policy' is a dense [S, S] inverse, for at most {PRECONDITIONER_MAX_STATES} "
                              f"states; this instance has {momdp.num_states} (use 'none')")
    platform = sample_devices(devices)[0].platform
    if block is None:
        block = block_size(platform, bytes_per_policy(momdp.num_states, momdp.num_actions, method), method)
    block = integer_at_least("block", block, 1)
    settings = {"method": method, "operator": operator, "tol": EVALUATION_TOL, "block": block}
    if method == "krylov":
        settings["solver"] = default_solver(platform, momdp.num_states) if solver is None else solver
        settings["preconditioner"] = (default_preconditioner(platform, momdp.num_states) if preconditioner is None
                                      else preconditioner)
    return settings


def _check_residuals(residuals: np.ndarray, start: int, precision: str) -> None:
    """Refuse a sample whose linear solve missed the tolerance, naming the worst ones."""
    bad = np.flatnonzero(~(residuals <= EVALUATION_TOL))
    if bad.size:
        worst = bad[np.argsort(-np.nan_to_num(residuals[bad], nan=np.inf))[:3]]
        raise ConvergenceError(
            f"policy evaluation: {bad.size} sample(s) missed the residual tolerance {EVALUATION_TOL:g} "
            f"(worst: index {', '.join(f'{start + i} at {residuals[i]:.2g}' for i in worst)}) in {precision}; "
            "the chain mixes too slowly for this precision: try precision='float64' or method='lu'")


def extend(momdp: MOMDP, sample_: ReturnSample, more: int, *, allow_version_change: bool = False,
           **options: Any) -> ReturnSample:
    """``sample_`` plus ``more`` samples continuing its stream (same seed, next indices): the
    result equals one run of ``len(sample_) + more`` samples. ``options`` as in :func:`sample`.
    ``sample_`` must have been drawn for ``momdp`` (:meth:`ReturnSample.check_instance`).

    Samples are bit-identical only within one jax and jaxlib version: a sample that recorded
    another version than this process runs (``info["jax"]``, ``info["jaxlib"]``, in any of its
    parts) is refused, or with ``allow_version_change=True`` continued with a
    :class:`~jaxagg.errors.VersionWarning`. Samples that recorded no version (older files)
    are continued."""
    _check_instance(momdp)
    allow_version_change = flag("allow_version_change", allow_version_change)
    if not isinstance(sample_, ReturnSample):
        raise ValidationError(f"sample_: expected a jaxagg.ReturnSample, got {type(sample_).__name__}")
    sample_.check_instance(momdp, "sample_")
    if sample_.seed is None:
        raise ValidationError("sample_: has no seed (a merge of differently seeded runs); it cannot be continued")
    if sample_.measure not in INDEXED_MEASURES:
        raise ValidationError(f"sample_: {sample_.measure!r} samples come from Markov chains, not from indexed draws, "
                              "and cannot be continued; draw a larger sample instead")
    start = max(stop for _, _, stop in index_ranges(sample_, "sample_"))
    _check_version_change(sample_, allow_version_change)
    recorded = _recorded_precision(sample_)
    given = options.setdefault("precision", recorded)
    if given != recorded:
        raise ValidationError(f"precision: the sample was drawn in {recorded}; continuing it in {given!r} would mix "
                              "precisions (leave precision out to keep the sample's)")
    if sample_.measure == "policy":
        engine = recorded_engine(sample_)
        for key in engine:
            given = options.setdefault(key, engine[key])
            if given not in (engine[key], "auto", None):
                raise ValidationError(f"{key}: the sample was evaluated with {key} {engine[key]!r}; continuing it with {given!r} "
                                      f"would change how its samples are computed (leave {key} out to keep the sample's)")
            options[key] = engine[key]
    return sample_.extend(sample(momdp, more, sample_.measure, sample_.seed, start=start, **options))


def _check_version_change(sample_: ReturnSample, allow: bool) -> None:
    """Refuse (or, when ``allow``, warn about) continuing a sample recorded in other jax/jaxlib/jaxagg
    versions than this process runs."""
    running = running_versions()
    recorded = _recorded_versions([sample_])
    changed = {key: values for key, values in recorded.items() if any(value != running[key] for value in values)}
    if not changed:
        return
    was = ", ".join(f"{key} {' and '.join(values)}" for key, values in changed.items())
    now = ", ".join(f"{key} {running[key]}" for key in changed)
    message = (f"sample_: was drawn with {was}, this process runs {now}; samples are not bit-identical across "
               "versions, so the continued sample would equal no single run")
    if not allow:
        raise ValidationError(f"{message} (pass allow_version_change=True, or jaxagg sample --resume "
                              "--allow-version-change, to continue it anyway)")
    warnings.warn(f"{message}; continuing it as allow_version_change=True asks", VersionWarning, stacklevel=3)


def _recorded_versions(samples: Sequence[ReturnSample]) -> dict[str, list[str]]:
    """The distinct versions recorded by every part of ``samples``: ``{"jax": [...], "jaxlib":
    [...]}`` in order of appearance (a key is absent where no part recorded it: older files)."""
    found: dict[str, list[str]] = {}
    for sample_ in samples:
        for part in sample_.info.get("parts") or [{"info": sample_.info}]:
            part_info = part.get("info") if isinstance(part, dict) else None
            for key in VERSION_KEYS:
                value = part_info.get(key) if isinstance(part_info, dict) else None
                if isinstance(value, str) and value not in found.setdefault(key, []):
                    found[key].append(value)
    return {key: values for key, values in found.items() if values}


# ------------------------------------------------ several processes or machines
def split_ranges(num_samples: int, parts: int, *, start: int = 0) -> list[tuple[int, int]]:
    """Split samples ``start .. start + num_samples - 1`` into ``parts`` contiguous index ranges,
    one ``(start, count)`` per part, in order, the counts as equal as possible (the first
    ``num_samples % parts`` parts one larger) and every count at least 1.

    Draw part ``k`` anywhere (another process, a Ray task, a Dask worker, a ``jax.distributed``
    process, another machine) with ``ja.sample(momdp, count, measure, seed, start=start)``, the
    same ``measure``, ``seed`` and options everywhere, and join the parts with
    :func:`merge_samples`: since sample ``i`` depends only on ``(seed, i)`` (and the recorded
    evaluation engine), the result equals one ``ja.sample(momdp, num_samples, measure, seed,
    start=start)`` bit for bit, on the same jax and jaxlib version and kind of device.

    Raises:
        ValidationError: ``num_samples`` or ``parts`` not an integer >= 1, more parts than samples,
            ``start`` not an integer >= 0, or ``start + num_samples > 2**32``.
    """
    num_samples = integer_at_least("num_samples", num_samples, 1)
    parts = integer_at_least("parts", parts, 1)
    start = integer_at_least("start", start, 0)
    if parts > num_samples:
        raise ValidationError(f"parts: expected at most num_samples ({num_samples}) parts, so that every part has a "
                              f"sample, got {parts}")
    if start + num_samples > 2**32:
        raise ValidationError(f"num_samples: start + num_samples must be at most 2**32, got {start + num_samples}")
    size, larger = divmod(num_samples, parts)
    counts = [size + 1] * larger + [size] * (parts - larger)
    firsts = [start + sum(counts[:k]) for k in range(parts)]
    return list(zip(firsts, counts))


def merge_samples(samples: Sequence[ReturnSample], *, allow_version_mix: bool = False) -> ReturnSample:
    """One sample from parts drawn separately (:func:`split_ranges`): the parts in order of their
    first index, joined by :meth:`ReturnSample.extend`. The result equals one :func:`sample` of
    the whole range (returns bit for bit, seed, measure and bounds); ``info["parts"]`` records
    every part.

    Args:
        samples: a non-empty list of ``policy`` or ``hull`` samples (``uniform`` samples are
            Markov chains, not indexed draws, and cannot be split), in any order, drawn for one
            instance (fingerprint) with one seed, precision and, for ``policy``, evaluation engine
            (``info["evaluation"]``: method, operator, block, solver, preconditioner;
            :func:`recorded_engine`), together
            covering one contiguous range of indices once.
        allow_version_mix: join parts that recorded different jax/jaxlib/jaxagg versions (with a
            :class:`~jaxagg.errors.VersionWarning`; the result then equals no single run).

    Raises:
        ValidationError: naming the part that differs, the draws missing between two parts or
            held twice, or the versions that differ.
    """
    allow_version_mix = flag("allow_version_mix", allow_version_mix)
    if not isinstance(samples, (list, tuple)) or not samples:
        raise ValidationError(f"samples: expected a non-empty list of jaxagg.ReturnSample, got {type(samples).__name__}"
                              + (" (empty)" if isinstance(samples, (list, tuple)) else ""))
    ranges = []
    for k, part in enumerate(samples):
        ranges.append(_check_mergeable(part, samples[0], f"samples[{k}]"))
    order = sorted(range(len(samples)), key=lambda k: min(first for _, first, _ in ranges[k]))
    seed = samples[0].seed
    previous = None  # (k, stop) of the part before
    for k in order:
        for _, first, stop in ranges[k]:
            if previous is not None and first != previous[1]:
                where = f"samples[{previous[0]}] and samples[{k}]" if previous[0] != k else f"samples[{k}]"
                if first > previous[1]:
                    raise ValidationError(f"samples: draws {previous[1]}..{first - 1} of seed {seed} are missing between the "
                                          f"parts of {where}; the parts must cover one contiguous range (split_ranges)")
                raise ValidationError(f"samples: draws {first}..{min(stop, previous[1]) - 1} of seed {seed} are held twice, "
                                      f"by {where}; the parts must not overlap (split_ranges)")
            previous = (k, stop)
    _check_version_mix(samples, allow_version_mix)
    return functools.reduce(ReturnSample.extend, [samples[k] for k in order])


def _check_mergeable(part: Any, first: Any, name: str) -> list[tuple[int | None, int, int]]:
    """Refuse a part that cannot be joined to ``first`` (the first part given); its index ranges."""
    if not isinstance(part, ReturnSample):
        raise ValidationError(f"{name}: expected a jaxagg.ReturnSample, got {type(part).__name__}")
    if part.measure not in INDEXED_MEASURES:
        raise ValidationError(f"{name}: {part.measure!r} samples come from Markov chains, not from indexed draws, and "
                              "cannot be split into index ranges and merged; draw one sample instead")
    if part.seed is None:
        raise ValidationError(f"{name}: has no seed (a merge of differently seeded runs); parts of one run share its seed")
    ranges = index_ranges(part, name)
    if part is first:
        return ranges
    if part.fingerprint != first.fingerprint:
        shown = [f"{fingerprint[:12]}…" if fingerprint else "none" for fingerprint in (part.fingerprint, first.fingerprint)]
        raise ValidationError(f"{name}: was drawn for a different instance than samples[0] (fingerprint {shown[0]} differs "
                              f"from {shown[1]}); parts of one run share the instance")
    given = {"measure": (part.measure, first.measure), "seed": (part.seed, first.seed),
             "precision": (_recorded_precision(part), _recorded_precision(first))}
    if part.measure == "policy":
        given["evaluation"] = (recorded_engine(part), recorded_engine(first))
    for what, (mine, theirs) in given.items():
        if mine != theirs:
            raise ValidationError(f"{name}: expected the {what} of samples[0], {theirs!r}, got {mine!r}; parts of one "
                                  "run share the instance, measure, seed, precision and evaluation engine")
    return ranges


def _check_version_mix(samples: Sequence[ReturnSample], allow: bool) -> None:
    """Refuse (or, when ``allow``, warn about) parts recorded in different jax/jaxlib/jaxagg versions."""
    holders: dict[str, dict[str, list[str]]] = {}  # key -> version -> the samples that recorded it
    for k, sample_ in enumerate(samples):
        for key, values in _recorded_versions([sample_]).items():
            for value in values:
                holders.setdefault(key, {}).setdefault(value, []).append(f"samples[{k}]")
    mixed = {key: found for key, found in holders.items() if len(found) > 1}
    if not mixed:
        return
    described = ", ".join(f"{key} " + " and ".join(f"{value} ({', '.join(names)})" for value, names in found.items())
                          for key, found in mixed.items())
    message = (f"samples: were drawn with {described}; samples are not bit-identical across versions, so the merged "
               "sample would equal no single run")
    if not allow:
        raise ValidationError(f"{message} (pass allow_version_mix=True to merge them anyway)")
    warnings.warn(f"{message}; merging them as allow_version_mix=True asks", VersionWarning, stacklevel=3)


def sample_occupancies(momdp: MOMDP, indices: np.ndarray, measure: str = "policy", seed: int = 0, *,
                       precision: str = "auto", method: str = "auto", operator: str | None = None,
                       block: int | None = None, solver: str | None = None,
                       preconditioner: str | None = None) -> np.ndarray:
    """The occupancies ``[k, S*A]`` behind samples ``indices [k]`` of ``sample(momdp, ...,
    measure, seed, precision=precision, method=method)``, recomputed exactly from their keys
    (nothing is stored during sampling). ``measure`` is ``"policy"`` or ``"hull"`` (indexed
    draws); ``method``, ``operator``, ``block``, ``solver`` and ``preconditioner`` as recorded in the sample's
    ``info["evaluation"]`` (:func:`recorded_engine`)."""
    _check_instance(momdp)
    precision = resolve_precision(momdp, precision)
    seed = check_seed("seed", seed)
    indices = np.asarray(indices).reshape(-1)
    if indices.size and (indices.dtype.kind not in "iu" or indices.min() < 0 or indices.max() >= 2**32):
        raise ValidationError("indices: expected integer sample indices in [0, 2**32)")
    engine = engine_settings(momdp, method, operator, block=block, solver=solver,
                             preconditioner=preconditioner) if measure == "policy" else None
    block_fn, operands_fn = _measure_kernel(momdp, measure, engine)
    with precision_scope("float64"):
        _, d = evaluate_indices(block_fn, operands_fn(PRECISIONS[precision]), jax.random.key(seed), indices,
                                block=BLOCK if engine is None else engine["block"])
    return np.asarray(d, dtype=np.float64)


def _uniform(momdp: MOMDP, num_samples: int, seed: int, precision: str, bounds, options: dict,
             progress: bool | Callable[[int], None]) -> ReturnSample:
    """The ``uniform`` measure by hit-and-run (:mod:`jaxagg.uniform`); returns in float64 from
    the sampled occupancies."""
    if not isinstance(options, dict) or set(options) - set(UNIFORM_OPTIONS):
        given = sorted(options) if isinstance(options, dict) else type(options).__name__
        raise ValidationError(f"uniform_options: expected a dict with keys among {', '.join(UNIFORM_OPTIONS)}, got {given}")
    began = time.perf_counter()
    with _progress(progress, num_samples) as tick:
        d, settings = uniform_occupancies(momdp, num_samples, seed, precision=precision, progress=tick, **options)
    seconds = time.perf_counter() - began
    info = {"precision": precision, "start": 0, "seconds": seconds, "backend": jax.default_backend(),
            **running_versions(), **settings}
    return ReturnSample(returns=_snap_degenerate(momdp.returns(d), bounds), measure="uniform", seed=seed,
                        max_returns=bounds.upper, min_returns=bounds.lower, info=info, fingerprint=momdp.fingerprint)


# ------------------------------------------------------------------ helpers
def _concurrency(momdp: MOMDP, engine: dict | None) -> dict[str, Any]:
    """:func:`~jaxagg.kernels.returns.stream`'s concurrency options for an ``engine``: GMRES on
    concurrent lanes (a CPU: one per core, as many as fit in memory); the LU and the measures
    without linear solves as the devices decide (a CPU: one lane, since LAPACK calls must not
    overlap). Lanes never change the numbers."""
    if engine is None or engine["method"] == "lu":
        return {"concurrent": None}
    per_lane = engine["block"] * bytes_per_policy(momdp.num_states, momdp.num_actions, engine["method"])
    return {"concurrent": True, "max_lanes": lane_limit(per_lane)}


def _measure_kernel(momdp: MOMDP, measure: str, engine: dict | None,
                    keep_preconditioner: bool = True) -> tuple[Callable, Callable[[Any], tuple]]:
    """The block kernel of ``measure`` (with the ``engine`` settings for ``policy``) and a
    function building its operands for a working dtype. ``keep_preconditioner``: keep the
    instance's mean-policy preconditioner for later calls (:func:`_kept_preconditioner`); a batch
    of instances builds each once and lets it go."""
    if measure == "uniform":
        raise ValidationError("measure: 'uniform' points come from Markov chains, not indexed draws; "
                              "jaxagg.uniform.uniform_occupancies gives the occupancies of a chain run")
    choice("measure", measure, INDEXED_MEASURES)
    if measure == "policy":
        if momdp.criterion == "average" and not is_unichain_for_full_support(momdp):
            raise ValidationError(
                "momdp: the 'policy' measure under the average-reward criterion needs every full-support "
                "policy to be unichain, but this MOMDP has several closed classes of states, which jaxagg's "
                "policy evaluation does not handle; use the 'hull' measure (its points are reached from mu, by "
                "policy mixtures) or the discounted criterion"
            )
        operator = T.DenseTransitions(momdp.P) if engine["operator"] == "dense" else momdp.transitions

        def policy_operands(dtype):
            Q = None
            if engine.get("preconditioner") == "mean-policy":
                Q = jnp.asarray(_kept_preconditioner(momdp, engine["operator"], operator) if keep_preconditioner
                                else mean_policy_preconditioner(operator, momdp.gamma), dtype)
            return (MeasureProblem(T.astype(operator, dtype), T.astype(operator, jnp.float64), jnp.asarray(momdp.mu, jnp.float64),
                                   jnp.asarray(momdp.reward_matrix, jnp.float64), momdp.gamma, Q),)

        return POLICY_BLOCKS[engine["method"], engine.get("solver")], policy_operands
    vertices = return_bounds(momdp).argmax  # hull: [n, S*A]

    def hull_operands(dtype):
        return (jnp.asarray(vertices, dtype), jnp.asarray(momdp.returns(vertices), dtype))

    return hull_block, hull_operands


_PRECONDITIONERS: weakref.WeakKeyDictionary[MOMDP, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def _kept_preconditioner(momdp: MOMDP, form: str, operator: T.Transitions) -> np.ndarray:
    """:func:`~jaxagg.kernels.evaluation.mean_policy_preconditioner` of ``momdp``'s ``operator``
    (of ``form``), built once per instance and form and kept while the instance lives: building
    it (products, a host inverse and transfers) took about 40 ms of each ``sample`` call at
    attention (5, 3) on an H100 host, 4% of a one-second call."""
    kept = _PRECONDITIONERS.setdefault(momdp, {})
    if form not in kept:
        kept[form] = mean_policy_preconditioner(operator, momdp.gamma)
    return kept[form]


class _progress:
    """Context giving a per-chunk callback: a tqdm bar, the user's callable, or nothing."""

    def __init__(self, progress: bool | Callable[[int], None], total: int):
        self._bar = None
        if callable(progress):
            self.tick = progress
        elif progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="samples", unit_scale=True, desc="sampling", leave=False)
            self.tick = self._bar.update
        else:
            self.tick = None

    def __enter__(self):
        return self.tick

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
        return False


def resolve_precision(momdp: MOMDP, precision: str) -> str:
    """The kernels' precision for ``momdp``: ``"auto"`` is float32 unless the discount factor is
    so close to 1 that float32 is not accurate enough (then float64); float32 there is refused."""
    choice("precision", precision, ("auto", *PRECISIONS))
    long_horizon = momdp.gamma is not None and 1.0 - momdp.gamma < FLOAT32_MIN_ONE_MINUS_GAMMA
    if precision == "auto":
        return "float64" if long_horizon else "float32"
    if precision == "float32" and long_horizon:
        raise ValidationError(
            f"precision: float32 samples at gamma = {momdp.gamma!r} are off by about {7e-8 / (1.0 - momdp.gamma):.1g} of the "
            f"return range (float32 is used for 1 - gamma >= {FLOAT32_MIN_ONE_MINUS_GAMMA:g}); use precision='float64' or 'auto'")
    return precision


def _snap_degenerate(returns: np.ndarray, bounds) -> np.ndarray:
    """Sampled returns ``[N, n]`` as float64, with every degenerate agent's column (its return
    is the same for every policy) set to that one value, ``min_O J_i``: the kernels' rounding
    would otherwise spread it into a fake distribution. In place when ``returns`` is a writeable
    float64 array (the samplers' own fresh arrays: no copy of millions of rows)."""
    returns = np.asarray(returns, dtype=np.float64)
    if bounds.degenerate.any():
        returns = returns if returns.flags.writeable else returns.copy()
        returns[:, bounds.degenerate] = bounds.lower[bounds.degenerate]
    return returns


def recorded_engine(sample_: ReturnSample) -> dict[str, Any]:
    """The ``method``, ``operator``, ``block`` and (Krylov) ``solver`` and ``preconditioner`` a
    ``policy`` sample was evaluated with (its info, or its last part's); samples from before the
    Krylov engine were dense LUs, samples from before blocks were recorded used blocks of
    :data:`~jaxagg.kernels.returns.BLOCK`, and Krylov samples from before solvers were recorded
    (0.4.0) used GMRES, from before preconditioners were recorded (0.5.0) none."""
    parts = sample_.info.get("parts") or [{"info": sample_.info}]
    engine = sample_.info.get("evaluation") or (parts[-1].get("info") or {}).get("evaluation") or {}
    block = engine.get("block") if isinstance(engine, dict) else None
    block = block if isinstance(block, int) and not isinstance(block, bool) and block >= 1 else BLOCK
    if not isinstance(engine, dict) or engine.get("method") not in ("krylov", "lu") or not isinstance(engine.get("operator"), str):
        return {"method": "lu", "operator": "dense", "block": block}
    recorded = {"method": engine["method"], "operator": engine["operator"], "block": block}
    if engine["method"] == "krylov":
        recorded["solver"] = engine.get("solver") if engine.get("solver") in SOLVERS else "gmres"
        recorded["preconditioner"] = engine.get("preconditioner") if engine.get("preconditioner") in PRECONDITIONERS else "none"
    return recorded


def _recorded_precision(sample_: ReturnSample) -> str:
    """The precision a sample was drawn in (its info, or its last part's); float32 if unrecorded."""
    parts = sample_.info.get("parts") or [{"info": sample_.info}]
    recorded = sample_.info.get("precision") or (parts[-1].get("info") or {}).get("precision")
    return recorded if recorded in PRECISIONS else "float32"


def _check_devices(devices: Any) -> list:
    """The devices to shard over (the kernel's default when None: this process's); a clear
    error for an empty or non-device list, or a device of another process."""
    if devices is not None:
        devices = list(devices) if isinstance(devices, (list, tuple)) else devices
        if not isinstance(devices, list) or not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise ValidationError(f"devices: expected a non-empty list of jax devices (jax.local_devices()), got {devices!r}")
        process = jax.process_index()
        foreign = [device for device in devices if device.process_index != process]
        if foreign:
            raise ValidationError(
                f"devices: expected devices of this process (process_index {process}, jax.local_devices()), got "
                f"{', '.join(f'{device} of process {device.process_index}' for device in foreign)}; under jax.distributed "
                "each process samples its own index range on its own devices (split_ranges, merge_samples)")
    return sample_devices(devices)


def _check_instance(momdp: Any) -> None:
    if not isinstance(momdp, MOMDP):
        raise ValidationError(f"momdp: expected a jaxagg.MOMDP, got {type(momdp).__name__}")
