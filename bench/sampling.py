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
checked against ``ja.occupancies(..., precision="float64")`` on two of jaxagg's own policies
(column ``max |Δd|``). The floor counts jaxagg's arithmetic per policy, LU of the S x S system
(2/3 S^3) + two triangular solves (2 S^2) + forming ``P_pi`` (2 S^2 A) + the returns (2 n S A),
and divides a measured peak by it: the best of several 2048 x 2048 ``jnp`` matmuls in each
precision, jitted, after warm-up, on XLA's default CPU thread pool (all cores). ``CPU/wall`` is
process CPU time over wall time during the timed calls: about 1 means one busy core.

    python bench/sampling.py                      # (3,3) (4,3) (5,3) (6,3); appends to bench/RESULTS.md
    python bench/sampling.py --no-record --sizes 5,3 --precisions float32 --samples 4096
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from common import markdown_table, publish

import jaxagg as ja
from jaxagg.kernels.policies import random_policies
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.kernels.returns import BLOCK

REFERENCE_BATCH = 50
DOUBLINGS = 30
MAX_CHUNK = 4096
CHUNK_FLOPS = 5e10
"""Auto chunk size: at most this many floor-counted flops per chunk (keeps warm-up short at S=729)."""
BASELINE_FLOPS = 2.5e11
MAX_BASELINE = 20_000
"""Auto baseline count: about this many reference-method flops (a few seconds in numpy)."""


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
        a = jax.random.normal(jax.random.key(0), (size, size), dtype)
        b = jax.random.normal(jax.random.key(1), (size, size), dtype)
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
        pi = np.asarray(random_policies(jax.random.key(seed), jnp.asarray(indices, jnp.uint32), S, A, jnp.float64))
    d_ref = reference_occupancies(pi, np.asarray(momdp.P, np.float64), np.asarray(momdp.mu, np.float64))
    d_jax = ja.occupancies(momdp, indices, seed=seed, precision="float64")
    return float(np.abs(d_ref.reshape(len(indices), -1) - d_jax).max())


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return time.perf_counter() - wall, time.process_time() - cpu, value


# ------------------------------------------------------------------ jaxagg
def auto_chunk(flops: float) -> int:
    chunk = 2 ** int(math.floor(math.log2(max(CHUNK_FLOPS / flops, 1))))
    return max(BLOCK, min(MAX_CHUNK, chunk))


def bench_jaxagg(momdp, precision: str, chunk: int, samples: int | None, seconds: float, repeats: int):
    """(N, best policies/s, CPU/wall of that call, all rates)."""
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
    best = max(rates)
    return samples, best[0], best[1], [r for r, _ in rates]


# ------------------------------------------------------------------ driver
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
                        help="policies for the numpy reference method; default: about %.0e flops, 2..%d" % (BASELINE_FLOPS, MAX_BASELINE))
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    peaks = {}
    for precision in args.precisions:
        peaks[precision] = peak_gflops(precision)
        print(f"peak {precision}: {peaks[precision][0]:.1f} GFLOP/s (2048^2 jnp matmul, CPU/wall {peaks[precision][1]:.2f})", flush=True)

    header = ["instance", "S", "precision", "N", "jaxagg policies/s", "CPU/wall", "numpy reference-method policies/s",
              "ref N", "ref CPU/wall", "max \\|Δd\\|", "speed-up", "FLOPs/policy", "floor policies/s", "% of floor"]
    rows = []
    for size in args.sizes:
        factories, phases = (int(x) for x in size.split(","))
        momdp = ja.envs.attention_allocation(factories, phases, seed=0)
        S, A, n = momdp.num_states, momdp.num_actions, momdp.num_agents
        flops = jaxagg_flops(S, A, n)

        ref_count = args.baseline_samples
        if ref_count is None:
            ref_count = int(min(MAX_BASELINE, max(2, BASELINE_FLOPS / reference_flops(S, A, n))))
            if ref_count > REFERENCE_BATCH:
                ref_count = ref_count // REFERENCE_BATCH * REFERENCE_BATCH
        reference_method(momdp, min(2, ref_count), np.random.default_rng(1))  # warm numpy/BLAS
        ref_wall, ref_cpu, _ = timed(lambda: reference_method(momdp, ref_count, np.random.default_rng(0)))
        ref_rate = ref_count / ref_wall
        error = reference_check(momdp, np.arange(2))
        print(f"({factories},{phases}) S={S}: numpy reference method {ref_rate:.3g} policies/s "
              f"({ref_count} in {ref_wall:.2f} s, CPU/wall {ref_cpu / ref_wall:.2f}); max |Δd| vs jaxagg {error:.1e}", flush=True)

        chunk = args.chunk_size or auto_chunk(flops)
        for precision in args.precisions:
            samples, rate, cpu_ratio, rates = bench_jaxagg(momdp, precision, chunk, args.samples, args.seconds, args.repeats)
            floor = peaks[precision][0] * 1e9 / flops
            print(f"  {precision}: jaxagg {rate:.4g} policies/s (N={samples}, chunk {chunk}, runs "
                  + ", ".join(f"{r:.4g}" for r in rates) + f"; CPU/wall {cpu_ratio:.2f}); floor {floor:.4g}", flush=True)
            rows.append([f"({factories},{phases})", str(S), precision, str(samples), f"{rate:.4g}", f"{cpu_ratio:.2f}",
                         f"{ref_rate:.3g}", str(ref_count), f"{ref_cpu / ref_wall:.2f}", f"{error:.1e}",
                         f"{rate / ref_rate:.3g}x", f"{flops:.3g}", f"{floor:.4g}", f"{100 * rate / floor:.2g}%"])

    peak_line = "Peak (best 2048x2048 jnp matmul, all cores): " + ", ".join(
        f"{p} {g:.1f} GFLOP/s (CPU/wall {c:.2f})" for p, (g, c) in peaks.items())
    table = peak_line + "\n\n" + markdown_table(header, rows)
    publish(f"policy-measure sampling vs the reference method and the arithmetic floor (best of {args.repeats})",
            table, args.no_record)


if __name__ == "__main__":
    main()
