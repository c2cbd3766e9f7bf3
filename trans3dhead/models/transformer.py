"""DETR-style encoder and decoder layers (post-norm), with an optional QAMem cross-attention."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trans3dhead.config import ModelConfig
from trans3dhead.models.mqinit import MemoryQueryInit
from trans3dhead.models.qamem import QueryAwareMemory


def _feed_forward(d_model: int, dim_feedforward: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(dim_feedforward, d_model))


class EncoderLayer(nn.Module):
    """Self-attention over the memory grid (positions added to queries and keys), then an FFN."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float,
                 attention_precision: str = "float32"):
        super().__init__()
        self.self_attn = Attention(d_model, nheads, dropout, precision=attention_precision)
        self.ffn = _feed_forward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = memory + pos
        memory = self.norm1(memory + self.dropout(self.self_attn(q, k, memory)))
        return self.norm2(memory + self.dropout(self.ffn(memory)))


class Attention(nn.Module):
    """Multi-head attention; with a ``qamem`` module, the values come from QAMem's per-query memories.

    Written out (rather than nn.MultiheadAttention) because QAMem acts between the memory and the value
    projection (eqs. 2-3), and the naive form of eq. 2 needs the attention weights. ``qamem_naive=True``
    computes eq. 2 (the N memories) instead of eq. 3: the same output at N times the memory, kept so that
    ``python -m experiments.bench qamem`` and tests/test_fidelity.py can measure and check the equality.
    """

    def __init__(self, d_model: int, nheads: int, dropout: float, qamem: QueryAwareMemory | None = None,
                 qamem_naive: bool = False, precision: str = "float32"):
        super().__init__()
        self.precision = precision          # float32 | autocast (model.attention_precision)
        self.nheads, self.head_dim = nheads, d_model // nheads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.qamem = qamem
        self.qamem_naive = qamem_naive

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        *lead, n, _ = x.shape
        return x.reshape(*lead, n, self.nheads, self.head_dim).transpose(-3, -2)   # (..., H, n, Dh)

    def _value_per_head(self, x: torch.Tensor) -> torch.Tensor:
        """Head h's value projection W_v^h of full-width inputs ``x`` (B, H, N, d) -> (B, H, N, Dh)."""
        weight = self.v_proj.weight.reshape(self.nheads, self.head_dim, -1)           # (H, Dh, d)
        return torch.einsum("bhnd,hed->bhne", x, weight) + self.v_proj.bias.reshape(self.nheads, 1, self.head_dim)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        device = q.device.type
        if self.precision == "autocast" and torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
            if device == "cuda":      # the fused (flash) kernel in bf16
                return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
            # CPU: the fused kernel's bf16 path is slow; the explicit product in bf16 is about twice the fused
            # float32 kernel at 413 queries, head dim 32 (docs/running.md, "Where a CPU step goes")
            with torch.autocast(device_type=device, enabled=False):
                scores = (q @ k.transpose(-1, -2)) * self.head_dim ** -0.5
                return F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training) @ v
        # The fused kernel in float32: on CPU it beats both the explicit product and its own
        # bf16 path (whose backward is several times slower) at these sizes.
        with torch.autocast(device_type=q.device.type, enabled=False):
            attended = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                      dropout_p=self.dropout if self.training else 0.0)
        return attended.to(q.dtype)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        q, k = self._heads(self.q_proj(query)), self._heads(self.k_proj(key))
        if self.qamem is None:
            attended = self._attend(q, k, self._heads(self.v_proj(value)))
        elif self.qamem_naive:       # eq. 2: N memories, each projected per head, each read by its query
            values = self._heads(self.v_proj(self.qamem.memories(value)))              # (B, N, H, S, Dh)
            attention = torch.softmax(q @ k.transpose(-1, -2) * self.head_dim ** -0.5, dim=-1)
            attention = F.dropout(attention, self.dropout, self.training)              # (B, H, N, S)
            attended = torch.einsum("bhns,bnhsd->bhnd", attention, values)
        else:                        # eq. 3: attend over the raw memory, then T_i, then W_v^h
            b, s, d = value.shape
            raw = self._attend(q, k, value.unsqueeze(1).expand(b, self.nheads, s, d))   # (B, H, N, d)
            attended = self._value_per_head(self.qamem.transform_attended(raw))
        b, _, n, _ = attended.shape
        return self.out_proj(attended.transpose(1, 2).reshape(b, n, -1))


class DecoderLayer(nn.Module):
    """Self-attention among queries, cross-attention to the memory (optionally QAMem), FFN."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float,
                 qamem: QueryAwareMemory | None = None, attention_precision: str = "float32"):
        super().__init__()
        self.self_attn = Attention(d_model, nheads, dropout, precision=attention_precision)
        self.cross_attn = Attention(d_model, nheads, dropout, qamem, precision=attention_precision)
        self.ffn = _feed_forward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor) -> torch.Tensor:
        q = k = queries + query_pos
        queries = self.norm1(queries + self.dropout(self.self_attn(q, k, queries)))
        attended = self.cross_attn(queries + query_pos, memory + memory_pos, memory)
        queries = self.norm2(queries + self.dropout(attended))
        return self.norm3(queries + self.dropout(self.ffn(queries)))


class DecoderBranch(nn.Module):
    """A stack of decoder layers over one set of queries; returns every layer's output.

    ``branch`` ("landmark" or "3dmm") is where the config's QAMem and MQinit placements are read.
    """

    def __init__(self, cfg: ModelConfig, n_queries: int, branch: str):
        super().__init__()
        self.n_queries = n_queries
        self.query_pos = nn.Embedding(n_queries, cfg.d_model)
        # None: DETR's zero-initialised queries
        self.mqinit = MemoryQueryInit(n_queries, cfg.d_model) if cfg.in_branch(cfg.mqinit, branch) else None
        qamem = cfg.in_branch(cfg.qamem, branch)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.d_model, cfg.nheads, cfg.dim_feedforward, cfg.dropout,
                         QueryAwareMemory(n_queries, cfg.d_model) if qamem else None, cfg.attention_precision)
            for _ in range(cfg.decoder_layers))

    def forward(self, memory: torch.Tensor, memory_pos: torch.Tensor) -> list[torch.Tensor]:
        batch = memory.shape[0]
        query_pos = self.query_pos.weight.unsqueeze(0).expand(batch, -1, -1)
        queries = self.mqinit(memory) if self.mqinit is not None else torch.zeros_like(query_pos)
        outputs = []
        for layer in self.layers:
            queries = layer(queries, query_pos, memory, memory_pos)
            outputs.append(queries)
        return outputs
