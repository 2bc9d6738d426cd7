"""Comparison's exports: to_pandas, the agents' rankings of the outcomes, and the pref_voting
profile built from them (checked against margins and a Copeland winner computed here)."""

import itertools
import sys

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError

RULES = ["utilitarian", "egalitarian", "leximin", "nash", "utilitarian-normalized"]


@pytest.fixture(scope="module")
def comparison():
    m = ja.envs.bandit(np.random.default_rng(0).random((3, 4)))
    sample = ja.sample(m, 500, seed=0, precision="float64")
    return ja.compare(m, RULES, sample)


def test_to_pandas_has_one_row_per_rule_with_the_rows_values(comparison):
    frame = comparison.to_pandas()
    labels = comparison.momdp.labels()
    assert frame["rule"].tolist() == RULES
    for row, (_, got) in zip(comparison.rows(), frame.iterrows()):
        assert [got[f"% max {label}"] for label in labels] == pytest.approx(row["percent_of_max"])
        assert [got[f"rank {label}"] for label in labels] == pytest.approx(row["ranks"])
        for key in ("min", "gini", "nash_welfare", "quantile_level", "borda_score", "approvals_0.9"):
            assert got[key] == pytest.approx(row[key])


def test_agent_rankings_order_outcomes_by_each_agents_return(comparison):
    tolerance = 1e-6
    returns = np.stack([o.returns for o in comparison.outcomes])
    span = ja.return_bounds(comparison.momdp).span
    rankings = comparison.agent_rankings(tolerance)
    assert len(rankings) == comparison.momdp.num_agents
    for i, ranks in enumerate(rankings):
        assert sorted(ranks) == list(range(len(RULES)))
        assert sorted(set(ranks.values())) == list(range(1, max(ranks.values()) + 1))  # dense
        assert ranks[int(np.argmax(returns[:, i]))] == 1
        for j, k in itertools.permutations(range(len(RULES)), 2):
            if returns[j, i] > returns[k, i] + tolerance * span[i]:
                assert ranks[j] < ranks[k]
            elif abs(returns[j, i] - returns[k, i]) <= tolerance * span[i]:
                assert ranks[j] == ranks[k]
    with pytest.raises(ValidationError, match="tolerance"):
        comparison.agent_rankings(-1.0)


def test_to_pref_voting_profile_matches_the_rankings(comparison):
    from pref_voting.voting_methods import copeland  # the 'voting' extra, in [test]

    rankings = comparison.agent_rankings()
    profile = comparison.to_pref_voting()
    k = len(RULES)
    assert profile.num_voters == comparison.momdp.num_agents and profile.candidates == list(range(k))
    assert [profile.cmap[j] for j in range(k)] == RULES
    margins = np.zeros((k, k), int)
    for ranks in rankings:
        for a, b in itertools.permutations(range(k), 2):
            margins[a, b] += int(ranks[a] < ranks[b]) - int(ranks[b] < ranks[a])
    for a, b in itertools.permutations(range(k), 2):
        assert profile.margin(a, b) == margins[a, b]
    scores = (margins > 0).sum(axis=1) - (margins < 0).sum(axis=1)
    assert sorted(copeland(profile)) == np.flatnonzero(scores == scores.max()).tolist()


def test_missing_optional_packages_are_named(comparison, monkeypatch):
    monkeypatch.setitem(sys.modules, "pref_voting.profiles_with_ties", None)
    with pytest.raises(ValidationError, match=r"to_pref_voting: needs pref_voting.*jaxagg\[voting\]"):
        comparison.to_pref_voting()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ValidationError, match="to_pandas: needs pandas"):
        comparison.to_pandas()
