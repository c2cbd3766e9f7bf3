"""SynthHeads generation speed: images/s of scene sampling + rendering, and with the files written."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trans3dhead.data.synth.generate import generate
from trans3dhead.data.synth.scene import sample_scene
from trans3dhead.flame.assets import write_assets
from trans3dhead.flame.decoder import FlameDecoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench synth")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        flame = write_assets(Path(tmp) / "flame")
        decoder = FlameDecoder(flame, 413)
        regions = np.load(flame / "synthheads_regions.npy")
        rng = np.random.default_rng(0)
        sample_scene(decoder, regions, args.size, rng)
        start = time.perf_counter()
        for _ in range(args.images):
            sample_scene(decoder, regions, args.size, rng)
        render = args.images / (time.perf_counter() - start)
        start = time.perf_counter()
        generate(Path(tmp) / "set", train=args.images, val=0, test=0, aflw=0, image_size=args.size, seed=0)
        written = args.images / (time.perf_counter() - start)
    print(f"SynthHeads at {args.size} px, {torch.get_num_threads()} torch threads:")
    print(f"  sample + render:                 {render:7.1f} images/s")
    print(f"  sample + render + write (PNG, annotation JSON): {written:7.1f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
