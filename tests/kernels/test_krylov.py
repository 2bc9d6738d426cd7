"""Batched restarted GMRES against numpy's dense solve: accuracy in float64 and float32, per-row
tolerances, zero right-hand sides, warm starts, row independence (bit for bit), honest residuals
when it does not converge, and breakdowns without NaN.

Oracles: ``np.linalg.solve`` in float64, and residuals ``||b - A x||_2 / ||b||_2`` recomputed
here in float64 from the returned ``x``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxagg.kernels.krylov import gmres
from jaxagg.kernels.precision import precision_scope

S = 30
B = 4
RESTART = 5


@jax.jit
def solve(As, b, x0, tol, max_restarts):
    """GMRES(5) on per-row matrices ``As [B, S, S]`` (row i's matvec uses only ``As[i]``); every
    test uses B = 4 so that one compilation per dtype serves them all."""
    return gmres(lambda x: jnp.einsum("bij,bj->bi", As, x), b, x0, restart=RESTART, max_restarts=max_restarts, tol=tol)


@jax.jit
def solve_diagonal(d, b):
    """GMRES(5) on ``diag(d)``: a matvec that is exactly row-wise (no reduction)."""
    return gmres(lambda x: x * d, b, restart=RESTART, max_restarts=50, tol=1e-12)


def well_conditioned(rng, n=S, spread=0.5):
    """``I + spread * G / sqrt(n)``, G standard normal: nonsymmetric, eigenvalues in a disc of
    radius about ``spread`` around 1."""
    return np.eye(n) + spread * rng.normal(size=(n, n)) / np.sqrt(n)


def residuals(As, b, x):
    r = b - np.einsum("bij,bj->bi", As, np.asarray(x, np.float64))
    return np.linalg.norm(r, axis=-1) / np.where(np.linalg.norm(b, axis=-1) > 0, np.linalg.norm(b, axis=-1), 1.0)


def run(As, b, tol, x0=None, dtype=jnp.float64, max_restarts=50):
    assert As.shape == (B, S, S) and b.shape == (B, S)
    precision = "float64" if dtype == jnp.float64 else "float32"
    with precision_scope(precision):
        x0 = jnp.zeros(b.shape, dtype) if x0 is None else jnp.asarray(x0, dtype)
        tol = jnp.broadcast_to(jnp.asarray(tol, dtype), (B,))
        out = solve(jnp.asarray(As, dtype), jnp.asarray(b, dtype), x0, tol, jnp.int32(max_restarts))
        return jax.tree_util.tree_map(np.asarray, out)


def test_float64_matches_the_dense_solve():
    rng = np.random.default_rng(0)
    As = np.stack([well_conditioned(rng) for _ in range(4)])
    b = rng.normal(size=(4, S))
    out = run(As, b, 1e-12)
    exact = np.linalg.solve(As, b[..., None])[..., 0]
    assert out.x.dtype == np.float64
    assert out.converged.all() and (out.residual <= 1e-12).all() and (out.restarts >= 1).all()
    np.testing.assert_allclose(out.x, exact, rtol=0, atol=1e-10 * np.abs(exact).max())
    # the reported residual is the true one, measured in the working precision
    np.testing.assert_allclose(out.residual, residuals(As, b, out.x), rtol=0, atol=1e-14)


def test_float32_matches_the_dense_solve_to_its_tolerance():
    rng = np.random.default_rng(1)
    As = np.stack([well_conditioned(rng) for _ in range(4)])
    b = rng.normal(size=(4, S))
    out = run(As, b, 1e-5, dtype=jnp.float32)
    assert out.x.dtype == np.float32
    assert out.converged.all() and (out.residual <= 1e-5).all()
    As32, b32 = As.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    exact = np.linalg.solve(As32, b32[..., None])[..., 0]
    # forward error <= cond(A) * (residual + float32 rounding of the products)
    cond = np.linalg.cond(As32)
    error = np.linalg.norm(out.x - exact, axis=-1) / np.linalg.norm(exact, axis=-1)
    assert (error <= cond * (out.residual + 1e-6)).all(), (error, cond, out.residual)
    assert (error <= 1e-4).all()
    # the float32 residual estimate agrees with the float64 recomputation up to float32 rounding
    np.testing.assert_allclose(out.residual, residuals(As32, b32, out.x), rtol=0, atol=1e-6)


def test_per_row_tolerances():
    rng = np.random.default_rng(2)
    A = well_conditioned(rng, spread=0.9)
    As = np.stack([A] * 4)
    b = np.tile(rng.normal(size=S), (4, 1))  # the same system four times, four tolerances
    tol = np.array([1e-2, 1e-5, 1e-8, 1e-12])
    out = run(As, b, tol)
    assert out.converged.all()
    assert (out.residual <= tol).all()
    np.testing.assert_allclose(out.residual, residuals(As, b, out.x), rtol=0, atol=1e-14)
    # a looser tolerance stops earlier: at least as few restarts, strictly fewer from 1e-2 to 1e-12
    assert (np.diff(out.restarts) >= 0).all() and out.restarts[0] < out.restarts[-1], out.restarts
    assert out.residual[0] > 1e-5  # it really stopped early (GMRES(5) does not land at 1e-12 at once)


def test_zero_right_hand_side_gives_zero_and_counts_as_converged():
    rng = np.random.default_rng(3)
    As = np.stack([well_conditioned(rng) for _ in range(B)])
    b = rng.normal(size=(B, S))
    b[1] = 0.0
    out = run(As, b, 1e-10)
    np.testing.assert_array_equal(out.x[1], 0.0)
    assert out.converged.all() and out.residual[1] == 0.0 and out.restarts[1] == 0
    exact = np.linalg.solve(As, b[..., None])[..., 0]
    np.testing.assert_allclose(out.x, exact, rtol=0, atol=1e-8)


def test_starting_at_the_solution_takes_no_restart():
    rng = np.random.default_rng(4)
    As = np.stack([well_conditioned(rng) for _ in range(B)])
    b = rng.normal(size=(B, S))
    exact = np.linalg.solve(As, b[..., None])[..., 0]
    out = run(As, b, 1e-10, x0=exact)
    assert out.converged.all()
    np.testing.assert_array_equal(out.restarts, 0)
    np.testing.assert_array_equal(out.x, exact)  # untouched
    np.testing.assert_allclose(out.residual, residuals(As, b, exact), rtol=0, atol=1e-15)


def test_a_row_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(5)
    hard = well_conditioned(rng, spread=0.95)
    easy = np.eye(S)  # converges in one Krylov vector
    medium = well_conditioned(rng, spread=0.3)
    other = well_conditioned(rng, spread=0.9)
    b = rng.normal(size=(6, S))
    # row `hard` with b[0]: in a batch with an easy and a medium row, then at another position with others
    first = run(np.stack([hard, easy, medium, other]), b[[0, 1, 2, 3]], 1e-11)
    second = run(np.stack([other, medium, hard, easy]), b[[4, 5, 0, 1]], 1e-11)
    assert first.converged.all() and second.converged.all()
    assert first.restarts[1] == 1 and first.restarts[0] > 3  # the batch mixes short and long rows
    np.testing.assert_array_equal(first.x[0], second.x[2])
    np.testing.assert_array_equal(first.residual[0], second.residual[2])
    np.testing.assert_array_equal(first.restarts[0], second.restarts[2])
    # the other rows' tolerances change how long the batch runs, not this row's numbers
    third = run(np.stack([medium, easy, hard, other]), b[[2, 1, 0, 3]], np.array([1e-3, 1e-2, 1e-11, 1e-13]))
    np.testing.assert_array_equal(first.x[0], third.x[2])
    # one matrix for all rows (as in policy evaluation), with a tiny and a zero right-hand side beside it
    fourth = run(np.stack([hard] * B), np.stack([b[4], 1e-6 * b[5], b[0], np.zeros(S)]), 1e-11)
    np.testing.assert_array_equal(first.x[0], fourth.x[2])


@pytest.mark.slow  # two compilations
def test_a_row_does_not_depend_on_the_batch_size():
    # with a matvec that is exactly row-wise, gmres's own arithmetic does not depend on B
    # (CONTRIBUTING: numbers never depend on chunk size; a GEMM matvec may, which is XLA's doing)
    rng = np.random.default_rng(6)
    d = rng.uniform(0.1, 2.0, size=S)  # distinct eigenvalues: many Krylov vectors, several restarts
    b = rng.normal(size=(3, S))
    with precision_scope("float64"):
        alone = solve_diagonal(jnp.asarray(d), jnp.asarray(b[:1]))
        block = solve_diagonal(jnp.asarray(d), jnp.asarray(b[[1, 0, 2]]))
        assert bool(alone.converged[0]) and int(alone.restarts[0]) > 1
        np.testing.assert_array_equal(np.asarray(alone.x[0]), np.asarray(block.x[1]))
        np.testing.assert_allclose(np.asarray(block.x), b[[1, 0, 2]] / d, rtol=1e-10)


def test_non_convergence_is_reported_with_the_true_residual():
    rng = np.random.default_rng(7)
    # eigenvalues spread on a circle around 0.5 of radius 0.45: one GMRES(5) cycle gains little
    Q = np.linalg.qr(rng.normal(size=(S, S)))[0]
    angles = np.linspace(0, 2 * np.pi, S, endpoint=False)
    block = np.zeros((S, S))
    for k in range(0, S, 2):  # real 2x2 blocks with eigenvalues 0.5 + 0.45 exp(+-i angle)
        c, s = 0.5 + 0.45 * np.cos(angles[k]), 0.45 * np.sin(angles[k])
        block[k:k + 2, k:k + 2] = [[c, -s], [s, c]]
    A = Q @ block @ Q.T
    As = np.stack([A] * B)
    b = rng.normal(size=(B, S))
    out = run(As, b, 1e-10, max_restarts=1)
    assert not out.converged.any()
    np.testing.assert_array_equal(out.restarts, 1)
    recomputed = residuals(As, b, out.x)
    assert (recomputed > 1e-3).all()
    np.testing.assert_allclose(out.residual, recomputed, rtol=1e-12)
    assert np.isfinite(out.x).all()


def test_singular_consistent_system_breaks_down_without_nan():
    # A = diag(1, 2, 0, ...), b in its range: the Krylov space closes after two vectors
    A = np.diag(np.r_[1.0, 2.0, np.zeros(S - 2)])
    b = np.zeros(S)
    b[:2] = [1.0, 1.0]
    # N nilpotent (N e0 = 0, N e1 = e0), b = e0 in its range: the Krylov space is N-invariant
    # and contains no solution (GMRES fails here); the result must say so, not produce NaN
    N = np.zeros((S, S))
    N[0, 1] = 1.0
    e0 = np.eye(S)[0]
    for dtype in (jnp.float64, jnp.float32):
        out = run(np.stack([A, N, np.eye(S), A]), np.stack([b, e0, b, np.zeros(S)]), 1e-6, dtype=dtype, max_restarts=3)
        assert np.isfinite(out.x).all() and np.isfinite(out.residual).all()
        assert out.converged[0] and out.converged[2]
        np.testing.assert_allclose(out.x[0], np.r_[1.0, 0.5, np.zeros(S - 2)], atol=1e-6)
        np.testing.assert_allclose(out.x[2], b, atol=1e-6)
        assert not out.converged[1]
        np.testing.assert_allclose(out.residual[1], residuals(N[None], e0[None], out.x[1:2])[0], rtol=1e-6)


def test_a_stagnating_row_stops_early_unconverged_and_leaves_the_others_alone():
    """Row 0 is an inconsistent singular system (its residual plateaus); the others are well
    posed. With ``stagnation`` row 0 stops after a cycle or two, unconverged; without it, it
    uses every restart. The other rows come out bit for bit the same either way."""
    rng = np.random.default_rng(7)
    As = np.stack([np.eye(S) + 0.1 * rng.normal(size=(S, S)) for _ in range(B)])
    As[0] = np.diag(np.r_[np.ones(S - 1), 0.0])  # singular: the last component of b is unreachable
    b = rng.normal(size=(B, S))
    with precision_scope("float64"):
        run = jax.jit(lambda stagnation: gmres(lambda x: jnp.einsum("bij,bj->bi", As, x), jnp.asarray(b), restart=RESTART,
                                               max_restarts=40, tol=1e-12, stagnation=stagnation), static_argnums=0)
        stopped, full = run(0.999), run(None)
    assert not bool(stopped.converged[0]) and not bool(full.converged[0])
    assert int(stopped.restarts[0]) <= 3 < int(full.restarts[0]) == 40
    assert np.all(np.asarray(stopped.converged[1:]))
    np.testing.assert_array_equal(np.asarray(stopped.x[1:]), np.asarray(full.x[1:]))
    # its residual is honest (recomputed here), and no smaller than the unreachable component
    x0 = np.asarray(stopped.x[0])
    recomputed = np.linalg.norm(b[0] - As[0] @ x0) / np.linalg.norm(b[0])
    assert float(stopped.residual[0]) == pytest.approx(recomputed, rel=1e-9)
    assert recomputed >= abs(b[0, -1]) / np.linalg.norm(b[0]) * (1 - 1e-12)
