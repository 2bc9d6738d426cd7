"""The occupancy polytope O (SPEC §1), exact policy <-> occupancy maps, and each agent's return range.

O = {d in R^{S*A} : d >= 0, E d = b} with d flattened state-major (``d[s*A + a]``):

* discounted: row s is ``sum_a d(s,a) - gamma sum_{s',a'} P(s',a',s) d(s',a') = (1-gamma) mu(s)``;
* average reward: row s is ``sum_a d(s,a) - sum_{s',a'} P(s',a',s) d(s',a') = 0``, plus a last row
  ``sum d = 1`` (one flow row is redundant; HiGHS's presolve drops it).

``E`` is built once per MOMDP as scipy.sparse CSC from vectorised numpy and cached (weakly, so it
goes when the MOMDP goes). The float64 reference maps here are exact linear-algebra solves; the
fast batched JAX kernels live in ``jaxagg.kernels``.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from jaxagg.errors import DegenerateAgentWarning, ShapeError, ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.solvers.program import OccupancyProgram

DEGENERATE_RTOL = 1e-9
"""An agent whose ``max_O J - min_O J`` is at most this times ``max |R|`` is degenerate."""


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


_POLYTOPES: "weakref.WeakKeyDictionary[MOMDP, OccupancyPolytope]" = weakref.WeakKeyDictionary()
_BOUNDS: "weakref.WeakKeyDictionary[MOMDP, ReturnBounds]" = weakref.WeakKeyDictionary()


def occupancy_polytope(momdp: MOMDP) -> OccupancyPolytope:
    """The occupancy polytope of ``momdp`` (built once, then cached per instance)."""
    cached = _POLYTOPES.get(momdp)
    if cached is None:
        cached = _POLYTOPES[momdp] = _build_polytope(momdp)
    return cached


def _build_polytope(momdp: MOMDP) -> OccupancyPolytope:
    S, A = momdp.num_states, momdp.num_actions
    outflow = sp.kron(sp.identity(S, format="csc"), np.ones((1, A)), format="csc")  # [S, S*A]
    inflow = sp.csc_matrix(momdp.P.reshape(S * A, S).T)  # [S, S*A]: P(s', a', s) at (s, s'A+a')
    if momdp.criterion == "discounted":
        E = (outflow - momdp.gamma * inflow).tocsc()
        b = (1.0 - momdp.gamma) * momdp.mu
    else:
        E = sp.vstack([outflow - inflow, sp.csc_matrix(np.ones((1, S * A)))], format="csc")
        b = np.concatenate([np.zeros(S), [1.0]])
    E.eliminate_zeros()
    E.sort_indices()
    return OccupancyPolytope(E=E, b=b, num_states=S, num_actions=A, criterion=momdp.criterion)


# ------------------------------------------------------------------ policy <-> occupancy
def policy_from_occupancy(occupancy: np.ndarray, num_states: int, num_actions: int) -> np.ndarray:
    """``pi(a|s) = d(s,a) / sum_a d(s,a)``, uniform where a state has no mass (below 1e-12 or a
    relative 1e-12 of the largest state mass). ``occupancy`` is ``[S*A]``; returns ``[S, A]``."""
    d = np.clip(_flat(occupancy, num_states * num_actions), 0.0, None).reshape(num_states, num_actions)
    mass = d.sum(axis=1, keepdims=True)
    empty = mass <= max(1e-12, 1e-12 * float(mass.max(initial=0.0)))
    safe = np.where(empty, 1.0, mass)
    return np.where(empty, 1.0 / num_actions, d / safe)


def state_transition_matrix(momdp: MOMDP, policy: np.ndarray) -> np.ndarray:
    """``P_pi[s, s'] = sum_a pi(a|s) P(s, a, s')``, ``[S, S]``."""
    return np.einsum("sa,sat->st", _check_policy(momdp, policy), momdp.P)


def occupancy_of_policy(momdp: MOMDP, policy: np.ndarray) -> np.ndarray:
    """The exact (float64) occupancy ``[S*A]`` of a stationary policy ``[S, A]`` (SPEC §1).

    Discounted: ``rho = (1-gamma) (I - gamma P_pi^T)^{-1} mu``. Average reward: ``rho`` is the
    Cesàro limit of the state distribution started from ``mu`` (exact for multichain ``P_pi``
    too: see :func:`limiting_distribution`). Then ``d(s,a) = rho(s) pi(a|s)``.
    """
    pi = _check_policy(momdp, policy)
    P_pi = state_transition_matrix(momdp, pi)
    if momdp.criterion == "discounted":
        S = momdp.num_states
        rho = (1.0 - momdp.gamma) * np.linalg.solve(np.eye(S) - momdp.gamma * P_pi.T, momdp.mu)
    else:
        rho = limiting_distribution(P_pi, momdp.mu)
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


def is_unichain_for_full_support(momdp: MOMDP) -> bool:
    """Whether every full-support policy's chain has a single recurrent class: the graph with
    an edge s -> s' when some action can move s to s' has one closed class."""
    _, closed = closed_classes(momdp.P.max(axis=1) > 0)
    return closed.size == 1


def _stationary(P_class: np.ndarray) -> np.ndarray:
    """The unique stationary distribution of an irreducible stochastic matrix."""
    m = P_class.shape[0]
    system = np.vstack([P_class.T - np.eye(m), np.ones((1, m))])
    rhs = np.concatenate([np.zeros(m), [1.0]])
    pi, *_ = scipy.linalg.lstsq(system, rhs)
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


# ------------------------------------------------------------------ return ranges
@dataclass(frozen=True, eq=False)
class ReturnBounds:
    """Every agent's return range over O, with the occupancies that attain it.

    Attributes:
        lower, upper: ``[n]`` ``min_O J_i`` and ``max_O J_i``.
        argmin, argmax: ``[n, S*A]`` occupancies attaining them.
        degenerate: ``[n]`` agents whose return is (numerically) constant over O.
    """

    lower: np.ndarray
    upper: np.ndarray
    argmin: np.ndarray
    argmax: np.ndarray
    degenerate: np.ndarray

    @property
    def span(self) -> np.ndarray:
        """``upper - lower``, with 1 for degenerate agents so that divisions are safe."""
        return np.where(self.degenerate, 1.0, self.upper - self.lower)

    def normalize(self, returns: np.ndarray) -> np.ndarray:
        """``u_i = (J_i - min J_i) / (max J_i - min J_i)``; 1 for degenerate agents. ``[..., n]``."""
        u = (np.asarray(returns, dtype=np.float64) - self.lower) / self.span
        return np.where(self.degenerate, 1.0, u)


def return_bounds(momdp: MOMDP) -> ReturnBounds:
    """``min_O J_i`` and ``max_O J_i`` for every agent: 2n LPs, cached per instance.

    Warns with :class:`DegenerateAgentWarning` for agents whose range is empty (up to
    ``DEGENERATE_RTOL``); their normalised return is defined as 1.
    """
    cached = _BOUNDS.get(momdp)
    if cached is not None:
        return cached
    polytope = occupancy_polytope(momdp)
    # Independent solves: warm-starting the next objective from the previous basis was measured
    # slower on attention (5, 3) (dual simplex from a dual-infeasible basis) and can fail in
    # HiGHS's ratio test.
    extremes = {
        sense: np.stack([
            solve_linear(polytope, momdp.reward_matrix[i], sense=sense, what=f"{sense}imum return LP of agent {i}")
            for i in range(momdp.num_agents)
        ])
        for sense in ("min", "max")
    }
    lower = np.einsum("ij,ij->i", momdp.reward_matrix, extremes["min"])
    upper = np.einsum("ij,ij->i", momdp.reward_matrix, extremes["max"])
    scale = np.abs(momdp.reward_matrix).max(axis=1)
    degenerate = upper - lower <= DEGENERATE_RTOL * scale
    if degenerate.any():
        warnings.warn(
            f"agent(s) {np.flatnonzero(degenerate).tolist()} get the same return from every policy; "
            "their normalised return is set to 1",
            DegenerateAgentWarning,
            stacklevel=2,
        )
    bounds = ReturnBounds(lower=lower, upper=upper, argmin=extremes["min"], argmax=extremes["max"], degenerate=degenerate)
    _BOUNDS[momdp] = bounds
    return bounds


def solve_linear(polytope: OccupancyPolytope, cost: np.ndarray, sense: str = "max", what: str = "LP") -> np.ndarray:
    """An optimal vertex ``[S*A]`` of ``sense <cost, d>`` over O (raises typed errors on failure)."""
    program = OccupancyProgram(polytope)
    return program.occupancy(program.solve(cost, sense=sense, what=what))


# ------------------------------------------------------------------ helpers
def _flat(occupancy: np.ndarray, dim: int) -> np.ndarray:
    d = np.asarray(occupancy, dtype=np.float64).reshape(-1)
    if d.shape != (dim,):
        raise ShapeError(f"occupancy: expected {dim} entries (S*A), got shape {np.shape(occupancy)}")
    return d


def _check_policy(momdp: MOMDP, policy: np.ndarray) -> np.ndarray:
    pi = np.asarray(policy, dtype=np.float64)
    if pi.shape != (momdp.num_states, momdp.num_actions):
        raise ShapeError(f"policy: expected shape [{momdp.num_states}, {momdp.num_actions}], got {pi.shape}")
    if not np.isfinite(pi).all() or (pi < -1e-9).any() or np.abs(pi.sum(axis=1) - 1.0).max() > 1e-6:
        raise ValidationError("policy: expected rows on the probability simplex (entries >= 0 summing to 1)")
    return np.clip(pi, 0.0, None)
