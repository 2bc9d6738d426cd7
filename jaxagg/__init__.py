"""jaxagg: policy aggregation on the state-action occupancy polytope.

>>> import jaxagg as ja
>>> momdp = ja.envs.attention_allocation(factories=5, phases=3, seed=0)
>>> outcome = ja.rules.get("leximin")(momdp)
>>> print(ja.compare(momdp).table())
"""

import os as _os

# An installed jaxagg has kernels/ and solvers/ inside it (setuptools package-dir mapping). When
# this folder is imported straight from a source checkout (say, Python started in the repository
# root), they sit beside it: let the package find them there too.
_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "solvers")) and _os.path.isdir(_os.path.join(_here, "..", "solvers")):
    __path__.append(_os.path.dirname(_here))

from jaxagg import envs, errors, metrics, rules, samples, sweeps  # noqa: E402
from jaxagg.momdp import MOMDP, from_mdptoolbox, load, to_mdptoolbox  # noqa: E402
from jaxagg.pareto import ParetoFront, check_front, pareto_front  # noqa: E402
from jaxagg.polytope import (  # noqa: E402
    occupancy_of_policy,
    occupancy_polytope,
    policy_from_occupancy,
    return_bounds,
    standard_form,
)
from jaxagg.report import Comparison, compare  # noqa: E402
from jaxagg.rules import Outcome  # noqa: E402
from jaxagg.rules.gradient import tune  # noqa: E402
from jaxagg.samples import ReturnSample, load_sample  # noqa: E402
from jaxagg.sampling import extend, merge_samples, sample, sample_instances, sample_occupancies, split_ranges  # noqa: E402
from jaxagg.sweeps import sweep  # noqa: E402
from jaxagg.version import __version__ as __version__  # noqa: E402

__all__ = [
    "MOMDP",
    "Comparison",
    "Outcome",
    "ParetoFront",
    "check_front",
    "compare",
    "envs",
    "errors",
    "extend",
    "load_sample",
    "merge_samples",
    "samples",
    "sweep",
    "sweeps",
    "sample_instances",
    "sample_occupancies",
    "ReturnSample",
    "sample",
    "split_ranges",
    "from_mdptoolbox",
    "load",
    "metrics",
    "occupancy_of_policy",
    "occupancy_polytope",
    "pareto_front",
    "policy_from_occupancy",
    "return_bounds",
    "rules",
    "standard_form",
    "to_mdptoolbox",
    "tune",
]
