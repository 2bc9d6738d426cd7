"""Gymnasium and MO-Gymnasium environments as exact tabular MOMDPs.

:func:`from_gymnasium` walks the states an environment can reach from its ``reset``: it restores a
state, steps every action, and records every successor with its probability and reward. Random
draws are *enumerated*, not sampled: while jaxagg steps the environment, ``env.np_random`` is a
stand-in that answers each ``random()`` with a symbolic uniform draw (every comparison
``u < p`` splits the run into its two outcomes, with probabilities ``p`` and ``1 - p``), each
``integers(...)`` and ``choice(...)`` with every value in turn. A run is replayed once per
outcome, so the branches and their probabilities are exact. Randomness that cannot be enumerated
this way (continuous draws used as numbers, Python's global ``random``, NumPy's legacy global
generator) is refused with a :class:`~jaxagg.errors.ValidationError`.

Conventions:

* A transition the environment reports as ``terminated`` (or ``truncated`` by the environment
  itself) leads to one zero-reward absorbing state, labelled ``"terminal"``. The reward collected
  on that transition counts.
* Criterion: discounted with ``gamma`` (default :data:`DEFAULT_GAMMA`). jaxagg's discounted return
  is ``(1 - gamma)`` times the environment's episodic return ``E[sum_t gamma^t r_t]``.
* Time limits (a ``TimeLimit`` wrapper, ``env.spec.max_episode_steps``): ``time_limit="drop"`` ignores
  them (the infinite-horizon discounted MDP); ``"augment"`` adds the step count to the state, so that
  the episode is cut after ``max_episode_steps`` steps as in the environment (``S`` grows about
  ``T``-fold).
* One agent per reward component (MO-Gymnasium's vector reward); a scalar reward is one agent.
* float32 rewards are read as the shortest decimal that round-trips in float32
  (``np.float32(0.7)`` is read as 0.7, what the author wrote), so that returns match published
  float64 values.

Which attributes make up an environment's state is known for deep-sea-treasure, fruit-tree and
resource-gathering (:data:`STATE_ATTRIBUTES`); toy-text environments with a transition table
``env.unwrapped.P`` are read from it (:func:`from_gymnasium_p`). For another environment pass
``state=("attr", ...)`` (the attributes that determine its future) or a :class:`StateAccess`.

Gymnasium is an optional dependency (``pip install "jaxagg[gym]"``); this module imports it only
when asked to make an environment from an id.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxagg.errors import ShapeError, ValidationError
from jaxagg.kernels.transitions import sparse_transitions
from jaxagg.momdp import MOMDP
from jaxagg.validation import choice, integer_at_least, optional_module, probability

DEFAULT_GAMMA = 0.99
"""Discount factor when none is given (the usual choice for MO-Gymnasium's grid worlds)."""
DEFAULT_MAX_STATES = 100_000
"""Largest number of reachable states enumerated before :func:`from_gymnasium` gives up."""
MAX_BRANCHES = 4096
"""Largest number of random outcomes one ``reset`` or ``step`` may have."""
DENSE_STATES = 2000
"""Instances up to this many states get dense transitions, larger ones sparse."""
TERMINAL = "terminal"
"""Label of the absorbing state that terminal transitions lead to."""
TIME_LIMITS = ("drop", "augment")
BENIGN_WRAPPERS = ("TimeLimit", "OrderEnforcing", "PassiveEnvChecker", "EnvChecker")
"""Wrappers that do not change the dynamics (``TimeLimit`` is read for ``time_limit="augment"``)."""

STATE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "DeepSeaTreasure": ("current_state",),
    "FruitTreeEnv": ("current_state", "terminal"),
    "ResourceGathering": ("current_pos", "has_gold", "has_gem"),
    "FourRoom": ("state",),  # its reset draws from Python's global random: refused
}
"""Attributes of the unwrapped environment that make up its state, by class name."""

REWARD_NAMES: dict[str, tuple[str, ...]] = {
    "DeepSeaTreasure": ("treasure", "time"),
    "FruitTreeEnv": ("protein", "carbs", "fats", "vitamins", "minerals", "water"),
    "ResourceGathering": ("enemy", "gold", "diamond"),
}
"""Reward components' names from the environments' documentation, by class name."""


@dataclass(frozen=True)
class StateAccess:
    """How to read and restore an environment's state.

    Attributes:
        get: ``get(env) -> key``: a hashable key that determines the environment's future.
        set: ``set(env, key)``: put the environment back in the state ``key``.
        label: ``label(key) -> str`` for ``state_names`` (default ``str``).
    """

    get: Callable[[Any], Hashable]
    set: Callable[[Any, Hashable], None]
    label: Callable[[Hashable], str] = str


def attribute_access(names: Sequence[str]) -> StateAccess:
    """A :class:`StateAccess` that reads and writes the attributes ``names`` of the environment
    (arrays are stored as tuples and restored as arrays of their dtype)."""
    names = tuple(names)

    def get(env: Any) -> Hashable:
        return tuple(_frozen(getattr(env, name)) for name in names)

    def set_(env: Any, key: Hashable) -> None:
        for name, value in zip(names, key):
            setattr(env, name, _thawed(value))

    def label(key: Hashable) -> str:
        return " ".join(f"{name}={_plain(value)}" for name, value in zip(names, key))

    return StateAccess(get, set_, label)


# ----------------------------------------------------------------------------- public converters
def from_gymnasium(
    env: Any,
    *,
    gamma: float | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    time_limit: str = "drop",
    max_episode_steps: int | None = None,
    state: Sequence[str] | StateAccess | None = None,
    agent_names: Sequence[str] | None = None,
) -> MOMDP:
    """An exact discounted MOMDP from a discrete Gymnasium or MO-Gymnasium environment.

    Args:
        env: an environment (``gymnasium.make(...)`` or ``mo_gymnasium.make(...)``) or a
            registered id (``"deep-sea-treasure-v0"``, ``"FrozenLake-v1"``), made here.
        gamma: discount factor in (0, 1) (default :data:`DEFAULT_GAMMA`).
        max_states: give up (``ValidationError``) when more states than this are reachable.
        time_limit: ``"drop"`` (ignore the episode step limit) or ``"augment"`` (the step count
            is part of the state; the episode ends after ``max_episode_steps`` steps).
        max_episode_steps: the limit for ``"augment"`` (default: the environment's spec).
        state: the attributes that make up the state, or a :class:`StateAccess` (default: the
            table ``env.unwrapped.P`` if there is one, else :data:`STATE_ATTRIBUTES`).
        agent_names: one name per reward component (default: :data:`REWARD_NAMES`, a
            ``reward_names`` attribute of the environment, or ``objective 0``, ...).

    Returns:
        A discounted :class:`~jaxagg.MOMDP` with ``S`` reachable states (plus ``"terminal"`` if an
        episode can end), ``A = env.action_space.n``, ``n`` = reward components; ``mu`` is the
        distribution of ``reset()``; ``info`` records the id, gamma and time-limit handling.

    Raises:
        ValidationError: not a discrete-action environment, unknown id, wrappers that change the
            dynamics, randomness that cannot be enumerated, more than ``max_states`` states, or
            a state that cannot be read.
    """
    env = _make(env)
    gamma = DEFAULT_GAMMA if gamma is None else probability("gamma", gamma)
    max_states = integer_at_least("max_states", max_states, 1)
    choice("time_limit", time_limit, TIME_LIMITS)
    _check_wrappers(env)
    base = env.unwrapped
    A = _num_actions(env)
    horizon = _horizon(env, time_limit, max_episode_steps)
    table = getattr(base, "P", None) if state is None else None
    env_id = getattr(getattr(env, "spec", None), "id", None) or type(base).__name__
    if isinstance(table, Mapping):
        mu = getattr(base, "initial_state_distrib", None)
        initial = ({s: float(p) for s, p in enumerate(np.asarray(mu, dtype=np.float64)) if p > 0}
                   if mu is not None else _enumerate_reset(base, StateAccess(lambda e: int(e.s), _set_s)))
        expand = _table_expansion(table, A)
        labels: Callable[[Hashable], str] = str
    else:
        access = _state_access(base, state)
        initial = _enumerate_reset(base, access)
        expand = _simulator_expansion(base, access, A)
        labels = access.label
    names = _agent_names(base, agent_names)
    info = {"env": env_id, "source": "gymnasium", "gamma": gamma, "time_limit": time_limit, "max_episode_steps": horizon}
    return _build(initial, expand, A, gamma=gamma, horizon=horizon, max_states=max_states, labels=labels,
                  agent_names=names, info=info)


def from_gymnasium_p(
    P: Mapping,
    *,
    mu: Any = None,
    gamma: float | None = None,
    agent_names: Sequence[str] | None = None,
    state_names: Sequence[str] | None = None,
    max_episode_steps: int | None = None,
    max_states: int = DEFAULT_MAX_STATES,
) -> MOMDP:
    """A discounted MOMDP from a toy-text transition table ``P[s][a] = [(p, s', r, done), ...]``
    (``env.unwrapped.P`` of FrozenLake, CliffWalking, Taxi).

    States are ``0 .. len(P) - 1`` in order (all of them, reachable or not), plus an absorbing
    ``"terminal"`` state that every ``done`` transition leads to (its reward counts). ``r`` is a
    number (one agent) or a vector (one agent per component).

    Args:
        P: the table; every state lists the same actions ``0 .. A-1``.
        mu: initial distribution ``[len(P)]`` (default uniform; toy-text environments keep theirs
            in ``env.unwrapped.initial_state_distrib``).
        gamma: discount factor in (0, 1) (default :data:`DEFAULT_GAMMA`).
        agent_names, state_names: optional labels (``state_names`` for the table's states).
        max_episode_steps: if given, the step count is part of the state and episodes end after
            that many steps (only states reachable from ``mu`` are kept then).
        max_states: size guard for the time-augmented states.
    """
    if not isinstance(P, Mapping) or not P:
        raise ValidationError(f"P: expected a non-empty dict P[s][a] = [(p, s', r, done), ...], got {type(P).__name__}")
    S = len(P)
    if sorted(P) != list(range(S)):
        raise ValidationError(f"P: expected states 0 .. {S - 1} as keys, got {sorted(P)[:5]}...")
    A = len(P[0])
    gamma = DEFAULT_GAMMA if gamma is None else probability("gamma", gamma)
    if mu is None:
        mu = np.full(S, 1.0 / S)
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape != (S,):
        raise ShapeError(f"mu: expected shape [{S}] like P, got {mu.shape}")
    if state_names is not None and len(state_names) != S:
        raise ValidationError(f"state_names: expected {S} labels, got {len(state_names)}")
    expand = _table_expansion(P, A)
    if max_episode_steps is None:
        initial = {s: float(mu[s]) for s in range(S)}  # every state, in table order
    else:
        initial = {s: float(mu[s]) for s in range(S) if mu[s] > 0}
    horizon = None if max_episode_steps is None else integer_at_least("max_episode_steps", max_episode_steps, 1)
    labels = str if state_names is None else (lambda s: str(state_names[s]))
    info = {"env": "gymnasium-P", "source": "gymnasium", "gamma": gamma, "max_episode_steps": horizon}
    return _build(initial, expand, A, gamma=gamma, horizon=horizon, max_states=integer_at_least("max_states", max_states, 1),
                  labels=labels, agent_names=agent_names, info=info, keep_zero_initial=True)


def published_front(env: Any, gamma: float | None = None) -> np.ndarray:
    """An MO-Gymnasium environment's own reference front ``env.unwrapped.pareto_front(gamma)`` as
    ``[m, n]`` episodic discounted returns (``E[sum_t gamma^t r_t]``).

    Raises:
        ValidationError: the environment has no ``pareto_front`` method, or it returns no points.
    """
    env = _make(env)
    gamma = DEFAULT_GAMMA if gamma is None else probability("gamma", gamma)
    method = getattr(env.unwrapped, "pareto_front", None)
    if not callable(method):
        raise ValidationError(f"env: {type(env.unwrapped).__name__} publishes no pareto_front(gamma)")
    points = [np.asarray(p, dtype=np.float64).reshape(-1) for p in method(gamma)]
    if not points:
        raise ValidationError(f"env: {type(env.unwrapped).__name__}.pareto_front({gamma}) returned no points")
    return np.stack(points)


# ----------------------------------------------------------------------------- building the MOMDP
Branches = list[tuple[float, Hashable, np.ndarray]]
"""Outcomes of one step: ``(probability, next key or TERMINAL_KEY, reward [n])``."""

_TERMINAL_KEY = ("<terminal>",)


def _build(initial: Mapping[Hashable, float], expand: Callable[[Hashable], list[Branches]], A: int, *, gamma: float,
           horizon: int | None, max_states: int, labels: Callable[[Hashable], str], agent_names: Sequence[str] | None,
           info: dict, keep_zero_initial: bool = False) -> MOMDP:
    """Breadth-first walk from ``initial`` (key -> probability) through ``expand(key)`` (one
    :data:`Branches` list per action), over ``(t, key)`` when ``horizon`` is set. Returns the
    MOMDP with states in discovery order and the absorbing state last."""
    cache: dict[Hashable, list[Branches]] = {}

    def node(key: Hashable, t: int) -> Hashable:
        return key if horizon is None else (t, key)

    index: dict[Hashable, int] = {}
    order: list[tuple[Hashable, int]] = []
    queue: deque[tuple[Hashable, int]] = deque()

    def visit(key: Hashable, t: int) -> int:
        if key == _TERMINAL_KEY or (horizon is not None and t >= horizon):
            return -1
        n_ = node(key, t)
        if n_ not in index:
            if len(index) >= max_states:
                raise ValidationError(f"max_states: the environment reaches more than {max_states} states "
                                      f"({info.get('env')}); raise max_states or use a smaller environment")
            index[n_] = len(order)
            order.append((key, t))
            queue.append((key, t))
        return index[n_]

    mu_entries = [(visit(key, 0), p) for key, p in initial.items() if p > 0 or keep_zero_initial]
    rows: list[list[dict[int, float]]] = []
    rewards: list[np.ndarray] = []
    n_rewards = None
    while queue:
        key, t = queue.popleft()
        if key not in cache:
            cache[key] = expand(key)
        per_action = cache[key]
        row, reward = [], []
        for branches in per_action:
            successors: dict[int, float] = {}
            expected = 0.0
            for p, nxt, r in branches:
                target = visit(nxt, t + 1)
                successors[target] = successors.get(target, 0.0) + p
                expected = expected + p * r
            row.append(successors)
            reward.append(np.asarray(expected, dtype=np.float64).reshape(-1))
            n_rewards = reward[-1].size if n_rewards is None else n_rewards
            if reward[-1].size != n_rewards:
                raise ShapeError(f"env: rewards of {n_rewards} and {reward[-1].size} components from one environment")
        rows.append(row)
        rewards.append(np.stack(reward))
    terminal = any(-1 in successors for row in rows for successors in row)
    S = len(order) + int(terminal)
    absorbing = S - 1
    n = int(n_rewards)
    R = np.zeros((n, S, A))
    R[:, : len(order)] = np.stack(rewards).transpose(2, 0, 1)
    width = max(len(successors) for row in rows for successors in row)
    successors_ = np.zeros((S, A, width), dtype=np.int64)
    probabilities = np.zeros((S, A, width))
    for s, row in enumerate(rows):
        for a, succ in enumerate(row):
            for k, (target, p) in enumerate(succ.items()):
                successors_[s, a, k] = absorbing if target == -1 else target
                probabilities[s, a, k] = p
    if terminal:
        successors_[absorbing, :, 0] = absorbing
        probabilities[absorbing, :, 0] = 1.0
    mu = np.zeros(S)
    for s, p in mu_entries:
        mu[s] += p
    state_names = [labels(key) if horizon is None else f"t={t} {labels(key)}" for key, t in order] + ([TERMINAL] if terminal else [])
    if S <= DENSE_STATES:
        P = np.zeros((S, A, S))
        np.add.at(P, (np.arange(S)[:, None, None], np.arange(A)[None, :, None], successors_), probabilities)
    else:
        P = sparse_transitions(successors_, probabilities)
    names = None if agent_names is None else tuple(agent_names)
    if names is not None and len(names) != n:
        raise ValidationError(f"agent_names: expected {n} names (one per reward component), got {len(names)}")
    info = {**info, "states_reached": len(order), "absorbing": terminal}
    return MOMDP(P, R, mu / mu.sum(), criterion="discounted", gamma=gamma, agent_names=names, state_names=state_names,
                 action_names=None, info=info)


def _table_expansion(P: Mapping, A: int) -> Callable[[Hashable], list[Branches]]:
    """``expand(s)`` for a toy-text table ``P[s][a] = [(p, s', r, done)]``."""
    def expand(s: Hashable) -> list[Branches]:
        actions = P.get(s)
        if not isinstance(actions, Mapping) or sorted(actions) != list(range(A)):
            raise ValidationError(f"P[{s}]: expected actions 0 .. {A - 1}, got {None if actions is None else sorted(actions)}")
        out = []
        for a in range(A):
            branches = []
            for entry in actions[a]:
                if len(entry) != 4:
                    raise ValidationError(f"P[{s}][{a}]: expected (p, s', r, done) entries, got {entry!r}")
                p, nxt, r, done = entry
                nxt = int(nxt)
                if nxt not in P:
                    raise ValidationError(f"P[{s}][{a}]: successor {nxt} is not a state of P")
                branches.append((float(p), _TERMINAL_KEY if done else nxt, _reward_vector(r)))
            out.append(branches)
        return out
    return expand


# ----------------------------------------------------------------------------- the simulator walk
def _simulator_expansion(env: Any, access: StateAccess, A: int) -> Callable[[Hashable], list[Branches]]:
    """``expand(key)``: restore ``key``, step each action under the enumerating random source."""
    def expand(key: Hashable) -> list[Branches]:
        out = []
        for a in range(A):
            def run(a=a) -> tuple[Hashable, np.ndarray]:
                access.set(env, key)
                _, reward, terminated, truncated, _ = env.step(a)
                return (_TERMINAL_KEY if terminated or truncated else access.get(env)), _reward_vector(reward)
            out.append([(p, nxt, r) for p, (nxt, r) in _enumerate(env, run, f"step({a}) from state {access.label(key)}")])
        return out
    return expand


def _enumerate_reset(env: Any, access: StateAccess) -> dict[Hashable, float]:
    """The distribution of the state after ``env.reset()`` (key -> probability)."""
    def run() -> Hashable:
        env.reset()
        return access.get(env)
    initial: dict[Hashable, float] = {}
    for p, key in _enumerate(env, run, "reset()"):
        initial[key] = initial.get(key, 0.0) + p
    return initial


def _enumerate(env: Any, run: Callable[[], Any], what: str) -> list[tuple[float, Any]]:
    """Every outcome of ``run()`` with its probability: ``run`` is replayed under a
    :class:`_Branching` random source once per combination of random outcomes."""
    saved = env.__dict__.get("_np_random")
    results = []
    pending: list[tuple[int, ...]] = [()]
    try:
        while pending:
            script = pending.pop()
            source = _Branching(script)
            env._np_random = source
            python_state, numpy_state = random.getstate(), np.random.get_state()
            try:
                value = run()
            except _NotEnumerable as exc:
                raise ValidationError(f"env: {what} uses {exc}, which jaxagg cannot enumerate exactly") from None
            except ValidationError:
                raise
            except Exception as exc:
                raise ValidationError(f"env: {what} failed under jaxagg's enumerating random source "
                                      f"({type(exc).__name__}: {exc})") from exc
            if random.getstate() != python_state:
                raise ValidationError(f"env: {what} draws from Python's global random module, "
                                      "whose outcomes jaxagg cannot enumerate; use self.np_random in the environment")
            if not _same_numpy_state(np.random.get_state(), numpy_state):
                raise ValidationError(f"env: {what} draws from NumPy's global generator (np.random.*), "
                                      "whose outcomes jaxagg cannot enumerate; use self.np_random in the environment")
            for j in range(len(script), len(source.options)):
                pending.extend(source.taken[:j] + (alt,) for alt, p in enumerate(source.options[j]) if alt > 0 and p > 0)
            if source.probability > 0:
                results.append((source.probability, value))
            if len(results) + len(pending) > MAX_BRANCHES:
                raise ValidationError(f"env: {what} has more than {MAX_BRANCHES} random outcomes")
    finally:
        env._np_random = saved
    return results


class _NotEnumerable(Exception):
    """A use of the random source whose outcomes cannot be listed."""


class _Branching:
    """Stands in for ``env.np_random`` during one replay: follows ``script`` (option indices) at
    the first decisions, takes option 0 at later ones, and records every decision's options'
    conditional probabilities, so that the caller can schedule the other outcomes."""

    def __init__(self, script: tuple[int, ...]):
        self.script = script
        self.taken: tuple[int, ...] = ()
        self.options: list[list[float]] = []
        self.probability = 1.0

    def decide(self, probabilities: Sequence[float]) -> int:
        k = len(self.taken)
        pick = self.script[k] if k < len(self.script) else 0
        self.taken += (pick,)
        self.options.append(list(probabilities))
        self.probability *= probabilities[pick]
        return pick

    def random(self, size: Any = None, dtype: Any = None, out: Any = None) -> _Uniform:
        if size is not None or out is not None:
            raise _NotEnumerable("np_random.random(size=...)")
        return _Uniform(self)

    def integers(self, low: int, high: int | None = None, size: Any = None, dtype: Any = np.int64, endpoint: bool = False) -> Any:
        if size is not None:
            raise _NotEnumerable("np_random.integers(size=...)")
        low, high = (0, low) if high is None else (low, high)
        values = list(range(int(low), int(high) + (1 if endpoint else 0)))
        return np.dtype(dtype).type(values[self.decide([1.0 / len(values)] * len(values))])

    def choice(self, a: Any, size: Any = None, replace: bool = True, p: Any = None) -> Any:
        if size is not None:
            raise _NotEnumerable("np_random.choice(size=...)")
        values = list(range(int(a))) if np.isscalar(a) else list(a)
        weights = np.full(len(values), 1.0 / len(values)) if p is None else np.asarray(p, dtype=np.float64)
        return values[self.decide([float(w) for w in weights])]

    def __getattr__(self, name: str) -> Any:
        raise _NotEnumerable(f"np_random.{name}")


class _Uniform:
    """A symbolic draw from U[0, 1): comparisons with numbers branch; any other use is refused."""

    def __init__(self, source: _Branching):
        self.source, self.lo, self.hi = source, 0.0, 1.0

    def _below(self, threshold: Any) -> bool:
        """Whether ``u < threshold`` (``u <= threshold`` has the same probabilities)."""
        t = float(threshold)
        if t <= self.lo:
            return False
        if t >= self.hi:
            return True
        width = self.hi - self.lo
        if self.source.decide([(t - self.lo) / width, (self.hi - t) / width]) == 0:
            self.hi = t
            return True
        self.lo = t
        return False

    def __lt__(self, other: Any) -> bool:
        return self._below(other)

    __le__ = __lt__

    def __gt__(self, other: Any) -> bool:
        return not self._below(other)

    __ge__ = __gt__

    def __float__(self) -> float:
        raise _NotEnumerable("a uniform draw as a number (not only compared with thresholds)")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise _NotEnumerable("a uniform draw as an array")


def _same_numpy_state(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[2:] == b[2:] and np.array_equal(a[1], b[1])


# ----------------------------------------------------------------------------- helpers
def _make(env: Any) -> Any:
    """``env`` itself, or the environment registered under the id ``env``."""
    if not isinstance(env, str):
        if not hasattr(env, "step") or not hasattr(env, "unwrapped"):
            raise ValidationError(f"env: expected a Gymnasium environment or a registered id, got {type(env).__name__}")
        return env
    gymnasium = optional_module("gymnasium", "env", "pip install 'jaxagg[gym]'")
    with contextlib.suppress(ImportError):
        import mo_gymnasium  # noqa: F401  (registers the multi-objective ids)
    try:
        return gymnasium.make(env)
    except gymnasium.error.Error as exc:
        raise ValidationError(f"env: {env!r} is not a registered Gymnasium id ({exc})") from None


def _check_wrappers(env: Any) -> None:
    layer = env
    while hasattr(layer, "env") and layer is not getattr(layer, "unwrapped", layer):
        name = type(layer).__name__
        if name not in BENIGN_WRAPPERS:
            raise ValidationError(f"env: the wrapper {name} may change the dynamics or rewards; jaxagg converts the "
                                  f"unwrapped environment only (pass env.unwrapped if that is what you mean)")
        layer = layer.env


def _num_actions(env: Any) -> int:
    space = getattr(env, "action_space", None)
    n = getattr(space, "n", None)
    if n is None or type(space).__name__ != "Discrete":
        raise ValidationError(f"env: expected a Discrete action space, got {space!r}")
    if int(getattr(space, "start", 0)) != 0:
        raise ValidationError(f"env: expected actions 0 .. n-1, got a Discrete space starting at {space.start}")
    return int(n)


def _horizon(env: Any, time_limit: str, max_episode_steps: int | None) -> int | None:
    if time_limit == "drop":
        if max_episode_steps is not None:
            raise ValidationError("max_episode_steps: only used with time_limit='augment'")
        return None
    if max_episode_steps is None:
        max_episode_steps = getattr(getattr(env, "spec", None), "max_episode_steps", None)
        if max_episode_steps is None:
            raise ValidationError("time_limit: 'augment' needs max_episode_steps (the environment's spec has none)")
    return integer_at_least("max_episode_steps", max_episode_steps, 1)


def _state_access(env: Any, state: Sequence[str] | StateAccess | None) -> StateAccess:
    if isinstance(state, StateAccess):
        return state
    if state is None:
        names = STATE_ATTRIBUTES.get(type(env).__name__)
        if names is None:
            raise ValidationError(f"state: jaxagg does not know which attributes make up the state of {type(env).__name__}; "
                                  "pass state=('attribute', ...) or a jaxagg.envs.StateAccess")
        return attribute_access(names)
    if isinstance(state, str) or not all(isinstance(name, str) for name in state):
        raise ValidationError(f"state: expected a sequence of attribute names or a StateAccess, got {state!r}")
    return attribute_access(state)  # a missing attribute fails at the first reset, naming it


def _agent_names(env: Any, given: Sequence[str] | None) -> tuple[str, ...] | None:
    if given is not None:
        return tuple(str(name) for name in given)
    names = getattr(env, "reward_names", None) or REWARD_NAMES.get(type(env).__name__)
    if names is not None:
        return tuple(str(name) for name in names)
    shape = getattr(getattr(env, "reward_space", None), "shape", None)
    if shape:
        return tuple(f"objective {i}" for i in range(int(np.prod(shape))))
    return ("reward",)


def _reward_vector(r: Any) -> np.ndarray:
    """A reward (number or vector) as float64 ``[n]``; float32 values read as their shortest decimal."""
    array = np.asarray(r)
    if array.dtype.kind not in "biuf":
        raise ValidationError(f"env: expected numeric rewards, got {r!r}")
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return np.array([float(str(x)) for x in array.reshape(-1)], dtype=np.float64)
    return array.astype(np.float64).reshape(-1)


def _set_s(env: Any, s: Hashable) -> None:
    env.s = s


def _frozen(value: Any) -> Hashable:
    if isinstance(value, np.ndarray):
        return ("<array>", str(value.dtype), value.shape, tuple(value.reshape(-1).tolist()))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, tuple) and value[:1] == ("<array>",):
        return np.array(value[3], dtype=value[1]).reshape(value[2])
    return value


def _plain(value: Any) -> str:
    if isinstance(value, tuple) and value[:1] == ("<array>",):
        return str(tuple(value[3]))
    return str(value)


__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_MAX_STATES",
    "STATE_ATTRIBUTES",
    "StateAccess",
    "attribute_access",
    "from_gymnasium",
    "from_gymnasium_p",
    "published_front",
]
