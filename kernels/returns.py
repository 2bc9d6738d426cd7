"""Streaming N samples of every agent's return, chunk by chunk, with memory bounded by a chunk.

Reproducibility by construction: sample ``i`` is computed from ``fold_in(key, i)`` alone, and
every sample goes through the same compiled *block* of :data:`BLOCK` samples (``lax.map`` over
blocks). A chunk is a whole number of blocks; the last one is padded and the padding dropped.
So the numbers are bit-identical whatever the chunk size, and the occupancy of any sample can be
recomputed later from its index (:func:`evaluate_indices`) instead of being stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxagg.kernels.occupancy import batch_occupancy
from jaxagg.kernels.policies import random_policies

BLOCK = 32
"""Samples per compiled block: every sample goes through the same block computation."""


class MeasureProblem(NamedTuple):
    """What the samplers need of a MOMDP, as device arrays of the working precision.

    Attributes:
        P: ``[S, A, S]`` transitions.
        mu: ``[S]`` initial distribution.
        rewards: ``[n, S*A]`` reward matrix.
        gamma: discount factor, or ``None`` for average reward (static).
    """

    P: jax.Array
    mu: jax.Array
    rewards: jax.Array
    gamma: float | None


def policy_block(key: jax.Array, indices: jax.Array, problem: MeasureProblem) -> tuple[jax.Array, jax.Array]:
    """``policy`` measure for one block of global sample ``indices [BLOCK]``:
    returns ``[BLOCK, n]`` and occupancies ``[BLOCK, S*A]``."""
    S, A, _ = problem.P.shape
    pi = random_policies(key, indices, S, A, problem.P.dtype)
    d = batch_occupancy(pi, problem.P, problem.mu, problem.gamma).reshape(indices.shape[0], S * A)
    return d @ problem.rewards.T, d


def hull_block(key: jax.Array, indices: jax.Array, vertices: jax.Array, vertex_returns: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``hull`` measure for one block: ``lambda ~ Dirichlet(1_n)``, ``d = lambda @ vertices``.

    ``vertices [k, S*A]`` are the agents' optimal occupancies, ``vertex_returns [k, n]`` their
    returns; returns are linear, so ``J = lambda @ vertex_returns`` without forming ``d``."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
    k = vertices.shape[0]
    e = jax.vmap(lambda kk: jax.random.exponential(kk, (k,), dtype=jnp.float32))(keys)  # same draws in every precision
    e = jnp.maximum(e, jnp.finfo(jnp.float32).tiny).astype(vertices.dtype)
    lam = e / e.sum(axis=-1, keepdims=True)
    return lam @ vertex_returns, lam @ vertices


@partial(jax.jit, static_argnames=("block_fn",))
def _run_blocks(block_fn: Callable, key: jax.Array, indices: jax.Array, operands) -> tuple[jax.Array, jax.Array]:
    """``block_fn`` over global sample ``indices [num_blocks, BLOCK]``, one block at a time:
    ``[num_blocks, BLOCK, n]`` returns and ``[num_blocks, BLOCK, D]`` occupancies (XLA drops the
    occupancies when the caller ignores them)."""
    return jax.lax.map(lambda block: block_fn(key, block, *operands), indices)


def sample_devices(devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """Devices to spread chunks over: the given ones, or by default every device of the default
    backend when it is an accelerator (GPU/TPU) and a single device on a CPU."""
    if devices is None:
        devices = jax.devices() if jax.default_backend() != "cpu" else jax.devices()[:1]
    devices = list(devices)
    if not devices:
        raise ValueError("devices: expected at least one JAX device, got none")
    return devices


@partial(jax.jit, static_argnames=("block_fn", "num_blocks"))
def _returns_of_range(block_fn: Callable, key: jax.Array, start: jax.Array, num_blocks: int, operands) -> jax.Array:
    """Returns ``[num_blocks, BLOCK, n]`` of samples ``start .. start + num_blocks*BLOCK - 1``."""
    indices = start + jnp.arange(num_blocks * BLOCK, dtype=jnp.uint32).reshape(num_blocks, BLOCK)
    return jax.lax.map(lambda block: block_fn(key, block, *operands)[0], indices)


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
) -> np.ndarray:
    """Returns ``[num_samples, n]`` of samples ``start .. start + num_samples - 1``, computed in
    chunks of ``chunk_size`` (rounded up to a multiple of :data:`BLOCK` times the device count),
    so that memory is bounded by one chunk's returns plus one block's working arrays.

    Each chunk is split into equal runs of blocks, one per device; ``operands`` are placed on
    every device once. Accelerators run their shares concurrently. Host (CPU) devices run them
    one after the other: jaxlib's CPU backend can deadlock when several host devices execute
    LAPACK solves at once, and one host device already uses the machine's BLAS threads.

    Args:
        block_fn: ``block_fn(key, indices [BLOCK], *operands) -> (returns [BLOCK, n], d [BLOCK, D])``.
        operands: arrays (a pytree) that ``block_fn`` needs.
        progress: called with the number of samples finished after each chunk.
        devices: devices to spread chunks over (:func:`sample_devices` picks the default).
    """
    devices = sample_devices(devices)
    concurrent = all(device.platform != "cpu" for device in devices)
    placed = [jax.device_put((operands, key), device) for device in devices]
    per_device = max(1, math.ceil(chunk_size / (BLOCK * len(devices))))
    parts = []
    done = 0
    while done < num_samples:
        count = min(per_device * BLOCK * len(devices), num_samples - done)
        blocks = math.ceil(count / (BLOCK * len(devices)))
        runs = []
        for k, (device, (device_operands, device_key)) in enumerate(zip(devices, placed)):
            first = jax.device_put(np.uint32(start + done + k * blocks * BLOCK), device)
            runs.append(_returns_of_range(block_fn, device_key, first, blocks, device_operands))
            if not concurrent:
                runs[-1].block_until_ready()
        returns = np.concatenate([np.asarray(r).reshape(-1, r.shape[-1]) for r in runs])
        parts.append(returns[:count])
        done += count
        if progress is not None:
            progress(count)
    return np.concatenate(parts)


def evaluate_indices(block_fn: Callable, operands: tuple, key: jax.Array, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``[k, n]`` and occupancies ``[k, D]`` of the samples with the given global
    ``indices [k]``: bit-identical to what :func:`stream` computed for them."""
    indices = np.asarray(indices, dtype=np.uint32).reshape(-1)
    k = indices.size
    padded = np.zeros(math.ceil(max(k, 1) / BLOCK) * BLOCK, dtype=np.uint32)
    padded[:k] = indices
    returns, d = _run_blocks(block_fn, key, jnp.asarray(padded.reshape(-1, BLOCK)), operands)
    return np.asarray(returns).reshape(-1, returns.shape[-1])[:k], np.asarray(d).reshape(-1, d.shape[-1])[:k]
