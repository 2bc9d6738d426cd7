"""Transition operators: every form's products against the dense einsum oracle, the
constructions and conversions against hand-built arrays, and attention's real Kronecker factors
against its dense ``P``.

Tolerances: float64 products agree with the float64 einsum to 1e-12 (absolute and relative;
entries are O(1)); float32 products to rtol 1e-5, atol 1e-6 (sums of at most S*A = 36 products
of numbers in [0, 1])."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxagg as ja
from jaxagg.envs.attention import factory_transition
from jaxagg.kernels import transitions as T
from jaxagg.kernels.precision import precision_scope

TOLERANCES = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-12, "atol": 1e-12}}
BATCHES = [(), (5,), (2, 3)]


def random_stochastic(rng, shape, zero_fraction=0.3):
    """Rows (last axis) sum to 1, with about ``zero_fraction`` exact zeros (never a whole row)."""
    x = rng.uniform(size=shape) * (rng.uniform(size=shape) > zero_fraction)
    x[..., 0] += (x.sum(axis=-1) == 0)  # no empty row
    return x / x.sum(axis=-1, keepdims=True)


def random_sparse_lists(rng, S, A, b):
    """Successor lists with duplicate successors and zero-probability padding, and their dense P
    (built independently with np.add.at)."""
    successors = rng.integers(0, S, size=(S, A, b))
    successors[:, :, 1] = successors[:, :, 0]  # a duplicate successor in every list
    probabilities = rng.uniform(size=(S, A, b))
    probabilities[:, :, -1] = 0.0  # padding: probability 0 (with an arbitrary index)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            for k in range(b):
                P[s, a, successors[s, a, k]] += probabilities[s, a, k]
    return successors, probabilities, P


def random_kronecker(rng, sizes, A):
    factors = tuple(random_stochastic(rng, (A, p, p)) for p in sizes)
    P = np.zeros((math.prod(sizes), A, math.prod(sizes)))
    for s in np.ndindex(*sizes):  # the oracle entry by entry, factor 0 most significant
        for t in np.ndindex(*sizes):
            i, j = np.ravel_multi_index(s, sizes), np.ravel_multi_index(t, sizes)
            for a in range(A):
                P[i, a, j] = math.prod(K[a, s[f], t[f]] for f, K in enumerate(factors))
    return factors, P


def instances():
    """(name, operator with numpy float64 arrays, dense P float64)."""
    rng = np.random.default_rng(0)
    out = []
    P = random_stochastic(rng, (7, 3, 7))
    assert (P == 0).any()
    out.append(("dense", T.DenseTransitions(P), P))
    successors, probabilities, P = random_sparse_lists(rng, 9, 3, 4)
    out.append(("sparse", T.sparse_transitions(successors, probabilities), P))
    P = random_stochastic(rng, (6, 2, 6), zero_fraction=0.6)
    out.append(("sparse-from-dense", T.sparse_from_dense(P), P))
    for sizes, A in [((5,), 1), ((2, 4), 3), ((3, 2, 2), 4), ((3, 3, 2, 3, 3), 2)]:  # the last one splits into groups
        factors, P = random_kronecker(rng, sizes, A)
        out.append((f"kronecker{sizes}xA{A}", T.KroneckerTransitions(factors), P))
    return out


INSTANCES = instances()
IDS = [name for name, _, _ in INSTANCES]


@jax.jit
def all_products(op, ys, vs):
    """push and pull of every batch shape, one compilation per operator."""
    return [T.push(op, y) for y in ys], [T.pull(op, v) for v in vs]


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("index", range(len(INSTANCES)), ids=IDS)
def test_push_and_pull_equal_the_dense_einsum(index, precision):
    _, op, P = INSTANCES[index]
    S, A = P.shape[:2]
    rng = np.random.default_rng(index)
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    ys = [rng.normal(size=(*lead, S, A)) for lead in BATCHES]
    vs = [rng.normal(size=(*lead, S)) for lead in BATCHES]
    with precision_scope(precision):
        zs, ws = all_products(T.astype(op, dtype), [jnp.asarray(y, dtype) for y in ys], [jnp.asarray(v, dtype) for v in vs])
        # the oracle takes the inputs as rounded to the working dtype
        rounded = lambda x: np.asarray(jnp.asarray(x, dtype), np.float64)
        P_w = rounded(P)
        for lead, y, v, z, w in zip(BATCHES, ys, vs, zs, ws):
            assert z.shape == (*lead, S) and z.dtype == dtype
            assert w.shape == (*lead, S, A) and w.dtype == dtype
            np.testing.assert_allclose(np.asarray(z, np.float64), np.einsum("...sa,sat->...t", rounded(y), P_w), **TOLERANCES[precision])
            np.testing.assert_allclose(np.asarray(w, np.float64), np.einsum("sat,...t->...sa", P_w, rounded(v)), **TOLERANCES[precision])


@pytest.mark.parametrize("index", range(len(INSTANCES)), ids=IDS)
def test_policy_products_are_P_pi_transposed_and_P_pi(index):
    _, op, P = INSTANCES[index]
    S, A = P.shape[:2]
    rng = np.random.default_rng(100 + index)
    pi = random_stochastic(rng, (4, S, A), zero_fraction=0.0)
    x, v = rng.normal(size=(4, S)), rng.normal(size=(4, S))
    P_pi = np.einsum("bsa,sat->bst", pi, P)
    with precision_scope("float64"):
        op64 = T.astype(op, jnp.float64)
        pushed, pulled = jax.jit(lambda op, pi, x, v: (T.policy_push(op, pi, x), T.policy_pull(op, pi, v)))(
            op64, jnp.asarray(pi), jnp.asarray(x), jnp.asarray(v))
    np.testing.assert_allclose(pushed, np.einsum("bst,bs->bt", P_pi, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pulled, np.einsum("bst,bt->bs", P_pi, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("index", range(len(INSTANCES)), ids=IDS)
def test_dense_array_of_every_form_is_P(index):
    _, op, P = INSTANCES[index]
    dense = T.dense_array(op)
    assert dense.dtype == np.float64 and dense.shape == P.shape
    np.testing.assert_allclose(dense, P, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dense.sum(axis=-1), 1.0, atol=1e-14)


def test_sparse_from_dense_round_trips():
    rng = np.random.default_rng(3)
    P = random_stochastic(rng, (8, 3, 8), zero_fraction=0.7)
    P[0, 0] = 0.0
    P[0, 0, 5] = 1.0  # a deterministic pair: branching differs across pairs
    op = T.sparse_from_dense(P)
    assert op.successors.shape == (8, 3, int((P != 0).sum(axis=-1).max()))
    np.testing.assert_array_equal(T.dense_array(op), P)  # each entry stored once: exact
    np.testing.assert_array_equal(T.dense_from_sparse_lists(np.asarray(op.successors), np.asarray(op.probabilities)), P)
    # the transposed lists hold exactly the nonzeros of P, once each
    S, A = 8, 3
    again = np.zeros((S * A, S))
    for t in range(S):
        for k in range(op.predecessors.shape[1]):
            again[op.predecessors[t, k], t] += op.weights[t, k]
    np.testing.assert_array_equal(again, P.reshape(S * A, S))
    assert int((op.weights != 0).sum()) == int((P != 0).sum())


def test_sparse_transitions_merges_duplicates():
    # state 0, action 0 reaches state 1 twice (0.25 + 0.25) and state 2 with 0.5; padding with index 0, weight 0
    successors = np.array([[[1, 1, 2, 0]], [[0, 0, 0, 0]], [[2, 1, 1, 1]]])
    probabilities = np.array([[[0.25, 0.25, 0.5, 0.0]], [[1.0, 0.0, 0.0, 0.0]], [[0.5, 0.125, 0.125, 0.25]]])
    op = T.sparse_transitions(successors, probabilities)
    P = np.array([[[0.0, 0.5, 0.5]], [[1.0, 0.0, 0.0]], [[0.0, 0.5, 0.5]]])
    np.testing.assert_array_equal(T.dense_array(op), P)
    # transposed lists: one entry per (predecessor, state) pair, summed, sorted by predecessor
    # in-degrees: state 0 <- {1}; state 1 <- {0, 2}; state 2 <- {0, 2}; k = 2
    assert op.predecessors.shape == (3, 2) and op.weights.shape == (3, 2)
    np.testing.assert_array_equal(op.predecessors, [[1, 0], [0, 2], [0, 2]])
    np.testing.assert_array_equal(op.weights, [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    assert op.predecessors.dtype == np.int32 and op.successors.dtype == np.int32
    assert op.probabilities.dtype == np.float64 and op.weights.dtype == np.float64
    with precision_scope("float64"):
        y = jnp.asarray([[1.0], [2.0], [4.0]])
        np.testing.assert_array_equal(np.asarray(T.push(op, y)), [2.0, 2.5, 2.5])


@pytest.mark.parametrize("successors, probabilities", [
    (np.zeros((2, 2), int), np.zeros((2, 2))),  # not [S, A, b]
    (np.zeros((2, 1, 2), int), np.zeros((2, 1, 3))),  # shapes differ
    (np.zeros((2, 1, 2), int), np.zeros((2, 2, 2))),
    (np.array([[[0, 2]], [[1, 1]]]), np.full((2, 1, 2), 0.5)),  # index S
    (np.array([[[0, -1]], [[1, 1]]]), np.full((2, 1, 2), 0.5)),  # negative index
    (np.array([[[0, 7]], [[1, 1]]]), np.array([[[1.0, 0.0]], [[0.5, 0.5]]])),  # out of range, even as zero padding
])
def test_sparse_transitions_rejects_bad_shapes_and_indices(successors, probabilities):
    with pytest.raises(ValueError):
        T.sparse_transitions(successors, probabilities)


def test_shape_form_dtype_astype_and_nbytes():
    rng = np.random.default_rng(4)
    P = random_stochastic(rng, (6, 2, 6))
    dense = T.DenseTransitions(P)
    sparse = T.sparse_from_dense(P)
    factors = (random_stochastic(rng, (3, 2, 2)), random_stochastic(rng, (3, 5, 5)))
    kron = T.KroneckerTransitions(factors)
    assert T.shape_of(dense) == (6, 2) and T.shape_of(sparse) == (6, 2) and T.shape_of(kron) == (10, 3)
    assert [T.form_of(op) for op in (dense, sparse, kron)] == ["dense", "sparse", "kronecker"]
    for not_an_operator in (P, (P,), {"P": P}, None):
        with pytest.raises(ValueError):
            T.form_of(not_an_operator)
        with pytest.raises(ValueError):
            T.shape_of(not_an_operator)
    b, k = sparse.successors.shape[-1], sparse.predecessors.shape[-1]
    assert T.nbytes(dense) == 6 * 2 * 6 * 8
    assert T.nbytes(sparse) == 6 * 2 * b * (4 + 8) + 6 * k * (4 + 8)  # int32 indices, float64 weights
    assert T.nbytes(kron) == (3 * 2 * 2 + 3 * 5 * 5) * 8
    for op in (dense, sparse, kron):
        assert T.dtype_of(op) == np.float64
        op32 = T.astype(op, jnp.float32)
        assert T.form_of(op32) == T.form_of(op) and T.shape_of(op32) == T.shape_of(op)
        assert T.dtype_of(op32) == jnp.float32
        assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(op32))
        for leaf in jax.tree_util.tree_leaves(op32):
            assert leaf.dtype in (jnp.float32, jnp.int32)
        np.testing.assert_allclose(T.dense_array(op32), P if op is not kron else T.kronecker_dense(factors), atol=1e-7)
        with precision_scope("float64"):
            op64 = T.astype(op32, jnp.float64)
            assert T.dtype_of(op64) == jnp.float64
            if op is sparse:
                assert op64.successors.dtype == jnp.int32 and op64.predecessors.dtype == jnp.int32
    # float32: probabilities shrink to 4 bytes, indices stay int32
    assert T.nbytes(T.astype(dense, jnp.float32)) == 6 * 2 * 6 * 4
    assert T.nbytes(T.astype(sparse, jnp.float32)) == 6 * 2 * b * (4 + 4) + 6 * k * (4 + 4)
    assert T.nbytes(T.astype(kron, jnp.float32)) == (3 * 2 * 2 + 3 * 5 * 5) * 4


def test_kronecker_dense_of_attention_factors_is_its_P():
    m = ja.envs.attention_allocation(3, 3)
    theta = np.array(m.info["theta"])
    F = theta.shape[0]
    factors = tuple(np.stack([factory_transition(theta[f], monitored=(f == a)) for a in range(F + 1)]) for f in range(F))
    assert [K.shape for K in factors] == [(4, 3, 3)] * 3
    np.testing.assert_array_equal(T.kronecker_dense(factors), m.P)
    op = T.KroneckerTransitions(factors)
    assert T.shape_of(op) == (27, 4)
    rng = np.random.default_rng(5)
    y, v = rng.uniform(size=(3, 27, 4)), rng.normal(size=(2, 27))
    with precision_scope("float64"):
        op64 = T.astype(op, jnp.float64)
        (z,), (w,) = all_products(op64, [jnp.asarray(y)], [jnp.asarray(v)])
    np.testing.assert_allclose(np.asarray(z), np.einsum("bsa,sat->bt", y, m.P), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(w), np.einsum("sat,bt->bsa", m.P, v), rtol=1e-12, atol=1e-12)


def test_kronecker_factor_groups_of_every_count_give_the_dense_products(monkeypatch):
    rng = np.random.default_rng(11)
    factors, P = random_kronecker(rng, (2, 3, 2, 3), 3)
    op = T.KroneckerTransitions(factors)
    assert len(T._groups((3, 3, 2, 3, 3))) > 1  # the default split of the instance above is not trivial
    y, v, pi = rng.normal(size=(2, 36, 3)), rng.normal(size=(2, 36)), rng.dirichlet(np.ones(3), size=(2, 36))
    for overhead, count in ((10**6, 1), (0, 4)):
        monkeypatch.setattr(T, "GROUP_OVERHEAD", overhead)
        assert len(T._groups((2, 3, 2, 3))) == count
        with precision_scope("float64"):
            np.testing.assert_allclose(np.asarray(T.push(op, jnp.asarray(y))), np.einsum("bsa,sat->bt", y, P), atol=1e-12)
            np.testing.assert_allclose(np.asarray(T.pull(op, jnp.asarray(v))), np.einsum("sat,bt->bsa", P, v), atol=1e-12)
            np.testing.assert_allclose(np.asarray(T.policy_push(op, jnp.asarray(pi), jnp.asarray(v))),
                                       np.einsum("bsa,sat,bs->bt", pi, P, v), atol=1e-12)
