"""Aggregation rules: shared machinery in :mod:`~jaxagg.rules.base` and
:mod:`~jaxagg.rules.completion`, one module per family, one registry.

>>> import jaxagg as ja
>>> ja.rules.names()                      # every registered rule
>>> ja.rules.names(needs_sample=False)    # the welfare baselines
>>> ja.rules.get("leximin")(momdp)        # run one (through the registry's door)
>>> help(ja.rules.get("borda"))           # its metadata and options

The names exported below (``ja.rules.leximin``, ``ja.rules.max_quantile``, ...) are the
registered rules themselves, so that every call passes the registry's door.
"""

from jaxagg.rules import approval, borda, gradient, quantile, veto, welfare  # noqa: F401  (they register their rules)
from jaxagg.rules.outcome import Outcome, SolverStats
from jaxagg.rules.registry import Rule, get, names, register

egalitarian = get("egalitarian")
leximin = get("leximin")
max_quantile = get("max-quantile")
nash = get("nash")
utilitarian = get("utilitarian")

__all__ = ["Outcome", "Rule", "SolverStats", "egalitarian", "get", "leximin", "max_quantile", "nash", "names", "register",
           "utilitarian"]
