"""Environments: the paper's attention allocation, random Garnets and tiny exact cases."""

from jaxagg.envs.attention import attention_allocation
from jaxagg.envs.garnet import garnet
from jaxagg.envs.tiny import bandit, two_state_chain

ENVIRONMENTS = {"attention": attention_allocation, "garnet": garnet}

__all__ = ["ENVIRONMENTS", "attention_allocation", "bandit", "garnet", "two_state_chain"]
