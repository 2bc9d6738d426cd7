"""Exact and gradient optimisation over the occupancy polytope (installed as ``jaxagg.solvers``)."""
