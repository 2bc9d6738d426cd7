"""Named tiny instances and samples, shared by the whole test session.

Instances (MOMDPs) and samples (ReturnSamples) are immutable, so one of each per session is safe
to share; each is built on first use. Instances:

    bandit               3 arms, 2 agents (one state; O is the simplex over arms)
    chain_average        two_state_chain(0.8), average reward
    chain_discounted     two_state_chain(0.8), discounted, gamma = 0.9
    garnet_average       garnet(6, 3, 2, agents=3, seed=0), average reward
    garnet_discounted    the same, discounted, gamma = 0.9
    garnet_multichain    garnet(6, 3, 1, agents=3, seed=5), average reward: two maximal end
                         components (O is the multichain formulation; most rules need a policy
                         mixture), every full-support policy unichain (the policy measure works)
    attention_2_3        attention_allocation(2, 3, seed=0): S = 9, A = 3, n = 2
    attention_3_3        attention_allocation(3, 3, seed=0): S = 27, A = 4, n = 3

Samples of the policy measure, ``<instance>_sample``: ``ja.sample(m, N, seed=0)``, float64 for
the tiny instances (where tests compare ranks against oracles), float32 (the default) for
attention.
"""

import numpy as np
import pytest

import jaxagg as ja

BANDIT_REWARDS = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
"""Agent 0 likes arm 0, agent 1 arm 1; arm 2 gives both what the even mix of arms 0 and 1 gives."""


# ------------------------------------------------------------------ instances
@pytest.fixture(scope="session")
def bandit():
    return ja.envs.bandit(BANDIT_REWARDS)


@pytest.fixture(scope="session")
def chain_average():
    return ja.envs.two_state_chain(0.8)


@pytest.fixture(scope="session")
def chain_discounted():
    return ja.envs.two_state_chain(0.8, criterion="discounted", gamma=0.9)


@pytest.fixture(scope="session")
def garnet_average():
    return ja.envs.garnet(6, 3, 2, 3, seed=0)


@pytest.fixture(scope="session")
def garnet_discounted():
    return ja.envs.garnet(6, 3, 2, 3, seed=0, criterion="discounted", gamma=0.9)


@pytest.fixture(scope="session")
def garnet_multichain():
    return ja.envs.garnet(6, 3, 1, 3, seed=5)


@pytest.fixture(scope="session")
def attention_2_3():
    return ja.envs.attention_allocation(2, 3, seed=0)


@pytest.fixture(scope="session")
def attention_3_3():
    return ja.envs.attention_allocation(3, 3, seed=0)


# -------------------------------------------------------------------- samples
@pytest.fixture(scope="session")
def bandit_sample(bandit):
    return ja.sample(bandit, 2000, seed=0, precision="float64")


@pytest.fixture(scope="session")
def chain_average_sample(chain_average):
    return ja.sample(chain_average, 500, seed=0, precision="float64")


@pytest.fixture(scope="session")
def chain_discounted_sample(chain_discounted):
    return ja.sample(chain_discounted, 500, seed=0, precision="float64")


@pytest.fixture(scope="session")
def garnet_average_sample(garnet_average):
    return ja.sample(garnet_average, 1000, seed=0, precision="float64")


@pytest.fixture(scope="session")
def garnet_discounted_sample(garnet_discounted):
    return ja.sample(garnet_discounted, 1000, seed=0, precision="float64")


@pytest.fixture(scope="session")
def garnet_multichain_sample(garnet_multichain):
    return ja.sample(garnet_multichain, 1000, seed=0, precision="float64")


@pytest.fixture(scope="session")
def attention_2_3_sample(attention_2_3):
    return ja.sample(attention_2_3, 500, seed=0)


@pytest.fixture(scope="session")
def attention_3_3_sample(attention_3_3):
    return ja.sample(attention_3_3, 500, seed=0)

