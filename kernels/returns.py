"""Streaming N samples of every agent's return, chunk by chunk, with memory bounded by a chunk.

Every block also returns each sample's float64 residual (:mod:`jaxagg.kernels.evaluation`), so
that the caller can record it and refuse a sample that did not meet the tolerance.

Reproducibility by construction: sample ``i`` is computed from ``(key, i)`` alone
(:func:`jaxagg.kernels.policies.counter_bits`), and every sample goes through the same compiled
*block* of ``block`` samples (``lax.map`` over blocks). A chunk is a whole number of blocks; the
last one is padded and the padding dropped. So the numbers are bit-identical whatever the chunk
size, and the occupancy of any sample can be recomputed later from its index
(:func:`evaluate_indices`) instead of being stored.

The block size is the one knob that changes the numbers (XLA picks kernels by shape): a CPU
wants small blocks (:data:`BLOCK`; :data:`CPU_LU_BLOCK` for the LU), an accelerator large ones
(:func:`block_size`), since the blocks of a call run one after another and each costs a few
kernel launches per GMRES step whatever its size (measured, attention (5,3), float32 GMRES: 32-policy blocks about 3,000
policies/s on an H100, and on an H200 2.1e4 at 256, 6.9e4 at 1,024, 2.0e5 at 4,096, 3.9e5 at
16,384, 4.9e5 at 65,536; bench/RESULTS.md). The caller records the block with the sample.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxagg.kernels import transitions as T
from jaxagg.kernels.evaluation import SOLVER, evaluate_policies
from jaxagg.kernels.policies import dirichlet_rows, random_policies
from jaxagg.kernels.precision import precision_scope

BLOCK = 32
"""Samples per compiled block on a CPU (and the block of samples recorded before blocks were
recorded): every sample goes through the same block computation."""
CPU_LU_BLOCK = 128
"""Samples per compiled block on a CPU for the dense LU (small S): LAPACK factors one matrix at a
time, so a larger block only spreads the block's fixed costs (``python bench/lu_blocks.py``,
2 cores, 2026-11-27: against blocks of 32, 128 ran 1.31x / 0.99x / 1.10x / 1.08x on Garnet
(20, 3), attention (3, 3), Garnet (50, 4) and a discounted Garnet (64, 4), and 1.43x / 1.31x /
1.17x / 1.08x in an earlier ad-hoc run; 256 was within the noise of 128, 512 slower)."""
ACCELERATOR_BLOCK = 16384
"""Largest block on an accelerator (GPU/TPU)."""
BLOCK_BYTES = 2 * 2**30
"""An accelerator block's working arrays stay within this many bytes (:func:`block_size`), and so
do the working arrays of a CPU's lanes together (:func:`lane_limit`)."""


def block_size(platform: str, bytes_per_sample: int, method: str = "krylov") -> int:
    """Samples per compiled block on devices of ``platform`` (``"cpu"``, ``"gpu"``, ...) for the
    evaluation ``method`` (``"krylov"`` or ``"lu"``): on a CPU :data:`BLOCK`, or
    :data:`CPU_LU_BLOCK` for the LU; on an accelerator the largest power of two up to
    :data:`ACCELERATOR_BLOCK` whose working arrays (``bytes_per_sample`` each) fit in
    :data:`BLOCK_BYTES`, and at least :data:`BLOCK`."""
    if platform == "cpu":
        return CPU_LU_BLOCK if method == "lu" else BLOCK
    block = ACCELERATOR_BLOCK
    while block > BLOCK and block * max(1, int(bytes_per_sample)) > BLOCK_BYTES:
        block //= 2
    return block


def lane_limit(bytes_per_lane: int) -> int:
    """Most CPU lanes (:func:`concurrent_lanes`) whose working arrays, ``bytes_per_lane`` each (one
    block's), fit in :data:`BLOCK_BYTES` together; at least 1."""
    return max(1, BLOCK_BYTES // max(1, int(bytes_per_lane)))


class MeasureProblem(NamedTuple):
    """What the ``policy`` sampler needs of a MOMDP, as device arrays.

    Attributes:
        transitions: transition operator in the working precision (float32 or float64).
        transitions64: the same operator in float64 (residuals and corrections).
        mu: ``[S]`` initial distribution (float64).
        rewards: ``[n, S*A]`` reward matrix (float64).
        gamma: discount factor, or ``None`` for average reward.
        preconditioner: ``[S, S]`` right preconditioner of the Krylov solves in the working
            precision (:func:`jaxagg.kernels.evaluation.mean_policy_preconditioner`), or ``None``.
    """

    transitions: T.Transitions
    transitions64: T.Transitions
    mu: jax.Array
    rewards: jax.Array
    gamma: float | None
    preconditioner: jax.Array | None = None


def _policy_block(key: jax.Array, indices: jax.Array, problem: MeasureProblem, method: str, solver: str = SOLVER):
    """``policy`` measure for one block of global sample ``indices [B]``: returns
    ``[B, n]``, occupancies ``[B, S*A]`` and residuals ``[B]``, all float64 (the
    linear solves run in the operator's working precision, then are corrected in float64)."""
    S, A = T.shape_of(problem.transitions)
    # the same float32 draws in every precision, normalised in float64: the sampled policy is the
    # float64 one (the working-precision solve is only the start of the float64 corrections)
    pi = random_policies(key, indices, S, A, jnp.float64)
    evaluated = evaluate_policies(problem.transitions, problem.transitions64, pi, problem.mu, problem.gamma, method=method,
                                  solver=solver, preconditioner=problem.preconditioner)
    d = (evaluated.rho[:, :, None] * pi).reshape(indices.shape[0], S * A)
    return d @ problem.rewards.T, d, evaluated.residual


def policy_block_gmres(key: jax.Array, indices: jax.Array, problem: MeasureProblem):
    """:func:`_policy_block` by batched GMRES on the shared operator."""
    return _policy_block(key, indices, problem, "krylov", "gmres")


def policy_block_bicgstab(key: jax.Array, indices: jax.Array, problem: MeasureProblem):
    """:func:`_policy_block` by batched BiCGSTAB on the shared operator."""
    return _policy_block(key, indices, problem, "krylov", "bicgstab")


def policy_block_lu(key: jax.Array, indices: jax.Array, problem: MeasureProblem):
    """:func:`_policy_block` by a dense LU per policy (small S)."""
    return _policy_block(key, indices, problem, "lu")


POLICY_BLOCKS = {("krylov", "gmres"): policy_block_gmres, ("krylov", "bicgstab"): policy_block_bicgstab,
                 ("lu", None): policy_block_lu}
"""The ``policy`` block kernel of each evaluation method and Krylov solver (``None`` for the LU)."""


def hull_block(key: jax.Array, indices: jax.Array, vertices: jax.Array, vertex_returns: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``hull`` measure for one block: ``lambda ~ Dirichlet(1_n)``, ``d = lambda @ vertices``.

    ``vertices [k, S*A]`` are the agents' optimal occupancies, ``vertex_returns [k, n]`` their
    returns; returns are linear, so ``J = lambda @ vertex_returns`` without forming ``d``. No
    linear solve, so the residuals are 0."""
    lam = dirichlet_rows(key, indices, 1, vertices.shape[0], vertices.dtype)[:, 0]  # same draws in every precision
    return lam @ vertex_returns, lam @ vertices, jnp.zeros(indices.shape, vertices.dtype)


@partial(jax.jit, static_argnames=("block_fn", "block"))
def _block_rows(block_fn: Callable, key: jax.Array, first: jax.Array, positions: jax.Array, operands,
                block: int) -> tuple[jax.Array, jax.Array]:
    """Returns ``[k, n]`` and occupancies ``[k, D]`` of the samples at ``positions [k]`` of the
    block of global indices ``first .. first + block - 1``."""
    returns, d, _ = block_fn(key, first + jnp.arange(block, dtype=jnp.uint32), *operands)
    return returns[positions], d[positions]


def sample_devices(devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """Devices to spread chunks over: the given ones, or by default this process's devices of
    the default backend (``jax.local_devices()``: all of them on an accelerator, the first on a
    CPU). Under ``jax.distributed`` every process samples on its own devices; a device of
    another process (``device.process_index != jax.process_index()``) is refused."""
    if devices is None:
        local = jax.local_devices()
        return local if jax.default_backend() != "cpu" else local[:1]
    devices = list(devices)
    if not devices:
        raise ValueError("devices: expected at least one JAX device, got none")
    foreign = [device for device in devices if device.process_index != jax.process_index()]
    if foreign:
        raise ValueError(f"devices: expected devices of this process ({jax.process_index()}), got {foreign!r}")
    return devices


@partial(jax.jit, static_argnames=("block_fn", "num_blocks", "block"))
def _returns_of_range(block_fn: Callable, key: jax.Array, start: jax.Array, num_blocks: int, operands,
                      block: int = BLOCK) -> tuple[jax.Array, jax.Array]:
    """Returns ``[num_blocks, block, n]`` and residuals ``[num_blocks, block]`` of samples
    ``start .. start + num_blocks*block - 1`` (the occupancies are never materialised)."""
    return _range(block_fn, key, start, num_blocks, operands, block)


def _range(block_fn: Callable, key: jax.Array, start: jax.Array, num_blocks: int, operands,
           block: int) -> tuple[jax.Array, jax.Array]:
    """The body of :func:`_returns_of_range` (traced inside a ``jit``)."""
    indices = start + jnp.arange(num_blocks * block, dtype=jnp.uint32).reshape(num_blocks, block)

    def one_block(block_indices):
        returns, _, residual = block_fn(key, block_indices, *operands)
        return returns, residual

    return jax.lax.map(one_block, indices)


@partial(jax.jit, static_argnames=("block_fn", "num_blocks", "block"))
def _returns_of_instances(block_fn: Callable, keys: jax.Array, start: jax.Array, num_blocks: int, problems: MeasureProblem,
                          gamma, block: int = BLOCK) -> tuple[jax.Array, jax.Array]:
    """:func:`_returns_of_range` for ``K`` instances at once: ``keys [K]`` and ``problems`` (a
    :class:`MeasureProblem` whose arrays have a leading instance axis ``[K, ...]``, ``gamma``
    shared) -> returns ``[K, num_blocks, block, n]`` and residuals ``[K, num_blocks, block]``.

    The instances run one after another inside the compiled call (``lax.map``), each through
    exactly the computation of :func:`_returns_of_range`, with the same shapes: XLA's choice of
    kernels and fusions depends on shapes (a ``vmap`` over instances changes float32 policy
    draws and GMRES reductions by an ulp), so this is what keeps every instance's numbers
    bit-identical to a single-instance run."""

    def one_instance(args):
        key, problem = args
        return _range(block_fn, key, start, num_blocks, (problem._replace(gamma=gamma),), block)

    return jax.lax.map(one_instance, (keys, problems))


def _aligned_range(start: int, num_samples: int, block: int) -> tuple[int, int, int]:
    """``(head, aligned_start, total)``: samples ``start ..`` run from the first index of
    ``start``'s block, ``head = start % block`` samples earlier, ``total = num_samples + head``
    of them; the first ``head`` are dropped (see :func:`stream`)."""
    head = start % block
    return head, start - head, num_samples + head


def stream(
    block_fn: Callable,
    operands: tuple,
    key: jax.Array,
    num_samples: int,
    *,
    start: int = 0,
    chunk_size: int = 4096,
    progress: Callable[[int], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    concurrent: bool | None = None,
    block: int = BLOCK,
    max_lanes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``[num_samples, n]`` and residuals ``[num_samples]`` of samples ``start .. start +
    num_samples - 1``, computed in chunks of ``chunk_size`` (rounded up to a multiple of
    ``block`` times the number of lanes), so that memory is bounded by one chunk's returns plus
    one block's working arrays per lane.

    Sample ``i`` is always evaluated at position ``i % block`` of the block of indices ``i - i %
    block, ...`` (a run that starts inside a block computes that block from its first index and
    drops the head): a block's float32 products can round a row differently by its position (XLA's
    CPU GEMMs treat their tail rows apart), so this is what makes a continued run (``start > 0``)
    and :func:`evaluate_indices` bit-identical to one long run.

    Each chunk is split into equal runs of blocks, one per lane (:func:`concurrent_lanes`: one
    per device, and on a CPU one per core, run from threads); ``operands`` are placed on every
    device once. Every sample goes through the same compiled block, so the numbers do not depend
    on the chunk size or the number of devices or lanes.

    Args:
        block_fn: ``block_fn(key, indices [block], *operands) -> (returns [block, n], d [block, D],
            residual [block])``.
        operands: arrays (a pytree) that ``block_fn`` needs.
        progress: called with the number of samples finished after each chunk.
        devices: devices to spread chunks over (:func:`sample_devices` picks the default).
        concurrent: whether the lanes' shares run at the same time. Default: on accelerators
            only. A CPU must not run LAPACK solves concurrently (jaxlib's CPU backend can
            deadlock); the Krylov kernels call no LAPACK, so their caller passes True.
        block: samples per compiled block (:func:`block_size`); the numbers depend on it.
        max_lanes: most concurrent CPU lanes (:func:`lane_limit`); default one per core.
    """
    devices = sample_devices(devices)
    if concurrent is None:
        concurrent = all(device.platform != "cpu" for device in devices)
    lanes = concurrent_lanes(devices, max_lanes) if concurrent else devices
    L = len(lanes)
    head, start, total = _aligned_range(start, num_samples, block)
    # equal calls, so that one compilation serves them all: the chunks split the blocks evenly
    # (the last padded with the next samples' indices, dropped)
    blocks = equal_chunks(math.ceil(total / (block * L)), math.ceil(chunk_size / (block * L)))
    placed = {device: jax.device_put((operands, key), device) for device in set(lanes)}

    def call(lane: int, first: int):
        device_operands, device_key = placed[lanes[lane]]
        start_ = jax.device_put(np.uint32(first + lane * blocks * block), lanes[lane])
        return _returns_of_range(block_fn, device_key, start_, blocks, device_operands, block)

    returns_parts, residual_parts = [], []

    def collect(runs: list, done: int) -> None:
        count, skip = min(blocks * block * L, total - done), head if done == 0 else 0
        returns = np.concatenate([np.asarray(r).reshape(-1, r.shape[-1]) for r, _ in runs])
        residuals = np.concatenate([np.asarray(e).reshape(-1) for _, e in runs])
        returns_parts.append(returns[skip:count])
        residual_parts.append(residuals[skip:count])
        if progress is not None:
            progress(count - skip)

    with _lane_runner(lanes, concurrent) as run:
        # one chunk in flight: on an accelerator (asynchronous dispatch) the next chunk is queued
        # before this one is fetched, so the device does not wait on the host between chunks
        pending = None
        for done in range(0, total, blocks * block * L):
            runs = run(partial(call, first=start + done))
            if pending is not None:
                collect(*pending)
            pending = (runs, done)
        if pending is not None:
            collect(*pending)
    return np.concatenate(returns_parts), np.concatenate(residual_parts)


def host_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def concurrent_lanes(devices: Sequence[jax.Device], max_lanes: int | None = None) -> list[jax.Device]:
    """The devices of each concurrent call ("lane") of a chunk: one lane per device, and on
    CPUs one per core (:func:`host_cores`) up to ``max_lanes`` (:func:`lane_limit`; never fewer
    than one per device), spread over the host devices in turn.

    One CPU device runs calls made from several Python threads at the same time, one per core,
    with the one compiled program (host devices forced with ``XLA_FLAGS`` would each compile
    their own copy, and a program for several devices at once, ``shard_map``/``pmap``, is
    compiled differently: its float32 reductions round differently)."""
    devices = list(devices)
    if any(device.platform != "cpu" for device in devices):
        return devices
    cores = host_cores()
    count = max(len(devices), cores if max_lanes is None else min(cores, int(max_lanes)))
    return [devices[k % len(devices)] for k in range(count)]


class _lane_runner:
    """Context giving ``run(call, count=None) -> [call(k) for the first count lanes (default
    all)]``: on CPU lanes from one thread each (a CPU device executes calls from several threads
    at once, not calls queued by one thread), in the caller's precision scope; on accelerators
    from this thread (their calls are asynchronous); one after another when not ``concurrent``."""

    def __init__(self, lanes: Sequence[jax.Device], concurrent: bool):
        self._lanes = list(lanes)
        threaded = concurrent and len(self._lanes) > 1 and all(device.platform == "cpu" for device in self._lanes)
        self._pool = ThreadPoolExecutor(max_workers=len(self._lanes)) if threaded else None
        self._concurrent = concurrent

    def __enter__(self):
        return self.run

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def run(self, call: Callable, count: int | None = None) -> list:
        lanes = range(len(self._lanes) if count is None else count)
        if self._pool is not None:
            x64 = bool(jax.config.jax_enable_x64)  # the scope is per thread: carry the caller's

            def in_scope(lane):
                with precision_scope("float64" if x64 else "float32"):
                    return jax.block_until_ready(call(lane))

            return list(self._pool.map(in_scope, lanes))
        runs = []
        for lane in lanes:
            runs.append(call(lane))
            if not self._concurrent:
                jax.block_until_ready(runs[-1])
        return runs


def equal_chunks(total_blocks: int, max_blocks: int) -> int:
    """Blocks per call when ``total_blocks`` are split into the fewest calls of at most
    ``max_blocks`` each, made equal (the last call is padded): one compilation serves them all."""
    calls = math.ceil(max(1, total_blocks) / max(1, max_blocks))
    return math.ceil(max(1, total_blocks) / calls)


def instance_group_size(problem: MeasureProblem, chunk_size: int, budget_bytes: int = 256 * 2**20, block: int = BLOCK) -> int:
    """Instances per compiled call of :func:`stream_instances` whose operands and chunk outputs
    fit in ``budget_bytes``: the float32 and float64 operators, ``mu``, the rewards, the
    preconditioner and ``chunk_size`` returns and residuals per instance (one block's working
    arrays come on top, once: the instances of a call run one after another)."""
    chunk = math.ceil(chunk_size / block) * block
    n = problem.rewards.shape[0]
    preconditioner = 0 if problem.preconditioner is None else int(problem.preconditioner.nbytes)
    per_instance = (T.nbytes(problem.transitions) + T.nbytes(problem.transitions64) + int(problem.mu.nbytes)
                    + int(problem.rewards.nbytes) + preconditioner + chunk * (n + 1) * 8)
    return max(1, budget_bytes // per_instance)


def stream_instances(
    block_fn: Callable,
    problems: Callable[[Sequence[int]], tuple[MeasureProblem, jax.Array]],
    num_instances: int,
    gamma: float | None,
    num_samples: int,
    *,
    start: int = 0,
    chunk_size: int = 4096,
    group_size: int = 64,
    progress: Callable[[int], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    concurrent: bool | None = None,
    block: int = BLOCK,
    max_lanes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stream` for ``num_instances`` instances of one shape: returns ``[K, num_samples,
    n]`` and residuals ``[K, num_samples]``, bit-identical to :func:`stream` on each instance
    with its own key (see :func:`_returns_of_instances`), whatever ``chunk_size`` and
    ``group_size``.

    Memory is bounded by one call: at most ``group_size`` instances x ``chunk_size`` samples
    (rounded up to a multiple of ``block``); the calls are made equal (groups and chunks
    split evenly, the last padded and the padding dropped) so that one compilation serves them
    all. The calls (group by group, chunk by chunk) go to the lanes in waves, a wave's calls at
    the same time when ``concurrent`` (see :func:`stream`).

    Args:
        problems: ``problems(instance_indices) -> (MeasureProblem with arrays [G, ...], keys [G])``
            for a group of instances (so that only one group's operands exist at a time).
        gamma: the instances' common discount factor (``None``: average reward).
        progress: called with the number of (instance, sample) pairs finished after each call.
        max_lanes: most concurrent CPU lanes, as in :func:`stream`.
    """
    devices = sample_devices(devices)
    if concurrent is None:
        concurrent = all(device.platform != "cpu" for device in devices)
    lanes = concurrent_lanes(devices, max_lanes) if concurrent else devices
    head, start, total = _aligned_range(start, num_samples, block)
    # equal calls, so that one compilation serves them all: the groups split the instances evenly
    # (the last padded with copies of its last instance, dropped), the chunks split the blocks
    # evenly (the last padded with the next samples' indices, dropped)
    num_groups = math.ceil(num_instances / max(1, int(group_size)))
    group_size = math.ceil(num_instances / num_groups)
    blocks = equal_chunks(math.ceil(total / block), math.ceil(chunk_size / block))
    groups = [list(range(a, min(a + group_size, num_instances))) for a in range(0, num_instances, group_size)]
    # the calls, group by group, go to the lanes in waves (a wave's calls run at the same time)
    calls = [(g, done) for g in range(len(groups)) for done in range(0, total, blocks * block)]
    returns_out = residuals_out = None
    built, placed = {}, {}
    with _lane_runner(lanes, concurrent) as run:
        for first in range(0, len(calls), len(lanes)):
            wave = calls[first:first + len(lanes)]
            wanted = {g for g, _ in wave}
            built = {g: built[g] if g in built else problems(groups[g] + [groups[g][-1]] * (group_size - len(groups[g])))
                     for g in wanted}
            placed = {(g, device): placed[g, device] if (g, device) in placed else jax.device_put(built[g], device)
                      for g, device in {(g, lanes[k]) for k, (g, _) in enumerate(wave)}}

            def call(lane: int, wave=wave, placed=placed):
                g, done = wave[lane]
                stacked, keys = placed[g, lanes[lane]]
                first_index = jax.device_put(np.uint32(start + done), lanes[lane])
                return _returns_of_instances(block_fn, keys, first_index, blocks, stacked, gamma, block)

            for (g, done), (returns, residuals) in zip(wave, run(call, len(wave))):
                group, count = groups[g], min(blocks * block, total - done)
                returns = np.asarray(returns)[:len(group)]
                if returns_out is None:
                    returns_out = np.empty((num_instances, total, returns.shape[-1]), returns.dtype)
                    residuals_out = np.empty((num_instances, total), np.asarray(residuals).dtype)
                returns_out[group, done:done + count] = returns.reshape(len(group), -1, returns.shape[-1])[:, :count]
                residuals_out[group, done:done + count] = np.asarray(residuals)[:len(group)].reshape(len(group), -1)[:, :count]
                if progress is not None:
                    progress((count - (head if done == 0 else 0)) * len(group))
    return returns_out[:, head:], residuals_out[:, head:]


def evaluate_indices(block_fn: Callable, operands: tuple, key: jax.Array, indices: np.ndarray,
                     block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``[k, n]`` and occupancies ``[k, D]`` of the samples with the given global
    ``indices [k]``: bit-identical to what :func:`stream` computed for them with the same
    ``block``, because each is evaluated where :func:`stream` evaluates it, at position ``i %
    block`` of the block of indices ``i - i % block, ...`` (one block per distinct block of the
    indices, its other rows discarded)."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    firsts = indices - indices % block
    width = max(1, min(indices.size, block))  # rows fetched per block call (one compilation per call)
    returns = occupancies = None
    for first in np.unique(firsts) if indices.size else np.zeros(1, np.int64):
        mine = np.flatnonzero(firsts == first)
        for part in range(0, max(mine.size, 1), width):
            rows = mine[part:part + width]
            positions = np.zeros(width, np.int32)
            positions[:rows.size] = indices[rows] - first
            r, d = _block_rows(block_fn, key, jnp.uint32(first), jnp.asarray(positions), operands, block)
            if returns is None:
                returns = np.empty((indices.size, r.shape[-1]), r.dtype)
                occupancies = np.empty((indices.size, d.shape[-1]), d.dtype)
            returns[rows], occupancies[rows] = np.asarray(r)[:rows.size], np.asarray(d)[:rows.size]
    return returns, occupancies
