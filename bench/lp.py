"""Time building O and solving one utilitarian LP on attention allocation instances.

    python bench/lp.py                 # (5,3), (6,3), (7,3); appends to bench/RESULTS.md
    python bench/lp.py --no-record --sizes 5,3 6,3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, publish

import jaxagg as ja
from jaxagg.solvers.polytope import _build_polytope
from jaxagg.solvers.program import OccupancyProgram


def best_of(repeats: int, function):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def bench_size(factories: int, phases: int, repeats: int, solver: str) -> list[str]:
    env_s, momdp = best_of(1, lambda: ja.envs.attention_allocation(factories, phases, seed=0))
    build_s, polytope = best_of(repeats, lambda: _build_polytope(momdp))
    # The utilitarian LP itself (the rule would also compute the 2n return-bound LPs to normalise).
    program = OccupancyProgram(polytope)
    lp_s, result = best_of(repeats, lambda: program.solve(momdp.reward_matrix.sum(axis=0), sense="max", solver=solver, what="utilitarian LP"))
    residual = polytope.residual(program.occupancy(result))
    return [f"({factories},{phases})", str(momdp.num_states), str(momdp.dim), str(polytope.E.nnz),
            f"{env_s:.3f}", f"{1000 * build_s:.1f}", f"{1000 * result.solve_time:.1f}", f"{1000 * lp_s:.1f}", f"{residual:.1e}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5,3", "6,3", "7,3"], help="factories,phases pairs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solver", default="choose", help="HiGHS solver: choose, simplex, ipm or pdlp")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    header = ["instance", "S", "S*A", "nnz(E)", "env build s", "O build ms", "HiGHS LP ms", "LP incl. assembly ms", "residual"]
    rows = []
    for size in args.sizes:
        factories, phases = (int(x) for x in size.split(","))
        rows.append(bench_size(factories, phases, args.repeats, args.solver))
        print("  ".join(rows[-1]), flush=True)
    publish(f"Occupancy polytope build + one utilitarian LP, HiGHS solver={args.solver} (median of {args.repeats})",
            markdown_table(header, rows), args.no_record)


if __name__ == "__main__":
    main()
