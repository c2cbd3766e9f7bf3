"""How close does training run to the hardware's speed? Times the real training loop per phase (waiting
for data, host-to-device copy, forward, loss, backward, optimiser, other) through its timing hook and,
interleaved step by step with it, the same model's pure forward+backward+step on one resident batch;
then the loader alone. The ratio is the median over repeats of each run's paired ratio.

    python -m experiments.bench train --profile cpu --variant trans3dhead [--device D] [--steps N]
        [--set train.sync_every=50 --set data.num_workers=2] [--threads T] [--repeats R]

The first epoch (cache fill, first allocations) is trained but not measured; runs go to a temporary
folder. The last line is ``train/fwd-bwd: R (train X img/s, fwd+bwd Y img/s, DEVICE, AMP)``.
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import torch

from experiments.overrides import parse_overrides
from experiments.bench.phases import (STEP_PHASES, PhaseTimer, ResidentStep, jpeg_loader_images_per_s,
                                     loader_images_per_s, matmul_gflop_per_s, step_gflop)
from experiments.registry import RegistryError, deep_merge, load_registry
from trans3dhead.config import RunConfig
from trans3dhead.data import ensure_synthheads
from trans3dhead.engine import train
from trans3dhead.engine.loading import loader_options
from trans3dhead.engine.runtime import select_device, use_bf16
from trans3dhead.cli import summary


def resolve_config(profile: str, variant: str, device: str, overrides: list[str]) -> RunConfig:
    """The registry's run config with the command line's ``--set`` overrides and the device."""
    config = load_registry().resolve(variant, profile, overrides=parse_overrides(overrides)).config
    return RunConfig.from_dict(deep_merge(config.to_dict(), {"train": {"device": device}}))


def time_training(cfg: RunConfig, steps: int, sync_phases: bool, bf16: bool) -> PhaseTimer:
    """The real loop's phases after its first epoch, each measured step followed by one pure
    forward+backward+step of the same model on a resident batch: interleaved step by step, the two
    see the same machine load (on a shared machine, load swings dwarf the difference between them)."""
    steps_per_epoch = cfg.data.n_train // cfg.train.batch_size
    epochs = 1 + math.ceil(steps / steps_per_epoch)
    cfg = RunConfig.from_dict(deep_merge(cfg.to_dict(), {"train": {"epochs": max(epochs, cfg.train.epochs)}}))
    device = select_device(cfg.train.device)
    timer = PhaseTimer(device, first_step=steps_per_epoch, sync=sync_phases,
                       between_steps=ResidentStep(cfg, device, bf16))
    with tempfile.TemporaryDirectory(prefix="t3h-bench-train-") as workdir:
        train(cfg, Path(workdir), stop_after_epochs=epochs, show_progress=False, clock=timer)
    timer.steps, timer.between = timer.steps[:steps], timer.between[:steps]
    return timer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench train", description=summary(__doc__))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--variant", default="trans3dhead")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=50, help="measured steps per repeat (after one warm-up epoch)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="SECTION.KEY=VALUE (repeatable; as for experiments.run)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="training runs (each interleaved with fwd+bwd steps); medians")
    parser.add_argument("--workers", type=int, nargs="*", default=[0], help="loader workers for the data-only figure")
    parser.add_argument("--jpeg-canvas", type=int, default=1024,
                        help="side of the SynthHeads JPEG canvases for the photograph loader figure (0: skip)")
    parser.add_argument("--sync-phases", action="store_true", help="GPU: wait for the device at each phase")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = resolve_config(args.profile, args.variant, args.device, args.overrides)
    except RegistryError as err:
        parser.error(str(err))
    if cfg.data.benchmark == "synthheads":
        ensure_synthheads(cfg.data)
    device = select_device(cfg.train.device)
    bf16 = use_bf16(cfg.train.amp, device)
    amp = "bf16" if bf16 else "fp32"
    batch = cfg.train.batch_size
    print(f"{args.variant} / {args.profile}: {device}, {amp}, batch {batch}, {torch.get_num_threads()} thread(s), "
          f"workers {loader_options(cfg.data.num_workers, device)['num_workers']}, sync every "
          f"{cfg.train.sync_every}, {args.steps} steps x {args.repeats}", flush=True)

    phase_runs, overheads, fwd_bwd = [], [], []
    for repeat in range(args.repeats):
        timer = time_training(cfg, args.steps, args.sync_phases, bf16)
        phase_runs.append(timer.seconds_per_step())
        overheads.append(dict(timer.overhead))
        fwd_bwd.append(len(timer.between) * batch / sum(timer.between))
        print(f"  repeat {repeat}: train {batch / phase_runs[-1]['step']:.1f} img/s, fwd+bwd {fwd_bwd[-1]:.1f} img/s, "
              f"ratio {batch / phase_runs[-1]['step'] / fwd_bwd[-1]:.3f}", flush=True)
    ratios = [batch / r["step"] / f for f, r in zip(fwd_bwd, phase_runs)]

    median = {p: statistics.median(r[p] for r in phase_runs) for p in (*STEP_PHASES, "step")}
    print("per step (median of repeats), ms:")
    for phase in (*STEP_PHASES, "step"):
        print(f"  {phase:10s} {1e3 * median[phase]:9.2f}  {100 * median[phase] / median['step']:5.1f}%")
    measured_epochs = math.ceil(args.steps / (cfg.data.n_train // batch))
    epoch_end = statistics.median(o.get("epoch_end", 0.0) for o in overheads) / measured_epochs
    setup = statistics.median(o.get("setup", 0.0) for o in overheads)
    print(f"  per epoch outside the steps (validation, checkpoint): {epoch_end:.2f} s; setup before the first "
          f"step (data sets, mean face, model): {setup:.2f} s")
    for workers in args.workers:
        rates = loader_images_per_s(cfg, workers, device)
        print(f"data only, {workers} worker(s): first epoch {rates[0]:.0f} img/s, then {rates[-1]:.0f} img/s")
        if args.jpeg_canvas:
            jpeg = jpeg_loader_images_per_s(args.jpeg_canvas, cfg.data.image_size, batch, workers)
            print(f"data only, {workers} worker(s), {args.jpeg_canvas}px JPEG photographs (no cache): "
                  f"draft decode {jpeg['draft']:.0f} img/s, full decode {jpeg['full']:.0f} img/s")
    train_rate = batch / median["step"]
    fwd_rate = statistics.median(fwd_bwd)
    print(f"train/fwd-bwd: {statistics.median(ratios):.2f} (train {train_rate:.1f} img/s, fwd+bwd {fwd_rate:.1f} img/s, "
          f"{device}, {amp})")
    rates = print_rates(cfg, device, bf16, median["step"]) if device.type == "cpu" else None
    steps_per_epoch = cfg.data.n_train // batch
    total_steps = steps_per_epoch * cfg.train.epochs
    # every epoch ends with a checkpoint write and (train.eval_every 1, the CPU profiles) one validation
    end_s = epoch_end * cfg.train.epochs
    if rates:
        # the least a run of these FLOPs can cost here: every step at the core's large-matmul rate, which
        # convolutions at 48 px and attention at head dim 32 do not reach
        gflop, bf16_rate = rates
        print(f"run floor: {total_steps * gflop / bf16_rate + end_s:.0f} s on the same core(s) if every step ran at "
              f"its bf16 matmul rate ({total_steps} steps x {gflop:.2f} GFLOP / {bf16_rate:.0f} GFLOP/s + "
              f"{end_s:.0f} s validation)")
    print(f"run cost: {total_steps * median['step'] + end_s:.0f} s on {torch.get_num_threads()} core"
          f"{'s' if torch.get_num_threads() > 1 else ''} ({total_steps} steps x {1e3 * median['step']:.0f} ms + "
          f"{end_s:.0f} s validation) for {args.profile}/{args.variant}")
    return 0


def print_rates(cfg: RunConfig, device: torch.device, bf16: bool, step_s: float) -> tuple[float, float]:
    """The step's GFLOP and achieved GFLOP/s beside this core's bf16 and fp32 matmul rates, measured now;
    returns the step's GFLOP and the bf16 matmul rate (GFLOP/s)."""
    gflop = step_gflop(ResidentStep(cfg, device, bf16))
    bf16_rate, fp32_rate = matmul_gflop_per_s(torch.bfloat16), matmul_gflop_per_s(torch.float32)
    achieved = gflop / step_s
    print(f"step: {gflop:.2f} GFLOP (fwd+bwd, FlopCounterMode), {achieved:.1f} GFLOP/s in the loop; this core's "
          f"1024^2 matmul: bf16 {bf16_rate:.0f} GFLOP/s, fp32 {fp32_rate:.0f} GFLOP/s; step/bf16 matmul "
          f"{achieved / bf16_rate:.2f}")
    return gflop, bf16_rate


if __name__ == "__main__":
    raise SystemExit(main())
