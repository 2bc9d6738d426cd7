"""ja.sample_instances: many same-shape instances in one compiled call per group, bit-identical to
ja.sample per instance and seed (returns, bounds, fingerprint, engine record), whatever the chunk
and group sizes; shape mismatches named; the other measures by a loop of ja.sample."""

import numpy as np
import pytest

import jaxagg as ja
from jaxagg import sampling
from jaxagg.errors import DegenerateAgentWarning, SolverError, ValidationError


def assert_same(batched, single):
    """Interchangeable samples: identical numbers and identical records (bar the wall time)."""
    np.testing.assert_array_equal(batched.returns, single.returns)
    np.testing.assert_array_equal(batched.max_returns, single.max_returns)
    np.testing.assert_array_equal(batched.min_returns, single.min_returns)
    assert (batched.measure, batched.seed, batched.fingerprint) == (single.measure, single.seed, single.fingerprint)
    assert set(batched.info) == set(single.info)
    timing = {"seconds", "samples_per_second", "chunk_size"}
    assert {k: v for k, v in batched.info.items() if k not in timing} == {k: v for k, v in single.info.items() if k not in timing}


@pytest.mark.parametrize("criterion, gamma, method", [("average", None, "auto"), ("discounted", 0.9, "auto"),
                                                      ("average", None, "krylov")])
def test_garnets_equal_per_instance_sampling(criterion, gamma, method):
    momdps = [ja.envs.garnet(12, 3, agents=3, seed=s, criterion=criterion, gamma=gamma) for s in range(4)]
    seeds = [5, 6, 7, 8]
    batched = ja.sample_instances(momdps, 70, seeds=seeds, method=method, chunk_size=64, group_size=3)
    for momdp, seed, sample in zip(momdps, seeds, batched):
        single = ja.sample(momdp, 70, seed=seed, method=method)
        assert_same(sample, single)
        assert sample.info["evaluation"]["method"] == ("lu" if method == "auto" else "krylov")


def test_garnet_past_the_lu_size_runs_krylov_and_is_equal():
    momdps = [ja.envs.garnet(70, 2, agents=2, seed=s, criterion="discounted", gamma=0.9) for s in range(2)]
    batched = ja.sample_instances(momdps, 40, seeds=[0, 1])
    assert batched[0].info["evaluation"]["method"] == "krylov"
    for momdp, seed, sample in zip(momdps, [0, 1], batched):
        assert_same(sample, ja.sample(momdp, 40, seed=seed))


@pytest.mark.parametrize("method", ["auto", "krylov"])
def test_attention_seeds_equal_per_instance_sampling(method):
    momdps = [ja.envs.attention_allocation(2, 3, seed=s) for s in range(3)]
    batched = ja.sample_instances(momdps, 50, seeds=[1, 2, 3], method=method)
    assert batched[0].info["evaluation"]["operator"] == ("dense" if method == "auto" else "kronecker")
    for momdp, seed, sample in zip(momdps, [1, 2, 3], batched):
        assert_same(sample, ja.sample(momdp, 50, seed=seed, method=method))


def test_independent_of_chunk_and_group_size():
    momdps = [ja.envs.garnet(8, 3, agents=2, seed=s) for s in range(5)]
    reference = ja.sample_instances(momdps, 100, seeds=3)
    for chunk_size, group_size in [(32, 1), (40, 2), (1000, 5)]:
        again = ja.sample_instances(momdps, 100, seeds=3, chunk_size=chunk_size, group_size=group_size)
        for a, b in zip(again, reference):
            np.testing.assert_array_equal(a.returns, b.returns)


def test_single_instance_and_extend():
    momdp = ja.envs.garnet(8, 3, agents=2, seed=4)
    (sample,) = ja.sample_instances([momdp], 45, seeds=[9])
    assert_same(sample, ja.sample(momdp, 45, seed=9))
    longer = ja.extend(momdp, sample, 30)
    np.testing.assert_array_equal(longer.returns, ja.sample(momdp, 75, seed=9).returns)
    (resumed,) = ja.sample_instances([momdp], 30, seeds=9, start=45)
    np.testing.assert_array_equal(sample.extend(resumed).returns, longer.returns)


def test_progress_counts_instances_times_samples():
    seen = []
    ja.sample_instances([ja.envs.garnet(8, 3, agents=2, seed=s) for s in range(3)], 40, progress=seen.append, chunk_size=32,
                        group_size=2)
    assert sum(seen) == 3 * 40


def test_hull_falls_back_to_a_loop_of_sample():
    momdps = [ja.envs.garnet(8, 3, agents=2, seed=s) for s in range(2)]
    seen = []
    batched = ja.sample_instances(momdps, 20, measure="hull", seeds=[1, 2], progress=seen.append)
    assert sum(seen) == 40
    for momdp, seed, sample in zip(momdps, [1, 2], batched):
        np.testing.assert_array_equal(sample.returns, ja.sample(momdp, 20, measure="hull", seed=seed).returns)


@pytest.mark.parametrize("other, pattern", [
    (lambda: ja.envs.garnet(9, 3, agents=2, seed=1), r"momdps\[1\]: states 9 differs from momdps\[0\]'s 8"),
    (lambda: ja.envs.garnet(8, 2, agents=2, seed=1), r"momdps\[1\]: actions 2 differs from momdps\[0\]'s 3"),
    (lambda: ja.envs.garnet(8, 3, agents=3, seed=1), r"momdps\[1\]: agents 3 differs"),
    (lambda: ja.envs.garnet(8, 3, agents=2, seed=1, criterion="discounted", gamma=0.9),
     r"momdps\[1\]: criterion 'discounted' differs from momdps\[0\]'s 'average'"),
])
def test_shape_mismatch_is_named(other, pattern):
    with pytest.raises(ValidationError, match=pattern):
        ja.sample_instances([ja.envs.garnet(8, 3, agents=2, seed=0), other()], 10)


def test_gamma_and_operator_mismatch_is_named():
    discounted = [ja.envs.garnet(8, 3, agents=2, seed=s, criterion="discounted", gamma=g) for s, g in ((0, 0.9), (1, 0.8))]
    with pytest.raises(ValidationError, match=r"momdps\[1\]: gamma 0.8 differs from momdps\[0\]'s 0.9"):
        ja.sample_instances(discounted, 10)
    attention = [ja.envs.attention_allocation(2, 3, seed=0), ja.envs.attention_allocation(2, 3, seed=1)]
    dense = ja.MOMDP(attention[1].P, attention[1].R)
    with pytest.raises(ValidationError, match=r"momdps\[1\]: transition form 'dense' differs from momdps\[0\]'s 'kronecker'"):
        ja.sample_instances([attention[0], dense], 10, method="krylov")
    assert len(ja.sample_instances([attention[0], dense], 10)) == 2  # a dense LU needs only S and A to match


@pytest.mark.parametrize("kwargs, pattern", [
    ({"momdps": []}, r"momdps: expected a non-empty list of jaxagg.MOMDP, got list \(empty\)"),
    ({"momdps": "x"}, "momdps: expected a non-empty list"),
    ({"seeds": [1]}, r"seeds: expected one seed per instance \(2\), got 1"),
    ({"seeds": [1, -1]}, r"seeds\[1\]: expected an integer in \[0, 2\*\*32\)"),
    ({"num_samples": 0}, "num_samples: expected an integer >= 1"),
    ({"group_size": 0}, "group_size: expected an integer >= 1"),
    ({"measure": "lebesgue"}, "measure: expected one of"),
])
def test_bad_arguments(kwargs, pattern):
    args = {"momdps": [ja.envs.garnet(8, 3, agents=2, seed=s) for s in range(2)], "num_samples": 10}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=pattern):
        ja.sample_instances(**args)


def test_a_failed_bound_is_named_and_ends_the_batch(monkeypatch):
    """The bounds are computed on a background thread while the instances are sampled: an
    instance's failure still reaches the caller as that instance's error, named."""
    momdps = [ja.envs.garnet(8, 3, agents=2, seed=s) for s in range(3)]
    real = sampling.return_bounds

    def failing(momdp):
        if momdp is momdps[1]:
            raise SolverError("maximum return LP of agent 0: HiGHS stopped with status 'Time limit reached'")
        return real(momdp)

    monkeypatch.setattr(sampling, "return_bounds", failing)
    with pytest.raises(SolverError, match=r"^momdps\[1\]: maximum return LP of agent 0: HiGHS stopped"):
        ja.sample_instances(momdps, 10)


def test_a_degenerate_agent_warns_and_is_snapped_as_in_sample():
    momdps = []
    for seed in (1, 2):  # agent 2's reward differs only in state 5, which every policy leaves at once
        base = ja.envs.garnet(5, 2, 2, 2, seed=seed)
        P = np.zeros((6, 2, 6))
        P[:5, :, :5], P[5, :, 0] = base.P, 1.0
        R = np.zeros((3, 6, 2))
        R[:2, :5], R[2, 5, :] = base.R, [1.0, 3.0]
        momdps.append(ja.MOMDP(P, R, criterion="average"))
    with pytest.warns(DegenerateAgentWarning, match=r"agent\(s\) \[2\]"):
        batched = ja.sample_instances(momdps, 20, seeds=[0, 1])
    assert np.all(batched[0].returns[:, 2] == batched[0].min_returns[2])
    for momdp, seed, sample in zip(momdps, [0, 1], batched):
        assert_same(sample, ja.sample(momdp, 20, seed=seed))


def test_non_momdp_is_named():
    with pytest.raises(ValidationError, match=r"momdps\[1\]: expected a jaxagg.MOMDP, got int"):
        ja.sample_instances([ja.envs.garnet(8, 3, agents=2, seed=0), 3], 10)
