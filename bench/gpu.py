"""Every GPU measurement in one run (GPUs are rarely at hand, so make them count): policy
sampling, uniform hit-and-run chain-steps, one tuner step and the return bounds by policy
iteration, plus a check that the GPU gives CPU's returns on a small case. Made to finish in
under 10 minutes on one GPU (most of it compilation).

    python bench/gpu.py                 # on a GPU machine (jax[cuda12]); records under "gpu" in bench/RESULTS.md
    python bench/gpu.py --no-record --seconds 1
    python bench/gpu.py --smoke         # tiny sizes on the CPU (seconds-ish), not recorded

Without a GPU the full mode says so and exits with status 2 (``--smoke`` runs on whatever
device JAX has).

Rows (all on ``jax.devices()[0]``, the GPU; attention allocation, base agents, seed 0):

* ``policy sampling``: ``ja.sample(m, N, precision=p, method=..., chunk_size=--chunk)`` at
  attention (5,3) and (7,3), float32 and float64, Krylov (the engine's default operator, the
  instance's own: Kronecker; default solver: BiCGSTAB on a GPU up to 1,024 states, GMRES
  beyond; default preconditioner: the mean policy's on a GPU up to 1,024 states; all named in
  the setting column) and a dense LU at (5,3); a first call on one chunk compiles
  (and computes the return bounds, cached), a probe call sets N to about ``--seconds``, then the
  timed call: policies/s from ``info["seconds"]``, and its ``info["residual_max"]``.
* ``uniform chain-steps``: the hit-and-run kernel (``jaxagg.kernels.hit_and_run.run_chains``,
  coordinate directions in the hull basis, float32) with ``--chains`` (2048) chains at attention
  (5,3), compiled, then timed over ``--sweeps`` sweeps of k steps (k the hull dimension):
  chains x steps / s.
* ``tuner step``: one Adam step of every restart (``jaxagg.kernels.ascent.tune_logits``,
  ``--restarts`` restarts, borda objective, warm-started GMRES, float32) at attention (7,3), on a
  grid from the (7,3) float32 policy sample: seconds per step of a ``--tuner-steps`` call after a
  compiling call.
* ``bounds (policy iteration)``: the 2n MDPs of attention (7,3) by batched policy iteration
  (``jaxagg.solvers.mdp.solve_mdps`` on the Kronecker operator), second call (the first compiles).
* ``batched instances``: ``ja.sample_instances`` on ``--instances`` Garnets (S = 50, A = 4,
  n = 4, as bench/sweep.py) x ``--instance-samples`` samples against a loop of ``ja.sample``,
  the return bounds cached beforehand, both sides compiled first: the rate is the speedup, and
  the two sides' returns must be bit-identical.

The first sampling size, float32, is also timed with each of ``--extra-blocks`` policies per
compiled block (the engine picks up to 16384 on a GPU: ``jaxagg.kernels.returns.block_size``),
and every float32 Krylov size with the preconditioner the engine did not pick (the mean-policy
one is a GPU's default up to 1,024 states: ``jaxagg.kernels.evaluation.default_preconditioner``).

Checks: every sampled policy's float64 residual <= 1e-6 (the engine refuses worse); on attention
(3,3), the same seed's returns with ``devices=[GPU]`` and ``devices=jax.devices("cpu")`` agree to
1e-6 of each agent's return range in float64 (1e-5 in float32), LU and Krylov; every one of the
2n MDPs certified; the tuner's trace and the chains' points finite.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from common import Checks, add_common_arguments, publish
from sweep import instances as unichain_garnets

import jaxagg as ja
from jaxagg.kernels.ascent import TuneProblem, tune_logits
from jaxagg.kernels.evaluation import PRECONDITIONER_MAX_STATES
from jaxagg.kernels.evaluation import TOL as RESIDUAL_TOL
from jaxagg.kernels.hit_and_run import make_directions, run_chains
from jaxagg.kernels.precision import precision_scope
from jaxagg.kernels.smooth import quantile_grid
from jaxagg.solvers import mdp
from jaxagg.solvers.interior import parametrise_hull

AGREEMENT = {"float64": 1e-6, "float32": 1e-5}
"""Largest GPU-vs-CPU ``|Δ return| / range`` on the small case, per precision."""
FULL = {"sampling": ["5,3", "7,3"], "lu": ["5,3"], "uniform": "5,3", "tuner": "7,3", "bounds": "7,3", "agreement": "3,3",
        "agreement_samples": 1024, "garnet": (50, 4, 4)}
SMOKE = {"sampling": ["2,3"], "lu": ["2,3"], "uniform": "2,3", "tuner": "2,3", "bounds": "2,3", "agreement": "2,3",
         "agreement_samples": 64, "garnet": (10, 3, 3)}
SMOKE_OPTIONS = {"chains": 64, "sweeps": 2, "restarts": 2, "tuner_steps": 2, "chunk": 64, "seconds": 0.2, "extra_blocks": [64],
                 "instances": 4, "instance_samples": 64}
COLUMNS = [
    ("measurement", "what", ""),
    ("instance", "instance", ""),
    ("S", "S", "d"),
    ("precision", "precision", ""),
    ("setting", "setting", ""),
    ("rate", "rate", ".4g"),
    ("unit", "unit", ""),
    ("1st call s (compile)", "first_s", ".1f"),
    ("timed s", "seconds", ".3g"),
    ("max residual", "residual", ".1e"),
    ("note", "note", ""),
]


def attention(size: str) -> ja.MOMDP:
    factories, phases = (int(x) for x in size.split(","))
    return ja.envs.attention_allocation(factories, phases, seed=0)


def timed(function):
    began = time.perf_counter()
    value = jax.block_until_ready(function())
    return time.perf_counter() - began, value


# ------------------------------------------------------------------ rows
def sampling_row(size: str, precision: str, method: str, options, block: int | None = None,
                 preconditioner: str | None = None) -> tuple[dict, ja.ReturnSample]:
    momdp = attention(size)
    chunk = max(options.chunk, block or 0)
    settings = {"precision": precision, "method": method, "chunk_size": chunk, "block": block, "preconditioner": preconditioner}
    first, _ = timed(lambda: ja.sample(momdp, chunk, **settings))
    probe = ja.sample(momdp, chunk, **settings).info["seconds"]
    samples = max(1, round(options.seconds / probe)) * chunk
    result = ja.sample(momdp, samples, **settings)
    engine = result.info["evaluation"]
    return ({"what": "policy sampling", "instance": f"attention ({size})", "S": momdp.num_states, "precision": precision,
             "setting": f"{'/'.join(str(engine[k]) for k in ('method', 'operator', 'solver', 'preconditioner') if k in engine)}, "
                        f"N={samples}, "
                        f"chunk {chunk}, block {engine['block']}",
             "rate": samples / result.info["seconds"], "unit": "policies/s", "first_s": first, "seconds": result.info["seconds"],
             "residual": result.info["residual_max"]}, result)


def uniform_row(size: str, options, checks: Checks) -> dict:
    """Chain-steps/s of the compiled hit-and-run kernel (as bench/hit_and_run.py, with many chains)."""
    momdp = attention(size)
    hull = parametrise_hull(ja.occupancy_polytope(momdp))
    chains, sweeps = options.chains, options.sweeps
    with precision_scope("float32"):
        basis = jnp.asarray(hull.basis, jnp.float32)
        center = jnp.asarray(hull.center[hull.support], jnp.float32)
        starts = jnp.broadcast_to(center, (chains, center.size))

        def run():
            return run_chains(jax.random.key(0), starts, make_directions(basis), jnp.arange(chains, dtype=jnp.uint32),
                              center, basis, num_samples=2, thin=max(1, sweeps // 2), kind="coordinate")

        first, _ = timed(run)
        seconds, (points, _) = timed(run)
    checks.that(f"uniform {size}: chain points finite", bool(np.isfinite(np.asarray(points)).all()))
    steps = chains * 2 * max(1, sweeps // 2) * hull.dimension
    return {"what": "uniform chain-steps", "instance": f"attention ({size})", "S": momdp.num_states, "precision": "float32",
            "setting": f"{chains} chains, k={hull.dimension}, {2 * max(1, sweeps // 2)} sweeps, coordinate",
            "rate": steps / seconds, "unit": "chain-steps/s", "first_s": first, "seconds": seconds}


def tuner_row(size: str, sample: ja.ReturnSample, options, checks: Checks) -> dict:
    """Seconds per Adam step of every restart (borda objective, iterative solves, float32)."""
    momdp = attention(size)
    restarts, steps = options.restarts, options.tuner_steps
    scale = np.maximum(sample.returns.std(axis=0), 1e-12)
    with precision_scope("float32"):
        f32 = jnp.float32
        problem = TuneProblem(jnp.asarray(momdp.P, f32), jnp.asarray(momdp.mu, f32), jnp.asarray(momdp.R, f32),
                              jnp.asarray(quantile_grid(jnp.asarray(sample.sorted_returns), 1024), f32), jnp.asarray(scale, f32),
                              jnp.asarray(0.9, f32))
        logits = jnp.asarray(np.random.default_rng(0).standard_normal((restarts, momdp.num_states, momdp.num_actions)), f32)

        def run():
            return tune_logits(logits, problem, objective="borda", gamma=momdp.gamma, steps=steps, learning_rate=0.1,
                               temperature=(0.3, 0.003), linear_solve="iterative")

        first, _ = timed(run)
        seconds, (_, trace) = timed(run)
    checks.that(f"tuner {size}: trace finite", bool(np.isfinite(np.asarray(trace)).all()))
    return {"what": "tuner step", "instance": f"attention ({size})", "S": momdp.num_states, "precision": "float32",
            "setting": f"{restarts} restarts, borda, iterative, {steps} steps per call", "rate": steps / seconds, "unit": "steps/s",
            "first_s": first, "seconds": seconds / steps, "note": "timed s: per step"}


def bounds_row(size: str, checks: Checks) -> dict:
    momdp = attention(size)
    n, S, A = momdp.num_agents, momdp.num_states, momdp.num_actions
    rewards = np.concatenate([momdp.reward_matrix, -momdp.reward_matrix]).reshape(2 * n, S, A)
    first, _ = timed(lambda: mdp.solve_mdps(momdp.transitions, rewards, momdp.mu, momdp.gamma))
    seconds, solved = timed(lambda: mdp.solve_mdps(momdp.transitions, rewards, momdp.mu, momdp.gamma))
    checks.at_least(f"bounds {size}: certified MDPs (of {2 * n})", int(solved.certified.sum()), 2 * n)
    return {"what": "bounds (policy iteration)", "instance": f"attention ({size})", "S": S, "precision": "float64",
            "setting": f"{2 * n} MDPs, {momdp.transition_form}, {int(solved.iterations.max())} evaluations (max)",
            "rate": 2 * n / seconds, "unit": "MDPs/s", "first_s": first, "seconds": seconds,
            "residual": float(solved.residual.max())}


def batched_row(shape: tuple[int, int, int], options, checks: Checks) -> dict:
    """``ja.sample_instances`` against a loop of ``ja.sample`` on the same Garnets (bounds cached), both compiled first."""
    momdps, N = unichain_garnets(options.instances, *shape)[0], options.instance_samples
    for momdp in momdps:
        ja.return_bounds(momdp)  # cached: both sides sample with the bounds known
    seeds = list(range(len(momdps)))
    ja.sample_instances(momdps, N, seeds=seeds)  # compiles for this many instances
    ja.sample(momdps[0], N, seed=0)
    loop_seconds, looped = timed(lambda: [ja.sample(m, N, seed=k) for k, m in zip(seeds, momdps)])
    batched_seconds, together = timed(lambda: ja.sample_instances(momdps, N, seeds=seeds))
    diff = max(float(np.max(np.abs(x.returns - y.returns))) for x, y in zip(looped, together))
    checks.that("batched instances: returns bit-identical to a loop of ja.sample", diff == 0.0, diff)
    S, A, n = shape
    return {"what": "batched instances (speedup)", "instance": f"{len(momdps)} Garnets ({S},{A},n={n})", "S": S,
            "precision": "float32", "setting": f"{N} samples each, {together[0].info['evaluation']['method']}, bounds cached",
            "rate": loop_seconds / batched_seconds, "unit": "x loop of ja.sample", "seconds": batched_seconds,
            "residual": max(s.info["residual_max"] for s in together), "note": f"loop {loop_seconds:.2f} s"}


def agreement_rows(size: str, samples: int, checks: Checks) -> list[dict]:
    """The same seed on the accelerator and on the CPU: returns agree to AGREEMENT of the range."""
    momdp = attention(size)
    span = np.maximum(ja.return_bounds(momdp).span, 1e-300)
    device, cpu = jax.devices()[0], jax.devices("cpu")
    rows = []
    for precision in ("float32", "float64"):
        for method in ("lu", "krylov"):
            options = {"precision": precision, "method": method, "chunk_size": 256, "seed": 7}
            here = ja.sample(momdp, samples, devices=[device], **options)
            there = ja.sample(momdp, samples, devices=cpu[:1], **options)
            delta = float((np.abs(here.returns - there.returns) / span).max())
            checks.at_most(f"agreement {size} {precision} {method}: max |Δ return| / range, {device.platform} vs cpu", delta,
                           AGREEMENT[precision])
            rows.append({"what": f"{device.platform} vs cpu returns", "instance": f"attention ({size})", "S": momdp.num_states,
                         "precision": precision, "setting": f"{method}/{here.info['evaluation']['operator']}, N={samples}, seed 7",
                         "rate": delta, "unit": "max \\|Δ return\\| / range", "residual": max(here.info["residual_max"],
                                                                                          there.info["residual_max"])})
    return rows


# ------------------------------------------------------------------ driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="target length of one timed sampling call")
    parser.add_argument("--chunk", type=int, default=4096, help="policies per device call when sampling")
    parser.add_argument("--chains", type=int, default=2048, help="hit-and-run chains")
    parser.add_argument("--sweeps", type=int, default=4, help="hit-and-run sweeps (of k steps) timed")
    parser.add_argument("--restarts", type=int, default=8, help="tuner restarts (one batched step each)")
    parser.add_argument("--tuner-steps", type=int, default=20, help="tuner steps per timed call")
    parser.add_argument("--extra-blocks", type=lambda t: [int(x) for x in t.split(",") if x], default=[256, 1024],
                        help="more block sizes timed at the first sampling size, float32 (comma-separated; '' for none)")
    parser.add_argument("--instances", type=int, default=200, help="Garnets in the batched-instances row")
    parser.add_argument("--instance-samples", type=int, default=2000, help="samples per Garnet in the batched-instances row")
    args = add_common_arguments(parser).parse_args()
    sizes = SMOKE if args.smoke else FULL
    if args.smoke:
        for name, value in SMOKE_OPTIONS.items():
            setattr(args, name, value)
    device = jax.devices()[0]
    if device.platform != "gpu" and not args.smoke:
        print(f"bench/gpu.py: no GPU here (jax.devices() = {jax.devices()}); install jax[cuda12] on a GPU machine, "
              "or run --smoke to exercise the script on the CPU", file=sys.stderr)
        sys.exit(2)
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}", flush=True)
    checks = Checks()
    rows, samples, failures = [], {}, []

    def add(row):
        rows.append(row)
        print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)

    def attempt(what: str, make_rows, *arguments) -> None:
        """Run one measurement; a failure (an exception or a failed check) is reported as a row and
        the run goes on, since a GPU is rarely at hand: the script exits non-zero at the end."""
        try:
            for row in make_rows(*arguments):
                add(row)
        except Exception as error:
            traceback.print_exc()
            failures.append(what)
            add({"what": what, "note": f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"})

    def sampling_rows(size, precision, method):
        row, result = sampling_row(size, precision, method, args)
        checks.at_most(f"sampling {size} {precision} {method}: largest residual", row["residual"], RESIDUAL_TOL)
        samples[(size, precision)] = result
        yield row
        for block in args.extra_blocks if (size, precision) == (sizes["sampling"][0], "float32") else []:
            yield sampling_row(size, precision, method, args, block)[0]
        if method == "krylov" and precision == "float32":  # the other preconditioner, for comparison
            other = "none" if result.info["evaluation"]["preconditioner"] == "mean-policy" else "mean-policy"
            if other == "none" or row["S"] <= PRECONDITIONER_MAX_STATES:
                compared, _ = sampling_row(size, precision, method, args, preconditioner=other)
                checks.at_most(f"sampling {size} {precision} {method} {other}: largest residual", compared["residual"],
                               RESIDUAL_TOL)
                yield compared

    attempt("agreement", lambda: agreement_rows(sizes["agreement"], sizes["agreement_samples"], checks))
    for size in sizes["sampling"]:
        for precision in ("float32", "float64"):
            for method in ["krylov"] + (["lu"] if size in sizes["lu"] else []):
                attempt(f"policy sampling {size} {precision} {method}", sampling_rows, size, precision, method)
    attempt("uniform chain-steps", lambda: [uniform_row(sizes["uniform"], args, checks)])
    attempt("tuner step", lambda: [tuner_row(sizes["tuner"], samples.get((sizes["tuner"], "float32"))
                                             or ja.sample(attention(sizes["tuner"]), 1024, seed=0), args, checks)])
    attempt("bounds (policy iteration)", lambda: [bounds_row(sizes["bounds"], checks)])
    attempt("batched instances", lambda: [batched_row(sizes["garnet"], args, checks)])

    preface = f"Device: {device.device_kind} ({device.platform}, {len(jax.devices())} device(s)), jax {jax.__version__}"
    publish(args, "gpu", f"GPU rows: sampling, uniform chains, tuner step, PI bounds on {device.device_kind}", COLUMNS, rows, checks,
            preface=preface, notes="1st call: includes compilation (and, for sampling, the return bounds). The agreement rows' "
                                   "rate column is the largest |Δ return| / range between this device and the CPU.",
            extra={"device_kind": device.device_kind, "platform": device.platform, "failed": failures})
    if failures:
        sys.exit(f"bench/gpu.py: {len(failures)} measurement(s) failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
