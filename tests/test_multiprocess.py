"""Sampling over several processes: split_ranges, merge_samples, this process's devices, and the
jax/jaxlib version a sample records (extend and merge refuse a change unless asked)."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError, VersionWarning
from jaxagg.kernels.returns import sample_devices

N = 301  # two unequal parts: 151 + 150
CPU_ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}

PART = textwrap.dedent("""
    import json, sys
    import jaxagg as ja
    instances = {"attention": ja.envs.attention_allocation(3, 3, seed=0), "garnet": ja.envs.garnet(6, 3, 2, 3, seed=1)}
    for job in json.loads(sys.argv[1]):
        part = ja.sample(instances[job["instance"]], job["count"], job["measure"], job["seed"], start=job["start"])
        part.save(job["out"])
""")
"""One process: draws its range of each job (instance, measure, seed) and saves it."""

JOBS = {"attention": ("policy", 5), "garnet": ("hull", 9)}
"""What each process draws: instance -> (measure, seed); the instances as PART builds them."""


@pytest.fixture(scope="module")
def instances():
    return {"attention": ja.envs.attention_allocation(3, 3, seed=0), "garnet": ja.envs.garnet(6, 3, 2, 3, seed=1)}


@pytest.fixture(scope="module")
def cpu():
    return jax.devices("cpu")[:1]  # the children run on a CPU; so does the one-process reference


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Two processes, each its split_ranges range of every job, run at the same time."""
    folder = tmp_path_factory.mktemp("parts")
    ranges = ja.split_ranges(N, 2)
    assert ranges == [(0, 151), (151, 150)]
    children = []
    for k, (start, count) in enumerate(ranges):
        jobs = [{"instance": name, "measure": measure, "seed": seed, "start": start, "count": count,
                 "out": str(folder / f"{name}-{k}.npz")} for name, (measure, seed) in JOBS.items()]
        children.append(subprocess.Popen([sys.executable, "-c", PART, json.dumps(jobs)], env=CPU_ENV,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
    return {name: [ja.load_sample(folder / f"{name}-{k}.npz") for k in range(2)] for name in JOBS}


# ------------------------------------------------------------ two processes, one sample
@pytest.mark.parametrize("name", list(JOBS))
def test_a_two_process_sample_equals_a_one_process_sample_bit_for_bit(name, parts, instances, cpu):
    measure, seed = JOBS[name]
    whole = ja.sample(instances[name], N, measure, seed, devices=cpu)
    for given in (parts[name], parts[name][::-1]):  # in order and out of order
        merged = ja.merge_samples(given)
        np.testing.assert_array_equal(merged.returns, whole.returns)
        np.testing.assert_array_equal(merged.max_returns, whole.max_returns)
        np.testing.assert_array_equal(merged.min_returns, whole.min_returns)
        assert (merged.seed, merged.measure, merged.fingerprint) == (seed, measure, instances[name].fingerprint)
        assert [(p["info"]["start"], p["num_samples"]) for p in merged.info["parts"]] == [(0, 151), (151, 150)]
    if measure == "hull":  # the merge is an ordinary sample: it continues like one run (hull: no compilation to wait for)
        more = ja.extend(instances[name], merged, 20, devices=cpu)
        np.testing.assert_array_equal(more.returns, ja.sample(instances[name], N + 20, measure, seed, devices=cpu).returns)


DISTRIBUTED = textwrap.dedent("""
    import json, sys, jax
    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=rank,
                               initialization_timeout=120)
    import jaxagg as ja
    from jaxagg.errors import ValidationError
    m = ja.envs.attention_allocation(3, 3, seed=0)
    start, count = ja.split_ranges(301, jax.process_count())[jax.process_index()]
    ja.sample(m, count, seed=5, start=start).save(out)  # on this process's device: the default
    foreign = [device for device in jax.devices() if device.process_index != jax.process_index()]
    try:
        ja.sample(m, 10, devices=foreign)
        refused = None
    except ValidationError as exc:
        refused = str(exc)
    print(json.dumps({"process": jax.process_index(), "devices": len(jax.devices()), "refused": refused}))
    jax.distributed.shutdown()
""")


@pytest.mark.slow  # two jax.distributed processes
def test_jax_distributed_processes_sample_on_their_own_devices_and_merge_bit_for_bit(tmp_path, instances, cpu):
    """Two jax.distributed processes (jax.devices() lists both processes' devices): each samples
    its range on its local device, refuses the other's, and the merge is one run's sample."""
    with socket.socket() as free:
        free.bind(("localhost", 0))
        port = free.getsockname()[1]
    paths = [tmp_path / f"part-{k}.npz" for k in range(2)]
    children = [subprocess.Popen([sys.executable, "-c", DISTRIBUTED, str(k), str(port), str(paths[k])], env=CPU_ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["process"] for r in reports] == [0, 1] and all(r["devices"] >= 2 for r in reports)
    assert all("devices: expected devices of this process" in r["refused"] for r in reports)
    merged = ja.merge_samples([ja.load_sample(path) for path in paths])
    np.testing.assert_array_equal(merged.returns, ja.sample(instances["attention"], N, seed=5, devices=cpu).returns)


# ------------------------------------------------------------------------ split_ranges
@pytest.mark.parametrize("num_samples, parts, start", [(1, 1, 0), (10, 3, 0), (301, 2, 7), (1000, 7, 123), (5, 5, 2**32 - 5)])
def test_split_ranges_cover_the_range_contiguously_and_evenly(num_samples, parts, start):
    ranges = ja.split_ranges(num_samples, parts, start=start)
    assert len(ranges) == parts
    assert ranges[0][0] == start and sum(count for _, count in ranges) == num_samples
    assert all(a + n == b for (a, n), (b, _) in zip(ranges, ranges[1:]))
    counts = [count for _, count in ranges]
    assert min(counts) >= 1 and max(counts) - min(counts) <= 1
    assert all(isinstance(x, int) for pair in ranges for x in pair)


@pytest.mark.parametrize("args, kwargs, message", [
    ((10, 0), {}, "parts: expected an integer >= 1, got 0"),
    ((10, 11), {}, "parts: expected at most num_samples (10) parts"),
    ((0, 1), {}, "num_samples: expected an integer >= 1, got 0"),
    ((10.0, 2), {}, "num_samples: expected an integer >= 1, got 10.0"),
    ((10, True), {}, "parts: expected an integer >= 1, got True"),
    ((10, 2), {"start": -1}, "start: expected an integer >= 0, got -1"),
    ((10, 2), {"start": 2**32 - 5}, "num_samples: start + num_samples must be at most 2**32"),
])
def test_split_ranges_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValidationError) as error:
        ja.split_ranges(*args, **kwargs)
    assert message in str(error.value)


# ------------------------------------------------------------------------ merge refusals
@pytest.fixture(scope="module")
def small(attention_2_3):
    """attention (2, 3) parts of seed 3: draws 0..59 and 60..99."""
    return attention_2_3, ja.sample(attention_2_3, 60, seed=3), ja.sample(attention_2_3, 40, seed=3, start=60)


def with_info(sample, **changes):
    """A copy of ``sample`` with ``info`` keys changed (None: removed)."""
    info = {key: value for key, value in {**sample.info, **changes}.items() if value is not None}
    return dataclasses.replace(sample, info=info)


def refused(samples, message, **kwargs):
    with pytest.raises(ValidationError) as error:
        ja.merge_samples(samples, **kwargs)
    assert message in str(error.value)
    return str(error.value)


@pytest.mark.slow  # a few seconds of compilation
def test_merge_refuses_parts_of_different_runs(small):
    m, a, b = small
    refused([a, ja.sample(m, 40, seed=4, start=60)], "samples[1]: expected the seed of samples[0], 3, got 4")
    refused([a, ja.sample(m, 40, seed=3, start=60, block=64)], "samples[1]: expected the evaluation of samples[0]")
    refused([a, ja.sample(m, 40, seed=3, start=60, method="krylov")], "'method': 'krylov'")
    refused([a, ja.sample(m, 40, seed=3, start=60, precision="float64")], "expected the precision of samples[0], 'float32'")
    refused([a, ja.sample(m, 40, "hull", seed=3, start=60)], "expected the measure of samples[0], 'policy', got 'hull'")
    other = ja.sample(ja.envs.attention_allocation(2, 3, seed=1), 40, seed=3, start=60)
    refused([a, other], f"samples[1]: was drawn for a different instance than samples[0] (fingerprint {other.fingerprint[:12]}…")


def test_merge_refuses_gaps_and_overlaps(small):
    m, a, b = small
    refused([a, ja.sample(m, 40, seed=3, start=61)], "samples: draws 60..60 of seed 3 are missing between the parts of samples[0] "
                                                     "and samples[1]")
    refused([ja.sample(m, 40, seed=3, start=59), a], "samples: draws 59..59 of seed 3 are held twice, by samples[1] and samples[0]")
    refused([a, b, b], "draws 60..99 of seed 3 are held twice")
    refused([a, a], "draws 0..59 of seed 3 are held twice")


def test_merge_refuses_uniform_samples_and_non_samples(small):
    _, a, _ = small
    chain = ja.ReturnSample(returns=np.zeros((4, 2)), measure="uniform", seed=0)
    refused([chain], "samples[0]: 'uniform' samples come from Markov chains, not from indexed draws, and cannot be split")
    refused([], "samples: expected a non-empty list of jaxagg.ReturnSample, got list (empty)")
    refused([a, a.returns], "samples[1]: expected a jaxagg.ReturnSample, got ndarray")
    refused([a], "allow_version_mix: expected True or False, got 'yes'", allow_version_mix="yes")
    assert ja.merge_samples([a]) is a


def test_merge_refuses_a_version_mix_unless_asked(small):
    m, a, b = small
    old = with_info(b, jax="0.0.1")
    message = refused([a, old], "allow_version_mix=True")
    assert f"were drawn with jax {jax.__version__} (samples[0]) and 0.0.1 (samples[1]);" in message
    whole = ja.sample(m, 100, seed=3)
    with pytest.warns(VersionWarning, match=rf"jax 0\.0\.1 \(samples\[0\]\) and {jax.__version__} \(samples\[1\]\)"):
        mixed = ja.merge_samples([old, a], allow_version_mix=True)
    np.testing.assert_array_equal(mixed.returns, whole.returns)
    # parts that recorded no version (older files) merge with any
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unrecorded = ja.merge_samples([a, with_info(b, jax=None, jaxlib=None, jaxagg=None)])
    np.testing.assert_array_equal(unrecorded.returns, whole.returns)


# ----------------------------------------------------------------------- extend and versions
def test_a_sample_records_its_jax_jaxlib_and_jaxagg_versions(small):
    import jaxlib

    _, a, _ = small
    assert (a.info["jax"], a.info["jaxlib"], a.info["jaxagg"]) == (jax.__version__, jaxlib.__version__, ja.__version__)


@pytest.mark.parametrize("key", ["jax", "jaxlib", "jaxagg"])
def test_extend_refuses_another_recorded_version_unless_asked(small, key):
    m, a, b = small
    old = with_info(a, **{key: "0.0.1"})
    with pytest.raises(ValidationError) as error:
        ja.extend(m, old, 40)
    message = str(error.value)
    assert f"{key} 0.0.1" in message and "allow_version_change=True" in message and "--allow-version-change" in message
    assert f"this process runs {key} {a.info[key]}" in message
    with pytest.warns(VersionWarning, match=f"{key} 0.0.1, this process runs {key} "):
        continued = ja.extend(m, old, 40, allow_version_change=True)
    np.testing.assert_array_equal(continued.returns, a.extend(b).returns)
    # a part of another version anywhere in the sample counts
    with pytest.raises(ValidationError, match="0.0.1"):
        ja.extend(m, continued, 10)
    with pytest.raises(ValidationError, match="allow_version_change: expected True or False, got 1"):
        ja.extend(m, a, 10, allow_version_change=1)


def test_extend_continues_a_sample_that_recorded_no_version(small):
    m, a, b = small
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        continued = ja.extend(m, with_info(a, jax=None, jaxlib=None, jaxagg=None), 40)
        np.testing.assert_array_equal(continued.returns, a.extend(b).returns)
        only_jax = ja.extend(m, with_info(a, jaxlib=None), 40)  # recorded before jaxlib was
        np.testing.assert_array_equal(only_jax.returns, continued.returns)


# --------------------------------------------------------------------------- devices
def test_sample_devices_default_to_this_process_s_devices():
    local = jax.local_devices()
    assert sample_devices() == (local if jax.default_backend() != "cpu" else local[:1])
    assert all(device.process_index == jax.process_index() for device in sample_devices())


def test_a_device_of_another_process_is_refused(small, monkeypatch):
    m, _, _ = small
    devices = jax.local_devices()[:1]
    monkeypatch.setattr(jax, "process_index", lambda *args: 1)  # as process 1 sees process 0's devices
    with pytest.raises(ValidationError) as error:
        ja.sample(m, 10, devices=devices)
    assert "devices: expected devices of this process (process_index 1" in str(error.value)
    assert f"of process {devices[0].process_index}" in str(error.value)
    with pytest.raises(ValueError, match="expected devices of this process"):
        sample_devices(devices)
    assert sample_devices() == jax.local_devices()[:1] or jax.default_backend() != "cpu"  # the default is always local
