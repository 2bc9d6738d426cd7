"""Gradient-based fairness tuning: Optax ascent on policy logits for smoothed volumetric
objectives (the design's third engine, next to the LP and MILP rules).

The differentiable chain, for one restart::

    logits [S, A] --softmax--> pi [S, A] --occupancy--> d [S, A] --R--> J [n]
        --smooth CDF (temperature T)--> F^T [n] --objective--> scalar

Objectives (maximised; ``F^T`` from :func:`jaxagg.kernels.smooth.smooth_cdf`):

* ``"quantile"``: soft minimum over agents of ``F_i^T(J_i)`` (smooth max-quantile);
* ``"borda"``: ``sum_i F_i^T(J_i)`` (smooth Borda score);
* ``"approval"``: ``sum_i sigmoid((F_i^T(J_i) - q) / T)`` (smooth approval count at level q).

One temperature ``T`` serves the CDFs (as a fraction of each agent's scale) and the soft
min / count (in rank units); it is annealed geometrically from ``T0`` to ``T1`` over a
fixed-length ``lax.scan`` of Adam steps with a cosine learning-rate schedule, and every restart
runs at once under ``jax.vmap``. The state distribution comes from a dense LU
(``linear_solve="dense"``) or from GMRES warm-started at the previous step's solution
(``linear_solve="iterative"``, for large S); both are differentiable with exact gradients
(:func:`jaxagg.kernels.occupancy.state_distribution`).

Pure JAX: :mod:`jaxagg.rules.gradient` turns the logits into a certified Outcome.
"""

from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxagg.kernels.occupancy import state_distribution
from jaxagg.kernels.policies import softmax_policy
from jaxagg.kernels.smooth import smooth_cdf, smooth_count, smooth_min

OBJECTIVES = ("quantile", "borda", "approval")
TIME_LIMIT_CHUNK = 10
"""Steps per compiled call when a time limit is set (the limit is checked between calls)."""
CERTIFY_GMRES = {"tol": 1e-13, "maxiter": 100}
"""GMRES options of :func:`softmax_occupancies`: tight, since these occupancies become outcomes."""


class TuneProblem(NamedTuple):
    """The arrays of one tuning problem (a pytree).

    Attributes:
        P: transitions: a transition operator (:mod:`jaxagg.kernels.transitions`; dense for the
            LU) or a dense ``[S, A, S]`` array.
        mu: ``[S]`` initial distribution.
        R: ``[n, S, A]`` rewards.
        grid: ``[G, n]`` each agent's reference returns for the smoothed CDF.
        scale: ``[n]`` positive per-agent return scale (the CDF temperature's unit).
        level: scalar approval level q (used by ``"approval"`` only).
    """

    P: object
    mu: jax.Array
    R: jax.Array
    grid: jax.Array
    scale: jax.Array
    level: jax.Array


def smooth_objective_of_returns(returns: jax.Array, temperature: jax.Array | float, problem: TuneProblem, objective: str) -> jax.Array:
    """The smoothed objective (a scalar to maximise) of returns ``[n]``."""
    ranks = smooth_cdf(returns, problem.grid, problem.scale, temperature)
    if objective == "quantile":
        return smooth_min(ranks, temperature)
    if objective == "borda":
        return ranks.sum()
    return smooth_count(ranks, problem.level, temperature)


def smooth_objective(logits: jax.Array, temperature: jax.Array | float, problem: TuneProblem, *, objective: str,
                     gamma: float | None, linear_solve: str = "dense", x0: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(value, rho)``: the smoothed objective of the softmax policy of ``logits [S, A]`` and
    its state distribution ``rho [S]`` (to warm-start the next iterative solve)."""
    pi = softmax_policy(logits)
    rho = state_distribution(pi, problem.P, problem.mu, gamma, linear_solve, x0)
    d = rho[:, None] * pi
    returns = jnp.einsum("isa,sa->i", problem.R, d)
    return smooth_objective_of_returns(returns, temperature, problem, objective), rho


def temperatures(steps: int, start: float, end: float) -> jax.Array:
    """Geometric schedule ``[steps]`` from ``start`` to ``end``."""
    if steps == 1:
        return jnp.full((1,), end)
    return start * (end / start) ** (jnp.arange(steps) / (steps - 1))


def tune_logits(init_logits: jax.Array, problem: TuneProblem, *, objective: str, gamma: float | None, steps: int,
                learning_rate: float, temperature: tuple[float, float], linear_solve: str = "dense",
                time_limit: float | None = None, chunk: int = TIME_LIMIT_CHUNK) -> tuple[jax.Array, jax.Array]:
    """Adam ascent from every restart at once.

    Args:
        init_logits: ``[B, S, A]`` starting logits (one row per restart).
        problem: the arrays (:class:`TuneProblem`).
        objective: one of :data:`OBJECTIVES`.
        gamma: discount factor, or ``None`` for average reward.
        steps: Adam steps (fixed-length ``lax.scan``).
        learning_rate: peak step size of the cosine schedule (decays to a tenth).
        temperature: ``(T0, T1)``, annealed geometrically over the steps.
        linear_solve: ``"dense"`` (LU) or ``"iterative"`` (warm-started GMRES).
        time_limit: seconds; the steps then run in compiled chunks of ``chunk`` steps and stop
            after the chunk that passes the limit (the schedules stay those of ``steps``).
            ``None``: all steps in one compiled scan.

    Returns:
        ``(logits [B, S, A], trace [steps_done, B])``: final logits and the smoothed objective of
        every restart at every step taken (at that step's temperature).
    """
    began = time.perf_counter()
    optimizer = _optimizer(learning_rate, steps)
    B, S, _ = init_logits.shape
    carry = (init_logits, jax.vmap(optimizer.init)(init_logits), jnp.full((B, S), 1.0 / S, dtype=init_logits.dtype))
    schedule = temperatures(steps, *temperature).astype(init_logits.dtype)
    size = steps if time_limit is None else min(chunk, steps)
    traces = []
    for first in range(0, steps, size):
        carry, trace = _advance(carry, schedule[first:first + size], problem, objective=objective, gamma=gamma, steps=steps,
                                learning_rate=learning_rate, linear_solve=linear_solve)
        traces.append(trace)
        if time_limit is not None and time.perf_counter() - began > time_limit:
            break
    return carry[0], jnp.concatenate(traces)


def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.1))


@partial(jax.jit, static_argnames=("objective", "gamma", "steps", "linear_solve", "learning_rate"))
def _advance(carry, schedule: jax.Array, problem: TuneProblem, *, objective: str, gamma: float | None, steps: int,
             learning_rate: float, linear_solve: str):
    """``len(schedule)`` Adam steps of every restart from ``carry = (logits [B, S, A], Adam
    state, rho [B, S])`` at the temperatures ``schedule``; returns the new carry and the trace
    ``[len(schedule), B]``."""
    optimizer = _optimizer(learning_rate, steps)

    def one_step(logits, opt_state, rho, T):
        (value, rho), grad = jax.value_and_grad(
            lambda z: smooth_objective(z, T, problem, objective=objective, gamma=gamma, linear_solve=linear_solve, x0=rho),
            has_aux=True)(logits)
        updates, opt_state = optimizer.update(-grad, opt_state, logits)
        return optax.apply_updates(logits, updates), opt_state, rho, value

    def body(carry, T):
        logits, opt_state, rho = carry
        logits, opt_state, rho, value = jax.vmap(one_step, in_axes=(0, 0, 0, None))(logits, opt_state, rho, T)
        return (logits, opt_state, rho), value

    return jax.lax.scan(body, carry, schedule)


@partial(jax.jit, static_argnames=("gamma", "linear_solve"))
def softmax_occupancies(logits: jax.Array, P, mu: jax.Array, gamma: float | None,
                        linear_solve: str = "dense") -> jax.Array:
    """Occupancies ``[B, S, A]`` of the softmax policies of ``logits [B, S, A]`` (the iterative
    solve runs at the tight :data:`CERTIFY_GMRES` tolerance: these rank the restarts and become
    the outcome)."""

    def one(z):
        pi = softmax_policy(z)
        options = CERTIFY_GMRES if linear_solve == "iterative" else {}
        return state_distribution(pi, P, mu, gamma, linear_solve, **options)[:, None] * pi

    return jax.vmap(one)(logits)
