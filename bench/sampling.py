"""Throughput of the ``policy`` measure (SPEC §2) on attention allocation (SPEC §4): jaxagg, the
reference implementation's numpy method, and the arithmetic floor of this machine.

Method. For each instance and precision, ``ja.sample(momdp, N, measure="policy")`` is first called
once with one chunk of the same chunk size (so XLA compilation is excluded), then once more on one
chunk to estimate the rate, and N (a whole number of chunks) is chosen so that each timed call
takes about ``--seconds``; the timed calls' wall time is ``info["seconds"]`` (the LP return bounds
are cached and outside it) and the best of ``--repeats`` is reported. The baseline reproduces the
reference implementation's method in numpy float64, in batches of 50 policies: ``pi(.|s) ~
Dirichlet(1_A)`` per state, ``P_pi`` by einsum, and the Cesàro limit of ``P_pi`` by repeated
squaring, ``C_{k+1} = C_k (I + P^{2^k}) / 2``, ``P^{2^{k+1}} = (P^{2^k})^2`` from ``C_0 = I``, for
30 doublings (an average over 2^30 steps; two S x S matmuls per doubling, ~120 S^3 flops per
policy), then ``rho = mu C``, ``d = rho pi`` and the returns; it is timed on a small count, and
checked against ``ja.sample_occupancies(..., precision="float64")`` on two of jaxagg's own
policies (column ``max |Δd|``, at most 1e-6). The floor counts jaxagg's arithmetic per policy, LU
of the S x S system (2/3 S^3) + two triangular solves (2 S^2) + forming ``P_pi`` (2 S^2 A) + the
returns (2 n S A), and divides a measured peak by it: the best of several ``--peak-size``-square
(2048) ``jnp`` matmuls in each precision, jitted, after warm-up, on XLA's default CPU thread pool
(all cores). ``CPU/wall`` is process CPU time over wall time during the timed calls: about 1
means one busy core.

Checks, on every timed call: the occupancies behind its first and last samples (recomputed from
their keys, ``ja.sample_occupancies``) lie in O, give the returns the call reported, and match the
exact float64 map of their policies (:func:`jaxagg.polytope.occupancy_of_policy`), within
:data:`TOLERANCES` (float32: 1e-6 absolute in O and against the exact map, relative 1e-5 on the
returns; float64: 1e-10, 1e-10 and 1e-12).

    python bench/sampling.py                      # (3,3) (4,3) (5,3) (6,3); records in bench/RESULTS.md
    python bench/sampling.py --no-record --sizes 5,3 --precisions float32 --samples 4096
    python bench/sampling.py --smoke              # (2,3), a few hundred samples: seconds, not recorded
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import Checks, add_common_arguments, publish

import jaxagg as ja
from jaxagg.kernels.policies import random_policies
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.kernels.returns import BLOCK
from jaxagg.polytope import occupancy_of_policy, occupancy_polytope, policy_from_occupancy

REFERENCE_BATCH = 50
DOUBLINGS = 30
MAX_CHUNK = 4096
CHUNK_FLOPS = 5e10
"""Auto chunk size: at most this many floor-counted flops per chunk (keeps warm-up short at S=729)."""
BASELINE_FLOPS = 2.5e11
MAX_BASELINE = 20_000
"""Auto baseline count: about this many reference-method flops (a few seconds in numpy)."""
REFERENCE_TOL = 1e-6
"""Largest ``max |d_reference - d_jaxagg|`` accepted (the reference's Cesàro limit over 2^30 steps
is accurate to about 1e-9 on these instances)."""
TOLERANCES = {
    "float32": {"residual": 1e-6, "exact": 1e-6, "returns": 1e-5},
    "float64": {"residual": 1e-10, "exact": 1e-10, "returns": 1e-12},
}
"""Per precision: largest residual ``max(|E d - b|, -min d)`` of a sampled occupancy, largest
``max |d - d_exact|`` against the exact float64 map of its policy, and largest relative
difference between its returns and those the timed call reported."""
SMOKE = {"sizes": ["2,3"], "samples": 256, "repeats": 1, "chunk_size": 64, "baseline_samples": 4, "peak_size": 256}


# ------------------------------------------------------------------ arithmetic
def jaxagg_flops(S: int, A: int, n: int) -> float:
    """Flops per policy of jaxagg's method: LU + two triangular solves + P_pi + returns."""
    return 2 / 3 * S**3 + 2 * S**2 + 2 * S**2 * A + 2 * n * S * A


def reference_flops(S: int, A: int, n: int) -> float:
    """Flops per policy of the reference method: two S x S matmuls per doubling (plus P_pi etc.)."""
    return DOUBLINGS * 2 * 2 * S**3 + 2 * S**2 * A + 2 * S**2 + 2 * n * S * A


def peak_gflops(precision: str, size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best GFLOP/s of a jitted ``size x size`` jnp matmul, and its CPU/wall ratio."""
    with precision_scope(precision):
        dtype = PRECISIONS[precision]
        rng = np.random.default_rng(0)
        a, b = (jnp.asarray(rng.standard_normal((size, size)), dtype) for _ in range(2))
        matmul = jax.jit(jnp.matmul)
        matmul(a, b).block_until_ready()
        best = (math.inf, 0.0)
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            matmul(a, b).block_until_ready()
            best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return 2 * size**3 / best[0] / 1e9, best[1] / best[0]


# ------------------------------------------------------------------ the reference method (numpy)
def cesaro_limit(P_pi: np.ndarray, doublings: int = DOUBLINGS) -> np.ndarray:
    """Cesàro limit ``[B, S, S]`` of a batch of stochastic matrices by repeated squaring:
    ``C_{k+1} = C_k (I + Q_k) / 2`` with ``Q_k = P^{2^k}``, from ``C_0 = I``."""
    C = np.broadcast_to(np.eye(P_pi.shape[-1]), P_pi.shape).copy()
    Q = P_pi
    for _ in range(doublings):
        C = 0.5 * (C + C @ Q)
        Q = Q @ Q
    return C


def reference_occupancies(pi: np.ndarray, P: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Occupancies ``[B, S, A]`` of policies ``[B, S, A]``: ``d = (mu C_pi) pi``."""
    P_pi = np.einsum("bsa,sat->bst", pi, P)
    rho = np.einsum("s,bst->bt", mu, cesaro_limit(P_pi))
    return rho[:, :, None] * pi


def reference_method(momdp, count: int, rng: np.random.Generator) -> np.ndarray:
    """Returns ``[count, n]`` of ``count`` Dirichlet policies, in batches of 50."""
    S, A = momdp.num_states, momdp.num_actions
    P, mu, R = np.asarray(momdp.P, np.float64), np.asarray(momdp.mu, np.float64), momdp.reward_matrix
    out = []
    for begin in range(0, count, REFERENCE_BATCH):
        batch = min(REFERENCE_BATCH, count - begin)
        pi = rng.dirichlet(np.ones(A), size=(batch, S))
        d = reference_occupancies(pi, P, mu).reshape(batch, S * A)
        out.append(d @ R.T)
    return np.concatenate(out)


def reference_check(momdp, indices: np.ndarray, seed: int = 0) -> float:
    """max |d_reference - d_jaxagg| (float64) on jaxagg's own policies ``indices``."""
    S, A = momdp.num_states, momdp.num_actions
    with precision_scope("float64"):
        policies = jax.jit(random_policies, static_argnums=(2, 3, 4))  # one compilation, not one per operation
        pi = np.asarray(policies(jax.random.key(seed), jnp.asarray(indices, jnp.uint32), S, A, jnp.float64))
    d_ref = reference_occupancies(pi, np.asarray(momdp.P, np.float64), np.asarray(momdp.mu, np.float64))
    d_jax = ja.sample_occupancies(momdp, indices, seed=seed, precision="float64")
    return float(np.abs(d_ref.reshape(len(indices), -1) - d_jax).max())


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return time.perf_counter() - wall, time.process_time() - cpu, value


# ------------------------------------------------------------------ jaxagg
def auto_chunk(flops: float) -> int:
    chunk = 2 ** int(math.floor(math.log2(max(CHUNK_FLOPS / flops, 1))))
    return max(BLOCK, min(MAX_CHUNK, chunk))


def check_sample(checks: Checks, label: str, momdp, result, precision: str) -> None:
    """The occupancies behind the first and last samples of a timed call: in O, giving the
    returns it reported, and equal to the exact float64 map of their policies (:data:`TOLERANCES`)."""
    tol = TOLERANCES[precision]
    indices = np.unique([0, result.num_samples - 1])
    d = ja.sample_occupancies(momdp, indices, seed=result.seed, precision=precision)
    polytope = occupancy_polytope(momdp)
    checks.at_most(f"{label}: residual in O of sampled occupancies", max(polytope.residual(x) for x in d), tol["residual"])
    scale = max(1e-300, float(np.abs(result.returns).max()))
    checks.at_most(f"{label}: relative |R d - reported returns|", np.abs(momdp.returns(d) - result.returns[indices]).max() / scale,
                   tol["returns"])
    exact = np.stack([occupancy_of_policy(momdp, policy_from_occupancy(x, momdp.num_states, momdp.num_actions)) for x in d])
    checks.at_most(f"{label}: max |d - exact float64 map of its policy|", np.abs(d - exact).max(), tol["exact"])


def bench_jaxagg(momdp, precision: str, chunk: int, samples: int | None, seconds: float, repeats: int, checks: Checks,
                 label: str):
    """(N, best policies/s, CPU/wall of that call, all rates); every timed call is checked."""
    ja.sample(momdp, chunk, precision=precision, chunk_size=chunk)  # compile (and LP bounds, cached)
    if samples is None:
        probe = ja.sample(momdp, chunk, precision=precision, chunk_size=chunk).info["seconds"]
        samples = max(1, round(seconds * chunk / probe / chunk)) * chunk
    else:
        samples = math.ceil(samples / chunk) * chunk  # whole chunks: one compiled shape
    rates = []
    for _ in range(repeats):
        cpu = time.process_time()
        result = ja.sample(momdp, samples, precision=precision, chunk_size=chunk)
        cpu = time.process_time() - cpu
        rates.append((samples / result.info["seconds"], cpu / result.info["seconds"]))
        check_sample(checks, f"{label} {precision} N={samples}", momdp, result, precision)
    best = max(rates)
    return samples, best[0], best[1], [r for r, _ in rates]


# ------------------------------------------------------------------ driver
COLUMNS = [
    ("instance", "instance", ""),
    ("S", "S", "d"),
    ("precision", "precision", ""),
    ("N", "N", "d"),
    ("jaxagg policies/s", "rate", ".4g"),
    ("CPU/wall", "cpu_wall", ".2f"),
    ("numpy reference-method policies/s", "reference_rate", ".3g"),
    ("ref N", "reference_N", "d"),
    ("ref CPU/wall", "reference_cpu_wall", ".2f"),
    ("max \\|Δd\\|", "reference_error", ".1e"),
    ("speed-up", "speedup", lambda x: f"{x:.3g}x"),
    ("FLOPs/policy", "flops", ".3g"),
    ("floor policies/s", "floor_rate", ".4g"),
    ("% of floor", "percent_of_floor", lambda x: f"{x:.2g}%"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["3,3", "4,3", "5,3", "6,3"], help="factories,phases pairs")
    parser.add_argument("--samples", type=int, default=None,
                        help="jaxagg samples per timing (rounded up to whole chunks); default: about --seconds")
    parser.add_argument("--seconds", type=float, default=4.0, help="target length of one jaxagg timing (auto N)")
    parser.add_argument("--repeats", type=int, default=3, help="jaxagg timings per cell; the best is reported")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"jaxagg chunk size; default min({MAX_CHUNK}, a power of two with <= {CHUNK_FLOPS:.0e} flops)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "float64"], choices=list(PRECISIONS))
    parser.add_argument("--baseline-samples", type=int, default=None,
                        help=f"policies for the numpy reference method; default: about {BASELINE_FLOPS:.0e} flops, 2..{MAX_BASELINE}")
    parser.add_argument("--peak-size", type=int, default=2048, help="matrix size of the peak-GFLOP/s matmul")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)

    checks = Checks()
    peaks = {}
    for precision in args.precisions:
        peaks[precision] = peak_gflops(precision, args.peak_size)
        print(f"peak {precision}: {peaks[precision][0]:.1f} GFLOP/s ({args.peak_size}^2 jnp matmul, "
              f"CPU/wall {peaks[precision][1]:.2f})", flush=True)

    rows = []
    for size in args.sizes:
        factories, phases = (int(x) for x in size.split(","))
        label = f"({factories},{phases})"
        momdp = ja.envs.attention_allocation(factories, phases, seed=0)
        S, A, n = momdp.num_states, momdp.num_actions, momdp.num_agents
        flops = jaxagg_flops(S, A, n)

        ref_count = args.baseline_samples
        if ref_count is None:
            ref_count = int(min(MAX_BASELINE, max(2, BASELINE_FLOPS / reference_flops(S, A, n))))
            if ref_count > REFERENCE_BATCH:
                ref_count = ref_count // REFERENCE_BATCH * REFERENCE_BATCH
        reference_method(momdp, min(2, ref_count), np.random.default_rng(1))  # warm numpy/BLAS
        ref_wall, ref_cpu, _ = timed(lambda momdp=momdp, count=ref_count: reference_method(momdp, count, np.random.default_rng(0)))
        ref_rate = ref_count / ref_wall
        error = checks.at_most(f"{label}: max |d_reference - d_jaxagg| (float64)", reference_check(momdp, np.arange(2)), REFERENCE_TOL)
        print(f"{label} S={S}: numpy reference method {ref_rate:.3g} policies/s "
              f"({ref_count} in {ref_wall:.2f} s, CPU/wall {ref_cpu / ref_wall:.2f}); max |Δd| vs jaxagg {error:.1e}", flush=True)

        chunk = args.chunk_size or auto_chunk(flops)
        for precision in args.precisions:
            samples, rate, cpu_ratio, rates = bench_jaxagg(momdp, precision, chunk, args.samples, args.seconds, args.repeats,
                                                           checks, label)
            floor = peaks[precision][0] * 1e9 / flops
            print(f"  {precision}: jaxagg {rate:.4g} policies/s (N={samples}, chunk {chunk}, runs "
                  + ", ".join(f"{r:.4g}" for r in rates) + f"; CPU/wall {cpu_ratio:.2f}); floor {floor:.4g}", flush=True)
            rows.append({"instance": label, "S": S, "precision": precision, "N": samples, "chunk": chunk, "rate": rate,
                         "rates": rates, "cpu_wall": cpu_ratio, "reference_rate": ref_rate, "reference_N": ref_count,
                         "reference_cpu_wall": ref_cpu / ref_wall, "reference_error": error, "speedup": rate / ref_rate,
                         "flops": flops, "floor_rate": floor, "percent_of_floor": 100 * rate / floor})

    peak_line = f"Peak (best {args.peak_size}x{args.peak_size} jnp matmul, all cores): " + ", ".join(
        f"{p} {g:.1f} GFLOP/s (CPU/wall {c:.2f})" for p, (g, c) in peaks.items())
    publish(args, "sampling", f"policy-measure sampling vs the reference method and the arithmetic floor (best of {args.repeats})",
            COLUMNS, rows, checks, preface=peak_line,
            extra={"peak_gflops": {p: {"gflops": g, "cpu_wall": c, "size": args.peak_size} for p, (g, c) in peaks.items()}})


if __name__ == "__main__":
    main()
