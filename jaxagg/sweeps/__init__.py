"""Batched sweeps: a grid over instances, samples, rules and methods, stored in SQLite,
resumable, on a local process pool or a Ray cluster.

>>> import jaxagg as ja
>>> results = ja.sweep({"instances": [{"env": "garnet", "states": 20, "seed": {"start": 0, "count": 10}}],
...                     "sample": {"num_samples": 2000}, "rules": ["leximin", "max-quantile"]},
...                    store="results.db")
>>> print(results.table(metric="min"))

Modules: :mod:`~jaxagg.sweeps.spec` (the spec and its cells), :mod:`~jaxagg.sweeps.store` (the
SQLite tables), :mod:`~jaxagg.sweeps.work` (one cell), :mod:`~jaxagg.sweeps.executors` (local
pool, Ray), :mod:`~jaxagg.sweeps.run` (the driver), :mod:`~jaxagg.sweeps.results` (reading,
export, plots).
"""

from jaxagg.sweeps.results import SweepResults
from jaxagg.sweeps.run import plan, sweep
from jaxagg.sweeps.spec import Cell, SweepSpec, load_spec
from jaxagg.sweeps.store import METRICS, Store

__all__ = ["METRICS", "Cell", "Store", "SweepResults", "SweepSpec", "load_spec", "plan", "sweep"]
