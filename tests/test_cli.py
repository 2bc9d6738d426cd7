"""The jaxagg command: the README's main job, files, and one-line errors for bad input."""

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.cli import main
from jaxagg.errors import VersionWarning


def test_run_default_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(["run", "--quiet", "--rules", "utilitarian,leximin,nash", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MOMDP<attention: S=243, A=6, n=5, average>" in text
    for name in ("utilitarian", "leximin", "nash", "min%", "gini"):
        assert name in text
    data = json.loads(out.read_text())
    assert [r["rule"] for r in data["rules"]] == ["utilitarian", "leximin", "nash"]
    assert len(data["rules"][1]["percent_of_max"]) == 5
    assert data["instance"]["info"]["seed"] == 0


def test_env_then_run_from_file(tmp_path, capsys):
    path = tmp_path / "g.npz"
    assert main(["env", "--env", "garnet", "--states", "6", "--num-agents", "2", "--criterion", "discounted", "--out", str(path)]) == 0
    m = ja.load(path)
    assert (m.num_states, m.num_agents, m.gamma) == (6, 2, 0.95)
    assert main(["run", "--quiet", "--momdp", str(path), "--rules", "egalitarian"]) == 0
    assert "S=6, A=3, n=2, discounted(gamma=0.95)" in capsys.readouterr().out


def test_rules_lists_rules(capsys):
    assert main(["rules"]) == 0
    assert "leximin-normalized" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["run", "--env", "gridworld"], "argument --env: invalid choice: 'gridworld'"),
        (["run", "--rules", "nope"], "rule: unknown rule 'nope'"),
        (["run", "--rules", "max-quantile", "--num-samples", "0"], "rules: volumetric rules need a sample; pass --samples PATH"),
        (["run", "--gamma", "0.9"], "argument --gamma: only meaningful with --criterion discounted"),
        (["run", "--criterion", "discounted", "--gamma", "1.5"], r"gamma: expected a number in (0, 1)"),
        (["run", "--factories", "0"], "factories: expected an integer >= 1, got 0"),
        (["run", "--momdp", "/nonexistent/file.npz"], "path: no such file"),
        (["env", "--out", "x.pickle"], "--out: expected a file name ending in .npz or .json"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_give_one_line_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(r"jaxagg( run| env)?: error: ", err)
    assert message in err


def test_console_script_help_runs_as_a_process():
    result = subprocess.run([sys.executable, "-m", "jaxagg.cli", "--help"], capture_output=True, text=True, check=True)
    assert "run" in result.stdout and "Policy aggregation" in result.stdout


def test_sample_resume_and_run_with_samples(tmp_path, capsys):
    path = tmp_path / "s.npz"
    small = ["--factories", "2", "--phases", "3"]
    assert main(["sample", *small, "--num-samples", "300", "--chunk-size", "64", "--quiet", "--out", str(path)]) == 0
    assert main(["sample", *small, "--num-samples", "200", "--quiet", "--resume", "--out", str(path)]) == 0
    resumed = ja.load_sample(path)
    one_run = ja.sample(ja.envs.attention_allocation(2, 3), 500, seed=0)
    np.testing.assert_array_equal(resumed.returns, one_run.returns)
    capsys.readouterr()
    out = tmp_path / "r.json"
    assert main(["run", *small, "--quiet", "--samples", str(path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "q-level" in text and "max-quantile" in text
    rows = json.loads(out.read_text())["rules"]
    quantile = next(r for r in rows if r["rule"] == "max-quantile")
    assert quantile["quantile_level"] >= quantile["info"]["q_star"]
    assert all(quantile["quantile_level"] >= r["quantile_level"] for r in rows)  # nothing beats q*
    row = rows[0]
    assert row["quantile_level"] == pytest.approx(min(row["ranks"]))
    assert row["quantile_level"] == pytest.approx(resumed.rank(np.array(row["returns"])).min())


def test_sample_resume_refuses_a_file_of_another_jax_version_unless_asked(tmp_path, capsys):
    path = tmp_path / "s.npz"
    small = ["--factories", "2", "--phases", "3", "--quiet", "--out", str(path)]
    assert main(["sample", *small, "--num-samples", "60"]) == 0
    first = ja.load_sample(path)
    dataclasses.replace(first, info={**first.info, "jax": "0.0.1"}).save(path)
    capsys.readouterr()
    assert main(["sample", *small, "--num-samples", "40", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"jax 0.0.1, this process runs jax {first.info['jax']}" in err and "--allow-version-change" in err
    assert ja.load_sample(path).num_samples == 60  # the file is untouched
    assert main(["sample", *small, "--num-samples", "40", "--allow-version-change"]) == 2
    assert "--allow-version-change: only with --resume" in capsys.readouterr().err
    with pytest.warns(VersionWarning, match="jax 0.0.1, this process runs jax"):
        assert main(["sample", *small, "--num-samples", "40", "--resume", "--allow-version-change"]) == 0
    resumed = ja.load_sample(path)
    np.testing.assert_array_equal(resumed.returns, ja.sample(ja.envs.attention_allocation(2, 3), 100, seed=0).returns)
    assert [part["info"]["jax"] for part in resumed.info["parts"]] == ["0.0.1", first.info["jax"]]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::jaxagg.errors.MixingWarning")  # a short run: the diagnostics are what is checked
def test_sample_the_uniform_measure_with_its_options_and_diagnostics(tmp_path, capsys):
    path = tmp_path / "u.npz"
    args = ["sample", "--factories", "2", "--measure", "uniform", "--num-samples", "64", "--quiet", "--out", str(path)]
    assert main([*args, "--chains", "8", "--thin", "3", "--burn-in", "5", "--directions", "random"]) == 0
    assert "max rank-normalised R-hat" in capsys.readouterr().out
    loaded = ja.load_sample(path)
    assert loaded.measure == "uniform" and loaded.num_samples == 64
    assert (loaded.info["chains"], loaded.info["thin"], loaded.info["burn_in"], loaded.info["directions"]) == (8, 3, 5, "random")
    assert len(loaded.info["rhat"]) == len(loaded.info["ess"]) == loaded.num_agents
    assert main(["sample", "--factories", "2", "--thin", "3", "--quiet", "--force", "--out", str(path)]) == 2
    assert "--thin: only for --measure uniform, got --measure policy" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::jaxagg.errors.MixingWarning")
def test_run_draws_a_sample_of_the_chosen_measure(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["run", "--factories", "2", "--measure", "uniform", "--num-samples", "320", "--rules", "max-quantile"]
    assert main([*args, "--quiet", "--json", str(out)]) == 0
    assert "max-quantile" in capsys.readouterr().out
    assert json.loads(out.read_text())["sample"]["measure"] == "uniform"


def test_run_refuses_a_sample_of_another_instance(tmp_path, capsys):
    path = tmp_path / "s.npz"
    assert main(["sample", "--factories", "2", "--num-samples", "50", "--quiet", "--out", str(path)]) == 0
    assert main(["run", "--factories", "2", "--seed", "1", "--samples", str(path)]) == 2
    assert "was drawn for a different instance" in capsys.readouterr().err


def test_run_samples_by_default_and_runs_every_rule(tmp_path, capsys, attention_2_3, attention_2_3_sample):
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", "--factories", "2", "--num-samples", "500", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "failed" not in text and "q-level" in text
    data = json.loads(out.read_text())
    # the oracle: the same instance and sample (attention (2, 3), seed 0; 500 policy samples, seed 0) through the library
    m, sample = attention_2_3, attention_2_3_sample
    assert data["sample"]["fingerprint"] == m.fingerprint == sample.fingerprint
    assert (data["sample"]["num_samples"], data["sample"]["seed"], data["sample"]["measure"]) == (500, 0, "policy")
    np.testing.assert_array_equal(data["sample"]["sample_max"], sample.returns.max(axis=0))
    expected = ["utilitarian", "utilitarian-normalized", "egalitarian", "egalitarian-normalized", "leximin",
                "leximin-normalized", "nash", "max-quantile", "borda", "borda-concave", "approval", "approval-0.8", "veto"]
    assert [row["rule"] for row in data["rules"]] == expected and data["failures"] == {}
    bounds = ja.return_bounds(m)
    span = bounds.upper - bounds.lower
    lines = text.splitlines()
    for row in data["rules"]:
        name = row["rule"]
        oracle = ja.rules.get(name)(m, sample) if ja.rules.get(name).needs_sample else ja.rules.get(name)(m)
        assert np.max(np.abs(np.array(row["returns"]) - oracle.returns) / span) <= 1e-7, name
        np.testing.assert_allclose(row["percent_of_max"], 100 * oracle.normalized, atol=1e-5, err_msg=name)
        ranks = sample.rank(np.array(row["returns"]))
        np.testing.assert_array_equal(row["ranks"], ranks)
        assert row["quantile_level"] == ranks.min() and row["borda_score"] == pytest.approx(ranks.sum())
        assert row["params"] == oracle.params
        # the table's row shows the same numbers
        cells = next(line.split() for line in lines if line.split()[:1] == [name])
        assert cells[1:3] == [f"{p:.1f}" for p in row["percent_of_max"]], name
        assert cells[6] == f"{row['quantile_level']:.4f}", name
