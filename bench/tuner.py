"""The Optax tuner against the exact rules: quality and time, and the tuner as a MIP start.

    python bench/tuner.py quality --instances a5,a6 --num-samples 20000
    python bench/tuner.py quality --instances a7 --samples a73.npz --bounds a73_bounds.npz --no-exact-quantile
    python bench/tuner.py quality --instances g30,g60
    python bench/tuner.py start --factories 5 --agents subsets --time-limit 20

``quality``: per instance, the tuner (quantile and Borda objectives) and the exact rules
(max-quantile by LP bisection, epsilon-Borda MILP). The Borda MILP runs twice: with its default
60 s limit, and with the tuner's own time as its limit ("the MILP in the same time"). Sampling
and the 2n return-bound LPs (shared by every rule) are done before the clocks start.
Instances: ``aF`` = attention (F, 3) base seed 0; ``gS`` = Garnet with S states, 4 actions,
branching 3, 6 agents, seed 0, average reward.

``start``: the epsilon-Borda MILP under a time limit, without and with the tuner's policy as
its MIP start (``start="tune"``); time, status, gap and scores both ways.

``--bounds`` reads return bounds saved by an earlier run (``--save-bounds``) into the per-instance
cache, so that attention (7, 3) does not repeat its 14 return-bound LPs (about a minute each).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from common import markdown_table, publish

import jaxagg as ja
from jaxagg.solvers import polytope


def instance(name: str, agents: str = "base") -> ja.MOMDP:
    if name.startswith("a"):
        return ja.envs.attention_allocation(int(name[1:]), 3, agents, seed=0)
    return ja.envs.garnet(int(name[1:]), 4, 3, agents=6, seed=0)


def load_bounds(momdp: ja.MOMDP, path: str) -> None:
    data = np.load(path)
    polytope._BOUNDS[momdp] = polytope.ReturnBounds(**{k: data[k] for k in ("lower", "upper", "argmin", "argmax", "degenerate")})


def certificates(outcome, sample) -> list[str]:
    c = ja.metrics.sample_certificates(outcome.returns, sample)
    return [f"{c['quantile_level']:.4f}", f"{c['borda_score']:.4f}", str(c["approvals_0.9"])]


def quality(args) -> None:
    rows = []
    for name in args.instances.split(","):
        momdp = instance(name)
        began = time.perf_counter()
        if args.bounds:
            load_bounds(momdp, args.bounds)
        sample = ja.load_sample(args.samples) if args.samples else ja.sample(momdp, args.num_samples, seed=0)
        ja.return_bounds(momdp)
        prep = time.perf_counter() - began
        if args.save_bounds:
            b = ja.return_bounds(momdp)
            np.savez(args.save_bounds, lower=b.lower, upper=b.upper, argmin=b.argmin, argmax=b.argmax, degenerate=b.degenerate)
        head = [f"{name} {momdp!r}"[:60], str(sample.num_samples)]
        print(f"{name}: sample + bounds {prep:.1f} s", flush=True)
        options = {"steps": args.steps, "restarts": args.restarts}
        tuned = {}
        for objective in args.objectives.split(","):
            t = time.perf_counter()
            tuned[objective] = ja.tune(momdp, sample, objective=objective, **options)
            seconds = time.perf_counter() - t
            rows.append(head + [f"tune-{objective}", f"{seconds:.1f}", *certificates(tuned[objective], sample),
                                f"{args.restarts} restarts x {args.steps} steps, {tuned[objective].info['solver']}"])
            print(" | ".join(rows[-1]), flush=True)
        if args.exact_quantile:
            t = time.perf_counter()
            exact = ja.rules.get("max-quantile")(momdp, sample)
            rows.append(head + ["max-quantile", f"{time.perf_counter() - t:.1f}", *certificates(exact, sample),
                                f"q* = {exact.info['q_star']:.4f}"])
            print(" | ".join(rows[-1]), flush=True)
        same = round(tuned["borda"].info["tune_seconds"], 1)
        limits = {"default": ("default limit", 60.0, None), "same": ("same time as tune-borda", same, None),
                  "start": ("same time, MIP start = tune-borda's policy", same, tuned["borda"])}
        runs = [run for run in args.borda_runs.split(",") if run and (run != "default" or args.exact_borda)]
        limits = [limits[run] for run in runs]
        for what, limit, start_with in limits:
            t = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    milp = ja.rules.get("borda")(momdp, sample, time_limit=limit, start=start_with)
                note = (f"{what} ({limit:g} s): " + ("optimal" if milp.info["optimal"] else f"incumbent, gap {milp.info['mip_gap']:.3g}")
                        + f", MILP score {milp.info['milp_score']:.3f}")
                rows.append(head + ["borda MILP", f"{time.perf_counter() - t:.1f}", *certificates(milp, sample), note])
            except ja.errors.JaxaggError as exc:
                rows.append(head + ["borda MILP", f"{time.perf_counter() - t:.1f}", "-", "-", "-", f"{what} ({limit:g} s): {exc}"[:160]])
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["instance", "N", "method", "seconds", "q-level", "borda", "90%-a", "note"], rows)
    table += ("\n\nSeconds exclude sampling and the shared return-bound LPs; tuner seconds include JIT compilation, "
              "the LP start (small instances), replaying the best sampled policies and the float64 certification.")
    publish("Tuner vs exact rules (quality and time)", table, args.no_record)


def start(args) -> None:
    momdp = ja.envs.attention_allocation(args.factories, 3, args.agents, seed=args.seed)
    sample = ja.sample(momdp, args.num_samples, seed=0)
    ja.return_bounds(momdp)
    rows = []
    for start_with in (None, "tune"):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = ja.rules.get("borda")(momdp, sample, time_limit=args.time_limit, start=start_with)
        total = time.perf_counter() - t
        info = outcome.info
        s = info.get("start", {})
        rows.append([
            "none" if start_with is None else f"tune ({s.get('tune_seconds', 0):.1f} s, start score {s.get('milp_score', 0):.2f}, "
                                               f"feasible {s.get('feasible')})",
            f"{info['milp_seconds']:.1f}", "optimal" if info["optimal"] else "time limit", f"{info['mip_gap']:.4f}",
            f"{info['milp_score']:.3f}", f"{info['borda_score']:.4f}", f"{total:.1f}",
        ])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["MIP start", "MILP s", "status", "gap", "MILP score", "borda (empirical)", "total s"], rows)
    table += (f"\n\nepsilon-Borda MILP (K = 20) on {momdp!r}, N = {args.num_samples}, time limit {args.time_limit:g} s, "
              "HiGHS 1 thread; total includes the tuner and the completion LP.")
    publish(f"Borda MILP with and without the tuner's MIP start, attention ({args.factories},3) {args.agents}", table, args.no_record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--instances", default="a5,a6")
    q.add_argument("--num-samples", type=int, default=20_000)
    q.add_argument("--samples", help="a sample file of the (single) instance")
    q.add_argument("--bounds", help="return bounds saved with --save-bounds")
    q.add_argument("--save-bounds")
    q.add_argument("--steps", type=int, default=300)
    q.add_argument("--objectives", default="quantile,borda", help="tuner objectives to run (borda is needed by the MILP runs)")
    q.add_argument("--restarts", type=int, default=8)
    q.add_argument("--no-exact-quantile", dest="exact_quantile", action="store_false")
    q.add_argument("--no-exact-borda", dest="exact_borda", action="store_false", help="only the same-time MILP")
    q.add_argument("--borda-runs", default="default,same,start",
                   help="which Borda MILP runs: default (60 s limit), same (the tuner's time), start (same, from its policy)")
    s = sub.add_parser("start")
    s.add_argument("--factories", type=int, default=5)
    s.add_argument("--agents", default="subsets")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=int, default=20_000)
    s.add_argument("--time-limit", type=float, default=20.0)
    for p in (q, s):
        p.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    {"quality": quality, "start": start}[args.what](args)


if __name__ == "__main__":
    main()
