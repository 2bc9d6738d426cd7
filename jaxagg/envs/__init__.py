"""Environments: the paper's attention allocation, random (Garnet) MDPs, tiny exact cases, and
Gymnasium / MO-Gymnasium environments converted exactly (:mod:`jaxagg.envs.gym`)."""

from jaxagg.envs.attention import attention_allocation
from jaxagg.envs.garnet import garnet
from jaxagg.envs.gym import StateAccess, attribute_access, from_gymnasium, from_gymnasium_p, published_front
from jaxagg.envs.tiny import bandit, two_state_chain

ENVIRONMENTS = {"attention": attention_allocation, "garnet": garnet}

__all__ = ["ENVIRONMENTS", "StateAccess", "attention_allocation", "attribute_access", "bandit", "from_gymnasium",
           "from_gymnasium_p", "garnet", "published_front", "two_state_chain"]
