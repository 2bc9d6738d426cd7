"""MIP starts for the MILP rules (approval, Borda): a starting occupancy, from the gradient tuner
or given, lifted to the MILP's columns (occupancy and the binaries its returns switch on)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.polytope import occupancy_polytope
from jaxagg.rules.gradient import certified_ascent
from jaxagg.rules.outcome import Outcome
from jaxagg.samples import ReturnSample
from jaxagg.solvers.program import OccupancyProgram
from jaxagg.validation import finite_array

START_FEASIBILITY_TOL = 1e-9
"""Largest violation (rows, bounds, integrality) of a start handed to HiGHS."""


def start_occupancy(momdp: MOMDP, sample: ReturnSample, start: Any, objective: str, q: float = 0.9) -> tuple[np.ndarray, dict]:
    """A starting occupancy ``[S*A]`` and what it is: ``start="tune"`` runs the gradient tuner
    with ``objective`` (default options); an :class:`Outcome` or an occupancy ``[S*A]`` in O is
    used as given."""
    if isinstance(start, str):
        if start != "tune":
            raise ValidationError(f"start: expected 'tune', an Outcome or an occupancy [S*A], got {start!r}")
        tuned = certified_ascent(momdp, sample, objective=objective, q=q)
        return tuned.occupancy, {"source": f"tune-{objective}", "tune_seconds": tuned.info["tune_seconds"],
                                 "tune_value": tuned.info["value"]}
    if isinstance(start, Outcome):
        return start.occupancy, {"source": start.rule}
    d = finite_array("start", start, 1)
    polytope = occupancy_polytope(momdp)
    if d.shape != (polytope.dim,) or not polytope.contains(d):
        raise ValidationError(f"start: expected an occupancy of {polytope.dim} entries (S*A) in O, got shape {d.shape}"
                              + ("" if d.shape != (polytope.dim,) else f" off O by {polytope.residual(d):.3g}"))
    return d, {"source": "occupancy"}


def mip_start(program: OccupancyProgram, momdp: MOMDP, sample: ReturnSample, start: Any, objective: str,
              binaries: np.ndarray, targets: np.ndarray, weight: float = 1.0, q: float = 0.9) -> tuple[np.ndarray | None, dict]:
    """A MIP start ``[num_cols]`` for ``program`` (or ``None`` when it is infeasible) and a
    report of it.

    Args:
        program: the MILP, whose first ``S*A`` columns are the occupancy (then O's auxiliary
            columns, filled by :meth:`~jaxagg.solvers.polytope.OccupancyPolytope.lift`).
        start: what :func:`start_occupancy` takes.
        objective: the tuner's objective when ``start="tune"``.
        binaries: ``[n, ...]`` column indices of the binaries; binary ``[i, ...]`` is switched on
            iff agent i's return reaches ``targets[i, ...]`` (same shape).
        weight: the MILP's objective coefficient of every binary (``milp_score`` in the report).

    The report: the start's ``source``, ``milp_score`` (its MILP objective) and ``feasible``.
    """
    d0, report = start_occupancy(momdp, sample, start, objective, q)
    returns = momdp.returns(d0).reshape((-1,) + (1,) * (np.ndim(targets) - 1))
    x = program.lift(d0)  # with O's auxiliary columns and defined variables, if any
    x[binaries] = returns >= targets
    report.update(milp_score=float(weight * x[binaries].sum()), feasible=program.violation(x) <= START_FEASIBILITY_TOL)
    return (x if report["feasible"] else None), report
