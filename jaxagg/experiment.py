"""The paper's experiment (SPEC §4): several seeded attention-allocation instances, one sample of
the `policy` measure each, the paper's rules, and per rule the normalised returns of the agents
ranked from worst-off, averaged over instances with standard errors (paper Figure 1).

It is a sweep preset (:func:`paper_spec`): the cells run through :func:`jaxagg.sweep` into a
SQLite store, and the table, JSON and figure are read back from the store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg import files
from jaxagg.errors import SolverError
from jaxagg.metrics import gini
from jaxagg.report import ranked_figure
from jaxagg.sweeps import SweepSpec, load_spec, sweep
from jaxagg.validation import choice, integer_at_least
from jaxagg.validation import seed as check_seed

PAPER_RULES = ("max-quantile", "borda", "approval", "approval-0.8", "leximin", "utilitarian")
PAPER_LABELS = {"max-quantile": "q-quantile", "borda": "Borda", "approval": "90%-a", "approval-0.8": "80%-a",
                "leximin": "egal (leximin)", "utilitarian": "util"}


@dataclass
class ExperimentResult:
    """The experiment read back from its sweep store: per instance and rule the store's record,
    and per rule the ranked normalised returns ``[K, n]``.

    Attributes:
        experiment: ``"base"`` or ``"subsets"``.
        rules: the rules, in the paper's order.
        instances: per instance (in seed order): ``{"seed", "label", "records": {rule: record}}``
            with the records of :meth:`jaxagg.sweeps.SweepResults.records`.
        store: the sweep store the results come from.
    """

    experiment: str
    rules: tuple[str, ...]
    instances: list[dict[str, Any]]
    store: Path | None = None

    def ranked(self, rule_name: str) -> np.ndarray:
        """``[K, n]``: per instance, the normalised returns of rule ``rule_name`` sorted ascending."""
        return np.array([np.sort(instance["records"][rule_name]["normalized"]) for instance in self.instances])

    def summary(self) -> dict[str, dict[str, list[float]]]:
        """Per rule: mean and standard error over instances of each rank position (in %), and
        the mean Gini index."""
        out = {}
        for name in self.rules:
            values = 100.0 * self.ranked(name)
            k = values.shape[0]
            se = values.std(axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros(values.shape[1])
            out[name] = {"mean": values.mean(axis=0).tolist(), "se": se.tolist(),
                         "gini": float(np.mean([gini(v / 100.0) for v in values]))}
        return out

    def table(self) -> str:
        summary = self.summary()
        n = len(next(iter(summary.values()))["mean"])
        header = ["rule", *(f"rank {i + 1}" for i in range(n)), "gini"]
        rows = [[PAPER_LABELS.get(r, r), *(f"{m:.1f}±{s:.1f}" for m, s in zip(v["mean"], v["se"])), f"{v['gini']:.3f}"]
                for r, v in summary.items()]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in [header, *rows]]
        title = (f"{self.experiment} experiment, {len(self.instances)} instance(s): % of max return, "
                 "agents ranked from worst-off (mean ± s.e.)")
        return "\n".join([title, *lines])

    def to_dict(self) -> dict[str, Any]:
        kept = ("rule", "options", "raw", "normalized", "rank", "min_normalized", "gini", "nash_welfare",
                "quantile_level", "borda_score", "approvals_90", "approvals_80", "wall_time", "info")
        return {"experiment": self.experiment, "rules": list(self.rules), "summary": self.summary(),
                "store": None if self.store is None else str(self.store),
                "instances": [{"seed": instance["seed"], "label": instance["label"],
                               "rules": [{k: instance["records"][name].get(k) for k in kept} for name in self.rules]}
                              for instance in self.instances]}

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (the folder is created if needed)."""
        return files.write_json(path, self.to_dict())

    def plot(self, path: str | os.PathLike) -> Path:
        """The paper's Figure 1 (:func:`jaxagg.report.ranked_figure`): mean % of max return per
        rank position over instances, with standard errors."""
        bars = {name: (values["mean"], values["se"]) for name, values in self.summary().items()}
        return ranked_figure(bars, f"{self.experiment}: {len(self.instances)} instance(s)", path, PAPER_LABELS)


def paper_spec(experiment: str = "base", instances: int = 5, num_samples: int = 20_000, *,
               rules: Sequence[str] = PAPER_RULES, factories: int = 5, phases: int = 3, seed: int = 0) -> SweepSpec:
    """The paper's experiment (SPEC §4) as a sweep: attention instances with seeds ``seed, seed+1,
    ...``, one policy-measure sample each (sample seed = instance seed), the paper's rules."""
    choice("experiment", experiment, ("base", "subsets"))
    instances = integer_at_least("instances", instances, 1)
    seed = check_seed("seed", seed)
    check_seed("seed + instances - 1", seed + instances - 1)
    block = {"env": "attention", "factories": factories, "phases": phases, "agents": experiment,
             "seed": {"start": seed, "count": instances}}
    return load_spec({"name": experiment, "instances": [block], "rules": list(rules),
                      "sample": {"measure": "policy", "num_samples": num_samples, "seed": "instance"}})


def reproduce(
    experiment: str = "base",
    instances: int = 5,
    num_samples: int = 20_000,
    *,
    rules: Sequence[str] = PAPER_RULES,
    factories: int = 5,
    phases: int = 3,
    seed: int = 0,
    store: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> ExperimentResult:
    """Run the paper's experiment (:func:`paper_spec`) as a sweep and read it back. SPEC §4 uses
    5·10^5 samples; the default is CPU-friendly.

    Args:
        store: the sweep store (``.db``) to write, and to resume from when it exists (a rerun with
            the same arguments computes nothing); default: a temporary one.
        workers: solve processes (default: the CPU cores; 0: in this process).
        progress: a progress bar over cells on stderr.

    Raises:
        SolverError: a rule failed on some instance (the store keeps the error).
    """
    spec = paper_spec(experiment, instances, num_samples, rules=rules, factories=factories, phases=phases, seed=seed)
    if store is None:
        with tempfile.TemporaryDirectory(prefix="jaxagg-reproduce-") as folder:
            result = _run(spec, Path(folder) / f"{experiment}.db", workers, progress)
            return replace(result, store=None)
    return _run(spec, Path(store), workers, progress)


def _run(spec: SweepSpec, store: Path, workers: int | None, progress: bool) -> ExperimentResult:
    results = sweep(spec, store, workers=workers, progress=progress)
    wanted = {cell.key for cell in spec.cells()}
    records = [r for r in results.records if r["key"] in wanted]
    failures = [f"{r['rule']} on seed {r['param.seed']}: {r['error']}" for r in records if r["status"] == "failed"]
    if failures:
        raise SolverError(f"reproduce: rules failed (recorded in {str(store)!r}): {'; '.join(failures)}")
    by_seed: dict[int, dict[str, Any]] = {}
    for record in records:
        entry = by_seed.setdefault(record["param.seed"], {"seed": record["param.seed"], "label": record["label"], "records": {}})
        entry["records"][record["requested"]] = record
    rules = tuple(dict.fromkeys(rule.requested for rule in spec.rules))
    return ExperimentResult(spec.name, rules, [by_seed[k] for k in sorted(by_seed)], store)
