"""Exact Pareto fronts of the achievable return set, and checks of published reference fronts.

The returns the stationary policies of a MOMDP achieve form the polytope ``Y = {R d : d in O}``
(the linear image of the occupancy polytope). Its Pareto front is the upper-right boundary of
``Y``; it is the union of faces of the downward closure ``Q = Y - R^n_+``, whose vertices (the
*front's vertices*) are the returns of deterministic policies, and whose facets are
``{u : w . u <= level}`` with weights ``w >= 0``.

:func:`pareto_front` finds them by weighted-sum LPs over O (the one LP path,
:func:`jaxagg.solvers.program.solve_linear`), refining an inner approximation until every facet
is certified (the dual of Benson's outer approximation; for two agents it is the classic
dichotomic search between neighbouring extreme points):

1. start from each agent's optimum (weights ``e_i`` plus a tiny positive ``delta``, so that the
   optimum is Pareto optimal);
2. take the convex hull of the points found so far together with their copies shifted down by
   ``M`` along each axis (``M`` larger than the return ranges, so the hull's facets with
   non-negative normals are exactly those of ``conv(points) - R^n_+``);
3. for every such facet ``(w, level)`` not yet certified, solve ``max_O w . J``: a value above
   ``level`` (beyond the tolerance) gives a new point of the front, otherwise the facet is a facet
   of ``Q`` (certified: no achievable return lies beyond it);
4. stop when a round finds nothing new: the hull then *is* ``Q``. Every step adds a vertex of
   ``Q`` or certifies a facet, so the loop ends; its size is about the number of facets.

All of this runs in normalised returns ``u_i = (J_i - min_O J_i) / (max_O J_i - min_O J_i)`` so
that agents of any scale weigh alike; the tolerance is in those units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from jaxagg.errors import ConvergenceError, ShapeError, ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_polytope, policy_from_occupancy, return_bounds
from jaxagg.solvers.highs import INF
from jaxagg.solvers.program import OccupancyProgram, solve_linear
from jaxagg.validation import choice, finite_array, integer_at_least, positive_number

MAX_AGENTS = 3
""":func:`pareto_front` enumerates fronts of up to this many agents (the number of facets grows
quickly with n; :func:`check_front` verifies a given front for any n)."""
TOL = 1e-7
"""Default tolerance, in normalised return units (fractions of each agent's return range)."""
MAX_LPS = 20_000
"""Default budget of weighted-sum LPs before :func:`pareto_front` gives up."""
CONVENTIONS = ("episodic", "normalized")

__all__ = ["FrontCheck", "ParetoFront", "check_front", "pareto_front"]


@dataclass(frozen=True, eq=False)
class ParetoFront:
    """The exact Pareto front of a MOMDP's achievable returns.

    Attributes:
        returns: ``[k, n]`` the front's vertices (returns in jaxagg's convention), sorted by
            agent 0's return, largest first.
        occupancies: ``[k, S*A]`` an occupancy attaining each vertex.
        weights: ``[m, n]`` non-negative unit-sum weights of the front's facets, in normalised
            return units: the achievable returns dominate nothing beyond
            ``weights @ u <= levels`` and each facet is touched by vertices.
        levels: ``[m]`` the facets' levels.
        lower, span: ``[n]`` the return bounds used to normalise (``u = (J - lower) / span``).
        lps: number of LPs solved; seconds: time taken.
        agent_names: labels of the agents.
    """

    returns: np.ndarray
    occupancies: np.ndarray
    weights: np.ndarray
    levels: np.ndarray
    lower: np.ndarray
    span: np.ndarray
    lps: int
    seconds: float
    agent_names: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.returns.shape[0])

    def policies(self, momdp: MOMDP) -> np.ndarray:
        """``[k, S, A]`` stationary policies attaining the vertices (read from the occupancies)."""
        return np.stack([policy_from_occupancy(d, momdp.num_states, momdp.num_actions) for d in self.occupancies])

    def excess(self, returns: np.ndarray) -> np.ndarray:
        """How far returns ``[..., n]`` lie beyond the front, ``max_m (w_m . u - level_m)`` in
        normalised units (``[...]``): > 0 not achievable by any policy, <= 0 achievable or
        dominated by an achievable return."""
        u = (np.asarray(returns, dtype=np.float64) - self.lower) / self.span
        return (u @ self.weights.T - self.levels).max(axis=-1)

    def table(self) -> str:
        """The vertices as text, one per line."""
        names = self.agent_names or tuple(f"agent {i}" for i in range(self.returns.shape[1]))
        width = max(12, *(len(n) for n in names))
        lines = ["  ".join(n.rjust(width) for n in names)]
        lines += ["  ".join(f"{x:{width}.6g}" for x in row) for row in self.returns]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the front
def pareto_front(momdp: MOMDP, *, tol: float = TOL, max_lps: int = MAX_LPS) -> ParetoFront:
    """The exact Pareto front of the returns achievable in ``momdp`` (2 or 3 agents).

    Args:
        momdp: the instance; its return set is the image of the occupancy polytope.
        tol: tolerance in normalised return units: a weighted-sum LP must beat a facet by more
            than this to count as a new vertex; vertices closer than this are merged.
        max_lps: budget of LPs.

    Returns:
        A :class:`ParetoFront` (vertices with attaining occupancies, certified facets).

    Raises:
        ValidationError: fewer than 2 or more than :data:`MAX_AGENTS` agents, or bad options.
        ConvergenceError: the budget ran out before every facet was certified.
    """
    _check_momdp(momdp)
    n = momdp.num_agents
    if not 2 <= n <= MAX_AGENTS:
        raise ValidationError(f"momdp: pareto_front enumerates fronts of 2 to {MAX_AGENTS} agents, this instance has {n}; "
                              "use jaxagg.pareto.check_front to verify a given front for more agents")
    return _refine(momdp, None, positive_number("tol", tol), integer_at_least("max_lps", max_lps, 1))


def _refine(momdp: MOMDP, seeds: np.ndarray | None, tol: float, max_lps: int) -> ParetoFront:
    """The refinement loop (module docstring); ``seeds [k, S*A]`` are occupancies to start from
    besides the agents' own optima."""
    began = time.perf_counter()
    oracle = _Oracle(momdp, tol)
    found = [oracle.pareto_optimal(np.eye(momdp.num_agents)[i]) for i in range(momdp.num_agents)]
    points = _Points(tol)
    for u, d in found:
        points.add(u, d)
    for d in () if seeds is None else seeds:
        points.add(oracle.normalize(momdp.returns(d)), d)
    certified: list[np.ndarray] = []
    while True:
        weights, levels, _ = _upper_facets(points.array, momdp.num_agents)
        new = 0
        for w, level in zip(weights, levels):
            if any(np.abs(w - c).max() <= 1e-12 for c in certified):
                continue
            if oracle.lps >= max_lps:
                raise ConvergenceError(f"max_lps: {max_lps} LPs solved and the front is not certified yet "
                                       f"({len(points.array)} points found); raise max_lps or tol")
            u, d = oracle.pareto_optimal(w)
            if w @ u > level + tol and points.add(u, d):
                new += 1
            else:
                certified.append(w)
        if not new:
            break
    weights, levels, vertices = _upper_facets(points.array, momdp.num_agents)
    order = np.lexsort(points.array[vertices].T[::-1])[::-1]
    keep = vertices[order]
    returns = oracle.lower + points.array[keep] * oracle.span
    return ParetoFront(returns=returns, occupancies=np.stack([points.occupancies[i] for i in keep]), weights=weights,
                       levels=levels, lower=oracle.lower, span=oracle.span, lps=oracle.lps,
                       seconds=time.perf_counter() - began, agent_names=tuple(momdp.labels()), info={"tol": tol})


class _Oracle:
    """Weighted-sum LPs over O in normalised returns, counted."""

    def __init__(self, momdp: MOMDP, tol: float):
        bounds = return_bounds(momdp)
        self.polytope = occupancy_polytope(momdp)
        self.lower, self.span = bounds.lower, bounds.span
        self.rewards = momdp.reward_matrix / self.span[:, None]  # [n, S*A]: u = rewards @ d - lower / span
        self.momdp, self.tol, self.lps = momdp, tol, 0

    def normalize(self, returns: np.ndarray) -> np.ndarray:
        return (np.asarray(returns, dtype=np.float64) - self.lower) / self.span

    def pareto_optimal(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A Pareto-optimal maximiser of ``w . u`` (``w >= 0``, unit sum, ``[n]``): one LP with the
        weights ``w + delta`` (``delta = tol / (10 n)``), strictly positive, so that its optimum is
        Pareto optimal, and within ``tol / 10`` of ``max w . u`` (``sum u <= n`` on the front).
        Returns ``(u [n], d [S*A])`` with ``d`` a vertex of O (a deterministic policy)."""
        delta = self.tol / (10.0 * w.size)
        d = solve_linear(self.polytope, (w + delta) @ self.rewards, sense="max", what="weighted-sum LP of the Pareto front")
        self.lps += 1
        return self.normalize(self.momdp.returns(d)), d


class _Points:
    """Points of the front found so far (normalised ``[k, n]``) with their occupancies; a point
    within ``tol`` (max-norm) of one already held is not added again."""

    def __init__(self, tol: float):
        self.tol = tol
        self.rows: list[np.ndarray] = []
        self.occupancies: list[np.ndarray] = []

    @property
    def array(self) -> np.ndarray:
        return np.stack(self.rows)

    def add(self, u: np.ndarray, d: np.ndarray) -> bool:
        if any(np.abs(u - r).max() <= self.tol for r in self.rows):
            return False
        self.rows.append(np.asarray(u, dtype=np.float64))
        self.occupancies.append(d)
        return True


def _upper_facets(points: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Facets and vertices of ``conv(points) - R^n_+`` for ``points [k, n]`` (normalised).

    The hull of the points and their copies moved down by ``M = n + 1`` along each axis has, among
    its facets, exactly those of the downward closure (the ones with normals ``>= 0``), and its
    vertices among the original points are exactly the closure's vertices.

    Returns:
        weights ``[m, n]`` (>= 0, unit sum), levels ``[m]`` and the indices ``[v]`` of the points
        that are vertices.
    """
    k = points.shape[0]
    shifted = points[:, None, :] - (n + 1.0) * np.eye(n)[None, :, :]
    cloud = np.concatenate([points, shifted.reshape(-1, n)])
    try:
        hull = ConvexHull(cloud)
    except QhullError:
        hull = ConvexHull(cloud, qhull_options="QJ")
    normals = hull.equations[:, :-1]
    upward = (normals >= -1e-9).all(axis=1) & (normals.max(axis=1) > 1e-9)
    weights = np.clip(normals[upward], 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    weights = np.unique(np.round(weights, 12), axis=0)
    levels = (points @ weights.T).max(axis=0)
    vertices = np.unique(hull.vertices[hull.vertices < k])
    return weights, levels, vertices


# ----------------------------------------------------------------------------- reference fronts
@dataclass(frozen=True, eq=False)
class FrontCheck:
    """A reference front compared with the exact one.

    Attributes:
        reference: ``[m, n]`` the reference points in jaxagg's return convention.
        status: ``[m]`` per point: ``"vertex"`` (a vertex of the exact front), ``"on front"``
            (Pareto optimal, not a vertex), ``"dominated"`` (some policy does at least as well for
            every agent and better for one), ``"beyond"`` (no policy achieves it).
        improvement: ``[m]`` the largest ``t`` such that some policy gets ``J_i >= ref_i + t * span_i``
            for every agent (normalised units): > 0 dominated by that much in every coordinate,
            < 0 beyond the achievable set.
        nearest: ``[m, n]`` the exact vertex nearest each reference point (max-norm in normalised units).
        missing: ``[j, n]`` exact vertices no reference point matches.
        front: the exact :class:`ParetoFront` (``None`` for more than :data:`MAX_AGENTS` agents).
        scale: the factor that took the reference to jaxagg's convention (``1 - gamma`` for episodic returns).
    """

    reference: np.ndarray
    status: tuple[str, ...]
    improvement: np.ndarray
    nearest: np.ndarray
    missing: np.ndarray
    front: ParetoFront | None
    scale: float
    tol: float
    lps: int = 0
    exhaustive: bool = True

    @property
    def matches(self) -> bool:
        """Whether the reference is exactly the set of the front's vertices (for more than
        :data:`MAX_AGENTS` agents: every point on the front and no optimum found missing)."""
        wanted = "vertex" if self.exhaustive else "on front"
        return all(s == wanted for s in self.status) and len(self.missing) == 0

    def report(self, convention_label: str = "") -> str:
        """A readable comparison, in the reference's own convention."""
        s = self.scale
        names = (self.front.agent_names if self.front else ()) or tuple(f"agent {i}" for i in range(self.reference.shape[1]))
        found = (f"exact front: {len(self.front)} vertices" if self.front is not None
                 else "exact front: not enumerated (more than 3 agents); reference points classified exactly, "
                      "missing points searched by weighted sums")
        lines = [f"{found} ({self.lps} LPs); reference: {len(self.reference)} points{convention_label}",
                 f"agents: {', '.join(names)}"]
        for ref, status, t, near in zip(self.reference, self.status, self.improvement, self.nearest):
            line = f"  {_vector(ref / s)}  {status:9s}"
            if status not in ("vertex", "on front"):
                ratio = np.divide(ref, near, out=np.full_like(ref, np.nan), where=np.abs(near) > 1e-12)
                line += f"  nearest exact vertex {_vector(near / s)}  ratio {_vector(ratio)}  uniform gap {t:+.3g}"
            lines.append(line)
        for vertex in self.missing:
            lines.append(f"  missing from the reference: {_vector(vertex / s)}")
        lines.append("the reference equals the exact front" if self.matches else "the reference differs from the exact front")
        return "\n".join(lines)


def check_front(momdp: MOMDP, reference: Any, *, convention: str = "episodic", tol: float = 1e-6,
                max_lps: int = MAX_LPS, weights: int = 256) -> FrontCheck:
    """Compare a published front (``reference [m, n]``) with the exact one.

    Args:
        momdp: the instance.
        reference: the published points, one row per point.
        convention: ``"episodic"``: the points are episodic discounted returns ``E[sum_t gamma^t r_t]``
            (what MO-Gymnasium's ``pareto_front(gamma)`` gives), multiplied by ``1 - gamma`` here;
            ``"normalized"``: already in jaxagg's convention (and for average reward).
        tol: tolerance in normalised return units for matching and classifying points.
        max_lps: LP budget of the exact front.

        weights: for more than :data:`MAX_AGENTS` agents, how many random weight vectors
            (Dirichlet(1), seed 0) besides the unit vectors probe the front for missing points.

    Every reference point is classified exactly (LPs). For 2 or 3 agents the whole front is
    enumerated, so missing vertices are all found. For more agents the front is not enumerated:
    ``missing`` holds the weighted-sum optima (at the unit and random weights) that no reference
    point matches, a search rather than a certificate (``exhaustive`` is False).
    """
    _check_momdp(momdp)
    n = momdp.num_agents
    ref = finite_array("reference", reference, ndim=2)
    if ref.shape[1] != n or ref.shape[0] == 0:
        raise ShapeError(f"reference: expected [m, {n}] points (one column per agent), got {ref.shape}")
    choice("convention", convention, CONVENTIONS)
    tol = positive_number("tol", tol)
    if convention == "episodic":
        if momdp.criterion != "discounted":
            raise ValidationError("convention: 'episodic' needs a discounted MOMDP; pass convention='normalized'")
        scale = 1.0 - float(momdp.gamma)
    else:
        scale = 1.0
    ref = ref * scale
    oracle = _Oracle(momdp, tol)
    improvement = np.array([_uniform_improvement(oracle, p) for p in ref])
    ref_u = oracle.normalize(ref)
    if n <= MAX_AGENTS:
        front = _refine(momdp, None, min(tol, TOL), integer_at_least("max_lps", max_lps, 1))
        candidates, exhaustive = front.returns, True
    else:
        front, exhaustive = None, False
        weights = np.concatenate([np.eye(n), np.random.default_rng(0).dirichlet(np.ones(n), integer_at_least("weights", weights, 0))])
        candidates = np.stack([oracle.lower + oracle.pareto_optimal(w)[0] * oracle.span for w in weights])
    distance = np.abs(ref_u[:, None, :] - oracle.normalize(candidates)[None, :, :]).max(axis=2)  # [m, k]
    nearest = candidates[distance.argmin(axis=1)]
    status = []
    for p, t, dist in zip(ref, improvement, distance.min(axis=1)):
        if exhaustive and dist <= tol:
            status.append("vertex")
        elif t < -tol:
            status.append("beyond")
        elif t > tol or _total_improvement(oracle, p) > tol:
            status.append("dominated")
        else:
            status.append("on front")
    missing = np.unique(candidates[distance.min(axis=0) > tol], axis=0)
    return FrontCheck(reference=ref, status=tuple(status), improvement=improvement, nearest=nearest, missing=missing,
                      front=front, scale=scale, tol=tol, lps=oracle.lps + (front.lps if front else 0), exhaustive=exhaustive)


def _uniform_improvement(oracle: _Oracle, point: np.ndarray) -> float:
    """``max t`` such that some d in O has ``u_i(d) >= u_i(point) + t`` for every agent."""
    program = OccupancyProgram(oracle.polytope)
    (t,) = program.add_variables(1, lower=-INF, upper=INF)
    n = oracle.rewards.shape[0]
    rows = program.rows_in(oracle.rewards, np.array([t]), -np.ones((n, 1)))
    program.add_rows(rows, lower=point / oracle.span)
    cost = np.zeros(program.num_cols)
    cost[t] = 1.0
    result = program.solve(cost, sense="max", what="dominance LP of a reference point")
    oracle.lps += 1
    return float(result.x[t])


def _total_improvement(oracle: _Oracle, point: np.ndarray) -> float:
    """``max sum_i (u_i(d) - u_i(point))`` over d in O with ``u(d) >= u(point) - tol``: > 0 when
    the point is weakly dominated."""
    program = OccupancyProgram(oracle.polytope)
    program.add_rows(oracle.rewards, lower=point / oracle.span - 0.1 * oracle.tol)
    total = oracle.rewards.sum(axis=0)
    d = program.occupancy(program.solve(total, sense="max", what="dominance LP of a reference point"))
    oracle.lps += 1
    return float(total @ d - (point / oracle.span).sum())


def _vector(x: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in x) + ")"


def _check_momdp(momdp: object) -> None:
    if not isinstance(momdp, MOMDP):
        raise ValidationError(f"momdp: expected a jaxagg.MOMDP, got {type(momdp).__name__}")

