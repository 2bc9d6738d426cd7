"""The contract every registered rule keeps, swept over the registry (a new rule is covered as
soon as it is registered): its outcome lies in O, says what it is (registry name, options,
solves) and is JSON-serialisable; its policy, evaluated exactly, gives its returns. Also the
registry's metadata filters, help texts, and the door's refusals (fixed or unknown options, a
sample of another instance)."""

import dataclasses
import functools
import inspect
import json
import pydoc

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.solvers.highs import SolveResult

CHEAP_OPTIONS = {"tune": {"steps": 20, "restarts": 2}}
"""Options (by family) that keep the sweep fast: the tuner's restarts and steps are keyword options."""

INSTANCES = ["garnet_average", "chain_discounted"]
"""One average-reward and one discounted instance, for every rule; each comes with ``<name>_sample``."""
MORE_INSTANCES = ["bandit", "chain_average", "garnet_discounted", "attention_2_3"]
"""For every rule but the tuner-based ones (each new instance compiles the ascent again), in the slow run."""
MULTICHAIN_INSTANCES = ["garnet_multichain"]
"""Average reward with two maximal end components (most outcomes carry a policy mixture): every
rule but the tuner-based ones, in the quick run."""
NOT_APPLICABLE = {("nash-raw", "attention_2_3")}
"""Attention's raw returns are negative, which nash-raw refuses (tests/rules/test_welfare.py checks it)."""

RETURN_RTOL = 1e-8
"""Exact policy evaluation must reproduce the outcome's returns to this, relative to the return range."""


def options_for(name):
    return dict(CHEAP_OPTIONS.get(ja.rules.get(name).family, {}))


def run(name, momdp, sample, **options):
    rule = ja.rules.get(name)
    return rule(momdp, sample, **options) if rule.needs_sample else rule(momdp, **options)


def tunes(name):
    """Whether the rule runs the gradient tuner (a tune-* rule, or a MIP start from it)."""
    rule = ja.rules.get(name)
    return rule.family == "tune" or rule.defaults.get("start") == "tune"


def contract_cases():
    """(rule, instance) for every registered rule on INSTANCES, and for the rules that do not
    tune on MORE_INSTANCES; slow: those on MORE_INSTANCES and the ones that run the tuner with
    its default options (``start="tune"``)."""
    cases = []
    for name in ja.rules.names():
        for instance in INSTANCES + ([] if tunes(name) else MORE_INSTANCES + MULTICHAIN_INSTANCES):
            if (name, instance) in NOT_APPLICABLE:
                continue
            slow = instance in MORE_INSTANCES or ja.rules.get(name).defaults.get("start") == "tune"
            cases.append(pytest.param(name, instance, marks=pytest.mark.slow) if slow else (name, instance))
    return cases


@pytest.mark.parametrize("name, instance", contract_cases())
def test_outcome_contract(request, instance, name):
    momdp, sample = request.getfixturevalue(instance), request.getfixturevalue(f"{instance}_sample")
    outcome = run(name, momdp, sample, **options_for(name))
    rule = ja.rules.get(name)

    # what it is
    assert outcome.rule == name
    assert isinstance(outcome, ja.Outcome)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.rule = "something else"

    # a point of O, its policy and its returns
    polytope = ja.occupancy_polytope(momdp)
    assert outcome.occupancy.shape == (momdp.dim,)
    assert polytope.residual(outcome.occupancy) <= 1e-8
    np.testing.assert_array_equal(outcome.returns, momdp.returns(outcome.occupancy))  # R d
    assert outcome.policy.shape == (momdp.num_states, momdp.num_actions)
    assert outcome.policy.min() >= 0.0
    np.testing.assert_allclose(outcome.policy.sum(axis=1), 1.0, atol=1e-12)
    bounds = ja.return_bounds(momdp)
    span = np.maximum(bounds.upper - bounds.lower, 1e-12)
    if outcome.mixture is None:  # the stationary policy reaches the returns
        exact = momdp.returns(ja.occupancy_of_policy(momdp, outcome.policy))
    else:  # a policy mixture of at most n + 1 deterministic policies does; the policy is its first
        assert momdp.criterion == "average" and 2 <= len(outcome.mixture) <= momdp.num_agents + 1
        weights = np.array([w for w, _ in outcome.mixture])
        assert (weights > 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-12) and (np.diff(weights) <= 0).all()
        assert all(np.isin(pi, [0.0, 1.0]).all() for _, pi in outcome.mixture)
        np.testing.assert_array_equal(outcome.policy, outcome.mixture[0][1])
        exact = sum(w * momdp.returns(ja.occupancy_of_policy(momdp, pi)) for w, pi in outcome.mixture)
    assert np.max(np.abs(exact - outcome.returns) / span) <= RETURN_RTOL

    # normalised returns
    assert outcome.normalized.shape == (momdp.num_agents,)
    assert np.all((outcome.normalized >= 0.0) & (outcome.normalized <= 1.0))
    np.testing.assert_allclose(outcome.normalized, np.clip(bounds.normalize(outcome.returns), 0.0, 1.0), atol=1e-12)

    # the options it ran with: the registry's defaults, then the caller's
    expected = {**rule.defaults, **options_for(name)}
    assert json.loads(json.dumps(outcome.params)) == outcome.params
    for key, value in expected.items():
        assert outcome.params[key] == value, key

    # its solves
    assert outcome.stats.solves == len(outcome.solves)
    assert outcome.stats.solve_time == pytest.approx(sum(s.solve_time for s in outcome.solves))
    assert all(isinstance(s, SolveResult) for s in outcome.solves)
    assert outcome.stats.wall_time > 0.0

    # a JSON summary
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data["rule"] == name and data["params"] == outcome.params
    np.testing.assert_array_equal(data["returns"], outcome.returns)
    with_policy = json.loads(json.dumps(outcome.to_dict(include_policy=True)))
    np.testing.assert_array_equal(with_policy["policy"], outcome.policy)
    if outcome.mixture is None:
        assert with_policy["mixture"] is None
    else:
        assert [m["weight"] for m in with_policy["mixture"]] == [w for w, _ in outcome.mixture]


# ------------------------------------------------------------------- metadata
WELFARE = ["utilitarian", "egalitarian", "leximin", "utilitarian-normalized", "egalitarian-normalized", "leximin-normalized",
           "nash", "nash-raw"]
RAW = ["utilitarian", "egalitarian", "leximin", "nash-raw"]


def test_names_lists_every_rule_once_in_registration_order():
    names = ja.rules.names()
    assert len(names) == len(set(names))
    assert names[: len(WELFARE)] == WELFARE
    for name in names:
        assert ja.rules.get(name).name == name
    families = {ja.rules.get(name).family for name in names}
    assert sorted(sum((ja.rules.names(f) for f in families), [])) == sorted(names)  # families partition the registry


def test_metadata_filters():
    names = ja.rules.names()
    assert ja.rules.names(needs_sample=False) == ja.rules.names("welfare") == WELFARE
    assert ja.rules.names(needs_sample=True) == [n for n in names if n not in WELFARE]
    invariant = ja.rules.names(invariant=True)
    assert not set(RAW) & set(invariant)
    assert ja.rules.names(invariant=False) == RAW
    assert set(ja.rules.names(needs_sample=True)) <= set(invariant)  # the volumetric rules only see ranks
    assert ja.rules.names("welfare", invariant=True) == ["utilitarian-normalized", "egalitarian-normalized",
                                                        "leximin-normalized", "nash"]
    approximate = ja.rules.names(exact=False)
    assert {"tune-quantile", "tune-borda", "tune-approval", "borda", "borda-concave"} <= set(approximate)
    assert not set(approximate) & set(WELFARE + ["max-quantile", "approval", "veto"])
    assert ja.rules.names("tune") == ["tune-quantile", "tune-borda", "tune-approval"]
    assert ja.rules.names("welfare", needs_sample=True) == []
    assert ja.rules.names("no such family") == []


@pytest.mark.parametrize("name", ja.rules.names())
def test_help_shows_the_metadata_and_the_function_docstring(name):
    rule = ja.rules.get(name)
    text = " ".join(pydoc.render_doc(rule, renderer=pydoc.plaintext).split())
    function = rule.function.func if isinstance(rule.function, functools.partial) else rule.function
    docstring = inspect.getdoc(function)
    assert docstring
    assert " ".join(docstring.split()) in text
    assert f"{name}: {rule.description}" in text
    assert "needs a sample" in text if rule.needs_sample else "needs no sample" in text
    for key, value in rule.defaults.items():
        assert f"{key!r}: {value!r}" in text


# --------------------------------------------------------------- the door
@pytest.mark.parametrize("name", [n for n in ja.rules.names() if ja.rules.get(n).defaults])
def test_overriding_a_fixed_option_is_refused(garnet_average, garnet_average_sample, name):
    rule = ja.rules.get(name)
    key, value = next(iter(rule.defaults.items()))
    other = {"normalized": not value, "q": 0.9, "start": None, "method": "milp", "objective": "approval"}[key]
    with pytest.raises(ValidationError, match=f"options: rule {name!r} fixes {key}={value!r}"):
        run(name, garnet_average, garnet_average_sample, **{key: other})


def test_approval_at_another_level_is_refused_by_its_variant(garnet_average, garnet_average_sample):
    with pytest.raises(ValidationError, match=r"rule 'approval-0\.8' fixes q=0\.8.*pick the variant you want: approval"):
        ja.rules.get("approval-0.8")(garnet_average, garnet_average_sample, q=0.9)


def test_a_tune_rule_refuses_another_objective(chain_discounted, chain_discounted_sample):
    with pytest.raises(ValidationError, match="rule 'tune-quantile' fixes objective='quantile'"):
        ja.rules.get("tune-quantile")(chain_discounted, chain_discounted_sample, objective="borda", **options_for("tune-quantile"))


@pytest.mark.parametrize("name", ja.rules.names())
def test_unknown_option_is_refused(garnet_average, garnet_average_sample, name):
    with pytest.raises(ValidationError, match=f"options: rule {name!r} takes .*; got 'no_such_option'"):
        run(name, garnet_average, garnet_average_sample, no_such_option=1)


@pytest.fixture(scope="module")
def foreign_sample(garnet_average):
    """A sample of another Garnet of the same shape (same number of agents, another seed)."""
    other = ja.envs.garnet(6, 3, 2, 3, seed=1)
    assert other.num_agents == garnet_average.num_agents and other.fingerprint != garnet_average.fingerprint
    return ja.sample(other, 1000, seed=0, precision="float64")  # as garnet_average_sample: nothing to compile


@pytest.mark.parametrize("name", ja.rules.names(needs_sample=True))
def test_a_sample_of_another_instance_is_refused(garnet_average, foreign_sample, name):
    with pytest.raises(ValidationError, match="sample: was drawn for a different instance than MOMDP<garnet"):
        ja.rules.get(name)(garnet_average, foreign_sample, **options_for(name))


@pytest.mark.parametrize("name", ja.rules.names(needs_sample=True))
def test_a_sample_is_required_and_checked(garnet_average, garnet_average_sample, name):
    rule = ja.rules.get(name)
    with pytest.raises(ValidationError, match=f"sample: rule {name!r} needs a sample"):
        rule(garnet_average)
    with pytest.raises(ValidationError, match="sample: expected a jaxagg.ReturnSample"):
        rule(garnet_average, garnet_average_sample.returns)
    unbound = ja.ReturnSample(garnet_average_sample.returns, "policy")
    with pytest.raises(ValidationError, match="sample: carries no instance fingerprint"):
        rule(garnet_average, unbound)


@pytest.mark.parametrize("name", ja.rules.names())
def test_a_momdp_is_required(garnet_average_sample, name):
    with pytest.raises(ValidationError, match="momdp: expected a jaxagg.MOMDP, got ndarray"):
        ja.rules.get(name)(np.zeros((2, 2, 2)), garnet_average_sample)
