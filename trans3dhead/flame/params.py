"""Split of the regressed FLAME parameter vector (paper appendix, facts section 3).

The 3DMM head regresses one flat vector per image, laid out as
``shape | expression | jaw | rot6d | translation | scale``:

* 413 = 300 + 100 + 3 + 6 + 3 + 1 (the paper's final model, DAD-3DNet's layout)
* 160 = 100 + 50 + 0 + 6 + 3 + 1 (Table 8)
*  60 =  40 + 10 + 0 + 6 + 3 + 1 (Table 8, SynergyNet-sized)

The leading "shape-like" values (shape, expression, jaw) pass through ``tanh * 3`` in the
network head; the trailing 10 pose values (rot6d, translation, scale) are raw (facts section 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

# (shape, expression, jaw) per supported total; the 10 pose values are common to all.
_LAYOUTS: dict[int, tuple[int, int, int]] = {413: (300, 100, 3), 160: (100, 50, 0), 60: (40, 10, 0)}
POSE_VALUES = 10  # rot6d 6 + translation 3 + scale 1
PART_NAMES = ("shape", "expression", "jaw", "rot6d", "translation", "scale")


@dataclass(frozen=True)
class ParamLayout:
    """Sizes of each named part of the parameter vector; slices index its last axis."""

    n_shape: int
    n_expression: int
    n_jaw: int
    n_rot6d: int = 6
    n_translation: int = 3
    n_scale: int = 1

    @classmethod
    def for_count(cls, n: int) -> "ParamLayout":
        """The layout for a total of ``n`` values: 413, 160 or 60."""
        if n not in _LAYOUTS:
            raise ValueError(f"no FLAME parameter layout for {n} values; use one of {sorted(_LAYOUTS)}")
        return cls(*_LAYOUTS[n])

    @property
    def sizes(self) -> dict[str, int]:
        return {"shape": self.n_shape, "expression": self.n_expression, "jaw": self.n_jaw,
                "rot6d": self.n_rot6d, "translation": self.n_translation, "scale": self.n_scale}

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def n_shape_like(self) -> int:
        """Leading values that go through ``tanh * 3`` (shape + expression + jaw; 403 for 413)."""
        return self.n_shape + self.n_expression + self.n_jaw

    @property
    def n_pose(self) -> int:
        """Trailing raw values (rot6d + translation + scale = 10)."""
        return self.total - self.n_shape_like

    def slice_of(self, name: str) -> slice:
        if name not in PART_NAMES:
            raise KeyError(f"unknown parameter part '{name}'; parts are {list(PART_NAMES)}")
        start = 0
        for part in PART_NAMES:
            size = self.sizes[part]
            if part == name:
                return slice(start, start + size)
            start += size
        raise AssertionError("unreachable")

    shape = property(lambda self: self.slice_of("shape"))
    expression = property(lambda self: self.slice_of("expression"))
    jaw = property(lambda self: self.slice_of("jaw"))
    rot6d = property(lambda self: self.slice_of("rot6d"))
    translation = property(lambda self: self.slice_of("translation"))
    scale = property(lambda self: self.slice_of("scale"))

    def split(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named views of a ``(..., total)`` tensor; a part of size 0 (jaw for 60/160) is ``(..., 0)``."""
        if params.shape[-1] != self.total:
            raise ValueError(f"expected {self.total} parameters in the last axis, got shape {tuple(params.shape)}")
        return {name: params[..., self.slice_of(name)] for name in PART_NAMES}

    def join(self, parts: Mapping[str, torch.Tensor], batch_shape: tuple[int, ...] | None = None,
             dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """Inverse of :meth:`split`; missing parts are zeros (identity rotation for ``rot6d``).

        Used to build ground-truth or test vectors, e.g. ``layout.join({"shape": betas})``.
        """
        unknown = set(parts) - set(PART_NAMES)
        if unknown:
            raise KeyError(f"unknown parameter parts {sorted(unknown)}; parts are {list(PART_NAMES)}")
        if batch_shape is None:
            if not parts:
                raise ValueError("give batch_shape when no part is given")
            first = next(iter(parts.values()))
            batch_shape = tuple(first.shape[:-1])
            dtype, device = first.dtype, first.device
        chunks = []
        for name in PART_NAMES:
            size = self.sizes[name]
            if name in parts:
                value = torch.as_tensor(parts[name], dtype=dtype, device=device)
                if value.shape[-1] != size:
                    raise ValueError(f"part '{name}' needs {size} values, got shape {tuple(value.shape)}")
                chunks.append(value.expand(*batch_shape, size))
            elif name == "rot6d":
                identity = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=device)
                chunks.append(identity.expand(*batch_shape, size))
            else:
                chunks.append(torch.zeros(*batch_shape, size, dtype=dtype, device=device))
        return torch.cat(chunks, dim=-1)
