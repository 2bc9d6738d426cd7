"""Shared bits of the benchmarks: machine description and appending tables to RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line: CPU model, cores, Python and key package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{p} {_version(p)}" for p in ("jax", "numpy", "scipy", "highspy"))
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def record(title: str, command: str, table: str) -> None:
    """Append a dated section to bench/RESULTS.md."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"\n### {title} — {stamp}\n\nMachine: {machine()}\n\nCommand: `{command}`\n\n{table}\n"
    with RESULTS.open("a") as f:
        f.write(section)


def publish(title: str, table: str, no_record: bool) -> None:
    """Print ``table``; unless ``no_record``, append it to RESULTS.md under ``title`` with the
    command line that produced it."""
    print(table)
    if not no_record:
        script = Path(sys.argv[0]).name
        record(title, " ".join([f"python bench/{script}", *map(shlex.quote, sys.argv[1:])]), table)
