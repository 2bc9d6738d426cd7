"""Sweep specs: a grid over instances, reference-measure samples, rules and methods, validated
up front and expanded into cells.

A spec is a TOML file (read with :mod:`tomllib`) or the same structure as a Python dict::

    name = "garnet-agents"                  # optional, shown in progress and exports

    [[instances]]                           # one or more blocks; each is a cartesian grid
    env = "garnet"                          # attention | garnet | file
    states = 50
    actions = 4
    agents = [2, 4, 8, 16]                  # a list is a grid axis
    seed = {start = 0, count = 200}         # an integer range: {start, count} or {start, stop[, step]}
    criterion = "average"

    [[instances]]
    env = "file"
    path = ["a.npz", "more/"]               # files, or folders of .npz/.json files (relative to the spec)

    [sample]                                # the reference-measure sample of each instance
    measure = "policy"                      # policy | hull | uniform
    num_samples = 20000
    seed = "instance"                       # an integer, or "instance": the instance's own seed
    precision = "auto"                      # auto | float32 | float64
    evaluation = "auto"                     # policy measure: auto | krylov | lu

    rules = ["leximin", "max-quantile", {name = "approval", options = {q = 0.7}}]
    method = ["exact", "tune"]              # exact | tune | refine (see ``jaxagg run --method``)

Every value of ``[[instances]]`` and ``[sample]`` may be a list (a grid axis); the cells are the
product of every instance, every sample setting, every rule and every method (a rule that needs
no sample still gets each sample's certificates). Every bad key or value raises one
:class:`~jaxagg.errors.ValidationError` naming where it is, before anything runs.

Identity: a cell's key is a hash of its instance (the family and *every* parameter, defaults
filled in; a file by the SHA-256 of its bytes), its sample settings, the registry rule and its
options, so the same cell written two ways is the same cell, and a store knows which cells it
has already finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from jaxagg import envs
from jaxagg import rules as rule_registry
from jaxagg.errors import ValidationError
from jaxagg.momdp import FILE_SUFFIXES, MOMDP, load
from jaxagg.report import DEFAULT_RULES, METHODS, VOLUMETRIC_RULES
from jaxagg.samples import MEASURES
from jaxagg.validation import PRECISIONS, integer_at_least, probability
from jaxagg.validation import seed as check_seed

MAX_CELLS = 10**7
"""The largest grid expanded (a typo like ``count = 1e9`` should fail at once, not fill memory)."""

CRITERIA = ("average", "discounted")
DEFAULT_GAMMA = 0.95
"""Discount factor of ``criterion = "discounted"`` when ``gamma`` is not given (as the CLI)."""


# ------------------------------------------------------------------ parameter checkers
def _integer(minimum: int):
    return lambda name, value: integer_at_least(name, value, minimum)


def _one_of(*choices: str):
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValidationError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    return check


def _optional(check):
    return lambda name, value: None if value is None else check(name, value)


def _gamma(name: str, value: Any) -> float | None:
    if value is None:
        return None
    gamma = probability(name, value)
    if not 0.0 < gamma < 1.0:
        raise ValidationError(f"{name}: expected a discount factor in (0, 1), got {value!r}")
    return gamma


def _path(name: str, value: Any) -> str:
    if value is None:
        raise ValidationError(f"{name}: env \"file\" needs a path (a file or a folder of {'/'.join(FILE_SUFFIXES)} files)")
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name}: expected a file or folder path (a string), got {value!r}")
    return value


FAMILIES: dict[str, dict[str, tuple[Any, Any]]] = {
    "attention": {
        "factories": (5, _integer(1)),
        "phases": (3, _integer(2)),
        "agents": ("base", _one_of("base", "subsets")),
        "num_agents": (None, _optional(_integer(1))),
        "seed": (0, check_seed),
        "criterion": ("average", _one_of(*CRITERIA)),
        "gamma": (None, _gamma),
    },
    "garnet": {
        "states": (10, _integer(1)),
        "actions": (3, _integer(1)),
        "branching": (2, _integer(1)),
        "agents": (3, _integer(1)),
        "seed": (0, check_seed),
        "criterion": ("average", _one_of(*CRITERIA)),
        "gamma": (None, _gamma),
    },
    "file": {"path": (None, _path)},
}
"""Per environment family: parameter -> (default, checker). ``None`` default for ``path``
means required."""

SAMPLE_KEYS: dict[str, tuple[Any, Any]] = {
    "measure": ("policy", _one_of(*MEASURES)),
    "num_samples": (20_000, _integer(1)),
    "seed": (0, lambda name, value: value if value == "instance" else check_seed(name, value)),
    "precision": ("auto", _one_of("auto", *PRECISIONS)),
    "evaluation": ("auto", _one_of("auto", "krylov", "lu")),
}
"""``[sample]`` keys -> (default, checker); ``seed = "instance"`` uses the instance's seed."""

TOP_KEYS = ("name", "description", "instances", "sample", "rules", "method")


# ------------------------------------------------------------------ the parts of a cell
def canonical(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces): what keys are hashed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest(value: Any, length: int = 64) -> str:
    """SHA-256 (hex, first ``length`` characters) of :func:`canonical` ``value``."""
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class InstanceSpec:
    """One instance of a sweep: an environment family and all of its parameters.

    Attributes:
        env: ``"attention"``, ``"garnet"`` or ``"file"``.
        params: every parameter (defaults filled in; for a file: ``path`` absolute and
            ``sha256`` of its bytes), JSON values.
    """

    env: str
    params: Mapping[str, Any]

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What the instance is: family and parameters (a file: its bytes' hash, not its path)."""
        if self.env == "file":
            return {"env": "file", "sha256": self.params["sha256"]}
        return {"env": self.env, **self.params}

    @cached_property
    def key(self) -> str:
        return digest(self.identity)

    @property
    def seed(self) -> int | None:
        """The instance seed (None for a file)."""
        return self.params.get("seed")

    @property
    def shape(self) -> str:
        """Instances with the same shape key differ only by their seed: they have the same sizes,
        criterion and transition form, so they can be sampled together."""
        rest = {k: v for k, v in self.identity.items() if k != "seed"}
        return canonical(rest) if self.env != "file" else canonical(self.identity)

    def sizes(self) -> tuple[int, int, int, int] | None:
        """``(S, A, n, nonzeros of P)`` from the parameters, without building (None for a file)."""
        p = self.params
        if self.env == "attention":
            S, A = p["phases"] ** p["factories"], p["factories"] + 1
            n = p["factories"] if p["agents"] == "base" else (p["num_agents"] or 10)
            return S, A, n, S * A * 2 ** p["factories"]
        if self.env == "garnet":
            return p["states"], p["actions"], p["agents"], p["states"] * p["actions"] * p["branching"]
        return None

    def label(self) -> str:
        """A short readable name: ``garnet(states=50, ..., seed=3)``, or the file name."""
        if self.env == "file":
            return Path(self.params["path"]).name
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.env}({shown})"

    def build(self) -> MOMDP:
        """The MOMDP (the environment's constructor, or the file)."""
        if self.env == "file":
            return load(self.params["path"])
        params = dict(self.params)
        if params.get("criterion") == "discounted" and params.get("gamma") is None:
            params["gamma"] = DEFAULT_GAMMA
        if self.env == "attention":
            return envs.attention_allocation(**params)
        return envs.garnet(**params)


@dataclass(frozen=True)
class SampleSpec:
    """The settings of one reference-measure sample (``seed`` may be ``"instance"``)."""

    measure: str
    num_samples: int
    seed: int | str
    precision: str
    evaluation: str

    def seed_for(self, instance: InstanceSpec) -> int:
        """The sample seed for ``instance`` (its own seed, or 0 for a file, under ``"instance"``)."""
        if self.seed == "instance":
            return instance.seed if instance.seed is not None else 0
        return int(self.seed)

    def identity(self, instance: InstanceSpec) -> dict[str, Any]:
        """What the sample of ``instance`` is (its key is a hash of this)."""
        return {"instance": instance.key, "measure": self.measure, "num_samples": self.num_samples,
                "seed": self.seed_for(instance), "precision": self.precision, "evaluation": self.evaluation}

    def key(self, instance: InstanceSpec) -> str:
        return digest(self.identity(instance))

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`jaxagg.sample` (besides N, measure and seed)."""
        options: dict[str, Any] = {"precision": self.precision}
        if self.measure == "policy":
            options["method"] = self.evaluation
        return options


@dataclass(frozen=True)
class RuleSpec:
    """A rule of the sweep: the registry ``name`` that runs (after the method's replacement),
    its ``options``, the ``method`` that asked for it and the name the spec gave."""

    name: str
    options: Mapping[str, Any]
    method: str
    requested: str

    @property
    def needs_sample(self) -> bool:
        return rule_registry.get(self.name).needs_sample


@dataclass(frozen=True)
class Cell:
    """One unit of work and one row of the store: a rule on an instance (with a sample)."""

    instance: InstanceSpec
    sample: SampleSpec | None
    rule: RuleSpec

    @cached_property
    def key(self) -> str:
        return digest({"instance": self.instance.key,
                       "sample": None if self.sample is None else self.sample.key(self.instance),
                       "rule": self.rule.name, "options": dict(self.rule.options)})

    @property
    def sample_key(self) -> str | None:
        return None if self.sample is None else self.sample.key(self.instance)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: instances x samples x rules (after methods). Build it with
    :func:`load_spec` (a TOML file, a dict, or a SweepSpec)."""

    name: str
    instances: tuple[InstanceSpec, ...]
    samples: tuple[SampleSpec | None, ...]
    rules: tuple[RuleSpec, ...]
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def num_cells(self) -> int:
        return len(self.instances) * len(self.samples) * len(self.rules)

    def cells(self) -> Iterator[Cell]:
        """Every cell, instance by instance (then sample, then rule)."""
        for instance in self.instances:
            for sample in self.samples:
                for rule in self.rules:
                    yield Cell(instance, sample, rule)


def swept_parameter(spec: SweepSpec) -> str | None:
    """The first instance or sample parameter (other than seeds and paths) that takes more than
    one value in ``spec``, or None: what a table is best broken down by."""
    values: dict[str, set[str]] = {}
    for instance in spec.instances:
        for key, value in instance.params.items():
            values.setdefault(key, set()).add(canonical(value))
    for sample in spec.samples:
        for key, value in ({} if sample is None else vars(sample)).items():
            values.setdefault(key, set()).add(canonical(value))
    for key, seen in values.items():
        if key not in ("seed", "path", "sha256") and len(seen) > 1:
            return key
    return None


# ------------------------------------------------------------------ reading and checking
def load_spec(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML file path, a dict of the same structure, or a SweepSpec.

    Relative file paths in a TOML spec are relative to the spec's folder (in a dict, to the
    current folder). Raises :class:`~jaxagg.errors.ValidationError` on the first bad key or value,
    naming it (``instances[1].states: expected an integer >= 1, got 0``)."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return parse_spec(spec, Path.cwd(), default_name="sweep")
    try:
        path = Path(spec)
    except TypeError:
        raise ValidationError(f"spec: expected a .toml file path or a dict, got {type(spec).__name__}") from None
    if path.suffix.lower() != ".toml":
        raise ValidationError(f"spec: expected a .toml file, got {str(path)!r}")
    if not path.is_file():
        raise ValidationError(f"spec: no such file {str(path)!r}")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"spec: {str(path)!r} is not valid TOML ({exc})") from None
    return parse_spec(data, path.parent.absolute(), default_name=path.stem)


def parse_spec(data: Mapping[str, Any], folder: Path, default_name: str = "sweep") -> SweepSpec:
    """Validate the spec structure ``data`` (see the module docstring); file paths are relative
    to ``folder``."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"spec: expected a table (dict), got {type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ValidationError(f"spec: unknown key(s) {', '.join(map(repr, unknown))}; a spec has {', '.join(TOP_KEYS)}")
    name = data.get("name", default_name)
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise ValidationError(f"{key}: expected a string, got {value!r}")
    instances = _instances(data.get("instances"), folder)
    rules = _rules(data.get("rules"), _methods(data.get("method", "exact")), has_sample="sample" in data)
    wants_sample = any(rule.needs_sample for rule in rules)
    samples = _samples(data.get("sample"), wants_sample)
    cells = len(instances) * len(samples) * len(rules)
    if cells > MAX_CELLS:
        raise ValidationError(f"spec: {cells} cells; at most {MAX_CELLS} are supported")
    source = json.loads(json.dumps(data, default=str))
    return SweepSpec(name, instances, samples, rules, description, source)


def _unknown(where: str, keys: list[str], takes: Sequence[str]) -> ValidationError:
    """The error for unknown keys, with a hint when a top-level key landed inside a table (in
    TOML, keys after a ``[table]`` header belong to that table)."""
    hint = ""
    if set(keys) & set(TOP_KEYS):
        hint = ("; in TOML, keys after a [table] header belong to that table: put top-level keys such as "
                f"{', '.join(sorted(set(keys) & set(TOP_KEYS)))} before the first [table]")
    return ValidationError(f"{where}: unknown key(s) {', '.join(map(repr, keys))}; it takes {', '.join(takes)}{hint}")


def _instances(blocks: Any, folder: Path) -> tuple[InstanceSpec, ...]:
    if blocks is None:
        raise ValidationError("instances: expected at least one [[instances]] block (env = \"attention\", \"garnet\" or \"file\")")
    if isinstance(blocks, Mapping):
        blocks = [blocks]
    if not isinstance(blocks, Sequence) or isinstance(blocks, str) or not blocks:
        raise ValidationError(f"instances: expected a list of tables, got {blocks!r}")
    found: dict[str, InstanceSpec] = {}
    for k, block in enumerate(blocks):
        where = f"instances[{k}]"
        if not isinstance(block, Mapping):
            raise ValidationError(f"{where}: expected a table, got {block!r}")
        env = block.get("env")
        if env not in FAMILIES:
            raise ValidationError(f"{where}.env: expected one of {', '.join(map(repr, FAMILIES))}, got {env!r}")
        schema = FAMILIES[env]
        unknown = sorted(set(block) - set(schema) - {"env"})
        if unknown:
            raise _unknown(f"{where} (env {env!r})", unknown, schema)
        for params in _grid(where, block, schema):
            for instance in _instance_specs(where, env, params, folder):
                found.setdefault(instance.key, instance)
    return tuple(found.values())


def _instance_specs(where: str, env: str, params: dict[str, Any], folder: Path) -> list[InstanceSpec]:
    if env != "file":
        if params.get("criterion") != "discounted" and params.get("gamma") is not None:
            raise ValidationError(f"{where}.gamma: only meaningful with criterion = \"discounted\", got gamma = {params['gamma']}")
        return [InstanceSpec(env, params)]
    path = Path(params["path"])
    path = (path if path.is_absolute() else folder / path).resolve()
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in FILE_SUFFIXES and p.is_file())
        if not found:
            raise ValidationError(f"{where}.path: the folder {str(path)!r} holds no {'/'.join(FILE_SUFFIXES)} files")
    elif path.is_file():
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise ValidationError(f"{where}.path: expected a {' or '.join(FILE_SUFFIXES)} file, got {str(path)!r}")
        found = [path]
    else:
        raise ValidationError(f"{where}.path: no such file or folder {str(path)!r}")
    return [InstanceSpec("file", {"path": str(p), "sha256": _file_hash(p)}) for p in found]


def _file_hash(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _samples(table: Any, wanted: bool) -> tuple[SampleSpec | None, ...]:
    if table is None:
        if not wanted:
            return (None,)
        table = {}
    if not isinstance(table, Mapping):
        raise ValidationError(f"sample: expected a table, got {table!r}")
    unknown = sorted(set(table) - set(SAMPLE_KEYS))
    if unknown:
        raise _unknown("sample", unknown, SAMPLE_KEYS)
    samples = []
    for settings in _grid("sample", table, SAMPLE_KEYS):
        if settings["evaluation"] != "auto" and settings["measure"] != "policy":
            raise ValidationError(f"sample.evaluation: only for measure \"policy\", got measure {settings['measure']!r}")
        samples.append(SampleSpec(**settings))
    return tuple(dict.fromkeys(samples))


def _methods(value: Any) -> tuple[str, ...]:
    methods = value if isinstance(value, list) else [value]
    if not methods:
        raise ValidationError("method: expected a method or a non-empty list of methods")
    for method in methods:
        if method not in METHODS:
            raise ValidationError(f"method: expected one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return tuple(dict.fromkeys(methods))


def _rules(value: Any, methods: tuple[str, ...], has_sample: bool) -> tuple[RuleSpec, ...]:
    if value is None:
        value = list(DEFAULT_RULES + (VOLUMETRIC_RULES if has_sample else ()))
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValidationError(f"rules: expected a non-empty list of rule names or {{name, options}} tables, got {value!r}")
    found: dict[tuple, RuleSpec] = {}
    for k, entry in enumerate(value):
        where = f"rules[{k}]"
        name, options = _rule_entry(where, entry)
        for method in methods:
            resolved = METHODS[method].get(name, name)
            rule = rule_registry.get(resolved)
            arguments = {**rule.defaults, **options}
            fixed = sorted(set(options) & set(rule.defaults))
            if fixed:
                raise ValidationError(f"{where}.options: rule {resolved!r} fixes {', '.join(fixed)}")
            try:
                rule._check_options(arguments)
            except ValidationError as exc:
                raise ValidationError(f"{where}.{exc}") from None
            spec = RuleSpec(resolved, options, method, name)
            found.setdefault((resolved, canonical(options)), spec)
    return tuple(found.values())


def _rule_entry(where: str, entry: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        name, options = entry, {}
    elif isinstance(entry, Mapping):
        unknown = sorted(set(entry) - {"name", "options"})
        if unknown:
            raise ValidationError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a rule table has name, options")
        name, options = entry.get("name"), entry.get("options", {})
    else:
        raise ValidationError(f"{where}: expected a rule name or a {{name, options}} table, got {entry!r}")
    if not isinstance(name, str):
        raise ValidationError(f"{where}.name: expected a rule name (see 'jaxagg rules'), got {name!r}")
    try:
        rule_registry.get(name)
    except ValidationError as exc:
        raise ValidationError(f"{where}.name: {exc}") from None
    if not isinstance(options, Mapping):
        raise ValidationError(f"{where}.options: expected a table of option values, got {options!r}")
    try:
        options = json.loads(canonical(dict(options)))
    except (TypeError, ValueError):
        raise ValidationError(f"{where}.options: expected JSON values (numbers, strings, lists, tables), got {options!r}") from None
    return name, options


def _grid(where: str, table: Mapping[str, Any], schema: Mapping[str, tuple[Any, Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of the table's values (a list or an integer range is an axis), each
    checked and with the schema's defaults filled in, in the schema's key order."""
    axes = []
    for key, (default, check) in schema.items():
        raw = table.get(key, default)
        values = _axis(f"{where}.{key}", raw)
        axes.append([(key, check(f"{where}.{key}", v)) for v in values])
    size = 1
    for axis in axes:
        size *= len(axis)
    if size > MAX_CELLS:
        raise ValidationError(f"{where}: a grid of {size} combinations; at most {MAX_CELLS} are supported")
    for combination in itertools.product(*axes):
        yield dict(combination)


def _axis(name: str, raw: Any) -> list[Any]:
    """The values of one grid axis: a list, an integer range table, or one value."""
    if isinstance(raw, list):
        if not raw:
            raise ValidationError(f"{name}: expected a value or a non-empty list, got []")
        return raw
    if isinstance(raw, Mapping):
        keys = set(raw)
        if keys not in ({"start", "count"}, {"start", "stop"}, {"start", "stop", "step"}):
            raise ValidationError(f"{name}: a range is {{start, count}} or {{start, stop[, step]}}, got {dict(raw)!r}")
        start = integer_at_least(f"{name}.start", raw["start"], -(2**62))
        if "count" in raw:
            count = integer_at_least(f"{name}.count", raw["count"], 1, MAX_CELLS)
            return list(range(start, start + count))
        step = integer_at_least(f"{name}.step", raw.get("step", 1), 1)
        stop = integer_at_least(f"{name}.stop", raw["stop"], start + 1)
        values = range(start, stop, step)
        if len(values) > MAX_CELLS:
            raise ValidationError(f"{name}: a range of {len(values)} values; at most {MAX_CELLS} are supported")
        return list(values)
    return [raw]
