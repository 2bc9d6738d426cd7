"""``jaxagg sweep``: run a spec file, report on the store, and one-line errors."""

import json

import pytest

from jaxagg.cli import main

SPEC = """name = "cli"
rules = ["egalitarian", "max-quantile"]

[[instances]]
env = "garnet"
states = 5
actions = 2
agents = [2, 3]
seed = 0

[sample]
num_samples = 200
"""


@pytest.fixture
def spec_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cli.toml"
    path.write_text(SPEC)
    return path


def test_dry_run_then_run_then_report(spec_file, tmp_path, capsys):
    assert main(["sweep", str(spec_file), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "4 cells = 2 instances x 1 sample setting(s) x 2 rule(s)" in text and "to run 4" in text
    assert not (tmp_path / "cli.db").exists()  # a dry run writes nothing
    assert main(["sweep", str(spec_file), "--workers", "0", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "cli.db: 4 done, 0 failed, 0 pending" in text and "agents=3" in text
    assert main(["sweep", str(spec_file), "--dry-run"]) == 0
    assert "done 4, failed 0, to run 0" in capsys.readouterr().out
    assert main(["sweep", "--status", "cli.db"]) == 0
    assert "4 cells: 4 done, 0 failed, 0 pending" in capsys.readouterr().out
    assert main(["sweep", "--export", "json", "cli.db"]) == 0
    assert len(json.loads((tmp_path / "cli.json").read_text())) == 4
    assert main(["sweep", "--plot", "q-level", "--by", "agents", "--store", "cli.db", "--out", "q.svg"]) == 0
    assert (tmp_path / "q.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("argv, message", [
    (["sweep"], "path: expected a sweep spec (.toml)"),
    (["sweep", "missing.toml"], "spec: no such file"),
    (["sweep", "cli.toml", "--store", "out.txt"], "--store: expected a file name ending in .db"),
    (["sweep", "cli.toml", "--workers", "-1"], "workers: expected an integer >= 0"),
    (["sweep", "cli.toml", "--address", "auto"], "address: only for backend 'ray'"),
    (["sweep", "cli.toml", "--metric", "joy"], "metric: expected one of"),
    (["sweep", "--status"], "--status: which store?"),
    (["sweep", "--status", "cli.toml"], "--status: expected a store"),
    (["sweep", "--status", "nothing.db"], "store: no such file"),
    (["sweep", "--status", "--export", "csv", "x.db"], "--export: one of --status, --export, --plot at a time"),
    (["sweep", "--plot", "min", "x.db"], "store: no such file"),
])
def test_bad_arguments_are_one_line_errors(spec_file, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
