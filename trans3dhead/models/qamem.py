"""Query-aware memory, QAMem (paper section 3.2, eqs. 2-3).

Each query i gets its own d x d transform T_i of the d-channel memory M, "a convolutional layer with
1x1 kernel, 1 stride, and N groups", so that queries attending to the same cell of a low-resolution
memory extract different values. The transformed memories M·T_i serve value extraction only; the keys
stay shared. Eq. 2 builds the N memories (naive); eq. 3 moves T_i after the attention,
A_i·(M·T_i) = (A_i·M)·T_i (efficient), which holds because attention is linear in the values.

With H heads, head h reads query i's memory through its own value projection W_v^h:
A_i^h·(M·T_i)·W_v^h = ((A_i^h·M)·T_i)·W_v^h, so the efficient form attends over the raw memory per head
and then applies the full T_i and the head's value projection: every head sees the whole d x d
transform, and the module has N·d·d weights whatever the number of heads.
T_i starts as the identity, so QAMem begins as plain attention and learns to depart from it.
"""
from __future__ import annotations

import torch
from torch import nn


class QueryAwareMemory(nn.Module):
    """The per-query memory transforms T_i (and biases b_i) of eqs. 2-3: ``M_i = M·T_i + b_i``.

    ``weight[i]`` is T_i as an (out, in) matrix: the N-group 1x1 convolution written as the batched
    matrix product it is (einsum is several times faster than ``conv1d(groups=N)`` on CPU).
    """

    def __init__(self, n_queries: int, d_model: int):
        super().__init__()
        self.n_queries, self.d_model = n_queries, d_model
        self.weight = nn.Parameter(torch.eye(d_model).repeat(n_queries, 1, 1))     # (N, out, in)
        self.bias = nn.Parameter(torch.zeros(n_queries, d_model))

    def memories(self, memory: torch.Tensor) -> torch.Tensor:
        """Eq. 2's N query-specific memories: ``memory`` (B, S, d) -> (B, N, S, d). The cost eq. 3 avoids."""
        return torch.einsum("bsc,ndc->bnsd", memory, self.weight) + self.bias[None, :, None, :]

    def transform_attended(self, attended: torch.Tensor) -> torch.Tensor:
        """Eq. 3: ``attended`` (B, H, N, d) = A_i^h·M per head and query -> (A_i^h·M)·T_i + b_i.

        The bias passes through unchanged because each row of A sums to one.
        """
        return torch.einsum("bhnc,ndc->bhnd", attended, self.weight) + self.bias
