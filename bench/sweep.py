"""Batched sampling across instances (issue 13, item 3): ``ja.sample_instances`` on many
same-shape instances against a Python loop of ``ja.sample``, same instances, same seeds.

Instances. ``--instances`` Garnets ``ja.envs.garnet(S, A, agents=n, seed=i)`` (default S = 50,
A = 4, n = 4, the garnet's default branching 2, average reward), instance seeds 0, 1, ... with
any instance that is not unichain for every full-support policy (which the average-reward policy
measure needs) skipped and counted; sample seed ``i`` for instance ``i``; ``--samples`` per
instance. Default precision (float32 kernels, float64 corrections), ``method="auto"`` (a dense LU
per policy at S <= 64).

Rows, each timed once on fresh MOMDP objects (the return bounds are cached per object, so a
fresh set pays for them again):

* ``end to end, compile included``: the first call in this process of each side (its
  compilation, the 2n bound LPs per instance, the sampling);
* ``end to end, compile excluded``: the same on a fresh set, after both sides have compiled;
* ``sampling only``: the same again with the bounds computed beforehand (``ja.return_bounds``,
  timed on its own in the ``bounds`` row): what the batching itself changes.

``max |Δ|``: the largest difference between the two sides' returns over every instance and
sample (the batched call is meant to be bit-identical: checked to be exactly 0), and relative to
the instance's return range. The machine may be shared with other jobs: timings are single runs.

    python bench/sweep.py                      # 1,000 Garnets x 2,000 samples; records
    python bench/sweep.py --instances 100 --no-record
    python bench/sweep.py --smoke              # 6 small Garnets x 64 samples: not recorded
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import Checks, add_common_arguments, publish

import jaxagg as ja
from jaxagg.polytope import is_unichain_for_full_support

COLUMNS = [
    ("work", "work", ""),
    ("loop of ja.sample (s)", "loop", ".2f"),
    ("ja.sample_instances (s)", "batched", ".2f"),
    ("speedup", "speedup", ".2f"),
    ("max |Δ return|", "diff", ".1e"),
    ("max |Δ| / range", "relative", ".1e"),
]


def instances(count: int, S: int, A: int, n: int) -> tuple[list, int]:
    """``count`` fresh Garnets (unichain for every full-support policy), and how many seeds were skipped."""
    momdps, skipped, seed = [], 0, 0
    while len(momdps) < count:
        momdp = ja.envs.garnet(S, A, agents=n, seed=seed)
        if is_unichain_for_full_support(momdp):
            momdps.append(momdp)
        else:
            skipped += 1
        seed += 1
    return momdps, skipped


def loop(momdps: list, N: int) -> list:
    return [ja.sample(momdp, N, seed=k) for k, momdp in enumerate(momdps)]


def batched(momdps: list, N: int) -> list:
    return ja.sample_instances(momdps, N, seeds=list(range(len(momdps))))


def timed(fn, *args):
    began = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - began


def compare(a: list, b: list) -> tuple[float, float]:
    """Largest |difference| of returns, absolute and relative to each agent's return range."""
    diff = max(float(np.max(np.abs(x.returns - y.returns))) for x, y in zip(a, b))
    relative = max(float(np.max(np.abs(x.returns - y.returns) / (x.max_returns - x.min_returns))) for x, y in zip(a, b))
    return diff, relative


def main() -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--agents", type=int, default=4)
    args = parser.parse_args()
    K, N, S, A, n = (6, 64, 10, 3, 3) if args.smoke else (args.instances, args.samples, args.states, args.actions, args.agents)
    checks = Checks()
    rows = []

    def row(work: str, loop_seconds: float | None, batched_seconds: float, a: list | None, b: list | None) -> None:
        diff, relative = compare(a, b) if a is not None else (None, None)
        rows.append({"work": work, "loop": loop_seconds, "batched": batched_seconds,
                     "speedup": loop_seconds / batched_seconds if loop_seconds else None, "diff": diff, "relative": relative})
        print(" | ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)

    first, skipped = instances(K, S, A, n)
    looped, loop_cold = timed(loop, first, N)
    first, _ = instances(K, S, A, n)
    together, batched_cold = timed(batched, first, N)
    row("end to end, compile included", loop_cold, batched_cold, looped, together)
    fresh, _ = instances(K, S, A, n)
    looped, loop_warm = timed(loop, fresh, N)
    fresh, _ = instances(K, S, A, n)
    together, batched_warm = timed(batched, fresh, N)
    row("end to end, compile excluded", loop_warm, batched_warm, looped, together)
    fresh, _ = instances(K, S, A, n)
    _, bounds = timed(lambda ms: [ja.return_bounds(m) for m in ms], fresh)
    rows.append({"work": f"bounds ({2 * n} LPs per instance, both sides)", "loop": bounds, "batched": bounds})
    looped, loop_sampling = timed(loop, fresh, N)
    together, batched_sampling = timed(batched, fresh, N)
    row("sampling only (bounds cached)", loop_sampling, batched_sampling, looped, together)
    for r in rows:
        if r.get("diff") is not None:
            checks.that(f"{r['work']}: batched returns bit-identical to ja.sample", r["diff"] == 0.0, r["diff"])
    checks.at_most("largest float64 residual", max(s.info["residual_max"] for s in together), 1e-6)
    checks.that("same engine record", all(x.info["evaluation"] == y.info["evaluation"] for x, y in zip(looped, together)))
    method = together[0].info["evaluation"]["method"]
    preface = (f"{K:,} Garnets (S={S}, A={A}, n={n}, branching 2, average reward; {skipped} non-unichain seeds skipped) "
               f"x {N:,} samples, float32 + float64 corrections, method {method!r}.")
    notes = ("Single runs on a machine that may be shared with other jobs. The batched call runs the instances of a "
             "group one after another inside one compiled call, with the per-policy arithmetic of ja.sample (that is "
             "what keeps it bit-identical): it saves dispatch and set-up per instance, not arithmetic.")
    publish(args, "sweep", f"Batched sampling across instances: {K:,} Garnets x {N:,} samples", COLUMNS, rows, checks,
            preface=preface, notes=notes, extra={"instances": K, "samples": N, "skipped": skipped})


if __name__ == "__main__":
    main()
