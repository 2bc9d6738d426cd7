"""Random and structured policy batches. Pure JAX, key first, shapes ``[batch, S, A]``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
    """One key per global sample index ``[B]`` -> ``[B]`` keys: sample i depends only on
    ``(key, i)``, never on how samples are chunked or sharded."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)


def dirichlet_policy(key: jax.Array, num_states: int, num_actions: int, dtype=jnp.float32) -> jax.Array:
    """``pi[s, :] ~ Dirichlet(1_A)`` i.i.d. per state, ``[S, A]``: normalised Exponential(1)
    draws (the Dirichlet(1) construction), floored at the smallest normal float32 so that every
    action keeps positive probability. The draws are float32 whatever ``dtype`` is, so that a
    seed gives the same policies in every precision."""
    e = jax.random.exponential(key, (num_states, num_actions), dtype=jnp.float32)
    e = jnp.maximum(e, jnp.finfo(jnp.float32).tiny).astype(dtype)
    return e / e.sum(axis=-1, keepdims=True)


def random_policies(key: jax.Array, indices: jax.Array, num_states: int, num_actions: int, dtype=jnp.float32) -> jax.Array:
    """Dirichlet policies for global sample ``indices [B]`` -> ``[B, S, A]``."""
    keys = sample_keys(key, indices)
    return jax.vmap(lambda k: dirichlet_policy(k, num_states, num_actions, dtype))(keys)


def softmax_policy(logits: jax.Array) -> jax.Array:
    """Policy ``[..., S, A]`` from logits ``[..., S, A]`` (differentiable)."""
    return jax.nn.softmax(logits, axis=-1)


def deterministic_policies(actions: jax.Array, num_actions: int, dtype=jnp.float32) -> jax.Array:
    """One-hot policies ``[..., S, A]`` from chosen actions ``[..., S]``."""
    return jax.nn.one_hot(actions, num_actions, dtype=dtype)
