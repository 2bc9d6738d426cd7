"""Hit-and-run kernel: chords end on the boundary, sweeps keep the simplex's uniform measure (both
direction kinds), and chains do not depend on how they are batched or split into runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats as st

from jaxagg.kernels.hit_and_run import chord_move, make_directions, project_to_hull, run_chains
from jaxagg.kernels.precision import precision_scope


def simplex(m):
    """The simplex {x >= 0, sum x = 1} in R^m: centre and an orthonormal basis of its hull."""
    return np.full(m, 1.0 / m), scipy.linalg.null_space(np.ones((1, m)))


def test_chord_ends_touch_the_boundary_and_never_leave_the_orthant():
    with precision_scope("float64"):
        center, basis = simplex(4)
        directions = make_directions(jnp.asarray(basis))
        x = jnp.asarray(np.stack([center, [0.1, 0.2, 0.3, 0.4]]))
        for j in range(3):
            v, r = directions.rows[j], directions.reciprocals[j]
            for u in (0.0, 1.0):
                moved = np.asarray(chord_move(x, v, r, jnp.full(2, u)))
                assert moved.min() >= 0 and np.allclose(moved.min(axis=1), 0.0, atol=1e-15)
                assert np.allclose(moved.sum(axis=1), 1.0)
            inside = np.asarray(chord_move(x, v, r, jnp.full(2, 0.5)))
            assert inside.min() > 0


@pytest.mark.parametrize("kind", ["coordinate", "random"])
def test_sweeps_keep_the_uniform_measure_on_the_simplex(kind):
    m, chains = 4, 64
    with precision_scope("float64"):
        center, basis = simplex(m)
        starts = jnp.asarray(np.broadcast_to(center, (chains, m)))
        samples, _ = run_chains(jax.random.key(7), starts, make_directions(jnp.asarray(basis)),
                                jnp.arange(chains, dtype=jnp.uint32), jnp.asarray(center), jnp.asarray(basis),
                                num_samples=40, thin=5, kind=kind)
    x = np.asarray(samples)[:, 5:].reshape(-1, m)  # drop a burn-in
    assert x.min() >= 0 and np.abs(x.sum(axis=1) - 1).max() < 1e-12
    for i in range(m):  # each marginal of the uniform simplex is Beta(1, m - 1)
        assert st.kstest(x[:, i], st.beta(1, m - 1).cdf).pvalue > 0.01


@pytest.mark.slow
def test_chains_do_not_depend_on_batching_or_on_splitting_the_run():
    with precision_scope("float64"):
        center, basis = simplex(5)
        directions = make_directions(jnp.asarray(basis))
        c, b = jnp.asarray(center), jnp.asarray(basis)
        starts = jnp.asarray(np.broadcast_to(center, (4, 5)))
        key = jax.random.key(3)
        together, _ = run_chains(key, starts, directions, jnp.arange(4, dtype=jnp.uint32), c, b, num_samples=6, thin=2)
        apart, _ = run_chains(key, starts[2:], directions, jnp.arange(2, 4, dtype=jnp.uint32), c, b, num_samples=6, thin=2)
        first, middle = run_chains(key, starts, directions, jnp.arange(4, dtype=jnp.uint32), c, b, num_samples=3, thin=2)
        second, _ = run_chains(key, middle, directions, jnp.arange(4, dtype=jnp.uint32), c, b, 6, num_samples=3, thin=2)
    # the same random numbers; the re-projection's matrix product may round differently for
    # another batch shape or loop, so equal up to float64 rounding
    np.testing.assert_allclose(np.asarray(together)[2:], np.asarray(apart), rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(together), np.concatenate([first, second], axis=1), rtol=0, atol=1e-14)


def test_projection_removes_drift_off_the_hull():
    with precision_scope("float64"):
        center, basis = simplex(3)
        drifted = jnp.asarray([[0.2, 0.3, 0.5 + 1e-4]])
        projected = np.asarray(project_to_hull(drifted, jnp.asarray(center), jnp.asarray(basis)))
    assert abs(projected.sum() - 1) < 1e-15 and projected.min() > 0
