"""Tiny instances with known answers, for oracle tests and examples."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ShapeError
from jaxagg.momdp import MOMDP


def bandit(rewards: np.ndarray) -> MOMDP:
    """One state, ``m`` actions: O is the probability simplex over actions.

    Args:
        rewards: ``[n, m]`` reward of each agent for each action (m >= 2).

    Any criterion gives the same polytope here; the average-reward one is used.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ShapeError(f"rewards: expected shape [n, m] with m >= 2 actions, got {r.shape}")
    m = r.shape[1]
    return MOMDP(
        P=np.ones((1, m, 1)),
        R=r[:, None, :],
        criterion="average",
        action_names=tuple(f"arm {a}" for a in range(m)),
        info={"env": "bandit", "arms": m},
    )


def two_state_chain(p_stay: float = 0.8, *, criterion: str = "average", gamma: float | None = None) -> MOMDP:
    """Two states, two actions (``stay``, ``switch``), two agents who each prefer one state.

    ``stay`` keeps the state with probability ``p_stay``; ``switch`` moves to the other state
    with probability ``p_stay``. Agent 0 earns 1 in state 0, agent 1 earns 1 in state 1.
    Under the average criterion the best policy for agent 0 (stay in 0, switch out of 1) spends
    a fraction ``p_stay`` of the time in state 0, so ``max_O J_i = p_stay`` and
    ``min_O J_i = 1 - p_stay`` for both agents (for ``p_stay >= 1/2``).
    """
    q = float(p_stay)
    stay = np.array([[q, 1 - q], [1 - q, q]])
    switch = stay[:, ::-1]
    P = np.stack([stay, switch], axis=1)  # [S, A, S]
    R = np.zeros((2, 2, 2))
    R[0, 0, :] = 1.0
    R[1, 1, :] = 1.0
    return MOMDP(
        P=P,
        R=R,
        criterion=criterion,
        gamma=gamma,
        agent_names=("likes state 0", "likes state 1"),
        action_names=("stay", "switch"),
        info={"env": "two_state_chain", "p_stay": q},
    )
