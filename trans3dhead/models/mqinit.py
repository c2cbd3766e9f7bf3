"""Memory-related query initialisation, MQinit (paper section 3.1, eq. 1): Q_init = FC(GAP(M))."""
from __future__ import annotations

import torch
from torch import nn


class MemoryQueryInit(nn.Module):
    """Initial decoder queries (B, N, d) from the globally pooled memory instead of zeros."""

    def __init__(self, n_queries: int, d_model: int):
        super().__init__()
        self.n_queries, self.d_model = n_queries, d_model
        self.fc = nn.Linear(d_model, n_queries * d_model)

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        """``memory`` (B, S, d) -> queries (B, N, d)."""
        pooled = memory.mean(dim=1)
        return self.fc(pooled).reshape(-1, self.n_queries, self.d_model)
