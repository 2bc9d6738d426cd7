"""The occupancy polytope O (SPEC §1), exact policy <-> occupancy maps, and each agent's return range.

O = {d in R^{S*A} : d >= 0, E d = b} with d flattened state-major (``d[s*A + a]``):

* discounted: row s is ``sum_a d(s,a) - gamma sum_{s',a'} P(s',a',s) d(s',a') = (1-gamma) mu(s)``;
* average reward: row s is ``sum_a d(s,a) - sum_{s',a'} P(s',a',s) d(s',a') = 0``, plus a last row
  ``sum d = 1`` (one flow row is redundant; HiGHS's presolve drops it).

Everything here takes arrays (``P [S, A, S]``, ``mu [S]``, ``gamma`` or ``None`` for average
reward, reward matrices ``[n, S*A]``), never a MOMDP: :mod:`jaxagg.polytope` is the MOMDP-level
door that builds O once per instance and caches it. The float64 maps here are the exact
reference (multichain average reward included); the fast batched JAX kernels live in
``jaxagg.kernels``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from jaxagg.errors import ShapeError, ValidationError


@dataclass(frozen=True, eq=False)
class OccupancyPolytope:
    """O = {d >= 0 : E d = b}.

    Attributes:
        E: ``[m, S*A]`` CSC matrix (m = S discounted, S + 1 average reward).
        b: ``[m]`` right-hand side.
        num_states, num_actions: S and A.
        criterion: ``"average"`` or ``"discounted"``.
    """

    E: sp.csc_matrix
    b: np.ndarray
    num_states: int
    num_actions: int
    criterion: str

    @property
    def dim(self) -> int:
        return self.num_states * self.num_actions

    def residual(self, occupancy: np.ndarray) -> float:
        """``max(|E d - b|_inf, max(-d, 0))``: 0 exactly on O; ``occupancy`` is ``[S*A]``."""
        d = _flat(occupancy, self.dim)
        return float(max(np.abs(self.E @ d - self.b).max(), max(-d.min(), 0.0)))

    def contains(self, occupancy: np.ndarray, tol: float = 1e-8) -> bool:
        return self.residual(occupancy) <= tol


def build_polytope(P: np.ndarray, mu: np.ndarray, gamma: float | None) -> OccupancyPolytope:
    """O of transitions ``P [S, A, S]`` and initial distribution ``mu [S]``, discounted by
    ``gamma`` or (``gamma=None``) under the average-reward criterion; built vectorised."""
    S, A, _ = P.shape
    outflow = sp.kron(sp.identity(S, format="csc"), np.ones((1, A)), format="csc")  # [S, S*A]
    inflow = sp.csc_matrix(P.reshape(S * A, S).T)  # [S, S*A]: P(s', a', s) at (s, s'A+a')
    if gamma is not None:
        E = (outflow - gamma * inflow).tocsc()
        b = (1.0 - gamma) * np.asarray(mu, dtype=np.float64)
    else:
        E = sp.vstack([outflow - inflow, sp.csc_matrix(np.ones((1, S * A)))], format="csc")
        b = np.concatenate([np.zeros(S), [1.0]])
    E.eliminate_zeros()
    E.sort_indices()
    return OccupancyPolytope(E=E, b=b, num_states=S, num_actions=A, criterion="average" if gamma is None else "discounted")


# ------------------------------------------------------------------ policy <-> occupancy
def policy_from_occupancy(occupancy: np.ndarray, num_states: int, num_actions: int) -> np.ndarray:
    """``pi(a|s) = d(s,a) / sum_a d(s,a)``, uniform where a state has no mass (below 1e-12 or a
    relative 1e-12 of the largest state mass). ``occupancy`` is ``[S*A]``; returns ``[S, A]``."""
    d = np.clip(_flat(occupancy, num_states * num_actions), 0.0, None).reshape(num_states, num_actions)
    mass = d.sum(axis=1, keepdims=True)
    empty = mass <= max(1e-12, 1e-12 * float(mass.max(initial=0.0)))
    safe = np.where(empty, 1.0, mass)
    return np.where(empty, 1.0 / num_actions, d / safe)


def occupancy_of_policy(P: np.ndarray, mu: np.ndarray, gamma: float | None, policy: np.ndarray) -> np.ndarray:
    """The exact (float64) occupancy ``[S*A]`` of a stationary policy ``[S, A]`` (SPEC §1),
    the reference every kernel is checked against.

    Discounted: ``rho = (1-gamma) (I - gamma P_pi^T)^{-1} mu``. Average reward (``gamma=None``):
    ``rho`` is the Cesàro limit of the state distribution started from ``mu`` (exact for
    multichain ``P_pi`` too: see :func:`limiting_distribution`). Then ``d(s,a) = rho(s) pi(a|s)``.
    """
    pi = check_policy(policy, P.shape[0], P.shape[1])
    P_pi = np.einsum("sa,sat->st", pi, P)
    if gamma is not None:
        rho = (1.0 - gamma) * np.linalg.solve(np.eye(P.shape[0]) - gamma * P_pi.T, mu)
    else:
        rho = limiting_distribution(P_pi, mu)
    return (rho[:, None] * pi).reshape(-1)


def limiting_distribution(P_pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Cesàro limit ``lim (1/T) sum_t mu^T P_pi^t`` of a finite Markov chain, exactly, ``[S]``.

    The closed (recurrent) classes are the strongly connected components with no edge leaving;
    each has a unique stationary distribution; ``mu``'s mass reaches class C with the absorption
    probability from the transient states. Works for periodic and multichain ``P_pi``.
    """
    S = P_pi.shape[0]
    label, closed = closed_classes(P_pi > 0)
    transient = np.isin(label, closed, invert=True)
    T = np.flatnonzero(transient)
    rho = np.zeros(S)
    if T.size:
        # absorption[t, k]: probability that the chain from transient state t enters class closed[k]
        into_class = np.stack([P_pi[np.ix_(T, np.flatnonzero(label == c))].sum(axis=1) for c in closed], axis=1)
        absorption = np.linalg.solve(np.eye(T.size) - P_pi[np.ix_(T, T)], into_class)
        reach = absorption.T @ mu[T]
    else:
        reach = np.zeros(closed.size)
    for k, c in enumerate(closed):
        members = np.flatnonzero(label == c)
        mass = mu[members].sum() + reach[k]
        if mass > 0:
            rho[members] = mass * _stationary(P_pi[np.ix_(members, members)])
    return rho


def closed_classes(support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed communicating classes of the directed graph ``support [S, S]`` (bool).

    Returns ``(label [S], closed [k])``: each state's strongly connected component, and the
    labels of the components no edge leaves (the recurrent classes of a chain on this graph).
    """
    graph = sp.csr_matrix(support)
    count, label = connected_components(graph, directed=True, connection="strong")
    leaves = np.zeros(count, dtype=bool)
    rows, cols = graph.nonzero()
    np.logical_or.at(leaves, label[rows], label[rows] != label[cols])
    return label, np.flatnonzero(~leaves)


def maximal_end_components(P: np.ndarray) -> np.ndarray:
    """The maximal end components of the MDP ``P [S, A, S]``: sets of states with actions that
    keep the chain inside the set and let it move between any two of its states. Every
    recurrent class of every policy lies in one. Returns ``label [S]``: the component of each
    state, ``-1`` for states in none (transient under every policy).

    The classic refinement: strongly connected components of the graph of the allowed actions;
    drop actions that can leave their state's component; repeat until nothing changes.
    """
    S = P.shape[0]
    support = P > 0
    allowed = np.ones(P.shape[:2], dtype=bool)
    alive = np.ones(S, dtype=bool)
    while True:
        edges = (support & allowed[:, :, None]).any(axis=1) & alive[:, None] & alive[None, :]
        _, label = connected_components(sp.csr_matrix(edges), directed=True, connection="strong")
        stays = label[:, None, None] == label[None, None, :]
        keeps = ~support | (stays & alive[None, None, :])
        refined = allowed & keeps.all(axis=2) & alive[:, None]
        if (refined == allowed).all():
            break
        allowed = refined
        alive = allowed.any(axis=1)
    return np.where(alive, label, -1)


def is_unichain_for_full_support(P: np.ndarray) -> bool:
    """Whether every full-support policy's chain on ``P [S, A, S]`` has a single recurrent
    class: the graph with an edge s -> s' when some action can move s to s' has one closed class."""
    _, closed = closed_classes(P.max(axis=1) > 0)
    return closed.size == 1


def _stationary(P_class: np.ndarray) -> np.ndarray:
    """The unique stationary distribution of an irreducible stochastic matrix."""
    m = P_class.shape[0]
    system = np.vstack([P_class.T - np.eye(m), np.ones((1, m))])
    rhs = np.concatenate([np.zeros(m), [1.0]])
    pi, *_ = scipy.linalg.lstsq(system, rhs)
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


# ------------------------------------------------------------------ helpers
def _flat(occupancy: np.ndarray, dim: int) -> np.ndarray:
    d = np.asarray(occupancy, dtype=np.float64).reshape(-1)
    if d.shape != (dim,):
        raise ShapeError(f"occupancy: expected {dim} entries (S*A), got shape {np.shape(occupancy)}")
    return d


def check_policy(policy: np.ndarray, num_states: int, num_actions: int) -> np.ndarray:
    """``policy`` as float64 ``[S, A]`` rows on the probability simplex (clipped at 0)."""
    try:
        pi = np.asarray(policy, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"policy: expected a numeric array [{num_states}, {num_actions}], got {type(policy).__name__}") from None
    if pi.shape != (num_states, num_actions):
        raise ShapeError(f"policy: expected shape [{num_states}, {num_actions}], got {pi.shape}")
    if not np.isfinite(pi).all() or (pi < -1e-9).any() or np.abs(pi.sum(axis=1) - 1.0).max() > 1e-6:
        raise ValidationError("policy: expected rows on the probability simplex (entries >= 0 summing to 1)")
    return np.clip(pi, 0.0, None)
