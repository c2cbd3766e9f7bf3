"""Query-aware memory, QAMem (paper section 3.2, eqs. 2-3).

Each query i gets its own value transform T_i, so that queries attending to the same cell of a
low-resolution memory extract different values. Eq. 2 builds N transformed memories M·T_i (naive);
eq. 3 moves T_i after the attention, (A_i·M)·T_i, which the paper implements as a 1x1 convolution
with N groups (efficient). Both forms are here: the efficient one is used in the model, the naive
one is the reference that a test and ``python -m experiments.bench qamem`` compare against.

Multi-head attention: T_i acts per head on that head's value slice (a block-diagonal d x d
transform, N*H groups). With one head this is exactly the paper's N-group convolution; with H heads
it keeps eq. 2 and eq. 3 exactly equal, since every head attends with its own weights.
T_i starts as the identity, so QAMem begins as plain attention and learns to depart from it.
"""
from __future__ import annotations

import torch
from torch import nn


class QueryAwareValueTransform(nn.Module):
    """The per-query value transforms T_i of eqs. 2-3, applied in either form.

    ``weight[i, h]`` is query i's transform of head h's value slice, i.e. the paper's 1x1 convolution
    with N groups written as the block-diagonal matrix product it is; einsum computes it about 4x
    faster than ``conv1d(groups=N*H)`` on CPU.
    """

    def __init__(self, n_queries: int, d_model: int, nheads: int):
        super().__init__()
        self.n_queries, self.d_model, self.nheads = n_queries, d_model, nheads
        self.head_dim = d_model // nheads
        self.weight = nn.Parameter(torch.eye(self.head_dim).repeat(n_queries, nheads, 1, 1))   # (N, H, out, in)
        self.bias = nn.Parameter(torch.zeros(n_queries, nheads, self.head_dim))

    def efficient(self, attended: torch.Tensor) -> torch.Tensor:
        """Eq. 3: ``attended`` (B, H, N, Dh) = A·V per head -> (A·V)·T_i, same shape."""
        return torch.einsum("bhnc,nhdc->bhnd", attended, self.weight) + self.bias.transpose(0, 1)

    def naive(self, attention: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Eq. 2: N query-specific memories V·T_i, each attended by its own query.

        ``attention`` (B, H, N, S), ``values`` (B, H, S, Dh) -> (B, H, N, Dh). Materialises
        N memories of size S x d: the cost that eq. 3 avoids.
        """
        memories = torch.einsum("bhsc,nhdc->bnhsd", values, self.weight) + self.bias[None, :, :, None, :]
        return torch.einsum("bhns,bnhsd->bhnd", attention, memories)
