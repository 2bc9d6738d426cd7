"""Time building O and solving one utilitarian LP on attention allocation instances.

    python bench/lp.py                       # (5,3), (6,3), (7,3); records in bench/RESULTS.md
    python bench/lp.py --no-record --sizes 5,3 6,3 --solver ipm
    python bench/lp.py --smoke               # (2,3), (3,3): seconds, not recorded

Checks, on every instance: the LP's occupancy lies in O (``max(|E d - b|, -min d) <= 1e-8``); it
is optimal, by an LP duality certificate from HiGHS's row duals (reduced costs ``c - E^T y <= 0``
and ``b^T y`` equal to the objective, both to a relative 1e-7); and the objective is the return of
the LP's policy under the exact float64 policy -> occupancy map (relative 1e-7).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import Checks, add_common_arguments, progress_line, publish

import jaxagg as ja
from jaxagg.polytope import occupancy_of_policy, policy_from_occupancy
from jaxagg.solvers.polytope import build_polytope
from jaxagg.solvers.program import IPM_MIN_DIM, OccupancyProgram

RESIDUAL_TOL = 1e-8
OPTIMALITY_RTOL = 1e-7
COLUMNS = [
    ("instance", "instance", ""),
    ("S", "S", "d"),
    ("S*A", "SA", "d"),
    ("nnz(E)", "nnz", "d"),
    ("env build s", "env_s", ".3f"),
    ("O build ms", "build_ms", ".1f"),
    ("HiGHS LP ms", "highs_ms", ".1f"),
    ("LP incl. assembly ms", "lp_ms", ".1f"),
    ("residual", "residual", ".1e"),
]


def best_of(repeats: int, function):
    """Median wall time of ``repeats`` calls, and the last call's value."""
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def bench_size(factories: int, phases: int, repeats: int, solver: str, checks: Checks) -> dict:
    env_s, momdp = best_of(1, lambda: ja.envs.attention_allocation(factories, phases, seed=0))
    build_s, polytope = best_of(repeats, lambda: build_polytope(momdp.P, momdp.mu, momdp.gamma))
    # The utilitarian LP itself (the rule would also compute the 2n return-bound LPs to normalise).
    program = OccupancyProgram(polytope)
    cost = momdp.reward_matrix.sum(axis=0)
    options = {} if solver == "auto" else {"solver": solver}
    lp_s, result = best_of(repeats, lambda: program.solve(cost, sense="max", what="utilitarian LP", **options))
    occupancy = program.occupancy(result)
    residual = polytope.residual(occupancy)
    label = f"({factories},{phases})"
    check_optimal(checks, label, momdp, polytope, cost, result, occupancy)
    checks.at_most(f"{label} residual of the LP's occupancy in O", residual, RESIDUAL_TOL)
    return {"instance": label, "factories": factories, "phases": phases, "S": momdp.num_states, "SA": momdp.dim,
            "nnz": int(polytope.E.nnz), "env_s": env_s, "build_ms": 1000 * build_s, "highs_ms": 1000 * result.solve_time,
            "lp_ms": 1000 * lp_s, "residual": residual, "objective": result.objective}


def check_optimal(checks: Checks, label: str, momdp, polytope, cost: np.ndarray, result, occupancy: np.ndarray) -> None:
    """Optimality by duality (the dual of max c.d, E d = b, d >= 0 is min b.y, E^T y >= c), and
    the objective against the exact return of the LP's policy."""
    scale = max(1.0, abs(result.objective), float(np.abs(cost).max()))
    y = result.row_duals
    checks.that(f"{label} HiGHS returned row duals", y is not None)
    reduced = cost - polytope.E.T @ y
    checks.at_most(f"{label} largest reduced cost c - E^T y (relative)", reduced.max() / scale, OPTIMALITY_RTOL)
    checks.at_most(f"{label} duality gap |b^T y - objective| (relative)", abs(polytope.b @ y - result.objective) / scale,
                   OPTIMALITY_RTOL)
    checks.at_most(f"{label} |c.d - objective| (relative)", abs(cost @ occupancy - result.objective) / scale, OPTIMALITY_RTOL)
    policy = policy_from_occupancy(occupancy, momdp.num_states, momdp.num_actions)
    exact = cost @ occupancy_of_policy(momdp, policy)
    checks.at_most(f"{label} |exact return of the LP's policy - objective| (relative)", abs(exact - result.objective) / scale,
                   OPTIMALITY_RTOL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5,3", "6,3", "7,3"], help="factories,phases pairs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solver", default="auto", choices=["auto", "choose", "simplex", "ipm", "pdlp"],
                        help=f"HiGHS solver; auto: jaxagg's default (ipm from S*A >= {IPM_MIN_DIM}, else choose)")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        args.sizes, args.repeats = ["2,3", "3,3"], 1
    checks = Checks()
    rows = []
    for size in args.sizes:
        factories, phases = (int(x) for x in size.split(","))
        rows.append(bench_size(factories, phases, args.repeats, args.solver, checks))
        print(progress_line(COLUMNS, rows[-1]), flush=True)
    publish(args, "lp", f"Occupancy polytope build + one utilitarian LP, HiGHS solver={args.solver} (median of {args.repeats})",
            COLUMNS, rows, checks, extra={"solver": args.solver, "repeats": args.repeats})


if __name__ == "__main__":
    main()
