"""Batched BiCGSTAB (``jaxagg.kernels.krylov.bicgstab``) against numpy's dense solve: accuracy in
float64 and float32, per-row tolerances, frozen and zero rows, row independence (bit for bit),
and the structure of policy evaluation (``1^T E = 1^T``), on which a shadow residual equal to
the right-hand side breaks down at the first iteration.

Oracles: ``np.linalg.solve`` in float64, and residuals ``||b - A x||_2 / ||b||_2`` recomputed
here in float64 from the returned ``x``."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxagg as ja
from jaxagg.kernels import evaluation, policies
from jaxagg.kernels import transitions as T
from jaxagg.kernels.krylov import bicgstab
from jaxagg.kernels.precision import precision_scope

S, B = 30, 4


@jax.jit
def solve(As, b, tol, frozen):
    """BiCGSTAB (at most 60 iterations) on per-row matrices ``As [B, S, S]``."""
    return bicgstab(lambda x: jnp.einsum("bij,bj->bi", As, x), b, max_iterations=60, tol=tol, frozen=frozen)


def well_conditioned(rng, spread=0.5):
    """``I + spread * G / sqrt(S)``: nonsymmetric, eigenvalues in a disc of radius about ``spread`` around 1."""
    return np.eye(S) + spread * rng.normal(size=(S, S)) / np.sqrt(S)


def relative_residuals(As, b, x):
    r = b - np.einsum("bij,bj->bi", As, np.asarray(x, np.float64))
    norms = np.linalg.norm(b, axis=-1)
    return np.linalg.norm(r, axis=-1) / np.where(norms > 0, norms, 1.0)


def run(As, b, tol, dtype=jnp.float64, frozen=None):
    with precision_scope("float64" if dtype == jnp.float64 else "float32"):
        frozen = np.zeros(B, bool) if frozen is None else frozen
        tol = jnp.broadcast_to(jnp.asarray(tol, dtype), (B,))
        return np.asarray(solve(jnp.asarray(As, dtype), jnp.asarray(b, dtype), tol, jnp.asarray(frozen)))


def test_float64_matches_the_dense_solve():
    rng = np.random.default_rng(0)
    As = np.stack([well_conditioned(rng, spread) for spread in (0.2, 0.5, 0.7, 0.9)])
    b = rng.normal(size=(B, S))
    x = run(As, b, 1e-12)
    assert (relative_residuals(As, b, x) <= 1e-11).all()
    np.testing.assert_allclose(x, np.linalg.solve(As, b[..., None])[..., 0], rtol=0, atol=1e-9)


def test_float32_meets_a_float32_tolerance():
    rng = np.random.default_rng(1)
    As = np.stack([well_conditioned(rng) for _ in range(B)])
    b = rng.normal(size=(B, S))
    x = run(As, b, 1e-5, dtype=jnp.float32)
    assert x.dtype == np.float32
    assert (relative_residuals(As, b, x) <= 1e-4).all()  # the recursive residual at 1e-5, the true one near it


def test_per_row_tolerances_frozen_and_zero_rows():
    rng = np.random.default_rng(2)
    A = well_conditioned(rng, 0.8)
    b = rng.normal(size=(B, S))
    b[3] = 0.0
    x = run(np.stack([A] * B), b, np.array([1e-2, 1e-10, 1e-10, 1e-10]), frozen=np.array([False, False, True, False]))
    loose, tight = relative_residuals(np.stack([A] * B), b, x)[:2]
    assert loose <= 1e-2 and tight <= 1e-10 and loose > 1e-8  # the loose row stopped early
    np.testing.assert_array_equal(x[2], 0.0)  # frozen: no work
    np.testing.assert_array_equal(x[3], 0.0)  # zero right-hand side: x = 0, no NaN


def test_a_row_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(3)
    hard, easy, medium, other = (well_conditioned(rng, 0.9), np.eye(S), well_conditioned(rng, 0.3), well_conditioned(rng, 0.8))
    b = rng.normal(size=(6, S))
    first = run(np.stack([hard, easy, medium, other]), b[[0, 1, 2, 3]], 1e-11)
    second = run(np.stack([other, medium, hard, easy]), b[[4, 5, 0, 1]], np.array([1e-3, 1e-2, 1e-11, 1e-13]))
    np.testing.assert_array_equal(first[0], second[2])
    np.testing.assert_array_equal(first[1], second[3])


def test_policy_evaluation_systems_do_not_break_down():
    # 1^T E = 1^T for E = I - P_pi^T + v 1^T: with the right-hand side as shadow residual,
    # <shadow, r_k> would vanish after one iteration; the weighted shadow keeps BiCGSTAB going
    m = ja.envs.attention_allocation(3, 3)
    with precision_scope("float64"):
        pi = policies.random_policies(jax.random.key(0), jnp.arange(B, dtype=jnp.uint32), m.num_states, m.num_actions,
                                      jnp.float64)
        matvec = evaluation.system_matvec(T.astype(m.transitions, jnp.float64), pi, None)
        b = evaluation.system_rhs(jnp.asarray(m.mu), None, B)
        rho = bicgstab(matvec, b, max_iterations=60, tol=1e-12)
        residual = np.asarray(jnp.linalg.norm(b - matvec(rho), axis=-1) / jnp.linalg.norm(b, axis=-1))
    assert (residual <= 1e-11).all(), residual
    np.testing.assert_allclose(np.asarray(rho).sum(axis=-1), 1.0, atol=1e-10)
