"""What every planned run needs, checked before anything is submitted.

A job that fails seconds after it started buries the reason in its log; here each problem names the
path and the profile key (or cluster-file key) to set, and ``experiments.run`` exits 2 with nothing
submitted.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from experiments.registry import ResolvedRun
from trans3dhead.atomic import folder_problem
from trans3dhead.flame import io as flame_io


def _data_problems(run: ResolvedRun, key: str) -> list[str]:
    data = run.config.data
    if data.benchmark == "synthheads":
        problem = folder_problem(Path(data.root), "the SynthHeads cache folder")
        return [f"{problem} (set data.root in {key})"] if problem else []
    problems = []
    if not data.flame_dir:
        problems.append(f"data.flame_dir is empty: set it in {key} to a folder made by "
                        "python -m trans3dhead.flame.convert")
    elif not Path(data.flame_dir).is_dir():
        problems.append(f"data.flame_dir {data.flame_dir} is not a folder; set data.flame_dir in {key} to a folder "
                        "made by python -m trans3dhead.flame.convert")
    else:
        missing = [p for p in flame_io.required_files(data.flame_dir) if not p.is_file()]
        if missing:
            problems.append(f"data.flame_dir {data.flame_dir}: {missing[0]} is missing"
                            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; set data.flame_dir "
                            f"in {key} to a folder made by python -m trans3dhead.flame.convert")
    splits = {"train", "val"} | {split for dataset, split in run.evaluations if dataset == "dad3dheads"}
    for split in sorted(splits):
        split_file = Path(data.root) / split / f"{split}.json"
        if not split_file.is_file():
            problems.append(f"data.root {data.root}: {split_file} is missing; set data.root in {key} to your "
                            "DAD-3DHeadsDataset folder")
            break
    if any(dataset == "aflw2000" for dataset, _ in run.evaluations) and not Path(data.aflw_root or "").is_dir():
        problems.append(f"data.aflw_root {data.aflw_root or '(empty)'} is not a folder; set data.aflw_root in {key} "
                        "to your AFLW2000-3D folder")
    return problems


def _size_problems(run: ResolvedRun, key: str) -> list[str]:
    """Sizes that pass each field's own check but not together: a training set smaller than one batch
    trains no step (the loader drops the incomplete batch), an input the trunk's stride does not divide
    leaves a ragged memory grid."""
    data, train, model = run.config.data, run.config.train, run.config.model
    problems = []
    if data.benchmark == "synthheads" and data.n_train < train.batch_size:
        problems.append(f"data.n_train={data.n_train} is smaller than one batch (train.batch_size="
                        f"{train.batch_size}): no training step would run; raise data.n_train or lower "
                        f"train.batch_size in {key} (or with --set)")
    if model.arch != "dad3dnet" and data.image_size % model.backbone_stride:
        problems.append(f"data.image_size={data.image_size} is not a multiple of model.backbone_stride="
                        f"{model.backbone_stride}: the memory grid would be ragged; use a size divisible by "
                        f"{model.backbone_stride} (e.g. {data.image_size // model.backbone_stride * model.backbone_stride or model.backbone_stride}) in {key}")
    return problems


def _weights_problem(run: ResolvedRun, key: str) -> str | None:
    model = run.config.model
    if not model.pretrained:
        return None
    import torch
    import torchvision
    try:
        url = torchvision.models.get_model_weights(model.backbone).DEFAULT.url
    except (ValueError, KeyError, AttributeError):
        return f"model.backbone {model.backbone}: torchvision has no ImageNet weights for it ({key})"
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    name = url.rsplit("/", 1)[-1]
    if (folder / name).is_file():
        return None
    return (f"model.pretrained: the ImageNet weights {name} are not in {folder} (machines here are offline); "
            f"copy the file there or set model.pretrained: false in {key}")


def _device_problem(run: ResolvedRun, key: str, executor: str, cluster: dict | None) -> str | None:
    if run.config.train.device != "cuda":
        return None
    if executor == "slurm":
        if not (cluster or {}).get("gpus_per_node"):
            return f"train.device is cuda ({key}) but the cluster file asks for no GPU: set gpus_per_node"
        return None
    import torch
    if not torch.cuda.is_available():
        return f"train.device is cuda ({key}) but no CUDA device is visible here; set train.device: auto or cpu"
    return None


def partition_problem(cluster: dict, cluster_file: Path) -> str | None:
    """The cluster file's partition must exist (asked of ``sinfo`` when it is on PATH)."""
    partition = cluster.get("partition")
    if not partition or shutil.which("sinfo") is None:
        return None
    try:
        listed = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = set(listed.stdout.split())
    if listed.returncode == 0 and names and partition not in names:
        return (f"partition '{partition}' (cluster file {cluster_file}, key partition) does not exist; "
                f"sinfo lists {', '.join(sorted(names))}")
    return None


def check(runs: list[ResolvedRun], executor: str, cluster: dict | None = None,
          cluster_file: Path | None = None, folders: dict[str, Path] | None = None) -> list[str]:
    """Every problem that would make a planned run fail before it trains, once each."""
    problems: list[str] = []
    for what, path in (folders or {}).items():
        problem = folder_problem(path, what)
        if problem:
            problems.append(problem)
    for run in runs:
        key = f"profile '{run.profile}' in experiments/registry/profiles.yaml"
        found = _data_problems(run, key) + _size_problems(run, key) + [_weights_problem(run, key), _device_problem(run, key, executor, cluster)]
        problems += [p for p in found if p and p not in problems]
    if cluster is not None:
        problem = partition_problem(cluster, cluster_file)
        if problem:
            problems.append(problem)
    return problems
