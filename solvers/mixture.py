"""Policy mixtures that reach any point of the average-reward occupancy polytope from ``mu``.

Under average reward a point of O may need randomisation *across* recurrent classes, which no
stationary policy gives (issue 11: a communicating MDP whose egalitarian optimum spends half the
time in each of two recurrent classes). O's projection onto the occupancy is a polytope whose
vertices are the long-run occupancies from ``mu`` of deterministic stationary policies
(Puterman §9.3: read from a basic solution of the multichain dual LP,
:func:`jaxagg.solvers.polytope.deterministic_policy_of_vertex`). So every point is reached by a
**policy mixture**: draw policy ``pi_k`` with probability ``w_k`` once, at time 0, then follow it;
its long-run returns are ``sum_k w_k J(pi_k)``.

:func:`decompose` finds such a mixture for target *returns* (Carathéodory in return space, by
column generation), so that at most ``n + 1`` policies carry weight:

1. master: ``delta = min |sum_k w_k r_k - target|_1`` over ``w >= 0, sum w = 1`` (the generated
   policies' exact returns ``r_k``, in unit scale); stop when ``delta <= tol``;
2. separation: the master's dual ``max lambda.target + theta`` s.t. ``lambda.r_k + theta <= 0``,
   ``|lambda| <= 1`` has the value ``delta > 0``, so ``lambda`` separates the target from the hull
   of the ``r_k``;
3. pricing: ``max lambda.W d`` over O by the simplex (a basic solution; one HiGHS model whose
   costs change each round, warm-started from the last basis by the primal simplex), its deterministic policy
   (:func:`jaxagg.solvers.polytope.policy_of_vertex`), evaluated exactly from ``mu``, is a new
   column strictly beyond every earlier one in direction ``lambda`` (the target is reachable, so
   the optimum is at least ``lambda.target``). What the column needs is that policy's
   optimality for ``lambda.W``, not that its occupancy be the vertex's d (a basic solution can
   randomise at a state): when its exact value falls short of the LP optimum (by
   :data:`OPTIMALITY_TOL`) or of the separating direction, multichain policy iteration from it
   (:func:`jaxagg.solvers.polytope.gain_optimal_policy`) gives a gain-optimal one.

Each round adds a vertex not seen before, so it ends (finitely many vertices); the final master
solution is basic (simplex), hence at most ``n + 1`` nonzero weights. Every LP goes through
:mod:`jaxagg.solvers.highs`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from jaxagg.errors import PolicyError, ShapeError, ValidationError
from jaxagg.solvers.highs import INF, SolveResult, solve
from jaxagg.solvers.polytope import OccupancyPolytope, gain_optimal_policy, occupancy_of_policy, policy_of_vertex, transition_matrix
from jaxagg.solvers.program import OccupancyProgram

DECOMPOSITION_TOL = 1e-9
"""The target returns must lie within this L1 distance, in unit scale (fractions of each agent's
return range), of the mixture's exact returns."""
MAX_ROUNDS = 200
"""Pricing LPs at most per decomposition (each adds one deterministic policy)."""
OPTIMALITY_TOL = 1e-7
"""A pricing policy whose exact objective falls short of the LP's by more than this (relative to
``max(1, |objective|)``) is replaced by a gain-optimal one (policy iteration from it)."""
MIN_WEIGHT = 1e-13
"""Weights at most this are dropped from the final mixture (then the rest renormalised)."""


class Mixture(NamedTuple):
    """A policy mixture: pick ``policies[k]`` with probability ``weights[k]`` at time 0.

    Attributes:
        weights: ``[K]`` positive, summing to 1 (``K <= n + 1``).
        policies: ``[K, S, A]`` deterministic stationary policies (0/1 rows).
        occupancies: ``[K, S*A]`` their exact long-run occupancies from ``mu``.
        distance: L1 distance, in unit scale, between the target and ``sum_k w_k W d_k``.
        rounds: pricing LPs solved.
        solves: every HiGHS solve made (pricing and master LPs), in order.
    """

    weights: np.ndarray
    policies: np.ndarray
    occupancies: np.ndarray
    distance: float
    rounds: int
    solves: tuple[SolveResult, ...]


def decompose(polytope: OccupancyPolytope, P, mu: np.ndarray, W: np.ndarray, target: np.ndarray, *,
              tol: float = DECOMPOSITION_TOL, max_rounds: int = MAX_ROUNDS) -> Mixture:
    """A mixture of deterministic policies whose exact returns from ``mu`` are within ``tol``
    (L1, unit scale) of ``target`` (module docstring).

    Args:
        polytope: O of ``P`` and ``mu`` in the multichain formulation (average reward, built with
            ``build_polytope(P, mu, None, multichain=True)`` or by default on a multichain MDP):
            its basic solutions give deterministic policies whose occupancy from ``mu`` is their d.
        P: the transitions (dense ``[S, A, S]`` or an operator).
        mu: ``[S]`` initial distribution.
        W: ``[n, S*A]`` unit-scale rewards (each agent's return range about [0, 1]).
        target: ``[n]`` target returns ``W d`` of some d in O.
        tol: the L1 distance at which to stop.
        max_rounds: pricing LPs at most.

    Raises:
        PolicyError: the target is not reachable (no vertex of O separates it from the policies
            found: it lies outside O's returns), or ``max_rounds`` rounds did not reach ``tol``.
    """
    if polytope.criterion != "average" or not polytope.multichain:
        raise ValidationError("polytope: expected the multichain formulation of an average-reward O "
                              "(build_polytope(P, mu, None, multichain=True))")
    W = np.asarray(W, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != polytope.dim or target.shape != (W.shape[0],):
        raise ShapeError(f"W, target: expected [n, {polytope.dim}] and [n], got {W.shape} and {target.shape}")
    P = transition_matrix(P)  # once: every round evaluates policies exactly on it
    program = OccupancyProgram(polytope)
    solves: list[SolveResult] = []
    policies, occupancies = [], []

    # the pricing LP is built once; each round changes only its costs, so the primal simplex
    # starts from the last round's (still feasible) basis
    pricing = program.build(np.ones(polytope.dim), "max", solver="simplex", simplex="primal", what="mixture pricing LP")

    def add_vertex(direction: np.ndarray, theta: float | None = None) -> np.ndarray:
        cost = direction @ W
        pricing.set_cost(program.full_cost(cost))
        result = pricing.solve()
        solves.append(result)
        policy, occupancy, _ = policy_of_vertex(P, mu, program.point(result))
        value = cost @ occupancy
        if value < result.objective - OPTIMALITY_TOL * max(1.0, abs(result.objective)) or (theta is not None and value + theta <= 0.0):
            policy = gain_optimal_policy(P, cost, policy)
            occupancy = occupancy_of_policy(P, mu, None, policy)
        policies.append(policy)
        occupancies.append(occupancy)
        return W @ occupancy

    columns = [add_vertex(np.ones(W.shape[0]))]
    for rounds in range(1, max_rounds + 1):
        weights, distance = _closest_mixture(np.array(columns), target, solves)
        if distance <= tol:
            keep = weights > MIN_WEIGHT
            return Mixture(weights=weights[keep] / weights[keep].sum(), policies=np.array(policies)[keep],
                           occupancies=np.array(occupancies)[keep], distance=distance, rounds=rounds, solves=tuple(solves))
        direction, theta = _separating_direction(np.array(columns), target, solves)
        column = add_vertex(direction, theta)
        if direction @ column + theta <= 0.0:
            raise PolicyError(f"policy mixture: the target returns lie {distance:.3g} (L1, in fractions of the return ranges) "
                              "outside every policy's reach from mu: no deterministic policy goes beyond the ones found")
        columns.append(column)
    raise PolicyError(f"policy mixture: {max_rounds} pricing LPs did not bring the target within {tol:g} of the policies' "
                      f"returns (distance {distance:.3g})")


def _closest_mixture(columns: np.ndarray, target: np.ndarray, solves: list) -> tuple[np.ndarray, float]:
    """``(w [K], delta)``: a basic minimiser of ``|columns.T w - target|_1`` over the simplex
    (``columns [K, n]``); the master LP, by the simplex so that at most n + 1 weights are nonzero."""
    K, n = columns.shape
    identity = sp.identity(n, format="csc")
    matrix = sp.vstack([sp.hstack([sp.csc_matrix(columns.T), identity, -identity]),
                        sp.hstack([sp.csc_matrix(np.ones((1, K))), sp.csc_matrix((1, 2 * n))])], format="csc")
    rhs = np.concatenate([target, [1.0]])
    cost = np.concatenate([np.zeros(K), np.ones(2 * n)])
    result = solve(cost, matrix, rhs, rhs, 0.0, INF, sense="min", solver="simplex", what="mixture master LP")
    solves.append(result)
    weights = np.clip(result.x[:K], 0.0, None)
    return weights, float(result.x[K:].sum())


def _separating_direction(columns: np.ndarray, target: np.ndarray, solves: list) -> tuple[np.ndarray, float]:
    """``(lambda [n], theta)`` of the master's dual: ``max lambda.target + theta`` s.t.
    ``columns @ lambda + theta <= 0``, ``-1 <= lambda <= 1``; its value is the master's distance."""
    K, n = columns.shape
    matrix = sp.csc_matrix(np.hstack([columns, np.ones((K, 1))]))
    cost = np.concatenate([target, [1.0]])
    lower = np.concatenate([-np.ones(n), [-INF]])
    upper = np.concatenate([np.ones(n), [INF]])
    result = solve(cost, matrix, np.full(K, -INF), np.zeros(K), lower, upper, sense="max", solver="simplex",
                   what="mixture separation LP")
    solves.append(result)
    return result.x[:n], float(result.x[n])
