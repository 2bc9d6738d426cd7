"""Aggregation rules: one module per family, one registry.

>>> import jaxagg as ja
>>> ja.rules.names()            # every registered rule
>>> ja.rules.get("leximin")(momdp)
"""

from jaxagg.rules import approval, borda, quantile, tune, veto, welfare  # noqa: F401  (register their rules)
from jaxagg.rules.outcome import Outcome, SolverStats
from jaxagg.rules.registry import Rule, get, names, register
from jaxagg.rules.quantile import max_quantile
from jaxagg.rules.welfare import egalitarian, leximin, nash, utilitarian

__all__ = ["Outcome", "Rule", "SolverStats", "egalitarian", "get", "leximin", "max_quantile", "nash", "names", "register", "utilitarian"]
