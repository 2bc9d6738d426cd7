"""jaxagg: policy aggregation on the state-action occupancy polytope.

>>> import jaxagg as ja
>>> momdp = ja.envs.attention_allocation(factories=5, phases=3, seed=0)
>>> outcome = ja.rules.get("leximin")(momdp)
>>> print(ja.compare(momdp).table())
"""

from jaxagg import envs, errors, metrics, rules
from jaxagg.momdp import MOMDP, from_mdptoolbox, load, to_mdptoolbox
from jaxagg.report import Comparison, compare
from jaxagg.rules import Outcome
from jaxagg.solvers.polytope import (
    occupancy_of_policy,
    occupancy_polytope,
    policy_from_occupancy,
    return_bounds,
)

__version__ = "0.1.0"

__all__ = [
    "MOMDP",
    "Comparison",
    "Outcome",
    "compare",
    "envs",
    "errors",
    "from_mdptoolbox",
    "load",
    "metrics",
    "occupancy_of_policy",
    "occupancy_polytope",
    "policy_from_occupancy",
    "return_bounds",
    "rules",
    "to_mdptoolbox",
]
