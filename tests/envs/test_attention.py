"""Tests of the paper's environment, dynamic attention allocation (SPEC §4).

The transition and reward checks re-derive every number from the SPEC's prose with slow,
per-state loops that share no code with ``jaxagg.envs.attention`` (no Kronecker products, no
``np.unravel_index``): only the drawn parameters ``info["theta"]`` and ``info["weights"]`` are read
from the instance.
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxagg
from jaxagg.envs import attention_allocation
from jaxagg.errors import ValidationError

ATOL = 1e-12


# ----------------------------------------------------------------------------- reference model
def decode(s: int, factories: int, phases: int) -> list[int]:
    """Phases of every factory in state ``s``; factory 0 is the most significant digit."""
    digits = []
    for _ in range(factories):
        s, p = divmod(s, phases)
        digits.append(p)
    assert s == 0
    return digits[::-1]


def factory_step_probability(p: int, p_next: int, monitored: bool, theta_f, phases: int) -> float:
    """Probability that one factory goes from phase ``p`` to ``p_next`` (SPEC §4, in words)."""
    last = phases - 1
    if monitored:
        return 1.0 if p_next == max(0, p - 1) else 0.0
    if p == last:
        return 1.0 if p_next == last else 0.0
    if p_next == p + 1:
        return float(theta_f[p])
    if p_next == p:
        return 1.0 - float(theta_f[p])
    return 0.0


def reference_transition_row(s: int, a: int, theta, factories: int, phases: int) -> np.ndarray:
    """``P(s, a, .)`` as a product over independent factories, one next state at a time."""
    S = phases**factories
    phase = decode(s, factories, phases)
    row = np.zeros(S)
    for s_next in range(S):
        phase_next = decode(s_next, factories, phases)
        prob = 1.0
        for f in range(factories):
            prob *= factory_step_probability(phase[f], phase_next[f], a == f, theta[f], phases)
        row[s_next] = prob
    return row


def reference_reward(weights_i, s: int, a: int, factories: int, phases: int) -> float:
    """``-1[a monitors a factory] - 100 * sum_t w_t [phase_t = last and a != t]``."""
    phase = decode(s, factories, phases)
    reward = -1.0 if a < factories else 0.0
    for t in range(factories):
        if phase[t] == phases - 1 and a != t:
            reward -= 100.0 * weights_i[t]
    return reward


def on_grid(values, step: float, low: float, high: float) -> bool:
    """Whether every value is ``low + k * step`` for an integer k, within ``[low, high]``."""
    values = np.asarray(values, dtype=np.float64)
    k = (values - low) / step
    return bool(
        np.allclose(k, np.round(k), atol=1e-9)
        and values.min() >= low - 1e-12
        and values.max() <= high + 1e-12
    )


# ----------------------------------------------------------------------------- shapes
def test_base_instance_sizes_and_stochastic_rows():
    momdp = attention_allocation(5, 3, "base", 0)
    assert momdp.num_states == 243
    assert momdp.num_actions == 6
    assert momdp.num_agents == 5
    assert momdp.P.shape == (243, 6, 243)
    assert momdp.R.shape == (5, 243, 6)
    assert (momdp.P >= 0).all()
    np.testing.assert_allclose(momdp.P.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    # Average-reward criterion, uniform mu (SPEC §4).
    assert momdp.criterion == "average"
    assert momdp.gamma is None
    np.testing.assert_allclose(momdp.mu, np.full(243, 1 / 243), rtol=0, atol=1e-15)
    theta = np.asarray(momdp.info["theta"])
    weights = np.asarray(momdp.info["weights"])
    assert theta.shape == (5, 2)
    assert weights.shape == (5, 5)


def test_subsets_instance_sizes():
    momdp = attention_allocation(5, 3, "subsets", 0)
    assert (momdp.num_states, momdp.num_actions, momdp.num_agents) == (243, 6, 10)
    assert momdp.R.shape == (10, 243, 6)
    assert np.asarray(momdp.info["weights"]).shape == (10, 5)
    np.testing.assert_allclose(momdp.P.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_state_labels_follow_factory_0_most_significant():
    momdp = attention_allocation(3, 4, "base", 1)
    for s in (0, 1, 4, 17, 63):
        assert momdp.state_names[s] == "".join(str(p) for p in decode(s, 3, 4))


# ----------------------------------------------------------------------------- transitions
@pytest.mark.parametrize(
    "factories, phases, seed, num_checked",
    [(5, 3, 0, 20), (5, 3, 7, 20), (3, 4, 3, None), (2, 2, 5, None), (1, 5, 2, None)],
)
def test_transitions_match_independent_rederivation(factories, phases, seed, num_checked):
    momdp = attention_allocation(factories, phases, "base", seed)
    theta = np.asarray(momdp.info["theta"])
    assert theta.shape == (factories, phases - 1)
    S = phases**factories
    rng = np.random.default_rng(1234 + seed)
    states = np.arange(S) if num_checked is None else rng.choice(S, size=num_checked, replace=False)
    # Always include the all-zero and all-incident states.
    states = np.unique(np.concatenate([states, [0, S - 1]]))
    for s in states:
        for a in range(factories + 1):
            expected = reference_transition_row(int(s), a, theta, factories, phases)
            np.testing.assert_allclose(
                momdp.P[s, a], expected, rtol=0, atol=ATOL, err_msg=f"state {s} action {a}"
            )


def test_transition_special_cases_by_hand():
    """A few transitions written out by hand for (F=2, phases=3)."""
    momdp = attention_allocation(2, 3, "base", 11)
    th = np.asarray(momdp.info["theta"])
    idx = lambda p0, p1: 3 * p0 + p1
    # Both factories incident, monitor none: stays put.
    row = momdp.P[idx(2, 2), 2]
    assert row[idx(2, 2)] == pytest.approx(1.0, abs=ATOL)
    # Both incident, monitor factory 0: factory 0 drops to phase 1, factory 1 stays incident.
    assert momdp.P[idx(2, 2), 0, idx(1, 2)] == pytest.approx(1.0, abs=ATOL)
    # Both at phase 0, monitor factory 1: factory 1 stays at 0, factory 0 advances w.p. theta[0,0].
    assert momdp.P[idx(0, 0), 1, idx(1, 0)] == pytest.approx(th[0, 0], abs=ATOL)
    assert momdp.P[idx(0, 0), 1, idx(0, 0)] == pytest.approx(1 - th[0, 0], abs=ATOL)
    # Phases (1, 0), monitor none: independent advances.
    assert momdp.P[idx(1, 0), 2, idx(2, 1)] == pytest.approx(th[0, 1] * th[1, 0], abs=ATOL)
    assert momdp.P[idx(1, 0), 2, idx(1, 1)] == pytest.approx((1 - th[0, 1]) * th[1, 0], abs=ATOL)


# ----------------------------------------------------------------------------- rewards
@pytest.mark.parametrize(
    "factories, phases, agents, seed",
    [(5, 3, "base", 0), (5, 3, "subsets", 2), (3, 4, "base", 3), (3, 4, "subsets", 4), (2, 3, "subsets", 9)],
)
def test_rewards_match_independent_rederivation(factories, phases, agents, seed):
    momdp = attention_allocation(factories, phases, agents, seed)
    weights = np.asarray(momdp.info["weights"])
    n = momdp.num_agents
    assert weights.shape == (n, factories)
    S = phases**factories
    expected = np.zeros((n, S, factories + 1))
    for i in range(n):
        for s in range(S):
            for a in range(factories + 1):
                expected[i, s, a] = reference_reward(weights[i], s, a, factories, phases)
    np.testing.assert_allclose(momdp.R, expected, rtol=1e-12, atol=1e-9)


def test_reward_special_cases_by_hand():
    momdp = attention_allocation(2, 3, "base", 5)
    w = np.diag(np.asarray(momdp.info["weights"]))
    idx = lambda p0, p1: 3 * p0 + p1
    # No incident: monitoring costs 1, not monitoring costs 0.
    np.testing.assert_allclose(momdp.R[:, idx(0, 1)], [[-1, -1, 0], [-1, -1, 0]], atol=ATOL)
    # Factory 0 incident: agent 0 loses 100 w_0 unless factory 0 is the one monitored.
    np.testing.assert_allclose(momdp.R[0, idx(2, 0)], [-1, -1 - 100 * w[0], -100 * w[0]], atol=1e-9)
    np.testing.assert_allclose(momdp.R[1, idx(2, 0)], [-1, -1, 0], atol=ATOL)


# ----------------------------------------------------------------------------- drawn parameters
def test_theta_lies_in_grid_and_covers_its_ends():
    thetas = np.concatenate(
        [np.asarray(attention_allocation(4, 3, "base", seed).info["theta"]).ravel() for seed in range(100)]
    )
    assert on_grid(thetas, 0.01, 0.50, 0.79)
    # 800 uniform draws from 30 values: both ends occur (the seeds are fixed, so this is not flaky).
    assert thetas.min() == pytest.approx(0.50, abs=1e-12)
    assert thetas.max() == pytest.approx(0.79, abs=1e-12)


@pytest.mark.parametrize("factories", [2, 5])
def test_base_weights_diagonal_on_grid(factories):
    diagonals = []
    for seed in range(100):
        weights = np.asarray(attention_allocation(factories, 2, "base", seed).info["weights"])
        assert weights.shape == (factories, factories)
        np.testing.assert_array_equal(weights - np.diag(np.diag(weights)), 0.0)
        diagonals.append(np.diag(weights))
    diagonals = np.concatenate(diagonals)
    top = factories + 1 - 0.25
    assert on_grid(diagonals, 0.25, 0.25, top)
    assert diagonals.min() == pytest.approx(0.25, abs=1e-12)
    assert diagonals.max() == pytest.approx(top, abs=1e-12)


@pytest.mark.parametrize("factories", [3, 5])
def test_subsets_parameters_on_grid(factories):
    all_fw, all_scales, all_subsets = [], [], []
    for seed in range(60):
        momdp = attention_allocation(factories, 2, "subsets", seed)
        info = momdp.info
        subsets = np.asarray(info["subsets"], dtype=float)
        fw = np.asarray(info["factory_weights"], dtype=float)
        scales = np.asarray(info["scales"], dtype=float)
        weights = np.asarray(info["weights"], dtype=float)
        assert momdp.num_agents == 10
        assert subsets.shape == (10, factories)
        assert fw.shape == (factories,)
        assert scales.shape == (10,)
        assert set(np.unique(subsets)) <= {0.0, 1.0}
        assert (subsets.sum(axis=1) >= 1).all(), "every agent's subset must be non-empty"
        np.testing.assert_allclose(weights, subsets * fw[None, :] * scales[:, None], rtol=1e-15, atol=0)
        all_fw.append(fw)
        all_scales.append(scales)
        all_subsets.append(subsets)
    all_fw = np.concatenate(all_fw)
    all_scales = np.concatenate(all_scales)
    assert on_grid(all_fw, 0.5, 1.0, factories / 2)  # the reference: randint(2, F+1)/2
    assert all_fw.min() == 1.0 and all_fw.max() == factories / 2
    assert on_grid(all_scales, 0.25, 0.25, factories + 0.75)
    assert all_scales.min() == 0.25 and all_scales.max() == factories + 0.75
    # Every non-empty subset occurs (uniform over 2**F - 1 subsets, 600 draws).
    codes = {tuple(row) for row in np.concatenate(all_subsets).astype(int)}
    assert len(codes) == 2**factories - 1


def test_num_agents_for_subsets():
    momdp = attention_allocation(3, 2, "subsets", 0, num_agents=4)
    assert momdp.num_agents == 4
    assert np.asarray(momdp.info["subsets"]).shape == (4, 3)


# ----------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("agents", ["base", "subsets"])
def test_same_seed_same_instance(agents):
    a = attention_allocation(4, 3, agents, 42)
    b = attention_allocation(4, 3, agents, 42)
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.R, b.R)
    np.testing.assert_array_equal(a.mu, b.mu)
    assert a.info == b.info


def test_different_seeds_different_theta():
    thetas = [np.asarray(attention_allocation(5, 3, "base", seed).info["theta"]) for seed in range(6)]
    for i in range(len(thetas)):
        for j in range(i + 1, len(thetas)):
            assert not np.array_equal(thetas[i], thetas[j]), (i, j)
    a, b = attention_allocation(5, 3, "base", 0), attention_allocation(5, 3, "base", 1)
    assert not np.array_equal(a.P, b.P)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(factories=0),
        dict(factories=-1),
        dict(factories=2.5),
        dict(factories=True),
        dict(phases=1),
        dict(phases=0),
        dict(phases="3"),
        dict(agents="x"),
        dict(agents=None),
        dict(factories=15, phases=3),  # 14 million states: past MAX_STATES
        dict(factories=30, phases=2),
        dict(agents="base", num_agents=3),
        dict(agents="subsets", num_agents=0),
    ],
)
def test_bad_arguments_raise_validation_error(kwargs):
    with pytest.raises(ValidationError):
        attention_allocation(**kwargs)


def test_validation_error_is_exported_type():
    assert jaxagg.errors.ValidationError is ValidationError
    assert issubclass(ValidationError, ValueError)


def test_large_instance_is_built_as_kronecker_operator_without_dense_transitions():
    m = attention_allocation(9, 3)  # S = 19683, A = 10: dense P would take 31 GiB
    assert m.transition_form == "kronecker" and m.num_states == 19683 and m.num_actions == 10
    assert [K.shape for K in m.transitions.factors] == [(10, 3, 3)] * 9
    with pytest.raises(ValidationError, match="GiB"):
        _ = m.P
