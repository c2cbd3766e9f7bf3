"""Figure 7 (the MARR stages) and the gallery (the hardest images): drawn on the dataset's images, which the
store names per item with the evaluation's crop (``store.images``). Where an image file is absent the
picture is left as committed; the markdown never depends on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments import store
from experiments.report import figures
from experiments.report.gather import RowRuns, TableContext

IMAGE_FIGURES = ("figure7.png", "gallery.png")   # drawn from the dataset's images (see check_reports)
FIGURE7_IMAGES = 4
GALLERY_CASES = 4
MAX_MISMATCH_PX = 1.0          # stored landmarks further than this from the last layer's: another crop


def _load_image(record: dict) -> np.ndarray:
    from PIL import Image
    with Image.open(record["path"]) as image:
        return np.asarray(image.convert("RGB"))


def _bbox_window(bbox, margin: float = 1.5) -> figures.Window:
    x, y, w, h = map(float, bbox)
    side = margin * max(w, h)
    return figures.Window(x + w / 2 - side / 2, y + h / 2 - side / 2, side)


def _on_disk(images: dict) -> dict:
    """The items whose image file is here (the generated dataset may be absent from a checkout)."""
    return {item_id: r for item_id, r in images.items() if r.get("path") and Path(r["path"]).is_file()}


def marr_layers_section(ctx: TableContext, rr: RowRuns) -> list[str]:
    """Figure 7 (MARR stages on the same images) and the gallery of the run's hardest images."""
    run, spec = rr.done[0], rr.spec
    lines = ["![Figure 7](figure7.png)", "",
             f"Left to right: the fixed mean face (eq. 4), then the landmarks after each decoder layer (eq. 5), on the "
             f"first {FIGURE7_IMAGES} {spec.split} images (seed {run.seed}'s run).", "",
             f"Qualitative gallery: the {GALLERY_CASES} {spec.split} images where this run's NME is worst, DAD-3DNet "
             "beside it when its run exists (landmarks; head axes x red, y green, z blue).", "",
             "![gallery](gallery.png)", "",
             "Both pictures are drawn from the dataset's images; where the dataset is absent they are left as "
             "committed (and `--check` does not compare them).", ""]
    images = _on_disk(store.images(run.path, spec.dataset, spec.split) or {})
    if not images:
        return lines
    data = store.marr(run.path, spec.dataset, spec.split)
    predictions = store.predictions(run.path, spec.dataset, spec.split) or {}
    if data is not None and data.get("mean_face") is not None and data["mean_face"].size:
        _draw_figure7(data, predictions, images, ctx.out_dir / "figure7.png")
    _draw_gallery(ctx, rr, images)
    return lines


def _draw_figure7(data: dict, predictions: dict, images: dict, path: Path) -> None:
    item_ids = [str(i) for i in data["item_ids"]]
    panels = []
    for index in np.argsort(item_ids, kind="stable")[:FIGURE7_IMAGES]:
        item_id = item_ids[index]
        if item_id not in predictions or item_id not in images:
            continue
        record = images[item_id]
        scale = record["crop_scale"] * record["input_size"]          # original px per crop unit
        origin = np.asarray(record["crop_origin"], dtype=float)
        stages = [data["mean_face"]] + [layer[index] for layer in data["landmarks"]]
        stored = np.asarray(predictions[item_id]["68_landmarks_2d"])
        if np.abs(stages[-1] * scale + origin - stored).max() > MAX_MISMATCH_PX:
            continue      # the stored landmarks are not this crop's last layer: drawing would mislead
        panels.append(figures.Panel(_load_image(record), figures.Window(origin[0], origin[1], scale),
                                    [stage * scale + origin for stage in stages]))
    if panels:
        titles = ["mean face"] + [f"decoder layer {i + 1}" for i in range(len(data["landmarks"]))]
        figures.marr_layers(panels, titles, path)


def _draw_gallery(ctx: TableContext, rr: RowRuns, images: dict) -> None:
    run, spec, inputs = rr.done[0], rr.spec, ctx.inputs
    per_sample = store.per_sample(run.path, spec.dataset, spec.split)
    if "nme" not in per_sample:             # a split without annotations has no hardest cases
        return
    per_sample = per_sample[per_sample["item_id"].isin(list(images))]
    hardest = per_sample.sort_values(["nme", "item_id"], ascending=[False, True])["item_id"].head(GALLERY_CASES)
    methods = {}
    if "dad3dnet" in inputs.registry.variants:
        dad_dir = inputs.run_dir(inputs.run_id("dad3dnet", run.seed))
        if store.predictions(dad_dir, spec.dataset, spec.split):
            methods["DAD-3DNet"] = dad_dir
    methods[rr.row.label] = run.path
    stored = {name: (store.predictions(path, spec.dataset, spec.split) or {},
                     store.per_sample(path, spec.dataset, spec.split).set_index("item_id")["nme"])
              for name, path in methods.items()}
    cases = []
    for item_id in hardest:
        per_method = {}
        for name, (preds, nmes) in stored.items():
            if item_id in preds:
                per_method[name] = {"landmarks": np.asarray(preds[item_id]["68_landmarks_2d"]),
                                    "rotation": np.asarray(preds[item_id]["rotation_matrix"]),
                                    "nme": nmes.get(item_id)}
        record = images[item_id]
        cases.append(figures.GalleryCase(item_id, _load_image(record), _bbox_window(record["bbox"]),
                                         {name: per_method.get(name) for name in methods}))
    if cases:
        figures.gallery(cases, ctx.out_dir / "gallery.png")
