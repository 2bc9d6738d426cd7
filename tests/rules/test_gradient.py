"""The Optax tuner: gradients against finite differences (float64, both criteria, dense and
iterative solves), quality against the exact rules on small instances, exact certificates,
MIP starts for the Borda and approval MILPs, and typed errors for bad input.

Oracles: exact max-quantile (LP bisection, exact at 1/N) and the epsilon-Borda MILP; the tuner
must reach q* within 0.01 and at least 98% of the MILP policy's empirical Borda score."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxagg as ja
from jaxagg import metrics
from jaxagg.errors import ValidationError
from jaxagg.kernels.ascent import TuneProblem, smooth_objective
from jaxagg.kernels.precision import precision_scope
from jaxagg.kernels.smooth import quantile_grid

INSTANCES = {
    "attention(3,3)-average": lambda: ja.envs.attention_allocation(3, 3, seed=1),
    "garnet-average": lambda: ja.envs.garnet(10, 3, 3, agents=3, seed=4),
    "garnet-discounted": lambda: ja.envs.garnet(10, 3, 3, agents=3, seed=5, criterion="discounted", gamma=0.9),
}


def problem_of(momdp, sample, q=0.9):
    return TuneProblem(jnp.asarray(momdp.P), jnp.asarray(momdp.mu), jnp.asarray(momdp.R),
                       jnp.asarray(quantile_grid(jnp.asarray(sample.sorted_returns), 64)),
                       jnp.asarray(sample.returns.std(axis=0)), jnp.asarray(q))


GRADIENT_CASES = [(name, objective, "dense") for name in sorted(INSTANCES) for objective in ("quantile", "borda", "approval")]
GRADIENT_CASES += [(name, "quantile", "iterative") for name in sorted(INSTANCES)]
GRADIENT_CASES = [case if case[0] == "garnet-discounted" and case[2] == "dense" else pytest.param(*case, marks=pytest.mark.slow)
                  for case in GRADIENT_CASES]  # the quick run keeps the discounted garnet's dense cases


@pytest.mark.parametrize("name, objective, solver", GRADIENT_CASES)
def test_gradient_matches_finite_differences(name, objective, solver):
    momdp = INSTANCES[name]()
    sample = ja.sample(momdp, 200, seed=0, precision="float64")
    with precision_scope("float64"):
        problem = problem_of(momdp, sample)
        logits = jax.random.normal(jax.random.key(3), (momdp.num_states, momdp.num_actions), dtype=jnp.float64)
        direction = jax.random.normal(jax.random.key(4), logits.shape, dtype=jnp.float64)

        @jax.jit
        def f(z):
            return smooth_objective(z, 0.3, problem, objective=objective, gamma=momdp.gamma, linear_solve=solver)[0]

        grad = jax.jit(jax.grad(f))(logits)
        eps = 1e-5
        fd = (f(logits + eps * direction) - f(logits - eps * direction)) / (2 * eps)
        # central differences: O(eps^2) truncation; rounding ~1e-16 / eps
        assert float(jnp.vdot(grad, direction)) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)
        if solver == "iterative":  # same function as the dense LU
            dense = smooth_objective(logits, 0.3, problem, objective=objective, gamma=momdp.gamma, linear_solve="dense")[0]
            assert float(f(logits)) == pytest.approx(float(dense), rel=1e-9)


QUALITY = {
    "attention(3,3)": lambda: ja.envs.attention_allocation(3, 3, seed=0),
    "garnet-0": lambda: ja.envs.garnet(8, 3, 3, agents=3, seed=0),
    "garnet-1": lambda: ja.envs.garnet(8, 3, 3, agents=4, seed=1, criterion="discounted", gamma=0.9),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QUALITY))
def test_tuner_reaches_the_exact_rules(name):
    momdp = QUALITY[name]()
    sample = ja.sample(momdp, 2000, seed=0)
    options = {"steps": 200, "restarts": 4}
    tuned = ja.tune(momdp, sample, objective="quantile", **options)
    exact = ja.rules.get("max-quantile")(momdp, sample)
    assert tuned.info["certificates"]["quantile_level"] >= exact.info["q_star"] - 0.01
    assert tuned.info["certificates"]["quantile_level"] <= exact.info["q_star"] + 1e-12  # q* is the optimum
    tuned_borda = ja.tune(momdp, sample, objective="borda", **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        milp = ja.rules.get("borda")(momdp, sample)
    assert tuned_borda.info["certificates"]["borda_score"] >= 0.98 * milp.info["borda_score"]


@pytest.mark.slow
def test_outcome_is_certified_exactly_and_lies_in_O():
    momdp = ja.envs.garnet(8, 3, 3, agents=3, seed=2)
    sample = ja.sample(momdp, 1000, seed=1)
    outcome = ja.tune(momdp, sample, objective="approval", q=0.8, steps=50, restarts=3)
    assert outcome.rule == "tune-approval"
    assert ja.occupancy_polytope(momdp).contains(outcome.occupancy, tol=1e-10)
    assert outcome.info["residual"] == pytest.approx(ja.occupancy_polytope(momdp).residual(outcome.occupancy), abs=1e-15)
    certificates = metrics.sample_certificates(outcome.returns, sample)
    for key, value in certificates.items():
        assert outcome.info["certificates"][key] == value
    assert outcome.info["value"] == outcome.info["certificates"]["approvals_0.8"]
    assert outcome.info["value"] == max(outcome.info["restart_values"])
    assert len(outcome.info["restart_values"]) == len(outcome.info["starts"]) == 3
    assert outcome.info["trace"][-1][0] == 49
    # the registry entries are the same function
    again = ja.rules.get("tune-approval")(momdp, sample, q=0.8, steps=50, restarts=3)
    np.testing.assert_allclose(again.occupancy, outcome.occupancy, atol=1e-12)


@pytest.mark.slow
def test_a_time_limit_stops_the_ascent_between_chunks_and_still_certifies():
    momdp = ja.envs.garnet(8, 3, 3, agents=3, seed=2)
    sample = ja.sample(momdp, 500, seed=1)
    whole = ja.tune(momdp, sample, steps=35, restarts=2, precision="float64")
    chunked = ja.tune(momdp, sample, steps=35, restarts=2, precision="float64", time_limit=1e6)
    # chunks of 10 steps carry the Adam state and keep the schedules of 35 steps: the same ascent
    assert chunked.info["steps_done"] == whole.info["steps_done"] == 35 and chunked.info["stopped_by"] == "steps"
    np.testing.assert_allclose(chunked.occupancy, whole.occupancy, rtol=0, atol=1e-9)
    stopped = ja.tune(momdp, sample, steps=35, restarts=2, precision="float64", time_limit=1e-9)
    assert stopped.info["steps_done"] == 10 and stopped.info["stopped_by"] == "time limit"
    assert stopped.info["trace"][-1][0] == 9
    assert stopped.info["certificates"] == metrics.sample_certificates(stopped.returns, sample) | {
        "approvals_0.9": stopped.info["certificates"]["approvals_0.9"]}
    assert ja.occupancy_polytope(momdp).contains(stopped.occupancy, tol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["borda", "approval"])
def test_mip_start_from_the_tuner_is_feasible_and_keeps_the_optimum(rule):
    momdp = ja.envs.garnet(8, 3, 3, agents=3, seed=3)
    sample = ja.sample(momdp, 1000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = ja.rules.get(rule)(momdp, sample)
        started = ja.rules.get(rule)(momdp, sample, start="tune")
        from_outcome = ja.rules.get(rule)(momdp, sample, start=plain)
    assert started.info["start"]["feasible"] and from_outcome.info["start"]["feasible"]
    assert started.info["start"]["source"] == f"tune-{rule}"
    key = "milp_score" if rule == "borda" else "count"
    assert started.info[key] == pytest.approx(plain.info[key], abs=1e-9)  # both exact optima
    with pytest.raises(ValidationError, match="start"):
        ja.rules.get(rule)(momdp, sample, start="warm")
    with pytest.raises(ValidationError, match="start"):
        ja.rules.get(rule)(momdp, sample, start=np.ones(3))


@pytest.mark.parametrize("options, match", [
    ({"objective": "nash"}, "objective"),
    ({"steps": 0}, "steps"),
    ({"restarts": 1.5}, "restarts"),
    ({"temperature": (0.01, 0.1)}, "temperature"),
    ({"temperature": (0.1, 0.0)}, "temperature"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"q": 1.0}, "q"),
    ({"linear_solve": "lu"}, "linear_solve"),
    ({"grid_size": 0}, "grid_size"),
    ({"time_limit": 0.0}, "time_limit"),
    ({"time_limit": float("inf")}, "time_limit"),
    ({"time_limit": "1"}, "time_limit"),
])
def test_bad_options_raise_typed_errors(options, match):
    momdp = ja.envs.garnet(5, 2, 2, agents=2, seed=0)
    sample = ja.sample(momdp, 100, seed=0)
    with pytest.raises(ValidationError, match=match):
        ja.tune(momdp, sample, **options)


def test_sample_of_another_instance_is_refused():
    momdp = ja.envs.garnet(5, 2, 2, agents=2, seed=0)
    other = ja.sample(ja.envs.garnet(5, 2, 2, agents=2, seed=1), 100, seed=0)
    with pytest.raises(ValidationError, match="sample"):
        ja.tune(momdp, other)
    with pytest.raises(ValidationError, match="sample"):
        ja.tune(momdp, ja.sample(ja.envs.garnet(5, 2, 2, agents=3, seed=0), 100, seed=0))
