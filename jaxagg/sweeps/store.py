"""The sweep store: one SQLite file (standard library ``sqlite3``, WAL journal), written only by
the sweep's driver process.

Tables (every JSON column holds UTF-8 JSON text; times are seconds):

``instances``
    ``key`` (text, primary key: hash of the family and parameters, :mod:`jaxagg.sweeps.spec`),
    ``env``, ``params`` (JSON), ``label``, ``fingerprint`` (the MOMDP's SHA-256, once built),
    ``num_states``, ``num_actions``, ``num_agents``, ``criterion``, ``gamma``,
    ``min_returns``/``max_returns`` (JSON ``[n]``, the return bounds).
``samples``
    ``key`` (primary key), ``instance_key``, ``measure``, ``num_samples``, ``seed``,
    ``precision``, ``evaluation``, ``path`` (the sample file, relative to the store's folder),
    ``wall_time``, ``info`` (JSON: the sample's engine record).
``runs``
    one row per finished cell: ``key`` (primary key), ``instance_key``, ``sample_key`` (null
    without a sample), ``rule`` (registry name), ``requested`` (the spec's rule name),
    ``options`` (JSON), ``method``, ``status`` (``done`` or ``failed``), ``error``
    (``Type: message`` of a failed cell), ``wall_time``, ``solves``, ``solve_time``,
    ``mip_gap``, ``min_normalized``, ``mean_normalized``, ``gini``, ``nash_welfare``,
    ``quantile_level``, ``borda_score``, ``approvals_90``, ``approvals_80`` (null without a
    sample), ``info`` (JSON: the rule's own results and certificates), ``finished_at`` (UTC ISO).
``agent_results``
    ``run_key``, ``agent``, ``name``, ``raw_return``, ``normalized_return``,
    ``quantile_rank`` (null without a sample); primary key (run_key, agent).
``cells``
    every cell a sweep on this store has planned: ``key``, ``instance_key``, ``sample_key``,
    ``rule``, ``sweep`` (its name); a planned cell without a run row is pending.
``sweeps``
    ``name``, ``spec`` (JSON, as given), ``started``: one row per ``jaxagg sweep`` started.
``meta``
    ``key``/``value`` pairs: ``schema`` (the version), ``created``.

Every finished cell (its run row and its agent rows) is one committed transaction, so a sweep
killed at any moment loses at most the cells in flight; a failed cell is a committed row too
(status ``failed``), so a rerun does not retry it unless asked to.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jaxagg import files
from jaxagg.errors import ValidationError
from jaxagg.validation import json_default

SCHEMA_VERSION = "1"
STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    key TEXT PRIMARY KEY, env TEXT NOT NULL, params TEXT NOT NULL, label TEXT NOT NULL,
    fingerprint TEXT, num_states INTEGER, num_actions INTEGER, num_agents INTEGER,
    criterion TEXT, gamma REAL, min_returns TEXT, max_returns TEXT);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY, instance_key TEXT NOT NULL REFERENCES instances(key), measure TEXT NOT NULL,
    num_samples INTEGER NOT NULL, seed INTEGER NOT NULL, precision TEXT NOT NULL, evaluation TEXT NOT NULL,
    path TEXT NOT NULL, wall_time REAL, info TEXT);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY, instance_key TEXT NOT NULL REFERENCES instances(key), sample_key TEXT,
    rule TEXT NOT NULL, requested TEXT NOT NULL, options TEXT NOT NULL, method TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')), error TEXT, wall_time REAL,
    solves INTEGER, solve_time REAL, mip_gap REAL, min_normalized REAL, mean_normalized REAL, gini REAL,
    nash_welfare REAL, quantile_level REAL, borda_score REAL, approvals_90 INTEGER, approvals_80 INTEGER,
    info TEXT, finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agent_results (
    run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE, agent INTEGER NOT NULL, name TEXT,
    raw_return REAL NOT NULL, normalized_return REAL NOT NULL, quantile_rank REAL,
    PRIMARY KEY (run_key, agent));
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY, instance_key TEXT NOT NULL, sample_key TEXT, rule TEXT NOT NULL, sweep TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sweeps (name TEXT NOT NULL, spec TEXT NOT NULL, started TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_instance ON runs(instance_key);
"""

RUN_COLUMNS = ("key", "instance_key", "sample_key", "rule", "requested", "options", "method", "status", "error",
               "wall_time", "solves", "solve_time", "mip_gap", "min_normalized", "mean_normalized", "gini",
               "nash_welfare", "quantile_level", "borda_score", "approvals_90", "approvals_80", "info", "finished_at")
METRICS = {
    "min": "min_normalized",
    "mean": "mean_normalized",
    "gini": "gini",
    "nash": "nash_welfare",
    "q-level": "quantile_level",
    "borda": "borda_score",
    "approvals-90": "approvals_90",
    "approvals-80": "approvals_80",
    "time": "wall_time",
}
"""Metric names of :meth:`Store.records` / ``jaxagg sweep --plot`` -> run column: the worst-off
agent's normalised return (``min``), their mean, Gini, Nash welfare, quantile-fairness level,
Borda score, approvals at 0.9 and 0.8, and the rule's wall time."""
METRIC_LABELS = {
    "min": "worst-off agent's normalised return",
    "mean": "mean normalised return",
    "gini": "Gini index of normalised returns",
    "nash": "Nash welfare of normalised returns",
    "q-level": "quantile-fairness level (min rank)",
    "borda": "Borda score (sum of ranks)",
    "approvals-90": "agents approving at q = 0.9",
    "approvals-80": "agents approving at q = 0.8",
    "time": "rule wall time (s)",
}
"""Axis labels of the metrics."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=json_default, allow_nan=False)


class Store:
    """A sweep store (see the module docstring). Open with :meth:`open`; use as a context
    manager or call :meth:`close`."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection

    # -------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True) -> Store:
        """Open (``create``: or create) the store at ``path`` (``.db``, ``.sqlite`` or
        ``.sqlite3``). Raises :class:`ValidationError` for a bad path, a missing store when
        ``create`` is false, or a file that is not a jaxagg store."""
        if create:
            path = files.output_path("store", path, STORE_SUFFIXES)
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            path = Path(path)
            if not path.is_file():
                raise ValidationError(f"store: no such file {str(path)!r}")
        try:
            connection = sqlite3.connect(path, timeout=60.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            version = cls._schema_version(connection)
            if version is None:
                if not create:
                    raise ValidationError(f"store: {str(path)!r} is not a jaxagg sweep store (no schema)")
                with _transaction(connection):
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            connection.execute(statement)
                    connection.execute("INSERT INTO meta VALUES ('schema', ?), ('created', ?)", (SCHEMA_VERSION, _now()))
            elif version != SCHEMA_VERSION:
                raise ValidationError(f"store: {str(path)!r} has schema version {version}; this jaxagg reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ValidationError(f"store: {str(path)!r} is not a readable SQLite database ({exc})") from None
        return cls(path, connection)

    @staticmethod
    def _schema_version(connection: sqlite3.Connection) -> str | None:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables:
                raise ValidationError("store: the file is a SQLite database but not a jaxagg sweep store")
            return None
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def samples_folder(self) -> Path:
        """Where sample files go: ``<store name>.samples/`` beside the store."""
        return self.path.with_name(self.path.stem + ".samples")

    # -------------------------------------------------------------- writing
    def put_instance(self, key: str, env: str, params: dict[str, Any], label: str, momdp: Any = None,
                     bounds: Any = None) -> None:
        """Insert the instance (or fill in what was learned: its built MOMDP's sizes, its bounds)."""
        sizes = (None,) * 6 if momdp is None else (
            momdp.fingerprint, momdp.num_states, momdp.num_actions, momdp.num_agents, momdp.criterion, momdp.gamma)
        extremes = (None, None) if bounds is None else (_json(bounds.lower.tolist()), _json(bounds.upper.tolist()))
        with _transaction(self.connection):
            self.connection.execute("INSERT OR IGNORE INTO instances (key, env, params, label) VALUES (?, ?, ?, ?)",
                                    (key, env, _json(params), label))
            if momdp is not None:
                self.connection.execute(
                    "UPDATE instances SET fingerprint = ?, num_states = ?, num_actions = ?, num_agents = ?, "
                    "criterion = ?, gamma = ? WHERE key = ?", (*sizes, key))
            if bounds is not None:
                self.connection.execute("UPDATE instances SET min_returns = ?, max_returns = ? WHERE key = ?",
                                        (*extremes, key))

    def put_bounds(self, key: str, lower: list[float], upper: list[float]) -> None:
        """Record the instance's return bounds ``[n]`` (as its cells report them)."""
        with _transaction(self.connection):
            self.connection.execute("UPDATE instances SET min_returns = ?, max_returns = ? WHERE key = ?",
                                    (_json(lower), _json(upper), key))

    def put_cells(self, sweep: str, spec: dict[str, Any], cells: list[tuple[str, str, str | None, str]]) -> None:
        """Record a sweep's start and every cell it plans (``(key, instance_key, sample_key,
        rule)``), so that :meth:`counts` knows what is pending."""
        with _transaction(self.connection):
            self.connection.execute("INSERT INTO sweeps VALUES (?, ?, ?)", (sweep, _json(spec), _now()))
            self.connection.executemany("INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?)",
                                        [(*cell, sweep) for cell in cells])

    def label(self, key: str) -> str:
        """The readable label of instance ``key``."""
        row = self.connection.execute("SELECT label FROM instances WHERE key = ?", (key,)).fetchone()
        return key[:12] if row is None else row[0]

    def put_sample(self, key: str, instance_key: str, settings: dict[str, Any], path: Path, wall_time: float,
                   info: dict[str, Any]) -> None:
        """Record a sample file (its path is stored relative to the store's folder)."""
        relative = os.path.relpath(path, self.path.parent)
        with _transaction(self.connection):
            self.connection.execute(
                "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, instance_key, settings["measure"], settings["num_samples"], settings["seed"],
                 settings["precision"], settings["evaluation"], relative, wall_time, _json(info)))

    def sample_path(self, key: str) -> Path | None:
        """The file of the recorded sample ``key`` (None if none is recorded)."""
        row = self.connection.execute("SELECT path FROM samples WHERE key = ?", (key,)).fetchone()
        return None if row is None else self.path.parent / row[0]

    def put_run(self, record: dict[str, Any]) -> None:
        """Commit one finished cell: its run row (replacing an earlier failed one) and its
        per-agent rows, in one transaction. ``record`` holds :data:`RUN_COLUMNS` (JSON columns
        as Python values) and ``agents``: a list of ``{agent, name, raw_return,
        normalized_return, quantile_rank}``."""
        row = dict(record)
        for column in ("options", "info"):
            row[column] = _json(row.get(column))
        row.setdefault("finished_at", _now())
        values = tuple(row.get(column) for column in RUN_COLUMNS)
        with _transaction(self.connection):
            self.connection.execute("DELETE FROM runs WHERE key = ?", (row["key"],))
            self.connection.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                                    values)
            self.connection.executemany(
                "INSERT INTO agent_results VALUES (?, ?, ?, ?, ?, ?)",
                [(row["key"], a["agent"], a.get("name"), a["raw_return"], a["normalized_return"], a.get("quantile_rank"))
                 for a in record.get("agents", [])])

    # -------------------------------------------------------------- reading
    def finished(self, include_failed: bool = True) -> set[str]:
        """Keys of the committed cells (``include_failed``: failed ones too)."""
        query = "SELECT key FROM runs" + ("" if include_failed else " WHERE status = 'done'")
        return {row[0] for row in self.connection.execute(query)}

    def counts(self) -> dict[str, int]:
        """Cells by status: ``{"done", "failed", "pending"}`` (pending: planned by a sweep on this
        store, without a committed row)."""
        counts = {"done": 0, "failed": 0}
        for status, count in self.connection.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            counts[status] = count
        counts["pending"] = self.connection.execute(
            "SELECT COUNT(*) FROM cells c WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.key = c.key)").fetchone()[0]
        return counts

    def failures(self, limit: int | None = None) -> list[tuple[str, str, str]]:
        """``(instance label, rule, error)`` of failed cells, in the order they finished."""
        query = ("SELECT i.label, r.rule, r.error FROM runs r JOIN instances i ON i.key = r.instance_key "
                 "WHERE r.status = 'failed' ORDER BY r.finished_at" + ("" if limit is None else f" LIMIT {int(limit)}"))
        return list(self.connection.execute(query))

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per committed cell, in the order the sweeps planned them (instance, sample,
        rule): the run's columns, the instance's family and
        parameters (``param.<name>``), its label, the sample's settings (``sample.<name>``) and
        per agent ``raw``, ``normalized`` and ``rank`` lists."""
        instances = {key: (env, json.loads(params), label) for key, env, params, label
                     in self.connection.execute("SELECT key, env, params, label FROM instances")}
        samples = {row[0]: row[1:] for row in self.connection.execute(
            "SELECT key, measure, num_samples, seed, precision, evaluation FROM samples")}
        agents: dict[str, list[tuple]] = {}
        for run_key, _agent, raw, normalized, rank in self.connection.execute(
                "SELECT run_key, agent, raw_return, normalized_return, quantile_rank FROM agent_results ORDER BY run_key, agent"):
            agents.setdefault(run_key, []).append((raw, normalized, rank))
        out = []
        columns = ", ".join(f"r.{column}" for column in RUN_COLUMNS)
        ordered = (f"SELECT {columns} FROM runs r LEFT JOIN cells c ON c.key = r.key "
                   "ORDER BY c.rowid IS NULL, c.rowid, r.finished_at, r.key")  # the spec's order (instance, sample, rule)
        for row in self.connection.execute(ordered):
            record = dict(zip(RUN_COLUMNS, row))
            record["options"] = json.loads(record["options"])
            record["info"] = None if record["info"] is None else json.loads(record["info"])
            env, params, label = instances[record["instance_key"]]
            record.update({"env": env, "label": label, **{f"param.{k}": v for k, v in params.items()}})
            sample = samples.get(record["sample_key"])
            if sample is not None:
                record.update(zip(("sample.measure", "sample.num_samples", "sample.seed", "sample.precision",
                                   "sample.evaluation"), sample))
            values = agents.get(record["key"], [])
            record["raw"] = [v[0] for v in values]
            record["normalized"] = [v[1] for v in values]
            record["rank"] = [v[2] for v in values]
            out.append(record)
        return out


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
