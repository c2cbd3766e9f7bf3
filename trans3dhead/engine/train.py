"""Training loop: resumable from an atomic per-epoch checkpoint, bit-exact on CPU.

Everything random is a function of (seed, epoch): the shuffle generator is re-seeded per epoch, the
crop jitter is a function of (seed, epoch, index), and the global RNG states (dropout) are checkpointed.
A step never waits for the device: losses and non-finite flags are read every ``train.sync_every``
steps (``steplog.py``).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from trans3dhead.atomic import atomic_write_text
from trans3dhead.config import RunConfig
from trans3dhead.data import build_dataset, flame_dir_for, mean_landmarks
from trans3dhead.engine.batches import autocast, eval_loader, landmark_nme, to_device
from trans3dhead.engine.board import EpochBoard
from trans3dhead.engine.checkpoint import atomic_save, load_checkpoint, restore_rng_state, rng_state
from trans3dhead.engine.loading import loader_options, train_loader
from trans3dhead.engine.pretrain import ensure_trunk, load_trunk
from trans3dhead.engine.runtime import seed_everything, select_device, use_bf16
from trans3dhead.engine.schedule import build_optimizer, build_scheduler, restore_scheduler
from trans3dhead.engine.steplog import NoClock, NonFiniteLossError, PhaseClock, StepLog, nan_injection_step
from trans3dhead.flame.topology import load_topology
from trans3dhead.losses import build_loss
from trans3dhead.models import build_model

CHECKPOINT = "checkpoint.pt"
CURVE = "curve.csv"

__all__ = ["CHECKPOINT", "CURVE", "NonFiniteLossError", "train", "validation_nme"]


def _write_curve(rows: list[dict], path: Path) -> None:
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))


def pretrained_trunk(cfg: RunConfig, device: torch.device) -> dict | None:
    """Where the run's trunk comes from (``model.trunk_init``), pretraining it first if it is not cached:
    ``{"init", "path", "rotation_accuracy", "pretrain_wall_s"}``, or None for a random trunk."""
    if cfg.model.trunk_init == "random":
        return None
    path = ensure_trunk(cfg.model, cfg.data, device=str(device))
    cached = load_trunk(path)
    return {"init": cfg.model.trunk_init, "path": str(path), "rotation_accuracy": round(cached["accuracy"], 4),
            "pretrain_wall_s": cached["wall_s"]}


@torch.no_grad()
def validation_nme(model: torch.nn.Module, loader: DataLoader, device: torch.device, bf16: bool,
                   image_size: int) -> float:
    """Mean landmark NME (official normalisation, x100) of ``model`` over ``loader``: one validation-curve
    point (only-3DMM: of its projected FLAME landmarks). Evaluates in eval mode, then sets train mode again."""
    model.eval()
    values = []
    for batch in loader:
        with autocast(device, bf16):
            out = model(batch["image"].to(device, non_blocking=True))
        values.append(landmark_nme(out["landmarks_2d"], batch, image_size))
    model.train()
    return float(torch.cat(values).mean())        # the validation's one host synchronisation


def train(cfg: RunConfig, workdir: str | Path, *, stop_after_epochs: int | None = None,
          progress: Callable[[dict], None] | None = None, show_progress: bool = True,
          clock: PhaseClock | None = None) -> dict:
    """Trains (or resumes) the run in ``workdir``; returns a summary dict.

    ``stop_after_epochs`` ends this call early (as an interruption would); calling again resumes.
    ``clock`` is told where each step's time goes (``experiments.bench train``).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tc = cfg.train
    device = select_device(tc.device)
    bf16 = use_bf16(tc.amp, device)
    seed_everything(tc.seed)
    clock = clock or NoClock()
    channels_last = tc.channels_last and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True      # fixed input sizes: pick the fastest kernels once

    train_set = build_dataset(cfg.data, "dad3dheads", "train", train=True, seed=tc.seed)
    val_set = build_dataset(cfg.data, "dad3dheads", "val", train=False, seed=tc.seed)
    if 0 < tc.curve_items < len(val_set):      # the curve on a fixed prefix: the same images every epoch
        val_set = Subset(val_set, range(tc.curve_items))
    val_loader = eval_loader(val_set, tc.batch_size)
    flame_dir = flame_dir_for(cfg.data)
    ckpt_path = workdir / CHECKPOINT
    resume = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    mean_face = resume["mean_face"] if resume else torch.tensor(mean_landmarks(train_set), dtype=torch.float32)

    trunk = resume.get("trunk") if resume else pretrained_trunk(cfg, device)
    model = build_model(cfg.model, flame_dir, mean_face,
                        trunk_state=None if resume or trunk is None else load_trunk(trunk["path"])["state_dict"]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if tc.compile else model
    loss_fn = build_loss(cfg.loss, cfg.model, load_topology(flame_dir)).to(device)
    model.flame.decode_only(loss_fn.vertices_read())     # a step decodes only the vertices its loss reads
    optimizer = build_optimizer(model, tc)
    steps_per_epoch = len(train_set) // tc.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"train.batch_size={tc.batch_size} exceeds the {len(train_set)} training images")
    total_steps = steps_per_epoch * tc.epochs
    scheduler = build_scheduler(optimizer, steps_per_epoch, tc)

    start_epoch, curve, best, wall_before = 0, [], math.inf, 0.0
    if resume:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        restore_scheduler(scheduler, resume["scheduler"])
        restore_rng_state(resume["rng"])
        start_epoch, curve, best, wall_before = resume["epoch"], resume["curve"], resume["best_val_nme"], resume["wall_s"]

    loader = train_loader(train_set, tc.batch_size, loader_options(cfg.data.num_workers, device))
    log, nan_step = StepLog(device, steps_per_epoch), nan_injection_step(workdir.name)
    board = EpochBoard(workdir)
    model.train()
    started = time.time()
    images_seen = 0
    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, desc=workdir.name, disable=not show_progress,
               leave=False)
    epochs_this_call = 0
    for epoch in range(start_epoch, tc.epochs):
        train_set.set_epoch(epoch)
        loader.sampler.set_epoch(epoch, shuffle_seed=tc.seed * 100_003 + epoch)
        clock.lap("epoch_start")
        for i, batch in enumerate(loader):
            clock.lap("data")
            step = epoch * steps_per_epoch + i
            batch = to_device(batch, device)
            images = batch["image"].contiguous(memory_format=torch.channels_last) if channels_last else batch["image"]
            clock.lap("h2d")
            with autocast(device, bf16):
                out = forward(images)
            clock.lap("forward")
            terms = loss_fn(out, batch)
            if step == nan_step:
                terms["injected"] = torch.tensor(float("nan"), device=device)
                terms["total"] = terms["total"] + terms["injected"]
            clock.lap("loss")
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            clock.lap("backward")
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            scheduler.step()
            clock.lap("optimizer")
            log.record(i, step, terms)
            images_seen += tc.batch_size
            bar.update(1)
            if (i + 1) % tc.sync_every == 0 and i + 1 < steps_per_epoch:
                bar.set_postfix(epoch=epoch, loss=f"{log.read(i, step, epoch, False, str(ckpt_path))['loss']:.3f}")
            clock.lap("other")
            clock.end_step(step)
        read = log.read(steps_per_epoch - 1, (epoch + 1) * steps_per_epoch - 1, epoch, True, str(ckpt_path))
        bar.set_postfix(epoch=epoch, loss=f"{read['loss']:.3f}")
        wall = wall_before + time.time() - started
        row = {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch, "train_loss": read["epoch_loss"],
               "lr": optimizer.param_groups[0]["lr"], "wall_s": round(wall, 2), "val_nme": float("nan")}
        if (epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs:
            row["val_nme"] = validation_nme(model, val_loader, device, bf16, cfg.data.image_size)
            best = min(best, row["val_nme"])
        curve.append(row)
        atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "rng": rng_state(), "epoch": epoch + 1,
                     "curve": curve, "best_val_nme": best, "wall_s": wall, "config": cfg.to_dict(),
                     "mean_face": mean_face, "device": str(device), "bf16": bf16, "trunk": trunk}, ckpt_path)
        _write_curve(curve, workdir / CURVE)
        board.write(row, terms, images_seen / max(time.time() - started, 1e-9))
        if progress:
            progress(row)
        epochs_this_call += 1
        clock.lap("epoch_end")
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs and epoch + 1 < tc.epochs:
            break
    bar.close()
    board.close()
    elapsed = time.time() - started
    final = load_checkpoint(ckpt_path)
    # Device and precision are the training's (from the checkpoint), not this call's: a finished run
    # resumed on another machine only to be evaluated must not be reported as trained there.
    return {"epochs": final["epoch"], "steps": final["epoch"] * steps_per_epoch, "wall_s": final["wall_s"],
            "epochs_trained": epochs_this_call, "device": final.get("device", str(device)),
            "amp": "bf16" if final.get("bf16", bf16) else "fp32", "best_val_nme": final["best_val_nme"],
            "final_val_nme": final["curve"][-1]["val_nme"], "checkpoint": str(ckpt_path),
            "train_images_per_s": images_seen / elapsed if elapsed > 0 else float("nan"),
            "finished": final["epoch"] >= tc.epochs, "trunk": final.get("trunk")}
