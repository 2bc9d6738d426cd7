"""Tests of the Gymnasium / MO-Gymnasium bridge (:mod:`jaxagg.envs.gym`).

The oracle for the conversion is the environment itself: Monte-Carlo rollouts of a random
stationary policy in the real environment (its own seeded ``np_random``) must give the converted
MOMDP's exact returns within 3 standard errors. The rollouts share no code with the converter.
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.envs import from_gymnasium, from_gymnasium_p, published_front
from jaxagg.errors import ValidationError
from jaxagg.report import DEFAULT_RULES, VOLUMETRIC_RULES

gymnasium = pytest.importorskip("gymnasium")
pytest.importorskip("mo_gymnasium")

GAMMA = 0.9
MO_IDS = ["deep-sea-treasure-v0", "fruit-tree-v0", "resource-gathering-v0"]
TOY_IDS = ["FrozenLake-v1", "CliffWalking-v1"]


@pytest.fixture(scope="module")
def converted():
    return {env_id: from_gymnasium(env_id, gamma=GAMMA) for env_id in MO_IDS + TOY_IDS}


# ----------------------------------------------------------------------------- structure
def test_sizes_names_and_labels(converted):
    dst = converted["deep-sea-treasure-v0"]
    assert (dst.num_states, dst.num_actions, dst.num_agents) == (63, 4, 2)
    assert dst.agent_names == ("treasure", "time")
    assert dst.state_names[0] == "current_state=(0, 0)" and dst.state_names[-1] == "terminal"
    assert dst.criterion == "discounted" and dst.gamma == GAMMA
    np.testing.assert_array_equal(dst.mu[0], 1.0)
    tree = converted["fruit-tree-v0"]
    assert (tree.num_states, tree.num_actions, tree.num_agents) == (64, 2, 6)
    rg = converted["resource-gathering-v0"]
    assert (rg.num_states, rg.num_actions, rg.num_agents) == (94, 4, 3)
    assert rg.agent_names == ("enemy", "gold", "diamond")
    lake = converted["FrozenLake-v1"]
    assert lake.num_agents == 1 and lake.agent_names == ("reward",)


def test_absorbing_state_has_zero_reward_and_loops(converted):
    for momdp in converted.values():
        t = momdp.state_names.index("terminal")
        np.testing.assert_array_equal(momdp.R[:, t, :], 0.0)
        np.testing.assert_array_equal(momdp.P[t, :, t], 1.0)


def test_stochastic_branches_are_enumerated_exactly(converted):
    rg = converted["resource-gathering-v0"]
    # Stepping onto an enemy: killed (reward -1, episode over) with probability 0.1, else moved on.
    s = rg.state_names.index("current_pos=(2, 2) has_gold=0 has_gem=0")
    up = 0
    row = rg.P[s, up]
    terminal = rg.state_names.index("terminal")
    assert row[terminal] == pytest.approx(0.1, abs=1e-15)
    assert row[rg.state_names.index("current_pos=(1, 2) has_gold=0 has_gem=0")] == pytest.approx(0.9, abs=1e-15)
    assert rg.R[0, s, up] == pytest.approx(-0.1, abs=1e-15)


def test_float32_rewards_are_read_as_written(converted):
    dst = converted["deep-sea-treasure-v0"]
    assert 0.7 in dst.R[0] and 8.2 in dst.R[0]


def test_time_augmented_states_cut_episodes():
    momdp = from_gymnasium("deep-sea-treasure-v0", gamma=GAMMA, time_limit="augment", max_episode_steps=2)
    assert all(name.startswith("t=") for name in momdp.state_names[:-1])
    # Only treasure 0.7 (one step down) is reachable within 2 steps (8.2 takes 3).
    assert ja.return_bounds(momdp).upper[0] == pytest.approx((1 - GAMMA) * 0.7, rel=1e-12)
    default = from_gymnasium("deep-sea-treasure-v0", gamma=GAMMA, time_limit="augment")
    assert default.info["max_episode_steps"] == 100


def test_p_table_matches_the_simulator_path():
    env = gymnasium.make("FrozenLake-v1")
    table = from_gymnasium_p(env.unwrapped.P, mu=env.unwrapped.initial_state_distrib, gamma=GAMMA)
    assert table.num_states == 17  # every table state plus the absorbing one
    via_env = from_gymnasium(env, gamma=GAMMA)
    pi_table = np.full((table.num_states, 4), 0.25)
    pi_env = np.full((via_env.num_states, 4), 0.25)
    np.testing.assert_allclose(table.returns(ja.occupancy_of_policy(table, pi_table)),
                               via_env.returns(ja.occupancy_of_policy(via_env, pi_env)), rtol=1e-12)


# ----------------------------------------------------------------------------- errors
def test_clear_errors():
    with pytest.raises(ValidationError, match="not a registered"):
        from_gymnasium("no-such-env-v0")
    with pytest.raises(ValidationError, match="max_states"):
        from_gymnasium("deep-sea-treasure-v0", max_states=10)
    with pytest.raises(ValidationError, match="global random"):
        from_gymnasium("four-room-v0")
    with pytest.raises(ValidationError, match="time_limit"):
        from_gymnasium("deep-sea-treasure-v0", time_limit="cut")
    with pytest.raises(ValidationError, match="gamma"):
        from_gymnasium("deep-sea-treasure-v0", gamma=1.0)
    with pytest.raises(ValidationError, match="Discrete"):
        from_gymnasium("mo-mountaincarcontinuous-v0")
    with pytest.raises(ValidationError, match="wrapper"):
        from_gymnasium(gymnasium.wrappers.TransformReward(gymnasium.make("CliffWalking-v1"), lambda r: 2 * r))
    with pytest.raises(ValidationError, match="P"):
        from_gymnasium_p({})


def test_unknown_environment_needs_state_attributes():
    class Coin(gymnasium.Env):
        """A two-state chain with a coin flip: stay with probability 0.3."""

        action_space = gymnasium.spaces.Discrete(2)
        observation_space = gymnasium.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.pos = 0
            return self.pos, {}

        def step(self, action):
            if self.np_random.random() >= 0.3:
                self.pos = 1 - self.pos
            return self.pos, float(self.pos + action), False, False, {}

    with pytest.raises(ValidationError, match="state="):
        from_gymnasium(Coin())
    momdp = from_gymnasium(Coin(), state=("pos",), gamma=GAMMA)
    assert momdp.num_states == 2
    np.testing.assert_allclose(momdp.P[0, 0], [0.3, 0.7], atol=1e-15)


# ----------------------------------------------------------------------------- Monte Carlo oracle
def rollout_returns(env_id: str, policy: dict, num: int, seed: int, horizon: int) -> np.ndarray:
    """Discounted episodic returns ``[num, n]`` of a stationary policy (state label -> action
    probabilities) in the real environment, truncated after ``horizon`` steps (GAMMA^horizon is
    negligible)."""
    env = gymnasium.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    out = []
    for episode in range(num):
        env.reset(seed=seed * 100_003 + episode)
        total, discount = 0.0, 1.0
        for _ in range(horizon):
            probs = policy[label_of(env)]
            _, reward, terminated, truncated, _ = env.step(int(rng.choice(len(probs), p=probs)))
            total = total + discount * np.asarray(reward, dtype=np.float64)
            discount *= GAMMA
            if terminated or truncated:
                break
        out.append(np.atleast_1d(total))
    return np.stack(out)


def label_of(env) -> str:
    if hasattr(env, "P"):
        return str(int(env.s))
    names = {"DeepSeaTreasure": ("current_state",), "FruitTreeEnv": ("current_state", "terminal"),
             "ResourceGathering": ("current_pos", "has_gold", "has_gem")}[type(env).__name__]
    parts = []
    for name in names:
        value = getattr(env, name)
        parts.append(f"{name}={tuple(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else value}")
    return " ".join(parts)


@pytest.mark.parametrize("env_id", MO_IDS + ["FrozenLake-v1", pytest.param("CliffWalking-v1", marks=pytest.mark.slow)])
def test_returns_match_monte_carlo_rollouts(converted, env_id):
    momdp = converted[env_id]
    rng = np.random.default_rng(1)
    pi = rng.dirichlet(np.ones(momdp.num_actions), size=momdp.num_states)
    exact = momdp.returns(ja.occupancy_of_policy(momdp, pi)) / (1 - GAMMA)
    policy = {name: pi[s] for s, name in enumerate(momdp.state_names)}
    samples = rollout_returns(env_id, policy, num=2000, seed=3, horizon=200)  # 0.9^200 ~ 7e-10
    mean, se = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert (np.abs(mean - exact) <= 3 * se + 1e-9).all(), (mean, exact, se)


# ----------------------------------------------------------------------------- rules
@pytest.mark.slow
@pytest.mark.parametrize("env_id", MO_IDS + TOY_IDS)
def test_every_rule_runs(converted, env_id):
    momdp = converted[env_id]
    if momdp.num_agents == 1:
        outcome = ja.rules.get("utilitarian")(momdp)
        assert outcome.returns[0] == pytest.approx(ja.return_bounds(momdp).upper[0], rel=1e-9, abs=1e-12)
        return
    sample = ja.sample(momdp, 300, seed=0)
    comparison = ja.compare(momdp, list(DEFAULT_RULES) + list(VOLUMETRIC_RULES), sample)
    assert not comparison.failures, comparison.failures
    for outcome in comparison.outcomes:
        assert ja.occupancy_polytope(momdp).contains(outcome.occupancy, tol=1e-7)


# ----------------------------------------------------------------------------- published fronts
@pytest.mark.parametrize("env_id", ["deep-sea-treasure-v0", "fruit-tree-v0"])
def test_published_front_is_exact(env_id):
    momdp = from_gymnasium(env_id, gamma=0.99)
    check = ja.check_front(momdp, published_front(env_id, 0.99), weights=32)
    assert check.matches, check.report()


def test_deep_sea_treasure_front_is_not_exact_at_low_gamma(converted):
    """At gamma = 0.9 several published treasures are dominated by mixtures of nearer ones."""
    check = ja.check_front(converted["deep-sea-treasure-v0"], published_front("deep-sea-treasure-v0", GAMMA))
    assert not check.matches and "dominated" in check.status and "beyond" not in check.status


def test_resource_gathering_front_is_discounted_once_too_often():
    momdp = from_gymnasium("resource-gathering-v0", gamma=0.99)
    published = published_front("resource-gathering-v0", 0.99)
    check = ja.check_front(momdp, published)
    assert not check.matches
    exact = check.front.returns / (1 - 0.99)
    np.testing.assert_allclose(exact[:, 1:].max(axis=0), [0.99**11, 0.99**9], rtol=1e-9)
    # The diamond-only and gold-only points are the exact ones times one factor gamma too many.
    for point in published:
        if point[0] == 0.0:
            k = int(np.argmax(point))
            assert point[k] == pytest.approx(0.99 * exact[:, k].max(), rel=1e-9)


# ----------------------------------------------------------------------------- command line
def test_cli_runs_a_gym_environment(capsys):
    from jaxagg.cli import main

    assert main(["run", "--env", "gym:deep-sea-treasure-v0", "--gamma", "0.95", "--rules", "leximin,nash", "--num-samples", "0",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MOMDP<deep-sea-treasure-v0: S=63, A=4, n=2, discounted(gamma=0.95)>" in out and "leximin" in out
    assert main(["run", "--env", "gym:no-such-env-v0"]) == 2
    assert "not a registered Gymnasium id" in capsys.readouterr().err


def test_cli_check_front(capsys):
    from jaxagg.cli import main

    assert main(["check-front", "gym:resource-gathering-v0"]) == 1
    out = capsys.readouterr().out
    assert "0.913517" in out and "0.904382" in out and "missing from the reference: (0, 0.842943, 0.842943)" in out
    assert main(["check-front", "deep-sea-treasure-v0"]) == 0
    assert "the reference equals the exact front" in capsys.readouterr().out
    assert main(["check-front", "gym:CliffWalking-v1"]) == 2
    assert "publishes no pareto_front" in capsys.readouterr().err


def test_missing_gymnasium_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ValidationError, match="not installed"):
        from_gymnasium("deep-sea-treasure-v0")
