"""Throughput of the ``policy`` measure (SPEC §2), one row per (instance, precision, evaluation
method, transition operator): jaxagg's dense LU against its batched GMRES (Krylov) on the dense
and on the instance's own operator (Kronecker for attention allocation, sparse lists for large
garnets), beside the reference implementation's numpy method and the arithmetic floor of this
machine.

Instances. Attention allocation (SPEC §4) ``(F,3)`` from ``--sizes`` (base agents, seed 0, average
reward; Kronecker operator, dense ``P`` built on request), and garnets from ``--garnets``:
``ja.envs.garnet(S, 4, 5, agents=3, seed=0, criterion="discounted", gamma=0.95)`` (4 actions,
branching 5, 3 agents; dense up to 2000 states, sparse beyond). The garnets are discounted, not
average-reward: a random garnet is not guaranteed unichain for every full-support policy (which
the average-reward policy measure requires), and gamma = 0.95 keeps float32 allowed (``1 - gamma
>= 1e-3``) and the systems well conditioned, so that the rows compare the evaluation methods,
not a slow-mixing chain.

Rows. ``lu`` (a dense LU per policy) runs where the dense ``P`` exists (at most 1 GiB) and ``S <=
--lu-max-states`` (800; an LU per policy costs ``2/3 S^3``); ``krylov`` runs on the dense operator
where the dense ``P`` exists and ``S <= --dense-max-states`` (2200), and on the instance's own
operator where that is not dense. Every other combination is listed as a skipped row saying why.

Method. Each row runs in a fresh child process (``spawn``; rows of instances with fewer than
``--isolate-min-states`` states run in this process instead), so that its peak resident memory
(``ru_maxrss``: Python, JAX, the instance, its return bounds and the sampling) is its own. In it,
``ja.sample(momdp, N, precision=..., method=..., operator=...)`` is first called on one chunk
(compilation and the return bounds, cached, are excluded from the timings), then once more on one
chunk to estimate the rate, and N (a whole number of chunks) is chosen so that each timed call
takes about ``--seconds``; the timed calls' wall time is ``info["seconds"]`` and the best of
``--repeats`` is reported, with the largest ``info["residual_max"]`` of the timed calls (the
float64 relative residual ``||E rho - b||_inf / ||b||_inf`` of the worst sampled policy; every
sample must meet 1e-6). ``max |Δ return| / range``: on ``--reference-samples`` samples of the last
timed call (spread over its indices), the largest difference from a float64 dense-LU evaluation
of the same policies (``ja.sample_occupancies(..., precision="float64", method="lu")``), relative
to each agent's return range; where a float64 LU is out of reach (no dense ``P``, or ``S >
--reference-lu-max-states``) the reference is a float64 Krylov run on the instance's own operator.
Chunks: LU as before (at most 5e10 floor-counted flops per chunk, at most 4096); Krylov at most
``2^22 / S`` policies per chunk (GMRES keeps ``RESTART + 1`` vectors of S per policy) and at most
5e10 flops at an assumed 100 operator products per policy; at least 32.

Baseline. The reference implementation's method in numpy float64, in batches of 50 policies
(attention only, average reward, ``S <= --baseline-max-states``): ``pi(.|s) ~ Dirichlet(1_A)`` per
state, ``P_pi`` by einsum, and the Cesàro limit of ``P_pi`` by repeated squaring, ``C_{k+1} = C_k
(I + P^{2^k}) / 2``, ``P^{2^{k+1}} = (P^{2^k})^2`` from ``C_0 = I``, for 30 doublings (~120 S^3
flops per policy), then ``rho = mu C``, ``d = rho pi`` and the returns; it is timed on a small
count, and checked against jaxagg's float64 LU on two of jaxagg's own policies (``max |Δd|``, at
most 1e-6). The floor (LU rows only) counts the LU's arithmetic per policy, LU of the S x S
system (2/3 S^3) + two triangular solves (2 S^2) + forming ``P_pi`` (2 S^2 A) + the returns (2 n
S A), and divides a measured peak by it: the best of several ``--peak-size``-square (2048) ``jnp``
matmuls in each precision, jitted, after warm-up, on all cores. (Krylov's arithmetic depends on
its iteration counts, which the engine does not report: no floor for it.) ``CPU/wall`` is process
CPU time over wall time during the timed calls: about 1 means one busy core.

Checks, on every timed call: the occupancies behind its first and last samples (recomputed from
their keys, ``ja.sample_occupancies`` with the row's method and operator) lie in O, give the
returns the call reported, and match the exact float64 map of their policies
(:func:`jaxagg.polytope.occupancy_of_policy`), within :data:`TOLERANCES`; the row's ``max |Δ
return| / range`` is at most :data:`RETURN_TOLERANCES`; the largest residual is at most 1e-6.

    python bench/sampling.py                      # attention (3,3)..(7,3), garnets 1e3, 1e4, 1e5; records
    python bench/sampling.py --no-record --sizes 5,3 --garnets --precisions float32 --methods krylov
    python bench/sampling.py --smoke              # (2,3) and a 40-state sparse garnet (in child processes): not recorded
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import Checks, add_common_arguments, progress_line, publish

import jaxagg as ja
from jaxagg.kernels import transitions as T
from jaxagg.kernels.evaluation import TOL as RESIDUAL_TOL
from jaxagg.kernels.policies import random_policies
from jaxagg.kernels.precision import PRECISIONS, precision_scope
from jaxagg.kernels.returns import BLOCK, concurrent_lanes
from jaxagg.polytope import occupancy_of_policy, occupancy_polytope, policy_from_occupancy

REFERENCE_BATCH = 50
DOUBLINGS = 30
MAX_CHUNK = 4096
CHUNK_FLOPS = 5e10
"""LU auto chunk size: at most this many floor-counted flops per chunk (keeps warm-up short at S=729)."""
KRYLOV_CHUNK_ENTRIES = 2**22
"""Krylov auto chunk size: at most this many policies x states per chunk (GMRES memory)."""
KRYLOV_PRODUCTS = 100
"""Krylov auto chunk size: operator products per policy assumed for the flop bound (dense
product ``2 S^2 A`` flops, Kronecker or sparse about ``20 S A``)."""
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
RETURN_TOLERANCES = {"float32": 1e-4, "float64": 1e-6}
"""Largest ``max |Δ return| / range`` against the float64 reference evaluation (the engine's
residual tolerance is 1e-6 relative, whatever the precision)."""
DENSE_LIMIT_BYTES = 2**30
"""``momdp.P`` is refused past this size (jaxagg.momdp.DENSE_LIMIT_BYTES)."""
GARNET = {"actions": 4, "branching": 5, "agents": 3, "seed": 0, "criterion": "discounted", "gamma": 0.95}
SMOKE = {"sizes": ["2,3"], "garnets": [(40, True)], "samples": 256, "repeats": 1, "chunk_size": 64, "baseline_samples": 4,
         "peak_size": 256, "isolate_min_states": 40, "reference_samples": 2, "bounds_method": "lp", "lu_max_states": 20,
         "dense_max_states": 20, "reference_lu_max_states": 20}
"""Smoke: attention (2,3) every method in this process; the 40-state sparse garnet's LU and dense
rows skipped (S > 20) and its sparse Krylov rows in child processes, against a float64 Krylov
reference."""


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
    """max |d_reference - d_jaxagg| (float64 LU) on jaxagg's own policies ``indices``."""
    S, A = momdp.num_states, momdp.num_actions
    with precision_scope("float64"):
        policies = jax.jit(random_policies, static_argnums=(2, 3, 4))  # one compilation, not one per operation
        pi = np.asarray(policies(jax.random.key(seed), jnp.asarray(indices, jnp.uint32), S, A, jnp.float64))
    d_ref = reference_occupancies(pi, np.asarray(momdp.P, np.float64), np.asarray(momdp.mu, np.float64))
    d_jax = ja.sample_occupancies(momdp, indices, seed=seed, precision="float64", method="lu")
    return float(np.abs(d_ref.reshape(len(indices), -1) - d_jax).max())


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return time.perf_counter() - wall, time.process_time() - cpu, value


# ------------------------------------------------------------------ instances and rows
def build_instance(kind: str, size) -> ja.MOMDP:
    if kind == "attention":
        return ja.envs.attention_allocation(*size, seed=0)
    states, sparse = size
    momdp = ja.envs.garnet(states, GARNET["actions"], GARNET["branching"], agents=GARNET["agents"], seed=GARNET["seed"],
                           criterion=GARNET["criterion"], gamma=GARNET["gamma"])
    if sparse and momdp.transition_form == "dense":  # the same draws, stored as successor lists
        momdp = ja.MOMDP(P=T.sparse_from_dense(momdp.P), R=momdp.R, criterion=momdp.criterion, gamma=momdp.gamma, info=momdp.info)
    return momdp


def garnet_size(text: str) -> tuple[int, bool]:
    """``"1000"`` or ``"1000:sparse"`` (a garnet small enough to be drawn dense, stored sparse)."""
    states, _, form = text.partition(":")
    if form not in ("", "sparse"):
        raise argparse.ArgumentTypeError(f"expected STATES or STATES:sparse, got {text!r}")
    return int(states), form == "sparse"


def instance_label(kind: str, size) -> str:
    if kind == "attention":
        return f"attention ({size[0]},{size[1]})"
    return f"garnet S={size[0]}" + (" (sparse)" if size[1] else "")


def dense_fits(S: int, A: int) -> bool:
    return S * A * S * 8 <= DENSE_LIMIT_BYTES


def plan(S: int, A: int, native: str, methods: list[str], args) -> list[tuple[str, str, str | None]]:
    """``(method, operator, why skipped or None)`` for one instance."""
    gib = S * A * S * 8 / 2**30
    no_dense = None if dense_fits(S, A) else f"skipped: no dense P ({gib:.3g} GiB > 1 GiB)"
    out = []
    for method in methods:
        if method == "lu":
            why = no_dense or (None if args.lu_max_states >= S else
                               f"skipped: S > {args.lu_max_states} (LU per policy {2 / 3 * S**3:.2g} flops)")
            out.append(("lu", "dense", why))
        else:
            why = no_dense or (None if args.dense_max_states >= S else f"skipped: S > {args.dense_max_states} for a dense operator")
            out.append(("krylov", "dense", why))
            if native != "dense":
                out.append(("krylov", native, None))
    return out


def reference_engine(S: int, A: int, native: str, args) -> tuple[str, str]:
    """The float64 reference evaluation of an instance: dense LU where it is in reach, else
    Krylov on the instance's own operator."""
    if dense_fits(S, A) and args.reference_lu_max_states >= S:
        return "lu", "dense"
    return "krylov", native


def auto_chunk(method: str, operator: str, S: int, A: int, n: int) -> int:
    if method == "lu":
        chunk = 2 ** int(math.floor(math.log2(max(CHUNK_FLOPS / jaxagg_flops(S, A, n), 1))))
    else:  # memory, and about KRYLOV_PRODUCTS operator products per policy
        product = 2 * S * S * A if operator == "dense" else 20 * S * A
        chunk = 2 ** int(math.floor(math.log2(max(min(KRYLOV_CHUNK_ENTRIES / S, CHUNK_FLOPS / (KRYLOV_PRODUCTS * product)), 1))))
    return max(BLOCK, min(MAX_CHUNK, chunk))


def check_values(label: str, momdp, result, precision: str, method: str, operator: str) -> list[tuple[str, float, float]]:
    """The occupancies behind the first and last samples of a timed call: in O, giving the
    returns it reported, and equal to the exact float64 map of their policies (:data:`TOLERANCES`).
    Returns ``(what, value, limit)`` triples (checked by the parent)."""
    tol = TOLERANCES[precision]
    indices = np.unique([0, result.num_samples - 1])
    d = ja.sample_occupancies(momdp, indices, seed=result.seed, precision=precision, method=method, operator=operator)
    polytope = occupancy_polytope(momdp)
    scale = max(1e-300, float(np.abs(result.returns).max()))
    exact = np.stack([occupancy_of_policy(momdp, policy_from_occupancy(x, momdp.num_states, momdp.num_actions)) for x in d])
    return [
        (f"{label}: residual in O of sampled occupancies", max(polytope.residual(x) for x in d), tol["residual"]),
        (f"{label}: relative |R d - reported returns|", np.abs(momdp.returns(d) - result.returns[indices]).max() / scale,
         tol["returns"]),
        (f"{label}: max |d - exact float64 map of its policy|", np.abs(d - exact).max(), tol["exact"]),
    ]


def run_row(spec: dict, settings: dict) -> dict:
    """One measured row (in a child process unless the instance is small): build, bounds,
    compile, probe, timed calls with their checks, the comparison with the float64 reference."""
    began = time.perf_counter()
    momdp = build_instance(spec["kind"], spec["size"])
    ja.return_bounds(momdp, method=settings["bounds_method"])
    prepare_s = time.perf_counter() - began
    S, A, n = momdp.num_states, momdp.num_actions, momdp.num_agents
    precision, method, operator, chunk = spec["precision"], spec["method"], spec["operator"], spec["chunk"]
    label = f"{spec['instance']} {precision} {method}/{operator}"
    options = {"precision": precision, "method": method, "operator": operator, "chunk_size": chunk}
    began = time.perf_counter()
    ja.sample(momdp, chunk, **options)  # compile
    compile_s = time.perf_counter() - began
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    samples = settings["samples"]
    if samples is None:
        probe = ja.sample(momdp, chunk, **options).info["seconds"]
        samples = max(1, round(settings["seconds"] / probe)) * chunk
    else:
        samples = math.ceil(samples / chunk) * chunk  # whole chunks: one compiled shape
    rates, residual, checks = [], 0.0, []
    for _ in range(settings["repeats"]):
        cpu = time.process_time()
        result = ja.sample(momdp, samples, **options)
        cpu = time.process_time() - cpu
        rates.append((samples / result.info["seconds"], cpu / result.info["seconds"]))
        residual = max(residual, result.info["residual_max"])
        assert result.info["evaluation"]["method"] == method and result.info["evaluation"]["operator"] == operator
        checks += check_values(f"{label} N={samples}", momdp, result, precision, method, operator)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ref_method, ref_operator = spec["reference"]
    indices = np.unique(np.linspace(0, samples - 1, settings["reference_samples"]).round().astype(np.int64))
    d_ref = ja.sample_occupancies(momdp, indices, seed=result.seed, precision="float64", method=ref_method, operator=ref_operator)
    span = np.maximum(result.max_returns - result.min_returns, 1e-300)
    delta = float((np.abs(momdp.returns(d_ref) - result.returns[indices]) / span).max())
    best = max(rates)
    return {"S": S, "A": A, "n": n, "N": samples, "chunk": chunk, "rate": best[0], "rates": [r for r, _ in rates],
            "cpu_wall": best[1], "residual": residual, "return_error": delta, "reference": f"{ref_method}/{ref_operator} float64",
            "prepare_s": prepare_s, "compile_s": compile_s, "rss_before_mb": rss_before, "rss_mb": rss, "checks": checks,
            "isolated": settings.get("isolated", False)}


def run_isolated(spec: dict, settings: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(run_row, (spec, {**settings, "isolated": True}))


def baseline(momdp, args, checks: Checks, label: str) -> dict:
    """The numpy reference method on one instance (policies/s) and its check against jaxagg."""
    S, A, n = momdp.num_states, momdp.num_actions, momdp.num_agents
    ref_count = args.baseline_samples
    if ref_count is None:
        ref_count = int(min(MAX_BASELINE, max(2, BASELINE_FLOPS / reference_flops(S, A, n))))
        if ref_count > REFERENCE_BATCH:
            ref_count = ref_count // REFERENCE_BATCH * REFERENCE_BATCH
    reference_method(momdp, min(2, ref_count), np.random.default_rng(1))  # warm numpy/BLAS
    ref_wall, ref_cpu, _ = timed(lambda: reference_method(momdp, ref_count, np.random.default_rng(0)))
    error = checks.at_most(f"{label}: max |d_reference - d_jaxagg| (float64)", reference_check(momdp, np.arange(2)), REFERENCE_TOL)
    print(f"{label} S={S}: numpy reference method {ref_count / ref_wall:.3g} policies/s "
          f"({ref_count} in {ref_wall:.2f} s, CPU/wall {ref_cpu / ref_wall:.2f}); max |Δd| vs jaxagg {error:.1e}", flush=True)
    return {"reference_rate": ref_count / ref_wall, "reference_N": ref_count, "reference_cpu_wall": ref_cpu / ref_wall,
            "reference_error": error}


# ------------------------------------------------------------------ driver
COLUMNS = [
    ("instance", "instance", ""),
    ("S", "S", "d"),
    ("precision", "precision", ""),
    ("method", "method", ""),
    ("operator", "operator", ""),
    ("N", "N", "d"),
    ("jaxagg policies/s", "rate", ".4g"),
    ("CPU/wall", "cpu_wall", ".2f"),
    ("max residual", "residual", ".1e"),
    ("max \\|Δ return\\| / range", "return_error", ".1e"),
    ("peak RSS MB", "rss_mb", ".0f"),
    ("numpy reference-method policies/s", "reference_rate", ".3g"),
    ("ref N", "reference_N", "d"),
    ("max \\|Δd\\| (ref)", "reference_error", ".1e"),
    ("speed-up", "speedup", lambda x: f"{x:.3g}x"),
    ("LU FLOPs/policy", "flops", ".3g"),
    ("floor policies/s", "floor_rate", ".4g"),
    ("% of floor", "percent_of_floor", lambda x: f"{x:.2g}%"),
    ("note", "note", ""),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["3,3", "4,3", "5,3", "6,3", "7,3"], help="attention factories,phases pairs")
    parser.add_argument("--garnets", nargs="*", type=garnet_size, default=[(1000, False), (10000, False), (100000, False)],
                        help="garnet state counts (4 actions, branching 5, 3 agents, discounted 0.95; dense up to 2000 states, "
                             "sparse beyond; STATES:sparse stores a small one sparse too)")
    parser.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=["lu", "krylov"],
                        help="comma-separated evaluation methods among lu, krylov (default lu,krylov)")
    parser.add_argument("--samples", type=int, default=None,
                        help="jaxagg samples per timing (rounded up to whole chunks); default: about --seconds")
    parser.add_argument("--seconds", type=float, default=4.0, help="target length of one jaxagg timing (auto N)")
    parser.add_argument("--repeats", type=int, default=3, help="jaxagg timings per cell; the best is reported")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"jaxagg chunk size; default: LU min({MAX_CHUNK}, a power of two with <= {CHUNK_FLOPS:.0e} flops), "
                             f"Krylov min({MAX_CHUNK}, a power of two <= {KRYLOV_CHUNK_ENTRIES} / S)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "float64"], choices=list(PRECISIONS))
    parser.add_argument("--lu-max-states", type=int, default=800, help="LU rows up to this many states")
    parser.add_argument("--dense-max-states", type=int, default=2200, help="Krylov rows on the dense operator up to this many states")
    parser.add_argument("--reference-lu-max-states", type=int, default=2200,
                        help="float64 LU reference up to this many states (Krylov float64 on the own operator beyond)")
    parser.add_argument("--reference-samples", type=int, default=4, help="samples compared with the float64 reference per row")
    parser.add_argument("--baseline-samples", type=int, default=None,
                        help=f"policies for the numpy reference method; default: about {BASELINE_FLOPS:.0e} flops, 2..{MAX_BASELINE}")
    parser.add_argument("--baseline-max-states", type=int, default=800, help="numpy reference method up to this many states")
    parser.add_argument("--isolate-min-states", type=int, default=0,
                        help="rows of instances with at least this many states run in a fresh child process (default: all)")
    parser.add_argument("--bounds-method", default="auto", choices=["auto", "lp", "policy-iteration"],
                        help="ja.return_bounds method (computed before the timings)")
    parser.add_argument("--peak-size", type=int, default=2048, help="matrix size of the peak-GFLOP/s matmul")
    args = add_common_arguments(parser).parse_args()
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    unknown = set(args.methods) - {"lu", "krylov"}
    if unknown or not args.methods:
        parser.error(f"--methods: expected a comma-separated list among lu, krylov, got {','.join(args.methods)}")

    checks = Checks()
    peaks = {}
    if "lu" in args.methods:
        for precision in args.precisions:
            peaks[precision] = peak_gflops(precision, args.peak_size)
            print(f"peak {precision}: {peaks[precision][0]:.1f} GFLOP/s ({args.peak_size}^2 jnp matmul, "
                  f"CPU/wall {peaks[precision][1]:.2f})", flush=True)
    settings = {"samples": args.samples, "seconds": args.seconds, "repeats": args.repeats,
                "reference_samples": args.reference_samples, "bounds_method": args.bounds_method}

    instances = [("attention", tuple(int(x) for x in size.split(","))) for size in args.sizes]
    instances += [("garnet", size) for size in args.garnets]
    rows = []
    for kind, size in instances:
        label = instance_label(kind, size)
        momdp = build_instance(kind, size)
        S, A, n, native = momdp.num_states, momdp.num_actions, momdp.num_agents, momdp.transition_form
        base = {}
        if kind == "attention" and args.baseline_max_states >= S:
            base = baseline(momdp, args, checks, label)
        reference = reference_engine(S, A, native, args)
        del momdp
        for precision in args.precisions:
            for method, operator, why in plan(S, A, native, args.methods, args):
                row = {"instance": label, "S": S, "precision": precision, "method": method, "operator": operator}
                if why is not None:
                    rows.append({**row, "note": why})
                    print(progress_line(COLUMNS, rows[-1]), flush=True)
                    continue
                chunk = args.chunk_size or auto_chunk(method, operator, S, A, n)
                spec = {"kind": kind, "size": size, "instance": label, "precision": precision, "method": method,
                        "operator": operator, "chunk": chunk, "reference": reference}
                measured = run_isolated(spec, settings) if args.isolate_min_states <= S else run_row(spec, settings)
                for what, value, limit in measured.pop("checks"):
                    checks.at_most(what, value, limit)
                what = f"{label} {precision} {method}/{operator}"
                checks.at_most(f"{what}: largest residual", measured["residual"], RESIDUAL_TOL)
                checks.at_most(f"{what}: max |Δ return| / range vs {measured['reference']}", measured["return_error"],
                               RETURN_TOLERANCES[precision])
                row.update(measured, **base)
                if not measured["isolated"]:
                    row["rss_mb"] = None  # shared with the other in-process rows: not the row's own
                if base:
                    row["speedup"] = row["rate"] / base["reference_rate"]
                if method == "lu":
                    flops = jaxagg_flops(S, A, n)
                    floor = peaks[precision][0] * 1e9 / flops
                    row.update(flops=flops, floor_rate=floor, percent_of_floor=100 * row["rate"] / floor)
                rows.append(row)
                print(progress_line(COLUMNS, row) + f" (chunk {chunk}, runs " + ", ".join(f"{r:.4g}" for r in row["rates"])
                      + f"; compile {row['compile_s']:.1f} s)", flush=True)

    preface = (f"Peak (best {args.peak_size}x{args.peak_size} jnp matmul, all cores): " + ", ".join(
        f"{p} {g:.1f} GFLOP/s (CPU/wall {c:.2f})" for p, (g, c) in peaks.items())) if peaks else ""
    notes = ("Garnets: ja.envs.garnet(S, 4, 5, agents=3, seed=0, discounted, gamma=0.95); attention: base agents, seed 0, average "
             "reward. max residual: largest float64 relative residual of any sampled policy (info[\"residual_max\"]). "
             "max |Δ return| / range: vs a float64 dense LU of the same policies (float64 Krylov on the own operator where there "
             "is no dense P or S > " + str(args.reference_lu_max_states) + "). peak RSS: the row's own child process (Python, "
             "JAX, instance, return bounds and sampling); empty for rows run in the parent process. The numpy reference method "
             "and the floor are per instance and LU respectively. Krylov rows run " + str(len(concurrent_lanes(jax.devices()[:1])))
             + " lanes at once (one per core, threads on one CPU device: kernels/returns.concurrent_lanes); LU rows one.")
    publish(args, "sampling", f"policy-measure sampling: LU vs Krylov (dense and native operators), reference method and "
            f"arithmetic floor (best of {args.repeats})", COLUMNS, rows, checks, preface=preface, notes=notes,
            extra={"peak_gflops": {p: {"gflops": g, "cpu_wall": c, "size": args.peak_size} for p, (g, c) in peaks.items()}})


if __name__ == "__main__":
    main()
