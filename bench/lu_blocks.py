"""The CPU block of the dense-LU sampling path (``jaxagg.kernels.returns.CPU_LU_BLOCK``):
``ja.sample`` policies/s on small instances (the LU is ``method="auto"``'s choice up to 64 states)
for each ``--blocks`` block, best of ``--repeats`` after a compiling call, bounds computed first.

Instances: Garnets (20, 3) and (50, 4) (average reward, n = 3 and 4), attention (3, 3), and a
discounted Garnet (64, 4) (gamma 0.95). ``--samples`` policies per timing (default 16,384).

Checks: every sample meets the float64 residual tolerance, and the returns at each block agree
with the first block's to 1e-6 of each agent's return range (a block changes rounding only).

    python bench/lu_blocks.py                   # records
    python bench/lu_blocks.py --blocks 32 128 --no-record
    python bench/lu_blocks.py --smoke           # two tiny instances, 256 samples: not recorded
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import Checks, add_common_arguments, publish

import jaxagg as ja
from jaxagg.kernels.returns import CPU_LU_BLOCK

COLUMNS = [
    ("instance", "instance", ""),
    ("S", "states", "d"),
    ("block", "block", "d"),
    ("N", "samples", "d"),
    ("policies/s", "rate", ".4g"),
    ("vs first block", "ratio", ".2f"),
    ("max residual", "residual", ".1e"),
    ("max |Δ return| / range vs first block", "difference", ".1e"),
]


def instances(smoke: bool) -> list[tuple[str, ja.MOMDP]]:
    if smoke:
        return [("garnet (8, 3)", ja.envs.garnet(8, 3, agents=2, seed=0)), ("attention (2, 3)", ja.envs.attention_allocation(2, 3))]
    return [("garnet (20, 3)", ja.envs.garnet(20, 3, agents=3, seed=0)),
            ("attention (3, 3)", ja.envs.attention_allocation(3, 3)),
            ("garnet (50, 4)", ja.envs.garnet(50, 4, agents=4, seed=0)),
            ("garnet (64, 4), discounted", ja.envs.garnet(64, 4, agents=4, seed=0, criterion="discounted", gamma=0.95))]


def best_rate(momdp: ja.MOMDP, samples: int, block: int, repeats: int) -> tuple[float, ja.ReturnSample]:
    """Best policies/s of ``ja.sample(momdp, samples, seed=1, method="lu", block=block)`` and its sample."""
    ja.sample(momdp, block, seed=0, method="lu", block=block)  # compiles
    best, sample = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        sample = ja.sample(momdp, samples, seed=1, method="lu", block=block)
        best = min(best, time.perf_counter() - began)
    return samples / best, sample


def main() -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--blocks", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    samples, repeats = (256, 1) if args.smoke else (args.samples, args.repeats)
    checks, rows = Checks(), []
    for name, momdp in instances(args.smoke):
        span = ja.return_bounds(momdp).span  # computed before the timings
        first = None
        for block in args.blocks:
            rate, sample = best_rate(momdp, samples, block, repeats)
            first = first or (rate, sample)
            difference = float(np.max(np.abs(sample.returns - first[1].returns) / span))
            rows.append({"instance": name, "states": momdp.num_states, "block": block, "samples": samples, "rate": rate,
                         "ratio": rate / first[0], "residual": sample.info["residual_max"], "difference": difference})
            print(" | ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
            checks.at_most(f"{name}, block {block}: largest float64 residual", sample.info["residual_max"], 1e-6)
            checks.at_most(f"{name}, block {block}: returns vs block {args.blocks[0]}, per range", difference, 1e-6)
    notes = (f"`method=\"lu\"` (float32 LU per policy, float64 corrections), one lane (LAPACK calls cannot overlap). "
             f"The shipped CPU block is {CPU_LU_BLOCK}.")
    publish(args, "lu-blocks", "Dense-LU sampling on a CPU: policies/s by block", COLUMNS, rows, checks, notes=notes)


if __name__ == "__main__":
    main()
