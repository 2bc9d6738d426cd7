"""The work of one cell, as a plain function of plain data, so that any executor can run it (in
the driver, on a local process pool, or as a Ray task): build (or reuse) the instance, load (or
reuse) the sample file, run the rule, and return the store's record. A worker process keeps the
last few instances and samples it used, so the cells of one instance share its polytope and
return bounds."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from jaxagg import metrics
from jaxagg import rules as rule_registry
from jaxagg.errors import JaxaggError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import adopt_bounds, cached_bounds, return_bounds
from jaxagg.samples import ReturnSample, load_sample
from jaxagg.solvers.program import ReturnBounds
from jaxagg.sweeps.spec import Cell, InstanceSpec

CACHED_INSTANCES = 4
"""Instances (and samples) a worker keeps between cells."""
PARENT_CHECK_SECONDS = 1.0
"""How often a pool worker checks that the process that started it is still alive."""


def exit_with_parent(parent_pid: int) -> None:
    """Make this (pool worker) process exit within :data:`PARENT_CHECK_SECONDS` of its parent's
    death. A driver killed with SIGKILL cannot shut its pool down, and the workers would go on
    computing cells nobody will commit, then idle forever holding their instances; when the
    parent dies the worker is re-parented, so ``os.getppid()`` changes. Starts a daemon thread."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="jaxagg-exit-with-parent", daemon=True).start()


def one_thread_per_math_library() -> None:
    """Limit this process's native math libraries (OpenBLAS or MKL under numpy and scipy, OpenMP)
    to one thread each (``threadpoolctl``). A local pool already runs one worker per core; each
    worker's BLAS starting a thread per core as well oversubscribes the cores, and OpenBLAS
    threads spin while they wait: on 2 cores, two processes running the 13 rules on 4 attention
    (5, 3) instances took 55 s each with the default threads and 40 s each with one (one
    process alone: 42 s either way; bench/RESULTS.md). Ray needs no call: it starts its
    one-CPU workers with ``OMP_NUM_THREADS=1``, which OpenBLAS follows."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def start_worker(parent_pid: int) -> None:
    """The initializer of a local pool's worker: exit with the driver (:func:`exit_with_parent`)
    and run native math single-threaded (:func:`one_thread_per_math_library`)."""
    exit_with_parent(parent_pid)
    one_thread_per_math_library()


@dataclass(frozen=True)
class Task:
    """One cell as plain, picklable data (what a worker receives).

    Attributes:
        key: the cell's key; instance_key, sample_key: its instance's and sample's keys.
        env, params: the instance (:class:`~jaxagg.sweeps.spec.InstanceSpec`).
        sample_path: the sample file (absolute), or None.
        rule, options, method, requested: the registry rule that runs, its options, the method
            that asked for it and the spec's rule name.
        bounds, fingerprint: the instance's return bounds as the driver computed them (when it
            did, for sampling) and the fingerprint of the instance they belong to: a worker
            adopts them instead of solving the 2n bound programs again.
    """

    key: str
    instance_key: str
    sample_key: str | None
    env: str
    params: dict[str, Any]
    sample_path: str | None
    rule: str
    options: dict[str, Any]
    method: str
    requested: str
    bounds: ReturnBounds | None = None
    fingerprint: str | None = None

    @classmethod
    def of(cls, cell: Cell, sample_path: str | None, momdp: MOMDP | None = None) -> Task:
        """The task of ``cell`` (with ``momdp``'s bounds, if they are already computed)."""
        bounds = None if momdp is None else cached_bounds(momdp)
        return cls(cell.key, cell.instance.key, cell.sample_key, cell.instance.env, dict(cell.instance.params),
                   sample_path, cell.rule.name, dict(cell.rule.options), cell.rule.method, cell.rule.requested,
                   bounds, None if bounds is None else momdp.fingerprint)


_instances: OrderedDict[str, MOMDP] = OrderedDict()
_samples: OrderedDict[str, ReturnSample] = OrderedDict()


def _remember(cache: OrderedDict, key: str, make) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > CACHED_INSTANCES:
        cache.popitem(last=False)
    return value


def run_cell(task: Task, momdp: MOMDP | None = None, sample: ReturnSample | None = None,
             bounds: ReturnBounds | None = None) -> dict[str, Any]:
    """Run one cell and return its record for :meth:`~jaxagg.sweeps.store.Store.put_run` (plus
    ``bounds``: ``(lower, upper)`` lists). The instance is ``momdp`` when given (a Ray task gets
    it from the object store), else rebuilt from the task's parameters; the sample likewise, else
    read from ``task.sample_path``; the driver's bounds are ``bounds`` or ``task.bounds``.

    A :class:`~jaxagg.errors.JaxaggError` or any other exception of the rule becomes a ``failed``
    record with its type and message; only interruption (KeyboardInterrupt, SystemExit)
    propagates."""
    began = time.perf_counter()
    try:
        if momdp is None:
            momdp = _remember(_instances, task.instance_key, lambda: InstanceSpec(task.env, task.params).build())
        bounds = bounds if bounds is not None else task.bounds
        if bounds is not None:
            adopt_bounds(momdp, bounds, task.fingerprint)
        if sample is None and task.sample_path is not None:
            sample = _remember(_samples, task.sample_path, lambda: load_sample(task.sample_path))
        rule = rule_registry.get(task.rule)
        outcome = rule(momdp, sample if rule.needs_sample else None, **task.options)
        record = outcome_record(task, momdp, outcome, sample)
    except Exception as exc:  # a failed cell is recorded, and the sweep goes on
        record = failed_record(task, exc, time.perf_counter() - began)
    return record


def outcome_record(task: Task, momdp: MOMDP, outcome: Any, sample: ReturnSample | None) -> dict[str, Any]:
    """The store record of a finished rule: welfare summary of the normalised returns, and with a
    sample the volumetric certificates (:func:`jaxagg.metrics.sample_certificates`)."""
    summary = metrics.welfare_summary(outcome.normalized)
    certificates = metrics.sample_certificates(outcome.returns, sample) if sample is not None else {}
    bounds = return_bounds(momdp)
    names = momdp.labels()
    ranks = certificates.get("ranks") or [None] * momdp.num_agents
    return {
        **_identity(task),
        "status": "done",
        "error": None,
        "wall_time": outcome.stats.wall_time,
        "solves": outcome.stats.solves,
        "solve_time": outcome.stats.solve_time,
        "mip_gap": outcome.stats.mip_gap,
        "min_normalized": summary["min"],
        "mean_normalized": summary["mean"],
        "gini": summary["gini"],
        "nash_welfare": summary["nash_welfare"],
        "quantile_level": certificates.get("quantile_level"),
        "borda_score": certificates.get("borda_score"),
        "approvals_90": certificates.get("approvals_0.9"),
        "approvals_80": certificates.get("approvals_0.8"),
        "info": {"rule": outcome.info, "params": outcome.params},
        "agents": [{"agent": i, "name": names[i], "raw_return": float(outcome.returns[i]),
                    "normalized_return": float(outcome.normalized[i]), "quantile_rank": ranks[i]}
                   for i in range(momdp.num_agents)],
        "bounds": (bounds.lower.tolist(), bounds.upper.tolist()),
        "fingerprint": momdp.fingerprint,
    }


def failed_record(task: Task, exc: BaseException, seconds: float, stage: str | None = None) -> dict[str, Any]:
    """The store record of a failed cell: ``[stage: ]Type: message`` (and, for an exception that
    is not jaxagg's own, the last frame of its traceback, to find the bug)."""
    message = f"{'' if stage is None else stage + ': '}{type(exc).__name__}: {exc}"
    if not isinstance(exc, JaxaggError):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            message += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return {**_identity(task), "status": "failed", "error": message, "wall_time": seconds, "agents": []}


def _identity(task: Task) -> dict[str, Any]:
    return {"key": task.key, "instance_key": task.instance_key, "sample_key": task.sample_key, "rule": task.rule,
            "requested": task.requested, "options": task.options, "method": task.method}
