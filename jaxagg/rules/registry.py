"""The rule registry: every rule is a named callable with metadata, and its call is the one door
through which a rule's inputs pass.

``get("utilitarian")(momdp)`` runs a rule; ``names()`` lists them (filtered by metadata);
``help(get("borda"))`` shows the rule's metadata and its function's docstring. Rules that need a
sample of the reference measure (the volumetric ones) take it as the second argument.

The door (:meth:`Rule.__call__`) checks, once: the instance is a MOMDP; a rule that needs a
sample got a ReturnSample drawn for this very instance (:meth:`ReturnSample.check_instance`:
same fingerprint); the options are ones the rule takes. Rule functions trust their inputs. The
door then stamps the Outcome with the registry name, the options (``params``) and the wall time.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.rules.outcome import Outcome
from jaxagg.samples import ReturnSample


@dataclass(frozen=True)
class Rule:
    """A registered rule.

    Attributes:
        name: registry name (``"leximin-normalized"``).
        family: ``"welfare"`` or a volumetric family (``"quantile"``, ``"approval"``, ...).
        description: one line for tables and ``jaxagg rules``.
        needs_sample: whether the rule needs a ReturnSample of the reference measure.
        exact: whether the rule's answer is proven optimal for its stated objective (False for
            approximations with a bound, like epsilon-Borda, and for heuristics).
        invariant: whether the outcome is invariant to a positive affine change of one agent's
            reward (SPEC §2: the volumetric rules and the rules on normalised returns).
        function: ``function(momdp, [sample,] **options) -> Outcome``.
        defaults: options fixed by this registry entry (``normalized=True``).
    """

    name: str
    family: str
    description: str
    needs_sample: bool
    exact: bool
    invariant: bool
    function: Callable[..., Outcome] = field(repr=False)
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "__doc__", _rule_doc(self))

    def __call__(self, momdp: MOMDP, sample: Any = None, **options: Any) -> Outcome:
        """Run the rule on ``momdp`` (and ``sample``, for rules that need one) with ``options``
        on top of the registry entry's defaults."""
        check_inputs(self, momdp, sample)
        fixed = sorted(set(options) & set(self.defaults))
        if fixed:
            variants = "; ".join(f"{r.name} {r.defaults or '(no fixed options)'}" for r in _RULES.values()
                                 if r.function == self.function)
            raise ValidationError(f"options: rule {self.name!r} fixes {', '.join(f'{k}={self.defaults[k]!r}' for k in fixed)}, "
                                  f"so the outcome's name says what ran; pick the variant you want: {variants}")
        arguments = {**self.defaults, **options}
        self._check_options(arguments)
        start = time.perf_counter()
        outcome = self.function(momdp, sample, **arguments) if self.needs_sample else self.function(momdp, **arguments)
        stats = replace(outcome.stats, wall_time=time.perf_counter() - start)
        return replace(outcome, rule=self.name, params=describe_options(arguments), stats=stats)

    def _check_options(self, arguments: dict[str, Any]) -> None:
        parameters = inspect.signature(self.function).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return
        accepted = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = sorted(set(arguments) - set(accepted))
        if unknown:
            raise ValidationError(f"options: rule {self.name!r} takes {', '.join(accepted) or 'no options'}; "
                                  f"got {', '.join(map(repr, unknown))}")


def check_inputs(rule: Rule, momdp: Any, sample: Any) -> None:
    """The door's checks (see the module docstring); also used by :func:`jaxagg.compare` to
    refuse a foreign sample before any rule runs."""
    if not isinstance(momdp, MOMDP):
        raise ValidationError(f"momdp: expected a jaxagg.MOMDP, got {type(momdp).__name__}")
    if not rule.needs_sample:
        return
    if sample is None:
        raise ValidationError(f"sample: rule {rule.name!r} needs a sample of the reference measure (ja.sample)")
    if not isinstance(sample, ReturnSample):
        raise ValidationError(f"sample: expected a jaxagg.ReturnSample (ja.sample), got {type(sample).__name__}")
    sample.check_instance(momdp)


def describe_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON-serialisable values: numbers, strings, lists and dicts as they are; an
    Outcome or an array by a short description."""
    return {key: _describe(value) for key, value in options.items()}


def _describe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Outcome):
        return f"<Outcome of {value.rule}>"
    if isinstance(value, np.ndarray):
        return f"<array {list(value.shape)}>"
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    return f"<{type(value).__name__}>"


_RULES: dict[str, Rule] = {}


def register(name: str, function: Callable[..., Outcome], *, family: str, description: str, needs_sample: bool = False,
             exact: bool = True, invariant: bool = False, **defaults: Any) -> Rule:
    """Add a rule under ``name`` (names are unique); ``defaults`` are options fixed for it."""
    if name in _RULES:
        raise ValidationError(f"name: a rule called {name!r} is already registered")
    rule = Rule(name, family, description, needs_sample, exact, invariant, function, defaults)
    rule._check_options(defaults)
    _RULES[name] = rule
    return rule


def get(name: str) -> Rule:
    """The rule registered as ``name``."""
    try:
        return _RULES[name]
    except (KeyError, TypeError):
        raise ValidationError(f"rule: unknown rule {name!r}; known rules: {', '.join(names())}") from None


def names(family: str | None = None, *, needs_sample: bool | None = None, exact: bool | None = None,
          invariant: bool | None = None) -> list[str]:
    """Registered rule names in registration order, optionally only those of one ``family``
    and with the given metadata (``names(needs_sample=False)``: the rules that run without a
    sample; ``names(invariant=True)``: those invariant to affine reward changes)."""
    wanted = {"family": family, "needs_sample": needs_sample, "exact": exact, "invariant": invariant}
    return [r.name for r in _RULES.values()
            if all(value is None or getattr(r, key) == value for key, value in wanted.items())]


def _rule_doc(rule: Rule) -> str:
    facts = [f"family {rule.family}", "needs a sample" if rule.needs_sample else "needs no sample",
             "exact" if rule.exact else "approximate or heuristic",
             "invariant to positive affine reward changes" if rule.invariant else "depends on the reward scale"]
    defaults = f"\nFixed options: {rule.defaults}." if rule.defaults else ""
    function = rule.function.func if isinstance(rule.function, functools.partial) else rule.function
    body = inspect.getdoc(function) or ""
    return f"{rule.name}: {rule.description}.\n({'; '.join(facts)}.){defaults}\n\n{body}"
