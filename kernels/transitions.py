"""Transition operators: what the engine needs of ``P`` without ever forming ``[S, A, S]``.

Three forms (pytrees of arrays, so they travel into ``jit`` as operands):

* :class:`DenseTransitions` ``P [S, A, S]``: products are one GEMM with ``P_flat [S*A, S]``
  shared by a whole batch of policies.
* :class:`SparseTransitions`: bounded branching. ``successors``/``probabilities [S, A, b]``
  (padded with probability 0) for ``P v``; the transposed lists ``predecessors``/``weights
  [S, k]`` (flat ``s*A + a`` indices, padded with weight 0) for ``P^T y``. Both products are
  gathers and fixed-length sums, so they are deterministic on every device (no scatter-add).
* :class:`KroneckerTransitions`: ``P[s, a, s'] = prod_f K_f[a, s_f, s'_f]`` with per-factor
  tensors ``K_f [A, p_f, p_f]`` and states in mixed radix, factor 0 most significant
  (``np.ravel_multi_index`` order). Products contract one factor axis at a time:
  ``O(A S sum_f p_f)`` per vector instead of ``O(A S^2)``.

The two products, batched over any leading axes:

* :func:`push` ``y [..., S, A] -> [..., S]``: ``z[s'] = sum_{s,a} y[s, a] P[s, a, s']``
  (``P^T`` applied to state-action weights; with ``y = rho * pi`` it is ``P_pi^T rho``);
* :func:`pull` ``v [..., S] -> [..., S, A]``: ``(P v)[s, a] = sum_{s'} P[s, a, s'] v[s']``
  (the transpose: Bellman backups and gradients).

Pure JAX and numpy; conversions (:func:`dense_array`, :func:`sparse_matrix` in
``jaxagg.solvers``) live with their users.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class DenseTransitions(NamedTuple):
    """``P [S, A, S]``."""

    P: jax.Array


class SparseTransitions(NamedTuple):
    """Bounded branching (see the module docstring for the layout).

    Attributes:
        successors: ``[S, A, b]`` int32 next states (padding: any index with probability 0).
        probabilities: ``[S, A, b]`` their probabilities.
        predecessors: ``[S, k]`` int32 flat state-action indices ``s*A + a`` leading into each state.
        weights: ``[S, k]`` the matching probabilities ``P[s, a, s']`` (padding: 0).
    """

    successors: jax.Array
    probabilities: jax.Array
    predecessors: jax.Array
    weights: jax.Array


class KroneckerTransitions(NamedTuple):
    """``factors``: a tuple of per-factor tensors ``K_f [A, p_f, p_f]`` (rows sum to 1)."""

    factors: tuple


Transitions = DenseTransitions | SparseTransitions | KroneckerTransitions
FORMS = {"dense": DenseTransitions, "sparse": SparseTransitions, "kronecker": KroneckerTransitions}


def form_of(op: Transitions) -> str:
    """``"dense"``, ``"sparse"`` or ``"kronecker"``."""
    for name, cls in FORMS.items():
        if isinstance(op, cls):
            return name
    raise ValueError(f"transitions: expected a DenseTransitions, SparseTransitions or KroneckerTransitions, got {type(op).__name__}")


def shape_of(op: Transitions) -> tuple[int, int]:
    """``(S, A)`` of an operator (static: from array shapes only)."""
    if isinstance(op, DenseTransitions):
        return op.P.shape[0], op.P.shape[1]
    if isinstance(op, SparseTransitions):
        return op.successors.shape[0], op.successors.shape[1]
    if isinstance(op, KroneckerTransitions):
        return math.prod(K.shape[1] for K in op.factors), op.factors[0].shape[0]
    raise ValueError(f"transitions: expected a transition operator, got {type(op).__name__}")


def dtype_of(op: Transitions):
    """The floating dtype of the operator's probabilities."""
    if isinstance(op, DenseTransitions):
        return op.P.dtype
    if isinstance(op, SparseTransitions):
        return op.probabilities.dtype
    if isinstance(op, KroneckerTransitions):
        return op.factors[0].dtype
    raise ValueError(f"transitions: expected a transition operator, got {type(op).__name__}")


def astype(op: Transitions, dtype) -> Transitions:
    """The same operator with its probabilities as device arrays of ``dtype`` (indices int32)."""
    if isinstance(op, DenseTransitions):
        return DenseTransitions(jnp.asarray(op.P, dtype))
    if isinstance(op, SparseTransitions):
        return SparseTransitions(jnp.asarray(op.successors, jnp.int32), jnp.asarray(op.probabilities, dtype),
                                 jnp.asarray(op.predecessors, jnp.int32), jnp.asarray(op.weights, dtype))
    if isinstance(op, KroneckerTransitions):
        return KroneckerTransitions(tuple(jnp.asarray(K, dtype) for K in op.factors))
    raise ValueError(f"transitions: expected a transition operator, got {type(op).__name__}")


def nbytes(op: Transitions) -> int:
    """Bytes the operator's arrays take."""
    return sum(int(leaf.nbytes) for leaf in jax.tree_util.tree_leaves(op))


# -------------------------------------------------------------------------- products
def push(op: Transitions, y: jax.Array) -> jax.Array:
    """``z [..., S]`` with ``z[s'] = sum_{s,a} y[s, a] P[s, a, s']`` for ``y [..., S, A]``."""
    S, A = shape_of(op)
    lead = y.shape[:-2]
    y = y.reshape(-1, S, A)
    if isinstance(op, DenseTransitions):
        z = y.reshape(-1, S * A) @ op.P.reshape(S * A, S)
    elif isinstance(op, SparseTransitions):
        z = (y.reshape(-1, S * A)[:, op.predecessors] * op.weights).sum(axis=-1)
    else:
        z = _kronecker_push(op.factors, y)
    return z.reshape(*lead, S)


def pull(op: Transitions, v: jax.Array) -> jax.Array:
    """``(P v) [..., S, A]`` with ``(P v)[s, a] = sum_{s'} P[s, a, s'] v[s']`` for ``v [..., S]``."""
    S, A = shape_of(op)
    lead = v.shape[:-1]
    v = v.reshape(-1, S)
    if isinstance(op, DenseTransitions):
        out = (v @ op.P.reshape(S * A, S).T).reshape(-1, S, A)
    elif isinstance(op, SparseTransitions):
        out = (v[:, op.successors] * op.probabilities).sum(axis=-1)
    else:
        out = _kronecker_pull(op.factors, v)
    return out.reshape(*lead, S, A)


def policy_push(op: Transitions, pi: jax.Array, x: jax.Array) -> jax.Array:
    """``P_pi^T x [..., S]`` for policies ``pi [..., S, A]`` and state vectors ``x [..., S]``."""
    return push(op, x[..., :, None] * pi)


def policy_pull(op: Transitions, pi: jax.Array, v: jax.Array) -> jax.Array:
    """``P_pi v [..., S]`` for policies ``pi [..., S, A]`` and state vectors ``v [..., S]``."""
    return (pull(op, v) * pi).sum(axis=-1)


def _kronecker_push(factors: tuple, y: jax.Array) -> jax.Array:
    """``y [B, S, A] -> [B, S]``: per action, contract each factor axis with ``K_f[a]``, then sum
    over actions. The action axis stays last throughout (no transposes)."""
    sizes = tuple(K.shape[1] for K in factors)
    B, A = y.shape[0], y.shape[-1]
    t = y.reshape(B, *sizes, A)
    for f, K in enumerate(factors):
        t = _contract_axis(t, K, 1 + f, transpose=False)
    return t.sum(axis=-1).reshape(B, -1)


def _kronecker_pull(factors: tuple, v: jax.Array) -> jax.Array:
    """``v [B, S] -> [B, S, A]``: per action, contract each factor axis with ``K_f[a]^T``."""
    sizes = tuple(K.shape[1] for K in factors)
    B, A = v.shape[0], factors[0].shape[0]
    t = jnp.broadcast_to(v.reshape(B, *sizes, 1), (B, *sizes, A))
    for f, K in enumerate(factors):
        t = _contract_axis(t, K, 1 + f, transpose=True)
    return t.reshape(B, -1, A)


def _contract_axis(t: jax.Array, K: jax.Array, axis: int, transpose: bool) -> jax.Array:
    """Contract axis ``axis`` of ``t [B, ..., A]`` with ``K [A, p, p]`` batched over the last axis
    ``A``: ``out[..., j, ..., a] = sum_i t[..., i, ..., a] K[a, i, j]`` (``transpose``:
    ``K[a, j, i]``).

    Written as ``p`` broadcast multiply-adds on the view ``[B, L, p, R, A]`` (one fused loop, no
    transposes: factors are small) rather than as a ``dot_general``, whose layout changes
    dominated the time."""
    shape = t.shape
    p = shape[axis]
    left = math.prod(shape[1:axis])
    right = math.prod(shape[axis + 1:-1])
    view = t.reshape(shape[0], left, p, right, shape[-1])
    M = K if transpose else jnp.swapaxes(K, 1, 2)  # M[a, j, i]: out_j = sum_i M[a, j, i] t_i
    weights = jnp.moveaxis(M, 0, -1)  # [p_j, p_i, A]
    out = sum(view[:, :, i:i + 1, :, :] * weights[None, None, :, i, None, :] for i in range(p))
    return out.reshape(shape)


# ------------------------------------------------------------------ construction (numpy)
def dense_from_sparse_lists(successors: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``P [S, A, S]`` from successor lists ``[S, A, b]`` (numpy; small S only)."""
    S, A, _ = successors.shape
    P = np.zeros((S, A, S))
    np.add.at(P, (np.arange(S)[:, None, None], np.arange(A)[None, :, None], successors), probabilities)
    return P


def sparse_transitions(successors: np.ndarray, probabilities: np.ndarray) -> SparseTransitions:
    """A :class:`SparseTransitions` (numpy arrays, float64) from successor lists
    ``successors [S, A, b]`` and ``probabilities [S, A, b]``; duplicate successors are merged and
    the transposed lists are built here (padded to the largest in-degree)."""
    successors = np.asarray(successors, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if successors.ndim != 3 or successors.shape != probabilities.shape:
        raise ValueError(f"successors, probabilities: expected equal shapes [S, A, b], got {successors.shape} and {probabilities.shape}")
    S, A, b = successors.shape
    if successors.size and (successors.min() < 0 or successors.max() >= S):
        raise ValueError(f"successors: expected state indices in [0, {S}), got values in [{successors.min()}, {successors.max()}]")
    source = np.repeat(np.arange(S * A), b)
    target = successors.reshape(-1)
    weight = probabilities.reshape(-1)
    keep = weight != 0.0
    source, target, weight = source[keep], target[keep], weight[keep]
    order = np.lexsort((source, target))  # by target, then source: a fixed summation order
    source, target, weight = source[order], target[order], weight[order]
    pairs, first = np.unique(target * (S * A) + source, return_index=True)
    weight = np.add.reduceat(weight, first) if weight.size else weight
    source, target = pairs % (S * A), pairs // (S * A)
    indegree = np.bincount(target, minlength=S)
    k = max(int(indegree.max(initial=0)), 1)
    slot = np.arange(target.size) - np.repeat(np.cumsum(indegree) - indegree, indegree)
    predecessors = np.zeros((S, k), dtype=np.int32)
    weights = np.zeros((S, k))
    predecessors[target, slot] = source
    weights[target, slot] = weight
    return SparseTransitions(successors.astype(np.int32), probabilities, predecessors, weights)


def sparse_from_dense(P: np.ndarray) -> SparseTransitions:
    """The :class:`SparseTransitions` of a dense ``P [S, A, S]`` (branching = the most
    successors of any state-action pair)."""
    P = np.asarray(P, dtype=np.float64)
    S, A, _ = P.shape
    b = max(int((P != 0).sum(axis=-1).max(initial=0)), 1)
    successors = np.argsort(P == 0, axis=-1, kind="stable")[..., :b]
    probabilities = np.take_along_axis(P, successors, axis=-1)
    return sparse_transitions(successors, probabilities)


def kronecker_dense(factors) -> np.ndarray:
    """``P [S, A, S]`` of a Kronecker operator (numpy; small S only)."""
    factors = [np.asarray(K, dtype=np.float64) for K in factors]
    A = factors[0].shape[0]
    per_action = []
    for a in range(A):
        M = np.ones((1, 1))
        for K in factors:
            M = np.kron(M, K[a])
        per_action.append(M)
    return np.stack(per_action, axis=1)


def dense_array(op: Transitions) -> np.ndarray:
    """``P [S, A, S]`` as a float64 numpy array, from any form (the caller checks the size)."""
    if isinstance(op, DenseTransitions):
        return np.asarray(op.P, dtype=np.float64)
    if isinstance(op, SparseTransitions):
        return dense_from_sparse_lists(np.asarray(op.successors), np.asarray(op.probabilities, dtype=np.float64))
    return kronecker_dense(op.factors)
