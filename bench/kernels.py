"""Throughput of batched policy evaluation (``jaxagg.kernels.evaluate_policies``, the
kernel behind ``ja.sample(..., measure="policy", method="krylov")``) on attention allocation, for
the dense and the Kronecker transition operator, float32 working precision.

Method. For each instance, the same ``--blocks`` blocks of :data:`BLOCK` Dirichlet policies (the
sampler's own draws) are evaluated by one jitted call per block, with the average-reward system
and a uniform ``mu``; each operator is compiled and run once first, then the two operators are
timed interleaved (dense, Kronecker, dense, ...) ``--repeats`` times and the best wall time of the
whole set of blocks is reported as policies per second. Dense is skipped above ``--dense-max``
states (its ``P`` is ``S^2 A`` floats).

Checks: every policy's float64 residual is at most ``TOL``, and where both operators
ran their distributions agree to 1e-6 (both meet the residual tolerance; they differ by the
conditioning times it).

    python bench/kernels.py                 # (5,3) (6,3) (7,3); records in bench/RESULTS.md
    python bench/kernels.py --no-record --sizes 5,3 --blocks 8
    python bench/kernels.py --smoke         # (2,3) (3,3), one block: seconds, not recorded
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from common import Checks, add_common_arguments, publish

import jaxagg as ja
from jaxagg.kernels.evaluation import TOL, evaluate_policies
from jaxagg.kernels.policies import random_policies
from jaxagg.kernels.precision import precision_scope
from jaxagg.kernels.returns import BLOCK
from jaxagg.kernels.transitions import DenseTransitions, astype, shape_of

AGREEMENT = 1e-6
COLUMNS = [
    ("instance", "instance", ""),
    ("S", "S", "d"),
    ("A", "A", "d"),
    ("dense policies/s", "dense", ",.0f"),
    ("Kronecker policies/s", "kronecker", ",.0f"),
    ("Kronecker / dense", "ratio", ".2f"),
    ("max residual", "residual", ".1e"),
]


def main() -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--sizes", default="5,6,7", help="factories F of attention (F, 3), comma-separated")
    parser.add_argument("--blocks", type=int, default=4, help=f"blocks of {BLOCK} policies per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per operator (best reported)")
    parser.add_argument("--dense-max", type=int, default=729, help="largest S timed with the dense operator")
    args = parser.parse_args()
    sizes = [2, 3] if args.smoke else [int(f) for f in args.sizes.split(",")]
    blocks, repeats = (1, 1) if args.smoke else (args.blocks, args.repeats)
    checks = Checks()
    rows = []
    with precision_scope("float64"):
        for F in sizes:
            rows.append(run_instance(F, blocks, repeats, args.dense_max, checks))
            print(" | ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    notes = (f"float32 working precision, float64 corrections to {TOL:g}; {BLOCK} policies per block, "
             f"{blocks} blocks per timed run, best of {repeats}; average-reward system, uniform mu.")
    publish(args, "kernels", "Batched policy evaluation: dense vs Kronecker operator", COLUMNS, rows, checks, notes=notes)


def run_instance(F: int, blocks: int, repeats: int, dense_max: int, checks: Checks) -> dict:
    momdp = ja.envs.attention_allocation(F, 3)
    S, A = shape_of(momdp.transitions)
    mu = jnp.full((S,), 1.0 / S, jnp.float64)
    operators = {"kronecker": momdp.transitions}
    if dense_max >= S:
        operators = {"dense": DenseTransitions(np.asarray(momdp.P)), **operators}
    policies = [random_policies(jax.random.key(0), jnp.arange(k * BLOCK, (k + 1) * BLOCK, dtype=jnp.uint32), S, A, jnp.float64)
                for k in range(blocks)]
    evaluate = jax.jit(lambda op, op64, pi: evaluate_policies(op, op64, pi, mu, None))
    prepared = {name: (astype(op, jnp.float32), astype(op, jnp.float64)) for name, op in operators.items()}
    results = {name: [jax.block_until_ready(evaluate(*ops, pi)) for pi in policies] for name, ops in prepared.items()}
    best = dict.fromkeys(prepared, float("inf"))
    for _ in range(repeats):
        for name, ops in prepared.items():
            began = time.perf_counter()
            jax.block_until_ready([evaluate(*ops, pi) for pi in policies])
            best[name] = min(best[name], time.perf_counter() - began)
    residual = max(float(np.max(np.asarray(r.residual))) for rs in results.values() for r in rs)
    checks.at_most(f"({F},3) max float64 residual", residual, TOL)
    if "dense" in results:
        gap = max(float(np.max(np.abs(np.asarray(d.rho) - np.asarray(k.rho)))) for d, k in zip(results["dense"], results["kronecker"]))
        checks.at_most(f"({F},3) max |rho_dense - rho_kronecker|", gap, AGREEMENT)
    rate = {name: blocks * BLOCK / seconds for name, seconds in best.items()}
    return {"instance": f"attention ({F},3)", "S": S, "A": A, "dense": rate.get("dense"), "kronecker": rate["kronecker"],
            "ratio": rate["kronecker"] / rate["dense"] if "dense" in rate else None, "residual": residual}


if __name__ == "__main__":
    main()
