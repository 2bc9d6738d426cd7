"""Time building O and solving two LPs on attention allocation instances: the utilitarian LP
(one linear objective over O) and the egalitarian LP (max t with t <= J_i(d) for every agent:
O plus n rows and a variable, the shape of most rules' LPs).

    python bench/lp.py                       # (5,3), (6,3), (7,3); records in bench/RESULTS.md
    python bench/lp.py --no-record --sizes 5,3 6,3 --solver ipm
    python bench/lp.py --solver columns      # column generation with MDP pricing at every size
    python bench/lp.py --smoke               # (2,3), (3,3): seconds, not recorded

``--solver auto`` is jaxagg's default: column generation (jaxagg.solvers.columns) from S*A >=
its MIN_DIM, HiGHS interior point from IPM_MIN_DIM, else HiGHS's choice.

Checks, on every instance and LP: the occupancy lies in O (``max(|E d - b|, -min d) <= 1e-8``);
it is optimal, by an LP duality certificate (HiGHS: its row duals give reduced costs ``c - E^T y
<= 0`` and ``b^T y`` equal to the objective; column generation: its certified ``dual_bound``),
to a relative 1e-7; and the utilitarian objective is the return of the LP's policy under the
exact float64 policy -> occupancy map (relative 1e-7).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import Checks, add_common_arguments, progress_line, publish

import jaxagg as ja
from jaxagg.polytope import occupancy_of_policy, policy_from_occupancy
from jaxagg.solvers import columns
from jaxagg.solvers.highs import INF
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
    ("utilitarian LP ms", "lp_ms", ".1f"),
    ("egalitarian LP ms", "level_ms", ".1f"),
    ("how (utilitarian / egalitarian)", "how", ""),
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
    build_s, polytope = best_of(repeats, lambda: build_polytope(momdp.transitions, momdp.mu, momdp.gamma))
    options = {} if solver == "auto" else {"solver": solver}
    label = f"({factories},{phases})"
    if solver in ("auto", "columns"):  # compile the pricing kernels for this shape outside the clock
        OccupancyProgram(polytope).solve(momdp.reward_matrix[0], sense="max", what="warm-up LP", **options)
    # The utilitarian LP itself (the rule would also compute the 2n return-bound LPs to normalise).
    program = OccupancyProgram(polytope)
    cost = momdp.reward_matrix.sum(axis=0)
    lp_s, result = best_of(repeats, lambda: program.solve(cost, sense="max", what="utilitarian LP", **options))
    occupancy = program.occupancy(result)
    residual = polytope.residual(occupancy)
    check_optimal(checks, f"{label} utilitarian", momdp, polytope, cost, result, occupancy)
    checks.at_most(f"{label} residual of the LP's occupancy in O", residual, RESIDUAL_TOL)
    level, level_cost = egalitarian_program(polytope, momdp.reward_matrix)
    level_s, level_result = best_of(repeats, lambda: level.solve(level_cost, sense="max", what="egalitarian LP", **options))
    level_occupancy = level.occupancy(level_result)
    checks.at_most(f"{label} residual of the egalitarian occupancy in O", polytope.residual(level_occupancy), RESIDUAL_TOL)
    checks.at_most(f"{label} egalitarian level vs the worst return (relative)",
                   abs((momdp.reward_matrix @ level_occupancy).min() - level_result.objective) / max(1.0, abs(level_result.objective)),
                   OPTIMALITY_RTOL)
    if level_result.highs_status == "column-generation":
        check_certified(checks, f"{label} egalitarian", level_result)
    return {"instance": label, "factories": factories, "phases": phases, "S": momdp.num_states, "SA": momdp.dim,
            "nnz": int(polytope.E.nnz), "env_s": env_s, "build_ms": 1000 * build_s, "lp_ms": 1000 * lp_s,
            "level_ms": 1000 * level_s, "how": f"{how(result)} / {how(level_result)}", "residual": residual, "objective": result.objective,
            "level": level_result.objective, "messages": [result.message, level_result.message]}


def egalitarian_program(polytope, reward_matrix: np.ndarray) -> tuple[OccupancyProgram, np.ndarray]:
    """O plus a free level t and rows ``J_i(d) - t >= 0``; the cost that maximises t."""
    program = OccupancyProgram(polytope)
    (t,) = program.add_variables(1)
    program.add_rows(program.rows_in(reward_matrix, [t], -np.ones((reward_matrix.shape[0], 1))), lower=0.0, upper=INF)
    cost = np.zeros(program.num_cols)
    cost[t] = 1.0
    return program, cost


def how(result) -> str:
    """How a result was solved: ``HiGHS``, or ``CG k`` (column generation with k columns)."""
    if result.highs_status == "column-generation":
        return "CG " + result.message.split("column generation: ")[1].split(" ")[0]
    return "HiGHS"


def check_certified(checks: Checks, label: str, result) -> None:
    """Column generation's own certificate: its Lagrangian bound is within a relative 1e-7."""
    scale = max(1.0, abs(result.objective))
    checks.at_most(f"{label} certified gap (relative)", abs(result.dual_bound - result.objective) / scale, OPTIMALITY_RTOL)


def check_optimal(checks: Checks, label: str, momdp, polytope, cost: np.ndarray, result, occupancy: np.ndarray) -> None:
    """Optimality by duality (the dual of max c.d, E d = b, d >= 0 is min b.y, E^T y >= c), and
    the objective against the exact return of the LP's policy."""
    scale = max(1.0, abs(result.objective), float(np.abs(cost).max()))
    if result.highs_status == "column-generation":
        check_certified(checks, label, result)
    else:
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
    parser.add_argument("--solver", default="auto", choices=["auto", "columns", "choose", "simplex", "ipm", "pdlp"],
                        help=f"columns or a HiGHS solver; auto: jaxagg's default (column generation from S*A >= "
                             f"{columns.MIN_DIM}, ipm from {IPM_MIN_DIM}, else choose)")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        args.sizes, args.repeats = ["2,3", "3,3"], 1
    checks = Checks()
    rows = []
    for size in args.sizes:
        factories, phases = (int(x) for x in size.split(","))
        rows.append(bench_size(factories, phases, args.repeats, args.solver, checks))
        print(progress_line(COLUMNS, rows[-1]), flush=True)
    publish(args, "lp", f"Occupancy polytope build + the utilitarian and egalitarian LPs, solver={args.solver} "
                        f"(median of {args.repeats})",
            COLUMNS, rows, checks, extra={"solver": args.solver, "repeats": args.repeats})


if __name__ == "__main__":
    main()
