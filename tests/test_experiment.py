"""The paper's experiment pipeline on a tiny configuration: summary, JSON, figure, CLI."""

import json

import numpy as np
import pytest

from jaxagg.cli import main
from jaxagg.errors import ValidationError
from jaxagg.experiment import PAPER_RULES, reproduce


@pytest.fixture(scope="module")
def result():
    return reproduce("subsets", instances=2, num_samples=300, factories=2, phases=3)


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


def test_cli_reproduce(tmp_path, capsys):
    assert main(["reproduce", "--instances", "1", "--samples", "200", "--factories", "2", "--quiet", "--out", str(tmp_path)]) == 0
    assert "base experiment, 1 instance(s)" in capsys.readouterr().out
    assert (tmp_path / "base.png").exists() and (tmp_path / "base.json").exists()


def test_bad_arguments():
    with pytest.raises(ValidationError, match="experiment: expected one of 'base', 'subsets'"):
        reproduce("other")
    with pytest.raises(ValidationError, match="instances: expected an integer >= 1"):
        reproduce("base", instances=0)
