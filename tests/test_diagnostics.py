"""Diagnostics (issue 14, item 4): the classic split R-hat and ESS, and Vehtari et al. (2021)'s
rank-normalised R-hat, bulk / tail / quantile ESS, against closed forms (independent draws, AR(1)
chains, shifted chains) and against ArviZ (``arviz-stats``, the oracle, in the ``test`` extra)."""

import numpy as np
import pytest

from jaxagg.diagnostics import (
    ESS_MINIMUM,
    RHAT_LIMIT,
    diagnose,
    effective_sample_size,
    ess_bulk,
    ess_quantile,
    ess_tail,
    rank_normalize,
    rhat,
    split_rhat,
)
from jaxagg.errors import ShapeError, ValidationError

ORACLE_RTOL = 1e-10  # the same estimator: agreement to rounding


def ar1(phi, chains, draws, seed, lead=()):
    rng = np.random.default_rng(seed)
    shape = (*lead, chains)
    x = np.zeros((*shape, draws))
    x[..., 0] = rng.normal(size=shape) / np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[..., t] = phi * x[..., t - 1] + rng.normal(size=shape)
    return x


def test_independent_draws():
    x = np.random.default_rng(0).normal(size=(8, 2000))
    assert split_rhat(x) == pytest.approx(1.0, abs=0.01)
    assert effective_sample_size(x) == pytest.approx(16000, rel=0.1)
    assert rhat(x) == pytest.approx(1.0, abs=0.01)
    assert ess_bulk(x) == pytest.approx(16000, rel=0.1)
    assert ess_tail(x) == pytest.approx(16000, rel=0.15)
    assert ess_quantile(x, 0.9) == pytest.approx(16000, rel=0.15)


def test_ar1_ess_matches_the_closed_form():
    phi = 0.8
    x = ar1(phi, 8, 5000, seed=1)
    expected = 8 * 5000 * (1 - phi) / (1 + phi)
    assert effective_sample_size(x) == pytest.approx(expected, rel=0.15)
    assert ess_bulk(x) == pytest.approx(expected, rel=0.15)  # a monotone map of a Gaussian AR(1): about the same


def test_chains_stuck_apart_have_large_rhat():
    x = np.random.default_rng(2).normal(size=(4, 500)) + np.array([0.0, 0.0, 3.0, 3.0])[:, None]
    assert split_rhat(x) > 1.5
    assert rhat(x) > 1.5
    assert ess_bulk(x) < ESS_MINIMUM


def test_rank_normalised_rhat_sees_a_scale_difference_the_classic_one_misses():
    """Same means, different spreads: only the folded (tail) R-hat notices (the paper's case)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 2000)) * np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    assert split_rhat(x) < RHAT_LIMIT + 0.01
    assert rhat(x) > 1.05


def test_vectorised_over_leading_axes():
    x = ar1(0.5, 4, 400, seed=4, lead=(3,))
    for statistic in (rhat, ess_bulk, ess_tail, split_rhat, effective_sample_size, lambda d: ess_quantile(d, 0.8)):
        batched = statistic(x)
        assert batched.shape == (3,)
        np.testing.assert_allclose(batched, [statistic(x[i]) for i in range(3)], rtol=1e-12)


def test_rank_normalize_gives_normal_scores():
    z = rank_normalize(np.random.default_rng(5).exponential(size=(4, 1000)))
    assert z.mean() == pytest.approx(0.0, abs=1e-12)
    assert z.std() == pytest.approx(1.0, abs=0.01)


def test_constant_draws():
    x = np.ones((4, 100))
    assert rhat(x) == 1.0 and split_rhat(x) == 1.0
    assert ess_bulk(x) == 400 and effective_sample_size(x) == 400


def test_diagnose_and_its_problems():
    good = diagnose(np.random.default_rng(6).normal(size=(2, 4, 500)))
    assert good.problems() == []
    assert set(good.ess_quantile) == {0.8, 0.9}
    np.testing.assert_allclose(good.ess_min, np.minimum.reduce([good.ess_bulk, good.ess_tail, *good.ess_quantile.values()]))
    bad = diagnose(ar1(0.99, 4, 200, seed=7), quantiles=[0.5])
    assert any("R-hat" in p for p in bad.problems()) and any("bulk ESS" in p for p in bad.problems())
    assert set(bad.ess_quantile) == {0.5}


def test_bad_arguments():
    with pytest.raises(ShapeError, match=r"draws: expected \[\.\.\., chains, draws\]"):
        split_rhat(np.zeros(10))
    with pytest.raises(ShapeError, match="draws"):
        rhat(np.zeros((4, 3)))
    with pytest.raises(ValidationError, match=r"prob: expected a quantile level in \(0, 1\)"):
        ess_quantile(np.zeros((4, 10)), 1.0)
    with pytest.raises(ValidationError, match="quantiles"):
        diagnose(np.zeros((4, 10)), quantiles=[0.5, "high"])


# ------------------------------------------------------------------ ArviZ as the oracle
CASES = {
    "iid": lambda: np.random.default_rng(10).normal(size=(3, 4, 500)),
    "ar1": lambda: ar1(0.9, 4, 1000, seed=11, lead=(2,)),
    "ar1-negative": lambda: ar1(-0.5, 4, 300, seed=12, lead=(2,)),
    "shifted": lambda: np.random.default_rng(13).normal(size=(2, 4, 300)) + np.array([0.0, 0.0, 1.0, 1.0])[:, None],
    "cauchy-odd": lambda: np.random.default_rng(14).standard_cauchy(size=(2, 4, 401)),
    "poor-short": lambda: ar1(0.99, 4, 51, seed=15, lead=(2,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_arviz(case):
    array_stats = pytest.importorskip("arviz_stats.base").array_stats
    x = CASES[case]()
    np.testing.assert_allclose(rhat(x), array_stats.rhat(x, method="rank"), rtol=ORACLE_RTOL)
    np.testing.assert_allclose(split_rhat(x), array_stats.rhat(x, method="split"), rtol=ORACLE_RTOL)
    np.testing.assert_allclose(ess_bulk(x), array_stats.ess(x, method="bulk"), rtol=ORACLE_RTOL)
    np.testing.assert_allclose(ess_tail(x), array_stats.ess(x, method="tail", prob=(0.05, 0.95)), rtol=ORACLE_RTOL)
    np.testing.assert_allclose(effective_sample_size(x), array_stats.ess(x, method="mean"), rtol=ORACLE_RTOL)
    for p in (0.5, 0.8, 0.9):
        np.testing.assert_allclose(ess_quantile(x, p), array_stats.ess(x, method="quantile", prob=p), rtol=ORACLE_RTOL)


# ------------------------------------------------------------------ where the uniform sampler applies them
def test_the_uniform_sampler_records_every_statistic_and_warns_on_the_modern_ones(tmp_path):
    import jaxagg as ja

    m = ja.envs.attention_allocation(2, 3, seed=0)
    with pytest.warns(ja.errors.MixingWarning, match="rank-normalised R-hat|ESS"):
        sample = ja.sample(m, 256, "uniform", seed=0, uniform_options={"thin": 1, "burn_in": 0})
    info = sample.info
    for key in ("rhat", "ess", "ess_bulk", "ess_tail", "split_rhat", "ess_classic"):
        assert len(info[key]) == 2, key
    assert set(info["ess_quantile"]) == {"0.8", "0.9"}
    checked = np.minimum.reduce([info["ess_bulk"], info["ess_tail"], *info["ess_quantile"].values()])
    np.testing.assert_allclose(info["ess"], checked)
    assert max(info["rhat"]) > RHAT_LIMIT or min(info["ess"]) < ESS_MINIMUM
    path = tmp_path / "s.npz"
    sample.save(path)  # the info stays JSON-serialisable
    assert ja.load_sample(path).info["ess_quantile"] == info["ess_quantile"]
