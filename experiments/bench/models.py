"""Trans3DHead against DAD-3DNet at the same input size: inference throughput and peak memory,
measured side by side in one run (the paper reports 115 vs 112 FPS on a V100 at 256 px, ResNet-50)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from trans3dhead.config import ModelConfig
from trans3dhead.engine.efficiency import count_flops, count_parameters, peak_memory_mb, throughput
from trans3dhead.engine.runtime import select_device
from trans3dhead.data.synth.head_model import write_assets
from trans3dhead.models import build_model


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
        with torch.no_grad():
            for name, cfg in models.items():
                model = build_model(cfg, flame, torch.full((68, 2), 0.5)).to(device).eval()
                row = {"params_M": count_parameters(model) / 1e6,
                       "GFLOPs": count_flops(model, torch.randn(1, 3, args.size, args.size, device=device)) / 1e9}
                for b in args.batch:
                    images = torch.randn(b, 3, args.size, args.size, device=device)
                    row[f"img/s b{b}"] = throughput(model, images, min_run_time=0.5)
                    row[f"peak MB b{b}"] = peak_memory_mb(model, images)
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
