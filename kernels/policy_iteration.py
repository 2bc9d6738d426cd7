"""The JAX core of the return bounds' batched policy iteration (:mod:`jaxagg.solvers.mdp` is its
numpy door and holds the mathematics: evaluation, improvement, multichain mixing, certificates).

Pure JAX on any transition operator of :mod:`jaxagg.kernels.transitions`; everything in float64
(inside ``precision_scope("float64")``, which :func:`solve` and :func:`upper_bound` open).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxagg.kernels import krylov
from jaxagg.kernels import transitions as T
from jaxagg.kernels.evaluation import evaluate_policies
from jaxagg.kernels.precision import precision_scope

RESTART = 30
"""GMRES Krylov dimension per cycle for the value systems."""
MAX_RESTARTS = 60
"""GMRES cycles at most per value solve."""
VALUE_TOL = 1e-12
"""Relative 2-norm residual at which a value solve stops."""
STAGNATION = 0.999
"""A value solve stops when a GMRES cycle cuts its residual by less than 0.1%: the residual of an
inconsistent system (a multichain policy whose classes' gains differ) plateaus, and finding that
out cost a whole restart budget (seconds per greedy step on attention (7, 3))."""
EVALUABLE_TOL = 1e-8
"""A value solve whose relative residual stays above this has no solution (a multichain policy
whose classes' gains differ) or did not converge: the policy is not accepted (module docstring)."""
MIXING_STEPS = 4
"""Halvings towards the previous policy at most when a greedy policy cannot be evaluated."""
OCCUPANCY_TOL = 1e-12
"""Residual tolerance passed to ``evaluate_policies`` for the returned policies."""


def _value_solve(op, pi, rewards, x0, gamma, average, restart):
    """``(h [K, S], relative residual [K])`` of the value systems of policies ``pi [K, S, A]``
    (``gamma`` a traced scalar, ignored when ``average``)."""
    r_pi = (pi * rewards).sum(axis=-1)

    def matvec(v):
        flow = T.policy_pull(op, pi, v)
        if average:
            return v - flow + v.mean(axis=-1, keepdims=True)
        return v - gamma * flow

    out = krylov.gmres(matvec, r_pi, x0, restart=restart, max_restarts=MAX_RESTARTS, tol=VALUE_TOL, stagnation=STAGNATION)
    residual = jnp.where(jnp.isfinite(out.residual), out.residual, jnp.inf)
    return out.x, residual


def _iterate(op, rewards, tie, gamma, max_iterations, average, start, restart):
    """Batched policy iteration from policies ``start [K, S, A]``; ``rewards [K, S, A]``, ``tie [K]``.

    One value solve per loop step (one GMRES in the compiled program): each row evaluates its
    candidate; an evaluable candidate is accepted and the next greedy candidate computed from it
    (a row whose greedy candidate equals its policy has converged); a candidate that cannot be
    evaluated is replaced by the mixture with the accepted policy (module docstring)."""
    K, S, A = rewards.shape
    dtype = rewards.dtype
    discount = 1.0 if average else gamma

    def greedy(pi, h):
        q = rewards + discount * T.pull(op, h)
        current = (pi * q).sum(axis=-1)
        improve = q.max(axis=-1) > current + tie[:, None]
        onehot = jax.nn.one_hot(q.argmax(axis=-1), A, dtype=dtype)
        return jnp.where(improve[..., None], onehot, pi), improve.any(axis=-1)

    def body(state):
        evaluations, pi, h, res, cand, tries, active, iterations, mixes, stuck = state
        h_c, res_c = _value_solve(op, cand, rewards, h, gamma, average, restart)
        evaluated = active & (res_c <= EVALUABLE_TOL)
        failed = active & ~evaluated
        pi = jnp.where(evaluated[:, None, None], cand, pi)
        h = jnp.where(evaluated[:, None], h_c, h)
        res = jnp.where(evaluated, res_c, res)
        iterations = iterations + evaluated.astype(jnp.int32)
        next_cand, changed = greedy(pi, h)
        give_up = failed & (tries >= MIXING_STEPS)
        mixing = failed & ~give_up
        cand = jnp.where(mixing[:, None, None], 0.5 * (pi + cand), jnp.where(evaluated[:, None, None], next_cand, cand))
        tries = jnp.where(mixing, tries + 1, 0)
        active = (evaluated & changed) | mixing
        return (evaluations + 1, pi, h, res, cand, tries, active, iterations, mixes + mixing.astype(jnp.int32),
                stuck | give_up)

    start = start.astype(dtype)
    zeros = jnp.zeros((K,), jnp.int32)
    state = (jnp.zeros((), jnp.int32), start, jnp.zeros((K, S), dtype), jnp.full((K,), jnp.inf, dtype), start, zeros,
             jnp.ones((K,), bool), zeros, zeros, jnp.zeros((K,), bool))
    state = jax.lax.while_loop(lambda s: (s[0] < max_iterations) & s[6].any(), body, state)
    _, pi, h, res, _, _, active, iterations, mixes, stuck = state
    return pi, h, res, ~active & ~stuck, iterations, mixes, stuck


@partial(jax.jit, static_argnames=("average",))
def _upper_bound(op, rewards, mu, h, gamma, average):
    """``[K]``: the certificate of ``h [K, S]`` for rewards ``[K, S, A]`` (module docstring)."""
    discount = 1.0 if average else gamma
    advantage = (rewards + discount * T.pull(op, h) - h[:, :, None]).max(axis=(1, 2))
    return advantage if average else advantage + (1.0 - gamma) * (h @ mu)


def _certify(op, rewards, mu, pi, h, rho, gamma, average):
    """``(lower [K], upper [K], occupancy [K, S*A], membership residual [K])``."""
    K, S, A = rewards.shape
    rho = jnp.clip(rho, 0.0, None)
    if average:  # a signed mix of closed classes -> its positive part (module docstring)
        rho = rho / rho.sum(axis=-1, keepdims=True)
    d = rho[:, :, None] * pi
    lower = (d * rewards).sum(axis=(1, 2))
    flow = T.policy_push(op, pi, rho)
    e = rho - flow if average else rho - gamma * flow - (1.0 - gamma) * mu
    residual = jnp.maximum(jnp.abs(e).max(axis=-1), jnp.abs(d.sum(axis=(1, 2)) - 1.0))
    residual = jnp.where(jnp.isfinite(residual), residual, jnp.inf)
    return lower, _upper_bound(op, rewards, mu, h, gamma, average), d.reshape(K, S * A), residual


def _evaluate_traced_gamma(op, pi, mu, gamma, average):
    """``evaluate_policies`` with a traced discount factor (it only multiplies), so that one
    compiled program serves every ``gamma``."""
    return evaluate_policies(op, op, pi, mu, None if average else gamma, method="krylov", tol=OCCUPANCY_TOL)


@partial(jax.jit, static_argnames=("average", "restart"))
def _solve(op, rewards, mu, tie, gamma, max_iterations, average, start, restart):
    """Policy iteration, exact occupancies of the final policies, certificates: one program
    (``gamma``, ``max_iterations`` and ``start`` are traced, so changing them does not recompile)."""
    pi, h, value_residual, converged, iterations, mixes, stuck = _iterate(op, rewards, tie, gamma, max_iterations, average,
                                                                         start, restart)
    evaluation = _evaluate_traced_gamma(op, pi, mu, gamma, average)
    lower, upper, occupancy, residual = _certify(op, rewards, mu, pi, h, evaluation.rho, gamma, average)
    return dict(pi=pi, h=h, value_residual=value_residual, converged=converged, iterations=iterations, mixes=mixes, stuck=stuck,
                evaluation_residual=evaluation.residual, lower=lower, upper=upper, occupancy=occupancy, residual=residual)


def solve(op: T.Transitions, centred: np.ndarray, mu: np.ndarray, tie: np.ndarray, gamma: float | None, max_iterations: int,
          start: np.ndarray | None = None, restart: int = RESTART) -> dict:
    """Batched policy iteration from ``start [K, S, A]`` (default: uniform policies), with
    GMRES(``restart``) value solves, and certificates for rewards ``centred [K, S, A]`` (numpy
    in, numpy out): ``pi, h, value_residual, converged, iterations, mixes, stuck,
    evaluation_residual, lower, upper, occupancy, residual`` (see :mod:`jaxagg.solvers.mdp`)."""
    K, S, A = np.shape(centred)
    start = np.full((K, S, A), 1.0 / A) if start is None else start
    with precision_scope("float64"):
        out = _solve(T.astype(op, jnp.float64), jnp.asarray(centred, jnp.float64), jnp.asarray(mu, jnp.float64),
                     jnp.asarray(tie, jnp.float64), jnp.asarray(gamma or 0.0, jnp.float64), jnp.asarray(max_iterations, jnp.int32),
                     gamma is None, jnp.asarray(start, jnp.float64), int(restart))
        return {key: np.asarray(value) for key, value in out.items()}


def upper_bound(op: T.Transitions, rewards: np.ndarray, mu: np.ndarray, h: np.ndarray, gamma: float | None) -> np.ndarray:
    """``[K]``: the certificate of value vectors ``h [K, S]`` for ``rewards [K, S, A]`` (numpy)."""
    with precision_scope("float64"):
        bound = _upper_bound(T.astype(op, jnp.float64), jnp.asarray(rewards, jnp.float64), jnp.asarray(mu, jnp.float64),
                             jnp.asarray(h, jnp.float64), jnp.asarray(0.0 if gamma is None else float(gamma), jnp.float64),
                             gamma is None)
        return np.asarray(bound)
