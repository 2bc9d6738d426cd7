"""Metrics against closed forms."""

import numpy as np
import pytest

from jaxagg import metrics
from jaxagg.errors import ShapeError


def test_gini_closed_forms():
    assert metrics.gini([0.5, 0.5, 0.5]) == 0.0
    # one agent has everything: (n - 1) / n
    assert metrics.gini([0.0, 0.0, 0.0, 1.0]) == pytest.approx(0.75)
    # two agents: |a - b| / (2 (a + b))
    assert metrics.gini([0.2, 0.6]) == pytest.approx(0.4 / 1.6)
    assert metrics.gini([0.0, 0.0]) == 0.0


def test_gini_matches_brute_force_double_sum():
    u = np.random.default_rng(0).random(7)
    brute = sum(abs(a - b) for a in u for b in u) / (2 * len(u) * u.sum())
    assert metrics.gini(u) == pytest.approx(brute)


def test_nash_welfare_and_min():
    assert metrics.nash_welfare([0.25, 1.0]) == pytest.approx(0.5)
    assert metrics.nash_welfare([0.0, 1.0]) == 0.0
    assert metrics.min_normalized([0.3, 0.1, 0.9]) == pytest.approx(0.1)
    summary = metrics.welfare_summary([0.25, 1.0])
    assert summary == pytest.approx({"min": 0.25, "mean": 0.625, "gini": 0.75 / 2.5, "nash_welfare": 0.5})


@pytest.mark.parametrize("bad", [[], [[0.1, 0.2]]])
def test_metrics_reject_non_vectors(bad):
    with pytest.raises(ShapeError, match="u: expected a non-empty vector"):
        metrics.gini(bad)


def test_pareto_improvement_certifies_welfare_optima_and_finds_slack(attention_3_3, bandit):
    import jaxagg as ja

    m = attention_3_3
    for name in ("utilitarian", "leximin", "nash"):
        assert metrics.pareto_improvement(m, ja.rules.get(name)(m).returns) <= 1e-6
    # the egalitarian optimum of a bandit with a dominated arm mix can be improved
    # (the bandit fixture: rewards [[1, 0, 0.5], [0, 1, 0.5]])
    assert metrics.pareto_improvement(bandit, np.array([0.2, 0.2])) == pytest.approx(0.6, abs=1e-6)
