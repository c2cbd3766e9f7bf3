"""The README's picture: a few SynthHeads validation images (the embedded benchmark, official DAD-3DHeads
format) with their ground-truth 68 landmarks, read through the same dataset class the training uses.

    python scripts/docs/synthheads_figure.py [--profile converged] [--out docs/img/synthheads.png]
"""
from __future__ import annotations

import argparse

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.registry import DEFAULT_PROFILE, load_registry  # noqa: E402
from trans3dhead.data import build_dataset, ensure_synthheads  # noqa: E402

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])   # ImageNet normalisation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--out", default="docs/img/synthheads.png")
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()
    data = load_registry().resolve("trans3dhead", args.profile).config.data
    ensure_synthheads(data)
    items = build_dataset(data, "dad3dheads", "val", train=False)
    fig, axes = plt.subplots(1, args.images, figsize=(2 * args.images, 2.2))
    for index, ax in enumerate(axes):
        item = items[index]
        image = np.clip(item["image"].numpy().transpose(1, 2, 0) * STD + MEAN, 0, 1)
        points = item["landmarks_2d"].numpy() * data.image_size
        ax.imshow(image, extent=(0, data.image_size, data.image_size, 0))
        ax.scatter(points[:, 0], points[:, 1], s=3, c="lime")
        ax.set_title(item["item_id"], fontsize=7)
        ax.axis("off")
    fig.suptitle(f"SynthHeads (embedded, procedural; not DAD-3DHeads): val crops at {data.image_size} px, "
                 "GT landmarks", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
