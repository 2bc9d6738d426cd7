"""epsilon-Borda against enumeration of every level vector by LP, and a grid over a simplex."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

import jaxagg as ja
from jaxagg.cdf_fit import fit_cdfs
from jaxagg.errors import ValidationError
from jaxagg.rules.borda import borda_score, raise_floors
from jaxagg.solvers.highs import INF, solve


def best_levels_by_enumeration(momdp, sample, K):
    """max sum_i k_i / K over level vectors whose thresholds, the order statistics x_(ceil(k N / K))
    (reaching one means a rank of at least k/K), are jointly reachable."""
    polytope = ja.occupancy_polytope(momdp)
    ordered = np.sort(sample.returns, axis=0)
    taus = ordered[np.ceil(np.arange(1, K + 1) * sample.num_samples / K).astype(int) - 1].T  # [n, K]
    matrix = sp.vstack([polytope.E, sp.csr_matrix(momdp.reward_matrix)])
    best = 0
    for ks in itertools.product(range(K + 1), repeat=momdp.num_agents):
        if sum(ks) <= best:
            continue
        floors = np.array([taus[i, k - 1] if k else -INF for i, k in enumerate(ks)])
        result = solve(np.zeros(polytope.dim), matrix, np.concatenate([polytope.b, floors]),
                       np.concatenate([polytope.b, np.full(momdp.num_agents, INF)]), raise_on_failure=False)
        if result.ok:
            best = sum(ks)
    return best / K


@pytest.mark.parametrize("seed", range(3))
def test_milp_score_matches_enumeration(seed):
    m = ja.envs.garnet(4, 3, 4, agents=3, seed=seed)
    sample = ja.sample(m, 300, seed=seed, precision="float64")
    outcome = ja.rules.get("borda")(m, sample, levels=4)
    assert outcome.info["milp_score"] == pytest.approx(best_levels_by_enumeration(m, sample, 4), abs=1e-9)
    # the policy keeps the levels, so its exact empirical score is at least the MILP's
    assert outcome.info["borda_score"] >= outcome.info["milp_score"] - 1e-9
    assert outcome.info["borda_score"] == pytest.approx(borda_score(outcome.returns, sample))


def test_within_n_over_K_of_the_best_grid_policy_on_a_simplex():
    rewards = np.random.default_rng(3).random((3, 3))
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 1000, seed=0, precision="float64")
    K = 10
    outcome = ja.rules.get("borda")(m, sample, levels=K)
    a, b = np.meshgrid(np.linspace(0, 1, 151), np.linspace(0, 1, 151), indexing="ij")
    keep = a + b <= 1 + 1e-12
    grid = np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1)
    best_grid = sample.rank(grid @ rewards.T).sum(axis=1).max()
    assert outcome.info["borda_score"] >= best_grid - 3 / K


def test_bad_arguments(attention_2_3, attention_2_3_sample):
    m, sample = attention_2_3, attention_2_3_sample
    with pytest.raises(ValidationError, match="method: expected one of 'milp', 'concave', got 'exact'"):
        ja.rules.get("borda")(m, sample, method="exact")
    with pytest.raises(ValidationError, match="levels: expected an integer >= 1 and <= 1000, got 0"):
        ja.rules.get("borda")(m, sample, levels=0)
    with pytest.raises(ValidationError, match="levels: expected an integer >= 1 and <= 1000, got 1000000"):
        ja.rules.get("borda")(m, sample, levels=10**6)  # n K binaries, each a row of S*A: refused before allocating


def test_concave_method_maximises_the_fitted_score_over_its_region():
    rewards = np.random.default_rng(5).random((3, 3))
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 3000, seed=1, precision="float64")
    outcome = ja.rules.get("borda")(m, sample, method="concave")
    fits = fit_cdfs(sample)
    fitted = sum(f(j) for f, j in zip(fits, outcome.returns))
    assert outcome.info["fitted_score"] == pytest.approx(float(fitted), abs=1e-9)
    assert outcome.info["gap"] <= 1e-7
    assert (outcome.returns >= np.array(outcome.info["modes"]) - 1e-9).all()
    a, b = np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201), indexing="ij")
    keep = a + b <= 1 + 1e-12
    returns = np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1) @ rewards.T
    inside = (returns >= np.array(outcome.info["modes"])).all(axis=1)
    grid_best = max(sum(f(r[i]) for i, f in enumerate(fits)) for r in returns[inside]) if inside.any() else -np.inf
    assert outcome.info["fitted_score"] >= grid_best - 1e-9


def test_concave_method_reports_an_empty_region():
    m = ja.envs.bandit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    rng = np.random.default_rng(0)
    skewed = ja.ReturnSample(rng.beta(8.0, 1.0, size=(2000, 2)), measure="policy").bind(m)  # modes near 1 for both
    with pytest.raises(ja.errors.InfeasibleError, match="concave region of the fitted CDFs .* contains no policy; use method='milp'"):
        ja.rules.get("borda")(m, skewed, method="concave")


@pytest.mark.slow
def test_time_limit_uses_the_incumbent_or_raises(monkeypatch):
    import dataclasses

    from jaxagg.solvers.highs import SolveStatus
    from jaxagg.solvers.program import OccupancyProgram

    m = ja.envs.attention_allocation(3, 3, "subsets", seed=4)
    sample = ja.sample(m, 500, seed=0)
    # No incumbent within a microsecond: raised when asked to, or without the local step...
    for options in ({"on_timeout": "raise"}, {"local_step": False}):
        with pytest.raises(ja.errors.SolverTimeoutError, match="no feasible point found"):
            ja.rules.get("borda")(m, sample, time_limit=1e-6, **options)
    # ... else the local step from no floors gives the policy: never below max-quantile's score.
    with pytest.warns(UserWarning, match="found no feasible point within its 1e-06 s time limit; the policy comes from the local"):
        outcome = ja.rules.get("borda")(m, sample, time_limit=1e-6)
    assert outcome.info["optimal"] is False and np.isnan(outcome.info["milp_score"])
    assert outcome.info["levels_reached"] == [0] * m.num_agents
    fair = ja.rules.get("max-quantile")(m, sample)
    assert outcome.info["borda_score"] >= borda_score(fair.returns, sample) - 1e-12
    assert outcome.info["borda_score"] == pytest.approx(borda_score(outcome.returns, sample), abs=0)
    # An incumbent at the limit (simulated: the optimal point, reported as time-limited).
    real_solve = OccupancyProgram.solve

    def timed_out(self, cost, sense="max", **options):
        result = real_solve(self, cost, sense, **options)
        if not result.is_mip:
            return result
        limited = dataclasses.replace(result, status=SolveStatus.TIME_LIMIT, mip_gap=0.2)
        raise ja.errors.SolverTimeoutError("borda MILP hit the time limit", limited)

    monkeypatch.setattr(OccupancyProgram, "solve", timed_out)
    with pytest.warns(UserWarning, match="time limit; using the incumbent .* relative gap 0.2"):
        outcome = ja.rules.get("borda")(m, sample)
    assert outcome.info["optimal"] is False and outcome.info["mip_gap"] == 0.2
    assert ja.occupancy_polytope(m).residual(outcome.occupancy) <= 1e-8
    with pytest.raises(ja.errors.SolverTimeoutError, match="time limit"):
        ja.rules.get("borda")(m, sample, on_timeout="raise")


def best_two_agent_score(momdp, sample):
    """Oracle for two agents: the best empirical Borda score over O. The optimum has agent 0 at
    some count c of samples; the LP maximising J_1 subject to J_0 >= x_0(c) (lifted by 1e-7 of
    the range against LP tolerance) reaches at least both of its ranks, so the best exact score
    of those LP points, over every c (and no floor), is the optimum."""
    polytope = ja.occupancy_polytope(momdp)
    W = momdp.reward_matrix
    span = ja.return_bounds(momdp).span
    matrix = sp.vstack([polytope.E, sp.csr_matrix(W[:1])])
    best = -np.inf
    for floor in [-INF, *np.sort(sample.returns[:, 0]) + 1e-7 * span[0]]:
        result = solve(-W[1], matrix, np.concatenate([polytope.b, [floor]]), np.concatenate([polytope.b, [INF]]),
                       raise_on_failure=False)
        if result.ok:
            best = max(best, sample.rank(W @ result.x[:polytope.dim]).sum())
    return best


@pytest.mark.parametrize("seed", range(3))
def test_certified_within_n_over_N_of_the_two_agent_optimum(seed):
    rewards = np.random.default_rng(seed).random((2, 5))
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 400, seed=seed, precision="float64")
    outcome = ja.rules.get("borda")(m, sample, levels=4, certify=True)
    info, n, N = outcome.info, 2, 400
    optimum = best_two_agent_score(m, sample)
    assert info["certified"] and info["certified_gap"] <= n / N + 1e-12
    assert info["upper_bound"] >= optimum - 1e-9  # a valid bound
    assert optimum - n / N - 1e-9 <= info["borda_score"] <= optimum + 1e-9
    assert info["borda_score"] == pytest.approx(borda_score(outcome.returns, sample))


def test_the_certificate_bounds_every_policy_even_when_it_stops_early():
    rewards = np.random.default_rng(3).random((3, 3))
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 2000, seed=0, precision="float64")
    with pytest.warns(UserWarning, match="borda: proved the score within"):
        outcome = ja.rules.get("borda")(m, sample, levels=3, certify=True, certify_rounds=1)
    info = outcome.info
    assert info["certify_rounds"] == 1 and not info["certified"]
    a, b = np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201), indexing="ij")
    keep = a + b <= 1 + 1e-12
    grid = np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1)
    assert sample.rank(grid @ rewards.T).sum(axis=1).max() <= info["upper_bound"] + 1e-9
    assert info["certified_gap"] == pytest.approx(info["upper_bound"] - info["borda_score"])
    with pytest.raises(ValidationError, match="certify_rounds"):
        ja.rules.get("borda")(m, sample, certify=True, certify_rounds=0)


def floors_reachable(momdp, floors):
    """Whether some d in O has J_i(d) >= floors[i] for every agent, by one raw-return LP
    (independent of the rule's unit-scale floor rows)."""
    polytope = ja.occupancy_polytope(momdp)
    matrix = sp.vstack([polytope.E, sp.csr_matrix(momdp.reward_matrix)])
    result = solve(np.zeros(polytope.dim), matrix, np.concatenate([polytope.b, floors]),
                   np.concatenate([polytope.b, np.full(momdp.num_agents, INF)]), raise_on_failure=False)
    return result.ok


@pytest.mark.parametrize("start", ["none", "low"])
def test_local_step_ends_at_floors_no_agent_can_raise_alone(attention_3_3, attention_3_3_sample, start):
    momdp, sample = attention_3_3, attention_3_3_sample
    n, N = momdp.num_agents, sample.num_samples
    begin = np.full(n, -1) if start == "none" else np.arange(n) * 7
    common, final, solves = raise_floors(momdp, sample, begin)
    assert (common >= begin).all() and (final >= common).all() and solves
    at = lambda positions: sample.sorted_returns[positions, np.arange(n)]
    # the common raise: every agent at max(own, k) holds for k = min(common), and fails one position higher
    k = int(common.min())
    assert floors_reachable(momdp, at(np.maximum(begin, k)))
    if k < N - 1:
        assert not floors_reachable(momdp, at(np.maximum(begin, k + 1)))
    # the final floors hold together, and no agent alone reaches its next sample position (up to
    # values tied with its current floor, which the next position does not raise)
    assert floors_reachable(momdp, at(final))
    for i in range(n):
        if final[i] < N - 1:
            higher = final.copy()
            higher[i] = np.searchsorted(sample.sorted_returns[:, i], at(final)[i], side="right")
            if higher[i] < N:
                assert not floors_reachable(momdp, at(higher)), f"agent {i} could rise from position {final[i]}"
