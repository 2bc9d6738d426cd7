"""The Ray backend on a local Ray cluster (2 CPUs): the same rows as the local executor, also
when a worker process is killed while it runs a cell."""

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs the 'ray' extra (pip install 'jaxagg[ray]')")

import jaxagg as ja  # noqa: E402

from .killer import Killer  # noqa: E402
from .test_sweep import SPEC, rows  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    return rows(ja.sweep(SPEC, tmp_path_factory.mktemp("local") / "local.db", workers=0, progress=False))


def test_ray_gives_the_same_rows_as_the_local_executor(cluster, local_rows, tmp_path):
    results = ja.sweep(SPEC, tmp_path / "ray.db", backend="ray", progress=False)
    assert results.counts == {"done": 12, "failed": 0, "pending": 0}
    assert rows(results) == local_rows


def test_ray_worker_killed_mid_sweep_is_retried(cluster, local_rows, tmp_path):
    killer = Killer("ray::run_cell")
    killer.start()
    try:
        results = ja.sweep(SPEC, tmp_path / "killed.db", backend="ray", progress=False)
    finally:
        killer.stop()
    assert killer.killed is not None, "no Ray worker was seen running a cell"
    assert rows(results) == local_rows
