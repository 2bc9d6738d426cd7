"""Time the 2n return bounds by batched policy iteration (``jaxagg.solvers.mdp``) against the 2n LPs.

    python bench/bounds.py                   # attention (5,3) (6,3) (7,3) Kronecker; garnet 1e3, 1e4 sparse
    python bench/bounds.py --no-record --garnet 1000 10000 100000 --lp-max-states 729
    python bench/bounds.py --smoke           # toy sizes, seconds, not recorded

Each row runs in a fresh child process (so that its peak resident memory, ``ru_maxrss``, is its
own; it includes the Python + JAX baseline). Policy iteration runs twice: the first call includes
compiling the program, the second is the solve alone. Attention instances are
``ja.envs.attention_allocation``'s own (its Kronecker operator; no dense ``P``); garnets draw
``branching`` successors per (s, a) uniformly (duplicates merged) with Dirichlet(1)
probabilities, rewards uniform on [0, 1], uniform ``mu``, average reward.

Checks, per row: every one of the 2n MDPs certified (gap <= tol * half the reward range) with its
occupancy in O to 1e-9; where the LP runs (``S <= --lp-max-states``), every bound equals the LP's
to 1e-7 of the agent's return range.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import numpy as np
from common import Checks, add_common_arguments, progress_line, publish

import jaxagg as ja
from jaxagg.kernels import transitions as T
from jaxagg.solvers import mdp
from jaxagg.solvers.polytope import build_polytope
from jaxagg.solvers.program import return_bounds

LP_RTOL = 1e-7
COLUMNS = [
    ("instance", "instance", ""),
    ("operator", "operator", ""),
    ("S", "S", "d"),
    ("S*A", "SA", "d"),
    ("MDPs", "K", "d"),
    ("PI s (1st call, incl. compile)", "pi_first_s", ".2f"),
    ("PI s", "pi_s", ".3f"),
    ("evaluations (max)", "evaluations", "d"),
    ("max gap / scale", "gap", ".1e"),
    ("peak RSS MB", "rss_mb", ".0f"),
    ("LP s (2n LPs)", "lp_s", ".2f"),
    ("max abs(PI - LP) / range", "lp_diff", ".1e"),
]


def attention_instance(factories: int, phases: int, seed: int = 0):
    """Kronecker operator, mu, reward matrix [n, S*A] and gamma of ``attention_allocation(factories,
    phases, seed=seed)`` (the environment builds its Kronecker factors; no dense P)."""
    m = ja.envs.attention_allocation(factories, phases, seed=seed)
    return m.transitions, m.mu, m.reward_matrix, m.gamma


def garnet_instance(states: int, actions: int = 4, branching: int = 5, agents: int = 3, seed: int = 0):
    """Sparse garnet: successor lists drawn with numpy (never a dense P)."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, states, size=(states, actions, branching))
    probabilities = rng.dirichlet(np.ones(branching), size=(states, actions))
    R = rng.random((agents, states * actions))
    return T.sparse_transitions(successors, probabilities), np.full(states, 1.0 / states), R, None


def run_row(spec: tuple, lp_max_states: int) -> dict:
    """One row, in a child process."""
    kind, size = spec
    start = time.perf_counter()
    if kind == "attention":
        op, mu, R, gamma = attention_instance(*size)
        label = f"attention ({size[0]},{size[1]})"
    else:
        op, mu, R, gamma = garnet_instance(size)
        label = f"garnet S={size:g}"
    build_s = time.perf_counter() - start
    S, A = T.shape_of(op)
    n = R.shape[0]
    rewards = np.concatenate([R, -R]).reshape(2 * n, S, A)
    start = time.perf_counter()
    mdp.solve_mdps(op, rewards, mu, gamma)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    solved = mdp.solve_mdps(op, rewards, mu, gamma)
    pi_s = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scale = np.where(solved.scale > 0, solved.scale, 1.0)
    row = {"instance": label, "operator": T.form_of(op), "S": S, "SA": S * A, "K": 2 * n, "build_s": build_s, "pi_first_s": first_s,
           "pi_s": pi_s, "evaluations": int(solved.iterations.max() + solved.mixes.max()), "mixes": int(solved.mixes.sum()),
           "gap": float((solved.gap / scale).max()), "certified": int(solved.certified.sum()),
           "residual": float(solved.residual.max()), "rss_mb": rss_mb, "lp_s": None, "lp_diff": None}
    if lp_max_states >= S:
        start = time.perf_counter()
        lp = return_bounds(build_polytope(op, mu, gamma), R)
        row["lp_s"] = time.perf_counter() - start
        span = np.maximum(lp.upper - lp.lower, 1e-12)
        row["lp_diff"] = float(max((np.abs(solved.value[:n] - lp.upper) / span).max(),
                                   (np.abs(-solved.value[n:] - lp.lower) / span).max()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attention", nargs="*", default=["5,3", "6,3", "7,3"], help="factories,phases pairs")
    parser.add_argument("--garnet", nargs="*", type=int, default=[1000, 10000], help="garnet state counts")
    parser.add_argument("--lp-max-states", type=int, default=1000, help="run the LPs up to this many states")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        args.attention, args.garnet = ["2,3", "3,3"], [50]
    specs = [("attention", tuple(int(x) for x in size.split(","))) for size in args.attention]
    specs += [("garnet", states) for states in args.garnet]
    checks = Checks()
    rows = []
    context = multiprocessing.get_context("spawn")
    for spec in specs:
        with context.Pool(1) as pool:
            row = pool.apply(run_row, (spec, args.lp_max_states))
        rows.append(row)
        print(progress_line(COLUMNS, row), flush=True)
        label = row["instance"]
        checks.at_least(f"{label}: certified MDPs (of {row['K']})", row["certified"], row["K"])
        checks.at_most(f"{label}: largest gap / scale", row["gap"], mdp.TOL)
        checks.at_most(f"{label}: largest membership residual in O", row["residual"], mdp.FEASIBILITY_TOL)
        if row["lp_diff"] is not None:
            checks.at_most(f"{label}: largest |PI - LP| / return range", row["lp_diff"], LP_RTOL)
    publish(args, "bounds", "Return bounds: batched policy iteration (certified) vs the 2n LPs", COLUMNS, rows, checks,
            notes="PI s: the 2n MDPs in one solve_mdps call, after a first call that compiled the program. "
                  "peak RSS: the row's child process, Python and JAX included.")


if __name__ == "__main__":
    main()
