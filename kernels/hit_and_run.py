"""Uniform sampling of a polytope ``{x >= 0, E x = b}`` by hit-and-run (pure JAX).

The caller parametrises the affine hull as ``x = x0 + D u`` with ``D [d, k]`` (a rounded basis of
the null space of E over the coordinates that are not zero on the whole polytope) and hands over
its columns as :class:`Directions` (rows ``[k, d]``, with their reciprocals precomputed so that a
step multiplies instead of divides).

A step moves every chain along a direction ``v``: the chord ``{t : x + t v >= 0}`` is found in
O(d) and the chain moves to a uniform point on it. Two ways to pick directions:

- ``"coordinate"`` (default): a *sweep* visits ``D``'s k columns in order (systematic-scan
  coordinate hit-and-run in the rounded basis). Each step leaves the uniform measure on the hull
  invariant, hence so does a sweep. All chains take the same column at the same step, so a step
  reads one row of ``D`` for every chain (one contiguous read, no gather) and the chains stay
  independent (the order is fixed, not random).
- ``"random"``: each of a sweep's k steps takes an isotropic random direction ``D g``,
  ``g ~ N(0, I_k)`` per chain (hit-and-run proper; O(d k) per step instead of O(d)).

State lives in the ambient coordinates ``x [chains, d]``: the "slack" of every inequality
``x_i >= 0`` is ``x_i`` itself, updated by each move. Every move is along a null-space direction,
so ``E x = b`` holds up to rounding; each kept point is projected back onto the affine hull so
that rounding cannot accumulate. ``x >= 0`` holds by construction of the chord (clipped at 0
against rounding). The random numbers of sweep ``s`` of chain ``c`` come from
``fold_in(fold_in(key, c), s)``, so a chain's path does not depend on how chains are batched or
runs are split (up to the rounding of the re-projection's matrix product).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

DIRECTION_KINDS = ("coordinate", "random")


class Directions(NamedTuple):
    """Hit-and-run directions: ``rows [k, d]`` and ``reciprocals [k, d]`` (``1 / rows`` where the
    entry is not zero, else 0)."""

    rows: jax.Array
    reciprocals: jax.Array


def make_directions(columns: jax.Array) -> Directions:
    """:class:`Directions` from a basis ``columns [d, k]`` (each column one direction)."""
    rows = columns.T
    return Directions(rows=rows, reciprocals=_reciprocals(rows))


def _reciprocals(v: jax.Array) -> jax.Array:
    tiny = jnp.finfo(v.dtype).tiny
    nonzero = jnp.abs(v) > tiny
    return jnp.where(nonzero, 1.0 / jnp.where(nonzero, v, 1.0), 0.0)


def chord_move(x: jax.Array, v: jax.Array, reciprocal: jax.Array, u: jax.Array) -> jax.Array:
    """Move points ``x [c, d]`` along ``v`` (``[d]`` shared or ``[c, d]``) to the point at
    fraction ``u [c]`` of the chord ``{t : x + t v >= 0}`` (``reciprocal = 1 / v``, 0 where
    ``v = 0``)."""
    ratio = -x * reciprocal  # the t at which coordinate i reaches 0
    low = jnp.max(jnp.where(reciprocal > 0, ratio, -jnp.inf), axis=-1)
    high = jnp.min(jnp.where(reciprocal < 0, ratio, jnp.inf), axis=-1)
    t = low + u * (high - low)
    return jnp.maximum(x + t[:, None] * v, 0.0)


def coordinate_sweep(x: jax.Array, directions: Directions, u: jax.Array) -> jax.Array:
    """One systematic sweep over all k directions; ``u [k, c]`` uniforms, ``x [c, d]``."""

    def step(x, inputs):
        row, reciprocal, fraction = inputs
        return chord_move(x, row, reciprocal, fraction), None

    x, _ = jax.lax.scan(step, x, (directions.rows, directions.reciprocals, u))
    return x


def random_sweep(x: jax.Array, directions: Directions, u: jax.Array, g: jax.Array) -> jax.Array:
    """k hit-and-run steps along random directions ``g[j] @ rows`` (``g [k, c, k]`` standard
    normals, ``u [k, c]`` uniforms), ``x [c, d]``."""

    def step(x, inputs):
        fraction, coefficients = inputs
        v = coefficients @ directions.rows  # [c, d]
        return chord_move(x, v, _reciprocals(v), fraction), None

    x, _ = jax.lax.scan(step, x, (u, g))
    return x


def project_to_hull(x: jax.Array, center: jax.Array, basis: jax.Array) -> jax.Array:
    """``center + basis basis^T (x - center)`` for ``x [c, d]``, clipped at 0: removes the drift
    off the affine hull that rounding accumulates (``basis [d, k]`` orthonormal)."""
    return jnp.maximum(center + (x - center) @ basis @ basis.T, 0.0)


def _sweep_randomness(chain_keys: jax.Array, sweep_index: jax.Array, k: int, kind: str, dtype):
    """Uniforms ``[k, c]`` (and normals ``[k, c, k]`` for random directions) of one sweep."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(chain_keys, sweep_index)
    u = jax.vmap(lambda key: jax.random.uniform(key, (k,), dtype))(keys).T
    if kind == "coordinate":
        return u, None
    g = jax.vmap(lambda key: jax.random.normal(jax.random.fold_in(key, 1), (k, k), dtype))(keys)
    return u, jnp.swapaxes(g, 0, 1)


@partial(jax.jit, static_argnames=("num_samples", "thin", "kind"))
def run_chains(key: jax.Array, starts: jax.Array, directions: Directions, chain_ids: jax.Array, center: jax.Array,
               basis: jax.Array, first_sweep: jax.Array | int = 0, *, num_samples: int, thin: int,
               kind: str = "coordinate"):
    """Advance chains from ``starts [c, d]``, keeping the point after every ``thin`` sweeps.

    Returns ``(samples [c, num_samples, d], finals [c, d])``. ``chain_ids [c]`` are the chains'
    global indices (their random streams); ``first_sweep`` numbers the first sweep, so that a
    run continued from ``finals`` with ``first_sweep + num_samples * thin`` draws fresh numbers.
    Each kept point is re-projected onto the affine hull ``center [d] + span(basis [d, k])``.
    """
    k = directions.rows.shape[0]
    chain_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, chain_ids)

    def one_sweep(x, sweep_index):
        u, g = _sweep_randomness(chain_keys, sweep_index, k, kind, x.dtype)
        x = coordinate_sweep(x, directions, u) if kind == "coordinate" else random_sweep(x, directions, u, g)
        return x, None

    def kept_sample(x, sample_index):
        sweeps = first_sweep + sample_index * thin + jnp.arange(thin)
        x, _ = jax.lax.scan(one_sweep, x, sweeps)
        x = project_to_hull(x, center, basis)
        return x, x

    finals, samples = jax.lax.scan(kept_sample, starts, jnp.arange(num_samples))
    return jnp.swapaxes(samples, 0, 1), finals
