"""Time every rule on attention allocation with a large `policy` sample (sampling excluded).

    python bench/rules.py                                  # (5,3) base, seed 0, 5e5 samples
    python bench/rules.py --samples s.npz --no-record      # reuse a sample from `jaxagg sample`

The return-bound LPs (2n, cached per instance) are computed before the clock starts, since
every rule shares them; each rule's row is its own wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, publish

import jaxagg as ja
from jaxagg.report import DEFAULT_RULES, VOLUMETRIC_RULES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factories", type=int, default=5)
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=500_000)
    parser.add_argument("--samples", help="a sample file of this instance (skips sampling)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    momdp = ja.envs.attention_allocation(args.factories, args.phases, seed=0)
    if args.samples:
        sample = ja.load_sample(args.samples)
    else:
        sample = ja.sample(momdp, args.num_samples, seed=0, progress=True)
        print(f"sampled {sample.num_samples} in {sample.info['seconds']:.1f} s", flush=True)
    began = time.perf_counter()
    ja.return_bounds(momdp)
    bounds_s = time.perf_counter() - began
    rows, total = [], 0.0
    for name in DEFAULT_RULES + VOLUMETRIC_RULES:
        outcome = ja.rules.get(name)(momdp, sample)
        total += outcome.stats.wall_time
        certificates = ja.metrics.sample_certificates(outcome.returns, sample)
        rows.append([outcome.rule, f"{outcome.stats.wall_time:.2f}", str(outcome.stats.solves),
                     f"{certificates['quantile_level']:.4f}", f"{certificates['borda_score']:.3f}"])
        print("  ".join(rows[-1]), flush=True)
    rows.append(["all rules", f"{total:.2f}", "", "", ""])
    table = markdown_table(["rule", "seconds", "solves", "q-level", "borda"], rows)
    table += f"\n\nReturn-bound LPs (shared, before the clock): {bounds_s:.2f} s; N = {sample.num_samples}."
    publish(f"Every rule on attention ({args.factories},{args.phases}), policy sample, sampling excluded", table, args.no_record)


if __name__ == "__main__":
    main()
