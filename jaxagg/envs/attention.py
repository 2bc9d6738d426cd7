"""The paper's environment: dynamic attention allocation (SPEC §4).

``F`` factories each have a phase in ``0 .. phases-1``; the last phase is an incident. Each step
the planner monitors one factory or none.

Indexing (ours):
    state ``s`` is the mixed-radix number of the phase vector with factory 0 most significant,
    ``s = sum_f p_f * phases**(F-1-f)`` (``np.ravel_multi_index`` order);
    action ``a < F`` monitors factory ``a``; action ``F`` monitors none.

Random draws, in this order from ``numpy.random.default_rng(seed)``:
    1. ``theta[f, p]`` for ``p < phases-1``: uniform on {0.50, 0.51, ..., 0.79};
    2. base agents: weight ``w_i`` uniform on {0.25, 0.50, ..., F + 0.75};
       subsets agents: factory weights ``W_f`` uniform on {1, 1.5, ..., F/2} (the reference
       implementation's ``randint(2, F+1)/2``; {1} when F = 1), then per agent a
       uniformly random non-empty subset of factories and a scale ``eta_j`` (as ``w_i`` above).
"""

from __future__ import annotations

from functools import reduce
from typing import Literal

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.kernels.transitions import KroneckerTransitions
from jaxagg.momdp import MOMDP
from jaxagg.validation import integer_at_least
from jaxagg.validation import seed as check_seed

MAX_STATES = 10**7
"""Largest state space built (the rewards alone are ``n * S * A`` float64)."""
INCIDENT_PENALTY = 100.0
MONITOR_COST = 1.0
THETA_GRID = np.round(np.arange(50, 80) / 100.0, 2)


def attention_allocation(
    factories: int = 5,
    phases: int = 3,
    agents: Literal["base", "subsets"] = "base",
    seed: int = 0,
    *,
    num_agents: int | None = None,
    criterion: str = "average",
    gamma: float | None = None,
) -> MOMDP:
    """Build one seeded instance of dynamic attention allocation.

    Args:
        factories: number of factories ``F`` (>= 1); ``phases**F`` states, ``F + 1`` actions.
        phases: number of phases per factory (>= 2); the last is an incident.
        agents: ``"base"`` (agent ``i`` cares only about factory ``i``; ``n = F``, paper Fig. 1b)
            or ``"subsets"`` (each agent cares about a random subset; paper Fig. 1a).
        seed: seed of the numpy Generator that draws every random parameter.
        num_agents: agents for ``"subsets"`` (default 10); must be ``None`` or ``F`` for base.
        criterion, gamma: the paper uses the average-reward criterion.

    Returns:
        A MOMDP whose ``info`` holds the drawn parameters: ``theta [F, phases-1]``, the per-agent
        factory weights ``weights [n, F]`` and, for subsets, ``factory_weights``, ``subsets``
        and ``scales``.
    """
    factories = integer_at_least("factories", factories, minimum=1)
    phases = integer_at_least("phases", phases, minimum=2)
    if phases**factories > MAX_STATES:
        raise ValidationError(f"factories, phases: {phases}**{factories} = {phases**factories} states; at most {MAX_STATES} are supported")
    seed = check_seed("seed", seed)
    if agents not in ("base", "subsets"):
        raise ValidationError(f"agents: expected 'base' or 'subsets', got {agents!r}")
    rng = np.random.default_rng(seed)
    theta = rng.choice(THETA_GRID, size=(factories, phases - 1))
    info: dict = {"env": "attention", "factories": factories, "phases": phases, "agents": agents, "seed": seed}
    if agents == "base":
        if num_agents not in (None, factories):
            raise ValidationError(f"num_agents: base agents are one per factory ({factories}), got {num_agents}")
        weights = np.diag(_scales(rng, factories, factories))
        names = [f"factory {f}" for f in range(factories)]
    else:
        num_agents = 10 if num_agents is None else integer_at_least("num_agents", num_agents, minimum=1)
        factory_weights = rng.choice(np.arange(2, max(factories, 2) + 1) / 2.0, size=factories)
        subsets = _random_nonempty_subsets(rng, num_agents, factories)
        scales = _scales(rng, num_agents, factories)
        weights = subsets * factory_weights[None, :] * scales[:, None]
        names = [f"agent {j}" for j in range(num_agents)]
        info.update(factory_weights=factory_weights.tolist(), subsets=subsets.astype(int).tolist(), scales=scales.tolist())
    info.update(theta=theta.tolist(), weights=weights.tolist())
    return MOMDP(
        P=attention_operator(theta),
        R=attention_rewards(weights, phases),
        criterion=criterion,
        gamma=gamma,
        agent_names=tuple(names),
        state_names=tuple(_state_labels(factories, phases)),
        action_names=tuple([f"monitor {f}" for f in range(factories)] + ["monitor none"]),
        info=info,
    )


def factory_transition(theta_f: np.ndarray, monitored: bool) -> np.ndarray:
    """One factory's phase transition matrix ``[phases, phases]``.

    Monitored: drop one phase (``max(0, p-1)``). Unmonitored: the last phase stays; phase
    ``p < last`` moves to ``p+1`` with probability ``theta_f[p]`` and stays otherwise.
    """
    phases = theta_f.shape[0] + 1
    T = np.zeros((phases, phases))
    p = np.arange(phases)
    if monitored:
        T[p, np.maximum(p - 1, 0)] = 1.0
    else:
        T[p[:-1], p[:-1]] = 1.0 - theta_f
        T[p[:-1], p[:-1] + 1] = theta_f
        T[-1, -1] = 1.0
    return T


def attention_operator(theta: np.ndarray) -> KroneckerTransitions:
    """Transitions as a Kronecker operator from ``theta [F, phases-1]``: factor ``f`` has
    ``K_f [F+1, phases, phases]``, its monitored matrix under action ``f`` and its unmonitored
    one under every other action. Never forms ``[S, A, S]``."""
    factories = theta.shape[0]
    return KroneckerTransitions(tuple(
        np.stack([factory_transition(theta[f], monitored=(f == a)) for a in range(factories + 1)])
        for f in range(factories)
    ))


def attention_transitions(theta: np.ndarray) -> np.ndarray:
    """Transitions ``[S, A, S]`` from ``theta [F, phases-1]``: factories move independently, so
    each action's matrix is the Kronecker product of the per-factory matrices."""
    factories = theta.shape[0]
    per_action = [
        reduce(np.kron, [factory_transition(theta[f], monitored=(f == a)) for f in range(factories)])
        for a in range(factories + 1)
    ]
    return np.stack(per_action, axis=1)


def attention_rewards(weights: np.ndarray, phases: int) -> np.ndarray:
    """Rewards ``[n, S, A]`` from per-agent factory weights ``[n, F]``:
    ``R(s, a) = -1[a monitors] - 100 * sum_t w_t [phase_t(s) = last and a != t]``."""
    n, factories = weights.shape
    phase = np.array(np.unravel_index(np.arange(phases**factories), (phases,) * factories)).T  # [S, F]
    incident = (phase == phases - 1).astype(np.float64)  # [S, F]
    unattended = incident[:, None, :] * (1.0 - np.eye(factories + 1, factories)[None])  # [S, A, F]
    penalty = INCIDENT_PENALTY * np.einsum("saf,nf->nsa", unattended, weights)
    monitor_cost = MONITOR_COST * (np.arange(factories + 1) < factories)
    return -monitor_cost[None, None, :] - penalty


def _scales(rng: np.random.Generator, size: int, factories: int) -> np.ndarray:
    return rng.choice(np.arange(1, 4 * factories + 4) / 4.0, size=size)


def _random_nonempty_subsets(rng: np.random.Generator, count: int, factories: int) -> np.ndarray:
    codes = rng.integers(1, 2**factories, size=count)
    return ((codes[:, None] >> np.arange(factories)[None, :]) & 1).astype(np.float64)


def _state_labels(factories: int, phases: int) -> list[str]:
    phase = np.array(np.unravel_index(np.arange(phases**factories), (phases,) * factories)).T
    return ["".join(str(p) for p in row) for row in phase]
