"""Trans3DHead against DAD-3DNet at the same input size: parameters, GFLOPs (batch 1), inference throughput
and peak memory, measured side by side in one run (the paper reports 115 vs 112 FPS on a V100 at 256 px,
ResNet-50). ``--batch 1`` alone gives the parameters and FLOPs in seconds on a CPU: at 256 px, ResNet-50,
Trans3DHead 42.03 M / 12.79 GFLOPs, DAD-3DNet with the official BiFPN 32.81 M / 15.72 GFLOPs (docs/fidelity.md R1)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from trans3dhead.config import ModelConfig
from trans3dhead.engine.efficiency import fresh_model, measure
from trans3dhead.engine.runtime import select_device
from trans3dhead.data.synth.head_model import write_assets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench models")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--flame-dir", type=Path, help="default: procedural assets in a temporary folder")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        flame = args.flame_dir or write_assets(Path(tmp) / "flame")
        common = {"backbone": args.backbone, "n_params": 413}
        models = {
            "Trans3DHead": ModelConfig(arch="trans3dhead", backbone_stride=args.stride, d_model=args.d_model, **common),
            "DAD-3DNet": ModelConfig(arch="dad3dnet", **common),
        }
        rows = {}
        for name, cfg in models.items():
            figures = measure(fresh_model(cfg, flame).to(device), args.size, device, tuple(args.batch))
            row = {"params_M": figures["params"] / 1e6, "GFLOPs": figures["flops"] / 1e9}
            for b in args.batch:
                row[f"img/s b{b}"] = figures[f"fps_b{b}"]
                row[f"peak MB b{b}"] = figures[f"peak_mem_b{b}_mb"]
            rows[name] = row
    print(f"{args.size} px, {args.backbone}, {device}:")
    keys = list(next(iter(rows.values())))
    print(f"  {'':12s}" + "".join(f"{k:>14s}" for k in keys))
    for name, row in rows.items():
        print(f"  {name:12s}" + "".join(f"{row[k]:14.2f}" for k in keys))
    t, d = rows["Trans3DHead"], rows["DAD-3DNet"]
    print("  ratio T/D   " + "".join(f"{t[k] / d[k]:14.2f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
