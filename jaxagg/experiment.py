"""The paper's experiment (SPEC §4): several seeded attention-allocation instances, one sample of
the `policy` measure each, the paper's rules, and per rule the normalised returns of the agents
ranked from worst-off, averaged over instances with standard errors (paper Figure 1)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg import files
from jaxagg.envs import attention_allocation
from jaxagg.errors import SolverError
from jaxagg.metrics import gini
from jaxagg.report import Comparison, compare, ranked_figure
from jaxagg.sampling import sample as sample_measure
from jaxagg.validation import choice, integer_at_least
from jaxagg.validation import seed as check_seed

PAPER_RULES = ("max-quantile", "borda", "approval", "approval-0.8", "leximin", "utilitarian")
PAPER_LABELS = {"max-quantile": "q-quantile", "borda": "Borda", "approval": "90%-a", "approval-0.8": "80%-a",
                "leximin": "egal (leximin)", "utilitarian": "util"}


@dataclass
class ExperimentResult:
    """Comparisons on each instance, and per rule the ranked normalised returns ``[K, n]``."""

    experiment: str
    comparisons: list[Comparison]
    rules: tuple[str, ...]

    def ranked(self, rule_name: str) -> np.ndarray:
        """``[K, n]``: per instance, the normalised returns of rule ``rule_name`` sorted ascending."""
        rows = []
        for comparison in self.comparisons:
            outcome = next(o for o in comparison.outcomes if o.rule == rule_name)
            rows.append(np.sort(outcome.normalized))
        return np.array(rows)

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
        title = (f"{self.experiment} experiment, {len(self.comparisons)} instance(s): % of max return, "
                 "agents ranked from worst-off (mean ± s.e.)")
        return "\n".join([title, *lines])

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "rules": list(self.rules), "summary": self.summary(),
                "instances": [c.to_dict() for c in self.comparisons]}

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (the folder is created if needed)."""
        return files.write_json(path, self.to_dict())

    def plot(self, path: str | os.PathLike) -> Path:
        """The paper's Figure 1 (:func:`jaxagg.report.ranked_figure`): mean % of max return per
        rank position over instances, with standard errors."""
        bars = {name: (values["mean"], values["se"]) for name, values in self.summary().items()}
        return ranked_figure(bars, f"{self.experiment}: {len(self.comparisons)} instance(s)", path, PAPER_LABELS)


def reproduce(
    experiment: str = "base",
    instances: int = 5,
    num_samples: int = 20_000,
    *,
    rules: Sequence[str] = PAPER_RULES,
    factories: int = 5,
    phases: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    sample_progress: bool = False,
) -> ExperimentResult:
    """Run the paper's experiment on ``instances`` seeded instances (seeds ``seed, seed+1, ...``;
    sample seed = instance seed). SPEC §4 uses 5·10^5 samples; the default is CPU-friendly."""
    choice("experiment", experiment, ("base", "subsets"))
    instances = integer_at_least("instances", instances, 1)
    seed = check_seed("seed", seed)
    check_seed("seed + instances - 1", seed + instances - 1)
    comparisons = []
    for k in range(instances):
        if progress is not None:
            progress(f"instance {k + 1}/{instances} (seed {seed + k}): sampling {num_samples}")
        momdp = attention_allocation(factories, phases, experiment, seed + k)
        sample = sample_measure(momdp, num_samples, "policy", seed + k, progress=sample_progress)
        comparison = compare(momdp, list(rules), sample)
        if comparison.failures:
            raise SolverError(f"reproduce: rules failed on instance seed {seed + k}: {comparison.failures}")
        comparisons.append(comparison)
    return ExperimentResult(experiment, comparisons, tuple(rules))
