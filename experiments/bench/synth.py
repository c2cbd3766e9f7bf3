"""SynthHeads generation speed: images/s of scene sampling + rendering, and with the files written."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trans3dhead.data.synth.generate import generate
from trans3dhead.data.synth.scene import sample_scene
from trans3dhead.data.synth.head_model import write_assets
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
        timings = {}
        for workers in sorted({1, os.cpu_count() or 1}):
            start = time.perf_counter()
            generate(Path(tmp) / f"set{workers}", train=args.images, val=0, test=0, aflw=0, image_size=args.size,
                     seed=0, workers=workers)
            timings[workers] = args.images / (time.perf_counter() - start)
    print(f"SynthHeads at {args.size} px, {torch.get_num_threads()} torch threads:")
    print(f"  sample + render, one process:           {render:7.1f} images/s")
    for workers, rate in timings.items():
        print(f"  full generation (PNG + annotation JSON), {workers} worker(s): {rate:7.1f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
