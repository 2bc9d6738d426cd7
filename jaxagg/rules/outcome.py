"""The result every rule returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxagg.momdp import MOMDP
from jaxagg.solvers.highs import SolveResult
from jaxagg.solvers.polytope import policy_from_occupancy, return_bounds


@dataclass
class SolverStats:
    """What the solves of one rule cost: count, HiGHS time, wall time, worst MIP gap."""

    solves: int = 0
    solve_time: float = 0.0
    wall_time: float = 0.0
    mip_gap: float = 0.0

    def record(self, result: SolveResult) -> SolveResult:
        self.solves += 1
        self.solve_time += result.solve_time
        self.mip_gap = max(self.mip_gap, result.mip_gap)
        return result

    def add(self, other: "SolverStats") -> "SolverStats":
        """Count ``other``'s solves (a sub-rule's) in these; returns self."""
        self.solves += other.solves
        self.solve_time += other.solve_time
        self.mip_gap = max(self.mip_gap, other.mip_gap)
        return self


@dataclass(frozen=True, eq=False)
class Outcome:
    """One collective policy chosen by one rule.

    Attributes:
        rule: the registry name of the rule.
        occupancy: ``[S*A]`` state-action occupancy in O.
        policy: ``[S, A]`` stationary policy read from the occupancy.
        returns: ``[n]`` raw returns ``J_i``.
        normalized: ``[n]`` normalised returns ``u_i`` in [0, 1].
        info: rule-specific results (levels, thresholds, ...), JSON-serialisable.
        stats: solver statistics.
    """

    rule: str
    occupancy: np.ndarray
    policy: np.ndarray
    returns: np.ndarray
    normalized: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    stats: SolverStats = field(default_factory=SolverStats)

    def to_dict(self, include_policy: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary (the policy ``[S, A]`` only when asked)."""
        data = {
            "rule": self.rule,
            "returns": self.returns.tolist(),
            "normalized": self.normalized.tolist(),
            "info": self.info,
            "stats": vars(self.stats).copy(),
        }
        if include_policy:
            data["policy"] = self.policy.tolist()
        return data


def make_outcome(momdp: MOMDP, rule: str, occupancy: np.ndarray, stats: SolverStats, **info: Any) -> Outcome:
    """Assemble an :class:`Outcome` from an occupancy: policy, raw and normalised returns."""
    d = np.clip(np.asarray(occupancy, dtype=np.float64), 0.0, None)
    returns = momdp.returns(d)
    return Outcome(
        rule=rule,
        occupancy=d,
        policy=policy_from_occupancy(d, momdp.num_states, momdp.num_actions),
        returns=returns,
        normalized=np.clip(return_bounds(momdp).normalize(returns), 0.0, 1.0),
        info=info,
        stats=stats,
    )
