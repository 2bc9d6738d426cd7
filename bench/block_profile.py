"""Where the time of one ``policy`` sampling block goes: the pieces of a block of ``B`` policies
at attention (F, 3), each jit-compiled and timed on its own (best of 3, after a compiling call),
for the native (Kronecker) and the dense operator.

    python bench/block_profile.py 65536            # B = 65,536 at attention (5, 3); on a GPU
    python bench/block_profile.py 32 --factories 4 # a CPU-sized block

Rows: the policy draws; ten float32 and ten float64 operator products; one GMRES(20) cycle to a
1e-5 relative residual, with and without the reorthogonalisation pass; the whole block kernel
(draws, refined GMRES, returns); ``evaluate_policies`` as shipped and with the caller's default
matrix-product precision set to ``highest`` and to ``tensorfloat32`` (the shipped kernel sets
its own: ``jaxagg.kernels.precision.full_precision_products``). Printed only (not recorded):
copy what matters into a Notes section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import jaxagg as ja
from jaxagg.kernels import evaluation as E
from jaxagg.kernels import krylov, policies
from jaxagg.kernels import transitions as T
from jaxagg.kernels.precision import precision_scope
from jaxagg.kernels.returns import MeasureProblem, policy_block_krylov


def best_of(name: str, batch: int, function, *args, repeats: int = 3):
    """Print the best wall time of ``function(*args)`` (compiled by a first call) and return its value."""
    out = jax.block_until_ready(function(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        best = min(best, time.perf_counter() - start)
    print(f"{name:58s} {best * 1e3:9.2f} ms  ({batch / best:.3g} policies/s)", flush=True)
    return out


def profile(batch: int, factories: int) -> None:
    momdp = ja.envs.attention_allocation(factories, 3)
    S, A, gamma = momdp.num_states, momdp.num_actions, momdp.gamma
    print(f"attention ({factories}, 3): S = {S}, A = {A}, B = {batch}, device {jax.devices()[0]}", flush=True)
    with precision_scope("float64"):
        key, indices = jax.random.key(0), jnp.arange(batch, dtype=jnp.uint32)
        pi = best_of("draw policies [B, S, A]", batch, jax.jit(lambda k, i: policies.random_policies(k, i, S, A, jnp.float64)),
                     key, indices)
        for form in ("kronecker", "dense"):
            op = T.DenseTransitions(momdp.P) if form == "dense" else momdp.transitions
            op32, op64 = T.astype(op, jnp.float32), T.astype(op, jnp.float64)
            start = jnp.full((batch, S), 1.0 / S, jnp.float32)
            for label, operator, dtype in (("float32", op32, jnp.float32), ("float64", op64, jnp.float64)):
                def ten_products(pi, x, operator=operator):
                    matvec = E.system_matvec(operator, pi.astype(x.dtype), gamma)
                    return jax.lax.fori_loop(0, 10, lambda i, x: matvec(x), x)
                best_of(f"{form}: 10 operator products, {label}", batch, jax.jit(ten_products), pi, start.astype(dtype))
            for label, reorthogonalise in (("", krylov.REORTHOGONALISE), (", no reorthogonalisation", 0.0)):
                saved, krylov.REORTHOGONALISE = krylov.REORTHOGONALISE, reorthogonalise
                def one_cycle(pi, r, op32=op32):
                    return krylov.gmres_cycle(E.system_matvec(op32, pi.astype(jnp.float32), gamma), r, restart=E.RESTART, tol=1e-5)
                best_of(f"{form}: one GMRES({E.RESTART}) cycle to 1e-5{label}", batch, jax.jit(one_cycle), pi, start)
                krylov.REORTHOGONALISE = saved
            problem = MeasureProblem(op32, op64, jnp.asarray(momdp.mu, jnp.float64), jnp.asarray(momdp.reward_matrix, jnp.float64),
                                     gamma)
            best_of(f"{form}: whole block kernel", batch, jax.jit(lambda k, i, problem=problem: policy_block_krylov(k, i, problem)),
                    key, indices)
            for setting in (None, "highest", "tensorfloat32"):
                with jax.default_matmul_precision(setting):
                    evaluate = jax.jit(lambda pi, problem=problem: E.evaluate_policies(problem.transitions, problem.transitions64, pi,
                                                                                        problem.mu, gamma))
                    out = best_of(f"{form}: evaluate_policies, caller's precision {setting or 'default'}", batch, evaluate, pi)
                print(f"{'':6s}largest residual {float(out.residual.max()):.2e}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch", type=int, nargs="?", default=65536, help="policies per block (B)")
    parser.add_argument("--factories", type=int, default=5, help="attention (F, 3)")
    arguments = parser.parse_args()
    profile(arguments.batch, arguments.factories)
