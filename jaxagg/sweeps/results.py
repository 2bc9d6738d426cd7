"""What a sweep store holds, read back: per-cell records, status counts, summaries by rule and a
swept parameter, export to CSV or JSON, and plots of a metric against a parameter."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg import files
from jaxagg.errors import ValidationError
from jaxagg.report import FIGURE_SUFFIXES, save_figure
from jaxagg.sweeps.store import METRIC_LABELS, METRICS, Store
from jaxagg.validation import optional_module

EXPORT_FORMATS = ("csv", "json")


@dataclass
class SweepResults:
    """The cells of a store.

    Attributes:
        store: the store's path.
        records: one dict per committed cell (:meth:`Store.records`: run columns, ``env``,
            ``label``, ``param.<name>``, ``sample.<name>``, per-agent ``raw``/``normalized``/``rank``).
        counts: ``{"done", "failed", "pending"}``.
    """

    store: Path
    records: list[dict[str, Any]]
    counts: dict[str, int]

    @classmethod
    def read(cls, store: Store | str | os.PathLike) -> SweepResults:
        """The results in ``store`` (an open Store, or the path of one)."""
        if isinstance(store, Store):
            return cls(store.path, store.records(), store.counts())
        with Store.open(store, create=False) as opened:
            return cls.read(opened)

    def __repr__(self) -> str:
        return (f"SweepResults({str(self.store)!r}: {self.counts['done']} done, {self.counts['failed']} failed, "
                f"{self.counts['pending']} pending)")

    def done(self) -> list[dict[str, Any]]:
        """The records of the cells that finished without error."""
        return [r for r in self.records if r["status"] == "done"]

    def failures(self) -> list[dict[str, Any]]:
        """The records of the failed cells (``error`` says why)."""
        return [r for r in self.records if r["status"] == "failed"]

    def to_pandas(self):
        """The records as a ``pandas.DataFrame`` (needs pandas; per-agent lists stay lists)."""
        pandas = optional_module("pandas", "to_pandas", "pip install pandas (records holds the same data as dicts)")
        return pandas.DataFrame(self.records)

    def summary(self, metric: str = "min", by: str | None = None) -> dict[str, dict[Any, tuple[float, float, int]]]:
        """Per rule (and per value of the swept parameter ``by``, e.g. ``"agents"``): mean,
        standard error and count of ``metric`` (:data:`~jaxagg.sweeps.store.METRICS`) over the
        finished cells."""
        column = metric_column(metric)
        field = None if by is None else parameter_field(self.records, by)
        groups: dict[str, dict[Any, list[float]]] = {}
        for record in self.done():
            value = record.get(column)
            if value is None:
                continue
            groups.setdefault(record["rule"], {}).setdefault(None if field is None else record.get(field), []).append(float(value))
        return {rule: {x: _mean_se(values) for x, values in sorted(by_x.items(), key=lambda item: _sort_key(item[0]))}
                for rule, by_x in groups.items()}

    def table(self, metric: str = "min", by: str | None = None) -> str:
        """A text table of :meth:`summary`: rows are rules, columns the values of ``by``."""
        summary = self.summary(metric, by)
        columns = sorted({x for by_x in summary.values() for x in by_x}, key=_sort_key)
        header = ["rule", *(metric if x is None else f"{by}={x}" for x in columns)]
        body = [[rule, *(f"{by_x[x][0]:.4g}±{by_x[x][1]:.2g} (n={by_x[x][2]})" if x in by_x else "" for x in columns)]
                for rule, by_x in summary.items()]
        widths = [max(len(row[k]) for row in [header, *body]) for k in range(len(header))]
        lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))).rstrip()
                 for row in [header, *body]]
        counts = self.counts
        title = (f"{self.store.name}: {counts['done']} done, {counts['failed']} failed, {counts['pending']} pending; "
                 f"{metric} (mean ± s.e. over cells)")
        return "\n".join([title, *lines])

    def export(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write the records to ``path`` as CSV (one row per cell; lists and tables as JSON text)
        or JSON (a list of records), atomically. ``fmt`` defaults to the file's suffix."""
        fmt = fmt or Path(path).suffix.lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(f"format: expected one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
        path = files.output_path("path", path, (f".{fmt}",))
        if fmt == "json":
            return files.write_json(path, self.records)
        columns = list(dict.fromkeys(key for record in self.records for key in record))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        for record in self.records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in record.items()})
        return files.atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode("utf-8")))

    def plot(self, metric: str, by: str, path: str | os.PathLike, rules: Sequence[str] | None = None) -> Path:
        """``metric`` against the swept parameter ``by``, one line per rule (mean over cells),
        with a band of ± one standard error; written atomically to ``path`` (.png/.pdf/.svg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        path = files.output_path("path", path, FIGURE_SUFFIXES)
        summary = self.summary(metric, by)
        if rules is not None:
            summary = {rule: summary[rule] for rule in rules if rule in summary}
        if not summary:
            raise ValidationError(f"metric: no finished cell has a value of {metric!r} to plot")
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for rule, by_x in summary.items():
            xs = list(by_x)
            numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
            positions = np.array(xs, dtype=float) if numeric else np.arange(len(xs), dtype=float)
            mean = np.array([by_x[x][0] for x in xs])
            se = np.array([by_x[x][1] for x in xs])
            (line,) = ax.plot(positions, mean, marker="o", label=rule)
            ax.fill_between(positions, mean - se, mean + se, color=line.get_color(), alpha=0.2, linewidth=0)
            if not numeric:
                ax.set_xticks(positions, [str(x) for x in xs])
        if all(isinstance(x, int) and not isinstance(x, bool) for by_x in summary.values() for x in by_x):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(by)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.set_title(f"{self.store.stem}: {metric} by {by} (mean ± s.e.)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return save_figure(fig, path)


def metric_column(metric: str) -> str:
    """The run column of a metric name (:data:`~jaxagg.sweeps.store.METRICS`)."""
    if metric not in METRICS:
        raise ValidationError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    return METRICS[metric]


def parameter_field(records: list[dict[str, Any]], by: str) -> str:
    """The record field of a swept parameter: ``agents`` -> ``param.agents``; ``sample.<name>``,
    ``rule``, ``method`` and ``env`` as they are."""
    candidates = [by, f"param.{by}", f"sample.{by}"]
    for field in candidates:
        if any(field in record for record in records):
            return field
    known = sorted({k.split(".", 1)[1] for r in records for k in r if k.startswith(("param.", "sample."))})
    raise ValidationError(f"by: no cell has a parameter {by!r}; swept parameters: {', '.join(known) or 'none'}")


def _mean_se(values: list[float]) -> tuple[float, float, int]:
    array = np.asarray(values, dtype=float)
    se = float(array.std(ddof=1) / np.sqrt(array.size)) if array.size > 1 else 0.0
    return float(array.mean()), se, int(array.size)


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value))
