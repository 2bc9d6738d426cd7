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
from jaxagg.solvers import mixture as solvers_mixture
from jaxagg.solvers import polytope as solvers_polytope
from jaxagg.solvers import program as solvers_program
from jaxagg.solvers import standard_form as solvers_standard_form
from jaxagg.solvers.polytope import OccupancyPolytope, policy_from_occupancy
from jaxagg.solvers.program import ReturnBounds
from jaxagg.solvers.standard_form import StandardForm
from jaxagg.validation import choice

__all__ = [
    "OccupancyPolytope",
    "ReturnBounds",
    "is_unichain_for_full_support",
    "multichain_polytope",
    "normalized_rewards",
    "occupancy_of_policy",
    "occupancy_polytope",
    "policy_from_occupancy",
    "policy_mixture",
    "return_bounds",
    "standard_form",
    "StandardForm",
]

BOUNDS_METHODS = ("auto", "lp", "policy-iteration")
POLICY_ITERATION_MIN_PAIRS = 2000
"""``return_bounds(method="auto")`` solves the 2n LPs up to this many state-action pairs and uses
certified policy iteration beyond (measured: bench/bounds.py; policy iteration's one-off
compilation, 6-20 s, outweighs the LPs on small instances)."""

_POLYTOPES: weakref.WeakKeyDictionary[MOMDP, OccupancyPolytope] = weakref.WeakKeyDictionary()
_BOUNDS: weakref.WeakKeyDictionary[MOMDP, ReturnBounds] = weakref.WeakKeyDictionary()
_MULTICHAIN: weakref.WeakKeyDictionary[MOMDP, OccupancyPolytope] = weakref.WeakKeyDictionary()


def occupancy_polytope(momdp: MOMDP) -> OccupancyPolytope:
    """The occupancy polytope of ``momdp`` (built once, then cached per instance).

    Under average reward it is the set of long-run occupancies reachable from ``mu``: the flow
    polytope when the MDP has one maximal end component (weakly communicating), the multichain
    dual LP with transient-flow columns when it has several
    (:func:`jaxagg.solvers.polytope.build_polytope`; ``polytope.multichain`` says which).
    """
    _check_momdp(momdp)
    cached = _POLYTOPES.get(momdp)
    if cached is None:
        cached = _POLYTOPES[momdp] = solvers_polytope.build_polytope(momdp.transitions, momdp.mu, momdp.gamma)
    return cached


def standard_form(momdp: MOMDP) -> StandardForm:
    """O of ``momdp`` as ``A z = b, lower <= z <= upper`` with ``A`` of full row rank (the
    redundant average-reward flow rows dropped), the bounds and each column's meaning
    (``("x", s, a)`` occupancy, ``("y", s, a)`` multichain transient flow), for external
    polytope samplers and LP solvers; see :mod:`jaxagg.solvers.standard_form`. Built from the
    cached :func:`occupancy_polytope`."""
    return solvers_standard_form.standard_form(occupancy_polytope(momdp))


def multichain_polytope(momdp: MOMDP) -> OccupancyPolytope:
    """O of an average-reward ``momdp`` in the multichain formulation (cached): O itself on a
    multichain instance, else the same set lifted with transient-flow columns. Its optimal basic
    solutions give optimal deterministic policies (Puterman §9.3:
    :func:`jaxagg.solvers.polytope.policy_of_vertex`)."""
    polytope = occupancy_polytope(momdp)
    if polytope.multichain:
        return polytope
    if momdp.criterion != "average":
        raise ValidationError("momdp: the multichain formulation is for the average-reward criterion")
    cached = _MULTICHAIN.get(momdp)
    if cached is None:
        cached = _MULTICHAIN[momdp] = solvers_polytope.build_polytope(momdp.transitions, momdp.mu, None, multichain=True)
    return cached


def policy_mixture(momdp: MOMDP, returns: np.ndarray) -> solvers_mixture.Mixture:
    """A mixture of at most n + 1 deterministic policies whose long-run returns from ``mu``
    (``sum_k w_k J(pi_k)``, each evaluated exactly) are ``returns [n]`` to
    :data:`jaxagg.solvers.mixture.DECOMPOSITION_TOL` of each agent's return range (average
    reward; see :mod:`jaxagg.solvers.mixture`). Degenerate agents are left out (every policy
    gives them their one return).

    Raises:
        PolicyError: no policy mixture reaches ``returns`` from ``mu``.
    """
    bounds = return_bounds(momdp)
    live = ~bounds.degenerate
    returns = np.asarray(returns, dtype=np.float64)
    return solvers_mixture.decompose(momdp.transitions, momdp.mu, normalized_rewards(momdp)[live], bounds.normalize(returns)[live])


def return_bounds(momdp: MOMDP, method: str = "auto") -> ReturnBounds:
    """``min_O J_i`` and ``max_O J_i`` for every agent, cached per instance (the first call's
    method serves every later call).

    ``method``: ``"lp"`` (2n LPs), ``"policy-iteration"`` (the 2n MDPs solved together by batched
    policy iteration on the transition operator, each certified in float64 by a dual bound;
    any bound whose certificate fails is solved by LP instead; see :mod:`jaxagg.solvers.mdp`),
    or ``"auto"``: LPs up to :data:`POLICY_ITERATION_MIN_PAIRS` state-action pairs, policy
    iteration beyond. ``bounds.method`` and ``bounds.certificates`` record what was done.
    Policy iteration optimises over the flow polytope, which is O only when the MDP has one
    maximal end component: on a multichain average-reward instance ``"auto"`` uses the LPs and
    ``"policy-iteration"`` is refused.

    Warns with :class:`~jaxagg.errors.DegenerateAgentWarning` for agents whose range is empty
    (up to :data:`jaxagg.solvers.program.DEGENERATE_RTOL`); their normalised return is 1.
    """
    choice("method", method, BOUNDS_METHODS)
    cached = _BOUNDS.get(momdp)
    if cached is not None:
        return cached
    _check_momdp(momdp)
    multichain = occupancy_polytope(momdp).multichain
    if method == "auto":
        method = "policy-iteration" if momdp.dim > POLICY_ITERATION_MIN_PAIRS and not multichain else "lp"
    if method == "policy-iteration" and multichain:
        raise ValidationError("method: policy iteration bounds the returns over the flow polytope, which offers returns no "
                              "policy reaches from mu on this multichain average-reward MDP (several maximal end "
                              "components); use method='lp' or 'auto'")
    if method == "lp":
        bounds = solvers_program.return_bounds(occupancy_polytope(momdp), momdp.reward_matrix)
    else:
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
