"""Time every rule on attention allocation with a large `policy` sample (sampling excluded).

    python bench/rules.py                                  # (5,3) base, seed 0, 5e5 samples
    python bench/rules.py --samples s.npz --no-record      # reuse a sample from `jaxagg sample`
    python bench/rules.py --smoke                          # (3,3), 2000 samples: seconds, not recorded

The return-bound LPs (2n, cached per instance) are computed before the clock starts, since
every rule shares them; each rule's row is its own wall time.

Checks: every outcome's occupancy lies in O (``max(|E d - b|, -min d) <= 1e-8``) and gives its
returns; each rule is at least as good as every other rule for the objective it optimises
(utilitarian: sum of returns; normalised utilitarian: sum of normalised returns; egalitarian and
leximin, raw or normalised: the worst-off agent's; max-quantile: the quantile level on the
sample, which equals its ``q*``; approval: the approval count at its level, which equals its
``count``), to a relative 1e-7; the epsilon-Borda MILP's score is a lower bound of its policy's
empirical Borda score and, when proven optimal, at most ``n/K`` below any rule's; veto's outcome
has no blocking coalition on the sample.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import Checks, add_common_arguments, progress_line, publish

import jaxagg as ja
from jaxagg.polytope import occupancy_polytope

RULES = ("utilitarian", "utilitarian-normalized", "egalitarian", "egalitarian-normalized", "leximin", "leximin-normalized",
         "nash", "max-quantile", "borda", "borda-concave", "approval", "approval-0.8", "veto")
"""The rules timed by default: the welfare baselines and every exact volumetric rule (the tuner
and the rules started from it are timed by bench/tuner.py)."""
RESIDUAL_TOL = 1e-8
RTOL = 1e-7
COLUMNS = [
    ("rule", "rule", ""),
    ("seconds", "seconds", ".2f"),
    ("solves", "solves", "d"),
    ("q-level", "quantile_level", ".4f"),
    ("borda", "borda_score", ".3f"),
]


def check_outcomes(checks: Checks, momdp: ja.MOMDP, sample: ja.ReturnSample, outcomes: dict[str, ja.Outcome]) -> None:
    """The checks of the module docstring."""
    polytope = occupancy_polytope(momdp)
    scale = max(1.0, float(np.abs(momdp.reward_matrix).max()))
    for name, outcome in outcomes.items():
        checks.at_most(f"{name}: residual of the occupancy in O", polytope.residual(outcome.occupancy), RESIDUAL_TOL)
        checks.at_most(f"{name}: |returns - R d| / max |R|", np.abs(outcome.returns - momdp.returns(outcome.occupancy)).max() / scale,
                       RTOL)
    objectives = {
        "utilitarian": lambda o: o.returns.sum() / scale,
        "utilitarian-normalized": lambda o: o.normalized.sum(),
        "egalitarian": lambda o: o.returns.min() / scale,
        "leximin": lambda o: o.returns.min() / scale,
        "egalitarian-normalized": lambda o: o.normalized.min(),
        "leximin-normalized": lambda o: o.normalized.min(),
        "max-quantile": lambda o: sample.rank(o.returns).min(),
    }
    for q, name in ((0.9, "approval"), (0.8, "approval-0.8")):
        objectives[name] = lambda o, q=q: float((o.returns >= sample.quantile(q)).sum())
    for name, objective in objectives.items():
        if name not in outcomes:
            continue
        others = [other for other in outcomes if other != name]
        if not others:
            continue
        rival = max(others, key=lambda other, objective=objective: objective(outcomes[other]))
        checks.at_least(f"{name}: its objective minus the best other rule's ({rival})",
                        objective(outcomes[name]) - objective(outcomes[rival]), -RTOL)
    if "max-quantile" in outcomes:
        o = outcomes["max-quantile"]
        checks.at_most("max-quantile: |quantile level on the sample - q*|", abs(sample.rank(o.returns).min() - o.info["q_star"]), 1e-12)
    for name in ("approval", "approval-0.8"):
        if name in outcomes:
            o = outcomes[name]
            count = int((o.returns >= sample.quantile(o.info["q"])).sum())
            checks.that(f"{name}: approval count on the sample = info count ({o.info['count']})", count == o.info["count"], count)
    if "borda" in outcomes:
        info = outcomes["borda"].info
        checks.at_least("borda: empirical Borda score - MILP score", info["borda_score"] - info["milp_score"], -1e-9)
        if info["optimal"]:
            best = max(sample.rank(o.returns).sum() for o in outcomes.values())
            checks.at_least("borda: MILP score + n/K - best empirical Borda score of any rule", info["milp_score"] + info["bound"] - best,
                            -1e-9)
    if "veto" in outcomes:
        o = outcomes["veto"]
        blocking = ja.metrics.blocking_coalitions(o.returns, sample, o.info["epsilon"])
        checks.that("veto: no blocking coalition on the sample", not blocking, blocking[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factories", type=int, default=5)
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=500_000)
    parser.add_argument("--samples", help="a sample file of this instance (skips sampling)")
    parser.add_argument("--rules", nargs="+", default=list(RULES), help="registered rule names (default: %(default)s)")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        args.factories, args.phases, args.num_samples, args.samples = 3, 3, 2000, None
    rules = [ja.rules.get(name) for name in args.rules]
    momdp = ja.envs.attention_allocation(args.factories, args.phases, seed=0)
    if args.samples:
        sample = ja.load_sample(args.samples).check_instance(momdp)
    else:
        sample = ja.sample(momdp, args.num_samples, seed=0, progress=not args.smoke)
        print(f"sampled {sample.num_samples} in {sample.info['seconds']:.1f} s", flush=True)
    began = time.perf_counter()
    ja.return_bounds(momdp)
    bounds_s = time.perf_counter() - began
    checks = Checks()
    rows, outcomes = [], {}
    for rule in rules:
        outcome = rule(momdp, sample) if rule.needs_sample else rule(momdp)
        outcomes[outcome.rule] = outcome
        certificates = ja.metrics.sample_certificates(outcome.returns, sample)
        rows.append({"rule": outcome.rule, "seconds": outcome.stats.wall_time, "solves": outcome.stats.solves,
                     "quantile_level": certificates["quantile_level"], "borda_score": certificates["borda_score"],
                     "approvals_0.9": certificates["approvals_0.9"], "approvals_0.8": certificates["approvals_0.8"],
                     "returns": outcome.returns, "normalized": outcome.normalized})
        print(progress_line(COLUMNS, rows[-1]), flush=True)
    check_outcomes(checks, momdp, sample, outcomes)
    total = sum(row["seconds"] for row in rows)
    rows.append({"rule": "all rules", "seconds": total})
    notes = f"Return-bound LPs (shared, before the clock): {bounds_s:.2f} s; N = {sample.num_samples}."
    publish(args, "rules", f"Every rule on attention ({args.factories},{args.phases}), policy sample, sampling excluded",
            COLUMNS, rows, checks, notes=notes,
            extra={"instance": repr(momdp), "num_samples": sample.num_samples, "bounds_seconds": bounds_s,
                   "sample_seconds": sample.info.get("seconds")})


if __name__ == "__main__":
    main()
