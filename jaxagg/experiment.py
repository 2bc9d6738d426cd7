"""The paper's experiment (SPEC §4): several seeded attention-allocation instances, one sample of
the `policy` measure each, the paper's rules, and per rule the normalised returns of the agents
ranked from worst-off, averaged over instances with standard errors (paper Figure 1)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from jaxagg.envs import attention_allocation
from jaxagg.errors import ValidationError
from jaxagg.report import Comparison, compare
from jaxagg.sampling import sample as sample_measure
from jaxagg.validation import integer_at_least

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
            outcome = next(o for o in comparison.outcomes if o.rule == _outcome_name(rule_name))
            rows.append(np.sort(outcome.normalized))
        return np.array(rows)

    def summary(self) -> dict[str, dict[str, list[float]]]:
        """Per rule: mean and standard error over instances of each rank position (in %), and
        the mean Gini index."""
        from jaxagg.metrics import gini

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
        return "\n".join([f"{self.experiment} experiment, {len(self.comparisons)} instance(s): % of max return, agents ranked from worst-off (mean ± s.e.)", *lines])

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "rules": list(self.rules), "summary": self.summary(),
                "instances": [c.to_dict() for c in self.comparisons]}

    def save_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def plot(self, path: str | os.PathLike) -> Path:
        """Bar chart in the style of the paper's Figure 1: x = agents ranked from worst-off,
        one bar per rule, height = mean % of max return, error bars = standard errors."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        summary = self.summary()
        n = len(next(iter(summary.values()))["mean"])
        width = 0.8 / len(summary)
        fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * n + 3.5), 3.6))
        for j, (name, values) in enumerate(summary.items()):
            x = np.arange(n) + (j - (len(summary) - 1) / 2) * width
            ax.bar(x, values["mean"], width, yerr=values["se"], capsize=2, label=PAPER_LABELS.get(name, name))
        ax.set_xticks(np.arange(n), [str(i + 1) for i in range(n)])
        ax.set_xlabel("agents, ranked from worst-off")
        ax.set_ylabel("% of max return")
        ax.set_ylim(0, 105)
        ax.set_title(f"{self.experiment}: {len(self.comparisons)} instance(s)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


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
    if experiment not in ("base", "subsets"):
        raise ValidationError(f"experiment: expected 'base' or 'subsets', got {experiment!r}")
    instances = integer_at_least("instances", instances, 1)
    comparisons = []
    for k in range(instances):
        if progress is not None:
            progress(f"instance {k + 1}/{instances} (seed {seed + k}): sampling {num_samples}")
        momdp = attention_allocation(factories, phases, experiment, seed + k)
        sample = sample_measure(momdp, num_samples, "policy", seed + k, progress=sample_progress)
        comparison = compare(momdp, list(rules), sample)
        if comparison.failures:
            raise ValidationError(f"rules: failed on instance seed {seed + k}: {comparison.failures}")
        comparisons.append(comparison)
    return ExperimentResult(experiment, comparisons, tuple(rules))


def _outcome_name(rule_name: str) -> str:
    """Registry name -> the name its Outcome carries (approval rules label their level)."""
    return {"approval": "approval(0.9)", "approval-0.8": "approval(0.8)"}.get(rule_name, rule_name)
