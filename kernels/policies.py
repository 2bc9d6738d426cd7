"""Random and structured policy batches. Pure JAX, key first, shapes ``[batch, S, A]``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
"""The two odd multipliers of :func:`mix32` (C. Wellons' "lowbias32" integer hash)."""
WEYL = 0x9E3779B9
"""An odd constant (2^32 / golden ratio) spreading consecutive entry indices over 32 bits."""


def mix32(x: jax.Array) -> jax.Array:
    """A bijection of ``uint32`` with strong avalanche (every input bit flips every output bit
    with probability near 1/2): xor-shift, multiply, xor-shift, multiply, xor-shift. Integer
    arithmetic wraps modulo 2^32, so it is exact and identical on every device."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(MIX_MULTIPLIERS[0])
    x = x ^ (x >> 15)
    x = x * jnp.uint32(MIX_MULTIPLIERS[1])
    return x ^ (x >> 16)


def key_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two ``uint32`` words from a ``jax.random`` key (its key data, of any implementation,
    folded by :func:`mix32`)."""
    words = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    first, second = jnp.uint32(0x243F6A88), jnp.uint32(0x85A308D3)  # digits of pi: no seed maps to zero words
    for k in range(words.shape[0]):
        first, second = mix32(first ^ words[k]), mix32(second + words[k])
    return first, second


def counter_bits(key: jax.Array, indices: jax.Array, count: int) -> jax.Array:
    """``[B, count]`` random ``uint32`` for global sample ``indices [B]``: entry ``j`` of sample
    ``i`` is a hash of ``(key, i, j)`` alone, so sample i never depends on how samples are
    chunked, sharded or batched (a counter-based generator).

    The hash: ``row(i) = mix(mix(i ^ k0) + k1)`` and ``col(j) = mix(j * WEYL + k0)`` are
    bijections (distinct samples get distinct rows, distinct entries distinct columns), and the
    bits are ``mix(mix(row(i) ^ col(j)) + k1)`` (``mix``: :func:`mix32`; ``k0, k1``:
    :func:`key_words`). It replaced ``jax.random``'s threefry in 0.3.0: on a 2-core CPU the draws
    of a block of 32 attention (5, 3) policies took 1.52 ms with threefry and 0.45 ms with this
    hash (``python bench/block_profile.py 32``; bench/RESULTS.md, 2026-11-27 notes)."""
    k0, k1 = key_words(key)
    rows = mix32(mix32(indices.astype(jnp.uint32) ^ k0) + k1)
    cols = mix32(jnp.arange(count, dtype=jnp.uint32) * jnp.uint32(WEYL) + k0)
    return mix32(mix32(rows[:, None] ^ cols[None, :]) + k1)


def exponential_of_bits(bits: jax.Array) -> jax.Array:
    """float32 Exponential(1) draws from uniform ``uint32`` ``bits`` (any shape): ``-log(u)``
    with ``u = (b + 1/2) / 2^23`` from the top 23 bits ``b`` (every ``u`` is exact in float32 and
    strictly inside (0, 1), so every draw is positive and at most ``24 log 2 = 16.6``)."""
    top = (bits >> 9).astype(jnp.float32)
    return -jnp.log((top + 0.5) * jnp.float32(2.0**-23))


def exponential_draws(key: jax.Array, indices: jax.Array, count: int) -> jax.Array:
    """``[B, count]`` float32 Exponential(1) draws for global sample ``indices [B]``
    (:func:`exponential_of_bits` of :func:`counter_bits`)."""
    return exponential_of_bits(counter_bits(key, indices, count))


def dirichlet_rows(key: jax.Array, indices: jax.Array, rows: int, cols: int, dtype=jnp.float32) -> jax.Array:
    """``[B, rows, cols]``: for each global sample index, ``rows`` i.i.d. Dirichlet(1_cols) rows
    (normalised Exponential(1) draws, :func:`exponential_draws`, floored at the smallest normal
    float32 so that every entry stays positive, divided by their :func:`left_to_right_sum`).
    The draws are float32 whatever ``dtype`` is, so that a seed gives the same rows in every
    precision; they are normalised in ``dtype``."""
    e = exponential_draws(key, indices, rows * cols).reshape(indices.shape[0], rows, cols)
    e = jnp.maximum(e, jnp.finfo(jnp.float32).tiny).astype(dtype)
    return e / left_to_right_sum(e)[..., None]


def left_to_right_sum(x: jax.Array) -> jax.Array:
    """``[...]``: the sum over the last axis of ``x [..., k]``, added left to right. A reduction
    (``x.sum(-1)``) may add in another order for another batch shape (XLA vectorises it by
    shape), and then sample i's policy would differ by an ulp between batch sizes."""
    total = x[..., 0]
    for k in range(1, x.shape[-1]):
        total = total + x[..., k]
    return total


def random_policies(key: jax.Array, indices: jax.Array, num_states: int, num_actions: int, dtype=jnp.float32) -> jax.Array:
    """Dirichlet policies for global sample ``indices [B]`` -> ``[B, S, A]``: ``pi[s, :] ~
    Dirichlet(1_A)`` i.i.d. per state (:func:`dirichlet_rows`)."""
    return dirichlet_rows(key, indices, num_states, num_actions, dtype)


def softmax_policy(logits: jax.Array) -> jax.Array:
    """Policy ``[..., S, A]`` from logits ``[..., S, A]`` (differentiable)."""
    return jax.nn.softmax(logits, axis=-1)


def deterministic_policies(actions: jax.Array, num_actions: int, dtype=jnp.float32) -> jax.Array:
    """One-hot policies ``[..., S, A]`` from chosen actions ``[..., S]``."""
    return jax.nn.one_hot(actions, num_actions, dtype=dtype)
