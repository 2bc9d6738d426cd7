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

``end-to-end`` (key ``sweep-end-to-end``): ``jaxagg sweep`` itself on ``--instances`` attention
(``--factories``, 3) base instances x every default rule (7 welfare + 6 volumetric) x
``--samples`` policy samples: the local executor (a pool of one worker per core), the same spec
through a local Ray cluster (same number of CPUs; its rows must equal the local ones), and a run
killed with SIGKILL at a random moment and then
resumed (no committed cell may be lost or recomputed, and the rows must equal the local ones); the
random moment is a random number of committed cells, drawn from ``--kill-seed``.

    python bench/sweep.py end-to-end           # 100 instances x 13 rules x 20,000 samples; records
    python bench/sweep.py end-to-end --instances 10 --backends local --no-record
    python bench/sweep.py end-to-end --smoke   # 2 attention (2, 3) instances, local + kill: not recorded
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("mode", nargs="?", choices=["batched", "end-to-end"], default="batched")
    parser.add_argument("--instances", type=int, default=None, help="(default: 1000 batched, 100 end-to-end)")
    parser.add_argument("--samples", type=int, default=None, help="(default: 2000 batched, 20000 end-to-end)")
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--actions", type=int, default=4)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--factories", type=int, default=5, help="end-to-end: attention factories (default: 5)")
    parser.add_argument("--backends", nargs="+", choices=["local", "ray"], default=["local", "ray"],
                        help="end-to-end: executors to time (default: local ray)")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="end-to-end: skip the kill + resume run")
    parser.add_argument("--kill-seed", type=int, default=0, help="end-to-end: seed of the kill moment")
    args = parser.parse_args()
    if args.mode == "end-to-end":
        return main_end_to_end(args)
    args.instances = 1000 if args.instances is None else args.instances
    args.samples = 2000 if args.samples is None else args.samples
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
             "what keeps it bit-identical): it saves dispatch and set-up per instance, not arithmetic. It computes the "
             "instances' return bounds (the same LPs) on a background thread while it samples; the bounds row times "
             "them alone.")
    publish(args, "sweep", f"Batched sampling across instances: {K:,} Garnets x {N:,} samples", COLUMNS, rows, checks,
            preface=preface, notes=notes, extra={"instances": K, "samples": N, "skipped": skipped})


# ---------------------------------------------------------------- end to end (jaxagg sweep)
E2E_COLUMNS = [
    ("run", "run", ""),
    ("cells", "cells", "d"),
    ("failed", "failed", "d"),
    ("wall s", "seconds", ".1f"),
    ("vs local", "ratio", ".2f"),
    ("rows equal local", "same", ""),
    ("cells lost / recomputed", "lost", ""),
]


def paper_sweep(instances: int, samples: int, factories: int) -> dict:
    """The spec: ``instances`` attention (factories, 3) base instances x the default rules (a spec
    with a sample and no ``rules`` runs every welfare and volumetric rule) x ``samples``."""
    return {"name": "bench",
            "instances": [{"env": "attention", "factories": factories, "phases": 3, "seed": {"start": 0, "count": instances}}],
            "sample": {"measure": "policy", "num_samples": samples, "seed": "instance"}}


def store_rows(results) -> dict:
    """Per cell: status, raw returns and ranks (what must not depend on how the sweep ran)."""
    return {r["key"]: (r["status"], r["raw"], r["rank"]) for r in results.records}


def count_committed(store) -> int:
    try:
        with sqlite3.connect(store, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:  # created but not yet initialised
        return 0


def committed(store) -> dict:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT key, finished_at FROM runs"))


def end_to_end(args, folder: Path, checks: Checks) -> list[dict]:
    """Local sweep, the same through a local Ray cluster, and a SIGKILL at a random moment + resume."""
    K, N, F = (2, 300, 2) if args.smoke else (args.instances, args.samples, args.factories)
    spec = paper_sweep(K, N, F)
    workers = os.cpu_count() or 1
    rows = []
    began = time.perf_counter()
    local = ja.sweep(spec, folder / "local.db", workers=workers, progress=False)
    local_seconds = time.perf_counter() - began
    reference = store_rows(local)
    rows.append({"run": f"local ({workers} workers)", "cells": len(reference), "failed": local.counts["failed"],
                 "seconds": local_seconds, "ratio": 1.0, "same": "-", "lost": "-"})
    checks.that("local sweep: every cell done", local.counts["failed"] == 0 and local.counts["pending"] == 0,
                {**local.counts, "failures": failures_of(local)})
    if "ray" in args.backends:
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            began = time.perf_counter()
            through_ray = ja.sweep(spec, folder / "ray.db", backend="ray", progress=False)
            seconds = time.perf_counter() - began
        finally:
            ray.shutdown()
        same = store_rows(through_ray) == reference
        rows.append({"run": f"Ray local cluster ({workers} CPUs)", "cells": len(through_ray.records),
                     "failed": through_ray.counts["failed"], "seconds": seconds, "ratio": seconds / local_seconds,
                     "same": "yes" if same else "NO", "lost": "-"})
        checks.that("Ray: same rows as the local executor", same)
    if args.kill:
        spec_file = folder / "kill.toml"
        spec_file.write_text(toml_of(spec))
        store = folder / "kill.db"
        rng = np.random.default_rng(args.kill_seed)
        target = int(rng.integers(1, len(reference)))  # a random moment: after this many committed cells
        process = subprocess.Popen([sys.executable, "-m", "jaxagg.cli", "sweep", str(spec_file), "--store", str(store),
                                    "--workers", str(workers), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        began = time.perf_counter()
        while process.poll() is None and (not store.exists() or count_committed(store) < target):
            time.sleep(0.02)
        delay = time.perf_counter() - began
        process.send_signal(signal.SIGKILL)
        process.wait()
        before = committed(store) if store.exists() else {}
        began = time.perf_counter()
        resumed = ja.sweep(spec, store, workers=workers, progress=False)
        seconds = time.perf_counter() - began
        after = committed(store)
        kept = all(after.get(key) == stamp for key, stamp in before.items())
        same = store_rows(resumed) == reference
        rows.append({"run": f"SIGKILL after {delay:.0f} s ({len(before)} of {len(reference)} cells committed), then resumed",
                     "cells": len(resumed.records), "failed": resumed.counts["failed"], "seconds": seconds,
                     "ratio": None, "same": "yes" if same else "NO", "lost": "0 / 0" if kept and len(after) == len(reference) else "SOME"})
        checks.that("killed + resumed: no committed cell lost or recomputed", kept and len(after) == len(reference))
        checks.that("killed + resumed: same rows as the uninterrupted sweep", same)
    return rows


def failures_of(results) -> list[str]:
    """The failed cells of a sweep, ``"rule on seed s: error"`` (what a failed check shows)."""
    return [f"{f['rule']} on seed {f.get('param.seed')}: {f['error']}" for f in results.failures()]


def toml_of(spec: dict) -> str:
    """The spec dict as TOML (the subset the spec uses: strings, numbers, lists, one-level tables)."""
    def value(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)
    lines = [f"{k} = {value(v)}" for k, v in spec.items() if not isinstance(v, (dict, list))]
    for block in spec["instances"]:
        lines += ["[[instances]]", *(f"{k} = {value(v)}" for k, v in block.items())]
    lines += ["[sample]", *(f"{k} = {value(v)}" for k, v in spec["sample"].items())]
    return "\n".join(lines) + "\n"


def main_end_to_end(args) -> None:
    args.instances = 100 if args.instances is None else args.instances
    args.samples = 20_000 if args.samples is None else args.samples
    if args.smoke:
        args.backends = ["local"]
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="jaxagg-bench-sweep-") as folder:
        rows = end_to_end(args, Path(folder), checks)
    K, N, F = (2, 300, 2) if args.smoke else (args.instances, args.samples, args.factories)
    preface = (f"{K} attention ({F}, 3) base instances x 13 rules (7 welfare, 6 volumetric) x {N:,} policy samples "
               f"(sample seed = instance seed), {os.cpu_count()} worker processes; wall time of `ja.sweep` from an empty store "
               "(sampling in the driver, solves on the workers, every cell committed to SQLite).")
    notes = "Single runs on a machine that may be shared with other jobs."
    publish(args, "sweep-end-to-end", f"Sweeps end to end: {K} attention ({F}, 3) instances x 13 rules x {N:,} samples",
            E2E_COLUMNS, rows, checks, preface=preface, notes=notes, extra={"instances": K, "samples": N, "factories": F})


if __name__ == "__main__":
    main()
