"""The Optax tuner against the exact rules: quality and time, and the tuner as a MIP start.

    python bench/tuner.py quality --instances a5,a6 --num-samples 20000
    python bench/tuner.py quality --instances a7 --samples a73.npz --no-exact-quantile
    python bench/tuner.py quality --instances g30,g60
    python bench/tuner.py start --factories 5 --agents subsets --time-limit 20
    python bench/tuner.py quality --smoke      # (and `start --smoke`): toy sizes, seconds, not recorded

``quality``: per instance, the tuner (quantile and Borda objectives) and the exact rules
(max-quantile by LP bisection, epsilon-Borda MILP). The Borda MILP runs up to three times: with
its default 60 s limit, with the tuner's own time as its limit ("the MILP in the same time"), and
in the same time started from tune-borda's policy. Sampling and the 2n return-bound LPs (shared
by every rule) are done before the clocks start. Instances: ``aF`` = attention (F, 3) base seed 0;
``gS`` = Garnet with S states, 4 actions, branching 3, 6 agents, seed 0, average reward.

``start``: the epsilon-Borda MILP under a time limit, without and with the tuner's policy as
its MIP start (``ja.tune(objective="borda")`` with ``--steps``/``--restarts``, by default the
options ``start="tune"`` uses); time, status, gap and scores both ways.

Checks: every tuner outcome lies in O (``info["residual"] <= 1e-8``) and its certificates,
recomputed from its returns on the sample, are the ones it reports; every MILP outcome lies in O;
the exact max-quantile level is at least the tuner's; each MILP's score is a lower bound of its
policy's empirical Borda score, and when the MILP is proven optimal it is at most ``n/K`` below
the tuner's Borda score; a MILP given a feasible MIP start ends with a score at least the start's.
"""

from __future__ import annotations

import argparse
import time
import warnings

from common import Checks, add_common_arguments, progress_line, publish

import jaxagg as ja
from jaxagg.polytope import occupancy_polytope

RESIDUAL_TOL = 1e-8
SCORE_TOL = 1e-9
SMOKE = {
    "quality": {"instances": "g12", "num_samples": 500, "samples": None, "steps": 20, "restarts": 2},
    "start": {"factories": 2, "agents": "subsets", "num_samples": 500, "time_limit": 2.0, "steps": 20, "restarts": 2},
}
QUALITY_COLUMNS = [
    ("instance", "instance", ""),
    ("N", "N", "d"),
    ("method", "method", ""),
    ("seconds", "seconds", ".1f"),
    ("q-level", "quantile_level", ".4f"),
    ("borda", "borda_score", ".4f"),
    ("90%-a", "approvals_0.9", "d"),
    ("note", "note", ""),
]
START_COLUMNS = [
    ("MIP start", "start", ""),
    ("MILP s", "milp_seconds", ".1f"),
    ("status", "status", ""),
    ("gap", "mip_gap", ".4f"),
    ("MILP score", "milp_score", ".3f"),
    ("borda (empirical)", "borda_score", ".4f"),
    ("total s", "total_seconds", ".1f"),
]


def instance(name: str, agents: str = "base") -> ja.MOMDP:
    if name.startswith("a"):
        return ja.envs.attention_allocation(int(name[1:]), 3, agents, seed=0)
    return ja.envs.garnet(int(name[1:]), 4, 3, agents=6, seed=0)


def certificates(outcome: ja.Outcome, sample: ja.ReturnSample) -> dict:
    c = ja.metrics.sample_certificates(outcome.returns, sample)
    return {key: c[key] for key in ("quantile_level", "borda_score", "approvals_0.9")}


def check_in_o(checks: Checks, what: str, momdp: ja.MOMDP, outcome: ja.Outcome) -> None:
    checks.at_most(f"{what}: residual of the occupancy in O", occupancy_polytope(momdp).residual(outcome.occupancy), RESIDUAL_TOL)


def check_tuned(checks: Checks, what: str, momdp: ja.MOMDP, sample: ja.ReturnSample, tuned: ja.Outcome) -> None:
    """In O, and its reported certificates are those of its returns on the sample."""
    check_in_o(checks, what, momdp, tuned)
    checks.at_most(f"{what}: reported residual", tuned.info["residual"], RESIDUAL_TOL)
    reported, recomputed = tuned.info["certificates"], ja.metrics.sample_certificates(tuned.returns, sample)
    for key in ("quantile_level", "borda_score", "approvals_0.9"):
        checks.at_most(f"{what}: |reported - recomputed {key}|", abs(reported[key] - recomputed[key]), 1e-12)


def check_milp(checks: Checks, what: str, momdp: ja.MOMDP, milp: ja.Outcome, tuned: ja.Outcome | None) -> None:
    """In O; its score is a lower bound of its empirical Borda score; optimal: within n/K of the
    tuner's; a feasible start: at least the start's score."""
    check_in_o(checks, what, momdp, milp)
    info = milp.info
    checks.at_least(f"{what}: empirical Borda score - MILP score", info["borda_score"] - info["milp_score"], -SCORE_TOL)
    if info["optimal"] and tuned is not None:
        checks.at_least(f"{what}: MILP score + n/K - tune-borda's Borda score",
                        info["milp_score"] + info["bound"] - tuned.info["certificates"]["borda_score"], -SCORE_TOL)
    start = info.get("start")
    if start is not None and start["feasible"]:
        checks.at_least(f"{what}: MILP score - its MIP start's score", info["milp_score"] - start["milp_score"], -SCORE_TOL)


def quality(args, checks: Checks) -> None:
    rows = []
    for name in args.instances.split(","):
        momdp = instance(name)
        began = time.perf_counter()
        if args.samples:
            sample = ja.load_sample(args.samples).check_instance(momdp)
        else:
            sample = ja.sample(momdp, args.num_samples, seed=0)
        ja.return_bounds(momdp)
        prep = time.perf_counter() - began
        head = {"instance": f"{name} {momdp!r}"[:60], "N": sample.num_samples}
        print(f"{name}: sample + bounds {prep:.1f} s", flush=True)
        options = {"steps": args.steps, "restarts": args.restarts}
        tuned = {}
        for objective in args.objectives.split(","):
            t = time.perf_counter()
            tuned[objective] = ja.tune(momdp, sample, objective=objective, **options)
            seconds = time.perf_counter() - t
            check_tuned(checks, f"{name} tune-{objective}", momdp, sample, tuned[objective])
            rows.append({**head, "method": f"tune-{objective}", "seconds": seconds, **certificates(tuned[objective], sample),
                         "note": f"{args.restarts} restarts x {args.steps} steps, {tuned[objective].info['linear_solve']}"})
            print(progress_line(QUALITY_COLUMNS, rows[-1]), flush=True)
        if args.exact_quantile:
            t = time.perf_counter()
            exact = ja.rules.get("max-quantile")(momdp, sample)
            rows.append({**head, "method": "max-quantile", "seconds": time.perf_counter() - t, **certificates(exact, sample),
                         "note": f"q* = {exact.info['q_star']:.4f}"})
            check_in_o(checks, f"{name} max-quantile", momdp, exact)
            if "quantile" in tuned:
                checks.at_least(f"{name} max-quantile: q* - tune-quantile's level",
                                exact.info["q_star"] - tuned["quantile"].info["certificates"]["quantile_level"], -1e-12)
            print(progress_line(QUALITY_COLUMNS, rows[-1]), flush=True)
        runs = [run for run in args.borda_runs.split(",") if run and (run != "default" or args.exact_borda)]
        if runs and "borda" not in tuned and set(runs) - {"default"}:
            raise SystemExit("--borda-runs same/start need the borda objective in --objectives")
        same = round(tuned["borda"].info["tune_seconds"], 1) if "borda" in tuned else None
        limits = {"default": ("default limit", 60.0, None), "same": ("same time as tune-borda", same, None),
                  "start": ("same time, MIP start = tune-borda's policy", same, tuned.get("borda"))}
        for what, limit, start_with in (limits[run] for run in runs):
            t = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    milp = ja.rules.get("borda")(momdp, sample, time_limit=limit, start=start_with)
                note = (f"{what} ({limit:g} s): " + ("optimal" if milp.info["optimal"] else f"incumbent, gap {milp.info['mip_gap']:.3g}")
                        + f", MILP score {milp.info['milp_score']:.3f}")
                check_milp(checks, f"{name} borda MILP, {what}", momdp, milp, tuned.get("borda"))
                rows.append({**head, "method": "borda MILP", "seconds": time.perf_counter() - t, **certificates(milp, sample),
                             "note": note, "optimal": milp.info["optimal"], "mip_gap": milp.info["mip_gap"],
                             "milp_score": milp.info["milp_score"], "time_limit": limit})
            except ja.errors.JaxaggError as exc:
                rows.append({**head, "method": "borda MILP", "seconds": time.perf_counter() - t, "quantile_level": "-",
                             "borda_score": "-", "approvals_0.9": "-", "note": f"{what} ({limit:g} s): {exc}"[:160],
                             "error": str(exc), "time_limit": limit})
            print(progress_line(QUALITY_COLUMNS, rows[-1]), flush=True)
    notes = ("Seconds exclude sampling and the shared return-bound LPs; tuner seconds include JIT compilation, "
             "the LP start (small instances), replaying the best sampled policies and the float64 certification.")
    publish(args, "tuner-quality", "Tuner vs exact rules (quality and time)", QUALITY_COLUMNS, rows, checks, notes=notes,
            extra={"steps": args.steps, "restarts": args.restarts})


def start(args, checks: Checks) -> None:
    momdp = ja.envs.attention_allocation(args.factories, 3, args.agents, seed=args.seed)
    sample = ja.sample(momdp, args.num_samples, seed=0)
    ja.return_bounds(momdp)
    t = time.perf_counter()
    tuned = ja.tune(momdp, sample, objective="borda", steps=args.steps, restarts=args.restarts)
    tune_seconds = time.perf_counter() - t
    check_tuned(checks, "tune-borda", momdp, sample, tuned)
    rows = []
    for start_with in (None, tuned):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = ja.rules.get("borda")(momdp, sample, time_limit=args.time_limit, start=start_with)
        total = time.perf_counter() - t + (0.0 if start_with is None else tune_seconds)
        info = outcome.info
        check_milp(checks, "borda MILP, " + ("no start" if start_with is None else "tuner start"), momdp, outcome, tuned)
        s = info.get("start", {})
        label = ("none" if start_with is None else
                 f"tune ({tune_seconds:.1f} s, start score {s.get('milp_score', 0):.2f}, feasible {s.get('feasible')})")
        rows.append({"start": label, "milp_seconds": info["milp_seconds"], "status": "optimal" if info["optimal"] else "time limit",
                     "mip_gap": info["mip_gap"], "milp_score": info["milp_score"], "borda_score": info["borda_score"],
                     "total_seconds": total, "start_info": s or None})
        print(progress_line(START_COLUMNS, rows[-1]), flush=True)
    notes = (f"epsilon-Borda MILP (K = 20) on {momdp!r}, N = {args.num_samples}, time limit {args.time_limit:g} s, "
             f"HiGHS 1 thread; tuner {args.restarts} restarts x {args.steps} steps; total includes the tuner and the completion LP.")
    publish(args, "tuner-start", f"Borda MILP with and without the tuner's MIP start, attention ({args.factories},3) {args.agents}",
            START_COLUMNS, rows, checks, notes=notes,
            extra={"tune_seconds": tune_seconds, "steps": args.steps, "restarts": args.restarts, "time_limit": args.time_limit})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality", help="the tuner and the exact rules, per instance")
    q.add_argument("--instances", default="a5,a6")
    q.add_argument("--num-samples", type=int, default=20_000)
    q.add_argument("--samples", help="a sample file of the (single) instance")
    q.add_argument("--objectives", default="quantile,borda", help="tuner objectives to run (borda is needed by the MILP runs)")
    q.add_argument("--no-exact-quantile", dest="exact_quantile", action="store_false")
    q.add_argument("--no-exact-borda", dest="exact_borda", action="store_false", help="only the same-time MILP runs")
    q.add_argument("--borda-runs", default="default,same,start",
                   help="which Borda MILP runs: default (60 s limit), same (the tuner's time), start (same, from its policy)")
    s = sub.add_parser("start", help="the Borda MILP without and with the tuner's MIP start")
    s.add_argument("--factories", type=int, default=5)
    s.add_argument("--agents", default="subsets")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=int, default=20_000)
    s.add_argument("--time-limit", type=float, default=20.0)
    for p in (q, s):
        p.add_argument("--steps", type=int, default=300, help="tuner steps per restart")
        p.add_argument("--restarts", type=int, default=8, help="tuner restarts")
        add_common_arguments(p)
    args = parser.parse_args()
    if args.smoke:
        for name, value in SMOKE[args.what].items():
            setattr(args, name, value)
    checks = Checks()
    {"quality": quality, "start": start}[args.what](args, checks)


if __name__ == "__main__":
    main()
