"""Figures: written, non-empty, byte-for-byte reproducible; Figures 7-8 and the gallery from a store
and a dataset folder in the official layout."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

from experiments import report, store
from experiments.registry import REGISTRY_DIR, RegistryError, _parse_table, load_registry
from experiments.report import figures

PROFILE = "smoke"
N_IMAGES, IMAGE_SIZE = 6, 96
ITEMS = [f"val_{k:03d}" for k in range(N_IMAGES)]
# Named unlike the paper's figures: the `figures:` key, not the name, picks what is drawn.
FIGURE_TABLES = {name: {"title": title, "kind": "figure", "dataset": "dad3dheads", "split": "val", "metrics": [],
                        "figures": [figure],
                        "sections": [{"name": "", "rows": [{"label": "Trans3DHead", "variant": "trans3dhead",
                                                            "paper": {}}]}]}
                 for name, title, figure in (("stages", "MARR stages", "marr_layers"),
                                             ("histogram", "Residual histogram", "residual_histogram"))}


def _png_is_reproducible(make, path):
    make(path)
    first = path.read_bytes()
    make(path)
    assert path.read_bytes() == first and len(first) > 5000
    assert b"Software" not in first and b"matplotlib" not in first      # no version stamp in the file
    return first


def test_plots_are_written_deterministically(tmp_path):
    rng = np.random.default_rng(0)
    residuals = np.stack([rng.laplace(0, 0.08, (10, 68, 2)), rng.laplace(0, 0.02, (10, 68, 2))])
    _png_is_reproducible(lambda p: figures.residual_histogram(residuals, p), tmp_path / "figure8.png")
    curve = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [5.0, 3.0, 2.0], "val_nme": [20.0, 12.0, 10.0]})
    _png_is_reproducible(lambda p: figures.training_curves({"a (seed 0)": curve, "b (seed 0)": curve * 1.1}, p),
                         tmp_path / "curves.png")
    deltas = pd.DataFrame({"step": ["a → b", "a → b", "b → c"], "metric": ["NME ↓", "Z5 Acc. ↑", "NME ↓"],
                           "delta": [-0.5, 0.001, 0.2], "lo": [-0.6, -0.001, 0.1], "hi": [-0.4, 0.003, 0.3],
                           "verdict": ["holds", "not distinguishable from noise",
                                       "reversed (rests on unconverged runs)"]})
    _png_is_reproducible(lambda p: figures.ablation_deltas(deltas, p), tmp_path / "deltas.png")


# -- Figures 7 and 8 and the gallery through the report, on a hand-made store and dataset ---------
@pytest.fixture()
def figure_setup(tmp_path):
    root = tmp_path / "registry"
    root.mkdir()
    for name in ("variants.yaml", "profiles.yaml"):
        shutil.copy(REGISTRY_DIR / name, root / name)
    shutil.copytree(REGISTRY_DIR / "clusters", root / "clusters")
    (root / "tables.yaml").write_text(yaml.safe_dump(FIGURE_TABLES, sort_keys=False))
    registry = load_registry(root)

    dataset = tmp_path / "dataset"
    (dataset / "val" / "images").mkdir(parents=True)
    for k, item_id in enumerate(ITEMS):           # the images only: the store names them and their crops
        image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (40 + 30 * k, 60, 90))
        ImageDraw.Draw(image).ellipse((28, 20, 68, 76), fill=(220, 180, 150))
        image.save(dataset / "val" / "images" / f"{item_id}.png")

    rng = np.random.default_rng(0)
    mean_face = np.stack([np.linspace(0.3, 0.7, 68), 0.5 + 0.2 * np.sin(np.linspace(0, 6, 68))], axis=1)
    residuals = np.stack([rng.normal(0, 0.05, (N_IMAGES, 68, 2)), rng.normal(0, 0.01, (N_IMAGES, 68, 2))])
    layers = mean_face + np.cumsum(residuals, axis=0)                         # eq. 5: add each layer's residual
    k, origin = 60.0, np.array([18.0, 16.0])                                   # the evaluation crop, in pixels
    results = tmp_path / "results"
    for variant, landmarks in (("trans3dhead", layers[-1]), ("dad3dnet", layers[-1] + 0.02)):
        run = registry.resolve(variant, PROFILE, 0)
        path = store.run_dir(results, PROFILE, run.run_id)
        config = run.config.to_dict()
        store.write_config(path, config)
        store.write_meta(path, {"variants": [variant], "seed": 0, "status": "done", "benchmark": "synthheads",
                                "code_version": "abc1234", "device": "cpu", "date": "2026-11-24"})
        nme = np.linspace(1.0, 6.0, N_IMAGES) + (0.5 if variant == "dad3dnet" else 0.0)
        image = {"crop_origin": origin.tolist(), "crop_scale": k / 48, "input_size": 48, "bbox": [28, 20, 40, 56]}
        predictions = {item: {"68_landmarks_2d": landmarks[i] * k + origin, "rotation_matrix": np.eye(3),
                              "image": {**image, "path": str(dataset / "val" / "images" / f"{item}.png")}}
                       for i, item in enumerate(ITEMS)}
        marr = ({"residuals": np.abs(residuals), "landmarks": layers, "mean_face": mean_face,
                 "item_ids": np.array(ITEMS)} if variant == "trans3dhead" else None)
        store.write_evaluation(path, "dad3dheads", "val", {"nme": float(nme.mean())},
                               pd.DataFrame({"item_id": ITEMS, "nme": nme}), marr, predictions)
        store.atomic_write_bytes(path / "curve.csv", b"epoch,step,val_nme\n1,10,9\n2,20,5\n3,30,4.99\n4,40,4.98\n")
    return registry, results, dataset


def test_figures_7_8_and_gallery_from_the_store(figure_setup, tmp_path):
    registry, results, dataset = figure_setup
    reports = tmp_path / "reports"
    report.write_reports(registry, PROFILE, ["stages", "histogram"], results, reports)
    out = reports / PROFILE
    for name in ("figure7.png", "histogram.png", "gallery.png"):     # Figure 8's picture is named by its table
        assert (out / name).stat().st_size > 5000, name
    figure7 = (out / "stages.md").read_text()
    assert "![Figure 7](figure7.png)" in figure7 and "![gallery](gallery.png)" in figure7
    assert re.search(r"converged: yes \([+-]\d+\.\d%\); status: done", figure7)
    figure8 = (out / "histogram.md").read_text()
    assert "| layer 1 | " in figure8 and "| layer 2 | " in figure8
    # layer 2 residuals are smaller; one seed's run: the crossed model covers images only, and says so
    assert re.search(r"over 1 seed\(s\) × 6 images \(crossed seed × image model, p [0-9.e-]+; detectable "
                     r"0\.\d{4}\): \*\*holds \(one seed: images only\)\*\*\.$", figure8.rstrip())
    assert report.check_reports(registry, PROFILE, results, reports) == []

    # Without the dataset the image figures cannot be drawn: the committed ones stay and are not compared;
    # the markdown does not depend on whether the images were there.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    shutil.rmtree(dataset)
    assert report.check_reports(registry, PROFILE, results, reports) == []
    report.write_reports(registry, PROFILE, ["stages", "histogram"], results, reports)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_store_keeps_each_items_image_record(figure_setup):
    registry, results, dataset = figure_setup
    path = store.run_dir(results, PROFILE, registry.resolve("trans3dhead", PROFILE, 0).run_id)
    images = store.images(path, "dad3dheads", "val")
    assert sorted(images) == ITEMS and images[ITEMS[0]]["input_size"] == 48
    assert images[ITEMS[0]]["path"].endswith(f"{ITEMS[0]}.png") and images[ITEMS[0]]["crop_origin"] == [18.0, 16.0]
    assert "image" not in json.loads((path / "predictions-dad3dheads-val.json").read_text())[ITEMS[0]]


def test_figures_are_chosen_by_the_registry_key():
    from experiments.registry import FIGURES
    from experiments.report.figure_sections import ROW_FIGURES, TABLE_FIGURES
    assert tuple(TABLE_FIGURES) == FIGURES["table"] and tuple(ROW_FIGURES) == FIGURES["figure"]
    bad = {**FIGURE_TABLES["stages"], "figures": ["curves"]}
    with pytest.raises(RegistryError, match="unknown figure 'curves' for a figure"):
        _parse_table("stages", bad, load_registry().variants)


def test_the_report_reads_no_dataset_code():
    code = ("import sys, experiments.report, experiments.run; "
            "print(sorted(m for m in sys.modules if m.startswith('trans3dhead.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
