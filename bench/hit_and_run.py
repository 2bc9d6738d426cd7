"""The uniform measure: jaxagg's hit-and-run against hopsy (C++ coordinate hit-and-run with
PolyRound rounding) on attention allocation, preprocessing included.

    python bench/hit_and_run.py                          # (3,3), (4,3), (5,3), against hopsy
    python bench/hit_and_run.py --instances 3 4 --samples 2000 --no-record
    python bench/hit_and_run.py --instances 5 --samples 10000 --no-hopsy
    python bench/hit_and_run.py --smoke                  # (2,3), 128 samples: seconds, not recorded

hopsy is a benchmark-only extra (``pip install ".[bench]"``; not a jaxagg dependency): without it
the script stops unless ``--no-hopsy`` is given, except under ``--smoke``, which then skips the
hopsy rows. Each hopsy run happens in a child process with a time limit, since its preprocessing
of large polytopes can take minutes or fail.

Columns: preprocessing (jaxagg: interior LP, hull basis, analytic centre; hopsy: equality
elimination, rounding, Chebyshev centre), steps/s (jaxagg: the compiled kernel, 32 float32
chains; hopsy: its sampling phase), wall time of the whole run (jaxagg's includes compilation),
the smallest effective sample size of any agent's return, ESS per second of the whole run, and
the largest split R-hat. Where both ran, a two-sample KS test compares every agent's return
distribution (smallest p-value shown).

Checks: every jaxagg sample lies in O (``max(|E d - b|, -min d) <= 1e-6``, float32 chains) and is
zero off O's support; every hopsy sample satisfies ``E x = b`` and ``x >= 0`` within 1e-8. (R-hat,
ESS and the KS p-value are measured, not checked: they depend on the thinning asked for.)
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats as st
from common import Checks, add_common_arguments, progress_line, publish, version

import jaxagg as ja
from jaxagg.diagnostics import effective_sample_size, split_rhat
from jaxagg.kernels.hit_and_run import make_directions, run_chains
from jaxagg.kernels.precision import precision_scope
from jaxagg.polytope import occupancy_polytope
from jaxagg.solvers.interior import analytic_center, parametrise_hull
from jaxagg.uniform import uniform_occupancies

HOPSY_CHAINS = 4
RESIDUAL_TOL = 1e-6
"""Largest ``max(|E d - b|, -min d)`` of a jaxagg sample (float32 chains, re-projected onto O's
affine hull after every kept sample; measured about 3e-8 on attention (2,3) and (3,3))."""
HOPSY_RESIDUAL_TOL = 1e-8
SMOKE = {"instances": [2], "samples": 128, "thin": 2, "hopsy_samples": 10, "hopsy_time_limit": 120.0}
COLUMNS = [
    ("instance", "instance", ""),
    ("d", "d", "d"),
    ("k", "k", "d"),
    ("sampler", "sampler", ""),
    ("prep s", "prep", ".2f"),
    ("chain-steps/s", "rate", ".3g"),
    ("thin (steps)", "thin_steps", "d"),
    ("wall s", "wall", ".1f"),
    ("ESS min", "ess", ".0f"),
    ("ESS/s", "ess_per_second", ".1f"),
    ("R-hat max", "rhat", ".3f"),
]


def instance(factories: int) -> ja.MOMDP:
    return ja.envs.attention_allocation(factories, 3, seed=0)


def kernel_steps_per_second(momdp: ja.MOMDP, directions: str, chains: int = 32, sweeps: int = 4) -> float:
    """Chain-steps per second of the compiled hit-and-run kernel (float32, compilation excluded)."""
    hull = parametrise_hull(ja.occupancy_polytope(momdp))
    with precision_scope("float32"):
        basis = jnp.asarray(hull.basis, jnp.float32)
        center = jnp.asarray(hull.center[hull.support], jnp.float32)
        starts = jnp.broadcast_to(center, (chains, center.size))

        def run():
            return run_chains(jax.random.key(0), starts, make_directions(basis), jnp.arange(chains, dtype=jnp.uint32),
                              center, basis, num_samples=2, thin=sweeps // 2, kind=directions)

        jax.block_until_ready(run())
        began = time.perf_counter()
        jax.block_until_ready(run())
        return chains * sweeps * hull.dimension / (time.perf_counter() - began)


def run_jaxagg(momdp: ja.MOMDP, num_samples: int, thin: int | None, directions: str, checks: Checks, label: str) -> dict:
    """One call of the uniform sampler, timed end to end (compilation included), its preparation
    timed on its own, and the kernel's steps/s; its samples are checked to lie in O."""
    rate = kernel_steps_per_second(momdp, directions)
    began = time.perf_counter()
    analytic_center(parametrise_hull(ja.occupancy_polytope(momdp)))
    prep = time.perf_counter() - began
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ja.errors.MixingWarning)
        d, settings = uniform_occupancies(momdp, num_samples, seed=0, thin=thin, directions=directions)
    wall = time.perf_counter() - began
    polytope = occupancy_polytope(momdp)
    residual = max(np.abs(polytope.E @ d.T - polytope.b[:, None]).max(), max(-d.min(), 0.0))
    checks.at_most(f"{label} jaxagg: residual of the samples in O", residual, RESIDUAL_TOL)
    support = parametrise_hull(polytope).support
    checks.at_most(f"{label} jaxagg: largest |d| off O's support", np.abs(d[:, ~support]).max(initial=0.0), 0.0)
    return {"prep": prep, "wall": wall, "rate": rate, "residual": residual,
            "ess": min(settings["ess"] or [np.nan]), "rhat": max(settings["rhat"] or [np.nan]), "returns": momdp.returns(d),
            "thin_steps": settings["thin"] * settings["hull_dimension"], "k": settings["hull_dimension"]}


def run_hopsy(factories: int, samples_per_chain: int, thin_steps: int, out) -> None:
    """hopsy's coordinate hit-and-run (child process): puts a result dict or an error string."""
    try:
        import hopsy

        momdp = instance(factories)
        polytope = ja.occupancy_polytope(momdp)
        E = polytope.E.toarray()
        began = time.perf_counter()
        problem = hopsy.add_equality_constraints(hopsy.Problem(-np.eye(momdp.dim), np.zeros(momdp.dim)), E, polytope.b)
        problem = hopsy.round(problem)
        start = hopsy.compute_chebyshev_center(problem)
        prep = time.perf_counter() - began
        chains = [hopsy.MarkovChain(problem, proposal=hopsy.UniformCoordinateHitAndRunProposal, starting_point=start)
                  for _ in range(HOPSY_CHAINS)]
        rngs = [hopsy.RandomNumberGenerator(seed=i) for i in range(HOPSY_CHAINS)]
        began = time.perf_counter()
        _, x = hopsy.sample(chains, rngs, n_samples=samples_per_chain, thinning=thin_steps)
        sampling = time.perf_counter() - began
        chain_returns = np.asarray(x) @ momdp.reward_matrix.T  # [chains, draws, n]
        per_agent = np.moveaxis(chain_returns, 2, 0)
        points = np.asarray(x).reshape(-1, momdp.dim)
        out.put({"prep": prep, "wall": prep + sampling, "rate": HOPSY_CHAINS * samples_per_chain * thin_steps / sampling,
                 "ess": min(effective_sample_size(a) for a in per_agent), "rhat": max(split_rhat(a) for a in per_agent),
                 "returns": chain_returns.reshape(-1, momdp.num_agents), "thin_steps": thin_steps,
                 "residual": float(max(np.abs(E @ points.T - polytope.b[:, None]).max(), max(-points.min(), 0.0)))})
    except Exception as error:  # hopsy's own failure is a result to report
        out.put(f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}")


def hopsy_in_child(factories: int, samples_per_chain: int, thin_steps: int, time_limit: float):
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=run_hopsy, args=(factories, samples_per_chain, thin_steps, out))
    child.start()
    try:
        return out.get(timeout=time_limit)
    except Exception:
        return f"no result within {time_limit:.0f} s"
    finally:
        child.terminate()
        child.join()


def row(label: str, momdp: ja.MOMDP, k: int, sampler: str, r: dict | str) -> dict:
    head = {"instance": label, "d": momdp.dim, "k": k, "sampler": sampler}
    if isinstance(r, str):
        return {**head, "prep": r, "error": r}
    return {**head, **{key: r[key] for key in ("prep", "rate", "thin_steps", "wall", "ess", "rhat", "residual")},
            "ess_per_second": r["ess"] / r["wall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, nargs="+", default=[3, 4, 5], help="factories F of attention (F, 3)")
    parser.add_argument("--samples", type=int, default=4000, help="jaxagg samples per instance")
    parser.add_argument("--thin", type=int, default=None, help="jaxagg sweeps between samples (default max(10, ceil(k/64)))")
    parser.add_argument("--directions", default="coordinate", choices=["coordinate", "random"])
    parser.add_argument("--hopsy-samples", type=int, default=100, help="hopsy samples per chain (4 chains)")
    parser.add_argument("--hopsy-time-limit", type=float, default=900.0, help="seconds per hopsy instance")
    parser.add_argument("--no-hopsy", action="store_true", help="jaxagg only")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    have_hopsy = importlib.util.find_spec("hopsy") is not None
    if not (have_hopsy or args.no_hopsy or args.smoke):
        parser.error('hopsy is not installed: pip install ".[bench]" (or hopsy), or pass --no-hopsy')
    run_hopsy_too = have_hopsy and not args.no_hopsy
    if args.smoke and not have_hopsy and not args.no_hopsy:
        print("hopsy is not installed: skipping the hopsy rows (smoke run)", flush=True)
    checks = Checks()
    rows, notes = [], []
    for factories in args.instances:
        momdp = instance(factories)
        label = f"({factories},3)"
        ours = run_jaxagg(momdp, args.samples, args.thin, args.directions, checks, label)
        rows.append(row(label, momdp, ours["k"], f"jaxagg ({args.directions}, 32 chains)", ours))
        print(progress_line(COLUMNS, rows[-1]), flush=True)
        if not run_hopsy_too:
            continue
        theirs = hopsy_in_child(factories, args.hopsy_samples, ours["thin_steps"], args.hopsy_time_limit)
        rows.append(row(label, momdp, ours["k"], f"hopsy {version('hopsy')} (CHRR, {HOPSY_CHAINS} chains)", theirs))
        print(progress_line(COLUMNS, rows[-1]), flush=True)
        if isinstance(theirs, dict):
            checks.at_most(f"{label} hopsy: residual of the samples in O", theirs["residual"], HOPSY_RESIDUAL_TOL)
            p = min(st.ks_2samp(a, b).pvalue for a, b in zip(ours["returns"].T, theirs["returns"].T, strict=True))
            rows[-1]["ks_min_p"] = p
            notes.append(f"{label}: jaxagg steps/s over hopsy steps/s "
                         f"{ours['rate'] / theirs['rate']:.1f}x; "
                         f"two-sample KS of every agent's return, smallest p = {p:.3f}; "
                         f"hopsy's points satisfy E x = b within {theirs['residual']:.1e}")
    publish(args, "hit_and_run", f"Uniform measure: hit-and-run on attention allocation, {args.samples} jaxagg samples",
            COLUMNS, rows, checks, notes="\n".join(f"- {note}" for note in notes),
            extra={"hopsy": version("hopsy") if run_hopsy_too else ("skipped (--no-hopsy)" if have_hopsy else "absent")})


if __name__ == "__main__":
    main()
