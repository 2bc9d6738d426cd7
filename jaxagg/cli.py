"""The ``jaxagg`` command.

    jaxagg run                      every rule on the default attention instance (5, 3, base, seed 0)
    jaxagg run --env garnet --states 20 --json out.json
    jaxagg run --momdp instance.npz --rules leximin,nash
    jaxagg sample --num-samples 100000 --out s.npz    sample the policy measure
    jaxagg run --samples s.npz      ... and report every rule's quantile ranks under it
    jaxagg run --method tune        the volumetric rules by the Optax tuner (--method refine: MILPs started from it)
    jaxagg reproduce --experiment base --instances 5 --samples 20000   the paper's Figure 1
    jaxagg sweep spec.toml --store results.db      a grid of instances x samples x rules (resumable)
    jaxagg sweep --status results.db               done / failed / pending cells
    jaxagg sweep --export csv results.db           every cell's results (also json)
    jaxagg sweep --plot min --by agents results.db a metric against a swept parameter, one line per rule
    jaxagg run --env gym:deep-sea-treasure-v0      any registered Gymnasium / MO-Gymnasium id (pip install 'jaxagg[gym]')
    jaxagg check-front gym:resource-gathering-v0   an MO-Gymnasium published front against the exact one
    jaxagg env --out instance.npz   write an instance to a file (npz or json)
    jaxagg rules                    list the rules

Errors are one line on stderr (``jaxagg: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jaxagg import envs, files
from jaxagg import rules as rule_registry
from jaxagg.errors import JaxaggError, ValidationError
from jaxagg.experiment import reproduce
from jaxagg.momdp import FILE_SUFFIXES, MOMDP, load
from jaxagg.pareto import check_front
from jaxagg.report import DEFAULT_RULES, FIGURE_SUFFIXES, METHODS, VOLUMETRIC_RULES, compare, method_rules
from jaxagg.samples import load_sample
from jaxagg.sampling import extend
from jaxagg.sampling import sample as sample_measure
from jaxagg.sweeps import SweepResults, load_spec, plan, sweep
from jaxagg.sweeps.results import metric_column
from jaxagg.sweeps.run import GROUP, describe, plan_fresh
from jaxagg.sweeps.spec import swept_parameter
from jaxagg.sweeps.store import METRICS, STORE_SUFFIXES, Store
from jaxagg.validation import integer_at_least

DEFAULT_RUN_SAMPLES = 20_000
"""Samples `jaxagg run` draws by default: about ten seconds on a 2-core CPU for attention (5, 3)."""
UNIFORM_FLAGS = ("chains", "thin", "burn_in", "directions", "ess_target", "max_doublings")
"""The `jaxagg sample` options that go to the uniform measure (`uniform_options`)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are a single line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxagg", description="Policy aggregation: fair collective policies for multi-agent MDPs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="run aggregation rules on one instance and print a table")
    _add_instance_options(run)
    run.add_argument("--rules", default=None, help=f"comma-separated rule names (default: {','.join(DEFAULT_RULES)}, "
                     f"plus {','.join(VOLUMETRIC_RULES)} with --samples)")
    run.add_argument("--method", choices=sorted(METHODS), default="exact",
                     help="exact: the rules as named; tune: the volumetric rules by the Optax tuner (tune-quantile, "
                          "tune-borda, tune-approval, certified on the sample); refine: borda and approval MILPs started "
                          "from the tuner's policy (default: %(default)s)")
    run.add_argument("--samples", metavar="PATH", help="a sample file from 'jaxagg sample' for this instance")
    run.add_argument("--num-samples", type=int, default=DEFAULT_RUN_SAMPLES,
                     help="without --samples: draw this many samples of --measure for the volumetric rules "
                          "(default: %(default)s; 0: welfare rules only)")
    run.add_argument("--sample-seed", type=int, default=0, help="seed of that sample (default: %(default)s)")
    run.add_argument("--measure", choices=["policy", "hull", "uniform"], default="policy",
                     help="reference measure of that sample (default: %(default)s; 'uniform' uses hit-and-run defaults)")
    run.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    run.add_argument("--figure", metavar="PATH", help="also draw each rule's ranked normalised returns to PATH (.png)")
    run.add_argument("--quiet", action="store_true", help="no progress messages on stderr")

    env = sub.add_parser("env", help="build an instance and write it to a file")
    _add_instance_options(env)
    env.add_argument("--out", metavar="PATH", required=True, help="output file, .npz or .json")

    smp = sub.add_parser("sample", help="sample a reference measure and write the returns to a .npz file")
    _add_instance_options(smp)
    smp.add_argument("--num-samples", type=int, default=100_000, help="samples N (default: %(default)s)")
    smp.add_argument("--measure", choices=["policy", "hull", "uniform"], default=None,
                     help="(default: policy; with --resume, the file's)")
    smp.add_argument("--sample-seed", type=int, default=None, help="seed of the sample (default: 0; with --resume, the file's)")
    smp.add_argument("--precision", choices=["float32", "float64"], default=None,
                     help="(default: float32, or float64 when 1 - gamma < 1e-3; with --resume, the file's)")
    smp.add_argument("--chunk-size", type=int, default=4096, help="samples per device call (default: %(default)s)")
    smp.add_argument("--evaluation", choices=["auto", "krylov", "lu"], default=None,
                     help="policy measure: batched GMRES on the transition operator, a dense LU per policy, or auto "
                          "(LU for small dense instances; with --resume, the file's)")
    smp.add_argument("--resume", action="store_true", help="continue the sample in --out with --num-samples more "
                     "(its measure, seed and precision; options that differ are refused)")
    smp.add_argument("--allow-version-change", action="store_true",
                     help="with --resume: continue a file drawn with another jax/jaxlib/jaxagg version (with a warning; "
                          "samples are bit-identical only within one version, so the file then equals no single run)")
    smp.add_argument("--force", action="store_true", help="overwrite an existing --out without --resume")
    smp.add_argument("--out", metavar="PATH", required=True, help="output file (.npz)")
    smp.add_argument("--quiet", action="store_true", help="no progress bar")
    uni = smp.add_argument_group("uniform measure (hit-and-run)")
    uni.add_argument("--chains", type=int, default=None, help="chains run together (default: 32)")
    uni.add_argument("--thin", type=int, default=None, help="sweeps of k steps between kept samples, kept as given (default: "
                     "max(10, ceil(k/64)), doubled until the diagnostics pass)")
    uni.add_argument("--burn-in", type=int, default=None, help="sweeps before the first kept sample (default: k)")
    uni.add_argument("--directions", choices=["coordinate", "random"], default=None, help="(default: coordinate)")
    uni.add_argument("--ess-target", type=int, default=None, help="ESS (bulk, tail, quantiles) every agent must reach, with "
                     "R-hat <= 1.01 (default: 400, at most N/2; 0: no adaptation)")
    uni.add_argument("--max-doublings", type=int, default=None, help="cap on doublings of the default thinning (default: 4)")

    rep = sub.add_parser("reproduce", help="the paper's experiment over several seeded instances: table, JSON and figure")
    rep.add_argument("--experiment", choices=["base", "subsets"], default="base", help="(default: %(default)s)")
    rep.add_argument("--instances", type=int, default=5, help="seeded instances (default: %(default)s)")
    rep.add_argument("--samples", type=int, default=20_000, help="policy samples per instance (paper: 500000; default: %(default)s)")
    rep.add_argument("--factories", type=int, default=5, help="(default: %(default)s)")
    rep.add_argument("--phases", type=int, default=3, help="(default: %(default)s)")
    rep.add_argument("--seed", type=int, default=0, help="first instance seed (default: %(default)s)")
    rep.add_argument("--out", metavar="DIR", default="jaxagg-out",
                     help="output folder: EXPERIMENT.db (the sweep store; a rerun resumes it), .json and .png "
                          "(default: %(default)s)")
    rep.add_argument("--workers", type=int, default=None, help="solve processes (default: CPU cores; 0: in this process)")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")

    swp = sub.add_parser("sweep", help="run a sweep spec (.toml) into a SQLite store, or report on a store",
                         description="Run every cell of a sweep spec that the store has not finished (a rerun resumes), "
                                     "or with --status / --export / --plot report on a store.")
    swp.add_argument("path", nargs="?", help="the spec (.toml) to run, or the store (.db) to report on")
    swp.add_argument("--store", metavar="DB", help="the SQLite store (default: the spec's name + .db in this folder)")
    swp.add_argument("--workers", type=int, default=None, help="solve processes (default: CPU cores; 0: in this process)")
    swp.add_argument("--backend", choices=["local", "ray"], default="local",
                     help="local process pool, or Ray tasks (pip install 'jaxagg[ray]') (default: %(default)s)")
    swp.add_argument("--address", help="with --backend ray: a running cluster's address (default: start a local one)")
    swp.add_argument("--group", type=int, default=None, help="instances of one shape sampled together (default: 64)")
    swp.add_argument("--retry-failed", action="store_true", help="run the cells recorded as failed again")
    swp.add_argument("--dry-run", action="store_true", help="print the cells, what is left and a memory estimate; run nothing")
    swp.add_argument("--status", action="store_true", help="report the store's done / failed / pending cells")
    swp.add_argument("--export", choices=["csv", "json"], help="write every cell's results (to --out, default beside the store)")
    swp.add_argument("--plot", metavar="METRIC", help=f"draw METRIC ({', '.join(METRICS)}) against --by, one line per rule")
    swp.add_argument("--by", metavar="PARAM", help="with --plot (and the table): a swept parameter (agents, states, seed, ...)")
    swp.add_argument("--metric", default="min", help="the metric of the printed table (default: %(default)s)")
    swp.add_argument("--out", metavar="PATH", help="the --export or --plot file")
    swp.add_argument("--quiet", action="store_true", help="no progress bar")

    chk = sub.add_parser("check-front", help="compare an MO-Gymnasium environment's published pareto_front(gamma) with the exact front",
                         description="Convert the environment exactly, compute its Pareto front by LPs (2-3 agents; more: classify "
                                     "the published points and search for missing ones) and report every difference. "
                                     "Exit status 0 when they agree, 1 when they differ.")
    chk.add_argument("env", help="gym:ID (or ID) of an environment with a pareto_front(gamma) method, e.g. gym:deep-sea-treasure-v0")
    chk.add_argument("--gamma", type=float, default=None, help="discount factor (default: 0.99)")
    chk.add_argument("--tol", type=float, default=1e-6, help="tolerance in fractions of each return range (default: %(default)s)")
    chk.add_argument("--max-states", type=int, default=None, help="size guard of the conversion (default: 100000)")

    sub.add_parser("rules", help="list the available rules")
    return parser


def _add_instance_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("instance")
    group.add_argument("--env", type=_env_name, default="attention", metavar="ENV",
                       help=f"built-in environment ({', '.join(sorted(envs.ENVIRONMENTS))}) or gym:ID, any registered Gymnasium / "
                            "MO-Gymnasium id, converted exactly (discounted, --gamma default 0.99) (default: %(default)s)")
    group.add_argument("--time-limit", choices=["drop", "augment"], default="drop",
                       help="gym:ID: ignore the episode step limit, or add the step count to the state (default: %(default)s)")
    group.add_argument("--max-states", type=int, default=None, help="gym:ID: size guard of the conversion (default: 100000)")
    group.add_argument("--momdp", metavar="PATH", help="load the instance from a .npz/.json file instead")
    group.add_argument("--seed", type=int, default=0, help="instance seed (default: %(default)s)")
    group.add_argument("--criterion", choices=["average", "discounted"], default="average", help="(default: %(default)s)")
    group.add_argument("--gamma", type=float, default=None, help="discount factor in (0, 1) for --criterion discounted (default 0.95)")
    group.add_argument("--factories", type=int, default=5, help="attention: factories (default: %(default)s)")
    group.add_argument("--phases", type=int, default=3, help="attention: phases per factory (default: %(default)s)")
    group.add_argument("--agents", choices=["base", "subsets"], default="base", help="attention: agents (default: %(default)s)")
    group.add_argument("--num-agents", type=int, default=None, help="attention subsets (default 10) or garnet (default 3): agents")
    group.add_argument("--states", type=int, default=10, help="garnet: states (default: %(default)s)")
    group.add_argument("--actions", type=int, default=3, help="garnet: actions (default: %(default)s)")
    group.add_argument("--branching", type=int, default=2, help="garnet: next states per (s, a) (default: %(default)s)")


def _env_name(value: str) -> str:
    if value in envs.ENVIRONMENTS or (value.startswith("gym:") and len(value) > 4):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(sorted(envs.ENVIRONMENTS))} or gym:ID)")


def _gym_id(value: str) -> str:
    return value[4:] if value.startswith("gym:") else value


def instance_from_args(args: argparse.Namespace) -> MOMDP:
    """The MOMDP the instance options describe."""
    if args.momdp:
        return load(args.momdp)
    if args.env.startswith("gym:"):
        options = {} if args.max_states is None else {"max_states": args.max_states}
        return envs.from_gymnasium(_gym_id(args.env), gamma=args.gamma, time_limit=args.time_limit, **options)
    gamma = args.gamma
    if args.criterion == "discounted" and gamma is None:
        gamma = 0.95
    if args.env == "attention":
        return envs.attention_allocation(
            args.factories, args.phases, args.agents, args.seed, num_agents=args.num_agents, criterion=args.criterion, gamma=gamma
        )
    agents = 3 if args.num_agents is None else args.num_agents
    return envs.garnet(args.states, args.actions, args.branching, agents, args.seed, criterion=args.criterion, gamma=gamma)


def _run(args: argparse.Namespace) -> int:
    num_samples = integer_at_least("--num-samples", args.num_samples, 0)
    json_path = None if args.json is None else files.output_path("--json", args.json, (".json",))
    figure_path = None if args.figure is None else files.output_path("--figure", args.figure, FIGURE_SUFFIXES)
    names = None if args.rules is None else [name.strip() for name in args.rules.split(",") if name.strip()]
    if names == []:
        raise ValidationError(f"--rules: expected comma-separated rule names (see 'jaxagg rules'), got {args.rules!r}")
    names = method_rules(args.method, names)
    for name in names or ():
        rule_registry.get(name)  # unknown names fail before any work
    momdp = instance_from_args(args)
    sample = None
    wants_sample = names is None or any(rule_registry.get(name).needs_sample for name in names)
    if args.samples:
        sample = load_sample(args.samples).check_instance(momdp, f"--samples {args.samples!r}")
    elif wants_sample and num_samples > 0:
        sample = sample_measure(momdp, num_samples, args.measure, args.sample_seed, progress=not args.quiet)
    if sample is None and any(rule_registry.get(name).needs_sample for name in names or ()):
        raise ValidationError("rules: volumetric rules need a sample; pass --samples PATH or --num-samples N > 0")
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    comparison = compare(momdp, names, sample, progress=progress)
    print(comparison.table())
    if json_path:
        print(f"wrote {comparison.save_json(json_path)}")
    if figure_path and comparison.outcomes:
        print(f"wrote {comparison.plot(figure_path)}")
    return 1 if comparison.failures and not comparison.outcomes else 0


def _sample(args: argparse.Namespace) -> int:
    out = files.output_path("--out", args.out, (".npz",))
    if args.allow_version_change and not args.resume:
        raise ValidationError("--allow-version-change: only with --resume (a new sample records this process's versions)")
    if out.exists() and not (args.resume or args.force):
        raise ValidationError(f"--out: {str(out)!r} exists; pass --resume to continue it or --force to overwrite it")
    if args.resume and args.force:
        raise ValidationError("--force: contradicts --resume (which keeps the file's samples)")
    momdp = instance_from_args(args)
    options = {"chunk_size": args.chunk_size, "progress": not args.quiet}
    began = time.perf_counter()
    if args.resume:
        earlier = load_sample(out).check_instance(momdp, f"--out {str(out)!r}")
        _refuse_resume_conflicts(args, earlier)
        if args.precision is not None:
            options["precision"] = args.precision
        if args.evaluation is not None:
            options["method"] = args.evaluation
        result = extend(momdp, earlier, args.num_samples, allow_version_change=args.allow_version_change, **options)
    else:
        options["precision"] = args.precision or "auto"
        uniform = {key: getattr(args, key) for key in UNIFORM_FLAGS if getattr(args, key) is not None}
        measure = args.measure or "policy"
        if uniform and measure != "uniform":
            raise ValidationError(f"{', '.join('--' + key.replace('_', '-') for key in uniform)}: "
                                  f"only for --measure uniform, got --measure {measure}")
        if uniform:
            options["uniform_options"] = uniform
        if args.evaluation is not None:
            if measure != "policy":
                raise ValidationError(f"--evaluation: only for --measure policy, got --measure {measure}")
            options["method"] = args.evaluation
        result = sample_measure(momdp, args.num_samples, measure,
                                0 if args.sample_seed is None else args.sample_seed, **options)
    seconds = time.perf_counter() - began
    path = result.save(out)
    print(f"wrote {path}: {result!r} for {momdp!r} ({args.num_samples} new samples in {seconds:.1f} s "
          f"including compilation; DKW band {result.dkw_band():.4f} at 95%)")
    parts = [part.get("info") or {} for part in result.info.get("parts") or []] or [result.info]
    residuals = [info["residual_max"] for info in parts if isinstance(info.get("residual_max"), float)]
    if residuals and isinstance(parts[-1].get("evaluation"), dict):
        engine = parts[-1]["evaluation"]
        solver = f" ({engine['solver']})" if isinstance(engine.get("solver"), str) else ""
        if engine.get("preconditioner") not in (None, "none"):
            solver = f" ({engine['solver']}, {engine['preconditioner']} preconditioner)"
        print(f"policy evaluation: {engine['method']}{solver} on the {engine['operator']} operator; largest residual "
              f"{max(residuals):.2g} (tolerance {engine['tol']:g})")
    if result.info.get("rhat"):
        doubled = result.info.get("thin_doublings") or 0
        print(f"hit-and-run: {result.info['chains']} chains, thin {result.info['thin']} sweeps of "
              f"{result.info['hull_dimension']} steps{f' (doubled {doubled} times)' if doubled else ''}; max rank-normalised "
              f"R-hat {max(result.info['rhat']):.3f}, min ESS (bulk, tail, 0.8/0.9 quantiles) {min(result.info['ess']):.0f} "
              f"(want R-hat <= 1.01 and ESS >= {result.info.get('ess_target', 400):g})")
    return 0


def _refuse_resume_conflicts(args: argparse.Namespace, earlier) -> None:
    """``sample --resume`` continues the file's stream: options that say otherwise are refused."""
    given = {"--measure": (args.measure, earlier.measure), "--sample-seed": (args.sample_seed, earlier.seed)}
    conflicts = [f"{flag} {mine} (the file has {theirs})" for flag, (mine, theirs) in given.items()
                 if mine is not None and mine != theirs]
    conflicts += [f"--{key.replace('_', '-')}" for key in UNIFORM_FLAGS if getattr(args, key) is not None]
    if conflicts:
        raise ValidationError(f"--resume: continues the file's sample as it was drawn; drop {', '.join(conflicts)}")


def _reproduce(args: argparse.Namespace) -> int:
    out = files.output_path("--out", args.out, None)
    result = reproduce(args.experiment, args.instances, integer_at_least("samples", args.samples, 1),
                       factories=args.factories, phases=args.phases, seed=args.seed, store=out / f"{args.experiment}.db",
                       workers=args.workers, progress=not args.quiet)
    print(result.table())
    print(f"wrote {result.save_json(out / f'{args.experiment}.json')} and {result.plot(out / f'{args.experiment}.png')}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    reports = [flag for flag, given in (("--status", args.status), ("--export", args.export), ("--plot", args.plot)) if given]
    if len(reports) > 1:
        raise ValidationError(f"{reports[1]}: one of --status, --export, --plot at a time")
    if reports:
        return _sweep_report(args, reports[0])
    if args.by is not None and args.plot is None and not args.path:
        raise ValidationError("--by: names the parameter of --plot or of the printed table")
    if not args.path:
        raise ValidationError("path: expected a sweep spec (.toml) to run, or --status / --export / --plot with a store")
    spec = load_spec(args.path)
    store = args.store or f"{Path(args.path).stem}.db"
    metric_column(args.metric)
    options = {"workers": args.workers, "backend": args.backend, "address": args.address, "retry_failed": args.retry_failed,
               "progress": not args.quiet}
    if args.group is not None:
        options["group"] = integer_at_least("--group", args.group, 1)
    if args.dry_run:
        if Path(store).exists():
            with Store.open(store, create=False) as db:
                work = plan(spec, db, args.retry_failed)
        else:
            work = plan_fresh(spec)
        print(describe(work, options.get("group", GROUP)))
        return 0
    files.output_path("--store", store, STORE_SUFFIXES)
    results = sweep(spec, store, **options)
    by = args.by or swept_parameter(spec)
    print(results.table(args.metric, by))
    for record in results.failures()[:10]:
        print(f"failed: {record['rule']} on {record['label']}: {record['error']}")
    print(f"store: {results.store} ({results.counts['done']} done, {results.counts['failed']} failed)")
    return 1 if results.counts["failed"] and not results.counts["done"] else 0


def _sweep_report(args: argparse.Namespace, report: str) -> int:
    store = args.store or args.path
    if not store:
        raise ValidationError(f"{report}: which store? pass it as the path or with --store")
    if Path(store).suffix.lower() not in STORE_SUFFIXES:
        raise ValidationError(f"{report}: expected a store ({'/'.join(STORE_SUFFIXES)}), got {store!r}")
    results = SweepResults.read(store)
    if report == "--status":
        counts = results.counts
        total = sum(counts.values())
        print(f"{results.store}: {total} cells: {counts['done']} done, {counts['failed']} failed, {counts['pending']} pending")
        for record in results.failures()[:20]:
            print(f"  failed: {record['rule']} on {record['label']}: {record['error']}")
        return 0
    if report == "--export":
        out = args.out or str(Path(store).with_suffix(f".{args.export}"))
        print(f"wrote {results.export(out, args.export)} ({len(results.records)} cells)")
        return 0
    if args.by is None:
        raise ValidationError("--plot: needs --by PARAM, the swept parameter on the x axis")
    out = args.out or str(Path(store).with_name(f"{Path(store).stem}-{args.plot}-by-{args.by}.png"))
    print(results.table(args.plot, args.by))
    print(f"wrote {results.plot(args.plot, args.by, out)}")
    return 0


def _env(args: argparse.Namespace) -> int:
    files.output_path("--out", args.out, FILE_SUFFIXES)
    momdp = instance_from_args(args)
    print(f"wrote {momdp.save(args.out)}: {momdp!r}")
    return 0


def _check_front(args: argparse.Namespace) -> int:
    env_id = _gym_id(args.env)
    options = {} if args.max_states is None else {"max_states": args.max_states}
    momdp = envs.from_gymnasium(env_id, gamma=args.gamma, **options)
    reference = envs.published_front(env_id, momdp.gamma)
    result = check_front(momdp, reference, convention="episodic", tol=args.tol)
    print(f"{momdp!r}: published pareto_front({momdp.gamma:g}) against the exact front "
          "(episodic discounted returns, sum_t gamma^t r_t)")
    print(result.report())
    return 0 if result.matches else 1


def _rules(args: argparse.Namespace) -> int:
    width = max(len(name) for name in rule_registry.names())
    for name in rule_registry.names():
        rule = rule_registry.get(name)
        print(f"{name.ljust(width)}  [{rule.family}] {rule.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (getattr(args, "gamma", None) is not None and getattr(args, "criterion", "discounted") != "discounted"
            and not str(getattr(args, "env", "")).startswith("gym:")):
        parser.error("argument --gamma: only meaningful with --criterion discounted")
    try:
        commands = {"run": _run, "sample": _sample, "reproduce": _reproduce, "sweep": _sweep, "env": _env, "rules": _rules,
                    "check-front": _check_front}
        return commands[args.command](args)
    except JaxaggError as exc:
        print(f"jaxagg: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"jaxagg: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
