"""The paper's experiment pipeline on a tiny configuration: summary, JSON, figure, CLI."""

import json
import sqlite3

import numpy as np
import pytest

from jaxagg.cli import main
from jaxagg.errors import ValidationError
from jaxagg.experiment import PAPER_RULES, reproduce


@pytest.fixture(scope="module")
def result():
    return reproduce("subsets", instances=2, num_samples=300, factories=2, phases=3, workers=0)


def test_summary_ranks_agents_from_worst_off(result):
    summary = result.summary()
    assert list(summary) == list(PAPER_RULES)
    for name, values in summary.items():
        ranked = result.ranked(name)
        assert ranked.shape == (2, 10)  # subsets: 10 agents
        assert (np.diff(ranked, axis=1) >= 0).all()
        np.testing.assert_allclose(values["mean"], 100 * ranked.mean(axis=0))
        np.testing.assert_allclose(values["se"], 100 * ranked.std(axis=0, ddof=1) / np.sqrt(2))
    assert "q-quantile" in result.table()


def test_json_and_figure(result, tmp_path):
    data = json.loads(result.save_json(tmp_path / "r.json").read_text())
    assert data["experiment"] == "subsets" and len(data["instances"]) == 2
    png = result.plot(tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli_reproduce_is_a_sweep_that_a_rerun_resumes(tmp_path, capsys):
    argv = ["reproduce", "--instances", "1", "--samples", "200", "--factories", "2", "--quiet", "--out", str(tmp_path)]
    assert main([*argv, "--workers", "0"]) == 0
    first = capsys.readouterr().out
    assert "base experiment, 1 instance(s)" in first
    assert (tmp_path / "base.png").exists() and (tmp_path / "base.json").exists()
    with sqlite3.connect(tmp_path / "base.db") as db:
        finished = dict(db.execute("SELECT key, finished_at FROM runs"))
    assert len(finished) == len(PAPER_RULES)
    assert main(argv) == 0  # everything is in the store: nothing runs again
    assert capsys.readouterr().out == first
    with sqlite3.connect(tmp_path / "base.db") as db:
        assert dict(db.execute("SELECT key, finished_at FROM runs")) == finished


def test_bad_arguments():
    with pytest.raises(ValidationError, match="experiment: expected one of 'base', 'subsets'"):
        reproduce("other")
    with pytest.raises(ValidationError, match="instances: expected an integer >= 1"):
        reproduce("base", instances=0)
