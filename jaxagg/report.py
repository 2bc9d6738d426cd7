"""Compare rules on one instance: a readable table, JSON and a figure (SPEC §5). The report layer
only reads Outcomes; it never solves anything itself beyond calling the rules. Every table,
JSON file and figure of jaxagg is made here (:mod:`jaxagg.experiment` and the CLI use these)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg import files, metrics
from jaxagg import rules as rule_registry
from jaxagg.errors import JaxaggError, ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import return_bounds
from jaxagg.rules.outcome import Outcome
from jaxagg.rules.registry import check_inputs
from jaxagg.validation import optional_module, positive_number

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
TIE_TOLERANCE = 1e-9
"""Outcomes whose returns for an agent differ by at most this fraction of its return range tie
in that agent's ranking (:meth:`Comparison.agent_rankings`)."""

DEFAULT_RULES = (
    "utilitarian",
    "utilitarian-normalized",
    "egalitarian",
    "egalitarian-normalized",
    "leximin",
    "leximin-normalized",
    "nash",
)
VOLUMETRIC_RULES = ("max-quantile", "borda", "borda-concave", "approval", "approval-0.8", "veto")
"""Added to the default rules when a sample of the reference measure is given."""

METHODS = {
    "exact": {},
    "tune": {"max-quantile": "tune-quantile", "borda": "tune-borda", "approval": "tune-approval"},
    "refine": {"borda": "borda-refine", "approval": "approval-refine"},
}
"""``jaxagg run --method`` and a sweep's ``method``: which registered rule replaces each named rule."""


def method_rules(method: str, names: list[str] | None) -> list[str] | None:
    """The rule names ``jaxagg run --method`` runs: ``names`` with the method's replacements, or
    by default (``names`` None) just the method's rules."""
    mapping = METHODS[method]
    if not mapping:
        return names
    if names is None:
        return list(mapping.values())
    return [mapping.get(name, name) for name in names]


@dataclass
class Comparison:
    """Outcomes of several rules on one MOMDP, and the rules that failed (name -> message)."""

    momdp: MOMDP
    outcomes: list[Outcome]
    failures: dict[str, str] = field(default_factory=dict)
    sample: Any = None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per outcome: rule, per-agent % of max return, summary metrics, time, and
        with a sample the per-agent quantile ranks and the quantile-fairness level."""
        rows = []
        for o in self.outcomes:
            row = {
                "rule": o.rule,
                "percent_of_max": (100.0 * o.normalized).tolist(),
                **metrics.welfare_summary(o.normalized),
                "sum_returns": float(o.returns.sum()),
                "seconds": o.stats.wall_time,
            }
            if self.sample is not None:
                row.update(metrics.sample_certificates(o.returns, self.sample))
            rows.append(row)
        return rows

    def table(self) -> str:
        """A fixed-width text table: per agent the % of max return (normalised return x 100)."""
        labels = [f"a{i}" for i in range(self.momdp.num_agents)]
        ranked = self.sample is not None
        header = ["rule", *labels, "min%", "gini", "nashW", *(["q-level", "borda", "90%-a", "80%-a"] if ranked else []), "time s"]
        body = [
            [r["rule"], *(f"{p:.1f}" for p in r["percent_of_max"]), f"{100 * r['min']:.1f}",
             f"{r['gini']:.3f}", f"{r['nash_welfare']:.3f}",
             *([f"{r['quantile_level']:.4f}", f"{r['borda_score']:.3f}", str(r["approvals_0.9"]), str(r["approvals_0.8"])]
               if ranked else []),
             f"{r['seconds']:.2f}"]
            for r in self.rows()
        ]
        widths = [max(len(row[k]) for row in [header, *body]) for k in range(len(header))]
        lines = [_format_row(header, widths), _format_row(["-" * w for w in widths], widths)]
        lines += [_format_row(row, widths) for row in body]
        legend = ", ".join(f"a{i} = {name}" for i, name in enumerate(self.momdp.labels()))
        lines += [f"failed: {name}: {message}" for name, message in self.failures.items()]
        if ranked:
            lines.append(f"q-level = min over agents of the quantile rank, borda = sum of ranks, 90%-a / 80%-a = agents "
                         f"ranking the policy in their top 10% / 20%, under {self.sample!r} "
                         f"(DKW band ±{self.sample.dkw_band():.4f} at 95%)")
        return "\n".join([repr(self.momdp), *lines, f"% of max return per agent ({legend})"])

    def to_dict(self) -> dict[str, Any]:
        bounds = return_bounds(self.momdp)
        return {
            "instance": {
                "description": repr(self.momdp),
                "criterion": self.momdp.criterion,
                "gamma": self.momdp.gamma,
                "agents": self.momdp.labels(),
                "info": self.momdp.info,
                "min_return": bounds.lower.tolist(),
                "max_return": bounds.upper.tolist(),
            },
            "sample": None if self.sample is None else self.sample.to_dict(),
            "rules": [{**o.to_dict(), **row} for o, row in zip(self.outcomes, self.rows())],
            "failures": self.failures,
        }

    def to_pandas(self):
        """:meth:`rows` as a ``pandas.DataFrame``, one row per rule (needs pandas): columns
        ``rule``, one ``% max <agent>`` per agent, the summary metrics, ``seconds``, and with a
        sample one ``rank <agent>`` per agent, the quantile level, Borda score and approval counts."""
        pandas = optional_module("pandas", "to_pandas", "pip install pandas (rows() holds the same data as dicts)")
        labels = self.momdp.labels()
        flat = []
        for row in self.rows():
            row = dict(row)
            percent, ranks = row.pop("percent_of_max"), row.pop("ranks", None)
            flat.append({"rule": row.pop("rule"), **{f"% max {label}": value for label, value in zip(labels, percent)},
                         **row, **({} if ranks is None else {f"rank {label}": value for label, value in zip(labels, ranks)})})
        return pandas.DataFrame(flat)

    def agent_rankings(self, tolerance: float = TIE_TOLERANCE) -> list[dict[int, int]]:
        """Every agent's ranking of the outcomes (candidate ``j`` is ``self.outcomes[j]``) by its
        own return: ``{candidate: rank}`` with rank 1 the best, outcomes within ``tolerance`` of
        the agent's return range (max_O J_i - min_O J_i) of each other tied (dense ranks)."""
        if not self.outcomes:
            raise ValidationError("outcomes: no rule succeeded, so there is nothing to rank")
        tolerance = positive_number("tolerance", tolerance)
        returns = np.stack([o.returns for o in self.outcomes])  # [k, n]
        span = np.maximum(return_bounds(self.momdp).span, 1e-300)
        rankings = []
        for i in range(self.momdp.num_agents):
            order = np.argsort(-returns[:, i], kind="stable")
            ranks, rank = {}, 0
            for position, j in enumerate(order):
                if position == 0 or returns[order[position - 1], i] - returns[j, i] > tolerance * span[i]:
                    rank += 1
                ranks[int(j)] = rank
            rankings.append(dict(sorted(ranks.items())))
        return rankings

    def to_pref_voting(self, tolerance: float = TIE_TOLERANCE):
        """A ``pref_voting`` profile (``ProfileWithTies``; needs the ``voting`` extra) whose
        voters are the agents and whose candidates are the rules' outcomes (``0 .. k-1``, named
        by rule through the profile's ``cmap``), each agent ranking them by its return
        (:meth:`agent_rankings`), to run pref_voting's voting methods and axiom checks on
        jaxagg's candidates."""
        rankings = self.agent_rankings(tolerance)
        profiles = optional_module("pref_voting.profiles_with_ties", "to_pref_voting", "pip install 'jaxagg[voting]'")
        candidates = list(range(len(self.outcomes)))
        return profiles.ProfileWithTies(rankings, candidates=candidates, cmap={j: o.rule for j, o in enumerate(self.outcomes)})

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (the folder is created if needed)."""
        return files.write_json(path, self.to_dict())

    def plot(self, path: str | os.PathLike) -> Path:
        """Each rule's normalised returns, agents ranked from worst-off (:func:`ranked_figure`)."""
        bars = {o.rule: (100.0 * np.sort(o.normalized), np.zeros(o.normalized.size)) for o in self.outcomes}
        return ranked_figure(bars, repr(self.momdp), path)


def compare(
    momdp: MOMDP,
    rules: Sequence[str] | None = None,
    sample: Any = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Run several rules on one MOMDP.

    Args:
        rules: registry names (default: every welfare rule, :data:`DEFAULT_RULES`, and with a
            sample also :data:`VOLUMETRIC_RULES`).
        sample: a sample of the reference measure for rules that need one.
        progress: called with a short message before each rule (e.g. ``print``).

    A rule that raises a :class:`~jaxagg.errors.JaxaggError` (say, an infeasible program) is
    reported in ``failures`` and the others still run; unknown rule names, a rule that needs a
    sample without one, and a sample of another instance raise at once.
    """
    if rules is None:
        rules = DEFAULT_RULES + (VOLUMETRIC_RULES if sample is not None else ())
    names = list(rules)
    selected = [rule_registry.get(name) for name in names]
    for rule in selected:  # a missing or foreign sample fails at once, not once per rule
        check_inputs(rule, momdp, sample)
    outcomes, failures = [], {}
    for k, rule in enumerate(selected, start=1):
        if progress is not None:
            progress(f"[{k}/{len(selected)}] {rule.name}")
        try:
            outcomes.append(rule(momdp, sample))
        except JaxaggError as exc:
            failures[rule.name] = str(exc)
    return Comparison(momdp, outcomes, failures, sample)


def _format_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = cells
    return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:]))]).rstrip()


def ranked_figure(bars: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: str | os.PathLike,
                  labels: dict[str, str] | None = None) -> Path:
    """Bar chart in the style of the paper's Figure 1: x = agents ranked from worst-off, one bar
    per rule, height = % of max return, error bars = standard errors.

    Args:
        bars: rule name -> ``(mean [n], standard error [n])`` in % of max return.
        title: the figure's title.
        path: ``.png``, ``.pdf`` or ``.svg`` (the folder is created if needed; written atomically).
        labels: optional display names of the rules.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = files.output_path("path", path, FIGURE_SUFFIXES)
    labels = labels or {}
    n = len(next(iter(bars.values()))[0])
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * n + 3.5), 3.6))
    for j, (name, (mean, se)) in enumerate(bars.items()):
        x = np.arange(n) + (j - (len(bars) - 1) / 2) * width
        ax.bar(x, mean, width, yerr=se, capsize=2, label=labels.get(name, name))
    ax.set_xticks(np.arange(n), [str(i + 1) for i in range(n)])
    ax.set_xlabel("agents, ranked from worst-off")
    ax.set_ylabel("% of max return")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` (its suffix names the format) atomically, then
    close it: every figure of jaxagg is written here."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        files.atomic_write(path, lambda handle: fig.savefig(handle, dpi=120, format=path.suffix.lower()[1:]))
    finally:
        plt.close(fig)
    return path
