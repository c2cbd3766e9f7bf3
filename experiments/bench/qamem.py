"""QAMem: the naive per-query memories of eq. 2 against the efficient form of eq. 3.

Measured side by side in one run at the paper's sizes (68 queries, an 8x8 memory, d = 256,
8 heads, batch 32): forward time and peak memory of the whole QAMem cross-attention (the same
module and weights, switched between the two forms), and their largest difference.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time

import torch

from trans3dhead.engine.efficiency import peak_memory_mb
from trans3dhead.engine.runtime import select_device
from trans3dhead.models.qamem import QueryAwareMemory
from trans3dhead.models.transformer import Attention


def _time(fn, repeats: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)    # time the kernels, not launches
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


@contextlib.contextmanager
def _native_log_captured(device: torch.device):
    """The torch profiler that measures CPU memory logs from C++ straight to fd 2, on a machine without
    CUDA an alarming 'ERROR: gpuGetDeviceCount failed' among them; those lines are kept out of the output
    (a Python error raised inside still propagates, and its message is printed by the caller)."""
    if device.type == "cuda":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench qamem")
    parser.add_argument("--queries", type=int, default=68)
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    qamem = QueryAwareMemory(args.queries, args.d_model)
    with torch.no_grad():      # a trained-looking T_i, so that the forms are compared off the identity
        qamem.weight.add_(0.05 * torch.randn_like(qamem.weight))
    attention = Attention(args.d_model, args.heads, 0.0, qamem).to(device).eval()
    naive_attention = Attention(args.d_model, args.heads, 0.0, qamem, qamem_naive=True).to(device).eval()
    naive_attention.load_state_dict(attention.state_dict())          # the same weights, read by eq. 2
    queries = torch.randn(args.batch, args.queries, args.d_model, device=device)
    memory = torch.randn(args.batch, args.grid * args.grid, args.d_model, device=device)

    def naive() -> torch.Tensor:
        return naive_attention(queries, memory, memory)

    def efficient() -> torch.Tensor:
        return attention(queries, memory, memory)
    diff = (naive() - efficient()).abs().max().item()
    t_naive, t_eff = _time(naive, args.repeats, device), _time(efficient, args.repeats, device)
    with _native_log_captured(device):
        m_naive, m_eff = peak_memory_mb(naive, device=device), peak_memory_mb(efficient, device=device)
    n_weights = attention.qamem.weight.numel()
    print(f"QAMem at N={args.queries}, memory {args.grid}x{args.grid}, d={args.d_model}, {args.heads} heads, "
          f"batch {args.batch}, {device}:")
    print(f"  QAMem weights per decoder layer: {n_weights} (= N*d*d, whatever the number of heads)")
    print(f"  max |naive - efficient| = {diff:.2e}")
    print(f"  time  naive {t_naive * 1e3:8.2f} ms   efficient {t_eff * 1e3:8.2f} ms   ratio {t_naive / t_eff:6.1f}x")
    print(f"  peak  naive {m_naive:8.2f} MB   efficient {m_eff:8.2f} MB   ratio {m_naive / max(m_eff, 1e-9):6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
