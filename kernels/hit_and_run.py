"""Uniform sampling of a polytope ``{x >= 0, E x = b}`` by coordinate hit-and-run (pure JAX).

The caller parametrises the affine hull as ``x = x0 + D u`` with ``D [d, k]`` (a rounded basis of
the null space of E over the coordinates that are not zero on the whole polytope). A step picks a
direction ``D[:, j]`` at random, finds the chord ``{t : x + t D[:, j] >= 0}`` in O(d), and moves
to a uniform point on it. Coordinate hit-and-run in any basis leaves the uniform (Lebesgue)
measure of the affine hull invariant. Chains are vmapped; steps are a fixed-length ``lax.scan``;
step ``s`` of chain ``c`` uses ``fold_in(fold_in(key, c), s)``, so results do not depend on how
chains are batched. Every move is along a null-space direction, so ``E x = b`` holds up to
rounding, and each kept point is projected back onto the affine hull so that rounding cannot
accumulate; ``x >= 0`` holds by construction of the chord (clipped at 0 against rounding).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def chord_step(key: jax.Array, x: jax.Array, directions: jax.Array) -> jax.Array:
    """One coordinate hit-and-run step from ``x [d]`` along a random column of ``directions [d, k]``."""
    pick, move = jax.random.split(key)
    j = jax.random.randint(pick, (), 0, directions.shape[1])
    v = directions[:, j]
    tiny = jnp.finfo(x.dtype).tiny
    safe = jnp.where(jnp.abs(v) > tiny, v, 1.0)
    ratio = -x / safe
    low = jnp.max(jnp.where(v > tiny, ratio, -jnp.inf))
    high = jnp.min(jnp.where(v < -tiny, ratio, jnp.inf))
    t = jax.random.uniform(move, (), x.dtype, low, high)
    return jnp.maximum(x + t * v, 0.0)


def project_to_hull(x: jax.Array, center: jax.Array, basis: jax.Array) -> jax.Array:
    """``center + basis basis^T (x - center)``, clipped at 0: removes the drift off the affine
    hull that rounding accumulates over many steps (``basis [d, k]`` orthonormal)."""
    return jnp.maximum(center + basis @ (basis.T @ (x - center)), 0.0)


@partial(jax.jit, static_argnames=("num_samples", "thin"))
def run_chains(key: jax.Array, starts: jax.Array, directions: jax.Array, chain_ids: jax.Array, center: jax.Array,
               basis: jax.Array, *, num_samples: int, thin: int):
    """Advance chains from ``starts [c, d]``; keep every ``thin``-th point: ``[c, num_samples, d]``
    and the final states ``[c, d]``. ``chain_ids [c]`` are the chains' global indices. Each kept
    point is re-projected onto the affine hull ``center [d] + span(basis [d, k])``."""

    def chain(chain_key, x):
        def sample_step(x, sample_index):
            def step(x, step_index):
                k = jax.random.fold_in(chain_key, sample_index * thin + step_index)
                return chord_step(k, x, directions), None

            x, _ = jax.lax.scan(step, x, jnp.arange(thin))
            x = project_to_hull(x, center, basis)
            return x, x

        return jax.lax.scan(sample_step, x, jnp.arange(num_samples))

    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, chain_ids)
    finals, samples = jax.vmap(chain)(keys, starts)
    return samples, finals
