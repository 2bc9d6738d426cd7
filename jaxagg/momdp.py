"""The multi-objective MDP: one environment, one reward function per agent (SPEC §1).

A :class:`MOMDP` is validated once, at construction, and is immutable afterwards (its arrays are
read-only float64 copies). Everything downstream (samplers, polytope, rules) trusts it.

Layouts:
    P   ``[S, A, S]``  transition probabilities ``P[s, a, s']``, rows sum to 1
    R   ``[n, S, A]``  reward of agent ``i`` for taking action ``a`` in state ``s``
    mu  ``[S]``        initial state distribution

Files: ``.npz`` (arrays plus a JSON metadata string, read with ``allow_pickle=False``) and
``.json`` (nested lists). Neither format ever uses pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from jaxagg import files
from jaxagg.errors import DegenerateAgentError, ShapeError, ValidationError
from jaxagg.kernels import transitions as T
from jaxagg.validation import finite_array

CRITERIA = ("average", "discounted")
PROBABILITY_ATOL = 1e-6
"""Rows of ``P`` and ``mu`` must sum to 1 within this absolute tolerance (rows off by more than
1e-12 are then renormalised), and entries must be >= -PROBABILITY_ATOL (clipped to 0)."""

MIN_ONE_MINUS_GAMMA = 1e-6
"""Supported discount factors: ``0 < gamma <= 1 - 1e-6`` (effective horizons up to a million
steps). The LPs were measured exact to 1e-10 of the return range at ``1 - 1e-6``; beyond it
their right-hand side ``(1 - gamma) mu`` drowns in the solver's tolerances. For longer horizons
use the average-reward criterion."""

DENSE_LIMIT_BYTES = 2**30
"""``momdp.P`` (dense float64 ``[S, A, S]``) is built on request only, and refused past this size
(1 GiB); the engine never needs it (see :mod:`jaxagg.kernels.transitions`)."""

FINGERPRINT_DENSE_BYTES = 2**27
"""Instances whose dense ``P`` takes at most this (128 MiB) hash it densely (see
:attr:`MOMDP.fingerprint`)."""

FILE_FORMAT = "jaxagg.momdp/1"
FILE_SUFFIXES = (".npz", ".json")
MAX_FACTORS = 64
ARRAYS = ("P", "R", "mu", "successors", "probabilities", *(f"factor_{k}" for k in range(MAX_FACTORS)))


@dataclass(frozen=True, eq=False, init=False)
class MOMDP:
    """A validated multi-objective MDP shared by ``n`` agents.

    Args:
        P: transitions: a dense array ``[S, A, S]`` (``P[s, a, :]`` is a distribution over next
            states) or a transition operator from :mod:`jaxagg.kernels.transitions`:
            ``SparseTransitions`` (bounded branching; build it with ``sparse_transitions``) or
            ``KroneckerTransitions`` (independent factors), which never form ``[S, A, S]``.
        R: rewards ``[n, S, A]`` (one reward function per agent); a ``[S, A]`` array is one agent.
        mu: initial distribution ``[S]``; ``None`` means uniform.
        criterion: ``"average"`` (average reward per step) or ``"discounted"``.
        gamma: discount factor in (0, 1); required for ``"discounted"``, must be ``None`` for
            ``"average"``.
        agent_names, state_names, action_names: optional labels (lengths n, S, A).
        info: free-form JSON-serialisable metadata (an environment's drawn parameters).

    Attributes:
        transitions: the validated operator (numpy float64 arrays, read-only), in the form given.
        P: the dense ``[S, A, S]`` array, built on first use and refused past
            :data:`DENSE_LIMIT_BYTES` (the engine uses ``transitions``).

    Raises:
        ShapeError: wrong rank or inconsistent sizes.
        ValidationError: NaN/inf entries, negative probabilities, rows not summing to 1, a bad
            criterion or gamma, zero agents, states or actions, or wrong-length names.
        DegenerateAgentError: an agent's reward is the same for every state and action, so its
            return is the same for every policy. (Returns that are constant over the occupancy
            polytope for a subtler reason are found by LP in
            :func:`jaxagg.solvers.polytope.return_bounds`, which warns with
            :class:`~jaxagg.errors.DegenerateAgentWarning`.)
    """

    transitions: T.Transitions
    R: np.ndarray
    mu: np.ndarray
    criterion: str = "average"
    gamma: float | None = None
    agent_names: tuple[str, ...] | None = None
    state_names: tuple[str, ...] | None = None
    action_names: tuple[str, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __init__(self, P: Any, R: Any, mu: Any = None, criterion: str = "average", gamma: float | None = None,
                 agent_names: Sequence[str] | None = None, state_names: Sequence[str] | None = None,
                 action_names: Sequence[str] | None = None, info: dict[str, Any] | None = None) -> None:
        transitions = check_transitions("P", P)
        S, A = T.shape_of(transitions)
        R = finite_array("R", R, ndim=(2, 3))
        if R.ndim == 2:
            R = R[None]
        if R.shape[0] == 0:
            raise ValidationError("R: expected at least one agent, got shape " f"{R.shape}")
        if R.shape[1:] != (S, A):
            raise ShapeError(f"R: expected shape [n, {S}, {A}] to match P (S={S}, A={A}), got {R.shape}")
        mu = np.full(S, 1.0 / S) if mu is None else finite_array("mu", mu, ndim=1)
        if mu.shape != (S,):
            raise ShapeError(f"mu: expected shape [{S}] to match P (S={S}), got {mu.shape}")
        mu = _probability_rows("mu", mu)
        criterion, gamma = _check_criterion(criterion, gamma)
        n = R.shape[0]
        for name, labels, size in (
            ("agent_names", agent_names, n),
            ("state_names", state_names, S),
            ("action_names", action_names, A),
        ):
            object.__setattr__(self, name, _check_names(name, labels, size))
        flat = R.reshape(n, S * A)
        constant = np.flatnonzero(flat.max(axis=1) - flat.min(axis=1) == 0.0)
        if constant.size:
            raise DegenerateAgentError(
                f"R: agent(s) {constant.tolist()} have the same reward for every state and action, "
                "so every policy gives them the same return; remove them"
            )
        try:
            info = json.loads(json.dumps(dict(info or {})))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"info: expected JSON-serialisable metadata ({exc})") from None
        for value in (R, mu):
            value.setflags(write=False)
        object.__setattr__(self, "transitions", transitions)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "criterion", criterion)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "info", info)

    @cached_property
    def P(self) -> np.ndarray:
        """Dense transitions ``[S, A, S]`` (float64, read-only), built on first use.

        Raises:
            ValidationError: the array would take more than :data:`DENSE_LIMIT_BYTES`.
        """
        if isinstance(self.transitions, T.DenseTransitions):
            return self.transitions.P
        S, A = T.shape_of(self.transitions)
        size = S * A * S * 8
        if size > DENSE_LIMIT_BYTES:
            raise ValidationError(
                f"P: the dense transitions of this MOMDP ({S} states x {A} actions) would take {size / 2**30:.1f} GiB, more than "
                f"jaxagg.momdp.DENSE_LIMIT_BYTES = {DENSE_LIMIT_BYTES / 2**30:g} GiB; use momdp.transitions "
                f"({T.form_of(self.transitions)}) instead")
        dense = T.dense_array(self.transitions)
        dense.setflags(write=False)
        return dense

    @property
    def transition_form(self) -> str:
        """``"dense"``, ``"sparse"`` or ``"kronecker"``."""
        return T.form_of(self.transitions)

    # ----------------------------------------------------------------- sizes
    @property
    def num_states(self) -> int:
        return T.shape_of(self.transitions)[0]

    @property
    def num_actions(self) -> int:
        return T.shape_of(self.transitions)[1]

    @property
    def num_agents(self) -> int:
        return self.R.shape[0]

    @property
    def dim(self) -> int:
        """Length ``S * A`` of a flat occupancy vector."""
        return self.num_states * self.num_actions

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of what defines the returns: ``P``, ``R`` and ``mu`` (float64 bytes,
        little-endian), the criterion and gamma. Samples store it, and every rule refuses a
        sample whose fingerprint differs from its instance's. Names and ``info`` do not count.

        ``P`` is hashed as the dense array whenever that takes at most
        :data:`FINGERPRINT_DENSE_BYTES`, so the same MDP has the same fingerprint in every
        operator form; past that, the operator's own arrays are hashed (with its form's name)."""
        digest = hashlib.sha256()
        header = {"criterion": self.criterion, "gamma": None if self.gamma is None else float(self.gamma).hex(),
                  "shape": [self.num_agents, self.num_states, self.num_actions]}
        S, A = self.num_states, self.num_actions
        if S * A * S * 8 <= FINGERPRINT_DENSE_BYTES:
            transitions = [self.P]
        else:
            header["transitions"] = self.transition_form
            transitions = _canonical_arrays(self.transitions)
        digest.update(json.dumps(header, sort_keys=True).encode())
        for array in (*transitions, self.R, self.mu):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return digest.hexdigest()

    @property
    def reward_matrix(self) -> np.ndarray:
        """Rewards as ``[n, S*A]``, so that returns are ``reward_matrix @ d``."""
        return self.R.reshape(self.num_agents, self.dim)

    def returns(self, occupancy: np.ndarray) -> np.ndarray:
        """Every agent's return ``J_i(d) = <R_i, d>`` for a flat occupancy ``[S*A]`` (or ``[S, A]``
        or a batch ``[..., S*A]``); shape ``[n]`` (or ``[..., n]``)."""
        d = np.asarray(occupancy, dtype=np.float64)
        if d.shape[-2:] == (self.num_states, self.num_actions):
            d = d.reshape(*d.shape[:-2], self.dim)
        if d.shape[-1] != self.dim:
            raise ShapeError(f"occupancy: expected last axis of length S*A = {self.dim}, got shape {d.shape}")
        return d @ self.reward_matrix.T

    def labels(self) -> list[str]:
        """Agent labels: the given names or ``agent 0``, ``agent 1``, ..."""
        return list(self.agent_names) if self.agent_names else [f"agent {i}" for i in range(self.num_agents)]

    def with_rewards(self, R: np.ndarray, agent_names: Sequence[str] | None = None) -> MOMDP:
        """The same environment with other agents (rewards ``[n', S, A]``)."""
        return MOMDP(self.transitions, R, self.mu, self.criterion, self.gamma, agent_names, self.state_names, self.action_names,
                     self.info)

    def __repr__(self) -> str:
        crit = self.criterion if self.gamma is None else f"discounted(gamma={self.gamma})"
        name = self.info.get("env", "MOMDP")
        return f"MOMDP<{name}: S={self.num_states}, A={self.num_actions}, n={self.num_agents}, {crit}>"

    # ------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (nested lists) that :meth:`from_dict` reads back. Dense
        transitions are ``"P"``; an operator is ``"transitions": {"form": ..., arrays...}``."""
        arrays = transition_arrays(self.transitions)
        if "P" in arrays:
            transitions = {"P": arrays["P"].tolist()}
        else:
            transitions = {"transitions": {"form": self.transition_form, **{k: v.tolist() for k, v in arrays.items()}}}
        return {
            "format": FILE_FORMAT,
            **self._metadata(),
            **transitions,
            "R": self.R.tolist(),
            "mu": self.mu.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MOMDP:
        """Inverse of :meth:`to_dict`; validates everything again."""
        if not isinstance(data, dict):
            raise ValidationError(f"data: expected a dict, got {type(data).__name__}")
        missing = [k for k in ("R",) if k not in data] + ([] if "P" in data or "transitions" in data else ["P"])
        if missing:
            raise ValidationError(f"data: missing required key(s) {missing}")
        fmt = data.get("format", FILE_FORMAT)
        if fmt != FILE_FORMAT:
            raise ValidationError(f"data: expected format {FILE_FORMAT!r}, got {fmt!r}")
        info = data.get("info")
        if info is not None and not isinstance(info, dict):
            raise ValidationError(f"data: expected 'info' to be a JSON object, got {type(info).__name__}")
        return cls(
            P=data["P"] if "P" in data else transitions_from_arrays("transitions", data["transitions"]),
            R=data["R"],
            mu=data.get("mu"),
            criterion=data.get("criterion", "average"),
            gamma=data.get("gamma"),
            agent_names=data.get("agent_names"),
            state_names=data.get("state_names"),
            action_names=data.get("action_names"),
            info=info or {},
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``.npz`` (compressed arrays + JSON metadata) or ``.json``, atomically (see
        :mod:`jaxagg.files`); returns the path."""
        path = files.output_path("path", path, FILE_SUFFIXES)
        if path.suffix.lower() == ".json":
            return files.write_json(path, self.to_dict(), indent=None)
        arrays = transition_arrays(self.transitions)
        metadata = self._metadata() if "P" in arrays else {**self._metadata(), "transitions": self.transition_form}
        return files.write_npz(path, {**arrays, "R": self.R, "mu": self.mu}, metadata)

    def _metadata(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "criterion": self.criterion,
            "gamma": self.gamma,
            "agent_names": _optional_list(self.agent_names),
            "state_names": _optional_list(self.state_names),
            "action_names": _optional_list(self.action_names),
            "info": self.info,
        }


def load(path: str | os.PathLike) -> MOMDP:
    """Read a MOMDP written by :meth:`MOMDP.save` (``.npz`` or ``.json``), never unpickling.

    Raises:
        ValidationError: no such file, another suffix, an unreadable or corrupt file, another
            format, or contents that fail :class:`MOMDP` validation.
    """
    suffix = Path(path).suffix.lower() if isinstance(path, (str, os.PathLike)) else None
    if suffix == ".json":
        return MOMDP.from_dict(files.read_json("path", path))
    if suffix == ".npz":
        arrays, metadata = files.read_npz("path", path, FILE_FORMAT, ARRAYS)
        form = metadata.pop("transitions", None)
        if form is not None:
            operator = {key: arrays.pop(key) for key in list(arrays) if key not in ("P", "R", "mu")}
            arrays["transitions"] = {"form": form, **operator}
        return MOMDP.from_dict({**metadata, **arrays})
    raise ValidationError(f"path: expected a file name ending in .npz or .json, got {str(path)!r}")


def from_mdptoolbox(
    transitions: np.ndarray | Sequence[np.ndarray],
    rewards: Sequence[np.ndarray] | np.ndarray,
    *,
    mu: np.ndarray | None = None,
    criterion: str = "discounted",
    gamma: float | None = 0.9,
    agent_names: Sequence[str] | None = None,
) -> MOMDP:
    """Build a MOMDP from pymdptoolbox's layout.

    Args:
        transitions: ``[A, S, S]`` (pymdptoolbox's ``P``), or a list of A ``[S, S]`` matrices.
        rewards: one pymdptoolbox reward per agent, as a list (or a stacked array with the agent
            axis first). Each is ``[S]`` (state reward), ``[S, A]``, or ``[A, S, S]``
            (reward on the transition; its expectation under ``P`` is used).
    """
    P_ass = finite_array("transitions", np.stack([np.asarray(t, dtype=np.float64) for t in transitions]), ndim=3)
    A, S, S2 = P_ass.shape
    if S != S2:
        raise ShapeError(f"transitions: expected [A, S, S], got {P_ass.shape}")
    per_agent = list(rewards)
    if not per_agent:
        raise ValidationError("rewards: expected a non-empty list with one pymdptoolbox reward per agent")
    R = np.stack([_mdptoolbox_reward(f"rewards[{i}]", r, P_ass) for i, r in enumerate(per_agent)])
    return MOMDP(
        P=np.transpose(P_ass, (1, 0, 2)),
        R=R,
        mu=mu,
        criterion=criterion,
        gamma=gamma,
        agent_names=None if agent_names is None else tuple(agent_names),
        info={"env": "mdptoolbox"},
    )


def to_mdptoolbox(momdp: MOMDP) -> tuple[np.ndarray, list[np.ndarray]]:
    """pymdptoolbox's layout: transitions ``[A, S, S]`` and one ``[S, A]`` reward per agent."""
    return np.transpose(momdp.P, (1, 0, 2)).copy(), [r.copy() for r in momdp.R]


# ------------------------------------------------------------------ transitions
def check_transitions(name: str, P: Any) -> T.Transitions:
    """``P`` (a dense ``[S, A, S]`` array or a transition operator) validated and converted to an
    operator of numpy float64 read-only arrays: shapes, finite non-negative probabilities, every
    distribution summing to 1 (renormalised as :data:`PROBABILITY_ATOL` allows). Sparse lists
    get their transposed lists rebuilt here."""
    if isinstance(P, T.SparseTransitions):
        successors = np.asarray(P.successors)
        if successors.ndim != 3 or successors.dtype.kind not in "iu":
            raise ShapeError(f"{name}: expected SparseTransitions.successors as integers [S, A, b], "
                             f"got {successors.dtype} {successors.shape}")
        probabilities = finite_array(f"{name}.probabilities", P.probabilities, ndim=3)
        if probabilities.shape != successors.shape:
            raise ShapeError(f"{name}: expected probabilities of shape {successors.shape} like the successors, got {probabilities.shape}")
        S = successors.shape[0]
        if S == 0 or successors.shape[1] == 0 or successors.shape[2] == 0:
            raise ShapeError(f"{name}: expected successors [S, A, b] with S, A, b >= 1, got {successors.shape}")
        if successors.min() < 0 or successors.max() >= S:
            raise ValidationError(f"{name}: successor states must lie in [0, {S}), got values in [{successors.min()}, {successors.max()}]")
        op = T.sparse_transitions(successors, _probability_rows(f"{name}.probabilities", probabilities))
    elif isinstance(P, T.KroneckerTransitions):
        factors = P.factors if isinstance(P.factors, (tuple, list)) else None
        if not factors or len(factors) > MAX_FACTORS:
            raise ValidationError(f"{name}: expected KroneckerTransitions with 1 to {MAX_FACTORS} factors, got {P.factors!r:.80}")
        checked = []
        for f, K in enumerate(factors):
            K = finite_array(f"{name}.factors[{f}]", K, ndim=3)
            if K.shape[0] == 0 or K.shape[1] == 0 or K.shape[1] != K.shape[2]:
                raise ShapeError(f"{name}.factors[{f}]: expected [A, p, p] with A, p >= 1, got {K.shape}")
            if K.shape[0] != np.shape(factors[0])[0]:
                raise ShapeError(f"{name}.factors[{f}]: expected {np.shape(factors[0])[0]} actions like factor 0, got {K.shape[0]}")
            checked.append(_probability_rows(f"{name}.factors[{f}]", K))
        op = T.KroneckerTransitions(tuple(checked))
    elif isinstance(P, T.DenseTransitions):
        return check_transitions(name, P.P)
    else:
        dense = finite_array(name, P, ndim=3)
        S, A, S2 = dense.shape
        if S == 0 or A == 0:
            raise ShapeError(f"{name}: expected shape [S, A, S] with S, A >= 1, got {dense.shape}")
        if S2 != S:
            raise ShapeError(f"{name}: expected shape [S, A, S] (first and last axis equal), got {dense.shape}")
        op = T.DenseTransitions(_probability_rows(name, dense))
    for leaf in op if not isinstance(op, T.KroneckerTransitions) else op.factors:
        leaf.setflags(write=False)
    return op


def transition_arrays(op: T.Transitions) -> dict[str, np.ndarray]:
    """The arrays that define ``op`` in files: ``P``; ``successors`` and ``probabilities``; or
    ``factor_0``, ``factor_1``, ..."""
    if isinstance(op, T.DenseTransitions):
        return {"P": op.P}
    if isinstance(op, T.SparseTransitions):
        return {"successors": op.successors, "probabilities": op.probabilities}
    return {f"factor_{k}": K for k, K in enumerate(op.factors)}


def transitions_from_arrays(name: str, data: Any) -> T.Transitions:
    """Inverse of :func:`transition_arrays` (plus ``"form"``), unvalidated: :class:`MOMDP` checks."""
    if not isinstance(data, dict) or data.get("form") not in ("sparse", "kronecker"):
        raise ValidationError(f"{name}: expected an object with 'form' 'sparse' or 'kronecker' and its arrays, got {str(data)[:80]!r}")
    if data["form"] == "sparse":
        missing = [key for key in ("successors", "probabilities") if key not in data]
        if missing:
            raise ValidationError(f"{name}: sparse transitions need {missing}")
        successors = finite_array(f"{name}.successors", data["successors"], ndim=3)
        if (successors != np.round(successors)).any():
            raise ValidationError(f"{name}.successors: expected integer state indices")
        return T.SparseTransitions(successors.astype(np.int64), data["probabilities"], None, None)
    count = sum(1 for key in data if key.startswith("factor_"))
    factors = data.get("factors") if "factors" in data else [data.get(f"factor_{k}") for k in range(count)]
    if not isinstance(factors, (list, tuple)) or not factors or any(f is None for f in factors):
        raise ValidationError(f"{name}: Kronecker transitions need factors factor_0 .. factor_k")
    return T.KroneckerTransitions(tuple(factors))


def _canonical_arrays(op: T.Transitions) -> list[np.ndarray]:
    """Arrays that determine ``op`` whatever order its parts were given in (for the fingerprint)."""
    if isinstance(op, T.SparseTransitions):
        return [op.predecessors, op.weights]  # sorted by target, then source, duplicates merged
    if isinstance(op, T.KroneckerTransitions):
        return list(op.factors)
    return [op.P]


# ------------------------------------------------------------------ helpers
def _probability_rows(name: str, array: np.ndarray) -> np.ndarray:
    """Check that ``array`` holds distributions along its last axis; return them renormalised."""
    if (array < -PROBABILITY_ATOL).any():
        where = tuple(int(i) for i in np.argwhere(array < -PROBABILITY_ATOL)[0])
        raise ValidationError(f"{name}: probabilities must be >= 0, found {array[where]:.3g} at index {where}")
    sums = array.sum(axis=-1)
    off = np.abs(sums - 1.0) > PROBABILITY_ATOL
    if off.any():
        where = tuple(int(i) for i in np.argwhere(np.atleast_1d(off))[0])
        row = f"row {where}" if array.ndim > 1 else "the vector"
        value = np.atleast_1d(sums)[where]
        raise ValidationError(
            f"{name}: {row} sums to {value:.9g}, expected 1 (tolerance {PROBABILITY_ATOL:g})"
        )
    clipped = np.clip(array, 0.0, None)
    sums = clipped.sum(axis=-1, keepdims=True)
    # Renormalise only rows that are visibly off, so that save -> load is bit-exact.
    return np.where(np.abs(sums - 1.0) > 1e-12, clipped / sums, clipped)


def _check_criterion(criterion: Any, gamma: Any) -> tuple[str, float | None]:
    if criterion not in CRITERIA:
        raise ValidationError(f"criterion: expected one of {CRITERIA}, got {criterion!r}")
    if criterion == "average":
        if gamma is not None:
            raise ValidationError(f"gamma: must be None for the average-reward criterion, got {gamma!r}")
        return criterion, None
    if gamma is None:
        raise ValidationError("gamma: the discounted criterion needs a discount factor in (0, 1), got None")
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise ValidationError(f"gamma: expected a number in (0, 1), got {gamma!r}") from None
    if not (0.0 < gamma < 1.0) or math.isnan(gamma):
        raise ValidationError(f"gamma: expected a number in (0, 1) (exclusive), got {gamma!r}")
    if 1.0 - gamma < MIN_ONE_MINUS_GAMMA:
        raise ValidationError(f"gamma: supported up to 1 - {MIN_ONE_MINUS_GAMMA:g} (a horizon of a million steps), got {gamma!r}; "
                              "for longer horizons use the average-reward criterion")
    return criterion, gamma


def _check_names(name: str, labels: Sequence[str] | None, size: int) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValidationError(f"{name}: expected a sequence of {size} strings, got {type(labels).__name__}")
    labels = tuple(str(x) for x in labels)
    if len(labels) != size:
        raise ValidationError(f"{name}: expected {size} labels, got {len(labels)}")
    return labels


def _optional_list(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _mdptoolbox_reward(name: str, reward: Any, P_ass: np.ndarray) -> np.ndarray:
    A, S, _ = P_ass.shape
    r = finite_array(name, reward, ndim=(1, 2, 3))
    if r.shape == (S,):
        return np.repeat(r[:, None], A, axis=1)
    if r.shape == (S, A):
        return r
    if r.shape == (A, S, S):
        return np.einsum("ast,ast->sa", P_ass, r)
    raise ShapeError(f"{name}: expected shape [{S}], [{S}, {A}] or [{A}, {S}, {S}], got {r.shape}")
