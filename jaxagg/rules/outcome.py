"""The result every rule returns: immutable, and it says what it is (the registry name, the
options the rule ran with, every solve it made)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from jaxagg.errors import PolicyError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_of_policy, occupancy_polytope, policy_from_occupancy, policy_mixture, return_bounds
from jaxagg.solvers import highs
from jaxagg.solvers.highs import SolveResult


@dataclass(frozen=True)
class SolverStats:
    """What the solves of one rule cost: count, HiGHS time, wall time of the whole rule (set by
    the registry), worst MIP gap. Immutable: build it with :meth:`of`."""

    solves: int = 0
    solve_time: float = 0.0
    wall_time: float = 0.0
    mip_gap: float = 0.0

    @classmethod
    def of(cls, results: Iterable[SolveResult], wall_time: float = 0.0) -> SolverStats:
        """The statistics of a sequence of solves."""
        results = list(results)
        return cls(solves=len(results), solve_time=float(sum(r.solve_time for r in results)), wall_time=float(wall_time),
                   mip_gap=float(max((r.mip_gap for r in results), default=0.0)))


@dataclass(frozen=True, eq=False)
class Outcome:
    """One collective policy chosen by one rule.

    Attributes:
        rule: the registry name of the rule (``"approval-refine"``, not the function's name).
        occupancy: ``[S*A]`` state-action occupancy in O.
        policy: ``[S, A]`` a stationary policy. When ``mixture`` is ``None`` it achieves
            ``returns`` from ``mu`` (evaluated exactly; the contract, checked when the Outcome is
            made): the policy read from the occupancy, or a deterministic one (below). When a
            mixture is needed it is the mixture's highest-weight component (a deterministic
            policy that does *not* achieve ``returns`` on its own).
        returns: ``[n]`` raw returns ``J_i``.
        normalized: ``[n]`` normalised returns ``u_i`` in [0, 1].
        info: rule-specific results (levels, thresholds, ...), JSON-serialisable.
        params: the options the rule ran with (the registry entry's defaults and the caller's),
            JSON-serialisable (an Outcome or array passed as an option is described, not copied).
        solves: every HiGHS solve the rule made, in order (:class:`~jaxagg.solvers.highs.SolveResult`),
            then those that built the policy mixture, if any.
        stats: totals over ``solves`` and the rule's wall time.
        mixture: ``None``, or ``((w_1, pi_1), ..., (w_K, pi_K))``: weights ``w_k > 0`` summing to 1
            and deterministic stationary policies ``pi_k [S, A]`` (0/1 rows), ``K <= n + 1``, by
            decreasing weight. It is a *policy mixture*: draw ``pi_k`` with probability ``w_k``
            once, at time 0, then follow it forever; its long-run returns from ``mu`` are
            ``sum_k w_k J(pi_k)``, which equal ``returns`` (contract). Only under average reward,
            when the occupancy mixes recurrent classes in proportions no stationary policy
            reaches from ``mu`` (issue 11); the mixture reaches the returns, not necessarily the
            occupancy coordinate by coordinate.
    """

    rule: str
    occupancy: np.ndarray
    policy: np.ndarray
    returns: np.ndarray
    normalized: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    solves: tuple[SolveResult, ...] = ()
    stats: SolverStats = field(default_factory=SolverStats)
    mixture: tuple[tuple[float, np.ndarray], ...] | None = None  # a Mixture (below)

    def to_dict(self, include_policy: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary. With ``include_policy``: ``policy`` ``[S, A]`` and
        ``mixture`` (``None``, or a list of ``{"weight": w, "policy": [S, A]}``). No solve points."""
        data = {
            "rule": self.rule,
            "params": self.params,
            "returns": self.returns.tolist(),
            "normalized": self.normalized.tolist(),
            "info": self.info,
            "stats": asdict(self.stats),
        }
        if include_policy:
            data["policy"] = self.policy.tolist()
            data["mixture"] = None if self.mixture is None else [{"weight": float(w), "policy": pi.tolist()}
                                                                 for w, pi in self.mixture]
        return data


def make_outcome(momdp: MOMDP, rule: str, occupancy: np.ndarray, solves: Iterable[SolveResult] = (), **info: Any) -> Outcome:
    """Assemble an :class:`Outcome` from an occupancy ``[S*A]``: policy (or policy mixture,
    :func:`achieving_policy`, held to the contract of :func:`check_policy_reproduces`), raw and
    normalised returns, and the statistics of ``solves``. ``rule`` names what made it; the
    registry's door replaces it with the registry name and adds the options as ``params``."""
    d = np.clip(np.asarray(occupancy, dtype=np.float64), 0.0, None)
    bounds = return_bounds(momdp)
    returns = outcome_returns(momdp, d)
    solves = tuple(solves)
    policy, mixture, extra, achieved = achieving_policy(momdp, d, returns, solves=solves)
    _require_achieved(momdp, rule, achieved, returns, mixture)
    solves = (*solves, *extra)
    return Outcome(
        rule=rule,
        occupancy=d,
        policy=policy,
        returns=returns,
        normalized=np.clip(bounds.normalize(returns), 0.0, 1.0),
        info=info,
        solves=solves,
        stats=SolverStats.of(solves),
        mixture=mixture,
    )


def outcome_returns(momdp: MOMDP, occupancy: np.ndarray) -> np.ndarray:
    """``[n]``: the raw returns an Outcome of ``occupancy [S*A]`` reports (:func:`make_outcome`):
    ``R d`` of the occupancy clipped at 0, a degenerate agent's at its one value."""
    d = np.clip(np.asarray(occupancy, dtype=np.float64), 0.0, None)
    bounds = return_bounds(momdp)
    return np.where(bounds.degenerate, bounds.lower, momdp.returns(d))


POLICY_RTOL = 1e-6
"""An Outcome's policy (or mixture), evaluated exactly from mu, must reproduce its returns to this
fraction of each agent's return range (:func:`check_policy_reproduces`). Not tighter: the LP
solutions' feasibility tolerance (1e-10 per row) puts states of tiny mass at noisy action ratios,
which moved the exact returns by 1.7e-7 of the range on attention (5, 3) (egalitarian). A
stationary policy that misses by more is replaced by a policy mixture, which reaches the returns
to :data:`jaxagg.solvers.mixture.DECOMPOSITION_TOL`."""

Mixture = tuple[tuple[float, np.ndarray], ...]
"""A policy mixture as an Outcome holds it: ``((w_1, pi_1), ..., (w_K, pi_K))``."""


def achieving_policy(momdp: MOMDP, occupancy: np.ndarray, returns: np.ndarray,
                     solves: tuple[SolveResult, ...] = ()) -> tuple[np.ndarray, Mixture | None, tuple[SolveResult, ...], np.ndarray]:
    """``(policy [S, A], mixture, solves, achieved [n])`` for the ``returns [n]`` of ``occupancy
    [S*A]``, trying the cheap constructions first:

    1. the stationary policy read from the occupancy (uniform where it has no mass);
    2. (multichain O) the same with Puterman's transient rule: states without occupancy mass
       follow the transient flow of the occupancy lifted into O (one LP);
    3. (average reward) the policy mixture a column-generation solve among ``solves`` found
       (``SolveResult.mixture``: its point combines the occupancies of those policies), when its
       policies are deterministic (cut to at most n + 1 components by a small LP);
    4. (average reward) a policy mixture (:func:`jaxagg.polytope.policy_mixture`): with one
       component it is a deterministic stationary policy (``mixture`` None), else ``policy`` is
       its highest-weight component.

    A step is accepted when its exact returns from ``mu`` are within :data:`POLICY_RTOL` of
    ``returns`` (discounted occupancies always pass step 1). ``solves``: the mixture's LPs, if
    any; ``achieved``: the exact returns of what is returned (the mixture's ``sum_k w_k
    J(pi_k)``), which the caller holds to the contract (:func:`check_policy_reproduces`)."""
    S, A = momdp.num_states, momdp.num_actions
    policy = policy_from_occupancy(occupancy, S, A)
    achieved = _returns_of(momdp, policy)
    if momdp.criterion != "average" or _relative_error(momdp, achieved, returns).max() <= POLICY_RTOL:
        return policy, None, (), achieved
    polytope = occupancy_polytope(momdp)
    if polytope.multichain:
        point = polytope.lift(occupancy)
        policy = policy_from_occupancy(occupancy, S, A, transient=point[polytope.dim:])
        achieved = _returns_of(momdp, policy)
        if _relative_error(momdp, achieved, returns).max() <= POLICY_RTOL:
            return policy, None, (), achieved
    for solve in reversed(solves):  # only a solve whose point is this occupancy; its policies cost exact evaluations
        if solve.mixture is None or solve.x is None or not np.allclose(np.clip(solve.x[: occupancy.size], 0.0, None),
                                                                      occupancy, rtol=0.0, atol=1e-12):
            continue
        hinted = _column_mixture(momdp, solve.mixture, returns)
        if hinted is not None:
            return hinted
    found = policy_mixture(momdp, returns)
    order = np.argsort(-found.weights, kind="stable")
    mixture = tuple((float(found.weights[k]), found.policies[k]) for k in order)
    achieved = found.weights @ momdp.returns(found.occupancies)  # exact occupancies from mu
    return mixture[0][1], (mixture if len(mixture) > 1 else None), found.solves, achieved


def _column_mixture(momdp: MOMDP, mixture: tuple | None,
                    returns: np.ndarray) -> tuple[np.ndarray, Mixture | None, tuple, np.ndarray] | None:
    """:func:`achieving_policy`'s answer from a column-generation mixture ``(weights [K],
    policies [K, S, A])`` of deterministic policies whose exact returns from ``mu`` reproduce
    ``returns``; else ``None``. More than n + 1 components are cut to at most n + 1 by a basic
    solution of the small LP ``w >= 0, sum w = 1, sum_k w_k J(pi_k) = J`` (Carathéodory), over
    the components' exact returns."""
    if mixture is None:
        return None
    weights, policies = mixture
    if not np.all((policies == 0.0) | (policies == 1.0)):
        return None
    component_returns = np.stack([_returns_of(momdp, pi) for pi in policies])  # [K, n]
    achieved = weights @ component_returns
    if _relative_error(momdp, achieved, returns).max() > POLICY_RTOL:
        return None
    if len(weights) > momdp.num_agents + 1:
        weights = _basic_weights(component_returns, achieved)
        if weights is None:
            return None
        kept = weights > 0
        weights, policies, component_returns = weights[kept] / weights[kept].sum(), policies[kept], component_returns[kept]
        achieved = weights @ component_returns
        if len(weights) > momdp.num_agents + 1 or _relative_error(momdp, achieved, returns).max() > POLICY_RTOL:
            return None
    order = np.argsort(-weights, kind="stable")
    pairs = tuple((float(weights[k]), np.asarray(policies[k])) for k in order)
    return pairs[0][1], (pairs if len(pairs) > 1 else None), (), achieved


def _basic_weights(component_returns: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """``[K]`` weights of a basic solution of ``w >= 0, sum w = 1, w @ component_returns =
    target`` (at most n + 1 positive; the simplex returns a vertex), or ``None`` if HiGHS finds none."""
    K, n = component_returns.shape
    matrix = np.vstack([np.ones((1, K)), component_returns.T])
    rhs = np.concatenate([[1.0], target])
    result = highs.solve(np.zeros(K), matrix, rhs, rhs, 0.0, highs.INF, sense="min", solver="simplex", raise_on_failure=False,
                         what="policy-mixture weights LP")
    if not result.ok:
        return None
    weights = np.clip(result.x, 0.0, None)
    weights[weights <= 1e-12] = 0.0
    return weights


def check_policy_reproduces(momdp: MOMDP, rule: str, policy: np.ndarray, returns: np.ndarray,
                            mixture: Mixture | None = None) -> None:
    """The contract of every Outcome: its stationary ``policy [S, A]`` or, when given, its policy
    ``mixture`` (``sum_k w_k J(pi_k)``), evaluated exactly from ``mu``
    (:func:`jaxagg.occupancy_of_policy`), gives ``returns [n]`` to :data:`POLICY_RTOL` of each
    agent's return range. Anything else fails loudly here instead of reporting returns that
    nothing achieves.

    Raises:
        PolicyError: the policy (or mixture) misses the returns."""
    achieved = _returns_of(momdp, policy) if mixture is None else mixture_returns(momdp, mixture)
    _require_achieved(momdp, rule, achieved, returns, mixture)


def mixture_returns(momdp: MOMDP, mixture: Mixture) -> np.ndarray:
    """``[n]``: the long-run returns from ``mu`` of a policy mixture, ``sum_k w_k J(pi_k)``, each
    policy evaluated exactly (:func:`jaxagg.occupancy_of_policy`)."""
    return sum(float(w) * _returns_of(momdp, pi) for w, pi in mixture)


def _returns_of(momdp: MOMDP, policy: np.ndarray) -> np.ndarray:
    """``[n]``: the exact returns of a stationary policy ``[S, A]`` from mu."""
    return momdp.returns(occupancy_of_policy(momdp, policy))


def _relative_error(momdp: MOMDP, achieved: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """``[n]``: ``|achieved - returns|`` as fractions of each agent's return range (0 for a
    degenerate agent, whose return is the same under every policy)."""
    bounds = return_bounds(momdp)
    error = np.abs(achieved - returns) / np.maximum(bounds.span, np.finfo(np.float64).tiny)
    return np.where(bounds.degenerate, 0.0, error)


def _require_achieved(momdp: MOMDP, rule: str, achieved: np.ndarray, returns: np.ndarray, mixture: Mixture | None) -> None:
    """Raise :class:`PolicyError` unless ``achieved [n]`` is within :data:`POLICY_RTOL` of ``returns [n]``."""
    error = _relative_error(momdp, achieved, returns)
    if not (error <= POLICY_RTOL).all():
        worst = int(np.argmax(error))
        what = "its stationary policy" if mixture is None else f"its mixture of {len(mixture)} policies"
        raise PolicyError(
            f"{rule}: {what} gives agent {worst} a return of {achieved[worst]:.6g} from mu, not {returns[worst]:.6g} "
            f"({error[worst]:.2g} of its range, more than {POLICY_RTOL:g}): the outcome's returns are not achieved "
            "from mu by any policy or policy mixture jaxagg found")


def relabelled(outcome: Outcome, info: dict[str, Any], before: Iterable[SolveResult] = ()) -> Outcome:
    """A completion's outcome as the result of the rule that asked for it: ``info`` replaces
    the completion's, and the rule's own solves ``before`` come first in ``solves``."""
    solves = (*before, *outcome.solves)
    return replace(outcome, info=info, solves=solves, stats=SolverStats.of(solves))
