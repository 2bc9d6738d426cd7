"""What the uniform (hit-and-run) sampler needs of O: the coordinates that are not zero on all of
O, a relative-interior point, an orthonormal basis of O's affine hull, and a rounding of the body
(the analytic centre and the Hessian of the log barrier there: its Dikin ellipsoid)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from jaxagg.errors import ValidationError
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
    if polytope.multichain:
        raise ValidationError("polytope: expected O without auxiliary columns; the multichain formulation's O is a "
                              "projection, which this parametrisation does not cover")
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


ANALYTIC_CENTER_TOLERANCE = 1e-10
"""Newton decrement (squared, halved) at which the analytic centre is accepted."""


def analytic_center(hull: HullParametrisation, max_iterations: int = 100) -> tuple[np.ndarray, int]:
    """The analytic centre ``argmax sum_j log x_j`` over O ``[d]`` (zero off the support) and the
    Newton steps it took, by damped Newton from the LP's interior point.

    Why it rounds O: in the scaled coordinates ``y = x / x_c`` the barrier's Hessian at the centre,
    in an orthonormal basis of the scaled hull, is the identity, so the Dikin ellipsoid there is a
    unit ball: it lies in the scaled body, and the body lies in it times the number of
    coordinates. Each step solves the Newton system ``H s = -g``, which is the least-squares
    problem ``min_s |diag(1/x) basis s - 1|``: by Cholesky of ``H``, or by QR when ``H``
    is too ill-conditioned for Cholesky (its condition number reaches 1e16 on attention (5, 3)).
    The iterates stay strictly inside (95% of the way to the boundary at most, then halved until
    the barrier decreases enough).
    """
    basis = hull.basis
    x = hull.center[hull.support].copy()
    iteration = 0
    while iteration < max_iterations:
        iteration += 1
        weighted = basis / x[:, None]
        step = _newton_step(weighted)
        decrement = float(np.sum((weighted @ step) ** 2))  # = -gradient . step
        if decrement / 2 <= ANALYTIC_CENTER_TOLERANCE:
            break
        x = _barrier_line_search(x, basis @ step, decrement)
    center = np.zeros_like(hull.center)
    center[hull.support] = x
    return center, iteration


def _newton_step(weighted: np.ndarray) -> np.ndarray:
    """``argmin_s |weighted s - 1|`` for ``weighted [d, k]`` of full column rank."""
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(weighted.T @ weighted), weighted.sum(axis=0))
    except np.linalg.LinAlgError:
        q, r = np.linalg.qr(weighted)
        return scipy.linalg.solve_triangular(r, q.sum(axis=0))


def _barrier_line_search(x: np.ndarray, dx: np.ndarray, decrement: float) -> np.ndarray:
    """``x + a dx`` with ``a <= 1`` inside the positive orthant and an Armijo decrease of the barrier."""
    shrinking = dx < 0
    a = min(1.0, 0.95 * float(np.min(-x[shrinking] / dx[shrinking]))) if shrinking.any() else 1.0
    barrier = -np.log(x).sum()
    while a > 1e-12:
        candidate = x + a * dx
        if candidate.min() > 0 and -np.log(candidate).sum() <= barrier - 0.25 * a * decrement:
            return candidate
        a *= 0.5
    return x
