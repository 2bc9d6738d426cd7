"""Every agent's return range over the occupancy polytope: the result type both ways of computing
it share (2n LPs, :func:`jaxagg.solvers.program.return_bounds`; 2n MDPs by certified policy
iteration, :func:`jaxagg.solvers.mdp.return_bounds_by_policy_iteration`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEGENERATE_RTOL = 1e-9
"""An agent whose ``max_O J - min_O J`` is at most this times ``max |R|`` is degenerate."""


@dataclass(frozen=True, eq=False)
class ReturnBounds:
    """Every agent's return range over O, with the occupancies that attain it.

    Attributes:
        lower, upper: ``[n]`` ``min_O J_i`` and ``max_O J_i``.
        argmin, argmax: ``[n, S*A]`` occupancies attaining them.
        degenerate: ``[n]`` agents whose return is (numerically) constant over O.
        method: ``"lp"`` (2n LPs) or ``"policy-iteration"`` (:mod:`jaxagg.solvers.mdp`).
        certificates: for policy iteration, one certificate per agent and sense (its bracket
            ``[lower, upper]`` around the optimum and how it was found).
    """

    lower: np.ndarray
    upper: np.ndarray
    argmin: np.ndarray
    argmax: np.ndarray
    degenerate: np.ndarray
    method: str = "lp"
    certificates: tuple = ()

    @property
    def span(self) -> np.ndarray:
        """``upper - lower``, with 1 for degenerate agents so that divisions are safe."""
        return np.where(self.degenerate, 1.0, self.upper - self.lower)

    def normalize(self, returns: np.ndarray) -> np.ndarray:
        """``u_i = (J_i - min J_i) / (max J_i - min J_i)``; 1 for degenerate agents. ``[..., n]``."""
        u = (np.asarray(returns, dtype=np.float64) - self.lower) / self.span
        return np.where(self.degenerate, 1.0, u)
