"""Completions (SPEC §3): how a volumetric rule picks one policy among those it treats as equally
good, the welfare optimum among the policies whose returns clear per-agent floors."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxagg.errors import InfeasibleError
from jaxagg.momdp import MOMDP
from jaxagg.rules.base import floor_bounds, floored_program, lift_thresholds
from jaxagg.rules.outcome import Outcome, outcome_returns
from jaxagg.rules.welfare import egalitarian, leximin, utilitarian, utilitarian_cost, utilitarian_outcome
from jaxagg.solvers.highs import INF, HighsModel
from jaxagg.solvers.program import IPM_MIN_DIM
from jaxagg.validation import choice

COMPLETIONS = {
    "utilitarian-normalized": (utilitarian, True),
    "utilitarian": (utilitarian, False),
    "egalitarian-normalized": (egalitarian, True),
    "egalitarian": (egalitarian, False),
    "leximin-normalized": (leximin, True),
    "leximin": (leximin, False),
}
"""Completion name -> (welfare rule, on normalised returns)."""
LINEAR_COMPLETIONS = ("utilitarian-normalized", "utilitarian")
"""Completions that are one linear objective (a MILP can optimise them directly)."""


def check_completion(completion: str, allowed: tuple[str, ...] | None = None) -> str:
    """``completion`` if it is a known completion (of ``allowed``, when given)."""
    return choice("completion", completion, tuple(COMPLETIONS) if allowed is None else allowed)


def complete_above(momdp: MOMDP, thresholds: np.ndarray, completion: str) -> Outcome:
    """:func:`complete_within` the lifted ``thresholds`` (:func:`~jaxagg.rules.base.lift_thresholds`);
    if that set is empty (the thresholds are tight: a single point), within the thresholds
    themselves."""
    try:
        return complete_within(momdp, lift_thresholds(momdp, thresholds), completion)
    except InfeasibleError:
        return complete_within(momdp, thresholds, completion)


def complete_within(momdp: MOMDP, floors: np.ndarray, completion: str) -> Outcome:
    """The ``completion`` welfare optimum among policies with ``J_i >= floors[i]`` for all i."""
    function, normalized = COMPLETIONS[check_completion(completion)]
    return function(momdp, normalized=normalized, floors=floors)


class Candidate(NamedTuple):
    """A completion before its Outcome is built: ``returns [n]`` (exactly the Outcome's) and
    ``finish()``, which builds the Outcome (its policy, or policy mixture, can cost several
    LPs: build it only for the candidate kept)."""

    returns: np.ndarray
    finish: Callable[[], Outcome]


class Completer:
    """:func:`complete_above` for many threshold vectors of one instance (Borda's candidates).

    A linear completion on a polytope below :data:`~jaxagg.solvers.program.IPM_MIN_DIM`
    coordinates keeps one model, warm-started from its last basis, in which only the floor rows'
    bounds change: a candidate near the last one costs a few dual simplex pivots, not a cold
    LP (about 0.35 s each on attention (5, 3)). The outcome is the same LP's optimum
    (:func:`~jaxagg.rules.welfare.utilitarian_outcome`). Other completions, and larger polytopes
    (where a cold LP goes to the interior point method), call :func:`complete_above`."""

    def __init__(self, momdp: MOMDP, completion: str) -> None:
        self.momdp = momdp
        self.completion = check_completion(completion)
        self.normalized = COMPLETIONS[self.completion][1]
        self._model: HighsModel | None = None
        self._program = None

    def above(self, thresholds: np.ndarray) -> Outcome:
        """:func:`complete_above` ``thresholds [n]`` (raw returns; ``-inf``: no floor)."""
        return self.candidate(thresholds).finish()

    def candidate(self, thresholds: np.ndarray) -> Candidate:
        """The completion above ``thresholds [n]`` as a :class:`Candidate` (its returns now, its
        Outcome on request)."""
        if self.completion not in LINEAR_COMPLETIONS or self.momdp.dim >= IPM_MIN_DIM:
            outcome = complete_above(self.momdp, thresholds, self.completion)
            return Candidate(outcome.returns, lambda: outcome)
        if self._model is None:
            self._program = floored_program(self.momdp, np.full(self.momdp.num_agents, -INF))
            self._model = self._program.build(utilitarian_cost(self.momdp, self.normalized), sense="max", what="utilitarian LP")
        result = self._solve(lift_thresholds(self.momdp, thresholds), raise_on_failure=False)
        if not result.ok:  # tight thresholds: within the thresholds themselves, as complete_above does
            result = self._solve(np.asarray(thresholds, dtype=np.float64), raise_on_failure=True)
        occupancy = self._program.occupancy(result)
        return Candidate(outcome_returns(self.momdp, occupancy),
                         lambda: utilitarian_outcome(self.momdp, self.normalized, occupancy, [result]))

    def _solve(self, floors: np.ndarray, raise_on_failure: bool):
        rows = np.arange(self._program.polytope.E.shape[0], self._program.num_rows)
        self._model.set_row_bounds(rows, floor_bounds(self.momdp, floors), INF)
        return self._model.solve(raise_on_failure=raise_on_failure)
