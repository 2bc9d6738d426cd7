"""Occupancy measures of policies, batched and differentiable (SPEC §1).

Single-policy functions below; batch them with ``jax.vmap``. Shapes: ``P [S, A, S]``,
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


def occupancy(pi: jax.Array, P: jax.Array, mu: jax.Array, gamma: float | None) -> jax.Array:
    """Occupancy ``d [S, A]`` of policy ``pi [S, A]``: ``d(s, a) = rho(s) pi(a|s)``.

    ``gamma=None`` is the average-reward criterion (``mu`` unused: the chain is unichain).
    """
    P_pi = state_transitions(pi, P)
    rho = stationary_distribution(P_pi) if gamma is None else discounted_state_distribution(P_pi, mu, gamma)
    return rho[:, None] * pi


def batch_occupancy(pi: jax.Array, P: jax.Array, mu: jax.Array, gamma: float | None) -> jax.Array:
    """Occupancies ``[B, S, A]`` of a policy batch ``[B, S, A]``."""
    return jax.vmap(occupancy, in_axes=(0, None, None, None))(pi, P, mu, gamma)


def iterative_state_distribution(P_pi: jax.Array, mu: jax.Array, gamma: float | None, x0: jax.Array | None = None,
                                 *, tol: float = 1e-6, restart: int = 20, maxiter: int = 10) -> jax.Array:
    """The state distribution ``rho [S]`` of :func:`occupancy` by GMRES instead of a dense LU:
    the same linear systems (``(I - P_pi^T + v 1^T) rho = v`` with ``v = 1/S``, or
    ``(I - gamma P_pi^T) rho = (1 - gamma) mu``), solved with matrix-vector products only
    (``O(S^2)`` per product against ``O(S^3)`` for the LU). Differentiable: ``jax.scipy``'s
    GMRES is a ``lax.custom_linear_solve``, so gradients solve the transposed system (implicit
    function theorem) rather than differentiating through the iterations. ``x0 [S]`` warm-starts
    the solve (treated as a constant). ``tol`` is GMRES's relative residual tolerance; at most
    ``restart * maxiter`` products."""
    S = P_pi.shape[0]
    if gamma is None:
        v = jnp.full((S,), 1.0 / S, dtype=P_pi.dtype)
        b = v

        def matvec(x):
            return x - P_pi.T @ x + v * x.sum()
    else:
        b = (1.0 - gamma) * mu

        def matvec(x):
            return x - gamma * (P_pi.T @ x)
    x0 = b if x0 is None else jax.lax.stop_gradient(x0)
    rho, _ = jax.scipy.sparse.linalg.gmres(matvec, b, x0=x0, tol=tol, atol=0.0, restart=restart, maxiter=maxiter)
    return rho


def occupancy_iterative(pi: jax.Array, P: jax.Array, mu: jax.Array, gamma: float | None, x0: jax.Array | None = None,
                        **options) -> jax.Array:
    """:func:`occupancy` with the state distribution from :func:`iterative_state_distribution`
    (for large S, where a dense LU per policy is the bottleneck); ``d [S, A]``."""
    rho = iterative_state_distribution(state_transitions(pi, P), mu, gamma, x0, **options)
    return rho[:, None] * pi
