"""The ``uniform`` reference measure (SPEC §2): the volume measure on O's affine hull, sampled by
coordinate hit-and-run with rounding (many chains in JAX).

Preparation (solvers): the support and a relative-interior point from one LP, an orthonormal
basis of the affine hull. Rounding: a pilot run from the interior point, then the directions
become ``basis @ L`` with ``L L^T`` the pilot covariance in hull coordinates. Then a burn-in, and
``thin`` steps between kept samples. Diagnostics (split R-hat, ESS) are planned; until then,
choose ``thin`` well above the hull dimension when samples must be nearly independent (the
default ``thin = k`` was measured too small on a 3-dimensional simplex).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxagg.kernels.hit_and_run import run_chains
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.momdp import MOMDP
from jaxagg.solvers.interior import parametrise_hull
from jaxagg.solvers.polytope import occupancy_polytope
from jaxagg.validation import integer_at_least

DEFAULT_CHAINS = 32


def uniform_occupancies(
    momdp: MOMDP,
    num_samples: int,
    seed: int,
    *,
    chains: int = DEFAULT_CHAINS,
    thin: int | None = None,
    burn_in: int | None = None,
    precision: str = "float32",
) -> tuple[np.ndarray, dict]:
    """``[num_samples, S*A]`` points of the uniform measure on O and a dict of settings.

    Args:
        chains: chains run together (vmapped); samples are interleaved chain by chain.
        thin: steps between kept samples (default: the hull dimension k).
        burn_in: kept-sample periods dropped after rounding (default 10).
        precision: ``"float32"`` or ``"float64"`` chains.
    """
    with precision_scope(precision):
        return _run(momdp, num_samples, seed, chains, thin, burn_in, PRECISIONS[precision])


def _run(momdp, num_samples, seed, chains, thin, burn_in, dtype):
    """Pilot run (orthonormal basis) -> rounding by the pilot covariance -> burn-in -> samples."""
    chains = integer_at_least("chains", chains, 1)
    hull = parametrise_hull(occupancy_polytope(momdp))
    k = hull.dimension
    if k == 0:  # O is a single point
        return np.repeat(hull.center[None, :], num_samples, axis=0), {"chains": 0, "thin": 0, "burn_in": 0, "hull_dimension": 0}
    thin = k if thin is None else integer_at_least("thin", thin, 1)
    burn_in = 10 if burn_in is None else integer_at_least("burn_in", burn_in, 0)
    key = jax.random.key(seed)
    center = jnp.asarray(np.broadcast_to(hull.center[hull.support], (chains, hull.support.sum())), dtype)
    ids = jnp.arange(chains, dtype=jnp.uint32)
    # pilot run in the orthonormal basis, then round by the pilot covariance
    pilot, state = run_chains(jax.random.fold_in(key, 0), center, jnp.asarray(hull.basis, dtype), ids,
                              num_samples=max(20, 2 * k // chains + 1), thin=thin)
    u = (np.asarray(pilot, dtype=np.float64).reshape(-1, hull.support.sum()) - hull.center[hull.support]) @ hull.basis
    covariance = np.cov(u, rowvar=False).reshape(k, k) + 1e-12 * np.eye(k)
    directions = jnp.asarray(hull.basis @ np.linalg.cholesky(covariance), dtype)
    if burn_in:
        _, state = run_chains(jax.random.fold_in(key, 1), state, directions, ids, num_samples=burn_in, thin=thin)
    per_chain = math.ceil(num_samples / chains)
    samples, _ = run_chains(jax.random.fold_in(key, 2), state, directions, ids, num_samples=per_chain, thin=thin)
    x = np.asarray(samples, dtype=np.float64).transpose(1, 0, 2).reshape(-1, hull.support.sum())[:num_samples]
    d = np.zeros((num_samples, momdp.dim))
    d[:, hull.support] = x
    return d, {"chains": int(chains), "thin": int(thin), "burn_in": int(burn_in), "hull_dimension": int(k)}
