"""Seeded random Garnet MOMDPs: each (s, a) reaches ``branching`` random next states."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.kernels.transitions import sparse_transitions
from jaxagg.momdp import MOMDP
from jaxagg.validation import integer_at_least
from jaxagg.validation import seed as check_seed

DENSE_DRAW_STATES = 2000
"""Garnets up to this many states are drawn and stored densely (as in jaxagg 0.1); larger ones
are drawn in ``O(S A b)`` memory and stored as sparse transitions."""
MAX_ENTRIES = 10**9
"""Largest ``S * A * (n + b)`` built."""


def garnet(
    states: int = 10,
    actions: int = 3,
    branching: int = 2,
    agents: int = 3,
    seed: int = 0,
    *,
    criterion: str = "average",
    gamma: float | None = None,
) -> MOMDP:
    """A random MOMDP (Garnet: "generalized average reward non-stationary environment test-bench").

    For every (s, a), ``branching`` distinct next states are drawn uniformly and given
    probabilities from Dirichlet(1); every agent's reward ``R[i, s, a]`` is uniform on [0, 1];
    ``mu`` is uniform. Everything comes from ``numpy.random.default_rng(seed)`` in that order.

    Args:
        states, actions: sizes S >= 1 and A >= 1.
        branching: next states per (s, a), 1 <= branching <= S.
        agents: number of reward functions n >= 1.
        criterion, gamma: ``"average"`` (gamma None) or ``"discounted"`` with gamma in (0, 1).
    """
    S = integer_at_least("states", states, minimum=1)
    A = integer_at_least("actions", actions, minimum=1)
    b = integer_at_least("branching", branching, minimum=1)
    n = integer_at_least("agents", agents, minimum=1)
    if S * A * (n + b) > MAX_ENTRIES:
        raise ValidationError(f"states, actions, agents, branching: {S} x {A} x ({n} + {b}) entries; "
                              f"at most {MAX_ENTRIES:.0e} are supported")
    seed = check_seed("seed", seed)
    if b > S:
        raise ValidationError(f"branching: expected at most states={S}, got {b}")
    if S * A < 2:
        raise ValidationError("states, actions: need at least two state-action pairs for agents to disagree")
    rng = np.random.default_rng(seed)
    targets = _distinct_targets(rng, S, A, b)  # [S, A, b] distinct states
    weights = rng.dirichlet(np.ones(b), size=(S, A))  # [S, A, b]
    R = rng.random((n, S, A))
    info = {"env": "garnet", "states": S, "actions": A, "branching": b, "agents": n, "seed": seed}
    if S <= DENSE_DRAW_STATES:
        P = np.zeros((S, A, S))
        np.put_along_axis(P, targets, weights, axis=-1)
        return MOMDP(P=P, R=R, criterion=criterion, gamma=gamma, info=info)
    return MOMDP(P=sparse_transitions(targets, weights), R=R, criterion=criterion, gamma=gamma, info=info)


def _distinct_targets(rng: np.random.Generator, S: int, A: int, b: int) -> np.ndarray:
    """``[S, A, b]`` distinct next states per (s, a), uniformly. Up to :data:`DENSE_DRAW_STATES`
    states by ranking ``S`` uniforms per pair (the draw of jaxagg 0.1, so seeds give the same
    instances); past it by drawing ``b`` states and redrawing repeats (memory ``O(S A b)``)."""
    if S <= DENSE_DRAW_STATES:
        return np.argsort(rng.random((S, A, S)), axis=-1)[..., :b]
    targets = rng.integers(0, S, size=(S, A, b))
    while True:
        ordered = np.sort(targets, axis=-1)
        repeated = (ordered[..., 1:] == ordered[..., :-1]).any(axis=-1)
        if not repeated.any():
            return targets
        targets[repeated] = rng.integers(0, S, size=(int(repeated.sum()), b))
