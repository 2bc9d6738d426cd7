"""Sweep specs: every bad key or value is one clear error before anything runs; grids expand to
the right cells; a cell's key is its identity (defaults filled in, files by content)."""

import copy
from pathlib import Path

import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.sweeps import load_spec
from jaxagg.sweeps.spec import swept_parameter

BASE = {
    "name": "t",
    "instances": [{"env": "garnet", "states": 6, "actions": 2, "agents": [2, 3], "seed": {"start": 0, "count": 2}}],
    "sample": {"num_samples": 100},
    "rules": ["egalitarian", "max-quantile"],
}


def spec_with(path, value):
    """BASE with the entry at ``path`` (keys and list indices) set to ``value`` (``...``: removed)."""
    spec = copy.deepcopy(BASE)
    target = spec
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return spec


BAD = [
    (("colour",), "blue", "spec: unknown key(s) 'colour'"),
    (("name",), 3, "name: expected a string"),
    (("instances",), ..., "instances: expected at least one"),
    (("instances",), [], "instances: expected a list of tables"),
    (("instances",), ["garnet"], "instances[0]: expected a table"),
    (("instances", 0, "env"), "gridworld", "instances[0].env: expected one of 'attention', 'garnet', 'file'"),
    (("instances", 0, "states"), 0, "instances[0].states: expected an integer >= 1, got 0"),
    (("instances", 0, "states"), 2.5, "instances[0].states: expected an integer >= 1, got 2.5"),
    (("instances", 0, "agents"), [2, "three"], "instances[0].agents: expected an integer >= 1, got 'three'"),
    (("instances", 0, "agents"), [], "instances[0].agents: expected a value or a non-empty list"),
    (("instances", 0, "seed"), -1, "instances[0].seed: expected an integer in [0, 2**32)"),
    (("instances", 0, "seed"), {"start": 0}, "instances[0].seed: a range is {start, count}"),
    (("instances", 0, "seed"), {"start": 0, "count": 0}, "instances[0].seed.count: expected an integer >= 1"),
    (("instances", 0, "seed"), {"start": 5, "stop": 5}, "instances[0].seed.stop: expected an integer >= 6"),
    (("instances", 0, "criterion"), "total", "instances[0].criterion: expected one of 'average', 'discounted'"),
    (("instances", 0, "gamma"), 0.9, "instances[0].gamma: only meaningful with criterion = \"discounted\""),
    (("instances", 0, "factories"), 3, "instances[0] (env 'garnet'): unknown key(s) 'factories'"),
    (("sample", "measure"), "sobol", "sample.measure: expected one of 'policy', 'uniform', 'hull'"),
    (("sample", "num_samples"), 0, "sample.num_samples: expected an integer >= 1"),
    (("sample", "seed"), "random", "sample.seed: expected an integer in [0, 2**32)"),
    (("sample", "precision"), "float16", "sample.precision: expected one of 'auto', 'float32', 'float64'"),
    (("sample", "rules"), ["leximin"], "in TOML, keys after a [table] header belong to that table"),
    (("sample",), "policy", "sample: expected a table"),
    (("rules",), [], "rules: expected a non-empty list"),
    (("rules",), ["leximax"], "rules[0].name: rule: unknown rule 'leximax'"),
    (("rules",), [{"name": "approval", "options": {"threshold": 0.7}}], "rules[0].options: rule 'approval' takes q"),
    (("rules",), [{"name": "approval-0.8", "options": {"q": 0.7}}], "rules[0].options: rule 'approval-0.8' fixes q"),
    (("rules",), [{"rule": "leximin"}], "rules[0]: unknown key(s) 'rule'"),
    (("rules",), [7], "rules[0]: expected a rule name or a {name, options} table"),
    (("method",), "fast", "method: expected one of 'exact', 'tune', 'refine'"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[m for _, _, m in BAD])
def test_every_bad_field_is_one_clear_error(path, value, message):
    with pytest.raises(ValidationError) as caught:
        load_spec(spec_with(path, value))
    assert message in str(caught.value)


def test_sample_evaluation_only_for_the_policy_measure():
    with pytest.raises(ValidationError, match="sample.evaluation: only for measure \"policy\""):
        load_spec(spec_with(("sample",), {"measure": "hull", "evaluation": "lu"}))


def test_rules_that_need_a_sample_get_a_default_one_and_welfare_rules_none():
    assert load_spec(spec_with(("sample",), ...)).samples[0].num_samples == 20_000
    welfare = spec_with(("sample",), ...)
    welfare["rules"] = ["leximin"]
    assert load_spec(welfare).samples == (None,)


def test_grid_expands_to_the_product_and_keys_fill_in_defaults():
    spec = load_spec(BASE)
    assert len(spec.instances) == 4 and spec.num_cells == 8
    assert [(i.params["agents"], i.params["seed"]) for i in spec.instances] == [(2, 0), (2, 1), (3, 0), (3, 1)]
    spelled_out = spec_with(("instances", 0, "branching"), 2)  # the default, written out
    spelled_out["instances"][0]["criterion"] = "average"
    assert [c.key for c in load_spec(spelled_out).cells()] == [c.key for c in spec.cells()]
    other = load_spec(spec_with(("sample", "num_samples"), 101))
    assert not {c.key for c in other.cells()} & {c.key for c in spec.cells()}
    assert swept_parameter(spec) == "agents"


def test_methods_replace_rules_and_duplicates_collapse():
    spec = load_spec({**BASE, "rules": ["max-quantile", "leximin", "max-quantile"], "method": ["exact", "tune"]})
    assert [(r.name, r.method, r.requested) for r in spec.rules] == [
        ("max-quantile", "exact", "max-quantile"), ("tune-quantile", "tune", "max-quantile"), ("leximin", "exact", "leximin")]


def test_toml_file_and_instance_files_relative_to_it(tmp_path):
    folder = tmp_path / "instances"
    ja.envs.garnet(5, 2, 2, 2, seed=1).save(folder / "a.npz")
    ja.envs.garnet(5, 2, 2, 2, seed=2).save(folder / "b.json")
    (folder / "notes.txt").write_text("not an instance")
    spec_file = tmp_path / "s.toml"
    spec_file.write_text('rules = ["leximin"]\n[[instances]]\nenv = "file"\npath = "instances"\n')
    spec = load_spec(spec_file)
    assert spec.name == "s" and [i.label() for i in spec.instances] == ["a.npz", "b.json"]
    assert spec.instances[0].build().fingerprint == ja.envs.garnet(5, 2, 2, 2, seed=1).fingerprint
    moved = tmp_path / "moved"
    folder.rename(moved)  # the same bytes elsewhere are the same instances
    spec_file.write_text('rules = ["leximin"]\n[[instances]]\nenv = "file"\npath = ["moved/a.npz", "moved/b.json"]\n')
    assert [i.key for i in load_spec(spec_file).instances] == [i.key for i in spec.instances]


@pytest.mark.parametrize("text, message", [
    ("rules = [", "is not valid TOML"),
    ('rules = ["leximin"]\n[[instances]]\nenv = "file"\npath = "missing.npz"\n', "no such file or folder"),
    ('rules = ["leximin"]\n[[instances]]\nenv = "file"\n', "env \"file\" needs a path"),
])
def test_bad_toml_files(tmp_path, text, message):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(text)
    with pytest.raises(ValidationError, match=message):
        load_spec(spec_file)


def test_spec_path_must_be_a_toml_file(tmp_path):
    with pytest.raises(ValidationError, match="expected a .toml file"):
        load_spec(tmp_path / "s.yaml")
    with pytest.raises(ValidationError, match="no such file"):
        load_spec(tmp_path / "s.toml")


def test_the_example_specs_are_valid():
    examples = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))
    assert {p.stem for p in examples} >= {"paper-base", "paper-subsets", "attention-scaling", "garnet-agents"}
    counts = {p.stem: load_spec(p).num_cells for p in examples}
    assert counts["garnet-agents"] == 4 * 20 * 6 and counts["attention-scaling"] == 4 * 5 * 6
    assert counts["paper-base"] == counts["paper-subsets"] == 5 * 6
