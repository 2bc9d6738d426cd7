"""ja.sample: reproducibility (chunk size, resuming, device count), the measures, and errors."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError


@pytest.fixture(scope="module")
def attention():
    return ja.envs.attention_allocation(3, 3, seed=1)


@pytest.fixture(scope="module")
def reference(attention):
    return ja.sample(attention, 300, seed=7, chunk_size=64)


def test_sample_shape_bounds_and_info(attention, reference):
    assert reference.returns.shape == (300, 3) and reference.measure == "policy" and reference.seed == 7
    bounds = ja.return_bounds(attention)
    np.testing.assert_array_equal(reference.max_returns, bounds.upper)
    np.testing.assert_array_equal(reference.quantile(1.0), bounds.upper)  # tau_i(1) = max_O J_i exactly
    assert (reference.returns <= bounds.upper + 1e-4).all() and (reference.returns >= bounds.lower - 1e-4).all()
    assert reference.info["precision"] == "float32" and reference.info["start"] == 0
    json.dumps(reference.info)


@pytest.mark.parametrize("chunk_size", [pytest.param(1, marks=pytest.mark.slow), 32, pytest.param(100, marks=pytest.mark.slow),
                                        pytest.param(4096, marks=pytest.mark.slow)])
def test_identical_whatever_the_chunk_size(attention, reference, chunk_size):
    again = ja.sample(attention, 300, seed=7, chunk_size=chunk_size)
    np.testing.assert_array_equal(again.returns, reference.returns)


def test_extend_continues_the_same_stream(attention, reference):
    first = ja.sample(attention, 110, seed=7, chunk_size=64)
    resumed = ja.extend(attention, ja.extend(attention, first, 90, chunk_size=33), 100)
    np.testing.assert_array_equal(resumed.returns, reference.returns)
    assert resumed.seed == 7 and len(resumed.info["parts"]) == 3


def test_other_seeds_differ(attention, reference):
    assert not np.array_equal(ja.sample(attention, 300, seed=8).returns, reference.returns)


def test_occupancies_are_recomputed_exactly_and_lie_in_O(attention, reference):
    indices = [0, 150, 299]
    d = ja.sample_occupancies(attention, indices, seed=7)
    polytope = ja.occupancy_polytope(attention)
    assert all(polytope.residual(x) <= 1e-5 for x in d)
    np.testing.assert_allclose(attention.returns(d), reference.returns[indices], rtol=1e-5, atol=1e-4)
    d64 = ja.sample_occupancies(attention, indices, seed=7, precision="float64")
    assert all(polytope.residual(x) <= 1e-10 for x in d64)


@pytest.mark.slow
def test_float64_agrees_with_float32(attention, reference):
    precise = ja.sample(attention, 300, seed=7, precision="float64")
    np.testing.assert_allclose(precise.returns, reference.returns, rtol=1e-4, atol=1e-3)
    assert precise.info["precision"] == "float64"


@pytest.mark.slow
def test_discounted_policy_measure():
    m = ja.envs.garnet(10, 3, 2, agents=2, seed=0, criterion="discounted", gamma=0.9)
    s = ja.sample(m, 200, seed=0)
    d = ja.sample_occupancies(m, np.arange(5))
    assert all(ja.occupancy_polytope(m).residual(x) <= 1e-5 for x in d)
    np.testing.assert_allclose(m.returns(d), s.returns[:5], rtol=1e-5, atol=1e-5)


def test_hull_measure_is_a_dirichlet_mixture_of_optimal_occupancies(attention):
    s = ja.sample(attention, 4000, measure="hull", seed=0)
    bounds = ja.return_bounds(attention)
    vertex_returns = attention.returns(bounds.argmax)  # [n, n]
    # E[lambda] = 1/n, so the mean return is the mean of the vertices' returns
    np.testing.assert_allclose(s.returns.mean(axis=0), vertex_returns.mean(axis=0), rtol=0.02)
    assert (s.returns <= bounds.upper + 1e-4).all()
    d = ja.sample_occupancies(attention, [3], measure="hull", seed=0)
    assert ja.occupancy_polytope(attention).residual(d[0]) <= 1e-5


def test_progress_callback_counts_every_sample(attention):
    seen = []
    ja.sample(attention, 100, seed=0, chunk_size=32, block=32, progress=seen.append)  # a chunk is whole blocks
    assert sum(seen) == 100 and len(seen) == 4


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"measure": "lebesgue"}, r"measure: expected one of 'policy', 'hull', 'uniform', got 'lebesgue'"),
        ({"num_samples": 0}, "num_samples: expected an integer >= 1, got 0"),
        ({"seed": -1}, r"seed: expected an integer in \[0, 2\*\*32\), got -1"),
        ({"chunk_size": 0}, "chunk_size: expected an integer >= 1"),
        ({"precision": "float16"}, "precision: expected one of 'auto', 'float32', 'float64'"),
    ],
)
def test_bad_arguments(attention, kwargs, pattern):
    args = {"num_samples": 10}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=pattern):
        ja.sample(attention, **args)


def test_multichain_average_reward_instance_samples_reachable_returns_or_is_refused():
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0  # two absorbing states
    P = np.concatenate([P, P], axis=1)
    m = ja.MOMDP(P, np.arange(8.0).reshape(2, 2, 2))
    # two absorbing states: what a policy reaches depends on mu (half the mass stays in each)
    np.testing.assert_allclose(ja.return_bounds(m).upper, [0.5 * 1 + 0.5 * 3, 0.5 * 5 + 0.5 * 7])
    hull = ja.sample(m, 10, measure="hull")
    assert (hull.returns <= ja.return_bounds(m).upper + 1e-9).all()
    for measure, match in (("policy", "several closed classes"), ("uniform", "several maximal end components")):
        with pytest.raises(ValidationError, match=match):
            ja.sample(m, 10, measure=measure)
    discounted = ja.MOMDP(P, np.arange(8.0).reshape(2, 2, 2), criterion="discounted", gamma=0.9)
    assert ja.sample(discounted, 10).num_samples == 10


@pytest.mark.slow
def test_identical_whatever_the_device_count(reference):
    """Four forced host devices, chunks sharded over them, give the same numbers as one."""
    script = textwrap.dedent(
        """
        import json, jax, numpy as np, jaxagg as ja
        m = ja.envs.attention_allocation(3, 3, seed=1)
        four = ja.sample(m, 300, seed=7, chunk_size=64, devices=jax.devices())
        print(json.dumps({"devices": four.info["devices"], "returns": four.returns.tolist()}))
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["devices"] == 4
    np.testing.assert_array_equal(np.array(data["returns"]), reference.returns)
