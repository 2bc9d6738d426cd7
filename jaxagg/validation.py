"""Argument checks shared by every module: each raises a typed error naming the argument, what
was expected and what came."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxagg.errors import ShapeError, ValidationError


def finite_array(name: str, value: Any, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``value`` as a new float64 array of one of the allowed ranks, with no NaN or inf."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in allowed:
        want = " or ".join(f"{k}-d" for k in allowed)
        raise ShapeError(f"{name}: expected a {want} array, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValidationError(f"{name}: expected finite numbers, found {array[where]} at index {where}")
    return array


def integer_at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` >= ``minimum`` (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValidationError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)
