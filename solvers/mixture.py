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
3. pricing: ``max lambda.W d`` over the policies' long-run occupancies from ``mu``, by exact
   multichain policy iteration (:func:`jaxagg.solvers.polytope.gain_optimal_policy`, started
   from the policy greedy for the immediate reward): a deterministic policy whose gain is
   optimal from every state, so from ``mu`` too. Its exact occupancy from ``mu`` is a new
   column strictly beyond every earlier one in direction ``lambda`` (the target is reachable, so
   the optimum is at least ``lambda.target``); when it is not, no policy goes beyond the ones
   found, and the target is out of reach. (Until 2026-11-27 the pricing was the LP over the
   multichain formulation, 2 x S*A columns, by the simplex; on attention (7, 3) HiGHS stopped on
   it with status 'Not Set'. Policy iteration takes about 0.2 s per direction there.)

Each round adds a vertex not seen before, so it ends (finitely many vertices); the final master
solution is basic (simplex), hence at most ``n + 1`` nonzero weights. The master and separation
LPs go through :mod:`jaxagg.solvers.highs`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from jaxagg.errors import PolicyError, ShapeError
from jaxagg.solvers.highs import INF, SolveResult, solve
from jaxagg.solvers.polytope import gain_optimal_policy, occupancy_of_policy, sizes_of, transition_matrix

DECOMPOSITION_TOL = 1e-9
"""The target returns must lie within this L1 distance, in unit scale (fractions of each agent's
return range), of the mixture's exact returns."""
MAX_ROUNDS = 200
"""Pricing rounds at most per decomposition (each adds one deterministic policy)."""
MIN_WEIGHT = 1e-13
"""Weights at most this are dropped from the final mixture (then the rest renormalised)."""


class Mixture(NamedTuple):
    """A policy mixture: pick ``policies[k]`` with probability ``weights[k]`` at time 0.

    Attributes:
        weights: ``[K]`` positive, summing to 1 (``K <= n + 1``).
        policies: ``[K, S, A]`` deterministic stationary policies (0/1 rows).
        occupancies: ``[K, S*A]`` their exact long-run occupancies from ``mu``.
        distance: L1 distance, in unit scale, between the target and ``sum_k w_k W d_k``.
        rounds: pricing rounds (policy iterations).
        solves: every HiGHS solve made (master and separation LPs), in order.
    """

    weights: np.ndarray
    policies: np.ndarray
    occupancies: np.ndarray
    distance: float
    rounds: int
    solves: tuple[SolveResult, ...]


def decompose(P, mu: np.ndarray, W: np.ndarray, target: np.ndarray, *, tol: float = DECOMPOSITION_TOL,
              max_rounds: int = MAX_ROUNDS) -> Mixture:
    """A mixture of deterministic policies whose exact returns from ``mu`` are within ``tol``
    (L1, unit scale) of ``target`` (module docstring; average reward).

    Args:
        P: the transitions (dense ``[S, A, S]`` or an operator).
        mu: ``[S]`` initial distribution.
        W: ``[n, S*A]`` unit-scale rewards (each agent's return range about [0, 1]).
        target: ``[n]`` target returns ``W d`` of some d in O.
        tol: the L1 distance at which to stop.
        max_rounds: pricing rounds at most.

    Raises:
        PolicyError: the target is not reachable (no policy goes beyond the ones found in the
            direction separating it from them: it lies outside O's returns), or ``max_rounds``
            rounds did not reach ``tol``.
    """
    S, A = sizes_of(P)
    W = np.asarray(W, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != S * A or target.shape != (W.shape[0],):
        raise ShapeError(f"W, target: expected [n, {S * A}] and [n], got {W.shape} and {target.shape}")
    P = transition_matrix(P)  # once: every round evaluates policies exactly on it
    solves: list[SolveResult] = []
    policies, occupancies = [], []

    def add_vertex(direction: np.ndarray) -> np.ndarray:
        cost = direction @ W
        greedy = np.eye(A)[cost.reshape(S, A).argmax(axis=1)]
        policy = gain_optimal_policy(P, cost, greedy)
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
        column = add_vertex(direction)
        if direction @ column + theta <= 0.0:
            raise PolicyError(f"policy mixture: the target returns lie {distance:.3g} (L1, in fractions of the return ranges) "
                              "outside every policy's reach from mu: no deterministic policy goes beyond the ones found")
        columns.append(column)
    raise PolicyError(f"policy mixture: {max_rounds} pricing rounds did not bring the target within {tol:g} of the policies' "
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
