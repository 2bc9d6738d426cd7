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
  (``np.ravel_multi_index`` order). Products contract a few groups of consecutive factors, each
  as one GEMM with the Kronecker product of its factors: ``O(A S sum_g n_g)`` per vector for
  group sizes ``n_g`` (e.g. 9 + 9 + 27 at ``S = 3^7``) instead of ``O(A S^2)``.

The two products, batched over any leading axes:

* :func:`push` ``y [..., S, A] -> [..., S]``: ``z[s'] = sum_{s,a} y[s, a] P[s, a, s']``
  (``P^T`` applied to state-action weights; with ``y = rho * pi`` it is ``P_pi^T rho``);
* :func:`pull` ``v [..., S] -> [..., S, A]``: ``(P v)[s, a] = sum_{s'} P[s, a, s'] v[s']``
  (the transpose: Bellman backups and gradients).

Pure JAX and numpy; conversions (:func:`dense_array`, :func:`sparse_matrix` in
``jaxagg.solvers``) live with their users.
"""

from __future__ import annotations

import itertools
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
    if isinstance(op, KroneckerTransitions):
        S, A = shape_of(op)
        lead = jnp.broadcast_shapes(pi.shape[:-2], x.shape[:-1])
        pi = jnp.broadcast_to(pi, (*lead, S, A)).reshape(-1, S, A)
        x = jnp.broadcast_to(x, (*lead, S)).reshape(-1, S)
        return policy_pusher(op, pi)(x).reshape(*lead, S)
    return push(op, x[..., :, None] * pi)


def policy_pusher(op: Transitions, pi: jax.Array):
    """``x [B, S] -> P_pi^T x [B, S]`` for a fixed block of policies ``pi [B, S, A]``, for
    repeated products (Krylov iterations): whatever depends on ``pi`` alone is done once here.
    For a Kronecker operator that is the policy's transpose into the contraction layout (see
    :func:`_kronecker_push`), so that each product only multiplies it by ``x`` (a ``B x S``
    transpose instead of a ``B x S x A`` one); bit-identical to :func:`policy_push`."""
    if isinstance(op, KroneckerTransitions):
        n, Ks = _grouped_factors(op.factors)
        B, S, A = pi.shape
        laid_out = _working_layout(pi.reshape(B, *n, A), n)
        return lambda x: _contract_push(Ks, n, laid_out * _working_layout(x.reshape(B, *n, 1), n))
    return lambda x: push(op, x[..., :, None] * pi)


def policy_pull(op: Transitions, pi: jax.Array, v: jax.Array) -> jax.Array:
    """``P_pi v [..., S]`` for policies ``pi [..., S, A]`` and state vectors ``v [..., S]``."""
    return (pull(op, v) * pi).sum(axis=-1)


GROUP_OVERHEAD = 30
"""Cost of one more factor group in :func:`_groups`, in multiply-adds per state-action entry
(one more pass over the ``[A, ..., B, ...]`` working array; measured on CPU)."""
MAX_GROUPS = 4


def _groups(sizes: tuple) -> tuple:
    """Split the factor axes into at most :data:`MAX_GROUPS` contiguous groups (a tuple of
    ``(start, stop)``), each contracted as one GEMM with the Kronecker product of its factors:
    the split minimising ``sum(group sizes) + GROUP_OVERHEAD * groups`` (multiply-adds per entry
    of ``y`` plus a pass per group). Static (from shapes only)."""
    n = len(sizes)
    best = None
    for groups in range(1, min(MAX_GROUPS, n) + 1):
        for cuts in itertools.combinations(range(1, n), groups - 1):
            bounds = (0, *cuts, n)
            spans = tuple(zip(bounds[:-1], bounds[1:]))
            # later groups first on ties: the last group's GEMM is the cleanest, give it the most
            cost = (sum(math.prod(sizes[a:b]) for a, b in spans) + GROUP_OVERHEAD * groups,
                    tuple(-math.prod(sizes[a:b]) for a, b in reversed(spans)))
            if best is None or cost < best[0]:
                best = (cost, spans)
    return best[1]


def _group_factor(factors: tuple) -> jax.Array:
    """``[A, n, n]``: the per-action Kronecker product of ``factors`` (factor 0 most
    significant)."""
    M = factors[0]
    for K in factors[1:]:
        A, n, p = M.shape[0], M.shape[1], K.shape[1]
        M = (M[:, :, None, :, None] * K[:, None, :, None, :]).reshape(A, n * p, n * p)
    return M


def _kronecker_push(factors: tuple, y: jax.Array) -> jax.Array:
    """``z [B, S]`` with ``z[s'] = sum_{s,a} y[s, a] P[s, a, s']`` for ``y [B, S, A]``.

    The factor axes are split into groups (:func:`_groups`) and each group is contracted with the
    Kronecker product of its factors as a GEMM on the working layout ``[A, n_0, ..., B, n_last]``
    (:func:`_working_layout`: actions and groups leading, the batch just before the last group,
    so that no contraction needs a transpose): the last group batched over actions, middle groups
    batched over actions and the groups before them, and the first group jointly with the sum
    over actions (one GEMM of contraction length ``A n_0``). One transpose in, one small one out.
    Every batch row goes through the same fixed-shape arithmetic: row ``i``'s result does not
    depend on the values of the other rows."""
    B, S, A = y.shape
    n, Ks = _grouped_factors(factors)
    return _contract_push(Ks, n, _working_layout(y.reshape(B, *n, A), n))


def _grouped_factors(factors: tuple) -> tuple[tuple, list]:
    """The groups of :func:`_groups` for ``factors``: their sizes ``n`` and the per-action
    Kronecker product of each group's factors (``[A, n_g, n_g]`` each)."""
    sizes = tuple(K.shape[1] for K in factors)
    spans = _groups(sizes)
    return tuple(math.prod(sizes[a:b]) for a, b in spans), [_group_factor(factors[a:b]) for a, b in spans]


def _working_layout(t: jax.Array, n: tuple) -> jax.Array:
    """``[B, n_0, ..., n_last, A'] -> [A', n_0, ..., n_{G-2}, B, n_last]`` (``[A', n_0, B]`` for
    one group; ``A'`` is ``A`` or 1 for a state vector)."""
    G = len(n)
    return jnp.transpose(t, (G + 1, *range(1, G), 0, G) if G > 1 else (2, 1, 0))


def _contract_push(Ks: list, n: tuple, t: jax.Array) -> jax.Array:
    """:func:`_kronecker_push` from its working layout ``t [A, n_0, ..., B, n_last]`` and the
    groups' factors ``Ks`` (``[A, n_g, n_g]`` each) -> ``z [B, S]``."""
    G = len(n)
    A = Ks[0].shape[0]
    B = t.shape[-2] if G > 1 else t.shape[-1]
    if G > 1:  # last group, batched over actions: [A, rest, n_last] @ [A, n_last, n_last]
        t = jax.lax.dot_general(t.reshape(A, -1, n[-1]), Ks[-1], (((2,), (1,)), ((0,), (0,))))
    for g in range(G - 2, 0, -1):  # middle groups, batched over actions and the groups before
        prefix = math.prod(n[:g])
        K = jnp.broadcast_to(Ks[g][:, None], (A, prefix, n[g], n[g])).reshape(A * prefix, n[g], n[g])
        t = jax.lax.dot_general(K, t.reshape(A * prefix, n[g], -1), (((1,), (1,)), ((0,), (0,))))
    # first group and the sum over actions: [n_0, A n_0] @ [A n_0, rest]
    z = jax.lax.dot_general(Ks[0].reshape(A * n[0], n[0]), t.reshape(A * n[0], -1), (((0,), (0,)), ((), ())))
    # [n_0, ..., n_{G-2}, B, n_{G-1}] -> [B, S]
    z = z.reshape(*n[:-1], B, n[-1]) if G > 1 else z.reshape(n[0], B)
    order = (G - 1, *range(G - 1), G) if G > 1 else (1, 0)
    return jnp.transpose(z, order).reshape(B, math.prod(n))


def _kronecker_pull(factors: tuple, v: jax.Array) -> jax.Array:
    """``v [B, S] -> [B, S, A]``: ``(P v)[s, a] = sum_{s'} P_a[s, s'] v[s']``, the transpose of
    :func:`_kronecker_push` with the same groups and layout: the first group as one GEMM that
    creates the action axis, middle groups batched over actions and the groups before them, the
    last group batched over actions, one transpose out."""
    B, S = v.shape
    A = factors[0].shape[0]
    n, Ks = _grouped_factors(factors)
    G = len(n)
    # [B, n_0, ..., n_last] -> [n_0, ..., n_{G-2}, B, n_{G-1}]
    t = v.reshape(B, *n)
    t = jnp.transpose(t, (*range(1, G), 0, G)) if G > 1 else jnp.transpose(t, (1, 0))
    # first group: [A n_0, n_0] @ [n_0, rest] -> [A, n_0, rest]
    t = jax.lax.dot_general(Ks[0].reshape(A * n[0], n[0]), t.reshape(n[0], -1), (((1,), (0,)), ((), ())))
    for g in range(1, G - 1):
        prefix = math.prod(n[:g])
        K = jnp.broadcast_to(Ks[g][:, None], (A, prefix, n[g], n[g])).reshape(A * prefix, n[g], n[g])
        t = jax.lax.dot_general(K, t.reshape(A * prefix, n[g], -1), (((2,), (1,)), ((0,), (0,))))
    if G > 1:  # last group: [A, rest, n_last] @ [A, n_last, n_last]^T
        t = jax.lax.dot_general(t.reshape(A, -1, n[-1]), Ks[-1], (((2,), (2,)), ((0,), (0,))))
    # [A, n_0, ..., n_{G-2}, B, n_{G-1}] -> [B, S, A]
    t = t.reshape(A, *n[:-1], B, n[-1]) if G > 1 else t.reshape(A, n[0], B)
    order = (G, *range(1, G), G + 1, 0) if G > 1 else (2, 1, 0)
    return jnp.transpose(t, order).reshape(B, S, A)


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
