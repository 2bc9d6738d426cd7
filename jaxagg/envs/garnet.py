"""Seeded random Garnet MOMDPs: each (s, a) reaches ``branching`` random next states."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.validation import dense_transitions, integer_at_least
from jaxagg.validation import seed as check_seed


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
    dense_transitions("states, actions", S, A)
    seed = check_seed("seed", seed)
    if b > S:
        raise ValidationError(f"branching: expected at most states={S}, got {b}")
    if S * A < 2:
        raise ValidationError("states, actions: need at least two state-action pairs for agents to disagree")
    rng = np.random.default_rng(seed)
    targets = np.argsort(rng.random((S, A, S)), axis=-1)[..., :b]  # [S, A, b] distinct states
    weights = rng.dirichlet(np.ones(b), size=(S, A))  # [S, A, b]
    P = np.zeros((S, A, S))
    np.put_along_axis(P, targets, weights, axis=-1)
    R = rng.random((n, S, A))
    info = {"env": "garnet", "states": S, "actions": A, "branching": b, "agents": n, "seed": seed}
    return MOMDP(P=P, R=R, criterion=criterion, gamma=gamma, info=info)
