"""Batched policy evaluation with a recorded residual: the state distributions of a block of
policies, by batched Krylov solves (BiCGSTAB or restarted GMRES, :func:`default_solver`) on a
shared transition operator or by a dense LU per policy, all finished in float64.

The linear systems (SPEC §1), for a block of policies ``pi [B, S, A]``:

* discounted: ``(I - gamma P_pi^T) rho = (1 - gamma) mu``;
* average reward (unichain ``P_pi``): ``(I - P_pi^T + v 1^T) rho = v`` with ``v = 1/S``
  (multiplying by ``1^T`` gives ``1^T rho = 1``, and then ``rho = P_pi^T rho``).

Both methods solve in the operator's working precision (float32 by default) and then refine in
float64: the residual ``r = b - E rho`` is computed with a float64 copy of the operator, and a
correction ``E delta = r`` is solved in the working precision while the relative residual
``||r||_inf / ||b||_inf`` is above the tolerance (for the Krylov solvers every restart is such a
round: one GMRES cycle or one BiCGSTAB solve per float64 residual). A Krylov solve may be
right-preconditioned by one ``[S, S]`` matrix shared by the whole block
(:func:`mean_policy_preconditioner`: the inverse of the uniform policy's system), which cuts the
iterations by a third to a half for the sampled (Dirichlet) policies at the price of one GEMM per
operator product. The final float64 residual
of every policy is returned, so that the caller can record it and refuse a policy that did not
meet it. A float64 context (``jaxagg.kernels.precision.precision_scope("float64")``) is
required around these functions.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxagg.kernels import krylov
from jaxagg.kernels import transitions as T
from jaxagg.kernels.precision import full_precision_products, precision_scope

METHODS = ("krylov", "lu")
TOL = 1e-6
"""Default relative residual ``||E rho - b||_inf / ||b||_inf`` every evaluated policy must meet."""
RESTART = 20
"""Krylov dimension per GMRES cycle."""
SOLVERS = ("gmres", "bicgstab")
"""Krylov solvers for ``method="krylov"``: restarted GMRES(:data:`RESTART`) or BiCGSTAB."""
SOLVER = "gmres"
"""The solver :func:`evaluate_policies` uses unless told otherwise (policy iteration for the
return bounds and the pricing); the samplers pass theirs (:func:`default_solver`, recorded with
the sample)."""
ACCELERATOR_BICGSTAB_MAX_STATES = 1024
"""On an accelerator, :func:`default_solver` is BiCGSTAB up to this many states, GMRES beyond."""
STAGNATION = 0.5
"""A BiCGSTAB round that leaves a row above this fraction of its residual before hands the row
to GMRES for the rounds after it."""
BICGSTAB_ITERATIONS = 2 * RESTART
"""BiCGSTAB iterations at most per refinement round (two operator products each)."""
MAX_RESTARTS = 40
REFINEMENTS = 3
"""Krylov: rounds (GMRES cycles or BiCGSTAB solves) at most, ``MAX_RESTARTS * (1 +
REFINEMENTS)``, each restarted from the float64 residual (usually two: one to
:data:`WORKING_TOL`, one loose correction). LU: float64 residual-correction rounds at most after
the first solve. Either runs only while a policy of the block is above ``TARGET * tol``."""
TARGET = 0.1
"""The rounds stop at ``TARGET * tol`` (a margin below the tolerance every policy must meet)."""
AIM = 0.5
"""A correction cycle aims at ``AIM`` times the reduction its row still needs."""
WORKING_TOL = {jnp.dtype(jnp.float32): 1e-5, jnp.dtype(jnp.float64): 1e-12}
"""Smallest relative 2-norm residual reduction one GMRES cycle aims at in the working precision
(float32 stagnates near 1e-6). The float64 corrections then aim below ``min(TARGET * tol,
WORKING_TOL)``: a tenth of the tolerance in float32, near float64's own accuracy when the
working precision is float64."""


PRECONDITIONERS = ("none", "mean-policy")
"""Right preconditioners of the Krylov solves: none, or :func:`mean_policy_preconditioner`."""
ACCELERATOR_PRECONDITIONER_MAX_STATES = 1024
"""On an accelerator, :func:`default_preconditioner` is ``"mean-policy"`` up to this many states."""
PRECONDITIONER_MAX_STATES = 4096
"""Largest instance :func:`mean_policy_preconditioner` builds a dense ``[S, S]`` inverse for."""
PRECONDITIONER_MAX_CONDITION = 1e8
"""A uniform-policy system whose 1-norm condition number exceeds this (e.g. a singular one: a
multichain uniform policy under average reward) gives the identity as its preconditioner."""


def default_preconditioner(platform: str, num_states: int) -> str:
    """The Krylov preconditioner for sampling on devices of ``platform``: ``"mean-policy"`` on an
    accelerator up to :data:`ACCELERATOR_PRECONDITIONER_MAX_STATES` states, else ``"none"``.

    Measured (bench/RESULTS.md, 2026-11-27): its GEMM ``[B, S] x [S, S]`` per operator product
    costs about what a Kronecker product costs on a CPU core (attention (5, 3), GMRES, blocks of
    32, this repository's 2-core machine: 4.8 ms per block without, 5.6 ms with, although the
    products fell from 26 to 18). A GPU runs the GEMM near its arithmetic peak and the
    memory-bound products far from it: on an H100, BiCGSTAB sampled attention (5, 3) at 1.0e6
    policies/s with it and 8.7e5 without (``evaluate_policies`` 1.07x, at (6, 3) 1.15x), while
    GMRES at (7, 3) (S = 2187, where the GEMM costs more than a product) ran 0.7x-0.9x."""
    return "mean-policy" if platform != "cpu" and num_states <= ACCELERATOR_PRECONDITIONER_MAX_STATES else "none"


def mean_policy_preconditioner(op: T.Transitions, gamma: float | None, *, rows_per_call: int = 256) -> np.ndarray:
    """``Q [S, S]`` (numpy float64): the inverse of the system matrix of the uniform policy
    ``pi(a | s) = 1/A``, in the row convention of :func:`system_matvec` (``matvec(y) = y @ M``,
    ``Q = M^{-1}``), for right preconditioning: the Krylov solvers solve ``E Q y = r`` and take
    ``delta = Q y``, whose residual is the unpreconditioned one. The sampled Dirichlet(1)
    policies scatter around the uniform policy, so ``E Q`` is close to the identity.

    ``M`` is built from ``op``'s own products (``rows_per_call`` unit vectors at a time: no dense
    ``[S, A, S]``) and inverted on the host (LAPACK). A
    system whose 1-norm condition number exceeds :data:`PRECONDITIONER_MAX_CONDITION` gives the
    identity (no preconditioning: ``y @ I`` is exact). At most
    :data:`PRECONDITIONER_MAX_STATES` states (``ValueError`` beyond)."""
    S, A = T.shape_of(op)
    if S > PRECONDITIONER_MAX_STATES:
        raise ValueError(f"op: the mean-policy preconditioner is a dense [S, S] inverse, for at most "
                         f"{PRECONDITIONER_MAX_STATES} states; this operator has {S}")
    rows = min(rows_per_call, S)
    M = np.empty((S + rows, S))  # padded to whole calls (one compilation)
    with precision_scope("float64"):
        op64 = T.astype(op, jnp.float64)
        for first in range(0, S, rows):
            M[first:first + rows] = np.asarray(_uniform_policy_rows(op64, jnp.asarray(first), rows, gamma))
    M = M[:S]
    with np.errstate(all="ignore"):
        try:
            Q = np.linalg.inv(M)
        except np.linalg.LinAlgError:
            return np.eye(S)
        condition = np.linalg.norm(M, 1) * np.linalg.norm(Q, 1)
    return Q if np.isfinite(condition) and condition <= PRECONDITIONER_MAX_CONDITION else np.eye(S)


@partial(jax.jit, static_argnames=("rows", "gamma"))
def _uniform_policy_rows(op64: T.Transitions, first: jax.Array, rows: int, gamma: float | None) -> jax.Array:
    """Rows ``first .. first + rows - 1`` of :func:`mean_policy_preconditioner`'s ``M`` (``[rows,
    S]``; rows past ``S`` are zero)."""
    S, A = T.shape_of(op64)
    unit = (jnp.arange(rows)[:, None] + first == jnp.arange(S)[None, :]).astype(jnp.float64)
    return system_matvec(op64, jnp.full((rows, S, A), 1.0 / A, jnp.float64), gamma)(unit)


def default_solver(platform: str, num_states: int) -> str:
    """The Krylov solver for sampling on devices of ``platform`` (``"cpu"``, ``"gpu"``, ...):
    GMRES on a CPU; on an accelerator BiCGSTAB up to :data:`ACCELERATOR_BICGSTAB_MAX_STATES`
    states, GMRES beyond.

    Measured (bench/RESULTS.md, 2026-11-27): a BiCGSTAB iteration costs two operator products and
    a few vector passes, a GMRES step one product and two passes over its 21-vector basis.
    ``evaluate_policies`` with BiCGSTAB over GMRES on an H100 (Kronecker operator, blocks of
    65,536 / 65,536 / 16,384 / 4,096): attention (4, 3) / (5, 3) / (6, 3) / (7, 3) (S = 81 / 243 /
    729 / 2187) 2.07x / 1.63x / 1.16x / 0.49x, and 1.33x at (5, 3) with the dense operator. On a
    CPU core (blocks of 32) the two are within the noise of each other on attention (1.76x at
    (3, 3) down to 0.79x at (7, 3)) and on Garnets of 100-400 states (0.69x-1.86x), and BiCGSTAB
    is 0.7x with a dense operator at (5, 3), so GMRES stays there (and a CPU's samples stay as
    they were)."""
    return "bicgstab" if platform != "cpu" and num_states <= ACCELERATOR_BICGSTAB_MAX_STATES else "gmres"


def bytes_per_policy(S: int, A: int, method: str) -> int:
    """Bytes of one policy's working arrays in :func:`evaluate_policies` (an estimate, counting
    every array in float64): the policy in two precisions and a few state vectors, plus the
    GMRES basis (``RESTART + 2`` vectors) or the dense system matrix and its LU factors."""
    vectors = 2 * S * A + 8 * S + ((RESTART + 2) * S if method == "krylov" else 2 * S * S)
    return 8 * vectors


class Evaluation(NamedTuple):
    """Evaluated policies (a pytree).

    Attributes:
        rho: ``[B, S]`` float64 state distributions.
        residual: ``[B]`` float64 relative residuals ``||E rho - b||_inf / ||b||_inf``.
    """

    rho: jax.Array
    residual: jax.Array


def system_rhs(mu: jax.Array, gamma: float | None, batch: int) -> jax.Array:
    """``b [B, S]``: ``(1 - gamma) mu``, or ``v = 1/S`` for average reward."""
    S = mu.shape[-1]
    b = jnp.full((S,), 1.0 / S, mu.dtype) if gamma is None else (1.0 - gamma) * mu
    return jnp.broadcast_to(b, (batch, S))


def system_matvec(op: T.Transitions, pi: jax.Array, gamma: float | None):
    """``rho [B, S] -> E rho [B, S]`` for policies ``pi [B, S, A]`` (``E`` as in the module
    docstring); row-wise, one batched operator product per call."""
    S = pi.shape[-2]
    push = T.policy_pusher(op, pi)

    def matvec(rho):
        flow = push(rho)
        if gamma is None:
            return rho - flow + rho.sum(axis=-1, keepdims=True) / S
        return rho - gamma * flow

    return matvec


def system_matrices(P: jax.Array, pi: jax.Array, gamma: float | None) -> jax.Array:
    """Dense ``E [B, S, S]`` (the LU path; ``P [S, A, S]``)."""
    S = P.shape[0]
    P_pi_T = jnp.einsum("bsa,sat->bts", pi, P)
    eye = jnp.eye(S, dtype=P.dtype)
    if gamma is None:
        return eye - P_pi_T + 1.0 / S
    return eye - gamma * P_pi_T


def rhs_scale(mu: jax.Array, gamma: float | None) -> jax.Array:
    """``||b||_inf`` (a scalar: every row of :func:`system_rhs` is the same vector), computed from
    the one vector, not from the broadcast rows (XLA would constant-fold a reduction over them,
    seconds of compilation at large S)."""
    S = mu.shape[-1]
    return jnp.asarray(1.0 / S, mu.dtype) if gamma is None else jnp.max(jnp.abs((1.0 - gamma) * mu))


def relative_residual(matvec64, rho64: jax.Array, b64: jax.Array, bmax: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(r [B, S], ||r||_inf / ||b||_inf [B])`` with ``r = b - E rho`` in float64 (``bmax =
    ||b||_inf``: :func:`rhs_scale`)."""
    r = b64 - matvec64(rho64)
    return r, jnp.max(jnp.abs(r), axis=-1) / bmax


@full_precision_products
def evaluate_policies(op: T.Transitions, op64: T.Transitions, pi: jax.Array, mu: jax.Array, gamma: float | None, *,
                      method: str = "krylov", tol: float = TOL, solver: str = SOLVER,
                      preconditioner: jax.Array | None = None) -> Evaluation:
    """State distributions and float64 residuals of policies ``pi [B, S, A]``.

    Args:
        op: the transition operator in the working precision (float32 or float64).
        op64: the same operator in float64 (for residuals and corrections).
        pi: ``[B, S, A]`` policies (any float dtype; cast to the working precision).
        mu: ``[S]`` initial distribution.
        gamma: discount factor, or ``None`` for average reward (static).
        method: ``"krylov"`` (batched GMRES, any operator form) or ``"lu"`` (dense LU per
            policy; a :class:`~jaxagg.kernels.transitions.DenseTransitions` only).
        tol: relative residual the corrections aim below (a tenth of it, or float64's
            :data:`WORKING_TOL` when working in float64).
        solver: the Krylov solver (``method="krylov"``), one of :data:`SOLVERS`.
        preconditioner: ``Q [S, S]`` (any float dtype, applied in the working precision): the
            Krylov solves run on ``y -> E (Q y)`` and correct by ``Q y``
            (:func:`mean_policy_preconditioner`); ``None`` for none. Not for the LU.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {SOLVERS}, got {solver!r}")
    if jnp.dtype(T.dtype_of(op64)) != jnp.float64 or not jax.config.jax_enable_x64:
        raise ValueError("op64: expected a float64 operator inside a float64 context (precision_scope('float64'))")
    dtype = jnp.dtype(T.dtype_of(op))
    if dtype not in WORKING_TOL:
        raise ValueError(f"op: expected a float32 or float64 operator, got {dtype}")
    B, S = pi.shape[0], pi.shape[-2]
    if preconditioner is not None and (method != "krylov" or preconditioner.shape != (S, S)):
        raise ValueError(f"preconditioner: expected an [{S}, {S}] matrix for the 'krylov' method, got shape "
                         f"{preconditioner.shape} with method {method!r}")
    pi_w, pi64 = pi.astype(dtype), pi.astype(jnp.float64)
    b64 = system_rhs(jnp.asarray(mu, jnp.float64), gamma, B)
    bmax = rhs_scale(jnp.asarray(mu, jnp.float64), gamma)
    matvec64 = system_matvec(op64, pi64, gamma)
    if method == "krylov":
        matvec = system_matvec(op, pi_w, gamma)
    else:
        if not isinstance(op, T.DenseTransitions):
            raise ValueError(f"method: 'lu' needs dense transitions, got {T.form_of(op)}")
        factors = jax.scipy.linalg.lu_factor(system_matrices(op.P, pi_w, gamma))

        def solve(rhs, relative_tol):
            return jax.vmap(jax.scipy.linalg.lu_solve)(factors, rhs)
    working_tol = WORKING_TOL[dtype]
    target = min(tol * TARGET, working_tol)
    if method == "krylov":
        Q = None if preconditioner is None else preconditioner.astype(dtype)
        return _refined_krylov(matvec, matvec64, b64, bmax, dtype, working_tol, target, min(RESTART, S),
                               bicgstab=solver == "bicgstab", preconditioner=Q)

    def correct(state):
        rho, r, residual, rounds = state
        size = jnp.max(jnp.abs(r), axis=-1, keepdims=True)
        needed = (residual > target)[:, None] & (size > 0)
        scaled = jnp.where(needed, r / jnp.where(size > 0, size, 1.0), 0.0)  # rows done: zero rhs, no work
        # a loose solve suffices: the correction only has to shrink the residual below the target
        correction_tol = jnp.clip(0.1 * target / jnp.maximum(residual, target), working_tol, 0.5).astype(dtype)
        rho = rho + jnp.where(needed, solve(scaled.astype(dtype), correction_tol).astype(jnp.float64) * size, 0.0)
        return (rho, *relative_residual(matvec64, rho, b64, bmax), rounds + 1)

    def more(state):
        return jnp.logical_and(state[3] < REFINEMENTS, jnp.any(state[2] > target))

    rho = solve(b64.astype(dtype), working_tol).astype(jnp.float64)
    state = (rho, *relative_residual(matvec64, rho, b64, bmax), jnp.zeros((), jnp.int32))
    rho, _, residual, _ = jax.lax.while_loop(more, correct, state)
    return Evaluation(rho=rho, residual=residual)


def _refined_krylov(matvec, matvec64, b64, bmax, dtype, working_tol, target, restart, *, bicgstab: bool,
                    preconditioner: jax.Array | None = None):
    """Krylov solves restarted from float64 residuals (mixed-precision iterative refinement with
    one solve per round): each round runs one GMRES(``restart``) cycle or one BiCGSTAB solve (at
    most :data:`BICGSTAB_ITERATIONS` iterations) in the working precision on the scaled float64
    residual, adds its correction in float64 and measures the new float64 residual, which is also
    the restart residual (no working-precision residual product). A row's solve aims at ``AIM *
    target / residual`` (at least the working precision's :data:`WORKING_TOL`, at most 1/2), so a
    row at residual 1 first aims at :data:`WORKING_TOL` and then one loose solve usually finishes
    it; rows at the target are frozen (no work, numbers untouched).

    With ``bicgstab``, rows start with BiCGSTAB; a row whose BiCGSTAB round leaves it above
    :data:`STAGNATION` times its residual before (a breakdown, or a spectrum BiCGSTAB's
    one-dimensional minimisation step cannot handle, e.g. a periodic chain) goes on with GMRES
    from then on. Each solver runs only when some row needs it (``lax.cond``), and a row's path
    depends only on its own numbers.

    A ``preconditioner`` ``Q [S, S]`` (working precision) preconditions from the right: the
    solvers run on ``y -> matvec(y @ Q)`` and a round's correction is ``y @ Q`` (row-wise
    products, so rows stay independent)."""
    zeros = jnp.zeros(b64.shape, dtype)
    if preconditioner is not None:
        plain = matvec

        def matvec(y):
            return plain(y @ preconditioner)

    def gmres(scaled, aim, rows):
        return krylov.gmres_cycle(matvec, scaled, restart=restart, tol=aim, frozen=~rows)

    def round_(state):
        rho, r, residual, rounds, on_gmres = state
        size = jnp.max(jnp.abs(r), axis=-1, keepdims=True)
        needed = (residual > target) & (size[:, 0] > 0)
        scaled = jnp.where(needed[:, None], r / jnp.where(size > 0, size, 1.0), 0.0).astype(dtype)
        aim = jnp.clip(AIM * target / jnp.maximum(residual, target), working_tol, 0.5).astype(dtype)
        if bicgstab:
            by_bicgstab, by_gmres = needed & ~on_gmres, needed & on_gmres

            def run_bicgstab():
                return krylov.bicgstab(matvec, scaled, max_iterations=BICGSTAB_ITERATIONS, tol=aim, frozen=~by_bicgstab)

            delta = jnp.where(by_bicgstab[:, None], jax.lax.cond(jnp.any(by_bicgstab), run_bicgstab, lambda: zeros),
                              jax.lax.cond(jnp.any(by_gmres), lambda: gmres(scaled, aim, by_gmres), lambda: zeros))
        else:
            delta = gmres(scaled, aim, needed)
        if preconditioner is not None:
            delta = delta @ preconditioner
        rho = rho + jnp.where(needed[:, None], delta.astype(jnp.float64) * size, 0.0)
        r, new_residual = relative_residual(matvec64, rho, b64, bmax)
        if bicgstab:
            on_gmres = on_gmres | (by_bicgstab & (new_residual > STAGNATION * residual))
        return rho, r, new_residual, rounds + 1, on_gmres

    def more(state):
        return jnp.logical_and(state[3] < MAX_RESTARTS * (1 + REFINEMENTS), jnp.any(state[2] > target))

    # rho = 0: the residual is b itself, no product
    B = b64.shape[0]
    state = (jnp.zeros_like(b64), b64, jnp.ones((B,), b64.dtype), jnp.zeros((), jnp.int32), jnp.zeros((B,), bool))
    rho, _, residual, _, _ = jax.lax.while_loop(more, round_, state)
    return Evaluation(rho=rho, residual=residual)
