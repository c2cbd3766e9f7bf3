"""One-off migration (2026-11-29): add ``images-<dataset>-<split>.json`` to committed runs evaluated before
the evaluation recorded it (each item's image path and evaluation crop, which Figure 7 and the gallery
draw from). Needs the runs' generated dataset under ``data/``; the crop is the evaluation's own (the
library's dataset and ``evaluate``'s record), no model is run.

    python scripts/migrations/add_images_record.py results/cpu results/cpu-long
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from experiments import store
from trans3dhead.config import RunConfig
from trans3dhead.data import build_dataset
from trans3dhead.engine.batches import eval_loader
from trans3dhead.engine.evaluate import image_record

FIGURE_VARIANT, DATASET, SPLIT = "trans3dhead", "dad3dheads", "val"      # the runs Figure 7 draws


def migrate(run_dir: Path) -> bool:
    meta = store.read_meta(run_dir) or {}
    if FIGURE_VARIANT not in meta.get("variants", []) or not store.has_evaluation(run_dir, DATASET, SPLIT):
        return False
    if store.images(run_dir, DATASET, SPLIT) is not None:
        return False
    config = RunConfig.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    ds = build_dataset(config.data, DATASET, SPLIT, train=False, seed=config.train.seed)
    records, index = {}, 0
    for batch in eval_loader(ds, 32):
        for i, item_id in enumerate(batch["item_id"]):
            records[item_id] = image_record(ds, index, batch, i, config.data.image_size)
            index += 1
    store.atomic_write_json(run_dir / f"images-{store.eval_name(DATASET, SPLIT)}.json", records)
    return True


if __name__ == "__main__":
    for root in sys.argv[1:]:
        for run in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            if migrate(run):
                print(f"added the images record to {run}")
