"""A pretrained trunk for the embedded benchmark, standing in for the paper's ImageNet initialisation.

The paper starts ResNet-50 from ImageNet weights (section 4.1.1); they cannot be downloaded here, and a
random trunk is both a deviation and the slowest possible start. ``ensure_trunk`` pretrains the trunk
once per (trunk, input size, SynthHeads generator) on SynthHeads images that no benchmark split
contains (another generator seed) and on a task that is not one of the benchmark's outputs: which of
four rotations (0, 90, 180, 270 degrees) was applied to the crop (Gidaris et al., 2018, "RotNet").
The result is cached under ``data.root/trunks/`` like the data: keyed by its config, written atomically
under a lock (concurrent jobs pretrain it once), regenerated when missing, and shared by every run.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from trans3dhead.config import TRUNK_INITS, DataConfig, ModelConfig
from trans3dhead.engine.checkpoint import atomic_save, load_checkpoint
from trans3dhead.models.backbone import trunk_body

# The pretraining set: another generator seed (so no image of any benchmark split), train split only.
PRETRAIN_SEED_OFFSET = 1_000_003
PRETRAIN = {"images": 2000, "steps": 1500, "batch_size": 64, "lr": 1e-3, "version": 1}


def trunk_params(model_cfg: ModelConfig, data_cfg: DataConfig) -> dict:
    """Everything the pretrained weights depend on (the cache key)."""
    return {"task": model_cfg.trunk_init, "backbone": model_cfg.backbone, "stride": trunk_stride(model_cfg),
            "image_size": data_cfg.image_size, "render_size": data_cfg.render_size,
            "synth_seed": data_cfg.synth_seed + PRETRAIN_SEED_OFFSET, **PRETRAIN}


def trunk_stride(model_cfg: ModelConfig) -> int:
    """DAD-3DNet uses the whole ResNet whatever ``backbone_stride`` says; Trans3DHead cuts it there."""
    return 32 if model_cfg.arch == "dad3dnet" else model_cfg.backbone_stride


def trunk_path(model_cfg: ModelConfig, data_cfg: DataConfig) -> Path:
    """Where the pretrained trunk is cached: ``data.root/trunks/<backbone>-s<stride>-<hash>.pt``, the hash over
    :func:`trunk_params`, so a change to anything the weights depend on gets a new file."""
    params = trunk_params(model_cfg, data_cfg)
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return Path(data_cfg.root) / "trunks" / f"{model_cfg.backbone}-s{trunk_stride(model_cfg)}-{digest}.pt"


def pretraining_data(data_cfg: DataConfig) -> DataConfig:
    """The SynthHeads set the trunk learns from: disjoint from every benchmark split by its seed."""
    return dataclasses.replace(data_cfg, synth_seed=data_cfg.synth_seed + PRETRAIN_SEED_OFFSET,
                               n_train=PRETRAIN["images"], n_val=1, n_test=1, n_aflw=1)


class RotationTask(nn.Module):
    """Trunk + global pooling + a 4-way linear classifier of the crop's rotation."""

    def __init__(self, body: nn.Module, channels: int):
        super().__init__()
        self.body, self.classifier = body, nn.Linear(channels, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(images).mean(dim=(2, 3)))


def rotated_batch(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image turned by a random multiple of 90 degrees, and that multiple as the label."""
    labels = torch.randint(0, 4, (images.shape[0],), generator=generator)
    turned = torch.stack([torch.rot90(image, int(k), dims=(1, 2)) for image, k in zip(images, labels)])
    return turned, labels


def pretrain_trunk(model_cfg: ModelConfig, data_cfg: DataConfig, *, steps: int = PRETRAIN["steps"],
                   device: str = "cpu", seed: int = 0) -> dict:
    """Trains the trunk on the rotation task; returns ``{"state_dict", "params", "accuracy", "wall_s"}``."""
    from trans3dhead.data import build_dataset      # data imports models' siblings; keep the import local

    torch.manual_seed(seed)
    body, channels = trunk_body(model_cfg.backbone, trunk_stride(model_cfg), pretrained=False)
    task = RotationTask(body, channels).to(device)
    dataset = build_dataset(pretraining_data(data_cfg), "dad3dheads", "train", train=True, seed=seed)
    loader = DataLoader(dataset, batch_size=PRETRAIN["batch_size"], shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed), num_workers=0)
    optimizer = torch.optim.Adam(task.parameters(), lr=PRETRAIN["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    labels_rng = torch.Generator().manual_seed(seed + 1)
    started, step, correct, seen = time.time(), 0, 0, 0
    epoch = 0
    while step < steps:
        dataset.set_epoch(epoch)
        for batch in loader:
            images, labels = rotated_batch(batch["image"], labels_rng)
            logits = task(images.to(device))
            loss = F.cross_entropy(logits, labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step >= steps - 100:          # accuracy over the last 100 steps: what the trunk learnt
                correct += int((logits.argmax(1).cpu() == labels).sum())
                seen += len(labels)
            step += 1
            if step >= steps:
                break
        epoch += 1
    return {"state_dict": {k: v.cpu() for k, v in task.body.state_dict().items()},
            "params": trunk_params(model_cfg, data_cfg), "accuracy": correct / max(seen, 1),
            "wall_s": round(time.time() - started, 1)}


def ensure_trunk(model_cfg: ModelConfig, data_cfg: DataConfig, device: str = "cpu") -> Path:
    """The cached pretrained trunk for this config, pretrained first if missing (once, under a lock)."""
    if model_cfg.trunk_init not in TRUNK_INITS[1:]:
        raise ValueError(f"model.trunk_init={model_cfg.trunk_init!r} has no pretraining; use one of {list(TRUNK_INITS)}")
    path = trunk_path(model_cfg, data_cfg)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            atomic_save(pretrain_trunk(model_cfg, data_cfg, device=device), path)
    return path


def load_trunk(path: Path) -> dict:
    """``{"state_dict", "params", "accuracy", "wall_s"}`` of a cached trunk (names the file if unreadable)."""
    return load_checkpoint(path)
