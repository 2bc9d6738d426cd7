"""Batched restarted GMRES and BiCGSTAB with an explicit batch axis: one Krylov basis (GMRES) and
one convergence mask per system, products applied to the whole batch at once.

``matvec`` maps ``[B, S] -> [B, S]`` and acts on each row independently (for policy evaluation
it is one GEMM or one sequence of Kronecker contractions for the whole block of policies, with
the transition operator shared by every row). Row ``i`` of the result depends only on row ``i``
of the inputs: a converged row is frozen (masked updates), so a sample's numbers do not depend
on which other samples share its block.

No LAPACK call anywhere (Arnoldi by classical Gram-Schmidt with selective reorthogonalisation, Givens
rotations, back substitution in a fixed-length loop; BiCGSTAB's short recurrences), so host
devices can run blocks concurrently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxagg.kernels.precision import full_precision_products

REORTHOGONALISE = 0.1
"""Arnoldi reorthogonalises a row's new vector (a second Gram-Schmidt pass) when the first pass
left less than this fraction of its norm: the cancellation that loses orthogonality (about
``eps / fraction`` per vector otherwise). A full second pass every step (CGS2) costs two more
passes over the basis and bought nothing measurable here."""


class KrylovResult(NamedTuple):
    """Result of :func:`gmres` (a pytree).

    Attributes:
        x: ``[B, S]`` solutions.
        residual: ``[B]`` relative residual ``||b - A x||_2 / ||b||_2`` in the working precision,
            measured after the last restart.
        restarts: ``[B]`` restart cycles each row used.
        converged: ``[B]`` whether ``residual <= tol``.
    """

    x: jax.Array
    residual: jax.Array
    restarts: jax.Array
    converged: jax.Array


@full_precision_products
def gmres(matvec: Callable[[jax.Array], jax.Array], b: jax.Array, x0: jax.Array | None = None, *,
          restart: int = 20, max_restarts: int = 50, tol: float | jax.Array = 1e-6,
          stagnation: float | None = None) -> KrylovResult:
    """Solve ``A x = b`` for every row of ``b [B, S]`` by GMRES(``restart``).

    Within a cycle a row stops adding Krylov vectors once its (Givens) residual estimate is below
    ``tol``; the cycle ends when every row has stopped or ``restart`` vectors were built. A row's
    update uses only its own vectors, so its numbers never depend on the other rows.

    Args:
        matvec: ``x [B, S] -> A x [B, S]``, row-wise.
        b: ``[B, S]`` right-hand sides; a zero row gives ``x = 0``.
        x0: ``[B, S]`` starting points (default zeros, whose residual ``b`` costs no product).
        restart: Krylov dimension per cycle (capped at ``S``).
        max_restarts: cycles at most; the loop stops earlier once every row has converged.
        tol: relative 2-norm residual at which a row stops: a scalar or one per row ``[B]``.
        stagnation: if given (in (0, 1]), a row also stops when a cycle leaves its residual above
            ``stagnation`` times the residual before it (an inconsistent singular system, whose
            residual plateaus, then costs two cycles instead of ``max_restarts``); it stays
            unconverged.
    """
    B, S = b.shape
    m = max(1, min(int(restart), S))
    zero_start = x0 is None
    x0 = jnp.zeros_like(b) if x0 is None else x0
    tol = jnp.broadcast_to(jnp.asarray(tol, b.dtype), (B,))
    bnorm = jnp.linalg.norm(b, axis=-1)
    scale = jnp.where(bnorm > 0, bnorm, 1.0)

    def relative_residual(x):
        r = b - matvec(x)
        return r, jnp.linalg.norm(r, axis=-1) / scale

    def keep_going(state):
        _, _, _, counts, done = state
        return jnp.logical_and(jnp.max(counts) < max_restarts, ~jnp.all(done))

    def step(state):
        x, r, residual, counts, done = state
        x_new = x + _cycle(matvec, r, m, tol * scale, done)
        r_new, residual_new = relative_residual(x_new)
        active = ~done
        x = jnp.where(active[:, None], x_new, x)
        r = jnp.where(active[:, None], r_new, r)
        residual = jnp.where(active, residual_new, residual)
        counts = counts + active.astype(jnp.int32)
        stalled = jnp.zeros_like(done) if stagnation is None else active & (residual_new > stagnation * state[2])
        return x, r, residual, counts, done | (residual <= tol) | stalled

    if zero_start:  # A 0 = 0: the first residual is b itself, no product needed
        r0, residual0 = b, bnorm / scale
    else:
        r0, residual0 = relative_residual(x0)
    init = (x0, r0, residual0, jnp.zeros((B,), jnp.int32), residual0 <= tol)
    x, _, residual, counts, _ = jax.lax.while_loop(keep_going, step, init)
    return KrylovResult(x=x, residual=residual, restarts=counts, converged=residual <= tol)


@full_precision_products
def gmres_cycle(matvec: Callable[[jax.Array], jax.Array], r: jax.Array, *, restart: int = 20,
                tol: float | jax.Array = 1e-6, frozen: jax.Array | None = None) -> jax.Array:
    """One GMRES(``restart``) cycle on ``A delta = r`` from ``delta = 0``, without the product
    that would measure its residual (for callers that measure it themselves, e.g. in a higher
    precision): ``delta [B, S]``. Row ``i`` stops adding Krylov vectors once its residual
    estimate is at most ``tol[i] * ||r_i||_2``; ``frozen [B]`` rows add none (``delta = 0``)."""
    B, S = r.shape
    m = max(1, min(int(restart), S))
    tol = jnp.broadcast_to(jnp.asarray(tol, r.dtype), (B,))
    frozen = jnp.zeros((B,), bool) if frozen is None else frozen
    return _cycle(matvec, r, m, tol * jnp.linalg.norm(r, axis=-1), frozen)


def _cycle(matvec, r: jax.Array, m: int, target: jax.Array, frozen: jax.Array) -> jax.Array:
    """One GMRES cycle from residual ``r [B, S]``: the correction ``[B, S]`` minimising the
    residual over each row's own Krylov space. Row ``i`` adds vectors until its residual
    estimate is at most ``target[i]`` (absolute), or ``m`` vectors; ``frozen`` rows add none.

    Arnoldi by classical Gram-Schmidt, reorthogonalised where it cancelled (see
    :data:`REORTHOGONALISE`); the Hessenberg matrix is reduced by Givens rotations as it grows,
    so the estimate is ``|rhs[j+1]|``. The rotations so far are kept as one ``[m+1, m+1]``
    orthogonal matrix per row and applied to a new column by one batched product (a loop of
    ``j`` dependent rotations costs a loop iteration each, a few microseconds on a CPU)."""
    B, S = r.shape
    dtype = r.dtype
    tiny = jnp.finfo(dtype).tiny
    beta = jnp.linalg.norm(r, axis=-1)
    basis = jnp.zeros((B, m + 1, S), dtype).at[:, 0].set(r / jnp.where(beta > tiny, beta, 1.0)[:, None])
    rhs = jnp.zeros((B, m + 1), dtype).at[:, 0].set(beta)
    R = jnp.zeros((B, m + 1, m), dtype)
    rotations = jnp.broadcast_to(jnp.eye(m + 1, dtype=dtype), (B, m + 1, m + 1))
    steps = jnp.zeros((B,), jnp.int32)
    running = ~frozen & (beta > target)
    rows = jnp.arange(m + 1)

    def arnoldi_step(carry):
        j, basis, rhs, R, rotations, steps, running = carry
        w = matvec(basis[:, j])
        mask = (rows <= j).astype(dtype)
        h = jnp.einsum("bks,bs->bk", basis, w) * mask
        before = jnp.linalg.norm(w, axis=-1)
        w = w - jnp.einsum("bk,bks->bs", h, basis)
        norm = jnp.linalg.norm(w, axis=-1)
        cancelled = norm < REORTHOGONALISE * before  # the rows whose projection lost most of w

        def reorthogonalise(hw):  # a second pass for those rows only (the others' numbers untouched)
            h, w = hw
            correction = jnp.einsum("bks,bs->bk", basis, w) * mask
            w2 = w - jnp.einsum("bk,bks->bs", correction, basis)
            return jnp.where(cancelled[:, None], h + correction, h), jnp.where(cancelled[:, None], w2, w)

        h, w = jax.lax.cond(jnp.any(cancelled & running), reorthogonalise, lambda hw: hw, (h, w))
        norm = jnp.linalg.norm(w, axis=-1)
        alive = norm > tiny * 1e3
        basis = basis.at[:, j + 1].set(jnp.where(alive[:, None], w / jnp.where(alive, norm, 1.0)[:, None], 0.0))
        h = h.at[:, j + 1].set(norm)

        h = jnp.einsum("bkl,bl->bk", rotations, h)  # the rotations so far (they leave entry j + 1)
        a, c = h[:, j], h[:, j + 1]
        radius = jnp.hypot(a, c)
        safe = jnp.where(radius > 0, radius, 1.0)
        cj = jnp.where(radius > 0, a / safe, 1.0)
        sj = jnp.where(radius > 0, c / safe, 0.0)
        h = h.at[:, j].set(radius).at[:, j + 1].set(0.0)
        g_j, g_k = rhs[:, j], rhs[:, j + 1]
        rhs = rhs.at[:, j].set(cj * g_j + sj * g_k).at[:, j + 1].set(-sj * g_j + cj * g_k)
        q_j, q_k = rotations[:, j], rotations[:, j + 1]
        rotations = rotations.at[:, j].set(cj[:, None] * q_j + sj[:, None] * q_k).at[:, j + 1].set(-sj[:, None] * q_j + cj[:, None] * q_k)
        R = R.at[:, :, j].set(h)
        steps = steps + running.astype(jnp.int32)
        running = running & (jnp.abs(rhs[:, j + 1]) > target) & alive
        return j + 1, basis, rhs, R, rotations, steps, running

    def more(carry):
        return jnp.logical_and(carry[0] < m, jnp.any(carry[-1]))

    init = (jnp.zeros((), jnp.int32), basis, rhs, R, rotations, steps, running)
    _, basis, rhs, R, _, steps, _ = jax.lax.while_loop(more, arnoldi_step, init)
    y = _back_substitute(R[:, :m, :], rhs[:, :m], steps)
    return jnp.einsum("bk,bks->bs", y, basis[:, :m])


def _back_substitute(R: jax.Array, g: jax.Array, steps: jax.Array) -> jax.Array:
    """``y [B, m]`` with ``R[:k, :k] y[:k] = g[:k]`` and ``y[k:] = 0`` for each row's ``k =
    steps [B]`` (``R [B, m, m]`` upper triangular); a zero pivot (a breakdown: the solution was
    already in the space) gives ``y_i = 0``."""
    m = R.shape[-1]
    own = jnp.arange(m)[None, :] < steps[:, None]  # [B, m]: the row's own columns
    scale = jnp.max(jnp.where(own[:, None, :], jnp.abs(R), 0.0), axis=(-2, -1))
    floor = jnp.finfo(R.dtype).eps * jnp.where(scale > 0, scale, 1.0)

    def solve_row(k, y):
        i = m - 1 - k
        rest = jnp.einsum("bk,bk->b", R[:, i, :], y)  # y_i and the unused tail are still 0 here
        pivot = R[:, i, i]
        ok = (jnp.abs(pivot) > floor) & (i < steps)
        return y.at[:, i].set(jnp.where(ok, (g[:, i] - rest) / jnp.where(ok, pivot, 1.0), 0.0))

    return jax.lax.fori_loop(0, m, solve_row, jnp.zeros_like(g))


@full_precision_products
def bicgstab(matvec: Callable[[jax.Array], jax.Array], r: jax.Array, *, max_iterations: int = 40,
             tol: float | jax.Array = 1e-6, frozen: jax.Array | None = None) -> jax.Array:
    """BiCGSTAB on ``A delta = r`` for every row of ``r [B, S]`` from ``delta = 0``: ``delta [B, S]``.

    Short recurrences (two products and a few row-wise vector operations per iteration, no
    basis), so an iteration reads a handful of ``[B, S]`` arrays where a GMRES step reads its
    whole basis. Row ``i`` stops once its recursively updated residual is at most ``tol[i] *
    ||r_i||_2``, or at a breakdown (a vanishing ``<r_hat, r>``, ``<r_hat, v>`` or ``omega``): it
    keeps the last iterate, and the caller, which measures the true residual itself (e.g. in a
    higher precision), restarts it. ``frozen [B]`` rows do no work (``delta = 0``). Every operation
    is row-wise, so a row's numbers never depend on the other rows."""
    B, S = r.shape
    dtype = r.dtype
    tiny = jnp.finfo(dtype).tiny
    tol = jnp.broadcast_to(jnp.asarray(tol, dtype), (B,))
    frozen = jnp.zeros((B,), bool) if frozen is None else frozen
    target = tol * jnp.linalg.norm(r, axis=-1)
    # the shadow residual: r itself breaks down at once whenever 1 is a left eigenvector of A and
    # r's sum is conserved (policy evaluation: 1^T E = 1^T, so <r, r_k> = 0 from the first
    # iteration); r weighted by a fixed, irregular positive pattern over the components does not
    shadow = r * (1.0 + 0.5 * jnp.sin(jnp.arange(S, dtype=dtype) * 2.3999632))

    def dot(a, b):
        return jnp.sum(a * b, axis=-1)

    def usable(value):
        return jnp.abs(value) > tiny

    def safe(value):
        return jnp.where(usable(value), value, 1.0)

    def iteration(state):
        k, x, res, p, v, rho, alpha, omega, running = state
        rho_new = dot(shadow, res)
        beta = (rho_new / safe(rho)) * (alpha / safe(omega))
        p_new = res + beta[:, None] * (p - omega[:, None] * v)
        v_new = matvec(p_new)
        r_hat_v = dot(shadow, v_new)
        ok = running & usable(rho_new) & usable(r_hat_v)
        alpha_new = rho_new / safe(r_hat_v)
        s = res - alpha_new[:, None] * v_new
        half_done = ok & (jnp.linalg.norm(s, axis=-1) <= target)
        t = matvec(s)
        tt = dot(t, t)
        omega_new = jnp.where(usable(tt), dot(t, s) / safe(tt), 0.0)
        full = ok & ~half_done & usable(omega_new)
        step = alpha_new[:, None] * p_new + jnp.where(full[:, None], omega_new[:, None] * s, 0.0)
        x = jnp.where(ok[:, None], x + step, x)
        # a row that is not ok stops for good (keep needs ok), and only x is returned: its other
        # state is dead, so the rest is carried without masks (two fewer passes per vector)
        res = jnp.where(full[:, None], s - omega_new[:, None] * t, s)
        keep = full & (jnp.linalg.norm(res, axis=-1) > target)
        return k + 1, x, res, p_new, v_new, rho_new, alpha_new, omega_new, keep

    def more(state):
        return jnp.logical_and(state[0] < max_iterations, jnp.any(state[-1]))

    ones = jnp.ones((B,), dtype)
    zeros = jnp.zeros_like(r)
    running = ~frozen & (jnp.linalg.norm(r, axis=-1) > target)
    init = (jnp.zeros((), jnp.int32), zeros, r, zeros, zeros, ones, ones, ones, running)
    return jax.lax.while_loop(more, iteration, init)[1]
