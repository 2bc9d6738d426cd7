"""The scale engine at the package level: operator forms inside a MOMDP, the evaluation method's
choice and record, residual enforcement, policy-iteration bounds at the door, concurrent host
devices (bit-identical to one device), and a large instance without dense transitions."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import jax
import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ConvergenceError, ValidationError
from jaxagg.kernels import evaluation, returns
from jaxagg.kernels import transitions as T
from jaxagg.kernels.returns import ACCELERATOR_BLOCK, BLOCK, BLOCK_BYTES, CPU_LU_BLOCK, block_size
from jaxagg.sampling import engine_settings, recorded_engine


@pytest.fixture(scope="module")
def attention_4_3():
    return ja.envs.attention_allocation(4, 3, seed=2)


def test_every_operator_form_gives_the_same_instance_and_samples():
    dense = ja.envs.garnet(12, 3, 3, 2, seed=4, criterion="discounted", gamma=0.9)
    sparse = ja.MOMDP(T.sparse_from_dense(dense.P), dense.R, dense.mu, "discounted", 0.9)
    assert sparse.transition_form == "sparse" and sparse.fingerprint == dense.fingerprint
    np.testing.assert_array_equal(sparse.P, dense.P)
    a = ja.sample(dense, 64, seed=1, method="krylov")
    b = ja.sample(sparse, 64, seed=1, method="krylov", operator="sparse")
    assert b.info["evaluation"]["operator"] == "sparse"
    # both within the engine's residual target (TARGET * TOL = 1e-7); on a CPU they agree to
    # about 1e-12, on an H100 to about 1e-8 (the two operators' float32 reductions differ)
    np.testing.assert_allclose(a.returns, b.returns, rtol=0, atol=1e-7)


def test_operator_files_round_trip(tmp_path, attention_4_3):
    for suffix in (".npz", ".json"):
        again = ja.load(attention_4_3.save(tmp_path / f"m{suffix}"))
        assert again.transition_form == "kronecker" and again.fingerprint == attention_4_3.fingerprint
    garnet = ja.envs.garnet(2500, 2, 3, 2, seed=0)  # past the dense draw: sparse lists
    again = ja.load(garnet.save(tmp_path / "g.npz"))
    assert again.transition_form == "sparse" and again.fingerprint == garnet.fingerprint


def test_bad_operators_are_refused_with_the_argument_named():
    with pytest.raises(ValidationError, match="P.probabilities"):
        ja.MOMDP(T.SparseTransitions(np.zeros((2, 1, 1), int), np.full((2, 1, 1), 0.5), None, None), np.ones((1, 2, 1)) * [[[0], [1]]])
    with pytest.raises(ValidationError, match="successor states"):
        ja.MOMDP(T.SparseTransitions(np.full((2, 1, 1), 5), np.ones((2, 1, 1)), None, None), np.ones((1, 2, 1)) * [[[0], [1]]])
    with pytest.raises(ja.errors.ShapeError, match="factors\\[1\\]"):
        ja.MOMDP(T.KroneckerTransitions((np.ones((2, 1, 1)), np.ones((3, 1, 1)))), np.arange(2.0).reshape(1, 1, 2))


def test_auto_evaluation_choices_are_recorded_and_kept_on_resume(attention_4_3):
    tiny = ja.envs.garnet(10, 3, 2, 2, seed=0)
    cpu = jax.devices("cpu")
    assert engine_settings(tiny, devices=cpu) == {"method": "lu", "operator": "dense", "tol": evaluation.TOL, "block": CPU_LU_BLOCK}
    assert engine_settings(tiny, "krylov", devices=cpu)["block"] == BLOCK
    assert engine_settings(attention_4_3)["method"] == "krylov" and engine_settings(attention_4_3)["operator"] == "kronecker"
    assert engine_settings(attention_4_3, "krylov", "dense")["operator"] == "dense"
    assert engine_settings(attention_4_3, devices=cpu)["solver"] == "gmres"  # a CPU's default Krylov solver
    assert engine_settings(attention_4_3, solver="bicgstab")["solver"] == "bicgstab"
    with pytest.raises(ValidationError, match="solver: expected one of"):
        engine_settings(attention_4_3, solver="cg")
    with pytest.raises(ValidationError, match="solver: only the 'krylov' method"):
        engine_settings(tiny, "lu", solver="gmres")
    assert engine_settings(ja.envs.attention_allocation(2, 3), devices=cpu) == {"method": "lu", "operator": "dense",
                                                                               "tol": evaluation.TOL, "block": CPU_LU_BLOCK}
    with pytest.raises(ValidationError, match="'lu' needs dense"):
        engine_settings(ja.envs.attention_allocation(6, 3), "lu", "kronecker")
    first = ja.sample(attention_4_3, 40, seed=5)
    assert first.info["evaluation"]["method"] == "krylov" and first.info["residual_max"] <= evaluation.TOL
    with pytest.raises(ValidationError, match="evaluated with method 'krylov'"):
        ja.extend(attention_4_3, first, 10, method="lu")
    whole = ja.sample(attention_4_3, 70, seed=5)
    np.testing.assert_array_equal(ja.extend(attention_4_3, first, 30).returns, whole.returns)


@pytest.mark.parametrize("setting, asked, cpu_default", [("solver", "bicgstab", "gmres"),
                                                        ("preconditioner", "mean-policy", "none")])
def test_an_engine_setting_is_recorded_kept_on_resume_replayed_and_not_mixed(attention_4_3, setting, asked, cpu_default):
    # an accelerator's default up to 1024 states, asked for on a CPU
    m = attention_4_3
    bounds = ja.return_bounds(m)
    first = ja.sample(m, 40, seed=5, **{setting: asked})
    assert first.info["evaluation"][setting] == asked and first.info["residual_max"] <= evaluation.TOL
    whole = ja.sample(m, 70, seed=5, **{setting: asked})
    np.testing.assert_array_equal(ja.extend(m, first, 30).returns, whole.returns)  # kept, not the CPU's default
    with pytest.raises(ValidationError, match=f"evaluated with {setting} '{asked}'"):
        ja.extend(m, first, 10, **{setting: cpu_default})
    default = ja.sample(m, 70, seed=5)
    assert default.info["evaluation"][setting] == cpu_default
    assert not np.array_equal(default.returns, whole.returns)  # other arithmetic rounds differently ...
    assert np.abs(default.returns - whole.returns).max() <= 1e-5 * (bounds.upper - bounds.lower).min()  # ... to the tolerance
    # the occupancies behind samples come back with the recorded setting, bit for bit
    engine = recorded_engine(whole)
    assert engine[setting] == asked
    d = ja.sample_occupancies(m, np.array([3, 50]), seed=5, precision="float32", **engine)
    np.testing.assert_allclose(d @ m.reward_matrix.T, whole.returns[[3, 50]], rtol=1e-12)
    d_default = ja.sample_occupancies(m, np.array([3, 50]), seed=5, precision="float32", **recorded_engine(default))
    assert not np.array_equal(d, d_default)
    # a batch of instances uses and records it too
    together = ja.sample_instances([m, m], 70, seeds=[6, 5], **{setting: asked})
    np.testing.assert_array_equal(together[1].returns, whole.returns)
    assert together[1].info["evaluation"] == whole.info["evaluation"]
    # parts of one run share it
    with pytest.raises(ValidationError, match="evaluation engine"):
        ja.merge_samples([first, ja.sample(m, 30, seed=5, start=40)])
    with pytest.raises(ValidationError, match="method, operator, block, solver, preconditioner"):
        ja.sample(m, 10, measure="hull", **{setting: cpu_default})


def test_krylov_float32_agrees_with_the_float64_lu(attention_4_3):
    bounds = ja.return_bounds(attention_4_3)
    fast = ja.sample(attention_4_3, 96, seed=9, method="krylov", precision="float32")
    exact = ja.sample(attention_4_3, 96, seed=9, method="lu", precision="float64")
    assert np.abs(fast.returns - exact.returns).max() <= 1e-5 * (bounds.upper - bounds.lower).min()


def test_a_sample_missing_the_residual_tolerance_raises(monkeypatch):
    slow_chain = ja.envs.garnet(23, 2, 1, 2, seed=3, criterion="discounted", gamma=0.999)
    monkeypatch.setattr(evaluation, "MAX_RESTARTS", 1)
    monkeypatch.setattr(evaluation, "RESTART", 1)
    monkeypatch.setattr(evaluation, "REFINEMENTS", 0)
    jax.clear_caches()  # the constants are read when the block is traced
    try:
        with pytest.raises(ConvergenceError, match="residual tolerance"):
            ja.sample(slow_chain, 32, seed=0, method="krylov", precision="float64")
    finally:
        jax.clear_caches()


def test_policy_iteration_bounds_equal_the_lp_bounds_at_the_door():
    m_pi = ja.envs.garnet(40, 3, 3, 3, seed=6, criterion="discounted", gamma=0.95)
    m_lp = ja.envs.garnet(40, 3, 3, 3, seed=6, criterion="discounted", gamma=0.95)
    by_pi = ja.polytope.return_bounds(m_pi, "policy-iteration")
    by_lp = ja.polytope.return_bounds(m_lp, "lp")
    assert by_pi.method == "policy-iteration" and by_lp.method == "lp"
    assert len(by_pi.certificates) == 6 and all(c.gap <= 1e-9 * 1.0 for c in by_pi.certificates)
    span = by_lp.upper - by_lp.lower
    assert np.abs(by_pi.upper - by_lp.upper).max() <= 1e-8 * span.min()
    assert np.abs(by_pi.lower - by_lp.lower).max() <= 1e-8 * span.min()


CONCURRENT = textwrap.dedent("""
    import json, jax, numpy as np, jaxagg as ja
    from jaxagg import sampling
    from jaxagg.kernels import returns
    calls = []
    original = returns.stream
    def spy(*args, **kwargs):
        calls.append(kwargs.get("concurrent"))
        return original(*args, **kwargs)
    sampling.stream = spy
    m = ja.envs.attention_allocation(3, 3, seed=1)
    assert len(jax.devices()) == 2
    one = ja.sample(m, 300, seed=4, method="krylov", devices=jax.devices()[:1], chunk_size=64)
    two = ja.sample(m, 300, seed=4, method="krylov", devices=jax.devices(), chunk_size=128)
    print(json.dumps({"equal": bool(np.array_equal(one.returns, two.returns)), "concurrent": calls,
                      "devices": two.info["devices"]}))
""")


def test_forced_host_devices_run_concurrently_and_bit_identically():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", CONCURRENT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"equal": True, "concurrent": [True, True], "devices": 2}


def test_a_cpu_runs_one_lane_per_core_from_threads_bit_identically(monkeypatch):
    """On one CPU device the Krylov sampler runs a lane per core, each from its own thread, in
    the caller's precision scope; the numbers do not depend on the number of lanes (ja.sample
    and ja.sample_instances, float32 and float64). The LU's LAPACK calls never overlap."""
    m = ja.envs.attention_allocation(3, 3, seed=1)
    garnets = [ja.envs.garnet(70, 3, 2, 2, seed=seed, criterion="discounted", gamma=0.9) for seed in range(3)]

    def run(lanes):  # one block per lane and call: the same compiled shape whatever the lanes
        return ([ja.sample(m, 300, seed=4, method="krylov", chunk_size=32 * lanes, precision=precision).returns
                 for precision in ("float32", "float64")]
                + [s.returns for s in ja.sample_instances(garnets, 100, seeds=[0, 1, 2], method="krylov", chunk_size=64,
                                                          group_size=2)])

    monkeypatch.setattr(returns, "host_cores", lambda: 1)
    one_lane = run(1)
    calls = []

    def spy(name):
        original = getattr(returns, name)

        def call(*args, **kwargs):
            calls.append((name, threading.get_ident(), bool(jax.config.jax_enable_x64)))
            return original(*args, **kwargs)

        monkeypatch.setattr(returns, name, call)

    monkeypatch.setattr(returns, "host_cores", lambda: 3)
    spy("_returns_of_range")
    spy("_returns_of_instances")
    three_lanes = run(3)
    for a, b in zip(one_lane, three_lanes):
        np.testing.assert_array_equal(a, b)
    for name in ("_returns_of_range", "_returns_of_instances"):
        threads = {thread for kernel, thread, _ in calls if kernel == name}
        assert len(threads) >= 3 and threading.get_ident() not in threads
    assert all(x64 for _, _, x64 in calls)  # the float64 scope reached every thread (the kernels need it)
    assert returns.concurrent_lanes(jax.devices()[:1]) == jax.devices()[:1] * 3
    # lanes are capped by memory: their blocks' working arrays fit in BLOCK_BYTES together
    assert returns.concurrent_lanes(jax.devices()[:1], max_lanes=2) == jax.devices()[:1] * 2
    assert returns.lane_limit(returns.BLOCK_BYTES // 2) == 2 and returns.lane_limit(10**12) == 1
    per_lane = BLOCK * evaluation.bytes_per_policy(19_683, 10, "krylov")  # attention (9, 3)
    assert 1 < returns.lane_limit(per_lane) < 64 and returns.lane_limit(per_lane) * per_lane <= BLOCK_BYTES
    calls.clear()
    ja.sample(m, 300, seed=4, method="lu", chunk_size=64)
    assert {thread for _, thread, _ in calls} == {threading.get_ident()}  # LU: one lane, this thread


@pytest.mark.slow
def test_a_large_sparse_instance_samples_and_bounds_without_dense_transitions():
    m = ja.envs.garnet(20_000, 3, 4, 2, seed=0, criterion="discounted", gamma=0.9)
    assert m.transition_form == "sparse"
    s = ja.sample(m, 64, seed=0)
    assert s.info["evaluation"] == {"method": "krylov", "operator": "sparse", "tol": evaluation.TOL, "block": engine_settings(m)["block"],
                                    "solver": "gmres", "preconditioner": "none"}
    bounds = ja.return_bounds(m)
    assert bounds.method == "policy-iteration" and all(c.method == "policy-iteration" for c in bounds.certificates)
    assert (s.returns >= bounds.lower - 1e-12).all() and (s.returns <= bounds.upper + 1e-12).all()
    assert "P" not in m.__dict__  # the dense array was never built


def test_evaluation_options_are_refused_for_measures_without_linear_solves():
    m = ja.envs.garnet(6, 2, 2, 2, seed=0)
    for measure in ("hull", "uniform"):
        with pytest.raises(ValidationError, match="method, operator"):
            ja.sample(m, 10, measure=measure, method="krylov")
        with pytest.raises(ValidationError, match="block"):
            ja.sample(m, 10, measure=measure, block=64)
    with pytest.raises(ValidationError, match="method"):
        ja.sample(m, 10, method="cholesky")


def test_the_block_size_is_small_on_a_cpu_and_large_within_memory_on_an_accelerator():
    assert block_size("cpu", 10**3) == BLOCK
    assert block_size("cpu", 10**3, "lu") == CPU_LU_BLOCK
    assert block_size("gpu", 10**3, "lu") == ACCELERATOR_BLOCK
    assert block_size("gpu", 10**3) == ACCELERATOR_BLOCK
    large = evaluation.bytes_per_policy(19_683, 10, "krylov")  # attention (9, 3)
    block = block_size("gpu", large)
    assert BLOCK <= block < ACCELERATOR_BLOCK and block & (block - 1) == 0
    assert block * large <= BLOCK_BYTES < 2 * block * large
    assert block_size("gpu", 10**12) == BLOCK  # never below the CPU block
    assert evaluation.bytes_per_policy(243, 6, "lu") > evaluation.bytes_per_policy(243, 6, "krylov")


def test_a_block_size_is_recorded_kept_on_resume_and_replayed():
    """Another block (as a GPU picks) meets the residual, is bit-identical whatever the chunk
    size, and extend / sample_occupancies / sample_instances keep it (bench/gpu.py checks that a
    GPU's blocks agree with the CPU's within 1e-5 of the range)."""
    m = ja.envs.attention_allocation(3, 3, seed=2)
    large = ja.sample(m, 100, seed=3, chunk_size=64, block=64, method="krylov")
    assert large.info["evaluation"]["block"] == 64 and large.info["residual_max"] <= evaluation.TOL
    np.testing.assert_array_equal(ja.sample(m, 100, seed=3, chunk_size=256, block=64, method="krylov").returns, large.returns)
    first = ja.sample(m, 40, seed=3, block=64, method="krylov")
    np.testing.assert_array_equal(ja.extend(m, first, 60).returns, large.returns)
    with pytest.raises(ValidationError, match="block"):
        ja.extend(m, first, 60, block=32)
    engine = recorded_engine(large)
    assert engine == {"method": "krylov", "operator": "kronecker", "block": 64, "solver": "gmres", "preconditioner": "none"}
    d = ja.sample_occupancies(m, np.array([0, 7, 99]), seed=3, precision=large.info["precision"], **engine)
    np.testing.assert_allclose(d @ m.reward_matrix.T, large.returns[[0, 7, 99]], rtol=1e-13)  # the same d; one matmul's rounding
    together = ja.sample_instances([m, m], 100, seeds=[3, 4], block=64, method="krylov")
    np.testing.assert_array_equal(together[0].returns, large.returns)
    with pytest.raises(ValidationError, match="block"):
        ja.sample(m, 10, block=0)


def test_samples_recorded_before_blocks_replay_with_the_cpu_block():
    m = ja.envs.garnet(10, 3, 2, 2, seed=0)
    s = ja.sample(m, 50, seed=1, block=BLOCK)
    del s.info["evaluation"]["block"]
    assert recorded_engine(s)["block"] == BLOCK  # what every sample was drawn with then
    np.testing.assert_array_equal(ja.extend(m, s, 20).returns, ja.sample(m, 70, seed=1, block=BLOCK).returns)


@pytest.mark.parametrize("setting, then", [("solver", "gmres"), ("preconditioner", "none")])
def test_krylov_samples_recorded_before_a_setting_replay_with_what_they_used(setting, then):
    m = ja.envs.attention_allocation(3, 3, seed=2)
    s = ja.sample(m, 50, seed=1, method="krylov", **{setting: then})
    del s.info["evaluation"][setting]  # as 0.3.0 (the solver) or 0.4.1 (the preconditioner) recorded it
    assert recorded_engine(s)[setting] == then
    np.testing.assert_array_equal(ja.extend(m, s, 20).returns, ja.sample(m, 70, seed=1, method="krylov", **{setting: then}).returns)


def test_a_run_continued_inside_a_block_is_bit_identical_to_one_run():
    # float32 Kronecker products on a CPU round a row by its position in the block; this instance
    # and seed showed it at samples 62 and 63 (positions 30 and 31 of the block 32-63, positions
    # 12 and 13 when a run continued at 50 started its blocks there): every sample now sits at
    # position i % block of its own block, whatever the start
    m = ja.envs.attention_allocation(3, 3, seed=2)
    whole = ja.sample(m, 70, seed=1, method="krylov", solver="gmres")
    first = ja.sample(m, 50, seed=1, method="krylov", solver="gmres")
    np.testing.assert_array_equal(ja.extend(m, first, 20).returns, whole.returns)
    np.testing.assert_array_equal(ja.sample(m, 7, seed=1, start=57, method="krylov", solver="gmres").returns,
                                  whole.returns[57:64])
    indices = np.array([62, 3, 63, 40, 69, 5])
    d = ja.sample_occupancies(m, indices, seed=1, precision="float32", **recorded_engine(whole))
    np.testing.assert_array_equal(d, ja.sample_occupancies(m, indices[::-1], seed=1, precision="float32",
                                                           **recorded_engine(whole))[::-1])
    np.testing.assert_allclose(d @ m.reward_matrix.T, whole.returns[indices], rtol=1e-13)
    others = [m, ja.envs.attention_allocation(3, 3, seed=3)]
    batched = ja.sample_instances(others, 20, seeds=[1, 1], start=50, method="krylov", solver="gmres")
    np.testing.assert_array_equal(batched[0].returns, whole.returns[50:])


def test_preconditioner_options_are_checked():
    m = ja.envs.garnet(6, 2, 2, 2, seed=0)
    with pytest.raises(ValidationError, match="preconditioner: expected one of"):
        ja.sample(m, 10, method="krylov", preconditioner="jacobi")
    with pytest.raises(ValidationError, match="preconditioner: only the 'krylov' method"):
        ja.sample(m, 10, method="lu", preconditioner="mean-policy")
    with pytest.raises(ValidationError, match="method, operator, block, solver, preconditioner"):
        ja.sample(m, 10, measure="hull", preconditioner="none")
    big = ja.envs.garnet(evaluation.PRECONDITIONER_MAX_STATES + 1, 2, 2, 2, seed=0)
    with pytest.raises(ValidationError, match="for at most 4096 states; this instance has 4097"):
        engine_settings(big, preconditioner="mean-policy")
    assert engine_settings(big)["preconditioner"] == "none"
