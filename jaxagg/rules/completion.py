"""Completions (SPEC §3): how a volumetric rule picks one policy among those it treats as equally
good, the welfare optimum among the policies whose returns clear per-agent floors."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import InfeasibleError
from jaxagg.momdp import MOMDP
from jaxagg.rules.base import lift_thresholds
from jaxagg.rules.outcome import Outcome
from jaxagg.rules.welfare import egalitarian, leximin, utilitarian
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
