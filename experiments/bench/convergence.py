"""How long must a profile train to converge? Trains variants over a grid of overrides side by side and
prints, for each, the final validation NME, the change over the last 20% of training and the wall time; with
``--seeds`` > 1 also each variant's change on its seed-mean curve, the reading the reports' "converged" column
decides by. It is how the ``cpu`` profile's budget was chosen.

    python -m experiments.bench convergence --variants trans3dhead,dad3dnet \\
        --set train.epochs=8,16,32 --set model.nheads=1,4 --parallel 2 --out curves.csv

Runs go to a temporary folder and never touch ``results/``; ``--out`` keeps every validation curve.
``--continue`` starts each run from the longest finished shorter run of the same config in ``results/`` and
``work/`` (``experiments.dispatch.continuation``), so measuring a longer step schedule costs only the added epochs:

    python -m experiments.bench convergence --profile converged --variants dad3dnet --seeds 2 \
        --set train.epochs=96,128 --continue
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from experiments.dispatch import continuation
from experiments.overrides import parse_sweep
from experiments.registry import RegistryError, load_registry
from experiments.report.convergence import change_within, row_window_change, window_change
from trans3dhead.config import RunConfig
from trans3dhead.cli import summary


def _sweep_axis(spec: str) -> tuple[str, list]:
    """argparse type: the shared override parser, its message shown as argparse's (exit 2)."""
    try:
        return parse_sweep(spec)
    except RegistryError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _train_one(task: tuple) -> dict:
    label, config, workdir, threads, prefix = task
    import torch

    from trans3dhead.engine import train

    if prefix:
        continuation.start_from(prefix, Path(workdir))
    torch.set_num_threads(threads)
    started = time.time()
    summary = train(RunConfig.from_dict(config), workdir, show_progress=False)
    curve = pd.read_csv(Path(workdir) / "curve.csv")
    change = window_change(curve)
    return {**label, "steps": summary["steps"], "final_val_nme": summary["final_val_nme"],
            "best_val_nme": summary["best_val_nme"], "converged": change_within(change),
            "last_20pct_change": change, "train_wall_s": round(summary["wall_s"], 1),
            "wall_s": round(time.time() - started, 1), "device": summary["device"],
            "curve": curve.assign(**label)}


def _row_table(rows: list[dict], keys: list[str]) -> pd.DataFrame:
    """Per variant and grid point, the reports' row-level test: the change of the seeds' mean curve."""
    groups: dict[tuple, list[pd.DataFrame]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row["curve"])
    table = []
    for key, curves in groups.items():
        change = row_window_change(curves)
        table.append({**dict(zip(keys, key)), "seeds": len(curves), "row_converged": change_within(change),
                      "row_last_20pct_change": change})
    return pd.DataFrame(table).sort_values(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench convergence", description=summary(__doc__))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--variants", default="trans3dhead,dad3dnet", help="comma-separated registry variants")
    parser.add_argument("--set", dest="overrides", type=_sweep_axis, action="append", default=[],
                        help="SECTION.KEY=V1,V2,...: a grid axis (repeatable)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (they share the device)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (default: cores / parallel)")
    parser.add_argument("--out", type=Path, help="CSV of every run's validation curve")
    parser.add_argument("--continue", dest="continue_runs", action="store_true",
                        help="start each run from the longest finished shorter run of its config in --results/--work")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--work", type=Path, default=Path("work"))
    args = parser.parse_args(argv)

    registry = load_registry()
    axes = [key for key, _ in args.overrides]
    tasks = []
    workroot = Path(tempfile.mkdtemp(prefix="t3h-convergence-"))
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    prefixes = continuation.Prefixes(args.results, args.work) if args.continue_runs else None    # the store, read once
    for variant in args.variants.split(","):
        for combination in itertools.product(*(v for _, v in args.overrides)):
            for seed in range(args.seeds):
                try:        # a type or cross-field error shows once the override meets a variant
                    config = registry.resolve(variant, args.profile, seed, combination).config.to_dict()
                except RegistryError as err:
                    parser.error(str(err))
                prefix = prefixes.longest_for(config) if prefixes else None
                label = {"variant": variant, "seed": seed, **{a: o.value for a, o in zip(axes, combination)},
                         **({"from_epoch": prefix.epochs if prefix else 0} if args.continue_runs else {})}
                name = "-".join(str(v) for v in label.values()).replace("/", "_")
                tasks.append((label, config, str(workroot / name), threads, prefix))
    if not tasks:
        parser.error("nothing to run")

    from trans3dhead.data import ensure_synthheads     # generate once, before the workers race for it
    for data in {yaml.safe_dump(t[1]["data"]) for t in tasks}:
        ensure_synthheads(RunConfig.from_dict({"data": yaml.safe_load(data)}).data)

    print(f"{len(tasks)} runs, {args.parallel} at a time, {threads} thread(s) each; work in {workroot}", flush=True)
    rows = []
    # SIGTERM (kill, a scheduler's time limit) must unwind to the finally below, or the workers live on.
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pool = multiprocessing.get_context("spawn").Pool(args.parallel) if args.parallel > 1 else None
    try:
        for row in (pool.imap_unordered(_train_one, tasks) if pool else map(_train_one, tasks)):
            rows.append(row)
            print("done: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in row.items() if k != "curve"), flush=True)
            if args.out:      # after every run, so an interrupted sweep keeps what it finished
                pd.concat([r["curve"] for r in rows]).to_csv(args.out, index=False)
    finally:
        if pool:
            pool.terminate()
        signal.signal(signal.SIGTERM, previous_handler)

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    table = table.sort_values(["variant", *axes, "seed"])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        if args.seeds > 1:        # the reports' test reads a row's seed-mean curve, not each seed's
            print(_row_table(rows, ["variant", *axes]).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if args.out:
        print(f"curves written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
