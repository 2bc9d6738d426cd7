"""Samples of the reference measure: empirical return CDFs, quantiles and ranks (SPEC §2).

A :class:`ReturnSample` holds ``N`` draws of every agent's return under one reference measure
(``"policy"``, ``"uniform"`` or ``"hull"``) and answers the empirical questions the volumetric
rules ask. It is pure NumPy: the JAX samplers in ``jaxagg.kernels`` produce the returns, this module
never imports JAX. Smooth CDF fits live in :mod:`jaxagg.cdf_fit`.

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

Every sample carries the **fingerprint** of the instance it was drawn from
(:attr:`jaxagg.MOMDP.fingerprint`); rules and :func:`jaxagg.extend` refuse a sample whose
fingerprint is not their instance's (:meth:`ReturnSample.check_instance`).

Files: ``.npz`` (arrays plus a JSON metadata string with format tag ``"jaxagg.sample/2"``),
written atomically and read with ``allow_pickle=False`` (:mod:`jaxagg.files`); never pickle.
Files of format ``"jaxagg.sample/1"`` (no fingerprint) still load; :meth:`ReturnSample.bind`
vouches for them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg import files
from jaxagg.errors import ShapeError, ValidationError
from jaxagg.validation import (
    finite_array,
    finite_number,
    json_metadata,
    levels,
    optional_seed,
    probability,
    sorted_positions,
)

MEASURES = ("policy", "uniform", "hull")
SAMPLE_FORMAT = "jaxagg.sample/2"
OLD_SAMPLE_FORMATS = ("jaxagg.sample/1",)
"""Formats :func:`load_sample` still reads (without an instance fingerprint)."""
SAMPLE_ARRAYS = ("returns", "max_returns", "min_returns")
FINGERPRINT = re.compile(r"[0-9a-f]{64}")

BOUND_RTOL = 1e-5
"""A sampled return may exceed ``max_returns`` (or fall below ``min_returns``) by at most this
much, relative to the largest magnitude involved (float32 samplers round); more is an error."""

RANK_RTOL = 1e-9
""":meth:`ReturnSample.rank` counts a sample as reached when the policy's return is at most this
fraction of the agent's return range below it (the LP/MILP solvers' tolerance): a policy that a
solve put exactly on a sampled threshold ranks at that sample, not one below."""

_INDEX_ULPS = 4.0
"""``q * N`` within ``_INDEX_ULPS * eps * N`` below an integer counts as that integer, so that the
float ``0.29`` with ``N = 100`` gives ``floor(q N) = 29`` (not 28, as float rounding would)."""


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
        fingerprint: :attr:`jaxagg.MOMDP.fingerprint` of the instance sampled (set by
            :func:`jaxagg.sample`; ``None`` for a hand-made sample until :meth:`bind`).
        info: JSON-serialisable metadata (dtype, chunk size, sampler diagnostics). NumPy scalars
            and arrays are converted to plain numbers and lists.

    Raises:
        ShapeError: ``returns`` is not 2-d, or a bound is not ``[n]``.
        ValidationError: no samples or no agents, non-finite values, an unknown measure, a
            seed that is not an integer in [0, 2**32), a malformed fingerprint,
            ``min_returns > max_returns``, a sample outside the bounds by more than
            :data:`BOUND_RTOL`, or ``info`` that is not JSON-serialisable.
    """

    returns: np.ndarray
    measure: str
    seed: int | None = None
    max_returns: np.ndarray | None = None
    min_returns: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
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
        seed = optional_seed("seed", self.seed)
        if self.fingerprint is not None and not (isinstance(self.fingerprint, str) and FINGERPRINT.fullmatch(self.fingerprint)):
            raise ValidationError(f"fingerprint: expected 64 lowercase hex digits (MOMDP.fingerprint) or None, got {self.fingerprint!r}")
        bounds = {}
        for name in ("max_returns", "min_returns"):
            value = getattr(self, name)
            if value is not None:
                value = finite_array(name, value, ndim=1)
                if value.shape != (n,):
                    raise ShapeError(f"{name}: expected shape [{n}] (one per agent of returns {returns.shape}), got {value.shape}")
            bounds[name] = value
        _check_bounds(returns, bounds["max_returns"], bounds["min_returns"])
        # A float32 sample may round a little past an exact bound (within BOUND_RTOL): it is put
        # back on the bound, so that no threshold or rank refers to a return outside O's range.
        # In place: finite_array made ``returns`` a new array (np.clip would allocate another,
        # half a second for 4 million samples).
        if bounds["min_returns"] is not None:
            np.maximum(returns, bounds["min_returns"], out=returns)
        if bounds["max_returns"] is not None:
            np.minimum(returns, bounds["max_returns"], out=returns)
        info = json_metadata("info", self.info)
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
        """Empirical quantile ranks ``#{samples_i <= J_i(d) + tol_i} / N`` of policies with
        returns ``[..., n]``; shape ``[..., n]``. ``tol_i`` is :data:`RANK_RTOL` of agent i's
        return range when both bounds are known (else 0, and the ranks are :meth:`cdf`'s)."""
        try:
            shifted = np.asarray(returns, dtype=np.float64) + self.tie_tolerance()
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"returns: expected a numeric array, got {type(returns).__name__} ({exc})") from None
        return self._count_le("returns", shifted) / self.num_samples

    def approves(self, returns: Any, q: Any) -> np.ndarray:
        """Approval at level ``q``: whether each agent ranks policies with returns ``[..., n]`` in
        its top ``1 - q``, i.e. ``J_i + tol_i >= tau_i(q)`` (``tol_i`` as in :meth:`rank`);
        boolean ``[..., n]``."""
        return np.asarray(returns, dtype=np.float64) + self.tie_tolerance() >= self.quantile(q)

    def tie_tolerance(self) -> np.ndarray | float:
        """``[n]`` :data:`RANK_RTOL` of every agent's return range (0 without both bounds)."""
        if self.max_returns is None or self.min_returns is None:
            return 0.0
        return RANK_RTOL * (self.max_returns - self.min_returns)

    def quantile_index(self, q: Any) -> np.ndarray:
        """0-based sorted position ``k = floor(q N)`` of ``tau_i(q)``, with ``k = N`` for ``q = 1``
        (meaning ``max_O J_i``). ``q``: a scalar or array in ``[0, 1]``; int64 of ``q``'s shape.

        A product ``q * N`` a few ulps below an integer counts as that integer (so ``q = 0.29``,
        ``N = 100`` gives ``k = 29``)."""
        qs = levels("q", q)
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
        ks = sorted_positions("k", k, self.num_samples)
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
        delta = probability("delta", delta)
        return math.sqrt(math.log(2.0 / delta) / (2.0 * self.effective_size))

    # ------------------------------------------------------- the instance
    def check_instance(self, momdp: Any, name: str = "sample") -> ReturnSample:
        """Refuse this sample unless it was drawn for ``momdp``: the same fingerprint (P, R, mu,
        criterion, gamma) and the same number of agents. The one check every rule's door, the
        report and :func:`jaxagg.extend` make. Returns the sample."""
        if self.num_agents != momdp.num_agents:
            raise ValidationError(f"{name}: expected returns of {momdp.num_agents} agents for {momdp!r}, "
                                  f"got {self.num_agents}")
        if self.fingerprint is None:
            raise ValidationError(
                f"{name}: carries no instance fingerprint (made by hand, or a file from jaxagg 0.1), so it cannot be "
                f"checked against {momdp!r}; draw it with ja.sample, or vouch for it with sample.bind(momdp, ja.return_bounds(momdp))")
        if self.fingerprint != momdp.fingerprint:
            raise ValidationError(f"{name}: was drawn for a different instance than {momdp!r} (fingerprint "
                                  f"{self.fingerprint[:12]}… differs from the instance's {momdp.fingerprint[:12]}…)")
        return self

    def bind(self, momdp: Any, bounds: Any = None) -> ReturnSample:
        """This sample marked as drawn for ``momdp`` (a copy with its fingerprint): for samples
        made by hand or read from old files. The caller vouches for it; what can be checked is:
        the number of agents, and (given the instance's ``bounds``, a
        :class:`~jaxagg.solvers.polytope.ReturnBounds`) known ``max_returns``/``min_returns``
        equal to the instance's within a relative 1e-9."""
        if self.num_agents != momdp.num_agents:
            raise ValidationError(f"momdp: has {momdp.num_agents} agents, the sample {self.num_agents}")
        if bounds is not None:
            for name, mine, theirs in (("max_returns", self.max_returns, bounds.upper),
                                       ("min_returns", self.min_returns, bounds.lower)):
                if mine is not None and not np.allclose(mine, theirs, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(theirs).max())):
                    raise ValidationError(f"momdp: the sample's {name} {mine.tolist()} are not {momdp!r}'s "
                                          f"{np.asarray(theirs).tolist()}; it was drawn for another instance")
        return replace(self, fingerprint=momdp.fingerprint)

    # ------------------------------------------------------ derived samples
    def extend(self, other: ReturnSample) -> ReturnSample:
        """A new sample with this sample's rows followed by ``other``'s (resuming a run).

        Both must have the same measure, number of agents and instance fingerprint; known bounds
        must agree (one side's ``None`` takes the other's, and so does a missing fingerprint).
        The seed is kept when both seeds are equal, else ``None``.
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
        if self.fingerprint is not None and other.fingerprint is not None and self.fingerprint != other.fingerprint:
            raise ValidationError("other: was drawn for a different instance (its fingerprint differs)")
        _refuse_overlaps(index_ranges(self) + index_ranges(other))
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
            fingerprint=self.fingerprint or other.fingerprint,
        )

    def affine(self, agent: int, scale: float, shift: float) -> ReturnSample:
        """A new sample with agent ``agent``'s returns and bounds mapped by ``x -> scale * x + shift``
        (``scale > 0``): what a positive affine change of that agent's reward does. Every rank is
        unchanged (up to ties created by rounding). ``info["affine"]`` records the maps applied.
        The result belongs to another instance (the changed rewards), so it carries no
        fingerprint: :meth:`bind` it to that instance."""
        agent = self._check_agent(agent)
        scale = finite_number("scale", scale)
        shift = finite_number("shift", shift)
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
            "fingerprint": self.fingerprint,
            "sample_max": ordered[:, -1].tolist(),
            "sample_min": ordered[:, 0].tolist(),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write to a compressed ``.npz`` (float64 arrays + a JSON ``metadata`` string with format
        tag :data:`SAMPLE_FORMAT`), atomically; bit-exact with :func:`load_sample`. Returns the
        path."""
        path = files.output_path("path", path, (".npz",))
        metadata = {"format": SAMPLE_FORMAT, "measure": self.measure, "seed": self.seed,
                    "fingerprint": self.fingerprint, "info": self.info}
        arrays = {name: getattr(self, name) for name in SAMPLE_ARRAYS if getattr(self, name) is not None}
        return files.write_npz(path, arrays, metadata)

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
            no or unreadable metadata, a format tag other than :data:`SAMPLE_FORMAT` (or an older
            readable one), missing ``returns``, or contents that fail :class:`ReturnSample`
            validation.
    """
    arrays, metadata = files.read_npz("path", path, (SAMPLE_FORMAT, *OLD_SAMPLE_FORMATS), SAMPLE_ARRAYS)
    if "returns" not in arrays:
        raise ValidationError(f"path: {str(path)!r} has no 'returns' array")
    info = metadata.get("info")
    if info is not None and not isinstance(info, dict):
        raise ValidationError(f"path: {str(path)!r} has 'info' metadata that is not a JSON object")
    return ReturnSample(
        returns=arrays["returns"],
        measure=metadata.get("measure"),
        seed=metadata.get("seed"),
        max_returns=arrays.get("max_returns"),
        min_returns=arrays.get("min_returns"),
        info=info or {},
        fingerprint=metadata.get("fingerprint"),
    )


def index_ranges(sample: ReturnSample, name: str = "sample") -> list[tuple[int | None, int, int]]:
    """The draws a sample holds, one ``(seed, start, stop)`` per part (sample indices
    ``start .. stop - 1`` of the stream of ``seed``), read from ``info["parts"]`` or, for a
    one-part sample, from ``info["start"]``. Malformed part records are a ValidationError."""
    ranges = []
    for k, part in enumerate(_parts(sample)):
        try:
            part_info = part.get("info") or {}
            start = int(part_info.get("start", 0))
            count = int(part["num_samples"])
            part_seed = part.get("seed")
            if start < 0 or count < 1 or not (part_seed is None or isinstance(part_seed, int)):
                raise ValueError("negative start, no samples or a seed that is not an integer")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"{name}: info['parts'][{k}] is malformed ({exc}); expected "
                                  "{'seed': int, 'num_samples': int >= 1, 'info': {'start': int >= 0, ...}}") from None
        ranges.append((part_seed, start, start + count))
    if sum(stop - start for _, start, stop in ranges) != sample.num_samples:
        raise ValidationError(f"{name}: info['parts'] counts {sum(b - a for _, a, b in ranges)} samples, "
                              f"the sample has {sample.num_samples}")
    return ranges


def _refuse_overlaps(ranges: list[tuple[int | None, int, int]]) -> None:
    """Refuse the same draw twice: two parts of one seed whose index ranges overlap."""
    for k, (seed_a, start_a, stop_a) in enumerate(ranges):
        for seed_b, start_b, stop_b in ranges[k + 1:]:
            if seed_a is not None and seed_a == seed_b and start_a < stop_b and start_b < stop_a:
                raise ValidationError(
                    f"other: holds draws {max(start_a, start_b)}..{min(stop_a, stop_b) - 1} of seed {seed_a} that this "
                    "sample already has; a sample extended by itself would count them twice (and narrow the DKW band)")


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
