"""Precision as an explicit option: float32 by default, float64 inside a scoped x64 context.

jaxagg never flips ``jax_enable_x64`` globally; :func:`precision_scope` turns it on only around
the float64 computations a caller asked for.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp

PRECISIONS = {"float32": jnp.float32, "float64": jnp.float64}

PRODUCT_PRECISION = "highest"
"""Matrix-product precision of the iterative solvers: every float32 product in full float32.
JAX's default lets a GPU round float32 operands of products to TensorFloat-32 (10-bit
mantissas); Krylov bases then lose orthogonality and the float64 refinement needs more rounds
(attention (5, 3), 65,536 policies per block on an H100: 150 ms per block by default, 109 ms in
full float32). CPUs compute float32 products in full precision either way."""


def full_precision_products(function):
    """``function`` with every matrix product it traces in full precision
    (:data:`PRODUCT_PRECISION`): the setting is read when the products are traced, so this
    holds inside ``jit`` whatever the caller's default is."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision(PRODUCT_PRECISION):
            return function(*args, **kwargs)

    return wrapped


def precision_scope(precision: str):
    """A context in which arrays of ``precision`` (``"float32"`` or ``"float64"``) can be created
    and computed with. Raises ``ValueError`` for another precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected 'float32' or 'float64', got {precision!r}")
    if precision == "float32":
        return contextlib.nullcontext()
    enable = getattr(jax, "enable_x64", None)
    if callable(enable):  # jax >= 0.5: a config context manager
        return enable(True)
    from jax.experimental import enable_x64  # older jax

    return enable_x64()
