"""Efficiency figures measured by libraries: parameters, FLOPs (torch's FlopCounterMode), speed, memory."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from trans3dhead.config import ModelConfig, RunConfig
from trans3dhead.engine.runtime import select_device

# torch's FlopCounterMode counts the CUDA attention kernels but not the CPU one, so on CPU a model's attention
# read 0 FLOPs: Table 1's GFLOPs left Trans3DHead's attention out beside DAD-3DNet, which has none. The CPU kernel
# takes the same arguments as the CUDA flash kernel, forward and backward, so it gets the same formulas.
_CPU_ATTENTION = {"_scaled_dot_product_flash_attention_for_cpu": flop_counter.sdpa_flop,
                  "_scaled_dot_product_flash_attention_for_cpu_backward": flop_counter.sdpa_backward_flop}
for _name, _formula in _CPU_ATTENTION.items():
    _op = getattr(torch.ops.aten, _name, None)
    if _op is not None and _op not in flop_counter.flop_registry and _op.default not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(_op, get_raw=True)(_formula)    # already shape-converted


def flop_counter_mode() -> FlopCounterMode:
    """torch's FlopCounterMode, with the CPU attention kernel counted (this module registers it on import)."""
    return FlopCounterMode(display=False)


def count_parameters(model: nn.Module) -> int:
    """The number of parameter values of ``model``, trainable or not."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, images: torch.Tensor) -> int:
    """Forward FLOPs (multiply-add = 2) counted by torch's FlopCounterMode."""
    counter = flop_counter_mode()
    # Grad mode on: the counter's module tracker hooks gradients and fails under no_grad.
    with torch.enable_grad(), counter:
        model(images)
    return int(counter.get_total_flops())


@torch.no_grad()
def throughput(model: nn.Module, images: torch.Tensor, min_run_time: float = 1.0, warmup: int = 2) -> float:
    """Images per second of inference on ``images`` (one batch), after warm-up: the median over blocks of
    forwards that last ``min_run_time`` seconds in all (``torch.utils.benchmark``, which synchronises CUDA).
    One short timing of ten forwards at batch 1 gave the same model 88 and 181 images/s on a quiet CPU."""
    from torch.utils import benchmark        # imported here: it loads torch's C++-extension helpers

    for _ in range(warmup):
        model(images)
    timer = benchmark.Timer("model(images)", globals={"model": model, "images": images},
                            num_threads=torch.get_num_threads())
    return images.shape[0] / timer.blocked_autorange(min_run_time=min_run_time).median


@torch.no_grad()
def peak_memory_mb(fn, *args, device: torch.device | str | None = None) -> float:
    """Peak memory allocated while running ``fn(*args)``, beyond what was allocated before.

    CUDA: the allocator's peak. CPU: the peak of the running sum of the torch profiler's
    per-operator allocations and frees, in execution order. ``device`` defaults to that of the
    tensors in ``args``; name it when ``fn`` takes none (a closure over CUDA tensors).
    """
    if device is not None:
        device_is_cuda = torch.device(device).type == "cuda"
    else:
        device_is_cuda = any(torch.is_tensor(a) and a.is_cuda for a in args)
    if device_is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(*args)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(*args)
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def measure(model: nn.Module, image_size: int, device: torch.device, batch_sizes: tuple[int, ...] = (1, 32)) -> dict:
    """Efficiency figures of ``model`` (left in eval mode) on random ``image_size`` inputs: ``params``,
    ``flops`` (one forward at batch 1) and per batch size b ``fps_b{b}`` (images/s) and ``peak_mem_b{b}_mb`` (MiB)."""
    model.eval()
    out = {"params": count_parameters(model),
           "flops": count_flops(model, torch.randn(1, 3, image_size, image_size, device=device))}
    for b in batch_sizes:
        images = torch.randn(b, 3, image_size, image_size, device=device)
        out[f"fps_b{b}"] = throughput(model, images)
        out[f"peak_mem_b{b}_mb"] = peak_memory_mb(model, images)
    return out


def fresh_model(cfg: ModelConfig, flame_dir) -> nn.Module:
    """``cfg``'s model as built, untrained: its parameters, FLOPs, speed and memory are those of the trained
    one, which depend on the architecture and input size, not on the weights."""
    from trans3dhead.models import build_model         # the model code: not needed by the counters above
    from trans3dhead.models.marr import N_LANDMARKS

    centre = torch.full((N_LANDMARKS, 2), 0.5)       # any mean face in crop units costs the same
    return build_model(cfg, flame_dir, centre)


def measure_config(cfg: RunConfig, device: str = "auto") -> tuple[dict, str]:
    """(:func:`measure` of ``cfg``'s :func:`fresh_model`, the device it ran on): a finished run is measured
    without its checkpoint, on any machine, alone."""
    from trans3dhead.data import flame_model_of

    dev = select_device(device)
    with flame_model_of(cfg.data) as flame_dir:
        model = fresh_model(cfg.model, flame_dir)
    return measure(model.to(dev), cfg.data.image_size, dev), str(dev)
