"""Compile counts of the jitted entry points: once warm, new data of the same shapes compiles
nothing (a static argument that changed with the data, or a Python scalar turned into a new
cache key, would recompile on every call and cost seconds per call).

Compilations are counted by listening to JAX's backend-compile event (one event per XLA
compilation, tracing cache hits excluded); the counter is checked against a function it must see
compile, and a new shape must compile again.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxagg as ja
from jaxagg.kernels import transitions as T
from jaxagg.kernels.ascent import TuneProblem, softmax_occupancies, tune_logits
from jaxagg.kernels.hit_and_run import make_directions, run_chains
from jaxagg.kernels.precision import precision_scope
from jaxagg.kernels.returns import MeasureProblem, policy_block_gmres, stream

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """Collects the names of the functions XLA compiles inside the block."""
    names = []

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            names.append(kwargs.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_the_counter_sees_a_compilation_and_a_cache_hit():
    @jax.jit
    def fresh(x):
        return jnp.sin(x) * 2.0

    with compilations() as first:
        fresh(jnp.ones(3)).block_until_ready()
    assert any("fresh" in name for name in first)
    with compilations() as again:
        fresh(jnp.zeros(3)).block_until_ready()
    assert again == []
    with compilations() as new_shape:
        fresh(jnp.ones(4)).block_until_ready()
    assert any("fresh" in name for name in new_shape)
    assert fresh._cache_size() == 2


# ----------------------------------------------------------------- sampling
def garnets(criterion="average", gamma=None):
    """Two Garnets of the same shape, different data."""
    return [ja.envs.garnet(6, 3, 2, 3, seed=seed, criterion=criterion, gamma=gamma) for seed in (0, 1)]


@pytest.mark.parametrize("instance", ["garnet_average", "attention_2_3"])
def test_sampling_a_second_instance_of_the_same_shape_compiles_nothing(request, instance):
    # the session's sample of the instance warms up (float64 for the garnet, float32 for attention)
    reference = request.getfixturevalue(f"{instance}_sample")
    first = request.getfixturevalue(instance)
    second = (ja.envs.garnet(6, 3, 2, 3, seed=1) if instance == "garnet_average" else ja.envs.attention_allocation(2, 3, seed=1))
    assert second.fingerprint != first.fingerprint and second.R.shape == first.R.shape
    # warm again: a test that ran since the session's sample may have cleared JAX's caches
    ja.sample(first, reference.num_samples, seed=0, precision=reference.info["precision"])
    with compilations() as names:
        again = ja.sample(second, reference.num_samples, seed=1, precision=reference.info["precision"])
    assert names == []
    assert again.fingerprint == second.fingerprint and not np.array_equal(again.returns, reference.returns)


def test_a_new_discount_factor_is_data_for_the_sampler():
    first, _ = garnets("discounted", 0.9)
    second = ja.envs.garnet(6, 3, 2, 3, seed=1, criterion="discounted", gamma=0.8)
    ja.sample(first, 100, seed=0)
    with compilations() as names:
        ja.sample(second, 100, seed=0)
    assert names == []


def test_the_stream_kernel_compiles_once_per_shape():
    first, second = garnets()

    def problem(m):
        op = T.DenseTransitions(m.P)
        return MeasureProblem(T.astype(op, jnp.float32), T.astype(op, jnp.float64), jnp.asarray(m.mu, jnp.float64),
                              jnp.asarray(m.reward_matrix, jnp.float64), m.gamma)

    with precision_scope("float64"):
        reference, _ = stream(policy_block_gmres, (problem(first),), jax.random.key(0), 100, chunk_size=64)
        with compilations() as names:
            returns, residuals = stream(policy_block_gmres, (problem(second),), jax.random.key(1), 100, chunk_size=64)
        assert names == []
        assert returns.shape == (100, 3) and residuals.shape == (100,) and not np.array_equal(returns, reference)
        with compilations() as names:
            stream(policy_block_gmres, (problem(ja.envs.garnet(7, 3, 2, 3, seed=0)),), jax.random.key(1), 100, chunk_size=64)
    assert any("_returns_of_range" in name for name in names)  # a new shape compiles


# ------------------------------------------------------------ hit-and-run
def simplex_chains(seed, d=5, chains=4):
    """Hit-and-run inputs on the simplex {x >= 0, sum x = 1} in R^d: random interior starts."""
    basis = np.linalg.qr(np.eye(d) - 1.0 / d)[0][:, : d - 1]  # orthonormal basis of {sum = 0}
    rng = np.random.default_rng(seed)
    starts = rng.dirichlet(np.ones(d), size=chains)
    return (jax.random.key(seed), jnp.asarray(starts, jnp.float32), make_directions(jnp.asarray(basis, jnp.float32)),
            jnp.arange(chains, dtype=jnp.uint32), jnp.full(d, 1.0 / d, jnp.float32), jnp.asarray(basis, jnp.float32))


def test_hit_and_run_chains_compile_once_per_shape():
    run_chains(*simplex_chains(0), 0, num_samples=8, thin=2)
    with compilations() as names:
        samples, finals = run_chains(*simplex_chains(1), 16, num_samples=8, thin=2)
        samples.block_until_ready()
    assert names == []
    assert samples.shape == (4, 8, 5) and finals.shape == (4, 5)
    np.testing.assert_allclose(np.asarray(samples).sum(axis=-1), 1.0, atol=1e-5)  # they stay on the simplex
    assert float(samples.min()) >= 0.0
    with compilations() as names:
        run_chains(*simplex_chains(1, d=6), 0, num_samples=8, thin=2)
    assert any("run_chains" in name for name in names)


# ------------------------------------------------------------------ ascent
def tune_problem(m, seed, batch=2, grid=16):
    rng = np.random.default_rng(seed)
    returns = rng.random((grid, m.num_agents))
    problem = TuneProblem(jnp.asarray(m.P, jnp.float32), jnp.asarray(m.mu, jnp.float32), jnp.asarray(m.R, jnp.float32),
                          jnp.asarray(np.sort(returns, axis=0), jnp.float32), jnp.asarray(returns.std(axis=0), jnp.float32),
                          jnp.asarray(0.8, jnp.float32))
    logits = jnp.asarray(rng.normal(size=(batch, m.num_states, m.num_actions)), jnp.float32)
    return logits, problem


@pytest.mark.parametrize("criterion, gamma", [("average", None), ("discounted", 0.9)])
def test_softmax_occupancies_compile_once_per_shape(criterion, gamma):
    first, second = garnets(criterion, gamma)
    logits, _ = tune_problem(first, 0)
    softmax_occupancies(logits, jnp.asarray(first.P, jnp.float32), jnp.asarray(first.mu, jnp.float32), gamma)
    logits, _ = tune_problem(second, 1)
    with compilations() as names:
        d = softmax_occupancies(logits, jnp.asarray(second.P, jnp.float32), jnp.asarray(second.mu, jnp.float32), gamma)
    assert names == []
    polytope = ja.occupancy_polytope(second)
    for row in np.asarray(d, dtype=np.float64).reshape(2, -1):
        assert polytope.residual(row) <= 1e-5


def test_tune_logits_compiles_nothing_for_new_data_of_the_same_shape():
    first, second = garnets("discounted", 0.9)
    options = {"objective": "approval", "gamma": 0.9, "steps": 6, "learning_rate": 0.1, "temperature": (0.3, 0.03)}
    tune_logits(*tune_problem(first, 0), **options)
    with compilations() as names:
        logits, trace = tune_logits(*tune_problem(second, 1), **options)
        trace.block_until_ready()
    assert names == []
    assert logits.shape == (2, 6, 3) and trace.shape == (6, 2)
    with compilations() as names:
        tune_logits(*tune_problem(second, 1, batch=3), **options)
    assert any("_advance" in name for name in names)  # more restarts: a new shape


def test_the_tuner_rule_compiles_nothing_on_a_second_instance_of_the_same_shape(chain_discounted, chain_discounted_sample):
    options = {"steps": 20, "restarts": 2}  # as in tests/rules/test_contract.py: compiled once per session
    ja.tune(chain_discounted, chain_discounted_sample, **options)
    second = ja.envs.two_state_chain(0.7, criterion="discounted", gamma=0.9)
    with compilations() as names:
        sample = ja.sample(second, chain_discounted_sample.num_samples, seed=1, precision="float64")
        outcome = ja.tune(second, sample, **options)
    assert names == []
    assert outcome.rule == "tune-quantile" and outcome.info["steps_done"] == 20
