"""Precision as an explicit option: float32 by default, float64 inside a scoped x64 context.

jaxagg never flips ``jax_enable_x64`` globally; :func:`precision_scope` turns it on only around
the float64 computations a caller asked for.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp

PRECISIONS = {"float32": jnp.float32, "float64": jnp.float64}


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
