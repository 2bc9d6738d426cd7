"""Completions: the warm-started :class:`Completer` against one cold :func:`complete_above` per
threshold vector (the welfare optimum among the policies clearing the floors)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxagg.polytope import return_bounds
from jaxagg.rules.completion import Completer, complete_above
from jaxagg.rules.welfare import utilitarian_cost


def _candidates(sample, count: int, seed: int) -> list[np.ndarray]:
    """Threshold vectors ``[n]`` at random sorted sample positions (some agents without a floor)."""
    rng = np.random.default_rng(seed)
    n, N = sample.num_agents, sample.num_samples
    out = []
    for _ in range(count):
        positions = rng.integers(int(0.5 * N), int(0.97 * N), size=n)
        floors = sample.sorted_returns[positions, np.arange(n)]
        floors[rng.random(n) < 0.2] = -np.inf
        out.append(floors)
    return out


@pytest.mark.parametrize("completion", ["utilitarian-normalized", "utilitarian"])
def test_the_warm_completer_gives_the_cold_completion_optimum(completion, attention_2_3, attention_2_3_sample):
    m, sample = attention_2_3, attention_2_3_sample
    completer = Completer(m, completion)
    cost = utilitarian_cost(m, completion == "utilitarian-normalized")
    span = float(np.abs(cost).sum())
    for thresholds in _candidates(sample, 8, seed=1):
        warm, cold = completer.above(thresholds), complete_above(m, thresholds, completion)
        assert warm.occupancy @ cost == pytest.approx(cold.occupancy @ cost, abs=1e-9 * span)
        assert (warm.returns >= thresholds - 1e-9 * return_bounds(m).span).all()
        assert warm.rule == cold.rule and warm.info["welfare"] == pytest.approx(cold.info["welfare"], rel=1e-9, abs=1e-12)


def test_tight_thresholds_fall_back_to_the_thresholds_themselves(attention_2_3):
    """At every agent's maximum together the lifted floors are infeasible when the maxima are
    not reached by one policy; both paths then complete within the thresholds themselves, or
    raise the same way."""
    m = attention_2_3
    bounds = return_bounds(m)
    best_single = complete_above(m, np.where(np.arange(m.num_agents) == 0, bounds.upper, -np.inf), "utilitarian")
    thresholds = best_single.returns.copy()  # reachable exactly, so the unlifted floors are feasible
    warm = Completer(m, "utilitarian").above(thresholds)
    cold = complete_above(m, thresholds, "utilitarian")
    assert warm.occupancy @ utilitarian_cost(m, False) == pytest.approx(cold.occupancy @ utilitarian_cost(m, False), abs=1e-8)
    assert warm.returns[0] >= bounds.upper[0] - 1e-9 * bounds.span[0]


def test_other_completions_go_through_complete_above(attention_2_3, attention_2_3_sample):
    thresholds = _candidates(attention_2_3_sample, 1, seed=2)[0]
    warm = Completer(attention_2_3, "leximin-normalized").above(thresholds)
    cold = complete_above(attention_2_3, thresholds, "leximin-normalized")
    np.testing.assert_array_equal(warm.returns, cold.returns)
    with pytest.raises(ValueError, match="completion"):
        Completer(attention_2_3, "nash")


@pytest.mark.parametrize("completion", ["utilitarian-normalized", "egalitarian-normalized"])
def test_a_candidates_returns_are_its_outcomes(completion, garnet_average, garnet_average_sample):
    """Borda scores candidates by :attr:`Candidate.returns` and builds only the kept one's
    Outcome: the two must agree exactly, or the kept score would not be the reported one."""
    completer = Completer(garnet_average, completion)
    for thresholds in _candidates(garnet_average_sample, 3, seed=3):
        candidate = completer.candidate(thresholds)
        np.testing.assert_array_equal(candidate.returns, candidate.finish().returns)
