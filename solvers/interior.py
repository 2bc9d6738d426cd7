"""What the uniform (hit-and-run) sampler needs of O: the coordinates that are not zero on all of
O, a relative-interior point, and an orthonormal basis of O's affine hull."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from jaxagg.solvers.highs import INF, solve
from jaxagg.solvers.polytope import OccupancyPolytope


@dataclass(frozen=True, eq=False)
class HullParametrisation:
    """O = {x : x[~support] = 0, x[support] = center[support] + basis @ u >= 0}.

    Attributes:
        support: ``[d]`` bool, the coordinates positive somewhere on O.
        center: ``[d]`` a relative-interior point (every support coordinate > 0).
        basis: ``[d_s, k]`` orthonormal basis of the null space of ``E[:, support]``.
    """

    support: np.ndarray
    center: np.ndarray
    basis: np.ndarray

    @property
    def dimension(self) -> int:
        return self.basis.shape[1]


def parametrise_hull(polytope: OccupancyPolytope) -> HullParametrisation:
    """Support and interior point from one LP, basis from an SVD.

    With ``x = z / tau``: ``max sum y  s.t.  E z = tau b, 0 <= y <= z, y <= 1, tau >= 1`` sets
    ``y_j = 1`` exactly on the coordinates that can be positive (O is convex, so all of them at
    once, and scaling by ``tau`` lifts each to 1), and ``z / tau`` is then in O's relative interior.
    """
    E, b, d = polytope.E, polytope.b, polytope.dim
    m = E.shape[0]
    identity = sp.identity(d, format="csc")
    matrix = sp.vstack([
        sp.hstack([E, sp.csc_matrix(-b[:, None]), sp.csc_matrix((m, d))]),
        sp.hstack([-identity, sp.csc_matrix((d, 1)), identity]),
    ], format="csc")
    cost = np.concatenate([np.zeros(d + 1), np.ones(d)])
    lower_cols = np.concatenate([np.zeros(d), [1.0], np.zeros(d)])
    upper_cols = np.concatenate([np.full(d, INF), [INF], np.ones(d)])
    result = solve(cost, matrix, np.concatenate([np.zeros(m), np.full(d, -INF)]), np.zeros(m + d),
                   lower_cols, upper_cols, sense="max", what="relative-interior LP")
    z, tau, y = result.x[:d], result.x[d], result.x[d + 1:]
    support = y > 0.5
    center = np.where(support, np.clip(z / tau, 0.0, None), 0.0)
    basis = scipy.linalg.null_space(E[:, support].toarray())
    return HullParametrisation(support=support, center=center, basis=basis)
