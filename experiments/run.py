"""``python -m experiments.run``: plan, train, evaluate and report the paper's tables and figures.

    python -m experiments.run table3 [--profile cpu] [--executor local|slurm|debug] [--cluster FILE]
                                     [--seeds K] [--force] [--dry-run] [--set SECTION.KEY=VALUE ...]
    python -m experiments.run all | list | status [TABLE] | report [TABLE] [--check]

Exit codes: 0 done, 1 some runs failed (the others are still reported), 2 bad input or a failed preflight
(nothing submitted), 3 some runs are being trained by another job (``status`` names it; rerun later).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import warnings
from pathlib import Path

from experiments import store
from experiments.dispatch import launch, preflight, runlock
from experiments.dispatch.plan import Plan, estimate_lines, head_starts, make_plan, past_pace_line
from experiments.overrides import describe, parse_overrides
from experiments.registry import DEFAULT_PROFILE, RegistryError, load_registry
from trans3dhead.atomic import describe_os_error, folder_problem, naming_folder
from trans3dhead.cli import summary
from trans3dhead.config import ConfigError, did_you_mean

COMMANDS = ("list", "status", "report")
# Each seed trains every row of the table again; the paper reports one run, this suite three. A count
# beyond this is a typo (a plan of 100000 seeds takes minutes just to resolve), not a plan.
MAX_SEEDS = 100
# Options that only one kind of command reads: given to another, they would be silently ignored.
TABLE_ONLY = ("--only", "--force", "--dry-run", "--estimate", "--max-parallel", "--cluster")
REPORT_ONLY = ("--check",)


class UsageError(ValueError):
    pass


def _path(value: str) -> Path:
    """A folder or file option; '' would silently mean the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError("'' is empty: give a path (or leave the option out for its default)")
    return Path(value)


def _jobs_per_gpu(value: str) -> int | str:
    if value == "auto" or (value.isdigit() and int(value) >= 1):
        return value if value == "auto" else int(value)
    raise argparse.ArgumentTypeError(f"{value!r}: use a count >= 1 or auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.run", description=summary(__doc__))
    parser.add_argument("target", help="a table or figure (table1..table8, figure7, figure8), all, list, status, report")
    parser.add_argument("table", nargs="?", help="for status / report: restrict to one table")
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--executor", default="local", choices=launch.EXECUTORS)
    parser.add_argument("--cluster", type=_path, help="SLURM cluster file (experiments/registry/clusters/*.yaml)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-parallel", type=int, help="local executor: concurrent jobs (default: one per core or GPU, fewer if RAM is short)")
    parser.add_argument("--jobs-per-gpu", default="auto", type=_jobs_per_gpu,
                        help="local executor on a GPU box: runs sharing one GPU, a count or auto (from one run's "
                             "measured peak memory and the GPU's size; CPU threads are split between the runs)")
    parser.add_argument("--only", help="comma-separated variants: run just their rows of the table; the report "
                                       "shows the other rows as missing")
    parser.add_argument("--force", action="store_true",
                        help="retrain runs that already have results, from their first step (no continuation)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="SECTION.KEY=VALUE",
                        help="override a config value for every run (YAML value; repeatable), e.g. "
                             "--set train.epochs=16; part of the run id; not an ablation switch")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, submit nothing")
    parser.add_argument("--estimate", action="store_true",
                        help="with --dry-run: time each model size here and say how long (re)training would take")
    parser.add_argument("--check", action="store_true", help="report: verify committed reports regenerate byte for byte")
    parser.add_argument("--registry", type=_path, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=_path, default=Path("results"))
    parser.add_argument("--reports", type=_path, default=Path("reports"))
    parser.add_argument("--work", type=_path, default=Path("work"))
    parser.add_argument("--jobs", type=_path, default=Path("jobs"))
    return parser


def cmd_list(registry) -> int:
    print("Variants:")
    for name, entry in registry.variants.items():
        print(f"  {name:22s} {entry.get('label', ''):20s} base={entry.get('base', '-')}")
    print("Tables and figures:")
    for name, spec in registry.tables.items():
        print(f"  {name:8s} {spec.kind:6s} {spec.dataset}/{spec.split}: {spec.title}")
    print("Profiles:")
    for name, prof in registry.profiles.items():
        print(f"  {name:9s} {prof.get('description', '')}")
    return 0


def cmd_status(registry, args) -> int:
    plan = make_plan(registry.plan(args.table or "all", args.profile, args.seeds, args.overrides),
                     args.results, args.work)
    counts: dict[str, int] = {}
    for run in plan.runs:
        status = plan.status[run.run_id]
        error = status.detail
        if status.state is store.RunState.BROKEN:
            error += " (the next run of its table redoes it)"
        elif status.state is store.RunState.DONE and status.measure:
            error = f"{store.NO_EFFICIENCY} (the next run of its table measures it, alone, in seconds)"
        counts[status.state.value] = counts.get(status.state.value, 0) + 1
        meta = store.read_meta(store.run_dir(args.results, args.profile, run.run_id)) or {}
        # a running run's detail is the job holding it, not an error
        label = {store.RunState.RUNNING: "held by", store.RunState.DONE: "note"}.get(status.state, "error")
        print(f"{run.run_id}  seed {run.seed}  {status.state.value:8s} {','.join(run.variants):28s} "
              f"log: {_log_words(meta)}" + (f"\n    {label}: {error}" if error else ""))
    print("; ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0


def _log_words(meta: dict) -> str:
    """Where the run's log is, or why there is none here (a committed result's work folder stays on the
    machine that trained it)."""
    log = meta.get("log") or meta.get("log_dir")
    if not log:
        return "-"
    if Path(log).exists():
        return log
    kept = "; meta.json keeps its error" if meta.get("status") == "failed" else ""
    return f"{log} (not on this machine: it stays where the run was trained{kept})"


def _table_names(registry, target: str) -> list[str]:
    return list(registry.tables) if target == "all" else [target]


def print_verdicts(registry, args, tables: list[str]) -> None:
    """The ablation steps' verdicts of each table, as its report states them, one line each."""
    from experiments import report
    from experiments.report.gather import Inputs
    from experiments.report.write import table_context

    inputs = Inputs(registry, args.profile, tuple(args.overrides), Path(args.results),
                    store.collect(args.results, args.profile))
    for name in tables:
        ctx = table_context(inputs, name, Path(args.reports) / report.report_folder(args.profile, args.overrides))
        for result in ctx.steps:
            print(f"  {name}: {result.step.from_label} -> {result.step.to_label}, {result.metric}: {result.verdict}")


def cmd_report(registry, args) -> int:
    from experiments import report
    tables = [args.table] if args.table else list(registry.tables)
    for table in tables:
        registry.table(table)
    if problem := folder_problem(args.reports, "--reports"):
        raise UsageError(problem)
    if args.check:
        problems = report.check_reports(registry, args.profile, args.results, args.reports, args.overrides)
        for problem in problems:
            print(f"report check: {problem}", file=sys.stderr)
        print("reports reproduce byte for byte" if not problems else f"{len(problems)} report(s) differ")
        return 1 if problems else 0
    with naming_folder(args.reports, "--reports"):
        for path in report.write_reports(registry, args.profile, tables, args.results, args.reports, args.overrides):
            print(f"wrote {path}")
    return 0


def _only(runs: list, only: str | None, target: str) -> list:
    if only is None:
        return runs
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    planned = sorted({v for run in runs for v in run.variants})
    if not wanted:
        raise UsageError(f"--only {only!r} names no variant: give comma-separated variants of {target} "
                         f"({', '.join(planned)}), or leave --only out to run the whole table")
    for name in wanted:
        if name not in planned:
            did = did_you_mean(name, planned)
            raise UsageError(f"--only {name}: not a variant of {target}{did} (its variants: {', '.join(planned)})")
    return [run for run in runs if set(run.variants) & set(wanted)]


def check_options(args, argv: list[str]) -> None:
    """Option values every command shares, and options the command would ignore."""
    if args.seeds < 1 or args.seeds > MAX_SEEDS:
        raise UsageError(f"--seeds={args.seeds}: use 1 or more, at most {MAX_SEEDS} (each seed retrains every row of the "
                         f"table; the reports use three)")
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    command = args.target if args.target in COMMANDS else "table"
    ignored = [flag for flag in TABLE_ONLY if flag in given and command != "table"] + \
              [flag for flag in REPORT_ONLY if flag in given and command != "report"]
    if ignored:
        where = "report" if ignored[0] in REPORT_ONLY else "a table or figure command (e.g. table3)"
        raise UsageError(f"{ignored[0]} does nothing with '{args.target}': it goes with {where}")


def _seed_words(registry, args) -> str:
    """'--seeds 1: seed 0' ('--seeds 3: seeds 0-2, +Euler+QA and Trans3DHead of table3 0-7' where rows ask
    for more), and the seeds the report shows when the store holds more."""
    from experiments.report.gather import Inputs, table_seeds

    planned = f"--seeds {args.seeds}: seed{'s 0-' + str(args.seeds - 1) if args.seeds > 1 else ' 0'}"
    more: dict[tuple[str, int], list[str]] = {}
    for name in _table_names(registry, args.target):
        for row in registry.table(name).rows:
            if row.variant is not None and row.seed_count(args.seeds) > args.seeds:
                more.setdefault((name, row.seed_count(args.seeds)), []).append(row.label)
    planned += "".join(f", {' and '.join(labels)} of {name} 0-{count - 1}" for (name, count), labels in more.items())
    inputs = Inputs(registry, args.profile, tuple(args.overrides), Path(args.results),
                    store.collect(args.results, args.profile))
    shown = sorted({seed for name in _table_names(registry, args.target)
                    for seed in table_seeds(inputs, registry.table(name))})
    if set(shown) <= set(range(args.seeds)):
        return planned
    return (f"{planned}; the report shows every stored seed ({', '.join(map(str, shown))}): "
            f"--seeds {max(shown) + 1} plans them all")


def _cluster(registry, args) -> dict | None:
    """The table command's options checked together; the SLURM cluster file when there is one."""
    if args.estimate and not args.dry_run:
        raise UsageError("--estimate goes with --dry-run (it times the plan's models, then submits nothing)")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UsageError(f"--max-parallel={args.max_parallel}: use 1 or more (or leave it out: one job per core or GPU)")
    if args.executor != "slurm":
        if args.cluster is not None:
            raise UsageError("--cluster only applies to --executor slurm")
        return None
    if args.cluster is None:
        raise UsageError("--executor slurm needs --cluster FILE (e.g. experiments/registry/clusters/local.yaml)")
    cluster = registry.cluster(args.cluster)
    if shutil.which("sbatch") is None and not args.dry_run:
        raise UsageError("--executor slurm: sbatch is not on PATH (start scripts/slurm-local/start.sh or use local)")
    return cluster


def print_plan(registry, args, plan: Plan) -> None:
    """``--dry-run``: each run, whether it is reused, (re)done or busy elsewhere and why, and how long the
    rest takes here."""
    starts = head_starts(plan, args.results, args.work)
    todo, busy = plan.todo, plan.busy
    with_set = f", {describe(args.overrides)}" if args.overrides else ""
    print(f"plan for {args.target} (profile {args.profile}, {_seed_words(registry, args)}{with_set}): {len(plan.runs)} runs, "
          f"{len(plan.runs) - len(todo) - len(busy)} reused, {len(todo)} to run"
          + (f", {len(busy)} running elsewhere" if busy else ""))
    for run in plan.runs:
        status = plan.status[run.run_id]
        mark = "busy" if status.busy else "run " if run in todo else "done"
        d, t = run.config.data, run.config.train
        images = t.epochs * (d.n_train // t.batch_size) * t.batch_size
        print(f"  [{mark}] {run.run_id} seed {run.seed} {','.join(run.variants):28s} "
              f"{run.config.model.arch}, {t.epochs} epochs ~{images} training images, "
              f"evaluated on {', '.join(f'{d}/{s}' for d, s in run.evaluations)}")
        why = (f"running elsewhere ({runlock.describe(status.holder)})" if status.busy
               else "; ".join([*plan.reasons(run), *([starts[run.run_id][1]] if run.run_id in starts else [])]))
        if why:
            print(f"         {why}")
    start = {run_id: epoch for run_id, (epoch, _) in starts.items()}
    if args.estimate:
        print("\n".join(estimate_lines(plan, start, args.max_parallel)))
    elif plan.to_train:
        print(past_pace_line(plan, start, args.executor, args.max_parallel, args.results))


def submit(registry, args, plan: Plan, cluster: dict | None) -> int:
    """Trains, evaluates and measures what the plan lacks, then writes the reports and their verdicts."""
    for run in plan.busy:
        print(f"running elsewhere: {run.run_id} ({runlock.describe(plan.status[run.run_id].holder)}); not "
              "submitted again, rerun when it has finished", file=sys.stderr)
    for run in plan.todo:
        if not plan.force and plan.status[run.run_id].redo:
            print(f"redo {run.run_id}: {'; '.join(plan.reasons(run))}", file=sys.stderr)
    if plan.force:
        for run in plan.todo:
            paths = store.RunPaths(args.profile, run.run_id, args.results, args.work)
            shutil.rmtree(paths.work, ignore_errors=True)
            shutil.rmtree(paths.result, ignore_errors=True)
    jobs = launch.make_jobs(plan.todo, args.results, args.work, continue_shorter=not plan.force)
    errors = launch.dispatch(jobs, args.executor, store.jobs_dir(args.jobs, args.profile),
                             cluster=cluster, max_parallel=args.max_parallel, jobs_per_gpu=args.jobs_per_gpu)
    for error in errors:
        print(f"failed: {error}", file=sys.stderr)
    tables = _table_names(registry, args.target)
    from experiments import report
    with naming_folder(args.reports, "--reports"):
        for path in report.write_reports(registry, args.profile, tables, args.results, args.reports, args.overrides):
            print(f"wrote {path}")
    print_verdicts(registry, args, tables)
    return 1 if errors else 3 if plan.busy else 0


def cmd_run(registry, args) -> int:
    """A table command: plan, then print the plan (``--dry-run``) or submit it, a failed preflight
    submitting nothing."""
    cluster = _cluster(registry, args)
    plan = make_plan(_only(registry.plan(args.target, args.profile, args.seeds, args.overrides), args.only,
                           args.target), args.results, args.work, args.force)
    todo = plan.todo
    problems = preflight.check(todo, args.executor, cluster, args.cluster,
                               {"--results": args.results, "--work": args.work, "--jobs": args.jobs,
                                "--reports": args.reports} if todo else {})
    if args.dry_run:
        print_plan(registry, args, plan)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"preflight: {len(problems)} problem(s); nothing was submitted", file=sys.stderr)
        return 2
    return 0 if args.dry_run else submit(registry, args, plan, cluster)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        registry = load_registry(args.registry) if args.registry else load_registry()
        args.overrides = parse_overrides(args.overrides)
        check_options(args, sys.argv[1:] if argv is None else argv)
        if args.profile not in registry.profiles:
            registry.resolve(next(iter(registry.variants)), args.profile)     # raises with a did-you-mean
        if args.target == "list":
            return cmd_list(registry)
        if args.target == "status":
            return cmd_status(registry, args)
        if args.target == "report":
            return cmd_report(registry, args)
        if args.table:
            raise UsageError(f"unexpected argument '{args.table}' after '{args.target}'")
        if args.target != "all":
            registry.table(args.target)
        return cmd_run(registry, args)
    except (RegistryError, ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:          # a full disk, a read-only or missing folder: the path, not a traceback
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)       # kill / scancel of the submitter: same as Ctrl-C
    with warnings.catch_warnings():
        warnings.simplefilter("always", store.CorruptResultWarning)
        try:
            sys.exit(main())
        except KeyboardInterrupt:
            print("\ninterrupted: finished runs are kept and local jobs were stopped; the same command "
                  "resumes from the last epoch's checkpoints (SLURM jobs keep running: see `status`)", file=sys.stderr)
            sys.exit(130)
        except BrokenPipeError:          # `... | head`: the reader left; not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
