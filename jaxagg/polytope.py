"""The occupancy polytope of a MOMDP and what it gives: exact policy <-> occupancy maps and every
agent's return range (SPEC §1). The MOMDP-level door to :mod:`jaxagg.solvers.polytope`, which
works on arrays: O and the return bounds are built once per instance and cached (weakly, so they
go when the MOMDP goes)."""

from __future__ import annotations

import warnings
import weakref

import numpy as np

from jaxagg.errors import DegenerateAgentWarning, ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.solvers import mdp as solvers_mdp
from jaxagg.solvers import polytope as solvers_polytope
from jaxagg.solvers import program as solvers_program
from jaxagg.solvers.polytope import OccupancyPolytope, policy_from_occupancy
from jaxagg.solvers.program import ReturnBounds
from jaxagg.validation import choice

__all__ = [
    "OccupancyPolytope",
    "ReturnBounds",
    "is_unichain_for_full_support",
    "normalized_rewards",
    "occupancy_of_policy",
    "occupancy_polytope",
    "policy_from_occupancy",
    "return_bounds",
]

BOUNDS_METHODS = ("auto", "lp", "policy-iteration")
POLICY_ITERATION_MIN_PAIRS = 2000
"""``return_bounds(method="auto")`` solves the 2n LPs up to this many state-action pairs and uses
certified policy iteration beyond (measured: bench/bounds.py; policy iteration's one-off
compilation, 6-20 s, outweighs the LPs on small instances)."""

_POLYTOPES: weakref.WeakKeyDictionary[MOMDP, OccupancyPolytope] = weakref.WeakKeyDictionary()
_BOUNDS: weakref.WeakKeyDictionary[MOMDP, ReturnBounds] = weakref.WeakKeyDictionary()


def occupancy_polytope(momdp: MOMDP) -> OccupancyPolytope:
    """The occupancy polytope of ``momdp`` (built once, then cached per instance).

    Raises:
        ValidationError: an average-reward instance with several maximal end components (see
            :func:`check_average_reward_structure`).
    """
    _check_momdp(momdp)
    cached = _POLYTOPES.get(momdp)
    if cached is None:
        check_average_reward_structure(momdp)
        cached = _POLYTOPES[momdp] = solvers_polytope.build_polytope(momdp.transitions, momdp.mu, momdp.gamma)
    return cached


def check_average_reward_structure(momdp: MOMDP) -> None:
    """Refuse an average-reward instance that is not weakly communicating.

    Under the average-reward criterion O is the set of long-run occupancies, which jaxagg builds
    from the flow equations alone. That is exact when the MDP has one maximal end component
    (weakly communicating: every policy ends up in the same set of mutually reachable states,
    whatever ``mu``). With several, which ones a policy can reach depends on ``mu``, and the flow
    equations would offer returns that no policy reaches from ``mu``; jaxagg refuses such an
    instance rather than answer wrongly. The discounted criterion has no such restriction.
    """
    if momdp.criterion != "average":
        return
    components = np.unique(solvers_polytope.maximal_end_components(momdp.transitions))
    components = components[components >= 0]
    if components.size > 1:
        raise ValidationError(
            f"momdp: under the average-reward criterion this MDP has {components.size} maximal end components "
            "(sets of states some policy never leaves that cannot reach one another), so the returns a policy can reach "
            "depend on mu; jaxagg supports average reward only for weakly communicating MDPs (one component) so far. "
            "Use the discounted criterion (gamma close to 1) instead")


def return_bounds(momdp: MOMDP, method: str = "auto") -> ReturnBounds:
    """``min_O J_i`` and ``max_O J_i`` for every agent, cached per instance (the first call's
    method serves every later call).

    ``method``: ``"lp"`` (2n LPs), ``"policy-iteration"`` (the 2n MDPs solved together by batched
    policy iteration on the transition operator, each certified in float64 by a dual bound;
    any bound whose certificate fails is solved by LP instead; see :mod:`jaxagg.solvers.mdp`),
    or ``"auto"``: LPs up to :data:`POLICY_ITERATION_MIN_PAIRS` state-action pairs, policy
    iteration beyond. ``bounds.method`` and ``bounds.certificates`` record what was done.

    Warns with :class:`~jaxagg.errors.DegenerateAgentWarning` for agents whose range is empty
    (up to :data:`jaxagg.solvers.program.DEGENERATE_RTOL`); their normalised return is 1.
    """
    choice("method", method, BOUNDS_METHODS)
    cached = _BOUNDS.get(momdp)
    if cached is not None:
        return cached
    _check_momdp(momdp)
    if method == "auto":
        method = "policy-iteration" if momdp.dim > POLICY_ITERATION_MIN_PAIRS else "lp"
    if method == "lp":
        bounds = solvers_program.return_bounds(occupancy_polytope(momdp), momdp.reward_matrix)
    else:
        check_average_reward_structure(momdp)

        def by_lp(agent: int, sense: str) -> np.ndarray:
            return solvers_program.solve_linear(occupancy_polytope(momdp), momdp.reward_matrix[agent], sense=sense,
                                                what=f"{sense}imum return LP of agent {agent}")

        bounds, _ = solvers_mdp.return_bounds_by_policy_iteration(momdp.transitions, momdp.mu, momdp.gamma, momdp.reward_matrix,
                                                                  fallback=by_lp)
    if bounds.degenerate.any():
        warnings.warn(
            f"agent(s) {np.flatnonzero(bounds.degenerate).tolist()} get the same return from every policy; "
            "their normalised return is set to 1",
            DegenerateAgentWarning,
            stacklevel=2,
        )
    _BOUNDS[momdp] = bounds
    return bounds


def cached_bounds(momdp: MOMDP) -> ReturnBounds | None:
    """The return bounds already computed for ``momdp`` (None if none are)."""
    return _BOUNDS.get(momdp)


def adopt_bounds(momdp: MOMDP, bounds: ReturnBounds, fingerprint: str) -> bool:
    """Use ``bounds`` computed for the instance with ``fingerprint`` (e.g. by a sweep's driver,
    on its own copy of the instance) as ``momdp``'s, so that they are not solved again. Adopted
    only if ``momdp`` has that fingerprint, none are cached yet and the shapes fit; returns
    whether they were."""
    shapes_fit = (bounds.lower.shape == bounds.upper.shape == (momdp.num_agents,)
                  and bounds.argmax.shape == bounds.argmin.shape == (momdp.num_agents, momdp.dim))
    if momdp in _BOUNDS or not shapes_fit or momdp.fingerprint != fingerprint:
        return False
    _BOUNDS[momdp] = bounds
    return True


def normalized_rewards(momdp: MOMDP) -> np.ndarray:
    """``[n, S*A]`` rewards whose returns are the normalised returns: ``u_i(d) = W[i] @ d`` with
    ``W[i] = (R_i - min_O J_i) / (max_O J_i - min_O J_i)`` (every occupancy sums to 1, so the
    shift folds into the rewards). In [0, 1] on O whatever the scale of R; 0 for a degenerate
    agent (whose normalised return is defined as 1)."""
    bounds = return_bounds(momdp)
    W = (momdp.reward_matrix - bounds.lower[:, None]) / bounds.span[:, None]
    return np.where(bounds.degenerate[:, None], 0.0, W)


def occupancy_of_policy(momdp: MOMDP, policy: np.ndarray) -> np.ndarray:
    """The exact (float64) occupancy ``[S*A]`` of a stationary policy ``[S, A]`` started from
    ``mu`` (discounted, or the Cesàro limit under average reward, multichain included)."""
    _check_momdp(momdp)
    return solvers_polytope.occupancy_of_policy(momdp.transitions, momdp.mu, momdp.gamma, policy)


def is_unichain_for_full_support(momdp: MOMDP) -> bool:
    """Whether every full-support policy of ``momdp`` has a single recurrent class."""
    return solvers_polytope.is_unichain_for_full_support(momdp.transitions)


def _check_momdp(momdp: object) -> None:
    if not isinstance(momdp, MOMDP):
        raise ValidationError(f"momdp: expected a jaxagg.MOMDP, got {type(momdp).__name__}")
