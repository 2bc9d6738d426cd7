"""Shared bits of the benchmarks: the options every benchmark takes, correctness checks, machine
metadata, markdown and JSON output, and bench/RESULTS.md.

Every benchmark script:

* takes ``--smoke`` (toy sizes, seconds; never recorded), ``--no-record`` and ``--json PATH``;
* checks its results while it runs (:class:`Checks`): a failed check raises :class:`CheckFailed`
  and the script exits non-zero;
* ends with :func:`publish`: prints the markdown table, records it in RESULTS.md (unless
  ``--smoke`` or ``--no-record``), and prints one JSON object (machine, versions, rows, checks)
  as the last line of stdout, also written to ``--json PATH`` when given.

RESULTS.md has two parts: ``## Latest`` (one section per benchmark, its most recent run) and
``## History`` (older sections, newest first). :func:`record` puts a new run in its benchmark's
place under Latest and moves the run it replaces to the top of History.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("RESULTS.md")
LATEST = "## Latest"
HISTORY = "## History"
SECTION = "### "
MARKER = "<!-- bench: {} -->"
MARKER_PATTERN = re.compile(r"<!-- bench: (\S+) -->")
PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "highspy", "optax", "jaxagg")
PREAMBLE = """# Benchmark results

Written by the scripts in bench/ (`python bench/<script>.py`; `--no-record` prints without
recording, `--smoke` runs toy sizes and never records). **Latest** holds each benchmark's most
recent run; a new run replaces its benchmark's section there and moves the old one to the top of
**History** (newest first), which also keeps the dated notes written by hand about the figures.
"""


# ------------------------------------------------------------------ command line
def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--smoke``, ``--no-record`` and ``--json PATH``."""
    parser.add_argument("--smoke", action="store_true", help="toy sizes (seconds); implies --no-record")
    parser.add_argument("--no-record", action="store_true", help="print only; do not record in bench/RESULTS.md")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON summary to PATH")
    return parser


def command_line() -> str:
    """How this script was run, as a command to paste (``python bench/x.py --flag ...``)."""
    script = Path(sys.argv[0])
    shown = f"bench/{script.name}" if script.parent.name == "bench" else str(script)
    return " ".join(["python", shown, *map(shlex.quote, sys.argv[1:])])


# ------------------------------------------------------------------ checks
class CheckFailed(AssertionError):
    """A benchmark's result is wrong (not merely slow)."""


class Checks:
    """Correctness checks of one benchmark run: each is kept (for the JSON) and raises
    :class:`CheckFailed` at once when it fails."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def at_most(self, what: str, value: float, limit: float) -> float:
        return self._check(what, float(value), f"<= {limit:g}", float(value) <= limit)

    def at_least(self, what: str, value: float, limit: float) -> float:
        return self._check(what, float(value), f">= {limit:g}", float(value) >= limit)

    def that(self, what: str, ok: bool, detail: Any = None) -> bool:
        self._check(what, detail, "true", bool(ok))
        return bool(ok)

    def _check(self, what: str, value: Any, limit: str, ok: bool):
        self.results.append({"check": what, "value": value, "limit": limit, "ok": ok})
        if not ok:
            raise CheckFailed(f"{what}: got {value!r}, expected {limit}")
        return value

    def summary(self) -> str:
        failed = [r["check"] for r in self.results if not r["ok"]]
        if failed:
            return f"{len(failed)} of {len(self.results)} correctness checks FAILED: " + "; ".join(failed)
        return f"all {len(self.results)} correctness checks passed (listed in the JSON summary)"


# ------------------------------------------------------------------ machine
def machine_info() -> dict[str, Any]:
    """CPU, cores, Python, package versions, JAX backend and devices, git commit."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: version(p) for p in PACKAGES},
    }
    try:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = [str(d) for d in jax.devices()]
    except Exception as error:  # a benchmark without jax still reports the rest
        info["jax_backend"] = f"unavailable ({type(error).__name__})"
    info["git"] = _git_commit()
    return info


def machine(info: dict[str, Any] | None = None) -> str:
    """One line: CPU model, cores, Python and key package versions."""
    info = info or machine_info()
    versions = ", ".join(f"{p} {info['versions'][p]}" for p in ("jax", "numpy", "scipy", "highspy"))
    line = f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, {versions}"
    backend = info.get("jax_backend")
    return line if backend in (None, "cpu") else f"{line}, JAX backend {backend} ({', '.join(info.get('jax_devices', []))})"


def version(package: str) -> str:
    """An installed distribution's version, else the module's ``__version__``, else "absent";
    jaxagg's own ``__version__`` always (an editable install keeps the version it was installed
    at in its metadata)."""
    if package == "jaxagg":
        import jaxagg

        return jaxagg.__version__
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        pass
    try:
        module = __import__(package)
    except ImportError:
        return "absent"
    return str(getattr(module, "__version__", "unknown"))


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# ------------------------------------------------------------------ tables
Column = tuple[str, str, "str | Callable[[Any], str]"]
"""``(header, key, format)``: the markdown header, the row dict's key, and a format spec
(``".2f"``) or a function of the value; ``None`` shows as an empty cell, strings as they are."""


def markdown_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of ``rows`` (dicts) in ``columns``."""
    lines = ["| " + " | ".join(header for header, _, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(key), fmt) for _, key, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def cell(value: Any, fmt: str | Callable[[Any], str] = "") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if callable(fmt):
        return fmt(value)
    return format(value, fmt)


def progress_line(columns: Sequence[Column], row: dict[str, Any]) -> str:
    """One row as a line of text, to print while a benchmark runs."""
    return " | ".join(cell(row.get(key), fmt) for _, key, fmt in columns)


# ------------------------------------------------------------------ JSON
def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python values and non-finite floats as strings
    (``"inf"``), so that the output is strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# ------------------------------------------------------------------ publishing
def publish(args: argparse.Namespace, key: str, title: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]],
            checks: Checks, *, notes: str = "", preface: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print the table (``preface``, table, ``notes``), record it in RESULTS.md under ``key``
    unless ``--smoke`` or ``--no-record``, then print the JSON summary as the last line of stdout
    (and write it to ``--json``). Returns the summary."""
    table = "\n\n".join(part for part in (preface, markdown_table(columns, rows), notes) if part)
    print(table)
    print(checks.summary())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = machine_info()
    command = command_line()
    recorded = not (args.smoke or args.no_record)
    if recorded:
        record(key, title, command, table, stamp=stamp, machine_line=machine(info), checks=checks.summary())
    summary = jsonable({
        "benchmark": key,
        "title": title,
        "date": stamp,
        "command": command,
        "smoke": bool(args.smoke),
        "recorded": recorded,
        "machine": info,
        "columns": [{"header": header, "key": k} for header, k, _ in columns],
        "rows": list(rows),
        "checks": checks.results,
        **(extra or {}),
    })
    text = json.dumps(summary, allow_nan=False)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    print(text, flush=True)
    return summary


def record(key: str, title: str, command: str, table: str, *, stamp: str | None = None, machine_line: str | None = None,
           checks: str | None = None, path: Path | str = RESULTS) -> None:
    """Put a dated section for benchmark ``key`` under Latest in ``path`` (RESULTS.md), moving
    the section it replaces to the top of History. ``checks``: a line saying which correctness
    checks passed."""
    stamp = stamp or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine_line = machine_line or machine()
    checked = f"Checks: {checks}.\n\n" if checks else ""
    section = (f"{SECTION}{title} — {stamp}\n{MARKER.format(key)}\n\nMachine: {machine_line}\n\nCommand: `{command}`\n\n"
               f"{checked}{table}\n")
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    _write_atomically(path, update_results(text, key, section))


def update_results(text: str, key: str, section: str) -> str:
    """RESULTS.md ``text`` with ``section`` as benchmark ``key``'s Latest section (in the old one's
    place, or last under Latest) and the old one, if any, first under History. Missing parts
    (the preamble, ``## Latest``, ``## History``) are created; a file without either heading (the
    old append-only format) becomes History."""
    preamble, latest, history = split_results(text)
    kept, moved = [], []
    for old in sections_of(latest):
        if section_key(old) != key:
            kept.append(old)
        elif not moved:
            kept.append(section.strip("\n"))
            moved.append(old)
        else:  # a duplicate (edited by hand): it goes to History too
            moved.append(old)
    if not moved:
        kept.append(section.strip("\n"))
    older = sections_of(history)
    intro = [older.pop(0)] if older and not older[0].startswith(SECTION) else []
    parts = [preamble.strip("\n") or PREAMBLE.strip("\n"), LATEST, *kept, HISTORY, *intro, *moved, *older]
    return "\n\n".join(parts) + "\n"


def split_results(text: str) -> tuple[str, str, str]:
    """(preamble, Latest body, History body) of a RESULTS.md text."""
    lines = text.splitlines()
    first = {name: next((i for i, line in enumerate(lines) if line.rstrip() == name), None) for name in (LATEST, HISTORY)}
    marks = sorted((i, name) for name, i in first.items() if i is not None)
    if not marks:
        first = next((i for i, line in enumerate(lines) if line.startswith(SECTION)), len(lines))
        return "\n".join(lines[:first]), "", "\n".join(lines[first:])
    bodies = {LATEST: "", HISTORY: ""}
    for k, (i, name) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else len(lines)
        bodies[name] = "\n".join(lines[i + 1:end])
    return "\n".join(lines[:marks[0][0]]), bodies[LATEST], bodies[HISTORY]


def sections_of(body: str) -> list[str]:
    """The ``### `` sections of a part (text before the first one is kept as one more)."""
    sections: list[list[str]] = []
    for line in body.splitlines():
        if line.startswith(SECTION) or not sections:
            sections.append([])
        sections[-1].append(line)
    return [text for text in ("\n".join(s).strip("\n") for s in sections) if text]


def section_key(section: str) -> str | None:
    match = MARKER_PATTERN.search(section)
    return match.group(1) if match else None


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
