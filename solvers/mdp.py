"""The 2n return bounds as 2n ordinary MDPs: batched policy iteration with float64 optimality
certificates, the LP as the fallback (DESIGN "Where scale comes from").

``max_O <r, d>`` over the occupancy polytope O (SPEC §1) is an ordinary MDP with reward ``r``
(under average reward O here is the flow polytope, ``build_polytope(..., multichain=False)``:
the set of long-run occupancies only when the MDP has one maximal end component, which is the
only case :func:`jaxagg.return_bounds` sends here)
(``min`` is the MDP with ``-r``). :func:`solve_mdps` solves K of them at once on one transition
operator (dense, sparse or Kronecker-factored; ``jaxagg.kernels.transitions``):

* **evaluation**: batched GMRES (``jaxagg.kernels.krylov.gmres``) on the value systems, products
  with ``policy_pull``: discounted ``(I - gamma P_pi) V = r_pi``; average reward
  ``(I - P_pi + 1 w^T) z = r_pi`` with ``w = 1/S`` (nonsingular for unichain ``P_pi``; then
  ``g = w.z`` and ``z`` is a bias: ``z + g 1 = r_pi + P_pi z``);
* **improvement**: greedy in ``Q = r + gamma P h`` (``pull``), keeping the current action unless
  another is better by more than ``tie = tol * scale / 10``; a row stops when its policy is stable.

**The certificate** (valid for *any* value vector ``h [S]``, derived from O's rows):

* discounted: summing O's rows ``sum_a d(s,a) - gamma sum P(s',a',s) d(s',a') = (1-gamma) mu(s)``
  with weights ``h(s)`` gives ``<d, h - gamma P h> = (1-gamma) mu.h``, hence for every ``d`` in O
  ``J(d) = (1-gamma) mu.h + sum_{s,a} d(s,a) (r + gamma P h - h)(s,a)
  <= (1-gamma) mu.h + max_{s,a} (r + gamma P h - h)(s,a)`` (``d >= 0``, ``sum d = 1``);
* average reward: O's flow rows give ``<d, P h - h> = 0``, hence
  ``J(d) <= max_{s,a} (r + P h - h)(s,a)``.

Both are the objective of O's LP dual at the dual-feasible point built from ``h`` (shifted by a
constant), so by LP duality they are tight at an optimal ``h``. ``upper`` is this bound at the
final value vector; ``lower = <r, d_pi>`` is the return of the returned policy's occupancy,
computed by ``jaxagg.kernels.evaluation.evaluate_policies`` in float64 and checked for membership
in O directly (``residual``). An MDP is **certified** when ``upper - lower <= tol * scale`` and
``residual <= FEASIBILITY_TOL``; ``scale`` is half the range of its rewards,
``(max r - min r) / 2`` (the rewards are centred by ``(max r + min r) / 2`` before solving, which
changes every return by that constant and nothing else, so the tolerance is relative to what
returns can vary by and ignores offsets).

**Multichain greedy policies (average reward).** Instances reaching this code have every
full-support policy unichain, so the start (the uniform policy) is unichain; a deterministic
greedy policy can still have several closed classes. If their gains differ, its value system has
no solution and GMRES reports a large residual: the row then evaluates the mixture
``(pi_old + pi_new) / 2`` instead (its support contains ``pi_old``'s, so every closed set of it
contains ``pi_old``'s recurrent class: it is unichain when ``pi_old`` is), halving towards
``pi_old`` at most :data:`jaxagg.kernels.policy_iteration.MIXING_STEPS` times; it is still an improvement (``Q(s, mix) >= g +
h(s)``). A row that cannot be evaluated stops (``stuck``) and its certificate decides. If the gains
agree the system is consistent and the solution is a valid bias; the final stationary distribution
of such a policy may then be a signed combination of its classes' distributions: its positive part,
renormalised, is a convex combination, in O, with the same return. Nothing here loops forever
(``max_iterations``, bounded GMRES restarts, bounded mixing) and an uncertified row is reported as
such, never as an optimum.

The JAX core (evaluation, improvement, certificates: one compiled program) lives in
:mod:`jaxagg.kernels.policy_iteration`; this module is its numpy door and assembles the bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxagg.errors import ConvergenceError, ShapeError, SolverError, ValidationError
from jaxagg.kernels import policy_iteration
from jaxagg.kernels import transitions as T
from jaxagg.solvers.bounds import DEGENERATE_RTOL, ReturnBounds

TOL = 1e-9
"""Default certification tolerance, relative to ``scale`` (half the reward range)."""
MAX_ITERATIONS = 100
"""Policy evaluations at most per MDP (the first, of the uniform policy, included)."""
FEASIBILITY_TOL = 1e-9
"""Largest membership residual in O (``max |E d - b|``, negativity) of a certified occupancy."""
FALLBACK_SLACK = 1e-6
"""A fallback (LP) value outside the policy-iteration bracket by more than this times the scale
is an inconsistency and raises."""


class MDPSolutions(NamedTuple):
    """K maximisation MDPs solved together (numpy arrays; see the module docstring).

    Attributes:
        value: ``[K]`` the reported optimum: ``lower``, the return of ``occupancy``, which is
            attained (it lies in O); when certified it is within ``tol * scale`` of the optimum.
        lower: ``[K]`` ``<r, occupancy>``: a lower bound on the optimum.
        upper: ``[K]`` the certificate ``(1-gamma) mu.h + max(r + gamma P h - h)`` (average:
            ``max(r + P h - h)``): an upper bound on the optimum for any ``h``.
        gap: ``[K]`` ``upper - lower``.
        certified: ``[K]`` ``gap <= tol * scale`` and ``residual <= FEASIBILITY_TOL``.
        scale: ``[K]`` ``(max r - min r) / 2``.
        policy: ``[K, S, A]`` the final (evaluated) policies.
        occupancy: ``[K, S*A]`` their occupancies ``rho[:, :, None] * policy`` (flat).
        value_vector: ``[K, S]`` the ``h`` of the certificate (for the centred rewards).
        iterations: ``[K]`` policy evaluations each MDP used (the start included).
        mixes: ``[K]`` evaluations of mixed policies (average reward, multichain greedy steps).
        converged: ``[K]`` the policy was stable (no improving action beyond the tie tolerance).
        stuck: ``[K]`` a greedy policy could not be evaluated even after mixing: the row stopped.
        residual: ``[K]`` membership residual of ``occupancy`` in O.
        evaluation_residual: ``[K]`` float64 residual reported by ``evaluate_policies``.
        value_residual: ``[K]`` relative residual of the last value solve.
    """

    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    gap: np.ndarray
    certified: np.ndarray
    scale: np.ndarray
    policy: np.ndarray
    occupancy: np.ndarray
    value_vector: np.ndarray
    iterations: np.ndarray
    mixes: np.ndarray
    converged: np.ndarray
    stuck: np.ndarray
    residual: np.ndarray
    evaluation_residual: np.ndarray
    value_residual: np.ndarray


class BoundCertificate(NamedTuple):
    """How one return bound was obtained.

    Attributes:
        agent: the agent's index.
        sense: ``"max"`` or ``"min"``.
        method: ``"policy-iteration"`` (certified by the float64 certificate) or ``"lp"`` (the
            fallback's occupancy, trusted from the LP solver).
        value: the bound reported in :class:`~jaxagg.solvers.program.ReturnBounds` (the return
            of the reported occupancy).
        lower, upper: an interval that contains the true optimum: for ``max`` the attained value
            and the certificate; for ``min`` the certificate (of ``-R``) and the attained value.
            For ``"lp"`` the attained side is the LP's value and the other side the (failed,
            still valid) policy-iteration certificate.
        gap: ``upper - lower``.
        iterations: policy evaluations used.
    """

    agent: int
    sense: str
    method: str
    value: float
    lower: float
    upper: float
    gap: float
    iterations: int


# ---------------------------------------------------------------- the solver
def solve_mdps(op: T.Transitions, rewards: np.ndarray, mu: np.ndarray, gamma: float | None, *, tol: float = TOL,
               max_iterations: int = MAX_ITERATIONS, start: np.ndarray | None = None,
               restart: int = policy_iteration.RESTART) -> MDPSolutions:
    """Maximise ``<rewards[k], d>`` over O for every ``k``, together, by batched policy iteration.

    Args:
        op: a transition operator (``DenseTransitions``, ``SparseTransitions`` or
            ``KroneckerTransitions``; any float dtype, used in float64).
        rewards: ``[K, S, A]`` one reward per MDP.
        mu: ``[S]`` initial distribution (the discounted polytope's right-hand side; unused by
            the average-reward polytope).
        gamma: discount factor in (0, 1), or ``None`` for average reward (every full-support
            policy must be unichain; multichain greedy policies are handled, module docstring).
        tol: certification tolerance relative to ``scale`` (half the reward range); ``>= 0``.
        max_iterations: policy evaluations at most per MDP (>= 1; 1 evaluates the start).
        start: ``[K, S, A]`` policies to start from (default: uniform). Under average reward a
            start must be unichain: one with full support is, on the instances this serves
            (a warm start mixes a previous policy with the uniform one).
        restart: Krylov dimension of the value solves' GMRES (a larger one evaluates slowly
            mixing policies that the default cannot, at more memory: ``restart * K * S`` floats).

    Returns:
        :class:`MDPSolutions` (numpy). Rows with ``certified`` False are *not* optima; use their
        ``lower``/``upper`` as bounds only.
    """
    S, A = _check_operator(op)
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 3 or rewards.shape[1:] != (S, A) or rewards.shape[0] < 1:
        raise ShapeError(f"rewards: expected [K, {S}, {A}] with K >= 1, got {rewards.shape}")
    if not np.isfinite(rewards).all():
        raise ValidationError("rewards: expected finite values, got NaN or inf")
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape != (S,):
        raise ShapeError(f"mu: expected [{S}], got {mu.shape}")
    if gamma is not None and not 0.0 < float(gamma) < 1.0:
        raise ValidationError(f"gamma: expected None (average reward) or a float in (0, 1), got {gamma!r}")
    gamma = None if gamma is None else float(gamma)
    if not (isinstance(max_iterations, int | np.integer) and max_iterations >= 1):
        raise ValidationError(f"max_iterations: expected an integer >= 1, got {max_iterations!r}")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValidationError(f"tol: expected a finite float >= 0, got {tol!r}")
    if start is not None:
        start = np.asarray(start, dtype=np.float64)
        if start.shape != rewards.shape:
            raise ShapeError(f"start: expected {list(rewards.shape)} policies, got {start.shape}")
        if not (np.isfinite(start).all() and start.min() >= 0 and np.allclose(start.sum(axis=-1), 1.0, atol=1e-9)):
            raise ValidationError("start: expected rows that are probability distributions over actions")
    high, low = rewards.max(axis=(1, 2)), rewards.min(axis=(1, 2))
    centre, scale = (high + low) / 2.0, (high - low) / 2.0
    centred = rewards - centre[:, None, None]
    if not (isinstance(restart, int | np.integer) and restart >= 1):
        raise ValidationError(f"restart: expected an integer >= 1, got {restart!r}")
    out = policy_iteration.solve(op, centred, mu, 0.1 * tol * scale, gamma, max_iterations, start, int(restart))
    gap = out["upper"] - out["lower"]
    certified = np.isfinite(gap) & (gap <= tol * scale) & (out["residual"] <= FEASIBILITY_TOL)
    lower, upper = out["lower"] + centre, out["upper"] + centre
    return MDPSolutions(value=lower, lower=lower, upper=upper, gap=gap, certified=certified, scale=scale, policy=out["pi"],
                        occupancy=out["occupancy"], value_vector=out["h"], iterations=out["iterations"], mixes=out["mixes"],
                        converged=out["converged"], stuck=out["stuck"], residual=out["residual"],
                        evaluation_residual=out["evaluation_residual"], value_residual=out["value_residual"])


def certificate_bound(op: T.Transitions, rewards: np.ndarray, mu: np.ndarray, gamma: float | None, h: np.ndarray) -> np.ndarray:
    """``[K]``: the upper bound on ``max_O <rewards[k], d>`` that the value vectors ``h [K, S]``
    certify (module docstring), in float64. Valid for any ``h``."""
    S, A = _check_operator(op)
    rewards = np.asarray(rewards, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    if rewards.ndim != 3 or rewards.shape[1:] != (S, A) or h.shape != (rewards.shape[0], S):
        raise ShapeError(f"rewards, h: expected [K, {S}, {A}] and [K, {S}], got {rewards.shape} and {h.shape}")
    return policy_iteration.upper_bound(op, rewards, mu, h, gamma)


def return_bounds_by_policy_iteration(
    op: T.Transitions,
    mu: np.ndarray,
    gamma: float | None,
    reward_matrix: np.ndarray,
    *,
    fallback: Callable[[int, str], np.ndarray] | None = None,
    degenerate_rtol: float = DEGENERATE_RTOL,
    tol: float = TOL,
    max_iterations: int = MAX_ITERATIONS,
) -> tuple[ReturnBounds, tuple[BoundCertificate, ...]]:
    """Every agent's ``min_O J_i`` and ``max_O J_i`` (rows of ``reward_matrix [n, S*A]``): the 2n
    MDPs ``+R_i`` and ``-R_i`` solved in one :func:`solve_mdps` call.

    A bound whose certificate fails is taken from ``fallback(agent, sense) -> occupancy [S*A]``
    (``sense`` is ``"min"`` or ``"max"``; the caller passes an LP solve, e.g.
    ``lambda i, s: program.solve_linear(polytope, R[i], sense=s)``); without a fallback a
    :class:`~jaxagg.errors.ConvergenceError` names the agents and senses. Degenerate agents as in
    :func:`jaxagg.solvers.program.return_bounds`.

    Returns:
        ``(ReturnBounds, certificates)``: certificates ordered agent by agent, ``"min"`` then
        ``"max"`` (:class:`BoundCertificate`).
    """
    S, A = _check_operator(op)
    R = np.asarray(reward_matrix, dtype=np.float64)
    if R.ndim != 2 or R.shape[1] != S * A or R.shape[0] < 1:
        raise ShapeError(f"reward_matrix: expected [n, {S * A}] with n >= 1, got {R.shape}")
    n = R.shape[0]
    solved = solve_mdps(op, np.concatenate([R, -R]).reshape(2 * n, S, A), mu, gamma, tol=tol, max_iterations=max_iterations)
    failed = [(i % n, "max" if i < n else "min") for i in np.flatnonzero(~solved.certified)]
    if failed and fallback is None:
        detail = ", ".join(f"agent {i} ({sense}: gap {solved.gap[i if sense == 'max' else n + i]:.3g}, "
                           f"tolerance {tol * solved.scale[i if sense == 'max' else n + i]:.3g})" for i, sense in failed)
        raise ConvergenceError(f"policy iteration did not certify the return bounds of {detail}; pass fallback= (an LP solve)")
    occupancy = {"max": solved.occupancy[:n].copy(), "min": solved.occupancy[n:].copy()}
    method = {(i, sense): "policy-iteration" for i in range(n) for sense in ("min", "max")}
    for i, sense in failed:
        d = np.asarray(fallback(int(i), sense), dtype=np.float64).reshape(-1)
        if d.shape != (S * A,) or not np.isfinite(d).all():
            raise SolverError(f"fallback for agent {i} ({sense}): expected a finite occupancy [{S * A}], got shape {d.shape}")
        occupancy[sense][i] = d
        method[(i, sense)] = "lp"
    upper = np.einsum("ij,ij->i", R, occupancy["max"])
    lower = np.einsum("ij,ij->i", R, occupancy["min"])
    certificates = []
    for i in range(n):
        for sense in ("min", "max"):
            k = i if sense == "max" else n + i
            attained = upper[i] if sense == "max" else lower[i]
            bound = solved.upper[k] if sense == "max" else -solved.upper[k]
            low, high = (attained, bound) if sense == "max" else (bound, attained)
            if method[(i, sense)] == "lp":
                slack = FALLBACK_SLACK * max(solved.scale[k], 1e-300)
                inside = (attained <= bound + slack) if sense == "max" else (attained >= bound - slack)
                pi_attained = solved.lower[k] if sense == "max" else -solved.lower[k]
                better = (attained >= pi_attained - slack) if sense == "max" else (attained <= pi_attained + slack)
                if not (inside and better):
                    raise SolverError(f"fallback for agent {i} ({sense}): its return {attained:.12g} lies outside the "
                                      f"policy-iteration bracket [{min(pi_attained, bound):.12g}, {max(pi_attained, bound):.12g}]")
            certificates.append(BoundCertificate(agent=i, sense=sense, method=method[(i, sense)], value=float(attained),
                                                 lower=float(low), upper=float(high), gap=float(high - low),
                                                 iterations=int(solved.iterations[k])))
    degenerate = upper - lower <= degenerate_rtol * np.abs(R).max(axis=1)
    bounds = ReturnBounds(lower=lower, upper=upper, argmin=occupancy["min"], argmax=occupancy["max"], degenerate=degenerate,
                          method="policy-iteration", certificates=tuple(certificates))
    return bounds, tuple(certificates)


def _check_operator(op) -> tuple[int, int]:
    try:
        T.form_of(op)
    except ValueError as error:
        raise ValidationError(str(error)) from None
    return T.shape_of(op)
