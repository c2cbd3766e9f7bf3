"""The plan of a table command: each run's state (``store.assess``, its lock read here), the runs a job
must (re)do, those a live job elsewhere holds, where each training starts, and how long it takes here.
``experiments.run`` prints it (``--dry-run``, ``status``) or submits it; neither decides a run's state
itself."""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from experiments import store
from experiments.dispatch import continuation, estimate, runlock
from experiments.registry import ResolvedRun


@dataclass(frozen=True)
class Plan:
    """The runs of a command and the state of each (by run id); ``force`` (``--force``) retrains every
    run that no live job holds, from its first step."""
    runs: list[ResolvedRun]
    status: dict[str, store.RunStatus]
    force: bool = False

    @property
    def busy(self) -> list[ResolvedRun]:
        """Runs a live job holds (another submitter's, or the jobs of a killed one): neither submitted
        nor deleted here."""
        return [run for run in self.runs if self.status[run.run_id].busy]

    @property
    def todo(self) -> list[ResolvedRun]:
        """Runs a job must train, evaluate or measure."""
        return [run for run in self.runs
                if not self.status[run.run_id].busy and (self.force or self.status[run.run_id].todo)]

    @property
    def to_train(self) -> list[ResolvedRun]:
        """The runs of :attr:`todo` that train or evaluate (one lacking only its efficiency measurement
        trains nothing, so the time estimates leave it out)."""
        return [run for run in self.todo if self.force or self.status[run.run_id].train]

    def reasons(self, run: ResolvedRun) -> tuple[str, ...]:
        """Why ``run`` is (re)done, in the planner's words (a missing run's state says it all)."""
        return ("--force",) if self.force else self.status[run.run_id].reasons


def make_plan(runs: list[ResolvedRun], results_root: Path, work_root: Path, force: bool = False) -> Plan:
    status = {}
    for run in runs:
        paths = store.RunPaths(run.profile, run.run_id, Path(results_root), Path(work_root))
        status[run.run_id] = store.assess(paths, run.evaluations, run.measure_efficiency, runlock.holder(paths.work))
    return Plan(runs, status, force)


def head_starts(plan: Plan, results_root: Path, work_root: Path) -> dict[str, tuple[int, str]]:
    """Where each run still to train starts: the epoch of its own checkpoint, else (without --force) of the
    finished shorter run it continues (``continuation``); {run id: (epoch, words)}."""
    starts: dict[str, tuple[int, str]] = {}
    prefixes = continuation.Prefixes(results_root, work_root) if plan.to_train and not plan.force else None
    for run in plan.to_train:
        work = store.RunPaths(run.profile, run.run_id, Path(results_root), Path(work_root)).work
        if not plan.force and (own := continuation.epochs_done(work)):
            starts[run.run_id] = own, f"resumes at epoch {own}"
        elif prefixes and (prefix := prefixes.longest_for(run.config.to_dict())):
            starts[run.run_id] = prefix.epochs, f"continues {prefix.profile}/{prefix.run_id} from epoch {prefix.epochs}"
    return starts


def _slots(max_parallel: int | None) -> tuple[int, int]:
    import torch

    from experiments.dispatch.launch import local_slots

    return local_slots(max_parallel, torch.cuda.device_count())


def estimate_lines(plan: Plan, start: dict[str, int], max_parallel: int | None) -> list[str]:
    """``--estimate``: each model size timed here, and what retraining the plan and its rest would take."""
    from trans3dhead.engine.pretrain import trunk_path

    slots, threads = _slots(max_parallel)
    todo = plan.to_train
    everything, per_class = estimate.estimate(plan.runs, slots, threads)
    still, _ = estimate.estimate(todo, slots, threads, start) if todo else (0.0, {})
    rates = ", ".join(f"{key[0]} {1000 * sec:.0f} ms/step" for key, sec in per_class.items())
    lines = [f"estimate on this machine ({slots} job(s) at once, {threads} thread(s) each; measured {rates}): "
             f"retraining all {len(plan.runs)} runs takes about {estimate.describe(everything)}, the {len(todo)} still "
             f"to run about {estimate.describe(still)} (training steps only: data loading, validation and "
             "evaluation come on top)"]
    uncached = sorted({str(path) for r in todo if r.config.model.trunk_init != "random"
                       and not (path := trunk_path(r.config.model, r.config.data)).is_file()})
    if uncached:
        lines.append(f"  plus pretraining {len(uncached)} trunk(s) not cached here, once each before their first run: "
                     + ", ".join(uncached))
    return lines


def past_pace_line(plan: Plan, start: dict[str, int], executor: str, max_parallel: int | None,
                   results_root: Path) -> str:
    """How long the runs still to train take at the pace of the finished runs this host trained."""
    host, todo = platform.node(), plan.to_train
    slots = 1 if executor == "debug" else _slots(max_parallel)[0]
    past = estimate.from_history(todo, Path(results_root), host, slots, start) if executor != "slurm" else None
    if past is None:
        return "how long that takes on this machine: add --estimate (it times each model's training step here)"
    seconds, basis = past
    return (f"how long: about {estimate.describe(seconds)} for the {len(todo)} run(s) still to run, {slots} at once, "
            f"at the pace of the {basis} finished run(s) of the same models this host ({host}) trained "
            "(their stored wall time, loading and validation included); --estimate times the models afresh")
