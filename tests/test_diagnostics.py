"""Split R-hat and ESS against known cases: independent draws, AR(1) chains, shifted chains."""

import numpy as np
import pytest

from jaxagg.diagnostics import effective_sample_size, split_rhat
from jaxagg.errors import ShapeError


def ar1(phi, chains, draws, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros((chains, draws))
    x[:, 0] = rng.normal(size=chains) / np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=chains)
    return x


def test_independent_draws():
    x = np.random.default_rng(0).normal(size=(8, 2000))
    assert split_rhat(x) == pytest.approx(1.0, abs=0.01)
    assert effective_sample_size(x) == pytest.approx(16000, rel=0.1)


def test_ar1_ess_matches_the_closed_form():
    phi = 0.8
    x = ar1(phi, 8, 5000, seed=1)
    expected = 8 * 5000 * (1 - phi) / (1 + phi)
    assert effective_sample_size(x) == pytest.approx(expected, rel=0.15)


def test_chains_stuck_apart_have_large_rhat():
    x = np.random.default_rng(2).normal(size=(4, 500)) + np.array([0.0, 0.0, 3.0, 3.0])[:, None]
    assert split_rhat(x) > 1.5


def test_bad_shape():
    with pytest.raises(ShapeError, match=r"draws: expected \[chains, draws\]"):
        split_rhat(np.zeros(10))
