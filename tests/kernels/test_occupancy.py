"""Batched occupancy kernels against the float64 exact solve, O's equations, the Cesàro limit,
and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import ValidationError
from jaxagg.kernels.occupancy import batch_occupancy, occupancy
from jaxagg.kernels.policies import deterministic_policies, random_policies, softmax_policy
from jaxagg.kernels.precision import precision_scope

INSTANCES = {
    "attention(3,3)": lambda: ja.envs.attention_allocation(3, 3, seed=2),
    "garnet-discounted": lambda: ja.envs.garnet(12, 3, 3, agents=2, seed=5, criterion="discounted", gamma=0.9),
    "garnet-average": lambda: ja.envs.garnet(12, 3, 12, agents=2, seed=6),
}


def kernel_occupancies(momdp, pi, precision):
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    with precision_scope(precision):
        d = batch_occupancy(jnp.asarray(pi, dtype), jnp.asarray(momdp.P, dtype), jnp.asarray(momdp.mu, dtype), momdp.gamma)
        return np.asarray(d, dtype=np.float64).reshape(pi.shape[0], -1)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("attention") else n for n in sorted(INSTANCES)])
@pytest.mark.parametrize("precision, tol", [("float32", 1e-5), ("float64", 1e-10)])
def test_sampled_occupancies_lie_in_O_and_match_the_exact_solve(name, precision, tol):
    momdp = INSTANCES[name]()
    with precision_scope(precision):
        dtype = jnp.float64 if precision == "float64" else jnp.float32
        indices = jnp.arange(16, dtype=jnp.uint32)
        pi = np.asarray(random_policies(jax.random.key(1), indices, momdp.num_states, momdp.num_actions, dtype), dtype=np.float64)
    d = kernel_occupancies(momdp, pi, precision)
    polytope = ja.occupancy_polytope(momdp)
    for k in range(pi.shape[0]):
        assert polytope.residual(d[k]) <= tol
        exact = ja.occupancy_of_policy(momdp, pi[k] / pi[k].sum(axis=1, keepdims=True))
        np.testing.assert_allclose(d[k], exact, atol=10 * tol)


@pytest.mark.slow
def test_average_reward_matches_the_cesaro_limit_on_attention():
    momdp = ja.envs.attention_allocation(3, 3, seed=0)
    pi = np.asarray(random_policies(jax.random.key(3), jnp.arange(4, dtype=jnp.uint32), 27, 4, jnp.float32), dtype=np.float64)
    pi /= pi.sum(axis=2, keepdims=True)
    d = kernel_occupancies(momdp, pi, "float64")
    for k in range(4):
        P_pi = np.einsum("sa,sat->st", pi[k], momdp.P)
        # Cesàro average of mu^T P^t by doubling: C_{2m} = (C_m + C_m P^m) / 2
        average, power = P_pi.copy(), P_pi.copy()
        for _ in range(40):
            average = 0.5 * (average + average @ power)
            power = power @ power
            power /= power.sum(axis=1, keepdims=True)
        rho = momdp.mu @ average
        np.testing.assert_allclose(d[k].reshape(27, 4).sum(axis=1), rho, atol=1e-10)


@pytest.mark.slow
def test_dirichlet_policies_are_on_the_simplex_with_dirichlet_moments():
    pi = np.asarray(random_policies(jax.random.key(0), jnp.arange(20000, dtype=jnp.uint32), 2, 4))
    np.testing.assert_allclose(pi.sum(axis=-1), 1.0, atol=1e-6)
    assert (pi > 0).all()
    # Dirichlet(1,1,1,1) marginal is Beta(1, 3): mean 1/4, variance 3/80
    np.testing.assert_allclose(pi[:, 0, 0].mean(), 0.25, atol=0.01)
    np.testing.assert_allclose(pi[:, 1, 2].var(), 3 / 80, atol=0.003)
    # sample i depends only on (key, i)
    again = np.asarray(random_policies(jax.random.key(0), jnp.array([7, 3], dtype=jnp.uint32), 2, 4))
    np.testing.assert_array_equal(again, pi[[7, 3]])


def test_deterministic_policy_occupancy():
    momdp = ja.envs.attention_allocation(2, 3, seed=0)
    none = deterministic_policies(jnp.full((9,), 2), 3)  # never monitor: both factories end in incident
    d = kernel_occupancies(momdp, np.asarray(none, dtype=np.float64)[None], "float64")[0].reshape(9, 3)
    assert d[8, 2] == pytest.approx(1.0, abs=1e-10)


@pytest.mark.slow  # op-by-op finite differences
@pytest.mark.parametrize("gamma", [None, 0.8])
def test_returns_gradient_matches_finite_differences(gamma):
    momdp = ja.envs.garnet(5, 3, 5, agents=2, seed=3, criterion="average" if gamma is None else "discounted", gamma=gamma)
    with precision_scope("float64"):
        P, mu, R = (jnp.asarray(x, jnp.float64) for x in (momdp.P, momdp.mu, momdp.reward_matrix))

        def objective(logits):
            d = occupancy(softmax_policy(logits), P, mu, gamma).reshape(-1)
            returns = R @ d
            return returns[0] - 0.5 * returns[1]

        logits = jax.random.normal(jax.random.key(0), (5, 3), dtype=jnp.float64)
        gradient = np.asarray(jax.grad(objective)(logits))
        h = 1e-6
        numeric = np.zeros((5, 3))
        for s in range(5):
            for a in range(3):
                e = jnp.zeros((5, 3), jnp.float64).at[s, a].set(h)
                numeric[s, a] = (objective(logits + e) - objective(logits - e)) / (2 * h)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-9)


def test_precision_is_scoped_not_global():
    with precision_scope("float64"):
        assert jnp.zeros(1, jnp.float64).dtype == jnp.float64
    assert jnp.zeros(1).dtype == jnp.float32
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'float64', got 'half'") as info:
        precision_scope("half")  # kernels raise plain ValueError; ja.sample checks first (typed)
    assert not isinstance(info.value, ValidationError)
