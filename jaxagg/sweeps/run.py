"""The sweep driver: plan the cells a store has not finished, build instances and draw their
samples (in this process, on the accelerator or CPU), hand the rules to an executor, and commit
every finished cell to the store as it arrives.

Order of work: instances are taken in groups of the same shape (up to ``group`` at a time);
the group's samples are drawn together (:func:`sample_group`), written atomically next to the
store and recorded; then its cells go to the executor while the next group is sampled. At most
a few groups of cells are in flight, so memory stays bounded however large the grid is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from jaxagg.errors import JaxaggError, WorkerError
from jaxagg.momdp import MOMDP
from jaxagg.samples import ReturnSample, load_sample
from jaxagg.sweeps.executors import make_executor
from jaxagg.sweeps.results import SweepResults
from jaxagg.sweeps.spec import Cell, InstanceSpec, SampleSpec, SweepSpec, load_spec
from jaxagg.sweeps.store import Store
from jaxagg.sweeps.work import Task, failed_record
from jaxagg.validation import integer_at_least

GROUP = 64
"""Instances of one shape built and sampled together (and the most held in memory at once)."""
GROUP_BYTES = 2 * 1024**3
"""A group holds at most about this many bytes of instances and samples (by :func:`instance_bytes`),
so a group of large instances is smaller than :data:`GROUP`."""
GROUP_WORK = 10**8
"""A group's samples cost at most about this many (sample x state-action pair) units, so the
workers get their first cells after seconds, not after a long sampling stage (attention (5, 3)
with 20,000 samples: 3 instances per group; Garnets with 200 pairs and 2,000 samples: 64)."""
MAX_ATTEMPTS = 2
"""A cell whose worker process dies this many times is recorded as failed."""


@dataclass
class Plan:
    """The cells of a spec that a store has not finished yet, and how many it has."""

    spec: SweepSpec
    pending: list[Cell]
    done: int
    failed: int

    @property
    def total(self) -> int:
        return self.spec.num_cells


def plan(spec: SweepSpec, store: Store, retry_failed: bool = False) -> Plan:
    """Which cells of ``spec`` still need to run in ``store`` (``retry_failed``: failed cells too)."""
    finished = store.finished(include_failed=True)
    succeeded = store.finished(include_failed=False)
    pending, done, failed = [], 0, 0
    for cell in spec.cells():
        if cell.key in succeeded:
            done += 1
        elif cell.key in finished:
            failed += 1
            if retry_failed:
                pending.append(cell)
        else:
            pending.append(cell)
    return Plan(spec, pending, done, failed)


def plan_fresh(spec: SweepSpec) -> Plan:
    """The plan of ``spec`` on an empty store: every cell pending."""
    return Plan(spec, list(spec.cells()), 0, 0)


def describe(work: Plan, group: int = GROUP) -> str:
    """What a sweep would do (``jaxagg sweep --dry-run``): cells done, failed and pending,
    instances, samples and rules, and a rough memory estimate of the driver and of each worker."""
    spec = work.spec
    pending_instances = {c.instance.key: c.instance for c in work.pending}
    families: dict[str, int] = {}
    for instance in spec.instances:
        families[instance.env] = families.get(instance.env, 0) + 1
    samples = {(c.instance.key, c.sample) for c in work.pending if c.sample is not None}
    lines = [
        f"sweep {spec.name!r}: {spec.num_cells} cells = {len(spec.instances)} instances x {len(spec.samples)} sample "
        f"setting(s) x {len(spec.rules)} rule(s)",
        f"  done {work.done}, failed {work.failed}, to run {len(work.pending)} "
        f"(on {len(pending_instances)} instances, {len(samples)} samples to draw or reuse)",
        "  instances: " + ", ".join(f"{count} {env}" for env, count in families.items()),
        "  rules: " + ", ".join(rule.name + (f" {dict(rule.options)}" if rule.options else "") for rule in spec.rules),
    ]
    estimates = [instance_bytes(i, s) for i in pending_instances.values() for s in spec.samples]
    known = [e for e in estimates if e is not None]
    if known:
        largest = max(known)
        held = max((len({c.instance.key for c in cells}) for cells in _instance_groups(work.pending, group)), default=0)
        lines.append(f"  memory (rough estimate): driver ~{_size(held * largest)} "
                     f"(up to {held} instances and samples at once), each worker ~{_size(3 * largest)}, "
                     "plus ~0.3 GB per process for Python and JAX"
                     + ("; instance files not counted" if len(known) < len(estimates) else ""))
    elif estimates:
        lines.append("  memory: not estimated for instance files")
    return "\n".join(lines)


def instance_bytes(instance: InstanceSpec, sample: SampleSpec | None) -> int | None:
    """Rough bytes one instance and its sample take: transitions (dense garnets up to 2,000
    states, sparse lists beyond; the polytope's sparse matrix), rewards, and the sample's returns
    with their sorted copy. None for a file."""
    sizes = instance.sizes()
    if sizes is None:
        return None
    S, A, n, nonzeros = sizes
    dense = S * A * S * 8 if instance.env == "garnet" and S <= 2000 else 0
    transitions = dense + nonzeros * 32 + S * A * 16  # the operator's lists and the polytope's CSC
    samples = 0 if sample is None else sample.num_samples * n * 8 * 3
    return transitions + n * S * A * 8 + samples


def sampling_work(instance: InstanceSpec, sample: SampleSpec | None) -> int:
    """Samples x state-action pairs of drawing ``instance``'s sample (0 without a sample or sizes)."""
    sizes = instance.sizes()
    return 0 if sample is None or sizes is None else sample.num_samples * sizes[0] * sizes[1]


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def sweep(
    spec: SweepSpec | Mapping[str, Any] | str | os.PathLike,
    store: str | os.PathLike,
    *,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    retry_failed: bool = False,
    group: int = GROUP,
    progress: bool = True,
) -> SweepResults:
    """Run every cell of ``spec`` that ``store`` has not finished, and return the store's results.

    Args:
        spec: a TOML file, a dict of the same structure, or a :class:`SweepSpec`
            (:func:`jaxagg.sweeps.load_spec`).
        store: the SQLite file (``.db``); created if missing, resumed if not: only cells without
            a committed row run, and they give the same results as an uninterrupted sweep.
        workers: solve processes (default: the number of CPU cores; 0: in this process).
        backend: ``"local"`` (a process pool) or ``"ray"`` (Ray tasks; ``address`` of a running
            cluster, or a local one).
        retry_failed: run the cells recorded as failed again.
        group: instances of one shape built and sampled together.
        progress: a progress bar over cells on stderr, and one line per failed cell.
    """
    spec = load_spec(spec)
    group = integer_at_least("group", group, 1)
    with Store.open(store) as db:
        work = plan(spec, db, retry_failed)
        db.put_cells(spec.name, spec.source, [(c.key, c.instance.key, c.sample_key, c.rule.name) for c in spec.cells()])
        if work.pending:
            executor = make_executor(backend, workers, address)
            try:
                Driver(db, executor, progress, group).run(work)
            finally:
                executor.close()
        return SweepResults.read(db)


class Driver:
    """Runs a plan: samples in this process, cells on the executor, records into the store."""

    def __init__(self, store: Store, executor, progress: bool, group: int) -> None:
        self.store = store
        self.executor = executor
        self.group = group
        self.in_flight: dict[Future, tuple[Task, int]] = {}
        self.bar = _bar(progress)
        self.bounded: set[str] = set()
        self.completed = 0
        self.restarts = 0

    def run(self, work: Plan) -> None:
        self.bar.start(len(work.pending), f"{work.spec.name}: {work.done} done, {work.failed} failed before")
        try:
            for cells in _instance_groups(work.pending, self.group):
                self._submit_group(cells)
                self._collect(block=len(self.in_flight) > 2 * max(1, self.executor.workers) * 8)
            while self.in_flight:
                self._collect(block=True)
        finally:
            self.bar.close()

    # -------------------------------------------------------------- stages
    def _submit_group(self, cells: list[Cell]) -> None:
        """Build the group's instances, draw their samples, and submit their cells."""
        by_instance: dict[str, tuple[InstanceSpec, list[Cell]]] = {}
        for cell in cells:
            by_instance.setdefault(cell.instance.key, (cell.instance, []))[1].append(cell)
        momdps: dict[str, MOMDP] = {}
        for key, (instance, instance_cells) in by_instance.items():
            try:
                momdps[key] = instance.build()
                self.store.put_instance(key, instance.env, dict(instance.params), instance.label(), momdps[key])
            except Exception as exc:  # recorded as the cells' failure
                self.store.put_instance(key, instance.env, dict(instance.params), instance.label())
                self._fail(instance_cells, exc, "building the instance")
        settings = dict.fromkeys(c.sample for c in cells if c.sample is not None and c.instance.key in momdps)
        drawn: dict[tuple[str, SampleSpec], tuple[str, ReturnSample]] = {}
        for sample_spec in settings:
            wanting = [i for i, found in by_instance.values() if i.key in momdps and any(c.sample == sample_spec for c in found)]
            for instance, outcome in zip(wanting, self._samples(wanting, momdps, sample_spec)):
                if isinstance(outcome, BaseException):
                    self._fail([c for c in by_instance[instance.key][1] if c.sample == sample_spec], outcome, "sampling")
                else:
                    drawn[instance.key, sample_spec] = outcome
        for cell in cells:
            if cell.instance.key not in momdps:
                continue
            path, sample = (None, None) if cell.sample is None else drawn.get((cell.instance.key, cell.sample), (None, None))
            if cell.sample is not None and path is None:
                continue  # its sample failed, already recorded
            momdp = momdps[cell.instance.key]
            self._submit(Task.of(cell, path, momdp), attempt=1, momdp=momdp, sample=sample)
        self.executor.release()

    def _samples(self, instances: list[InstanceSpec], momdps: dict[str, MOMDP],
                 spec: SampleSpec) -> list[tuple[str, ReturnSample] | BaseException]:
        """Each instance's sample file and sample (an existing, matching file is reused), or the
        error that drawing it raised."""
        out: list[tuple[str, ReturnSample] | BaseException | None] = [None] * len(instances)
        missing = []
        for k, instance in enumerate(instances):
            path = self.store.sample_path(spec.key(instance))
            earlier = None if path is None else _matching_sample(path, momdps[instance.key])
            if earlier is not None:
                out[k] = (str(path.absolute()), earlier)
            else:
                missing.append(k)
        if missing:
            seeds = [spec.seed_for(instances[k]) for k in missing]
            drawn = self.executor.sample_group([momdps[instances[k].key] for k in missing], spec, seeds)
            for k, (sample, seconds) in zip(missing, drawn):
                if isinstance(sample, BaseException):
                    out[k] = sample
                    continue
                instance = instances[k]
                key = spec.key(instance)
                path = self.store.samples_folder / f"{key[:32]}.npz"
                sample.save(path)
                self.store.put_sample(key, instance.key, spec.identity(instance), path, seconds, sample.info)
                out[k] = (str(path.absolute()), sample)
        return out  # type: ignore[return-value]

    def _submit(self, task: Task, attempt: int, momdp: MOMDP | None = None, sample: ReturnSample | None = None) -> None:
        try:
            future = self.executor.submit(task, momdp, sample)
        except BrokenProcessPool as exc:  # the pool broke before this submission
            future = Future()
            future.set_exception(exc)
        self.in_flight[future] = (task, attempt)

    def _collect(self, block: bool) -> None:
        """Commit the finished cells (waiting for at least one when ``block``)."""
        if not self.in_flight:
            return
        finished, _ = wait(list(self.in_flight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        broken = []
        for future in finished:
            task, attempt = self.in_flight.pop(future)
            try:
                record = future.result()
            except BrokenProcessPool as exc:
                broken.append((task, attempt, exc))
                continue
            except Exception as exc:  # an executor-level failure (e.g. a Ray task out of retries)
                record = failed_record(task, exc, 0.0)
            self._commit(record)
            self.completed += 1
        if broken:
            self._recover(broken)

    def _recover(self, broken: list[tuple[Task, int, BaseException]]) -> None:
        """A worker died: restart the pool, resubmit every cell in flight, and record the cells
        that have now killed a worker :data:`MAX_ATTEMPTS` times as failed."""
        self.restarts += 1
        if self.completed == 0 and self.restarts >= MAX_ATTEMPTS:
            raise WorkerError(f"workers: the worker processes died before finishing any cell ({broken[0][2]}); a script that "
                              "calls jaxagg.sweep with workers must guard it with `if __name__ == \"__main__\":` (workers are "
                              "spawned and import the main module); or pass workers=0 to run in this process")
        others = list(self.in_flight.values())
        self.in_flight.clear()
        self.executor.restart()
        for task, attempt, exc in broken:
            if attempt >= MAX_ATTEMPTS:
                self._commit(failed_record(task, RuntimeError(f"the worker process died {attempt} times running this cell "
                                                              f"(out of memory or a native crash?): {exc}"), 0.0))
            else:
                self._submit(task, attempt + 1)
        for task, attempt in others:
            self._submit(task, attempt)

    def _commit(self, record: dict[str, Any]) -> None:
        bounds = record.pop("bounds", None)
        record.pop("fingerprint", None)
        if bounds is not None and record["instance_key"] not in self.bounded:
            self.store.put_bounds(record["instance_key"], *bounds)
            self.bounded.add(record["instance_key"])
        self.store.put_run(record)
        if record["status"] == "failed":
            self.bar.write(f"failed: {record['rule']} on {self.store.label(record['instance_key'])}: {record['error']}")
        self.bar.update(record["status"] == "failed")

    def _fail(self, cells: Iterable[Cell], exc: BaseException, stage: str) -> None:
        for cell in cells:
            self._commit(failed_record(Task.of(cell, None), exc, 0.0, stage=stage))


def _matching_sample(path: Path, momdp: MOMDP) -> ReturnSample | None:
    """The sample in ``path`` if it is a readable sample of ``momdp``, else None (a damaged or
    foreign file is drawn again)."""
    try:
        return load_sample(path).check_instance(momdp)
    except (JaxaggError, OSError):
        return None


def _instance_groups(cells: list[Cell], size: int) -> Iterable[list[Cell]]:
    """The cells in groups of at most ``size`` instances of one shape, fewer where their estimated
    memory (:func:`instance_bytes`) passes :data:`GROUP_BYTES` or their sampling work
    (:func:`sampling_work`) :data:`GROUP_WORK` (cells keep their order within a shape; shapes in
    order of first appearance)."""
    shapes: dict[str, list[Cell]] = {}
    for cell in cells:
        shapes.setdefault(cell.instance.shape, []).append(cell)
    for shape_cells in shapes.values():
        largest = max((instance_bytes(c.instance, c.sample) or 0 for c in shape_cells), default=0)
        work = max((sampling_work(c.instance, c.sample) for c in shape_cells), default=0)
        size = max(1, min(size, GROUP_BYTES // max(largest, 1), GROUP_WORK // max(work, 1)))
        batch: list[Cell] = []
        seen: set[str] = set()
        for key, instance_cells in groupby(shape_cells, key=lambda c: c.instance.key):
            if key not in seen and len(seen) == size:
                yield batch
                batch, seen = [], set()
            seen.add(key)
            batch.extend(instance_cells)
        if batch:
            yield batch


class _bar:
    """A tqdm progress bar over cells (or nothing), with a failed-cell count."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None
        self.failed = 0

    def start(self, total: int, message: str) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            print(message, file=sys.stderr, flush=True)
            self._bar = tqdm(total=total, unit="cell", file=sys.stderr, dynamic_ncols=True)

    def update(self, failed: bool) -> None:
        self.failed += failed
        if self._bar is not None:
            self._bar.update(1)
            if failed:
                self._bar.set_postfix(failed=self.failed)

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        elif self.enabled:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["Plan", "describe", "plan", "plan_fresh", "sweep"]
