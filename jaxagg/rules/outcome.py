"""The result every rule returns: immutable, and it says what it is (the registry name, the
options the rule ran with, every solve it made)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from jaxagg.errors import PolicyError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_of_policy, policy_from_occupancy, return_bounds
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
        policy: ``[S, A]`` stationary policy read from the occupancy.
        returns: ``[n]`` raw returns ``J_i``.
        normalized: ``[n]`` normalised returns ``u_i`` in [0, 1].
        info: rule-specific results (levels, thresholds, ...), JSON-serialisable.
        params: the options the rule ran with (the registry entry's defaults and the caller's),
            JSON-serialisable (an Outcome or array passed as an option is described, not copied).
        solves: every HiGHS solve the rule made, in order (:class:`~jaxagg.solvers.highs.SolveResult`).
        stats: totals over ``solves`` and the rule's wall time.
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

    def to_dict(self, include_policy: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary (the policy ``[S, A]`` only when asked; no solve points)."""
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
        return data


def make_outcome(momdp: MOMDP, rule: str, occupancy: np.ndarray, solves: Iterable[SolveResult] = (), **info: Any) -> Outcome:
    """Assemble an :class:`Outcome` from an occupancy ``[S*A]``: policy, raw and normalised
    returns, and the statistics of ``solves``. ``rule`` names what made it; the registry's door
    replaces it with the registry name and adds the options as ``params``."""
    d = np.clip(np.asarray(occupancy, dtype=np.float64), 0.0, None)
    bounds = return_bounds(momdp)
    returns = np.where(bounds.degenerate, bounds.lower, momdp.returns(d))
    policy = policy_from_occupancy(d, momdp.num_states, momdp.num_actions)
    check_policy_reproduces(momdp, rule, policy, returns)
    solves = tuple(solves)
    return Outcome(
        rule=rule,
        occupancy=d,
        policy=policy,
        returns=returns,
        normalized=np.clip(bounds.normalize(returns), 0.0, 1.0),
        info=info,
        solves=solves,
        stats=SolverStats.of(solves),
    )


POLICY_RTOL = 1e-6
"""An Outcome's policy, evaluated exactly from mu, must reproduce its returns to this fraction of
each agent's return range (:func:`check_policy_reproduces`). Not tighter: the LP solutions'
feasibility tolerance (1e-10 per row) puts states of tiny mass at noisy action ratios, which
moved the exact returns by 1.7e-7 of the range on attention (5, 3) (egalitarian); a policy that
needs randomising across recurrent classes misses by a large fraction (0.25 in issue 11's case)."""


def check_policy_reproduces(momdp: MOMDP, rule: str, policy: np.ndarray, returns: np.ndarray) -> None:
    """The contract of every Outcome: the stationary ``policy [S, A]``, evaluated exactly from
    ``mu`` (:func:`jaxagg.occupancy_of_policy`), gives ``returns [n]`` to :data:`POLICY_RTOL` of
    each agent's return range. A rule whose occupancy no stationary policy reaches from ``mu``
    fails loudly here instead of reporting returns that nothing achieves."""
    bounds = return_bounds(momdp)
    achieved = np.where(bounds.degenerate, bounds.lower, momdp.returns(occupancy_of_policy(momdp, policy)))
    scale = np.maximum(bounds.span, np.finfo(np.float64).tiny)
    error = np.abs(achieved - returns) / scale
    if not (error <= POLICY_RTOL).all():
        worst = int(np.argmax(error))
        raise PolicyError(
            f"{rule}: the stationary policy read from its occupancy gives agent {worst} a return of "
            f"{achieved[worst]:.6g} from mu, not {returns[worst]:.6g} ({error[worst]:.2g} of its range): this occupancy "
            "needs a policy that randomises across recurrent classes, which jaxagg does not construct yet "
            "(average reward on a multichain or communicating instance)")


def relabelled(outcome: Outcome, info: dict[str, Any], before: Iterable[SolveResult] = ()) -> Outcome:
    """A completion's outcome as the result of the rule that asked for it: ``info`` replaces
    the completion's, and the rule's own solves ``before`` come first in ``solves``."""
    solves = (*before, *outcome.solves)
    return replace(outcome, info=info, solves=solves, stats=SolverStats.of(solves))
