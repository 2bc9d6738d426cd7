"""`jaxagg run --method tune|refine`: the tuner's rules in the table and JSON, and one-line errors."""

import json

import pytest

from jaxagg.cli import main, method_rules

GARNET = ["--env", "garnet", "--states", "6", "--num-samples", "300", "--quiet"]


def test_method_maps_rule_names():
    assert method_rules("exact", None) is None
    assert method_rules("tune", None) == ["tune-quantile", "tune-borda", "tune-approval"]
    assert method_rules("tune", ["max-quantile", "leximin"]) == ["tune-quantile", "leximin"]
    assert method_rules("refine", ["borda", "approval", "veto"]) == ["borda-refine", "approval-refine", "veto"]


@pytest.mark.slow
def test_run_method_tune_prints_certified_rows(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", *GARNET, "--method", "tune", "--rules", "max-quantile,borda", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tune-quantile" in text and "tune-borda" in text and "q-level" in text
    rules = json.loads(out.read_text())["rules"]
    assert [r["rule"] for r in rules] == ["tune-quantile", "tune-borda"]
    assert rules[0]["info"]["certificates"]["quantile_level"] == rules[0]["quantile_level"]


@pytest.mark.slow
def test_run_method_refine_reports_the_start(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", *GARNET, "--method", "refine", "--rules", "borda", "--json", str(out)]) == 0
    start = json.loads(out.read_text())["rules"][0]["info"]["start"]
    assert start["source"] == "tune-borda" and start["feasible"]


def test_bad_method_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "gradient"])
    assert exc.value.code == 2
    assert "invalid choice: 'gradient'" in capsys.readouterr().err
