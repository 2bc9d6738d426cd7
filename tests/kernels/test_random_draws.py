"""The counter-based draws behind the policy and hull measures (kernels/policies.py): exact and
device-independent integer hashing, sample i a function of (key, i) alone, uniform and
independent-looking bits, and Exponential(1) draws that are positive and finite."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxagg.kernels.policies import counter_bits, dirichlet_rows, exponential_of_bits, key_words, mix32
from jaxagg.kernels.precision import precision_scope


def mix32_reference(x: int) -> int:
    """:func:`mix32` in Python integers (the oracle of its wrapping uint32 arithmetic)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_is_the_documented_integer_hash_and_a_bijection():
    values = np.random.default_rng(0).integers(0, 2**32, size=2000, dtype=np.uint64)
    values[:3] = (0, 1, 2**32 - 1)
    mixed = np.asarray(mix32(jnp.asarray(values.astype(np.uint32))))
    assert mixed.tolist() == [mix32_reference(int(v)) for v in values]
    # a bijection: 2^16 consecutive inputs give 2^16 distinct outputs
    assert np.unique(np.asarray(mix32(jnp.arange(2**16, dtype=jnp.uint32)))).size == 2**16


def test_mix32_avalanches():
    """Flipping any one input bit flips each output bit with probability near 1/2."""
    inputs = jnp.asarray(np.random.default_rng(1).integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32))
    base = np.asarray(mix32(inputs))
    for bit in range(32):
        flipped = np.asarray(mix32(inputs ^ jnp.uint32(1 << bit)))
        changed = np.unpackbits((base ^ flipped).view(np.uint8)).reshape(-1, 32).mean(axis=0)
        assert np.abs(changed - 0.5).max() < 0.05, (bit, changed)


def test_sample_i_depends_only_on_key_and_i():
    key = jax.random.key(7)
    everything = np.asarray(counter_bits(key, jnp.arange(64, dtype=jnp.uint32), 30))
    some = np.asarray(counter_bits(key, jnp.array([41, 3, 3], dtype=jnp.uint32), 30))
    np.testing.assert_array_equal(some, everything[[41, 3, 3]])
    # and under jit, with other batch shapes
    jitted = jax.jit(counter_bits, static_argnums=2)
    np.testing.assert_array_equal(np.asarray(jitted(key, jnp.arange(60, 64, dtype=jnp.uint32), 30)), everything[60:])


def test_keys_seeds_and_indices_give_different_bits():
    indices = jnp.arange(1000, dtype=jnp.uint32)
    draws = {seed: np.asarray(counter_bits(jax.random.key(seed), indices, 8)) for seed in (0, 1, 2**31)}
    for seed, bits in draws.items():
        assert np.unique(bits[:, 0]).size == 1000, seed  # rows are a bijection of the index
        assert np.unique(bits[0]).size == 8, seed  # columns a bijection of the entry
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2**31])
    assert (draws[0] == draws[1]).mean() < 1e-3
    # any key implementation's data is folded in
    words = [tuple(int(w) for w in key_words(jax.random.key(seed))) for seed in range(100)]
    assert len(set(words)) == 100


def test_bits_look_uniform_and_independent():
    bits = np.asarray(counter_bits(jax.random.key(0), jnp.arange(4000, dtype=jnp.uint32), 250)).astype(np.uint64)
    # every bit is set half the time (1e6 draws: sd 5e-4)
    frequency = np.array([((bits >> k) & 1).mean() for k in range(32)])
    assert np.abs(frequency - 0.5).max() < 0.004, frequency
    # the top byte is uniform over 256 buckets, and so is the low byte
    for shift in (24, 0):
        counts = np.bincount(((bits >> shift) & 255).ravel().astype(np.int64), minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-4, shift
    # neighbouring entries of a sample, and the same entry of neighbouring samples, are uncorrelated
    u = (bits.astype(np.float64) + 0.5) / 2**32
    within = np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]
    across = np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]
    assert abs(within) < 0.005 and abs(across) < 0.005, (within, across)


def test_exponential_draws_are_positive_finite_and_exponential():
    extremes = np.asarray(exponential_of_bits(jnp.array([0, 511, 512, 2**32 - 512, 2**32 - 1], dtype=jnp.uint32)))
    assert (extremes > 0).all() and np.isfinite(extremes).all()
    assert extremes[0] == pytest.approx(24 * np.log(2), rel=1e-6)
    assert extremes[-1] == pytest.approx(2.0**-24, rel=1e-3)
    e = np.asarray(exponential_of_bits(counter_bits(jax.random.key(3), jnp.arange(2000, dtype=jnp.uint32), 100))).ravel()
    assert stats.kstest(e, "expon").pvalue > 1e-3
    assert e.mean() == pytest.approx(1.0, abs=0.01)


def test_dirichlet_rows_are_the_same_draws_in_every_precision():
    indices = jnp.arange(16, dtype=jnp.uint32)
    single = np.asarray(dirichlet_rows(jax.random.key(5), indices, 3, 4, jnp.float32))
    with precision_scope("float64"):
        double = np.asarray(dirichlet_rows(jax.random.key(5), indices, 3, 4, jnp.float64))
    assert double.dtype == np.float64
    np.testing.assert_allclose(single, double, rtol=1e-6)
    np.testing.assert_allclose(double.sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_dirichlet_rows_do_not_depend_on_the_batch_shape(precision):
    """Sample i's rows are bit-identical in a batch of 2 and of 5,000, eager or jitted (a
    reduction over the last axis would round by batch shape: the sum is added left to right)."""
    key = jax.random.key(0)
    with precision_scope(precision):
        dtype = jnp.float64 if precision == "float64" else jnp.float32
        for draw in (dirichlet_rows, jax.jit(dirichlet_rows, static_argnums=(2, 3, 4))):
            many = np.asarray(draw(key, jnp.arange(5000, dtype=jnp.uint32), 2, 4, dtype))
            few = np.asarray(draw(key, jnp.array([7, 3, 4999], dtype=jnp.uint32), 2, 4, dtype))
            np.testing.assert_array_equal(few, many[[7, 3, 4999]])
