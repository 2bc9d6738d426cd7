"""Sweeps end to end: the store's rows equal what the library computes cell by cell; resume
after a kill loses and recomputes nothing; failures are recorded and the sweep goes on; the
local process pool gives the same rows as the driver alone; a dying worker is survived."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import threadpoolctl

import jaxagg as ja
from jaxagg.errors import ValidationError, WorkerError
from jaxagg.sweeps import Store, SweepResults, load_spec
from jaxagg.sweeps.executors import LocalExecutor
from jaxagg.sweeps.run import Driver, plan
from jaxagg.sweeps.sampling import sample_group
from jaxagg.sweeps.work import run_cell

from .killer import Killer

SPEC = {
    "name": "tiny",
    "instances": [{"env": "garnet", "states": 6, "actions": 2, "agents": [2, 3], "seed": {"start": 0, "count": 2}}],
    "sample": {"num_samples": 300, "seed": "instance", "precision": "float64"},
    "rules": ["egalitarian", "max-quantile", {"name": "approval", "options": {"q": 0.8}}],
}


def rows(results):
    """Per cell key: status, rule, raw returns, ranks, q-level (what must not depend on how the sweep ran)."""
    return {r["key"]: (r["status"], r["rule"], r["raw"], r["rank"], r["quantile_level"]) for r in results.records}


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "tiny.db"
    return ja.sweep(SPEC, path, workers=0, progress=False)


def test_rows_equal_the_library_cell_by_cell(tiny_store):
    results = tiny_store
    assert results.counts == {"done": 12, "failed": 0, "pending": 0}
    for record in results.records:
        momdp = ja.envs.garnet(6, 2, 2, record["param.agents"], seed=record["param.seed"])
        sample = ja.sample(momdp, 300, seed=record["param.seed"], precision="float64")
        rule = ja.rules.get(record["rule"])
        outcome = rule(momdp, sample if rule.needs_sample else None, **record["options"])
        np.testing.assert_array_equal(record["raw"], outcome.returns)
        np.testing.assert_array_equal(record["normalized"], outcome.normalized)
        np.testing.assert_array_equal(record["rank"], sample.rank(outcome.returns))
        assert record["min_normalized"] == outcome.normalized.min()
        assert record["quantile_level"] == sample.rank(outcome.returns).min()


def test_tables_summaries_and_exports(tiny_store, tmp_path):
    results = tiny_store
    summary = results.summary("q-level", by="agents")
    assert set(summary) == {"egalitarian", "max-quantile", "approval"} and set(summary["egalitarian"]) == {2, 3}
    mean, se, count = summary["max-quantile"][2]
    levels = [r["quantile_level"] for r in results.records if r["rule"] == "max-quantile" and r["param.agents"] == 2]
    assert count == 2 and mean == pytest.approx(np.mean(levels)) and se == pytest.approx(np.std(levels, ddof=1) / np.sqrt(2))
    for rule in ("egalitarian", "approval"):  # max-quantile maximises the q-level on the same sample
        for agents in (2, 3):
            assert summary[rule][agents][0] <= summary["max-quantile"][agents][0] + 1e-12
    assert "agents=2" in results.table("min", by="agents")
    exported = json.loads(results.export(tmp_path / "r.json").read_text())
    assert len(exported) == 12 and exported[0]["raw"] == results.records[0]["raw"]
    text = results.export(tmp_path / "r.csv").read_text().splitlines()
    assert len(text) == 13 and text[0].startswith("key,instance_key")
    assert results.plot("min", "agents", tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ValidationError, match="metric: expected one of"):
        results.summary("happiness")
    with pytest.raises(ValidationError, match="by: no cell has a parameter 'colour'"):
        results.summary("min", by="colour")


def test_to_pandas(tiny_store):
    frame = tiny_store.to_pandas()
    assert len(frame) == 12 and {"rule", "param.agents", "quantile_level", "raw"} <= set(frame.columns)
    by_rule = frame.groupby("rule")["min_normalized"].mean()
    assert by_rule["max-quantile"] == pytest.approx(np.mean([r["min_normalized"] for r in tiny_store.records
                                                              if r["rule"] == "max-quantile"]))


def test_resume_runs_only_the_missing_cells_and_reuses_samples(tmp_path):
    path = tmp_path / "r.db"
    first = {**SPEC, "rules": ["egalitarian"]}
    ja.sweep(first, path, workers=0, progress=False)
    with sqlite3.connect(path) as db:
        before = dict(db.execute("SELECT key, finished_at FROM runs"))
        samples = dict(db.execute("SELECT key, path FROM samples"))
    mtimes = {key: os.stat(tmp_path / p).st_mtime_ns for key, p in samples.items()}
    results = ja.sweep(SPEC, path, workers=0, progress=False)  # more rules on the same samples
    assert results.counts == {"done": 12, "failed": 0, "pending": 0}
    with sqlite3.connect(path) as db:
        after = dict(db.execute("SELECT key, finished_at FROM runs"))
        assert dict(db.execute("SELECT key, path FROM samples")) == samples
    assert all(after[key] == value for key, value in before.items())  # not recomputed
    assert {key: os.stat(tmp_path / p).st_mtime_ns for key, p in samples.items()} == mtimes  # not redrawn


def test_failed_cells_are_recorded_and_the_sweep_goes_on(tmp_path):
    spec = {"name": "f", "rules": ["egalitarian"],
            "instances": [{"env": "garnet", "states": [4, 6], "actions": 2, "branching": 5, "seed": 0}]}
    results = ja.sweep(spec, tmp_path / "f.db", workers=0, progress=False)
    assert results.counts == {"done": 1, "failed": 1, "pending": 0}
    (failure,) = results.failures()
    assert failure["param.states"] == 4
    assert failure["error"].startswith("building the instance: ValidationError: branching: expected at most states=4")
    again = ja.sweep(spec, tmp_path / "f.db", workers=0, progress=False)
    assert rows(again) == rows(results)  # not retried without retry_failed
    retried = ja.sweep(spec, tmp_path / "f.db", workers=0, progress=False, retry_failed=True)
    assert retried.failures()[0]["finished_at"] > failure["finished_at"]


def test_local_process_pool_gives_the_same_rows_when_a_worker_is_killed(tiny_store, tmp_path):
    # Killed as soon as it is seen: a spawned worker spends its first second or two importing, so
    # the kill always lands while its cells are pending (the pool breaks, is replaced, and the cells
    # run again). A kill 2 s after the spawn raced the end of this tiny sweep and sometimes missed it.
    killer = Killer("spawn_main", children_only=True)
    killer.start()
    try:
        pooled = ja.sweep(SPEC, tmp_path / "pool.db", workers=2, progress=False)
    finally:
        killer.stop()
    assert killer.killed is not None, "no pool worker was seen"
    assert rows(pooled) == rows(tiny_store)


class DyingExecutor:
    """Runs cells in this process, but the first attempt at each cell in ``dies`` breaks the pool."""

    workers = 1
    sample_group = staticmethod(sample_group)

    def __init__(self, dies, always=False):
        self.dies, self.always, self.seen, self.restarts = set(dies), always, set(), 0

    def submit(self, task, momdp=None, sample=None):
        future = Future()
        if task.rule in self.dies and (self.always or task.key not in self.seen):
            self.seen.add(task.key)
            future.set_exception(BrokenProcessPool("a worker died"))
        else:
            future.set_result(run_cell(task))
        return future

    def restart(self):
        self.restarts += 1

    def release(self):
        pass

    def close(self):
        pass


def test_a_dying_worker_is_survived_and_a_cell_that_always_kills_is_recorded(tiny_store, tmp_path):
    spec = load_spec(SPEC)
    with Store.open(tmp_path / "d.db") as store:
        executor = DyingExecutor({"max-quantile"})
        Driver(store, executor, progress=False, group=64).run(plan(spec, store))
        assert executor.restarts >= 1
        assert rows(SweepResults.read(store)) == rows(tiny_store)
    with Store.open(tmp_path / "e.db") as store:
        Driver(store, DyingExecutor({"approval"}, always=True), progress=False, group=64).run(plan(spec, store))
        failed = SweepResults.read(store).failures()
        assert {r["rule"] for r in failed} == {"approval"} and len(failed) == 4
        assert "the worker process died 2 times" in failed[0]["error"]
    with Store.open(tmp_path / "g.db") as store, pytest.raises(WorkerError, match="if __name__ == "):
        rules = {r.name for r in spec.rules}
        Driver(store, DyingExecutor(rules, always=True), progress=False, group=64).run(plan(spec, store))


def test_killed_sweep_resumes_without_losing_or_recomputing_cells(tiny_store, tmp_path):
    spec_file = tmp_path / "k.toml"
    spec_file.write_text(
        'name = "k"\nrules = ["egalitarian", "max-quantile", {name = "approval", options = {q = 0.8}}]\n'
        '[[instances]]\nenv = "garnet"\nstates = 6\nactions = 2\nagents = [2, 3]\nseed = {start = 0, count = 2}\n'
        '[sample]\nnum_samples = 300\nseed = "instance"\nprecision = "float64"\n')
    store = tmp_path / "k.db"
    command = [sys.executable, "-m", "jaxagg.cli", "sweep", str(spec_file), "--store", str(store), "--workers", "0", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=1) as db:
                    committed = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
            if committed >= 3:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the sweep ended before it could be killed mid-way"
    with sqlite3.connect(store) as db:
        before = dict(db.execute("SELECT key, finished_at FROM runs"))
    assert 3 <= len(before) < 12
    assert ja.sweep(spec_file, store, workers=0, progress=False).counts["pending"] == 0
    with sqlite3.connect(store) as db:
        after = dict(db.execute("SELECT key, finished_at FROM runs"))
    assert all(after[key] == value for key, value in before.items())
    assert rows(SweepResults.read(store)) == rows(tiny_store)


def test_store_refuses_other_files(tmp_path):
    not_a_store = tmp_path / "x.db"
    with sqlite3.connect(not_a_store) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(ValidationError, match="not a jaxagg sweep store"):
        Store.open(not_a_store)
    garbage = tmp_path / "y.db"
    garbage.write_bytes(b"hello, not sqlite" * 100)
    with pytest.raises(ValidationError, match="not a readable SQLite database"):
        Store.open(garbage)
    with pytest.raises(ValidationError, match="expected a file name ending in .db"):
        Store.open(tmp_path / "z.csv")
    with pytest.raises(ValidationError, match="no such file"):
        SweepResults.read(tmp_path / "missing.db")


def test_workers_adopt_the_drivers_bounds_only_for_the_same_instance():
    from jaxagg.polytope import adopt_bounds, cached_bounds

    driver_copy = ja.envs.garnet(6, 2, 2, 2, seed=0)
    bounds = ja.return_bounds(driver_copy)
    other = ja.envs.garnet(6, 2, 2, 2, seed=1)
    assert not adopt_bounds(other, bounds, driver_copy.fingerprint)  # another instance
    assert cached_bounds(other) is None
    worker_copy = ja.envs.garnet(6, 2, 2, 2, seed=0)
    assert adopt_bounds(worker_copy, bounds, driver_copy.fingerprint)
    assert ja.return_bounds(worker_copy) is bounds
    assert not adopt_bounds(worker_copy, bounds, driver_copy.fingerprint)  # already has them


def test_a_group_sampled_together_fails_only_the_instance_that_fails(tmp_path):
    # garnet(6, 2, 1, 2, seed=28) has full-support policies with two recurrent classes: the
    # policy measure refuses it; its group-mates (seeds 26, 27, 29) are sampled as usual
    spec = {"name": "g", "rules": ["max-quantile"], "sample": {"num_samples": 100, "seed": "instance"},
            "instances": [{"env": "garnet", "states": 6, "actions": 2, "branching": 1, "agents": 2,
                           "seed": {"start": 26, "count": 4}}]}
    results = ja.sweep(spec, tmp_path / "g.db", workers=0, progress=False)
    assert results.counts == {"done": 3, "failed": 1, "pending": 0}
    (failure,) = results.failures()
    assert failure["param.seed"] == 28 and failure["error"].startswith("sampling: ")
    for record in results.done():
        momdp = ja.envs.garnet(6, 2, 1, 2, seed=record["param.seed"])
        sample = ja.sample(momdp, 100, seed=record["param.seed"])
        assert record["rank"] == sample.rank(np.asarray(record["raw"])).tolist()


def test_pool_workers_exit_when_their_driver_is_killed(tmp_path):
    """A driver killed with SIGKILL cannot shut its pool down: its workers must notice and exit
    (else they finish cells nobody commits and then idle forever). The LocalExecutor starts them
    with start_worker (exit_with_parent); here a driver starts one such worker and is killed."""
    script = tmp_path / "driver.py"
    script.write_text(
        "import multiprocessing, os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from jaxagg.sweeps.work import start_worker\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'), initializer=start_worker,\n"
        "                               initargs=(os.getpid(),))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(driver.stdout.readline())
    assert alive(worker)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 30
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker), "the pool worker outlived its killed driver"


def test_local_pool_workers_run_native_math_on_one_thread():
    """A local pool runs one worker per core: each worker's BLAS must not start a thread per core
    as well (oversubscribed OpenBLAS threads spin; two workers ran the rules 1.4x slower). On a
    machine with one core every library has one thread anyway, and this cannot tell."""
    executor = LocalExecutor(1)
    try:
        libraries = executor._pool.submit(threadpoolctl.threadpool_info).result()
    finally:
        executor.close()
    assert any(library["user_api"] == "blas" for library in libraries), libraries
    assert all(library["num_threads"] == 1 for library in libraries), libraries


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
