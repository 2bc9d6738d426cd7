"""Occupancy measures of policies, batched and differentiable (SPEC §1).

Single-policy functions below; batch them with ``jax.vmap``. :func:`state_distribution` is the
one place that dispatches over the criterion and the linear solve; every kernel (sampling, the
gradient ascent) goes through it. Shapes: ``P [S, A, S]``,
``mu [S]``, ``pi [S, A]`` -> ``d [S, A]``.

Average reward: for a unichain ``P_pi`` (every full-support policy on a MOMDP whose union graph
has one closed class; :func:`jaxagg.solvers.polytope.closed_classes` checks this at the door)
the stationary distribution ``rho`` is the unique solution of
``(I - P_pi^T + v 1^T) rho = v`` for any ``v`` with ``sum v != 0``: multiplying by ``1^T`` gives
``1^T rho = 1`` and the flow rows then say ``rho = P_pi^T rho``. We take ``v = 1/S`` (one LU
solve; no iteration count to tune, no periodicity issue as in power iteration). It equals the
Cesàro limit from any ``mu`` for a unichain chain.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxagg.kernels import krylov
from jaxagg.kernels import transitions as T
from jaxagg.kernels.evaluation import system_matvec, system_rhs


def state_transitions(pi: jax.Array, P: jax.Array) -> jax.Array:
    """``P_pi[s, s'] = sum_a pi[s, a] P[s, a, s']``, ``[S, S]``."""
    return jnp.einsum("sa,sat->st", pi, P)


def discounted_state_distribution(P_pi: jax.Array, mu: jax.Array, gamma: float) -> jax.Array:
    """``rho = (1 - gamma) (I - gamma P_pi^T)^{-1} mu``, ``[S]``."""
    S = P_pi.shape[0]
    system = jnp.eye(S, dtype=P_pi.dtype) - gamma * P_pi.T
    return (1.0 - gamma) * jnp.linalg.solve(system, mu)


def stationary_distribution(P_pi: jax.Array) -> jax.Array:
    """The stationary distribution ``[S]`` of a unichain ``P_pi`` (see the module docstring)."""
    S = P_pi.shape[0]
    v = jnp.full((S,), 1.0 / S, dtype=P_pi.dtype)
    system = jnp.eye(S, dtype=P_pi.dtype) - P_pi.T + v[:, None]
    return jnp.linalg.solve(system, v)


LINEAR_SOLVES = ("dense", "iterative")
"""How a state distribution is solved for: a dense LU, or warm-startable GMRES on the transition
operator (the engine's batched GMRES, :mod:`jaxagg.kernels.krylov`; large S)."""


def state_distribution(pi: jax.Array, P, mu: jax.Array, gamma: float | None, linear_solve: str = "dense",
                       x0: jax.Array | None = None, **gmres_options) -> jax.Array:
    """The state distribution ``rho [S]`` of policy ``pi [S, A]``: the one dispatch over the
    criterion (``gamma=None`` is average reward) and the linear solve (``"dense"`` LU, or
    ``"iterative"``: :func:`iterative_state_distribution` warm-started at ``x0``, with
    ``gmres_options`` ``tol``, ``restart`` and ``maxiter``). ``P`` is a dense ``[S, A, S]`` array
    or a transition operator (:mod:`jaxagg.kernels.transitions`; the LU needs dense transitions).
    Differentiable either way."""
    if linear_solve not in LINEAR_SOLVES:
        raise ValueError(f"linear_solve: expected one of {LINEAR_SOLVES}, got {linear_solve!r}")
    op = P if isinstance(P, (T.DenseTransitions, T.SparseTransitions, T.KroneckerTransitions)) else T.DenseTransitions(P)
    if linear_solve == "iterative":
        return iterative_state_distribution(pi, op, mu, gamma, x0, **gmres_options)
    if not isinstance(op, T.DenseTransitions):
        raise ValueError(f"linear_solve: 'dense' needs dense transitions, got {T.form_of(op)}; use 'iterative'")
    P_pi = state_transitions(pi, op.P)
    return stationary_distribution(P_pi) if gamma is None else discounted_state_distribution(P_pi, mu, gamma)


def occupancy(pi: jax.Array, P: jax.Array, mu: jax.Array, gamma: float | None, linear_solve: str = "dense",
              x0: jax.Array | None = None, **gmres_options) -> jax.Array:
    """Occupancy ``d [S, A]`` of policy ``pi [S, A]``: ``d(s, a) = rho(s) pi(a|s)`` with ``rho``
    from :func:`state_distribution` (``gamma=None``: average reward, ``mu`` unused since the
    chain is unichain)."""
    rho = state_distribution(pi, P, mu, gamma, linear_solve, x0, **gmres_options)
    return rho[:, None] * pi


def batch_occupancy(pi: jax.Array, P: jax.Array, mu: jax.Array, gamma: float | None) -> jax.Array:
    """Occupancies ``[B, S, A]`` of a policy batch ``[B, S, A]`` (dense LU per policy)."""
    return jax.vmap(occupancy, in_axes=(0, None, None, None))(pi, P, mu, gamma)


ITERATIVE_TOL = {jnp.dtype(jnp.float32): 1e-6, jnp.dtype(jnp.float64): 1e-10}
"""Default GMRES tolerance of :func:`iterative_state_distribution` per dtype (GMRES stops as soon
as it is met, so float64 asks for more)."""


def iterative_state_distribution(pi: jax.Array, op: T.Transitions, mu: jax.Array, gamma: float | None,
                                 x0: jax.Array | None = None, *, tol: float | None = None, restart: int = 20,
                                 maxiter: int = 10) -> jax.Array:
    """The state distribution ``rho [S]`` of :func:`occupancy` by the engine's GMRES
    (:func:`jaxagg.kernels.krylov.gmres`) on the transition operator instead of a dense LU: the
    same linear systems (:mod:`jaxagg.kernels.evaluation`), matrix-free (``P_pi`` is never
    formed). Differentiable by the implicit function theorem: the solve is a
    ``lax.custom_linear_solve``, so gradients solve the transposed system rather than
    differentiating through the iterations. ``x0 [S]`` warm-starts the solve (a constant).
    ``tol`` is GMRES's relative residual tolerance (default :data:`ITERATIVE_TOL` of ``pi``'s
    dtype); at most ``restart * maxiter`` products."""
    tol = ITERATIVE_TOL[jnp.dtype(pi.dtype)] if tol is None else tol
    batched = system_matvec(op, pi[None], gamma)
    b = system_rhs(mu, gamma, 1)[0]
    start = None if x0 is None else jax.lax.stop_gradient(x0)[None]

    def matvec(x):
        return batched(x[None])[0]

    def gmres(linear, rhs, x_start):
        return krylov.gmres(lambda X: linear(X[0])[None], rhs[None], x_start, restart=restart, max_restarts=maxiter,
                            tol=tol).x[0]

    return jax.lax.custom_linear_solve(matvec, b, lambda linear, rhs: gmres(linear, rhs, start),
                                       transpose_solve=lambda linear, rhs: gmres(linear, rhs, None))
