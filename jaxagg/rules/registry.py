"""The rule registry: every rule is a named callable with metadata.

``get("utilitarian")(momdp)`` runs a rule; ``names()`` lists them. Rules that need a sample of the
reference measure (the volumetric ones) take it as ``sample=``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from jaxagg.errors import ValidationError
from jaxagg.momdp import MOMDP
from jaxagg.rules.outcome import Outcome


@dataclass(frozen=True)
class Rule:
    """A registered rule.

    Attributes:
        name: registry name (``"leximin-normalized"``).
        family: ``"welfare"`` or a volumetric family (``"quantile"``, ``"approval"``, ...).
        description: one line for tables and ``jaxagg rules``.
        needs_sample: whether the rule needs a ReturnSample of the reference measure.
        function: ``function(momdp, [sample,] **options) -> Outcome``.
        defaults: options fixed by this registry entry (``normalized=True``).
    """

    name: str
    family: str
    description: str
    needs_sample: bool
    function: Callable[..., Outcome]
    defaults: dict[str, Any]

    def __call__(self, momdp: MOMDP, sample: Any = None, **options: Any) -> Outcome:
        if not isinstance(momdp, MOMDP):
            raise ValidationError(f"momdp: expected a jaxagg.MOMDP, got {type(momdp).__name__}")
        start = time.perf_counter()
        arguments = {**self.defaults, **options}
        if self.needs_sample:
            if sample is None:
                raise ValidationError(f"sample: rule {self.name!r} needs a sample of the reference measure (ja.sample)")
            outcome = self.function(momdp, sample, **arguments)
        else:
            outcome = self.function(momdp, **arguments)
        outcome.stats.wall_time = time.perf_counter() - start
        return outcome


_RULES: dict[str, Rule] = {}


def register(name: str, function: Callable[..., Outcome], *, family: str, description: str, needs_sample: bool = False, **defaults: Any) -> Rule:
    """Add a rule under ``name`` (names are unique)."""
    if name in _RULES:
        raise ValidationError(f"name: a rule called {name!r} is already registered")
    rule = Rule(name, family, description, needs_sample, function, defaults)
    _RULES[name] = rule
    return rule


def get(name: str) -> Rule:
    """The rule registered as ``name``."""
    try:
        return _RULES[name]
    except KeyError:
        raise ValidationError(f"rule: unknown rule {name!r}; known rules: {', '.join(names())}") from None


def names(family: str | None = None) -> list[str]:
    """Registered rule names in registration order (optionally of one family)."""
    return [r.name for r in _RULES.values() if family is None or r.family == family]
