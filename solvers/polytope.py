"""The occupancy polytope O (SPEC §1), exact policy <-> occupancy maps, and each agent's return range.

O = {d in R^{S*A} : d >= 0, E d = b} with d flattened state-major (``d[s*A + a]``):

* discounted: row s is ``sum_a d(s,a) - gamma sum_{s',a'} P(s',a',s) d(s',a') = (1-gamma) mu(s)``;
* average reward, one maximal end component (weakly communicating; the fast path): row s is
  ``sum_a d(s,a) - sum_{s',a'} P(s',a',s) d(s',a') = 0``, plus a last row ``sum d = 1`` (one flow
  row is redundant; HiGHS's presolve drops it). Every such d is reached from any ``mu``;
* average reward, several maximal end components (multichain): which recurrent classes a policy
  reaches depends on ``mu``, and the flow rows alone would offer returns no policy reaches. O is
  then the projection onto d of the multichain dual LP (Puterman §9.3, Kallenberg): the columns
  are ``[d (S*A) | y (S*A)]``, ``y >= 0`` the transient flow, with rows
  ``sum_a d(j,a) - sum_{s,a} P(s,a,j) d(s,a) = 0`` and
  ``sum_a d(j,a) + sum_a y(j,a) - sum_{s,a} P(s,a,j) y(s,a) = mu(j)`` for every state j
  (summed over j the second block gives ``sum d = 1``). ``y`` are auxiliary columns
  (:attr:`OccupancyPolytope.num_aux`): every LP over O carries them (they follow d in every
  program's columns) and no objective or return looks at them.

Everything here takes arrays (``P``: a dense ``[S, A, S]`` array or any transition operator of
:mod:`jaxagg.kernels.transitions`, turned into one sparse ``[S*A, S]`` matrix by
:func:`transition_matrix` without ever densifying; ``mu [S]``, ``gamma`` or ``None`` for average
reward, reward matrices ``[n, S*A]``), never a MOMDP: :mod:`jaxagg.polytope` is the MOMDP-level
door that builds O once per instance and caches it. The float64 maps here are the exact
reference (multichain average reward included); the fast batched JAX kernels live in
``jaxagg.kernels``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
from scipy.sparse.csgraph import connected_components

from jaxagg.errors import ConvergenceError, ShapeError, ValidationError
from jaxagg.kernels import transitions as T
from jaxagg.solvers import highs

LARGE_CLASS = 2000
"""Recurrent classes larger than this get their stationary distribution from a sparse solve."""
VERTEX_THRESHOLDS = (1e-12, 1e-11, 1e-10, 1e-9)
"""Mass thresholds :func:`policy_of_vertex` tries, in order, to read a policy off a basic solution
(HiGHS's solutions are feasible to 1e-10, see :data:`jaxagg.solvers.highs.FEASIBILITY_TOL`, so
noise sits around 1e-11; true masses can be smaller)."""
VERTEX_MATCH_TOL = 1e-9
"""A policy read off a basic solution reproduces it when its exact occupancy is within this (max abs)."""
GAIN_TOL = 1e-10
"""Policy iteration switches an action only for a gain or bias better by this, relative to the rewards."""
MAX_POLICY_ITERATIONS = 1000
"""Improvements at most in :func:`gain_optimal_policy`."""


@dataclass(frozen=True, eq=False)
class OccupancyPolytope:
    """O = {d : (d, y) >= 0, E [d; y] = b for some y}: the occupancies d, plus ``num_aux``
    auxiliary columns y (none but for multichain average reward, where y is the transient flow;
    see the module docstring).

    Attributes:
        E: ``[m, S*A + num_aux]`` CSC matrix (m = S discounted, S + 1 average reward with one
            maximal end component, 2 S multichain average reward).
        b: ``[m]`` right-hand side.
        num_states, num_actions: S and A.
        criterion: ``"average"`` or ``"discounted"``.
        num_aux: auxiliary columns after d (0, or S*A for the multichain formulation).
        transitions, mu, gamma: the MDP that O comes from (a transition operator, ``[S]``, the
            discount or ``None``) when O is its flow polytope (``num_aux == 0``) and the
            transitions are an operator or a dense array, else ``None``: what
            :mod:`jaxagg.solvers.columns` needs to price columns by solving MDPs over O.
    """

    E: sp.csc_matrix
    b: np.ndarray
    num_states: int
    num_actions: int
    criterion: str
    num_aux: int = 0
    transitions: object = None
    mu: np.ndarray | None = None
    gamma: float | None = None

    @property
    def dim(self) -> int:
        """S*A, the occupancy's length (the first ``dim`` columns of E)."""
        return self.num_states * self.num_actions

    @property
    def num_columns(self) -> int:
        """``dim + num_aux``: the columns of E."""
        return self.dim + self.num_aux

    @property
    def multichain(self) -> bool:
        """Whether O is the multichain formulation (it has auxiliary columns)."""
        return self.num_aux > 0

    def residual(self, point: np.ndarray) -> float:
        """``max(|E z - b|_inf, max(-z, 0))`` of a point ``z [num_columns]``: 0 exactly on the
        lifted polytope. An occupancy ``[S*A]`` alone is first lifted (:meth:`lift`: the
        auxiliary columns that fit it best, by one LP), so that 0 means d is in O."""
        z = np.asarray(point, dtype=np.float64).reshape(-1)
        if z.shape != (self.num_columns,):
            z = self.lift(z)
        return float(max(np.abs(self.E @ z - self.b).max(), max(-z.min(), 0.0)))

    def contains(self, point: np.ndarray, tol: float = 1e-8) -> bool:
        """Whether :meth:`residual` of ``point`` (``[S*A]`` or ``[num_columns]``) is at most ``tol``."""
        return self.residual(point) <= tol

    def lift(self, occupancy: np.ndarray) -> np.ndarray:
        """``[num_columns]``: ``occupancy [S*A]`` with auxiliary columns ``y >= 0`` minimising
        ``|E [d; y] - b|_inf`` (a basic solution of one LP through :mod:`jaxagg.solvers.highs`);
        ``occupancy`` itself when O has no auxiliary columns."""
        d = _flat(occupancy, self.dim)
        if not self.num_aux:
            return d
        E = sp.csc_matrix(self.E)
        target = self.b - E[:, : self.dim] @ d
        aux = E[:, self.dim:]
        m = E.shape[0]
        ones = sp.csc_matrix(np.ones((m, 1)))
        matrix = sp.vstack([sp.hstack([aux, -ones]), sp.hstack([aux, ones])], format="csc")
        cost = np.zeros(self.num_aux + 1)
        cost[-1] = 1.0
        result = highs.solve(cost, matrix, np.concatenate([np.full(m, -highs.INF), target]),
                             np.concatenate([target, np.full(m, highs.INF)]), 0.0, highs.INF, sense="min",
                             solver="simplex", what="transient-flow LP (lifting an occupancy into O)")
        return np.concatenate([d, np.clip(result.x[: self.num_aux], 0.0, None)])


def transition_matrix(P) -> sp.csr_matrix:
    """``P`` (dense ``[S, A, S]`` or a transition operator) as a CSR matrix ``[S*A, S]`` with row
    ``s*A + a`` the distribution ``P(. | s, a)``; built from the operator's own structure (Kronecker
    factors by sparse Kronecker products), never through a dense ``[S, A, S]``. A sparse matrix
    ``[S*A, S]`` (this function's own result) is returned as CSR, so that a caller making many
    exact evaluations builds it once and passes it as ``P``."""
    if sp.issparse(P):
        return sp.csr_matrix(P)
    if isinstance(P, T.SparseTransitions):
        S, A = T.shape_of(P)
        successors, probabilities = np.asarray(P.successors), np.asarray(P.probabilities, dtype=np.float64)
        rows = np.repeat(np.arange(S * A), successors.shape[-1])
        matrix = sp.csr_matrix((probabilities.reshape(-1), (rows, successors.reshape(-1))), shape=(S * A, S))
    elif isinstance(P, T.KroneckerTransitions):
        S, A = T.shape_of(P)
        blocks = []
        for a in range(A):
            M = sp.identity(1, format="csr")
            for K in P.factors:
                M = sp.kron(M, sp.csr_matrix(np.asarray(K[a], dtype=np.float64)), format="csr")
            blocks.append(M.tocoo())
        rows = np.concatenate([block.row * A + a for a, block in enumerate(blocks)])
        cols = np.concatenate([block.col for block in blocks])
        data = np.concatenate([block.data for block in blocks])
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(S * A, S))
    else:
        dense = np.asarray(P.P if isinstance(P, T.DenseTransitions) else P, dtype=np.float64)
        S, A, _ = dense.shape
        matrix = sp.csr_matrix(dense.reshape(S * A, S))
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def sizes_of(P) -> tuple[int, int]:
    """``(S, A)`` of a dense array, an operator or a :func:`transition_matrix` ``[S*A, S]``."""
    if isinstance(P, (T.DenseTransitions, T.SparseTransitions, T.KroneckerTransitions)):
        return T.shape_of(P)
    if sp.issparse(P):
        S = P.shape[1]
        if S == 0 or P.shape[0] % S:
            raise ShapeError(f"P: expected a transition matrix [S*A, S], got shape {P.shape}")
        return S, P.shape[0] // S
    return np.shape(P)[0], np.shape(P)[1]


def build_polytope(P, mu: np.ndarray, gamma: float | None, multichain: bool | None = None) -> OccupancyPolytope:
    """O of transitions ``P`` (dense ``[S, A, S]`` or an operator) and initial distribution
    ``mu [S]``, discounted by ``gamma`` or (``gamma=None``) under the average-reward criterion;
    built vectorised as sparse matrices (module docstring).

    ``multichain`` (average reward only): ``None`` picks the formulation that is exact for this
    ``P``: the flow rows when the MDP has one maximal end component, the multichain dual LP
    (auxiliary transient-flow columns) when it has several. ``True`` forces the multichain
    formulation (exact for every MDP: with one component its projection equals the flow
    polytope); ``False`` forces the flow rows (the polytope of stationary flows, which may hold
    returns that no policy reaches from ``mu``)."""
    S, A = sizes_of(P)
    mu = np.asarray(mu, dtype=np.float64)
    outflow = sp.kron(sp.identity(S, format="csc"), np.ones((1, A)), format="csc")  # [S, S*A]
    inflow = transition_matrix(P).T.tocsc()  # [S, S*A]: P(s', a', s) at (s, s'A+a')
    num_aux = 0
    if gamma is not None:
        if multichain:
            raise ValidationError("multichain: the multichain formulation is for the average-reward criterion (gamma=None)")
        E = (outflow - gamma * inflow).tocsc()
        b = (1.0 - gamma) * mu
    else:
        if multichain is None:
            multichain = end_component_count(P) > 1
        flow = (outflow - inflow).tocsc()
        if multichain:
            E = sp.bmat([[flow, None], [outflow, flow]], format="csc")  # columns [d | y]
            b = np.concatenate([np.zeros(S), mu])
            num_aux = S * A
        else:
            E = sp.vstack([flow, sp.csc_matrix(np.ones((1, S * A)))], format="csc")
            b = np.concatenate([np.zeros(S), [1.0]])
    E.eliminate_zeros()
    E.sort_indices()
    return OccupancyPolytope(E=E, b=b, num_states=S, num_actions=A, criterion="average" if gamma is None else "discounted",
                             num_aux=num_aux, transitions=None if num_aux else _operator_or_none(P), mu=mu, gamma=gamma)


def _operator_or_none(P):
    """``P`` as a transition operator of :mod:`jaxagg.kernels.transitions` (a dense array is
    wrapped, float64), or ``None`` for a scipy.sparse ``[S*A, S]`` matrix."""
    if isinstance(P, (T.DenseTransitions, T.SparseTransitions, T.KroneckerTransitions)):
        return P
    if sp.issparse(P):
        return None
    return T.DenseTransitions(np.asarray(P, dtype=np.float64))


# ------------------------------------------------------------------ policy <-> occupancy
def policy_from_occupancy(occupancy: np.ndarray, num_states: int, num_actions: int,
                          transient: np.ndarray | None = None) -> np.ndarray:
    """``pi(a|s) = d(s,a) / sum_a d(s,a)``, uniform where a state has no mass (below 1e-12 or a
    relative 1e-12 of the largest state mass). ``occupancy`` is ``[S*A]``; returns ``[S, A]``.

    ``transient [S*A]`` (the multichain formulation's transient flow y of a point of O): on
    states without occupancy mass, ``pi(a|s) = y(s,a) / sum_a y(s,a)`` where y has mass
    (Puterman's construction), uniform where neither has."""
    d = _distribution_rows(occupancy, num_states, num_actions)
    if transient is None:
        return np.where(np.isnan(d), 1.0 / num_actions, d)
    y = _distribution_rows(transient, num_states, num_actions)
    return np.where(np.isnan(d), np.where(np.isnan(y), 1.0 / num_actions, y), d)


def _distribution_rows(flow: np.ndarray, num_states: int, num_actions: int) -> np.ndarray:
    """``[S, A]`` rows of ``flow [S*A]`` (clipped at 0) normalised to sum 1; NaN rows where a state
    has no mass (below 1e-12 or a relative 1e-12 of the largest state mass)."""
    d = np.clip(_flat(flow, num_states * num_actions), 0.0, None).reshape(num_states, num_actions)
    mass = d.sum(axis=1, keepdims=True)
    empty = mass <= max(1e-12, 1e-12 * float(mass.max(initial=0.0)))
    return np.where(empty, np.nan, d / np.where(empty, 1.0, mass))


def occupancy_of_policy(P, mu: np.ndarray, gamma: float | None, policy: np.ndarray) -> np.ndarray:
    """The exact (float64) occupancy ``[S*A]`` of a stationary policy ``[S, A]`` (SPEC §1),
    the reference every kernel is checked against. ``P`` is dense ``[S, A, S]`` or an operator.

    Discounted: ``rho = (1-gamma) (I - gamma P_pi^T)^{-1} mu``. Average reward (``gamma=None``):
    ``rho`` is the Cesàro limit of the state distribution started from ``mu`` (exact for
    multichain ``P_pi`` too: see :func:`limiting_distribution`). Then ``d(s,a) = rho(s) pi(a|s)``.
    Sparse direct solves throughout.
    """
    S, A = sizes_of(P)
    pi = check_policy(policy, S, A)
    P_pi = policy_matrix(transition_matrix(P), pi)
    mu = np.asarray(mu, dtype=np.float64)
    if gamma is not None:
        rho = (1.0 - gamma) * scipy.sparse.linalg.spsolve((sp.identity(S, format="csc") - gamma * P_pi.T).tocsc(), mu)
    else:
        rho = limiting_distribution(P_pi, mu)
    return (np.asarray(rho).reshape(S)[:, None] * pi).reshape(-1)


def policy_matrix(flat: sp.csr_matrix, pi: np.ndarray) -> sp.csr_matrix:
    """``P_pi [S, S]`` (CSR) from the ``[S*A, S]`` transition matrix and a policy ``[S, A]``."""
    S, A = pi.shape
    selector = sp.csr_matrix((pi.reshape(-1), (np.repeat(np.arange(S), A), np.arange(S * A))), shape=(S, S * A))
    P_pi = (selector @ flat).tocsr()
    P_pi.eliminate_zeros()
    return P_pi


def limiting_distribution(P_pi, mu: np.ndarray) -> np.ndarray:
    """Cesàro limit ``lim (1/T) sum_t mu^T P_pi^t`` of a finite Markov chain, exactly, ``[S]``
    (``P_pi [S, S]`` dense or sparse).

    The closed (recurrent) classes are the strongly connected components with no edge leaving;
    each has a unique stationary distribution; ``mu``'s mass reaches class C with the absorption
    probability from the transient states. Works for periodic and multichain ``P_pi``.
    """
    chain = _ChainClasses.of(P_pi)
    reach = chain.absorption.T @ mu[chain.transient] if chain.transient.size else np.zeros(len(chain.members))
    rho = np.zeros(chain.P.shape[0])
    for k, members in enumerate(chain.members):
        mass = mu[members].sum() + reach[k]
        if mass > 0:
            rho[members] = mass * chain.stationary(k)
    return rho


def gain_and_bias(P_pi, r_pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gain ``g = P* r`` and bias ``h`` (``g + (I - P_pi) h = r``, ``P* h = 0``) of a Markov
    reward chain, exactly (Puterman §8.2; multichain and periodic chains included): ``P_pi
    [S, S]`` dense or sparse, ``r_pi [S]``; returns ``(g [S], h [S])``.

    On a closed class C with stationary distribution ``pi_C``: ``g = pi_C . r_C`` and ``h_C``
    solves ``(I - P_CC) h_C = r_C - g`` with ``pi_C . h_C = 0`` (one sparse bordered system, non-
    singular for an irreducible class); on the transient states T: ``g_T`` is the absorption-
    weighted class gains and ``(I - P_TT) h_T = r_T - g_T + P_TR h_R``."""
    chain = _ChainClasses.of(P_pi)
    S = chain.P.shape[0]
    r_pi = np.asarray(r_pi, dtype=np.float64).reshape(S)
    g, h = np.zeros(S), np.zeros(S)
    gains = np.zeros(len(chain.members))
    for k, members in enumerate(chain.members):
        pi = chain.stationary(k)
        gains[k] = g[members] = pi @ r_pi[members]
        m = members.size
        bordered = sp.bmat([[sp.identity(m, format="csc") - chain.P[members][:, members], sp.csc_matrix(np.ones((m, 1)))],
                            [sp.csc_matrix(pi.reshape(1, m)), None]], format="csc")
        rhs = np.concatenate([r_pi[members] - gains[k], [0.0]])
        h[members] = np.atleast_1d(scipy.sparse.linalg.spsolve(bordered, rhs))[:m]
    T_ = chain.transient
    if T_.size:
        g[T_] = chain.absorption @ gains
        recurrent = np.flatnonzero(np.isin(np.arange(S), T_, invert=True))
        h[T_] = chain.lu.solve(r_pi[T_] - g[T_] + chain.P[T_][:, recurrent] @ h[recurrent])
    return g, h


@dataclass(frozen=True, eq=False)
class _ChainClasses:
    """The closed classes of a chain ``P [S, S]`` (CSR), their stationary distributions, and the
    absorption probabilities from its transient states (:func:`limiting_distribution`,
    :func:`gain_and_bias`).

    Attributes:
        P: the chain, CSR.
        members: one index array per closed class.
        transient: ``[t]`` the transient states.
        absorption: ``[t, k]`` probability that the chain from transient state ``transient[i]``
            enters closed class k; each row sums to 1 (a finite chain leaves its transient states
            for sure), which the solve's rounding is corrected to: a slowly absorbing chain's
            rows summed to 0.654-1 on attention (7, 3), and a single class's gain, spread to the
            transient states unevenly, made policy iteration cycle on spurious gain improvements.
        lu: the factorisation of ``I - P_TT`` (``None`` without transient states).
    """

    P: sp.csr_matrix
    members: tuple
    transient: np.ndarray
    absorption: np.ndarray
    lu: object

    @classmethod
    def of(cls, P_pi) -> _ChainClasses:
        P_pi = sp.csr_matrix(P_pi)
        label, closed = closed_classes(P_pi > 0)
        transient = np.isin(label, closed, invert=True)
        T_ = np.flatnonzero(transient)
        members = tuple(np.flatnonzero(label == c) for c in closed)
        absorption, lu = np.zeros((T_.size, closed.size)), None
        if T_.size:
            class_of = np.searchsorted(closed, label)  # valid where the label is a closed class
            to_closed = P_pi[T_][:, ~transient].tocoo()
            into_class = np.zeros((T_.size, closed.size))
            np.add.at(into_class, (to_closed.row, class_of[np.flatnonzero(~transient)][to_closed.col]), to_closed.data)
            lu = scipy.sparse.linalg.splu((sp.identity(T_.size, format="csc") - P_pi[T_][:, T_]).tocsc())
            absorption = _rows_on_the_simplex(lu.solve(into_class))
        return cls(P=P_pi, members=members, transient=T_, absorption=absorption, lu=lu)

    def stationary(self, k: int) -> np.ndarray:
        """The stationary distribution of closed class k, over its ``members[k]``."""
        return _stationary(self.P[self.members[k]][:, self.members[k]])


def _rows_on_the_simplex(probabilities: np.ndarray) -> np.ndarray:
    """``[t, k]`` nonnegative rows summing to 1: ``probabilities`` clipped at 0 and each row
    divided by its sum (rows of a probability matrix off by rounding only)."""
    clipped = np.clip(probabilities, 0.0, None)
    return clipped / clipped.sum(axis=1, keepdims=True)


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


def maximal_end_components(P) -> np.ndarray:
    """The maximal end components of the MDP ``P`` (dense ``[S, A, S]`` or an operator): sets of
    states with actions that keep the chain inside the set and let it move between any two of
    its states. Every recurrent class of every policy lies in one. Returns ``label [S]``: the
    component of each state, ``-1`` for states in none (transient under every policy).

    The classic refinement: strongly connected components of the graph of the allowed actions;
    drop actions that can leave their state's component; repeat until nothing changes. Works on
    the sparse ``[S*A, S]`` support, so its cost is linear in the transitions' non-zeros.
    """
    S, A = sizes_of(P)
    support = transition_matrix(P).tocoo()
    pair, target = support.row, support.col  # one entry per (s, a) -> s' with positive probability
    source = pair // A
    allowed = np.ones(S * A, dtype=bool)
    alive = np.ones(S, dtype=bool)
    while True:
        edge = allowed[pair] & alive[source] & alive[target]
        graph = sp.csr_matrix((np.ones(int(edge.sum())), (source[edge], target[edge])), shape=(S, S))
        _, label = connected_components(graph, directed=True, connection="strong")
        leaves = ~(alive[target] & (label[source] == label[target]))
        refined = allowed & np.repeat(alive, A)
        refined[pair[leaves]] = False
        if (refined == allowed).all():
            break
        allowed = refined
        alive = allowed.reshape(S, A).any(axis=1)
    return np.where(alive, label, -1)


def end_component_count(P) -> int:
    """The number of maximal end components of ``P`` (:func:`maximal_end_components`); at least 1."""
    labels = maximal_end_components(P)
    return int(np.unique(labels[labels >= 0]).size)


def deterministic_policy_of_vertex(point: np.ndarray, num_states: int, num_actions: int,
                                   threshold: float = VERTEX_THRESHOLDS[0]) -> np.ndarray:
    """The deterministic policy ``[S, A]`` (0/1 rows) of a basic solution ``point [S*A]`` or
    ``[2 S*A]`` (``[d | y]``, the multichain formulation) of an average-reward LP over O:
    Puterman's construction (§9.3): on a state with occupancy mass, an action with ``d > 0``
    (the largest); else, on a state with transient flow, an action with ``y > 0`` (the
    largest); else action 0. "Mass" is above ``threshold``, or ``threshold`` relative to the
    largest entry of ``point``.

    In exact arithmetic, for an optimal basic solution the policy is optimal for the LP's
    objective (Puterman, Theorem 9.3.8); its occupancy from ``mu`` is d unless the basic
    solution randomises at a state (a vertex of the ``[d | y]`` polytope whose d mixes several
    policies' occupancies). A floating-point basic solution is neither exact nor exactly
    feasible: degenerate basic entries that are 0 at the true vertex come back as +-1e-11 or so
    (within HiGHS's feasibility tolerance), and a state whose d is such noise, read as mass,
    gets an action that can leave the recurrent class the vertex describes, so that the whole
    class drains into another one. No single threshold separates noise from small true masses
    on every vertex: :func:`policy_of_vertex` tries several and checks each policy exactly."""
    dim = num_states * num_actions
    z = np.clip(np.asarray(point, dtype=np.float64).reshape(-1), 0.0, None)
    if z.size not in (dim, 2 * dim):
        raise ShapeError(f"point: expected {dim} or {2 * dim} entries (d, or d and y), got {z.size}")
    d = z[:dim].reshape(num_states, num_actions)
    y = z[dim:].reshape(num_states, num_actions) if z.size == 2 * dim else np.zeros_like(d)
    tiny = max(threshold, threshold * float(z.max(initial=0.0)))
    action = np.where(d.sum(axis=1) > tiny, d.argmax(axis=1), np.where(y.sum(axis=1) > tiny, y.argmax(axis=1), 0))
    return np.eye(num_actions)[action]


def policy_of_vertex(P, mu: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The deterministic policy of a basic solution ``point [2 S*A]`` of the multichain
    average-reward LP whose exact occupancy from ``mu`` is closest to the point's d:
    :func:`deterministic_policy_of_vertex` at each of :data:`VERTEX_THRESHOLDS` in turn,
    stopping at the first that reproduces d to :data:`VERTEX_MATCH_TOL` (max abs).

    Returns ``(policy [S, A], occupancy [S*A], error)``: the policy, its exact occupancy
    (:func:`occupancy_of_policy`) and ``max |occupancy - d|``. An error above the tolerance
    means no threshold reproduces d (a randomising basic solution, or noise no threshold
    separates): the caller decides whether the policy is good enough."""
    S, A = sizes_of(P)
    d = np.clip(np.asarray(point, dtype=np.float64).reshape(-1)[: S * A], 0.0, None)
    best = None
    for threshold in VERTEX_THRESHOLDS:
        policy = deterministic_policy_of_vertex(point, S, A, threshold)
        if best is not None and np.array_equal(policy, best[0]):
            continue
        occupancy = occupancy_of_policy(P, mu, None, policy)
        error = float(np.abs(occupancy - d).max())
        if best is None or error < best[2]:
            best = (policy, occupancy, error)
        if error <= VERTEX_MATCH_TOL:
            break
    return best


def gain_optimal_policy(P, reward: np.ndarray, policy: np.ndarray, *, tol: float = GAIN_TOL,
                        max_iterations: int = MAX_POLICY_ITERATIONS) -> np.ndarray:
    """A deterministic policy ``[S, A]`` whose gain is optimal from every state for the average
    reward ``reward [S*A]`` on ``P`` (dense ``[S, A, S]`` or an operator), by multichain policy
    iteration (Puterman §9.2) started from ``policy [S, A]`` (its rows' largest entries).

    Evaluation is exact (:func:`gain_and_bias`); improvement first switches a state to an action
    with a larger ``P g`` (gain), and only when no state can, to an action of largest
    ``r + P h`` among those of largest ``P g``; an action is kept unless another is better by
    more than ``tol`` times ``max(1, max |reward|)``. Each switch improves ``(g, h)``
    lexicographically, so it ends at an optimal policy (Puterman, Theorem 9.2.3).

    Raises:
        ConvergenceError: ``max_iterations`` improvements did not reach a stable policy, or a
            policy came back (in exact arithmetic none can: the switches were rounding noise).
    """
    flat = transition_matrix(P)
    S, A = sizes_of(P)
    reward = _flat(reward, S * A).reshape(S, A)
    states = np.arange(S)
    action = check_policy(policy, S, A).argmax(axis=1)
    margin = tol * max(1.0, float(np.abs(reward).max(initial=0.0)))
    visited: set[bytes] = set()
    for iteration in range(max_iterations):
        if action.tobytes() in visited:
            raise ConvergenceError(f"policy iteration: a policy came back after {iteration} improvements (they were below "
                                   f"the exact evaluation's rounding, with the tie margin {margin:.3g})")
        visited.add(action.tobytes())
        pi = np.eye(A)[action]
        g, h = gain_and_bias(policy_matrix(flat, pi), reward[states, action])
        Pg = (flat @ g).reshape(S, A)
        switch = Pg.max(axis=1) > Pg[states, action] + margin
        if not switch.any():
            q = np.where(Pg >= Pg.max(axis=1, keepdims=True) - margin, reward + (flat @ h).reshape(S, A), -np.inf)
            switch = q.max(axis=1) > q[states, action] + margin
            if not switch.any():
                return pi
            action[switch] = q[switch].argmax(axis=1)
        else:
            action[switch] = Pg[switch].argmax(axis=1)
    raise ConvergenceError(f"policy iteration: {max_iterations} improvements did not reach a gain-optimal policy")


def is_unichain_for_full_support(P) -> bool:
    """Whether every full-support policy's chain on ``P`` (dense or an operator) has a single
    recurrent class: the graph with an edge s -> s' when some action can move s to s' has one
    closed class."""
    S, A = sizes_of(P)
    support = transition_matrix(P).tocoo()
    graph = sp.csr_matrix((np.ones(support.nnz), (support.row // A, support.col)), shape=(S, S))
    _, closed = closed_classes(graph)
    return closed.size == 1


def _stationary(P_class) -> np.ndarray:
    """The unique stationary distribution of an irreducible stochastic matrix (dense or sparse):
    the flow equations ``(P^T - I) pi = 0`` with the last one replaced by ``sum pi = 1`` (any
    one of them is redundant, since the null space of ``P - I`` is spanned by the ones), by a
    dense LU up to :data:`LARGE_CLASS` states and a sparse one past it.

    A dense system that LAPACK finds singular or ill-conditioned (a nearly decomposable class:
    rcond 6e-17 on attention (7, 3)) is solved by state reduction instead
    (:func:`_stationary_by_state_reduction`), which is accurate whatever the conditioning, at
    about 10x the LU's time: the LU's answer there has a tiny residual and wrong entries
    (blocks coupled by 1e-17 came out 0.08/0.92 instead of 0.75/0.25)."""
    m = P_class.shape[0]
    rhs = np.zeros(m)
    rhs[-1] = 1.0
    if m <= LARGE_CLASS:
        dense = P_class.toarray() if sp.issparse(P_class) else np.asarray(P_class, dtype=np.float64)
        system = dense.T - np.eye(m)
        system[-1] = 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
                pi = scipy.linalg.solve(system, rhs, check_finite=False)
        except (scipy.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
            pi = _stationary_by_state_reduction(dense)
    else:
        system = (sp.csr_matrix(P_class).T - sp.identity(m, format="csr")).tolil()
        system[m - 1, :] = np.ones(m)
        pi = scipy.sparse.linalg.spsolve(system.tocsc(), rhs)
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


def _stationary_by_state_reduction(P_dense: np.ndarray) -> np.ndarray:
    """``[m]`` the stationary distribution of an irreducible ``P_dense [m, m]`` by the
    Grassmann-Taksar-Heyman state reduction: states are censored out one by one, last first,
    and then their masses are read back. It adds and multiplies nonnegative numbers only (the
    diagonal is never used: a state's outflow is the sum of its off-diagonal entries), so it
    keeps full relative accuracy on nearly decomposable chains. ``O(m^3)``."""
    a = np.array(P_dense, dtype=np.float64)
    m = a.shape[0]
    for k in range(m - 1, 0, -1):
        outflow = a[k, :k].sum()  # > 0 in an irreducible chain
        a[:k, k] /= outflow
        a[:k, :k] += np.outer(a[:k, k], a[k, :k])
    pi = np.zeros(m)
    pi[0] = 1.0
    for j in range(1, m):
        pi[j] = pi[:j] @ a[:j, j]
    return pi / pi.sum()


# ------------------------------------------------------------------ helpers
def pad_columns(block: sp.csr_matrix, num_cols: int) -> sp.csr_matrix:
    """``block [m, k]`` (CSR) widened to ``[m, num_cols]`` with empty columns on the right
    (``num_cols >= k``), sharing its arrays: a block of rows over a program's first columns."""
    if block.shape[1] == num_cols:
        return block
    return sp.csr_matrix((block.data, block.indices, block.indptr), shape=(block.shape[0], num_cols))


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
