"""Device, precision and seeding choices of a run."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch


def select_device(requested: str = "auto") -> torch.device:
    """``auto``: CUDA when visible, else the CPU; otherwise the device named (``cuda`` with no GPU is an error)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is visible; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_supports_bf16() -> bool:
    """bf16 autocast only pays off on CPUs with native bf16 dot products (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(amp: str, device: torch.device) -> bool:
    """Whether to run under bf16 autocast for ``train.amp`` on ``device``: ``auto`` only where the GPU or CPU
    has native bf16; an explicit ``bf16`` is honoured on a CPU without it (slow), never on such a GPU."""
    if amp == "off":
        return False
    supported = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    if amp == "bf16" and not supported:
        return device.type == "cpu"     # asked for explicitly: allowed, just slow
    return supported


def seed_everything(seed: int) -> None:
    """Seeds Python's, numpy's and torch's global generators (torch's covers every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
