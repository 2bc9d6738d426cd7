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
"""How a state distribution is solved for: a dense LU, or warm-startable GMRES (large S)."""


def state_distribution(pi: jax.Array, P: jax.Array, mu: jax.Array, gamma: float | None, linear_solve: str = "dense",
                       x0: jax.Array | None = None, **gmres_options) -> jax.Array:
    """The state distribution ``rho [S]`` of policy ``pi [S, A]``: the one dispatch over the
    criterion (``gamma=None`` is average reward) and the linear solve (``"dense"`` LU, or
    ``"iterative"``: :func:`iterative_state_distribution` warm-started at ``x0``, with
    ``gmres_options`` such as ``tol`` and ``maxiter``). Differentiable either way."""
    if linear_solve not in LINEAR_SOLVES:
        raise ValueError(f"linear_solve: expected one of {LINEAR_SOLVES}, got {linear_solve!r}")
    P_pi = state_transitions(pi, P)
    if linear_solve == "iterative":
        return iterative_state_distribution(P_pi, mu, gamma, x0, **gmres_options)
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
