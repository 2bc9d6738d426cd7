"""Argument checks shared by every module: each raises a typed error naming the argument, what
was expected and what came. Every scalar and array validator of jaxagg lives here, so that one
kind of argument is checked one way everywhere."""

from __future__ import annotations

import importlib
import json
import math
from typing import Any

import numpy as np

from jaxagg.errors import ShapeError, ValidationError

PRECISIONS = ("float32", "float64")
SEED_LIMIT = 2**32
"""Seeds are integers in ``[0, 2**32)`` (one ``jax.random.key``)."""


def finite_array(name: str, value: Any, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``value`` as a new float64 array of one of the allowed ranks, with no NaN or inf.

    Complex arrays are refused (their imaginary part would be lost), and so are strings,
    dates and objects that are not numbers."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    if raw.dtype.kind == "c":
        raise ValidationError(f"{name}: expected real numbers, got a complex array (its imaginary part would be lost)")
    if raw.dtype.kind in "SUVMm":
        raise ValidationError(f"{name}: expected a numeric array, got an array of {raw.dtype}")
    try:
        array = np.array(raw, dtype=np.float64)
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


def integer_at_least(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum or (
            maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValidationError(f"{name}: expected an integer >= {minimum}{upper}, got {value!r}")
    return int(value)


def seed(name: str, value: Any) -> int:
    """A seed: an integer in ``[0, 2**32)``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < SEED_LIMIT:
        raise ValidationError(f"{name}: expected an integer in [0, 2**32), got {value!r}")
    return int(value)


def optional_seed(name: str, value: Any) -> int | None:
    """:func:`seed`, or ``None``."""
    return None if value is None else seed(name, value)


def finite_number(name: str, value: Any) -> float:
    """A finite real number (bools, strings and NaN/inf refused)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValidationError(f"{name}: expected a finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: expected a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValidationError(f"{name}: expected a finite number, got {value!r}")
    return number


def positive_number(name: str, value: Any) -> float:
    """A finite number > 0."""
    number = finite_number(name, value)
    if not number > 0.0:
        raise ValidationError(f"{name}: expected a finite number > 0, got {value!r}")
    return number


def optional_positive_number(name: str, value: Any) -> float | None:
    """:func:`positive_number`, or ``None``."""
    return None if value is None else positive_number(name, value)


def probability(name: str, value: Any) -> float:
    """A number in ``(0, 1)``, exclusive."""
    number = finite_number(name, value)
    if not 0.0 < number < 1.0:
        raise ValidationError(f"{name}: expected a number in (0, 1) (exclusive), got {value!r}")
    return number


def approval_level(name: str, value: Any) -> float:
    """An approval level ``q`` in ``[0, 1)``: agent i approves the policies in its top ``1 - q``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            0.0 <= float(value) < 1.0):
        raise ValidationError(f"{name}: expected an approval level in [0, 1), got {value!r}")
    return float(value)


def levels(name: str, q: Any) -> np.ndarray:
    """Levels in ``[0, 1]``: a scalar or an array, as float64."""
    if isinstance(q, (bool, np.bool_)):
        raise ValidationError(f"{name}: expected a level in [0, 1], got {q!r}")
    try:
        qs = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: expected a level in [0, 1] or an array of levels, got {q!r}") from None
    bad = ~((qs >= 0.0) & (qs <= 1.0))  # also catches nan
    if bad.any():
        value = qs[tuple(np.argwhere(bad)[0])] if qs.ndim else qs
        raise ValidationError(f"{name}: expected levels in [0, 1], got {float(value)!r}")
    return qs


def sorted_positions(name: str, k: Any, size: int) -> np.ndarray:
    """Integer positions in ``0..size`` (``size`` itself stands for the exact maximum)."""
    ks = np.asarray(k)
    if ks.dtype == np.bool_ or not np.issubdtype(ks.dtype, np.integer):
        raise ValidationError(f"{name}: expected integer sorted positions in 0..{size}, got {k!r}")
    ks = ks.astype(np.int64)
    bad = (ks < 0) | (ks > size)
    if bad.any():
        value = ks[tuple(np.argwhere(bad)[0])] if ks.ndim else ks
        raise ValidationError(f"{name}: expected sorted positions in 0..{size} ({size} = max_O J), got {int(value)}")
    return ks


def choice(name: str, value: Any, options: tuple[str, ...] | list[str]) -> str:
    """One of ``options`` (strings)."""
    if not isinstance(value, str) or value not in options:
        raise ValidationError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """``True`` or ``False`` (NumPy bools too; integers and strings are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValidationError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def precision(name: str, value: Any) -> str:
    """``"float32"`` or ``"float64"``."""
    return choice(name, value, PRECISIONS)


def optional_module(module: str, name: str, install: str) -> Any:
    """The optional dependency ``module`` (e.g. ``"pandas"``), imported, or a ValidationError
    naming the argument or method ``name`` that needs it and how to ``install`` it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValidationError(f"{name}: needs {module.split('.')[0]}, which is not installed; {install}") from None


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)``: NumPy scalars and arrays as plain numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_metadata(name: str, value: Any) -> dict[str, Any]:
    """A deep copy of a dict as plain JSON types (NumPy values converted); NaN/inf and
    non-serialisable values are refused."""
    if not isinstance(value, dict):
        raise ValidationError(f"{name}: expected a dict of JSON-serialisable metadata, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, default=json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected JSON-serialisable metadata ({exc})") from None
