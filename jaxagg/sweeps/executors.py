"""Where cells run. Every executor takes :class:`~jaxagg.sweeps.work.Task` objects and hands
back ``concurrent.futures.Future`` objects whose result is the cell's record; the driver alone
writes the store.

* :class:`SerialExecutor` (``workers=0``): in the driver process, one cell at a time (for
  debugging, and where processes cannot be started).
* :class:`LocalExecutor` (default): a pool of ``workers`` processes (started with ``spawn``:
  JAX must not be forked). A worker that dies (out of memory, a crash in a native library)
  breaks the pool; the executor starts a new one and the driver resubmits the cells in flight.
* :class:`RayExecutor` (``backend="ray"``, the optional ``ray`` extra): each cell is a Ray task
  (one CPU) on an existing cluster (``address``) or a local one, retried by Ray when its worker
  dies. Instances and samples travel through Ray's object store (put once each), so workers on
  other machines need no shared folder. When the cluster has GPUs, each group's sampling is a
  Ray task that asks for one.

Every executor also has ``sample_group(momdps, spec, seeds)`` (where a group's samples are
drawn: in the driver, or on a cluster GPU).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from jaxagg.errors import ValidationError
from jaxagg.sweeps.sampling import sample_group
from jaxagg.sweeps.work import Task, run_cell, start_worker
from jaxagg.validation import optional_module

BACKENDS = ("local", "ray")


class SerialExecutor:
    """Runs each cell at once, in this process."""

    workers = 0
    sample_group = staticmethod(sample_group)

    def submit(self, task: Task, momdp: Any = None, sample: Any = None) -> Future:
        """Run ``task`` now (on ``momdp`` and ``sample`` when given) and return its finished future."""
        future: Future = Future()
        future.set_result(run_cell(task, momdp, sample))
        return future

    def restart(self) -> None:
        """Nothing to restart."""

    def release(self) -> None:
        """Nothing held."""

    def close(self) -> None:
        """Nothing to release."""


class LocalExecutor:
    """A local pool of ``workers`` spawned processes running :func:`~jaxagg.sweeps.work.run_cell`."""

    sample_group = staticmethod(sample_group)

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """Workers that exit when this process dies, even by SIGKILL, and run their native math
        on one thread each (:func:`~jaxagg.sweeps.work.start_worker`)."""
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=start_worker, initargs=(os.getpid(),))

    def submit(self, task: Task, momdp: Any = None, sample: Any = None) -> Future:
        """Queue ``task``; the worker rebuilds the instance and reads the sample file itself
        (cheaper than pickling them to it), so ``momdp`` and ``sample`` are not sent."""
        return self._pool.submit(run_cell, task)

    def release(self) -> None:
        """Nothing held."""

    def restart(self) -> None:
        """Replace a broken pool (a worker died) with a fresh one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Cells as Ray tasks (one CPU each, retried up to ``max_retries`` times when a worker dies).

    Args:
        address: a running cluster's address (``"auto"``, ``"ray://host:10001"``, ...), or None
            to start a local one (``num_cpus=workers`` when given).
        workers: CPUs of a local cluster (ignored with ``address``).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = 3) -> None:
        ray = import_ray()
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False}
            if address is not None:
                options["address"] = address
            elif workers:
                options["num_cpus"] = workers
            ray.init(**options)
        resources = ray.cluster_resources()
        self.workers = int(resources.get("CPU", 1))
        self.gpus = int(resources.get("GPU", 0))
        self._solve = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(run_cell)
        self._sample = ray.remote(num_gpus=1, num_cpus=1, max_retries=max_retries)(sample_group) if self.gpus else None
        self._refs: dict[int, Any] = {}

    def submit(self, task: Task, momdp: Any = None, sample: Any = None) -> Future:
        """Start ``task`` as a Ray task; ``momdp`` and ``sample`` go to the object store once
        each (by identity) and are handed to every task that needs them."""
        bounds = self._ref(task.bounds)  # once per instance, not copied into every task
        return self._solve.remote(replace(task, bounds=None), self._ref(momdp), self._ref(sample), bounds).future()

    def _ref(self, value: Any) -> Any:
        if value is None:
            return None
        key = id(value)  # the group's objects are alive until release(), so ids are unique
        if key not in self._refs:
            self._refs[key] = (value, self._ray.put(value))
        return self._refs[key][1]

    def sample_group(self, momdps, spec, seeds):
        """The group's samples: a Ray task on a GPU when the cluster has one, else in the driver."""
        if self._sample is None:
            return sample_group(momdps, spec, seeds)
        return self._ray.get(self._sample.remote(momdps, spec, seeds))

    def release(self) -> None:
        """Forget the group's object references (tasks in flight keep their objects alive)."""
        self._refs.clear()

    def restart(self) -> None:
        """Ray restarts dead workers itself."""

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def import_ray():
    """The ``ray`` module, or a :class:`ValidationError` saying how to install it."""
    return optional_module("ray", "backend 'ray'", "pip install 'jaxagg[ray]'")


def make_executor(backend: str = "local", workers: int | None = None, address: str | None = None):
    """The executor for ``backend`` (``"local"`` or ``"ray"``); ``workers`` None means the
    number of CPU cores; ``workers=0`` runs the cells in this process."""
    if backend not in BACKENDS:
        raise ValidationError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValidationError(f"workers: expected an integer >= 0 (0: in this process), got {workers!r}")
    if address is not None and backend != "ray":
        raise ValidationError(f"address: only for backend 'ray', got backend {backend!r}")
    if backend == "ray":
        return RayExecutor(address, workers)
    workers = (os.cpu_count() or 1) if workers is None else workers
    return SerialExecutor() if workers == 0 else LocalExecutor(workers)
