"""Metrics for comparing outcomes (SPEC §5). Inputs are normalised returns ``u [n]`` in [0, 1]."""

from __future__ import annotations

import numpy as np

from jaxagg.errors import ShapeError
from jaxagg.polytope import normalized_rewards, occupancy_polytope, return_bounds
from jaxagg.solvers.program import OccupancyProgram


def _vector(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 1 or u.size == 0:
        raise ShapeError(f"u: expected a non-empty vector of normalised returns [n], got shape {u.shape}")
    return u


def gini(u: np.ndarray) -> float:
    """Gini index ``sum_i sum_j |u_i - u_j| / (2 n sum_i u_i)``: 0 is perfect equality.

    Defined as 0 when every ``u_i`` is 0 (everyone equally badly off)."""
    u = _vector(u)
    total = u.sum()
    if total <= 0.0:
        return 0.0
    return float(np.abs(u[:, None] - u[None, :]).sum() / (2.0 * u.size * total))


def nash_welfare(u: np.ndarray) -> float:
    """Nash welfare ``(prod_i u_i)^(1/n)``, the geometric mean (0 if any ``u_i <= 0``)."""
    u = _vector(u)
    if (u <= 0.0).any():
        return 0.0
    return float(np.exp(np.log(u).mean()))


def min_normalized(u: np.ndarray) -> float:
    """The worst-off agent's normalised return."""
    return float(_vector(u).min())


def welfare_summary(u: np.ndarray) -> dict[str, float]:
    """Minimum, mean, Gini and Nash welfare of normalised returns ``[n]``."""
    u = _vector(u)
    return {"min": min_normalized(u), "mean": float(u.mean()), "gini": gini(u), "nash_welfare": nash_welfare(u)}


def sample_certificates(returns: np.ndarray, sample) -> dict:
    """An outcome's volumetric certificates under a ReturnSample (SPEC §3, §5): per-agent ranks,
    quantile-fairness level, Borda score, and approval counts at q = 0.9 and 0.8 (agent i
    approves at level q iff ``J_i >= tau_i(q)``, the rules' convention)."""
    returns = np.asarray(returns, dtype=np.float64)
    ranks = sample.rank(returns)
    return {
        "ranks": ranks.tolist(),
        "quantile_level": float(ranks.min()),
        "borda_score": float(ranks.sum()),
        "approvals_0.9": int(sample.approves(returns, 0.9).sum()),
        "approvals_0.8": int(sample.approves(returns, 0.8).sum()),
    }


def preference_masks(returns: np.ndarray, sample) -> np.ndarray:
    """For each sample, the bit mask of agents that strictly prefer it to an outcome with raw
    ``returns [n]``: ``[N]`` integers (bit i set iff ``sample_i > returns_i``)."""
    better = sample.returns > np.asarray(returns, dtype=np.float64)[None, :]
    return (better.astype(np.int64) << np.arange(better.shape[1])).sum(axis=1)


def blocking_coalitions(returns: np.ndarray, sample, epsilon: float) -> list[list[int]]:
    """Coalitions that block an outcome in the epsilon-proportional veto core on a sample.

    C blocks d if the samples every member of C strictly prefers to d have measure at least
    ``1 - |C|/n + epsilon``. Counts over all 2^n coalitions come from one superset-sum
    transform of the preference masks, O(2^n n) (n <= 16). An empty list certifies membership.
    """
    n = sample.num_agents
    if n > 16:
        raise ShapeError(f"sample: the veto-core check enumerates 2^n coalitions; n <= 16, got {n}")
    counts = np.bincount(preference_masks(returns, sample), minlength=2**n).astype(np.int64)
    for bit in range(n):  # superset sums: counts[C] = #samples whose mask contains C
        step = 1 << bit
        view = counts.reshape(-1, 2 * step)
        view[:, :step] += view[:, step:]
    sizes = np.array([bin(c).count("1") for c in range(2**n)])
    need = 1.0 - sizes / n + epsilon
    blocking = np.flatnonzero((counts / sample.num_samples >= need - 1e-12) & (sizes > 0))
    return [[i for i in range(n) if c >> i & 1] for c in blocking]


def pareto_improvement(momdp, returns: np.ndarray, tol: float = 1e-7) -> float:
    """How much an outcome with raw ``returns [n]`` can be Pareto-improved: the optimum of
    ``max sum_i s_i`` s.t. ``J_i(d) >= returns_i + s_i``, ``s >= 0``, d in O, in units of each
    agent's return range. 0 (up to ``tol``) certifies Pareto optimality."""
    program = OccupancyProgram(occupancy_polytope(momdp))
    n = momdp.num_agents
    s = program.add_variables(n, lower=0.0)
    # u_i(d) - s_i >= u_i(returns), in normalised (unit-scale) scores
    W = normalized_rewards(momdp)
    floors = return_bounds(momdp).normalize(np.asarray(returns, dtype=np.float64))
    program.add_rows(program.rows_in(W, s, -np.eye(n)), lower=np.where(return_bounds(momdp).degenerate, -np.inf, floors - tol),
                     upper=np.inf)
    cost = np.zeros(program.num_cols)
    cost[s] = 1.0
    return float(program.solve(cost, sense="max", what="Pareto improvement LP").objective)
