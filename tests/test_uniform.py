"""The uniform measure (hit-and-run): exact marginals on a simplex, a closed-form return CDF,
points in O, and Grünbaum's 1/e bound."""

import math

import numpy as np
import pytest
import scipy.stats as st

import jaxagg as ja
from jaxagg.solvers.interior import analytic_center, parametrise_hull
from jaxagg.solvers.polytope import build_polytope

MIXED = {"thin": 30}  # thinning well above the hull dimension, so kept points are nearly independent


def dirichlet_linear_cdf(r, t):
    """P(<r, x> <= t) for x uniform on the simplex (distinct r): 1 - sum_i (r_i - t)_+^{m-1} / prod_{j != i} (r_i - r_j)."""
    r = np.asarray(r, dtype=float)
    m = r.size
    t = np.asarray(t, dtype=float)[..., None]
    denominators = np.array([np.prod([r[i] - r[j] for j in range(m) if j != i]) for i in range(m)])
    return 1.0 - (np.clip(r - t, 0.0, None) ** (m - 1) / denominators).sum(axis=-1)


@pytest.mark.slow
def test_simplex_marginals_are_beta_and_linear_returns_match_the_closed_form():
    m_arms = 4
    rewards = np.array([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.55, 0.3]])
    m = ja.envs.bandit(rewards)
    sample = ja.sample(m, 3000, "uniform", seed=0, precision="float64", uniform_options=MIXED)
    # agent 0's return is the first coordinate: Beta(1, m-1)
    assert st.kstest(sample.returns[:, 0], st.beta(1, m_arms - 1).cdf).pvalue > 0.01
    assert st.kstest(sample.returns[:, 1], lambda t: dirichlet_linear_cdf(rewards[1], t)).pvalue > 0.01


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::jaxagg.errors.MixingWarning")  # feasibility, not mixing, is checked here
def test_points_lie_in_O_in_float64():
    m = ja.envs.attention_allocation(2, 3, seed=1)
    from jaxagg.uniform import uniform_occupancies

    d, settings = uniform_occupancies(m, 200, seed=3, thin=10, precision="float64")
    polytope = ja.occupancy_polytope(m)
    assert d.min() >= -1e-9
    assert np.abs(polytope.E @ d.T - polytope.b[:, None]).max() <= 1e-7
    assert settings["hull_dimension"] == parametrise_hull(polytope).dimension
    # float32 chains are re-projected onto the hull at every kept point: no drift beyond float32
    d32, _ = uniform_occupancies(m, 200, seed=3, thin=20, precision="float32")
    assert d32.min() >= 0.0 and np.abs(polytope.E @ d32.T - polytope.b[:, None]).max() <= 1e-6


def test_hull_parametrisation_finds_support_and_interior():
    # two absorbing states: under the average criterion the occupancy of the transient (s, a)
    # pairs is zero on all of O
    P = np.zeros((3, 2, 3))
    P[0, :, 1] = 1.0
    P[1, :, 1] = 1.0
    P[2, :, 2] = 1.0
    polytope = build_polytope(P, np.full(3, 1 / 3), None, multichain=False)  # the flow polytope (two end components)
    hull = parametrise_hull(polytope)
    assert hull.support.tolist() == [False, False, True, True, True, True]
    assert hull.center[hull.support].min() > 0
    assert polytope.residual(hull.center) <= 1e-9
    assert hull.dimension == 3  # 4 free coordinates, one equation sum d = 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_max_quantile_reaches_one_over_e_under_the_uniform_measure(seed):
    m = ja.envs.garnet(3, 2, 3, agents=3, seed=seed)
    sample = ja.sample(m, 2000, "uniform", seed=seed, uniform_options=MIXED)
    outcome = ja.rules.get("max-quantile")(m, sample)
    assert outcome.info["q_star"] >= 1 / math.e - outcome.info["dkw_band"]


@pytest.mark.slow
def test_unmixed_chains_are_flagged_and_diagnostics_recorded():
    m = ja.envs.attention_allocation(2, 3, seed=0)
    with pytest.warns(ja.errors.MixingWarning, match="chains may not have mixed"):
        sample = ja.sample(m, 256, "uniform", seed=0, uniform_options={"thin": 1, "burn_in": 0})
    assert len(sample.info["rhat"]) == 2 and len(sample.info["ess"]) == 2
    assert max(sample.info["rhat"]) > 1.01 or min(sample.info["ess"]) < 400


@pytest.mark.slow
def test_well_mixed_simplex_passes_the_diagnostics(recwarn):
    m = ja.envs.bandit(np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]]))
    sample = ja.sample(m, 4000, "uniform", seed=1, uniform_options={"thin": 20})
    assert max(sample.info["rhat"]) <= 1.01 and min(sample.info["ess"]) >= 400
    assert not [w for w in recwarn if issubclass(w.category, ja.errors.MixingWarning)]


def test_uniform_samples_cannot_be_resumed_or_indexed():
    m = ja.envs.bandit(np.eye(3))
    sample = ja.sample(m, 64, "uniform", seed=0, uniform_options={"thin": 5})
    with pytest.raises(ja.errors.ValidationError, match="come from Markov chains, not from indexed draws"):
        ja.extend(m, sample, 10)
    with pytest.raises(ja.errors.ValidationError, match="'uniform' points come from Markov chains"):
        ja.sample_occupancies(m, [0], measure="uniform")


@pytest.mark.slow
def test_analytic_center_of_a_simplex_and_of_a_badly_scaled_polytope():
    m = ja.envs.bandit(np.array([[1.0, 0.0, 0.0, 0.0]]))
    center, _ = analytic_center(parametrise_hull(ja.occupancy_polytope(m)))
    np.testing.assert_allclose(center, 0.25, atol=1e-10)
    # attention (5, 3): occupancies span 1e-8 .. 1e-2 at the centre; the LP there once came back
    # "optimal" with a point HiGHS flagged infeasible by 1e-9 (now accepted, residual checked).
    m = ja.envs.attention_allocation(5, 3, seed=0)
    polytope = ja.occupancy_polytope(m)
    hull = parametrise_hull(polytope)
    center, _ = analytic_center(hull)
    x = center[hull.support]
    assert x.min() > 0 and polytope.residual(center) < 1e-12
    assert np.abs(hull.basis.T @ (1.0 / x)).max() <= 1e-6 * np.abs(1.0 / x).max()  # barrier gradient vanishes


def test_uniform_options_are_validated():
    m = ja.envs.bandit(np.eye(3))
    with pytest.raises(ja.errors.ValidationError, match="uniform_options: expected a dict with keys among"):
        ja.sample(m, 10, "uniform", uniform_options={"thinning": 3})
    with pytest.raises(ja.errors.ValidationError, match="directions: expected one of 'coordinate', 'random', got 'gibbs'"):
        ja.sample(m, 10, "uniform", uniform_options={"directions": "gibbs"})


@pytest.mark.slow
def test_random_directions_sample_the_simplex_and_progress_is_reported():
    rewards = np.array([[1.0, 0.0, 0.0, 0.0]])
    seen = []
    sample = ja.sample(ja.envs.bandit(rewards), 2000, "uniform", seed=1, precision="float64", progress=seen.append,
                       uniform_options={"directions": "random", "thin": 5})
    assert st.kstest(sample.returns[:, 0], st.beta(1, 3).cdf).pvalue > 0.01
    assert sum(seen) == 2000 and len(seen) > 1
    assert sample.info["directions"] == "random" and sample.info["thin"] == 5


def test_the_default_thinning_doubles_until_the_diagnostics_pass():
    """Without burn-in the chains start together at the centre: R-hat fails at the first
    thinning, and the sampler doubles it (same chains, every other point kept) until R-hat <= 1.01
    and every ESS reaches the target; with no doublings allowed it warns with what it reached."""
    m = ja.envs.attention_allocation(3, 3, seed=0)
    options = {"burn_in": 0}
    sample = ja.sample(m, 1000, "uniform", seed=0, uniform_options=options)
    info = sample.info
    assert info["thin_doublings"] >= 1 and info["thin"] == 10 * 2 ** info["thin_doublings"] and info["mixing_met"]
    assert max(info["rhat"]) <= 1.01 and min(info["ess"]) >= info["ess_target"] == 400
    np.testing.assert_array_equal(ja.sample(m, 1000, "uniform", seed=0, uniform_options=options).returns, sample.returns)
    bounds = ja.return_bounds(m)  # the kept points are points of O: their returns lie within the bounds
    assert (sample.returns >= bounds.lower - 1e-6 * bounds.span).all() and (sample.returns <= bounds.upper + 1e-6 * bounds.span).all()
    with pytest.warns(ja.errors.MixingWarning, match=r"after 0 doubling\(s\) of the thinning"):
        capped = ja.sample(m, 1000, "uniform", seed=0, uniform_options={**options, "max_doublings": 0})
    assert capped.info["thin"] == 10 and capped.info["thin_doublings"] == 0 and not capped.info["mixing_met"]


@pytest.mark.filterwarnings("ignore::jaxagg.errors.MixingWarning")  # thin 7 is too short here: what is kept is checked
def test_an_explicit_thin_is_kept_and_the_target_is_at_most_half_the_sample():
    m = ja.envs.attention_allocation(2, 3, seed=0)
    sample = ja.sample(m, 300, "uniform", seed=0, uniform_options={"thin": 7})
    assert sample.info["thin"] == 7 and sample.info["thin_doublings"] == 0 and sample.info["ess_target"] == 150
    for bad in ({"ess_target": -1}, {"max_doublings": 1.5}, {"max_seconds": 0}):
        with pytest.raises(ja.errors.ValidationError, match=next(iter(bad))):
            ja.sample(m, 10, "uniform", uniform_options=bad)
