"""max-quantile against independent oracles: a linear scan of LP feasibility over every sample
index, a grid over the simplex, the rank certificate, Grünbaum's 1/e bound, and invariance."""

import math

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.solvers.highs import INF, solve


def scan_q_star(momdp, sample):
    """Largest k with {d in O : J_i(d) >= x_i[k]} non-empty, by fresh LPs from the top down."""
    polytope = ja.occupancy_polytope(momdp)
    import scipy.sparse as sp

    matrix = sp.vstack([polytope.E, sp.csr_matrix(momdp.reward_matrix)])
    for k in range(sample.num_samples, -1, -1):
        floors = sample.quantile_of_index(k)
        result = solve(np.zeros(polytope.dim), matrix, np.concatenate([polytope.b, floors]),
                       np.concatenate([polytope.b, np.full(momdp.num_agents, INF)]), raise_on_failure=False)
        if result.ok:
            return 1.0 if k == sample.num_samples else (k + 1) / sample.num_samples
    return 0.0


def simplex_grid(steps):
    a, b = np.meshgrid(np.arange(steps + 1), np.arange(steps + 1), indexing="ij")
    keep = a + b <= steps
    return np.stack([a[keep], b[keep], steps - a[keep] - b[keep]], axis=1) / steps


@pytest.mark.parametrize("seed", range(3))
def test_bandit_q_star_matches_the_linear_scan_and_a_grid(seed):
    rewards = np.random.default_rng(seed).random((3, 3))
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 300, seed=seed)
    outcome = ja.rules.get("max-quantile")(m, sample)
    q_star = outcome.info["q_star"]
    assert q_star == scan_q_star(m, sample)
    grid_returns = simplex_grid(200) @ rewards.T  # [k, n]
    grid_best = sample.rank(grid_returns).min(axis=1).max()
    assert grid_best <= q_star <= grid_best + 0.02
    assert sample.rank(outcome.returns).min() >= q_star  # the certificate


@pytest.mark.parametrize("seed", range(6))
def test_uniform_measure_on_a_simplex_reaches_one_over_e(seed):
    # One state: the policy measure is Dirichlet(1) on the simplex, i.e. uniform on O, so
    # Grünbaum's theorem promises a 1/e-quantile-fair policy (up to sampling error).
    rng = np.random.default_rng(100 + seed)
    m = ja.envs.bandit(rng.normal(size=(rng.integers(2, 6), rng.integers(3, 6))))
    sample = ja.sample(m, 4000, seed=seed)
    outcome = ja.rules.get("max-quantile")(m, sample)
    assert outcome.info["q_star"] >= 1 / math.e - outcome.info["dkw_band"]


@pytest.mark.parametrize("completion", ["utilitarian-normalized", "utilitarian", "egalitarian", "leximin-normalized"])
def test_attention_certificate_and_completion(completion):
    m = ja.envs.attention_allocation(3, 3, seed=2)
    sample = ja.sample(m, 2000, seed=1)
    outcome = ja.rules.get("max-quantile")(m, sample, completion=completion)
    q_star = outcome.info["q_star"]
    assert q_star == scan_q_star(m, sample)
    assert sample.rank(outcome.returns).min() >= q_star
    assert ja.occupancy_polytope(m).residual(outcome.occupancy) <= 1e-8
    assert outcome.info["bisection_lps"] <= math.ceil(math.log2(sample.num_samples + 2)) + 1
    # the completion really optimises among the q*-fair policies
    best = ja.rules.get(completion)(m).returns
    floors = np.array(outcome.info["thresholds"])
    if (best >= floors).all():
        np.testing.assert_allclose(outcome.returns, best, rtol=1e-6)


def test_invariant_to_a_positive_affine_change_of_one_agent():
    m = ja.envs.garnet(8, 3, 8, agents=3, seed=4)
    sample = ja.sample(m, 1000, seed=0, precision="float64")
    base = ja.rules.get("max-quantile")(m, sample)
    R = m.R.copy()
    R[1] = 4.0 * R[1] - 2.0
    changed = ja.rules.get("max-quantile")(m.with_rewards(R), sample.affine(1, 4.0, -2.0).bind(m.with_rewards(R)))
    assert changed.info["q_star"] == base.info["q_star"]
    np.testing.assert_allclose(changed.occupancy, base.occupancy, atol=1e-7)


def test_bad_inputs(attention_2_3, attention_2_3_sample, attention_3_3_sample):
    m = attention_2_3
    with pytest.raises(ValidationError, match="sample: rule 'max-quantile' needs a sample"):
        ja.rules.get("max-quantile")(m)
    other = attention_3_3_sample
    with pytest.raises(ValidationError, match="sample: expected returns of 2 agents for MOMDP<attention: S=9, A=3, n=2, average>, got 3"):
        ja.rules.get("max-quantile")(m, other)
    same_size = ja.sample(ja.envs.attention_allocation(2, 3, seed=1), 50)
    with pytest.raises(ValidationError, match="sample: was drawn for a different instance than MOMDP<attention: S=9"):
        ja.rules.get("max-quantile")(m, same_size)
    with pytest.raises(ValidationError, match="completion: expected one of"):
        ja.rules.get("max-quantile")(m, attention_2_3_sample, completion="borda")


@pytest.mark.parametrize("seed", range(3))
def test_highest_level_equals_a_scan_of_feasibility_lps(seed, garnet_average, garnet_average_sample):
    """:func:`highest_level` (max-min-margin probes with jumps) against the largest level whose
    floors a plain feasibility LP accepts, found by scanning down from the top; floors as in
    Borda's common raise: agent i at sorted position max(start_i, k)."""
    from jaxagg.rules.base import LevelProbe, floored_program, highest_level

    m, sample = garnet_average, garnet_average_sample
    N, n = sample.num_samples, m.num_agents
    start = np.random.default_rng(seed).integers(-1, N // 2, size=n)

    def floors_at(k):
        positions = np.maximum(start, k)
        return np.where(positions >= 0, sample.sorted_returns[np.maximum(positions, 0), np.arange(n)], -INF)

    def feasible(k):
        program = floored_program(m, floors_at(k))
        return program.build(np.zeros(program.num_cols), sense="max").solve(raise_on_failure=False).ok

    def reached(returns):
        return min(int(np.searchsorted(sample.sorted_returns[:, i], returns[i], side="right")) - 1 for i in range(n))

    solves = []
    found = highest_level(LevelProbe(m, "test probe"), floors_at, reached, -1, N - 1, solves)
    assert feasible(found) and (found == N - 1 or not feasible(found + 1))
    assert 0 < len(solves) <= math.ceil(math.log2(N + 1))
