"""Where the time of one ``policy`` sampling block goes: the pieces of a block of ``B`` policies
at attention (F, 3), each jit-compiled and timed on its own (best of 3, after a compiling call),
for the native (Kronecker) and the dense operator.

    python bench/block_profile.py 65536            # B = 65,536 at attention (5, 3); on a GPU
    python bench/block_profile.py 32 --factories 4 # a CPU-sized block
    python bench/block_profile.py 65536 --sample-blocks 64   # and ja.sample end to end

Rows: the policy draws; ten float32 and ten float64 operator products; for each Krylov solver
(``jaxagg.kernels.evaluation.SOLVERS``) one solve to a 1e-5 relative residual (a GMRES(20)
cycle, a BiCGSTAB solve) and ``evaluate_policies`` with that solver, without and with the
mean-policy preconditioner; the whole block kernel as shipped (draws, refined Krylov solves with
this platform's default solver and preconditioner, returns). ``--sample-blocks`` also times
``ja.sample`` end to end with either preconditioner. Printed only (not
recorded): copy what matters into a Notes section of bench/RESULTS.md.
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
from jaxagg.kernels.returns import POLICY_BLOCKS, MeasureProblem


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


def profile(batch: int, factories: int, forms: tuple = ("kronecker", "dense")) -> None:
    momdp = ja.envs.attention_allocation(factories, 3)
    solver = E.default_solver(jax.devices()[0].platform, momdp.num_states)
    shipped = POLICY_BLOCKS["krylov", solver]
    shipped_preconditioner = E.default_preconditioner(jax.devices()[0].platform, momdp.num_states)
    preconditioner = E.mean_policy_preconditioner(momdp.transitions, momdp.gamma)
    S, A, gamma = momdp.num_states, momdp.num_actions, momdp.gamma
    print(f"attention ({factories}, 3): S = {S}, A = {A}, B = {batch}, device {jax.devices()[0]}", flush=True)
    with precision_scope("float64"):
        key, indices = jax.random.key(0), jnp.arange(batch, dtype=jnp.uint32)
        pi = best_of("draw policies [B, S, A]", batch, jax.jit(lambda k, i: policies.random_policies(k, i, S, A, jnp.float64)),
                     key, indices)
        for form in forms:
            op = T.DenseTransitions(momdp.P) if form == "dense" else momdp.transitions
            op32, op64 = T.astype(op, jnp.float32), T.astype(op, jnp.float64)
            start = jnp.full((batch, S), 1.0 / S, jnp.float32)
            for label, operator, dtype in (("float32", op32, jnp.float32), ("float64", op64, jnp.float64)):
                def ten_products(pi, x, operator=operator):
                    matvec = E.system_matvec(operator, pi.astype(x.dtype), gamma)
                    return jax.lax.fori_loop(0, 10, lambda i, x: matvec(x), x)
                best_of(f"{form}: 10 operator products, {label}", batch, jax.jit(ten_products), pi, start.astype(dtype))
            for each in E.SOLVERS:
                def one_solve(pi, r, op32=op32, solver=each):
                    matvec = E.system_matvec(op32, pi.astype(jnp.float32), gamma)
                    if solver == "gmres":
                        return krylov.gmres_cycle(matvec, r, restart=E.RESTART, tol=1e-5)
                    return krylov.bicgstab(matvec, r, max_iterations=E.BICGSTAB_ITERATIONS, tol=1e-5)
                name = f"GMRES({E.RESTART}) cycle" if each == "gmres" else "BiCGSTAB solve"
                best_of(f"{form}: one {name} to 1e-5", batch, jax.jit(one_solve), pi, start)
                evaluate = jax.jit(lambda pi, Q, op32=op32, op64=op64, solver=each:
                                   E.evaluate_policies(op32, op64, pi, momdp.mu, gamma, solver=solver, preconditioner=Q))
                for name, Q in (("none", None), ("mean-policy", jnp.asarray(preconditioner, jnp.float32))):
                    out = best_of(f"{form}: evaluate_policies, {each}, preconditioner {name}", batch, evaluate, pi, Q)
                    print(f"{'':6s}largest residual {float(out.residual.max()):.2e}", flush=True)
            Q = jnp.asarray(preconditioner, jnp.float32) if shipped_preconditioner == "mean-policy" else None
            problem = MeasureProblem(op32, op64, jnp.asarray(momdp.mu, jnp.float64), jnp.asarray(momdp.reward_matrix, jnp.float64),
                                     gamma, Q)
            best_of(f"{form}: whole block kernel (as shipped: {solver}, {shipped_preconditioner})", batch,
                    jax.jit(lambda k, i, problem=problem: shipped(k, i, problem)), key, indices)


def end_to_end(batch: int, factories: int, blocks: int) -> None:
    """``ja.sample`` of ``blocks`` blocks of ``batch`` policies (chunks of one block), after a
    compiling call: the wall time, the time of its sampling loop (``info["seconds"]``) and the
    rest (assembling and checking the result), to set against the whole block kernel above;
    with either preconditioner."""
    momdp = ja.envs.attention_allocation(factories, 3)
    for preconditioner in E.PRECONDITIONERS:
        settings = {"chunk_size": batch, "block": batch, "method": "krylov", "preconditioner": preconditioner}
        ja.sample(momdp, batch, seed=0, **settings)
        start = time.perf_counter()
        result = ja.sample(momdp, blocks * batch, seed=1, **settings)
        wall = time.perf_counter() - start
        loop = result.info["seconds"]
        engine = result.info["evaluation"]
        print(f"ja.sample, {blocks} blocks ({engine.get('solver')}, preconditioner {preconditioner}): wall {wall:.3f} s "
              f"({blocks * batch / wall:.3g} policies/s), sampling loop {loop:.3f} s ({blocks * batch / loop:.3g} policies/s), "
              f"the rest {wall - loop:.3f} s, largest residual {result.info['residual_max']:.2e}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch", type=int, nargs="?", default=65536, help="policies per block (B)")
    parser.add_argument("--factories", type=int, default=5, help="attention (F, 3)")
    parser.add_argument("--forms", type=lambda t: tuple(t.split(",")), default=("kronecker", "dense"),
                        help="operator forms profiled (comma-separated: kronecker, dense)")
    parser.add_argument("--sample-blocks", type=int, default=0,
                        help="also time ja.sample over this many blocks (end to end, against the block kernel)")
    arguments = parser.parse_args()
    profile(arguments.batch, arguments.factories, arguments.forms)
    if arguments.sample_blocks:
        end_to_end(arguments.batch, arguments.factories, arguments.sample_blocks)
