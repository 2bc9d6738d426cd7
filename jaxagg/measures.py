"""Samples of the reference measure: empirical return CDFs, quantiles and ranks (SPEC §2).

A :class:`ReturnSample` holds ``N`` draws of every agent's return under one reference measure
(``"policy"``, ``"uniform"`` or ``"hull"``) and answers the empirical questions the volumetric
rules ask. It is pure NumPy (plus SciPy for the logistic fit): the JAX samplers in
``jaxagg.kernels`` produce the returns, this module never imports JAX.

Conventions (SPEC §2, matching the reference implementation):
    empirical CDF / rank   ``F_i(x) = #{samples_i <= x} / N``  (ties count: ``side="right"``)
    quantile               ``tau_i(q) = x_(floor(q N) + 1)``, the 1-based order statistic of agent
                           i's sorted sample, for ``0 <= q < 1``; ``tau_i(1) = max_O J_i`` exactly
                           (``max_returns`` when known, else the sample maximum)
    DKW band               ``sqrt(ln(2 / delta) / (2 N))``

Layouts:
    returns         ``[N, n]``  one row per sample, one column per agent
    sorted_returns  ``[N, n]``  every column sorted ascending
    max_returns     ``[n]``     exact ``max_O J_i`` (one LP each), or ``None``
    min_returns     ``[n]``     exact ``min_O J_i``, or ``None``

Files: ``.npz`` (arrays plus a JSON metadata string with format tag ``"jaxagg.sample/1"``), read
with ``allow_pickle=False``; never pickle.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg.errors import ShapeError, ValidationError
from jaxagg.validation import finite_array

MEASURES = ("policy", "uniform", "hull")
SAMPLE_FORMAT = "jaxagg.sample/1"

BOUND_RTOL = 1e-5
"""A sampled return may exceed ``max_returns`` (or fall below ``min_returns``) by at most this
much, relative to the largest magnitude involved (float32 samplers round); more is an error."""

_INDEX_ULPS = 4.0
"""``q * N`` within ``_INDEX_ULPS * eps * N`` below an integer counts as that integer, so that the
float ``0.29`` with ``N = 100`` gives ``floor(q N) = 29`` (not 28, as float rounding would)."""

FIT_MAX_POINTS = 2000
_FIT_NU_STARTS = (0.3, 1.0, 3.0)
_FIT_LOG_NU_BOUNDS = (math.log(1e-3), math.log(1e3))
_FIT_LOG_S_BOUNDS = (-20.0, 5.0)


# ---------------------------------------------------------------------- the sample
@dataclass(frozen=True, eq=False)
class ReturnSample:
    """``N`` samples of every agent's return under one reference measure.

    Args:
        returns: ``[N, n]`` sampled returns (``N >= 1`` samples, ``n >= 1`` agents); stored as a
            read-only float64 copy.
        measure: the reference measure sampled, one of :data:`MEASURES`.
        seed: the sampler's seed (an int), or ``None`` (unknown, or several parts).
        max_returns: ``[n]`` exact ``max_O J_i``, so that ``quantile(1)`` is exact; ``None``
            falls back to the sample maximum.
        min_returns: ``[n]`` exact ``min_O J_i``, or ``None``.
        info: JSON-serialisable metadata (dtype, chunk size, sampler diagnostics). NumPy scalars
            and arrays are converted to plain numbers and lists.

    Raises:
        ShapeError: ``returns`` is not 2-d, or a bound is not ``[n]``.
        ValidationError: no samples or no agents, non-finite values, an unknown measure, a
            non-integer seed, ``min_returns > max_returns``, a sample outside the bounds by more
            than :data:`BOUND_RTOL`, or ``info`` that is not JSON-serialisable.
    """

    returns: np.ndarray
    measure: str
    seed: int | None = None
    max_returns: np.ndarray | None = None
    min_returns: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _sorted_by_agent: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        returns = finite_array("returns", self.returns, ndim=2)
        N, n = returns.shape
        if N == 0:
            raise ValidationError(f"returns: expected at least one sample (row), got shape {returns.shape}")
        if n == 0:
            raise ValidationError(f"returns: expected at least one agent (column), got shape {returns.shape}")
        if not isinstance(self.measure, str) or self.measure not in MEASURES:
            raise ValidationError(f"measure: expected one of {MEASURES}, got {self.measure!r}")
        seed = _check_seed(self.seed)
        bounds = {}
        for name in ("max_returns", "min_returns"):
            value = getattr(self, name)
            if value is not None:
                value = finite_array(name, value, ndim=1)
                if value.shape != (n,):
                    raise ShapeError(f"{name}: expected shape [{n}] (one per agent of returns {returns.shape}), got {value.shape}")
            bounds[name] = value
        _check_bounds(returns, bounds["max_returns"], bounds["min_returns"])
        info = _json_copy("info", self.info)
        for name, value in (("returns", returns), *bounds.items()):
            if value is not None:
                value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "info", info)

    # ----------------------------------------------------------------- sizes
    @property
    def num_samples(self) -> int:
        """``N``, the number of samples (rows)."""
        return self.returns.shape[0]

    @property
    def num_agents(self) -> int:
        """``n``, the number of agents (columns)."""
        return self.returns.shape[1]

    @property
    def sorted_returns(self) -> np.ndarray:
        """``[N, n]`` read-only: every agent's samples sorted ascending (computed once)."""
        return self._sorted().T

    @property
    def top(self) -> np.ndarray:
        """``[n]`` the value of ``tau_i(1)``: ``max_returns`` if known, else the sample maximum."""
        return self.max_returns if self.max_returns is not None else self._sorted()[:, -1]

    def _sorted(self) -> np.ndarray:
        """``[n, N]`` C-contiguous sorted rows (one per agent), cached on the instance."""
        cached = self._sorted_by_agent
        if cached is None:
            cached = np.sort(self.returns.T, axis=1)
            cached.setflags(write=False)
            object.__setattr__(self, "_sorted_by_agent", cached)
        return cached

    def __repr__(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"ReturnSample<{self.measure}: N={self.num_samples}, n={self.num_agents}{seed}>"

    # ------------------------------------------------------- CDF and quantiles
    def cdf(self, x: Any) -> np.ndarray:
        """Empirical CDFs ``F_i(x_i) = #{samples_i <= x_i} / N``.

        Args:
            x: ``[..., n]`` one value per agent (``-inf``/``inf`` allowed, NaN not).

        Returns:
            ``[..., n]`` float64 in ``[0, 1]``.
        """
        return self._count_le("x", x) / self.num_samples

    def rank(self, returns: Any) -> np.ndarray:
        """Empirical quantile ranks ``#{samples_i <= J_i(d)} / N`` of policies with returns
        ``[..., n]``; shape ``[..., n]``. The same numbers as :meth:`cdf`."""
        return self._count_le("returns", returns) / self.num_samples

    def quantile_index(self, q: Any) -> np.ndarray:
        """0-based sorted position ``k = floor(q N)`` of ``tau_i(q)``, with ``k = N`` for ``q = 1``
        (meaning ``max_O J_i``). ``q``: a scalar or array in ``[0, 1]``; int64 of ``q``'s shape.

        A product ``q * N`` a few ulps below an integer counts as that integer (so ``q = 0.29``,
        ``N = 100`` gives ``k = 29``)."""
        qs = _check_levels("q", q)
        N = self.num_samples
        product = qs * N
        k = np.floor(product + _INDEX_ULPS * np.finfo(np.float64).eps * N).astype(np.int64)
        k = np.where(qs < 1.0, np.minimum(k, N - 1), N)
        return k

    def quantile(self, q: Any) -> np.ndarray:
        """Every agent's empirical q-quantile return ``tau_i(q)``.

        ``tau_i(q) = x_(floor(q N) + 1)`` (1-based order statistic of agent i's sample) for
        ``0 <= q < 1``, and ``tau_i(1) = max_O J_i`` exactly (the sample maximum when
        ``max_returns`` is unknown). Equivalently ``tau_i(q) = inf{x : F_i(x) > q}`` for ``q < 1``.

        Args:
            q: a level in ``[0, 1]`` (scalar) or an array of levels of shape ``[...]``.

        Returns:
            ``[n]`` for a scalar, ``[..., n]`` for an array.

        Raises:
            ValidationError: a level outside ``[0, 1]`` or not a finite number.
        """
        return self.quantile_of_index(self.quantile_index(q))

    def quantile_of_index(self, k: Any) -> np.ndarray:
        """Returns at sorted position ``k`` (0-based) of every agent's sample.

        ``k`` in ``0..N-1`` is the order statistic ``x_(k+1)``; ``k = N`` means ``max_O J_i``
        (``tau_i(1)``). Bisection over sample indices works on this scale: ``tau_i(q)`` is
        ``quantile_of_index(floor(q N))``.

        Args:
            k: an integer or integer array of shape ``[...]`` with ``0 <= k <= N``.

        Returns:
            ``[n]`` for a scalar, ``[..., n]`` for an array.
        """
        ks = _check_indices("k", k, self.num_samples)
        values = self._sorted()[:, np.minimum(ks, self.num_samples - 1)]  # [n, ...]
        values = np.moveaxis(values, 0, -1)
        return np.where((ks == self.num_samples)[..., None], self.top, values)

    @property
    def effective_size(self) -> float:
        """N for independent draws; for Markov-chain samples (the ``uniform`` measure, whose
        ``info["ess"]`` holds every agent's effective sample size) the smallest ESS, capped at N."""
        ess = self.info.get("ess")
        if not ess:
            return float(self.num_samples)
        return float(min(self.num_samples, max(1.0, min(ess))))

    def dkw_band(self, delta: float = 0.05) -> float:
        """DKW half-width ``sqrt(ln(2 / delta) / (2 N_eff))``: with probability ``1 - delta``
        every empirical CDF is within it of the true ``F_i`` everywhere (per agent).
        ``N_eff = effective_size``: N for independent draws; for correlated chains the smallest
        ESS, the usual approximation (DKW itself assumes independent draws)."""
        delta = _check_probability("delta", delta)
        return math.sqrt(math.log(2.0 / delta) / (2.0 * self.effective_size))

    # ------------------------------------------------------- smooth CDF fits
    def fit_logistic(self, agent: int, *, max_points: int = FIT_MAX_POINTS, max_error: float | None = None) -> "LogisticCdf":
        """Fit a generalised-logistic (Richards) CDF to agent ``agent``'s empirical CDF; see
        :func:`fit_logistic_cdf`. Errors name the agent."""
        agent = self._check_agent(agent)
        return fit_logistic_cdf(
            self._sorted()[agent], max_points=max_points, max_error=max_error, name=f"agent {agent}", is_sorted=True
        )

    def fit_cdfs(self, *, max_points: int = FIT_MAX_POINTS, max_error: float | None = None) -> tuple["LogisticCdf", ...]:
        """One :class:`LogisticCdf` per agent (for the Borda ``concave`` method, SPEC §3)."""
        return tuple(self.fit_logistic(i, max_points=max_points, max_error=max_error) for i in range(self.num_agents))

    # ------------------------------------------------------ derived samples
    def extend(self, other: "ReturnSample") -> "ReturnSample":
        """A new sample with this sample's rows followed by ``other``'s (resuming a run).

        Both must have the same measure and number of agents; known bounds must agree (one side's
        ``None`` takes the other's). The seed is kept when both seeds are equal, else ``None``.
        ``info["parts"]`` lists every part (flattened over earlier extends) as
        ``{"seed", "num_samples", "info"}``; the other top-level ``info`` keys are those on
        which both parts agree.
        """
        if not isinstance(other, ReturnSample):
            raise ValidationError(f"other: expected a ReturnSample, got {type(other).__name__}")
        if other.measure != self.measure:
            raise ValidationError(f"other: expected measure {self.measure!r} to match, got {other.measure!r}")
        if other.num_agents != self.num_agents:
            raise ValidationError(f"other: expected {self.num_agents} agents to match, got {other.num_agents}")
        bounds = {}
        for name in ("max_returns", "min_returns"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and not np.allclose(mine, theirs, rtol=1e-9, atol=0.0):
                raise ValidationError(
                    f"other: expected {name} {mine.tolist()} to match (rtol 1e-9; same instance?), got {theirs.tolist()}"
                )
            bounds[name] = mine if mine is not None else theirs
        common = {
            key: value
            for key, value in self.info.items()
            if key != "parts" and key in other.info and other.info[key] == value
        }
        return ReturnSample(
            returns=np.concatenate([self.returns, other.returns], axis=0),
            measure=self.measure,
            seed=self.seed if self.seed == other.seed else None,
            max_returns=bounds["max_returns"],
            min_returns=bounds["min_returns"],
            info={**common, "parts": _parts(self) + _parts(other)},
        )

    def affine(self, agent: int, scale: float, shift: float) -> "ReturnSample":
        """A new sample with agent ``agent``'s returns and bounds mapped by ``x -> scale * x + shift``
        (``scale > 0``): what a positive affine change of that agent's reward does. Every rank is
        unchanged (up to ties created by rounding). ``info["affine"]`` records the maps applied."""
        agent = self._check_agent(agent)
        scale = _check_number("scale", scale)
        shift = _check_number("shift", shift)
        if not scale > 0.0:
            raise ValidationError(f"scale: expected a positive number (a positive affine map), got {scale!r}")

        def apply(values: np.ndarray | None) -> np.ndarray | None:
            if values is None:
                return None
            out = np.array(values, dtype=np.float64)
            out[..., agent] = scale * out[..., agent] + shift
            return out

        info = dict(self.info)
        info["affine"] = list(info.get("affine", [])) + [{"agent": agent, "scale": scale, "shift": shift}]
        return ReturnSample(
            returns=apply(self.returns),
            measure=self.measure,
            seed=self.seed,
            max_returns=apply(self.max_returns),
            min_returns=apply(self.min_returns),
            info=info,
        )

    # ------------------------------------------------------------------- I/O
    def to_dict(self, delta: float = 0.05) -> dict[str, Any]:
        """JSON-serialisable summary for reports (no samples): format, measure, seed, counts, the
        DKW band at ``delta``, the bounds, per-agent sample min/max, and ``info``."""
        ordered = self._sorted()
        return {
            "format": SAMPLE_FORMAT,
            "measure": self.measure,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "num_agents": self.num_agents,
            "dkw_band": {"delta": float(delta), "epsilon": self.dkw_band(delta)},
            "max_returns": None if self.max_returns is None else self.max_returns.tolist(),
            "min_returns": None if self.min_returns is None else self.min_returns.tolist(),
            "sample_max": ordered[:, -1].tolist(),
            "sample_min": ordered[:, 0].tolist(),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write to a compressed ``.npz`` (float64 arrays + a JSON ``metadata`` string with format
        tag :data:`SAMPLE_FORMAT`); bit-exact with :func:`load_sample`. Returns the path."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise ValidationError(f"path: expected a file name ending in .npz, got {str(path)!r}")
        metadata = {"format": SAMPLE_FORMAT, "measure": self.measure, "seed": self.seed, "info": self.info}
        arrays = {"returns": self.returns}
        for name in ("max_returns", "min_returns"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        np.savez_compressed(path, metadata=np.array(json.dumps(metadata)), **arrays)
        return path

    # --------------------------------------------------------------- helpers
    def _check_agent(self, agent: Any) -> int:
        if isinstance(agent, (bool, np.bool_)) or not isinstance(agent, (int, np.integer)):
            raise ValidationError(f"agent: expected an integer agent index, got {agent!r}")
        if not 0 <= int(agent) < self.num_agents:
            raise ValidationError(f"agent: expected an index in 0..{self.num_agents - 1}, got {int(agent)}")
        return int(agent)

    def _count_le(self, name: str, x: Any) -> np.ndarray:
        try:
            values = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{name}: expected a numeric array, got {type(x).__name__} ({exc})") from None
        n = self.num_agents
        if values.ndim == 0 or values.shape[-1] != n:
            raise ShapeError(f"{name}: expected shape [..., {n}] (one value per agent), got {values.shape}")
        if np.isnan(values).any():
            raise ValidationError(f"{name}: expected numbers, found nan at index {tuple(int(i) for i in np.argwhere(np.isnan(values))[0])}")
        ordered = self._sorted()
        counts = np.empty(values.shape, dtype=np.int64)
        for i in range(n):
            counts[..., i] = np.searchsorted(ordered[i], values[..., i], side="right")
        return counts.astype(np.float64)


def load_sample(path: str | os.PathLike) -> ReturnSample:
    """Read a :class:`ReturnSample` written by :meth:`ReturnSample.save`, never unpickling.

    Raises:
        ValidationError: no such file, not a readable ``.npz`` archive, an object (pickled) array,
            no or unreadable metadata, a format tag other than :data:`SAMPLE_FORMAT`, missing
            ``returns``, or contents that fail :class:`ReturnSample` validation.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"path: no such file {str(path)!r}")
    try:
        with path.open("rb") as handle:  # our handle, closed even when numpy fails half-way
            if handle.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise ValidationError(f"path: {str(path)!r} is not a .npz archive (not a zip file)")
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
    except ValidationError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValidationError(
                f"path: {str(path)!r} holds an object (pickled) array; refusing to unpickle ({exc})"
            ) from None
        raise ValidationError(f"path: {str(path)!r} is not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValidationError(f"path: {str(path)!r} is not a readable .npz archive ({exc})") from None
    if "metadata" not in arrays:
        raise ValidationError(f"path: {str(path)!r} has no 'metadata' entry; expected a file written by ReturnSample.save")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"path: {str(path)!r} has metadata that is not valid JSON ({exc})") from None
    fmt = metadata.get("format") if isinstance(metadata, dict) else None
    if fmt != SAMPLE_FORMAT:
        raise ValidationError(f"path: {str(path)!r}: expected format {SAMPLE_FORMAT!r}, got {fmt!r}")
    if "returns" not in arrays:
        raise ValidationError(f"path: {str(path)!r} has no 'returns' array")
    return ReturnSample(
        returns=arrays["returns"],
        measure=metadata.get("measure"),
        seed=metadata.get("seed"),
        max_returns=arrays.get("max_returns"),
        min_returns=arrays.get("min_returns"),
        info=metadata.get("info") or {},
    )


# ------------------------------------------------------------- the logistic CDF
@dataclass(frozen=True)
class LogisticCdf:
    """Generalised-logistic (Richards) CDF ``F(x) = (1 + exp(-(x - m) / s)) ** (-1 / nu)``.

    Lower asymptote 0, upper 1; ``nu = 1`` is the logistic distribution. With
    ``z = (x - m) / s`` the density is ``f(x) = exp(-z) (1 + exp(-z)) ** (-1/nu - 1) / (nu s)``;
    it is log-concave with its single peak (the inflection point of ``F``) at
    ``x = m - s log(nu)``, where ``F = (1 + nu) ** (-1/nu)``. ``F`` is convex below the mode and
    concave above it.

    Args:
        m: location (finite). s: scale (> 0). nu: shape (> 0).
        max_error: fit quality, ``sup_x |F(x) - F_emp(x)|`` against the sample it was fitted to
            (``None`` for a hand-made curve).
    """

    m: float
    s: float
    nu: float
    max_error: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "m", _check_number("m", self.m))
        for name in ("s", "nu"):
            value = _check_number(name, getattr(self, name))
            if not value > 0.0:
                raise ValidationError(f"{name}: expected a positive number, got {value!r}")
            object.__setattr__(self, name, value)
        if self.max_error is not None:
            object.__setattr__(self, "max_error", _check_number("max_error", self.max_error))

    def _log_base(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        z = (np.asarray(x, dtype=np.float64) - self.m) / self.s
        return z, np.logaddexp(0.0, -z)  # log(1 + exp(-z)), stable both ways

    def __call__(self, x: Any) -> np.ndarray:
        """``F(x)``, elementwise; same shape as ``x``."""
        _, log_base = self._log_base(x)
        return np.exp(-log_base / self.nu)

    def derivative(self, x: Any) -> np.ndarray:
        """The density ``F'(x)``, elementwise; same shape as ``x``."""
        z, log_base = self._log_base(x)
        return np.exp(-z - (1.0 / self.nu + 1.0) * log_base) / (self.nu * self.s)

    def mode(self) -> float:
        """Where the density peaks (the inflection point of ``F``): ``m - s log(nu)``.

        Derivation: with ``t = exp(-z)``, ``log f = const + log t - (1/nu + 1) log(1 + t)``, and
        ``d/dt = 1/t - (1 + nu) / (nu (1 + t)) = 0`` gives ``t = nu``, i.e. ``z = -log(nu)``."""
        return self.m - self.s * math.log(self.nu)

    def quantile(self, q: Any) -> np.ndarray:
        """The inverse ``F^{-1}(q) = m - s log(q ** (-nu) - 1)`` for ``q`` in ``[0, 1]``
        (``-inf`` at 0, ``inf`` at 1); same shape as ``q``."""
        qs = _check_levels("q", q)
        with np.errstate(divide="ignore"):
            return self.m - self.s * np.log(np.expm1(-self.nu * np.log(qs)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (and the mode)."""
        return {"m": self.m, "s": self.s, "nu": self.nu, "mode": self.mode(), "max_error": self.max_error}


def fit_logistic_cdf(
    values: Any,
    *,
    max_points: int = FIT_MAX_POINTS,
    max_error: float | None = None,
    name: str = "values",
    is_sorted: bool = False,
) -> LogisticCdf:
    """Least-squares fit of a :class:`LogisticCdf` to the empirical CDF of a 1-d sample.

    The sample is standardised (minus its median, divided by its IQR, or its standard deviation
    when the IQR is 0); the curve is fitted at most ``max_points`` evenly spaced order statistics
    (targets: the middle of the empirical CDF's jump there), in ``(m, log s, log nu)`` with
    ``nu`` in ``[1e-3, 1e3]``, from several starts (each matching the sample's median and IQR)
    with :func:`scipy.optimize.least_squares`; the best is kept. Its ``max_error`` is the
    Kolmogorov distance to the full empirical CDF.

    Args:
        values: ``[N]`` finite sample.
        max_points: at most this many fit points (>= 3).
        max_error: if given, raise when the fitted curve is further than this from the empirical
            CDF anywhere.
        name: how errors refer to the sample (e.g. ``"agent 2"``).
        is_sorted: skip sorting (``values`` already ascending).

    Raises:
        ValidationError: fewer than 5 distinct values, a constant sample, a failed fit, or a fit
            worse than ``max_error``.
    """
    from scipy import optimize  # local: only the Borda concave method needs SciPy here

    xs = finite_array(name, values, ndim=1)
    if not is_sorted:
        xs = np.sort(xs)
    if isinstance(max_points, (bool, np.bool_)) or not isinstance(max_points, (int, np.integer)) or max_points < 3:
        raise ValidationError(f"max_points: expected an integer >= 3, got {max_points!r}")
    if max_error is not None:
        max_error = _check_number("max_error", max_error)
    N = xs.size
    distinct = np.unique(xs)
    if distinct.size < 5:
        raise ValidationError(
            f"{name}: expected at least 5 distinct returns to fit a 3-parameter logistic CDF, got {distinct.size}"
        )
    center = float(np.median(xs))
    q25, q75 = np.quantile(xs, [0.25, 0.75])
    width = float(q75 - q25)
    if not width > 0.0:
        width = float(np.std(xs))
    if not width > 0.0 or not math.isfinite(width):  # pragma: no cover - excluded by the distinct check
        raise ValidationError(f"{name}: returns have no spread; cannot fit a CDF")

    idx = np.unique(np.linspace(0, N - 1, min(N, int(max_points))).round().astype(np.int64))
    points = (xs[idx] - center) / width
    targets = (np.searchsorted(xs, xs[idx], side="left") + np.searchsorted(xs, xs[idx], side="right")) / (2.0 * N)
    lo_q, hi_q = (np.array([0.25, 0.75]) if q75 > q25 else (0.5 - 0.5 * 0.6827, 0.5 + 0.5 * 0.6827))
    lo_z, hi_z = (float(np.quantile(points, lo_q)), float(np.quantile(points, hi_q)))
    span = hi_z - lo_z if hi_z > lo_z else 1.0

    def residuals(theta: np.ndarray) -> np.ndarray:
        m, log_s, log_nu = theta
        z = (points - m) / math.exp(log_s)
        return np.exp(-np.logaddexp(0.0, -z) / math.exp(log_nu)) - targets

    lower = [-np.inf, _FIT_LOG_S_BOUNDS[0], _FIT_LOG_NU_BOUNDS[0]]
    upper = [np.inf, _FIT_LOG_S_BOUNDS[1], _FIT_LOG_NU_BOUNDS[1]]
    best, problems = None, []
    for nu0 in _FIT_NU_STARTS:
        # Match the start's quartiles (or +-1 sd points) and median to the sample's.
        z_lo, z_hi, z_mid = (-math.log(p ** (-nu0) - 1.0) for p in (lo_q, hi_q, 0.5))
        s0 = span / (z_hi - z_lo)
        m0 = float(np.median(points)) - s0 * z_mid
        start = np.clip([m0, math.log(s0), math.log(nu0)], np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        try:
            result = optimize.least_squares(residuals, start, bounds=(lower, upper), method="trf", x_scale="jac")
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            problems.append(f"start nu={nu0}: {exc}")
            continue
        if result.status <= 0 or not np.all(np.isfinite(result.x)) or not math.isfinite(result.cost):
            problems.append(f"start nu={nu0}: {result.message}")
            continue
        if best is None or result.cost < best.cost:
            best = result
    if best is None:
        raise ValidationError(f"{name}: generalised-logistic CDF fit failed ({'; '.join(problems)})")
    m, log_s, log_nu = (float(v) for v in best.x)
    curve = LogisticCdf(m=center + width * m, s=width * math.exp(log_s), nu=math.exp(log_nu))
    fitted = curve(distinct)
    right = np.searchsorted(xs, distinct, side="right") / N
    left = np.searchsorted(xs, distinct, side="left") / N
    error = float(max(np.max(np.abs(fitted - right)), np.max(np.abs(fitted - left))))
    if max_error is not None and error > max_error:
        raise ValidationError(
            f"{name}: generalised-logistic CDF fit is {error:.3g} from the empirical CDF, expected at most {max_error:g}"
        )
    return LogisticCdf(m=curve.m, s=curve.s, nu=curve.nu, max_error=error)


# ------------------------------------------------------------------ helpers
def _parts(sample: ReturnSample) -> list[dict[str, Any]]:
    if "parts" in sample.info:
        return list(sample.info["parts"])
    own = {k: v for k, v in sample.info.items() if k != "parts"}
    return [{"seed": sample.seed, "num_samples": sample.num_samples, "info": own}]


def _check_bounds(returns: np.ndarray, upper: np.ndarray | None, lower: np.ndarray | None) -> None:
    if upper is not None and lower is not None and (lower > upper).any():
        i = int(np.argmax(lower > upper))
        raise ValidationError(
            f"min_returns: expected <= max_returns for every agent, got {float(lower[i])!r} > {float(upper[i])!r} for agent {i}"
        )
    for name, bound, extreme, sign in (
        ("max_returns", upper, returns.max(axis=0), 1.0),
        ("min_returns", lower, returns.min(axis=0), -1.0),
    ):
        if bound is None:
            continue
        scale = np.maximum(np.abs(bound), np.abs(extreme))
        if lower is not None and upper is not None:
            scale = np.maximum(scale, upper - lower)
        excess = sign * (extreme - bound)
        bad = excess > BOUND_RTOL * scale
        if bad.any():
            i = int(np.argmax(bad))
            side = "above" if sign > 0 else "below"
            raise ValidationError(
                f"{name}: expected every sampled return of agent {i} within it (the exact "
                f"{'max' if sign > 0 else 'min'} over O, relative tolerance {BOUND_RTOL:g}), "
                f"got a sample {float(extreme[i])!r} {side} {float(bound[i])!r}"
            )


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValidationError(f"seed: expected an integer or None, got {seed!r}")
    return int(seed)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValidationError(f"{name}: expected a finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: expected a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValidationError(f"{name}: expected a finite number, got {value!r}")
    return number


def _check_probability(name: str, value: Any) -> float:
    number = _check_number(name, value)
    if not 0.0 < number < 1.0:
        raise ValidationError(f"{name}: expected a probability in (0, 1) (exclusive), got {value!r}")
    return number


def _check_levels(name: str, q: Any) -> np.ndarray:
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


def _check_indices(name: str, k: Any, N: int) -> np.ndarray:
    ks = np.asarray(k)
    if ks.dtype == np.bool_ or not np.issubdtype(ks.dtype, np.integer):
        raise ValidationError(f"{name}: expected integer sorted positions in 0..{N}, got {k!r}")
    ks = ks.astype(np.int64)
    bad = (ks < 0) | (ks > N)
    if bad.any():
        value = ks[tuple(np.argwhere(bad)[0])] if ks.ndim else ks
        raise ValidationError(f"{name}: expected sorted positions in 0..{N} (N = max_O J), got {int(value)}")
    return ks


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_copy(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{name}: expected a dict of JSON-serialisable metadata, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected JSON-serialisable metadata ({exc})") from None
