"""Aggregation rules: one module per family, one registry.

>>> import jaxagg as ja
>>> ja.rules.names()            # every registered rule
>>> ja.rules.get("leximin")(momdp)
"""

from jaxagg.rules import welfare  # noqa: F401  (registers the welfare rules)
from jaxagg.rules.outcome import Outcome, SolverStats
from jaxagg.rules.registry import Rule, get, names, register
from jaxagg.rules.welfare import egalitarian, leximin, nash, utilitarian

__all__ = ["Outcome", "Rule", "SolverStats", "egalitarian", "get", "leximin", "nash", "names", "register", "utilitarian"]
