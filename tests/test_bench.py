"""The benchmarks in bench/: each runs at toy size (``--smoke``, nothing recorded), passes its own
correctness checks and prints a JSON summary; they use jaxagg's public API only; and the
RESULTS.md recorder keeps one Latest section per benchmark and moves the one it replaces to the
top of History.

The scripts run in a child process with the repository root first on ``PYTHONPATH``, so that
they exercise this checkout's jaxagg (not whichever copy is installed).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
TIMEOUT = 300
PUBLIC_MODULES = ("jaxagg", "jaxagg.samples", "jaxagg.uniform", "jaxagg.diagnostics", "jaxagg.polytope")
PUBLIC_PACKAGES = ("jaxagg.kernels", "jaxagg.solvers")
KEYS = {"sampling", "lp", "rules", "hit_and_run", "tuner-quality", "tuner-start", "bounds", "gpu", "kernels", "sweep", "sweep-end-to-end",
        "lu-blocks"}
"""Every benchmark key a script publishes under (``publish(args, KEY, ...)``)."""
NOT_YET_RECORDED = {"kernels"}
"""Benchmarks whose first run has not been recorded in RESULTS.md yet."""


def load_common():
    """bench/common.py as a module (without putting bench/ on sys.path)."""
    spec = importlib.util.spec_from_file_location("bench_common_under_test", BENCH / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = load_common()


# ------------------------------------------------------------------ smoke runs
def run_smoke(tmp_path: Path, *args: str) -> dict:
    """Run ``python bench/<args> --smoke --json FILE``; check exit 0, the printed JSON, that it
    matches the file, that every check passed and that RESULTS.md was left alone."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    out = tmp_path / "summary.json"
    results = (BENCH / "RESULTS.md").read_bytes()
    process = subprocess.run([sys.executable, *args, "--smoke", "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=TIMEOUT)
    assert process.returncode == 0, f"{' '.join(args)} failed:\n{process.stdout[-4000:]}\n{process.stderr[-4000:]}"
    summary = json.loads(process.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == summary
    assert summary["smoke"] is True and summary["recorded"] is False
    assert summary["machine"]["versions"]["jax"] != "absent" and summary["machine"]["cores"] >= 1
    assert summary["rows"], "no rows"
    assert summary["checks"] and all(check["ok"] for check in summary["checks"])
    assert "|---|" in process.stdout  # the markdown table is printed too
    assert (BENCH / "RESULTS.md").read_bytes() == results, "a smoke run must not record"
    return summary


def test_lp_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/lp.py")
    assert summary["benchmark"] == "lp"
    assert [row["instance"] for row in summary["rows"]] == ["(2,3)", "(3,3)"]
    assert any("reduced cost" in check["check"] for check in summary["checks"])


def test_lu_blocks_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/lu_blocks.py", "--blocks", "32", "128")
    assert [(row["instance"], row["block"]) for row in summary["rows"]] == [
        ("garnet (8, 3)", 32), ("garnet (8, 3)", 128), ("attention (2, 3)", 32), ("attention (2, 3)", 128)]
    assert all(row["residual"] <= 1e-6 and row["difference"] <= 1e-6 for row in summary["rows"])


def test_lp_smoke_by_column_generation(tmp_path):
    summary = run_smoke(tmp_path, "bench/lp.py", "--solver", "columns")
    assert all(row["how"].startswith("CG ") and " / CG " in row["how"] for row in summary["rows"])
    assert any("certified gap" in check["check"] for check in summary["checks"])


@pytest.mark.slow
def test_rules_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/rules.py")
    rules = [row["rule"] for row in summary["rows"]]
    assert rules[-1] == "all rules" and {"max-quantile", "borda", "veto"} <= set(rules)


@pytest.mark.slow
def test_sampling_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/sampling.py")
    assert {row["precision"] for row in summary["rows"]} == {"float32", "float64"}
    assert any("exact float64 map" in check["check"] for check in summary["checks"])
    measured = [row for row in summary["rows"] if row.get("rate") is not None]
    assert {(row["method"], row["operator"]) for row in measured} == {("lu", "dense"), ("krylov", "dense"),
                                                                      ("krylov", "kronecker"), ("krylov", "sparse")}
    assert all(row["residual"] <= 1e-6 and row["return_error"] <= 1e-4 for row in measured)
    skipped = [row for row in summary["rows"] if row.get("rate") is None]
    assert skipped and all(row["note"].startswith("skipped: ") for row in skipped)
    isolated = [row for row in measured if row["isolated"]]  # rows run in a child process report their own peak
    assert isolated and all(row["rss_mb"] > 0 for row in isolated)


@pytest.mark.slow
def test_sweep_end_to_end_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/sweep.py", "end-to-end")
    assert summary["benchmark"] == "sweep-end-to-end" and summary["instances"] == 2
    runs = [row["run"] for row in summary["rows"]]
    assert runs[0].startswith("local") and runs[-1].startswith("SIGKILL")
    assert any("no committed cell lost" in check["check"] for check in summary["checks"])


def test_sweep_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/sweep.py")
    assert summary["benchmark"] == "sweep" and summary["instances"] == 6
    assert any("bit-identical" in check["check"] for check in summary["checks"])


@pytest.mark.slow
def test_bounds_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/bounds.py")
    assert summary["benchmark"] == "bounds"
    assert any("certified" in check["check"] for check in summary["checks"])
    assert any("LP" in check["check"] for check in summary["checks"])


@pytest.mark.slow
def test_kernels_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/kernels.py")
    assert summary["benchmark"] == "kernels" and summary["checks"]


@pytest.mark.slow
def test_gpu_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/gpu.py")
    assert summary["benchmark"] == "gpu" and summary["device_kind"]
    assert {row["what"] for row in summary["rows"]} >= {"policy sampling", "uniform chain-steps", "tuner step",
                                                        "bounds (policy iteration)", "batched instances (speedup)"}
    assert any("block 64" in row.get("setting", "") for row in summary["rows"])  # --extra-blocks
    assert any("agreement" in check["check"] for check in summary["checks"]) and summary["failed"] == []


def test_block_profile_runs_at_toy_size():
    # printed only (no --smoke, nothing recorded): every row, both solvers, both preconditioners, and ja.sample end to end
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.run([sys.executable, "bench/block_profile.py", "8", "--factories", "2", "--sample-blocks", "2"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert process.returncode == 0, process.stderr[-4000:]
    for row in ("draw policies", "one GMRES(20) cycle", "one BiCGSTAB solve", "evaluate_policies, bicgstab, preconditioner none",
                "evaluate_policies, gmres, preconditioner mean-policy", "whole block kernel (as shipped: gmres, none)",
                "ja.sample, 2 blocks (gmres, preconditioner none)", "ja.sample, 2 blocks (gmres, preconditioner mean-policy)"):
        assert row in process.stdout, (row, process.stdout[-2000:])


def test_gpu_full_mode_refuses_without_a_gpu():
    import jax

    if jax.default_backend() == "gpu":
        pytest.skip("a GPU is present: the full mode would run")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    process = subprocess.run([sys.executable, "bench/gpu.py", "--no-record"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=TIMEOUT)
    assert process.returncode == 2 and "no GPU" in process.stderr


@pytest.mark.slow
def test_hit_and_run_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/hit_and_run.py")
    samplers = [row["sampler"] for row in summary["rows"]]
    if importlib.util.find_spec("hopsy") is None:  # the optional comparison is skipped, the rest runs
        assert summary["hopsy"] == "absent" and all(s.startswith("jaxagg") for s in samplers)
    else:
        assert any(s.startswith("hopsy") for s in samplers)


@pytest.mark.slow
def test_tuner_quality_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/tuner.py", "quality")
    methods = [row["method"] for row in summary["rows"]]
    assert methods[:3] == ["tune-quantile", "tune-borda", "max-quantile"] and methods.count("borda MILP") == 3


@pytest.mark.slow
def test_tuner_start_smoke(tmp_path):
    summary = run_smoke(tmp_path, "bench/tuner.py", "start")
    assert [row["start"].split()[0] for row in summary["rows"]] == ["none", "tune"]


# ------------------------------------------------------------------ public API only
def bench_scripts() -> list[Path]:
    return sorted(BENCH.glob("*.py"))


@pytest.mark.parametrize("script", bench_scripts(), ids=lambda p: p.name)
def test_bench_uses_public_api_only(script):
    tree = ast.parse(script.read_text(), filename=str(script))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jaxagg":
            module = node.module
            # a public package's modules, either way: ``from jaxagg.kernels import transitions`` too
            assert module in PUBLIC_MODULES + PUBLIC_PACKAGES or module.startswith(tuple(p + "." for p in PUBLIC_PACKAGES)), (
                f"{script.name}: imports from {module}")
            assert not any(part.startswith("_") for part in module.split(".")), f"{script.name}: private module {module}"
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, f"{script.name}: imports private names {private} from {module}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "jaxagg":
                    assert alias.name == "jaxagg", f"{script.name}: import {alias.name}"
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id == "self"):
            assert not (node.attr.startswith("_") and not node.attr.startswith("__")), (
                f"{script.name}:{node.lineno}: private attribute .{node.attr}")
    assert "sys.path" not in script.read_text(), f"{script.name}: patches sys.path"


# ------------------------------------------------------------------ the RESULTS.md recorder
def record(path: Path, key: str, title: str, stamp: str) -> None:
    common.record(key, title, f"python bench/{key}.py", f"| {title} |\n|---|\n| 1 |", stamp=stamp, machine_line="test machine",
                  checks="all 2 correctness checks passed", path=path)


def parts(path: Path) -> tuple[list[str], list[str]]:
    """The section headings under Latest and under History."""
    text = path.read_text()
    assert text.count("\n## Latest\n") == 1 and text.count("\n## History\n") == 1
    latest, history = text.split("\n## Latest\n")[1].split("\n## History\n")
    return ([line for line in latest.splitlines() if line.startswith("### ")],
            [line for line in history.splitlines() if line.startswith("### ")])


def test_record_replaces_latest_and_moves_the_old_section_to_history(tmp_path):
    path = tmp_path / "RESULTS.md"
    record(path, "lp", "LP one", "2026-01-01 00:00 UTC")
    assert path.read_text().startswith("# Benchmark results")
    assert parts(path) == (["### LP one — 2026-01-01 00:00 UTC"], [])
    record(path, "rules", "Rules one", "2026-01-02 00:00 UTC")
    record(path, "lp", "LP two", "2026-01-03 00:00 UTC")
    assert parts(path) == (["### LP two — 2026-01-03 00:00 UTC", "### Rules one — 2026-01-02 00:00 UTC"],
                           ["### LP one — 2026-01-01 00:00 UTC"])
    record(path, "lp", "LP three", "2026-01-04 00:00 UTC")
    latest, history = parts(path)
    assert latest == ["### LP three — 2026-01-04 00:00 UTC", "### Rules one — 2026-01-02 00:00 UTC"]
    assert history == ["### LP two — 2026-01-03 00:00 UTC", "### LP one — 2026-01-01 00:00 UTC"]  # newest first
    text = path.read_text()
    assert "Machine: test machine\n\nCommand: `python bench/lp.py`\n\nChecks: all 2 correctness checks passed.\n\n| LP three |" in text
    assert text.count("<!-- bench: lp -->") == 3 and not list(tmp_path.glob(".RESULTS.md.*"))  # no temporary left


def test_record_keeps_everything_else_verbatim(tmp_path):
    path = tmp_path / "RESULTS.md"
    old = "### Old — 2026-01-01 00:00 UTC\n<!-- bench: lp -->\n\n| x |\n|---|\n| 1 |"
    older = "### Older — 2025-12-31 00:00 UTC\n\nText\n  indented"
    path.write_text(f"# Title\n\nIntro.\n\n## Latest\n\n### Notes by hand\n\nA note.\n\n{old}\n\n"
                    f"## History\n\nOlder runs, newest first.\n\n{older}\n")
    record(path, "lp", "New", "2026-02-01 00:00 UTC")
    text = path.read_text()
    new = text.split("A note.\n\n")[1].split("\n\n## History")[0]
    assert new.startswith("### New — 2026-02-01 00:00 UTC\n<!-- bench: lp -->\n")
    assert text == (f"# Title\n\nIntro.\n\n## Latest\n\n### Notes by hand\n\nA note.\n\n{new}\n\n"
                    f"## History\n\nOlder runs, newest first.\n\n{old}\n\n{older}\n")
    record(path, "rules", "Rules", "2026-02-02 00:00 UTC")
    assert parts(path) == (["### Notes by hand", "### New — 2026-02-01 00:00 UTC", "### Rules — 2026-02-02 00:00 UTC"],
                           ["### Old — 2026-01-01 00:00 UTC", "### Older — 2025-12-31 00:00 UTC"])


def test_record_on_an_append_only_file_keeps_its_sections_as_history(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("\n### A — 2026-01-01 00:00 UTC\n\none\n\n### B — 2026-01-02 00:00 UTC\n\ntwo\n")
    record(path, "lp", "C", "2026-01-03 00:00 UTC")
    assert parts(path) == (["### C — 2026-01-03 00:00 UTC"], ["### A — 2026-01-01 00:00 UTC", "### B — 2026-01-02 00:00 UTC"])


def test_keys_are_the_ones_the_scripts_publish():
    published = {key for script in bench_scripts() for key in re.findall(r'publish\(args, "([^"]+)"', script.read_text())}
    assert published == KEYS


def test_results_file_has_one_latest_section_per_benchmark():
    text = (BENCH / "RESULTS.md").read_text()
    preamble, latest, history = common.split_results(text)
    keys = [common.section_key(section) for section in common.sections_of(latest)]
    assert len(keys) == len(set(keys)), f"duplicate Latest sections: {sorted(keys)}"
    assert set(keys) <= KEYS, f"Latest sections of unknown benchmarks: {sorted(set(keys) - KEYS)}"
    assert KEYS - set(keys) <= NOT_YET_RECORDED, f"benchmarks without a Latest section: {sorted(KEYS - set(keys))}"
    updated = common.update_results(text, "lp", "### X — 2099-01-01 00:00 UTC\n<!-- bench: lp -->\n\nx")
    assert updated.count("\n### ") == text.count("\n### ") + 1 and updated.startswith(preamble)


def test_json_output_is_strict():
    import numpy as np

    value = common.jsonable({"a": np.float32(1.5), "b": np.arange(2), "c": float("inf"), "d": (1, None), 3: np.bool_(True)})
    assert json.loads(json.dumps(value, allow_nan=False)) == {"a": 1.5, "b": [0, 1], "c": "inf", "d": [1, None], "3": True}
