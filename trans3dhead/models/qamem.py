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
    """The per-query value transforms T_i of eqs. 2-3, applied in either form."""

    def __init__(self, n_queries: int, d_model: int, nheads: int):
        super().__init__()
        self.n_queries, self.d_model, self.nheads = n_queries, d_model, nheads
        self.head_dim = d_model // nheads
        # Eq. 3's "1x1 convolution with N groups" (N*H groups: one block per query and head).
        self.conv = nn.Conv1d(n_queries * d_model, n_queries * d_model, kernel_size=1,
                              groups=n_queries * nheads)
        with torch.no_grad():
            eye = torch.eye(self.head_dim).expand(n_queries * nheads, -1, -1)
            self.conv.weight.copy_(eye.reshape(n_queries * d_model, self.head_dim, 1))
            self.conv.bias.zero_()

    def efficient(self, attended: torch.Tensor) -> torch.Tensor:
        """Eq. 3: ``attended`` (B, H, N, Dh) = A·V per head -> (A·V)·T_i, same shape."""
        b, h, n, dh = attended.shape
        flat = attended.permute(0, 2, 1, 3).reshape(b, n * h * dh, 1)
        return self.conv(flat).reshape(b, n, h, dh).permute(0, 2, 1, 3)

    def naive(self, attention: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Eq. 2: N query-specific memories V·T_i, each attended by its own query.

        ``attention`` (B, H, N, S), ``values`` (B, H, S, Dh) -> (B, H, N, Dh). Materialises
        N memories of size S x d: the cost that eq. 3 avoids.
        """
        n, h, dh = self.n_queries, self.nheads, self.head_dim
        weight = self.conv.weight.reshape(n, h, dh, dh)                    # T[i, head, out, in]
        bias = self.conv.bias.reshape(n, h, dh)
        memories = torch.einsum("bhsc,nhdc->bnhsd", values, weight) + bias[None, :, :, None, :]
        return torch.einsum("bhns,bnhsd->bhnd", attention, memories)
