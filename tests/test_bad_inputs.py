"""Bad inputs across every CLI: each gives its exit code, a message naming the problem, and no traceback.

Each case calls the CLI's ``main(argv)`` in-process (argparse's own errors arrive as SystemExit) with
stdout and stderr captured. ``{root}`` in an argv is the case's tmp folder, which its ``setup`` fills.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from PIL import Image

from experiments import run, store
from experiments.registry import REGISTRY_DIR
from helpers import as_json, submission_from_gt, write_split
from trans3dhead import predict
from trans3dhead import scoring as official_scoring
from trans3dhead.data.synth import head_model
from trans3dhead.flame import convert
from trans3dhead.flame.topology import load_topology
from trans3dhead.data.synth import generate

MAINS: dict[str, Callable] = {"run": run.main, "scoring": official_scoring.main, "predict": predict.main,
                              "head_model": head_model.main, "convert": convert.main, "synth": generate.main}


def _bench_main(argv):
    from experiments.bench.__main__ import main
    return main(argv)


MAINS["bench"] = _bench_main


@dataclass
class Case:
    id: str
    cli: str
    argv: str                                   # split on spaces after formatting {root}
    code: int
    needles: tuple[str, ...]
    setup: Callable[[Path, dict], None] | None = None
    skip_as_root: bool = False
    extra: dict = field(default_factory=dict)


# ---- setups ----------------------------------------------------------------------------------------

def registry_with(group: str, name: str, section: str, values: dict):
    """A copy of the registry whose ``group`` entry ``name`` sets ``section`` values (a broken variant/profile)."""
    def setup(root: Path, shared: dict) -> None:
        shutil.copytree(REGISTRY_DIR, root / "registry")
        file = root / "registry" / f"{group}.yaml"
        data = yaml.safe_load(file.read_text())
        data[name].setdefault(section, {}).update(values)
        file.write_text(yaml.safe_dump(data))
    return setup


def cluster_file(text: str):
    def setup(root: Path, shared: dict) -> None:
        (root / "cluster.yaml").write_text(text)
    return setup


def write(name: str, content: str | bytes):
    def setup(root: Path, shared: dict) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def scoring(mutate_pred=None, mutate_gt=None):
    """gt.json / pred.json from the shared split, after the given edits."""
    def setup(root: Path, shared: dict) -> None:
        gt = json.loads(json.dumps(shared["gt_items"]))
        pred = as_json(submission_from_gt(gt, shared["topology"]))
        if mutate_gt:
            mutate_gt(gt)
        if mutate_pred:
            mutate_pred(pred)
        (root / "gt.json").write_text(json.dumps(gt))
        (root / "pred.json").write_text(json.dumps(pred))
    return setup


def split_copy(mutate=None):
    """root/split/val: a copy of the shared DAD-3DHeads-layout split, then ``mutate(split_dir)``."""
    def setup(root: Path, shared: dict) -> None:
        target = root / "split" / "val"
        shutil.copytree(shared["split_dir"], target)
        if mutate:
            mutate(target)
    return setup


def image(name: str = "face.png"):
    def setup(root: Path, shared: dict) -> None:
        Image.new("RGB", (40, 30)).save(root / name)
    return setup


def both(*setups):
    def setup(root: Path, shared: dict) -> None:
        for step in setups:
            step(root, shared)
    return setup


def stored_run(mutate):
    """A finished smoke run of table3's DAD-3DNet row in root/results, then ``mutate(run_dir)``."""
    def setup(root: Path, shared: dict) -> None:
        from experiments.registry import load_registry
        run_id = load_registry().resolve("dad3dnet", "smoke").run_id
        out = store.run_dir(root / "results", "smoke", run_id)
        store.write_meta(out, {"variants": ["dad3dnet"], "seed": 0, "status": "done", "benchmark": "synthheads"})
        frame = __import__("pandas").DataFrame({"item_id": ["a", "b"], "nme": [1.0, 2.0]})
        store.write_evaluation(out, "dad3dheads", "val", {"nme": 1.5}, frame, None, {})
        mutate(out)
    return setup


def set_in_pred(key, value, item="val_001"):
    return lambda pred: pred[item].__setitem__(key, value)


def edit_json(relative: str, edit):
    def mutate(split_dir: Path) -> None:
        path = split_dir / relative
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return mutate


# ---- setups of issue 28 (round two) -------------------------------------------------------------

def registry_edit(group: str, edit):
    """A copy of the registry whose ``group``.yaml is parsed, ``edit(data)`` applied, and written back."""
    def setup(root: Path, shared: dict) -> None:
        shutil.copytree(REGISTRY_DIR, root / "registry")
        file = root / "registry" / f"{group}.yaml"
        data = yaml.safe_load(file.read_text())
        edit(data)
        file.write_text(yaml.safe_dump(data))
    return setup


def registry_text(group: str, append: str | bytes):
    """A copy of the registry with raw text (or bytes) appended to ``group``.yaml (duplicate keys, encodings)."""
    def setup(root: Path, shared: dict) -> None:
        shutil.copytree(REGISTRY_DIR, root / "registry")
        file = root / "registry" / f"{group}.yaml"
        file.write_bytes(file.read_bytes() + (append if isinstance(append, bytes) else append.encode()))
    return setup


def table3(edit):
    """registry_edit of table3's entry in tables.yaml."""
    return registry_edit("tables", lambda data: edit(data["table3"]))


def first_row(edit):
    return table3(lambda t: edit(t["sections"][0]["rows"]))


def stored(aggregate: dict | None = None, rows: int = 2, meta: dict | None = None, files: dict | None = None):
    """stored_run with the aggregate, per-image row count, meta fields and extra files given."""
    def mutate(out: Path) -> None:
        pandas = __import__("pandas")
        frame = pandas.DataFrame({"item_id": [f"i{k}" for k in range(rows)], "nme": [1.0] * rows})
        store.write_evaluation(out, "dad3dheads", "val", aggregate if aggregate is not None else {"nme": 1.5},
                               frame, None, {})
        if meta:
            store.update_meta(out, **meta)
        for name, content in (files or {}).items():
            (out / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return stored_run(mutate)


def raw_eval(text: str):
    return stored_run(lambda out: (out / "eval-dad3dheads-val.json").write_text(text))


def gt_vertex(value):
    return lambda gt: gt[1]["vertices"][0].__setitem__(0, value)


def annotation_vertex(value, item="val_001"):
    def mutate(split_dir: Path) -> None:
        path = split_dir / "annotations" / f"{item}.json"
        data = json.loads(path.read_text())
        data["vertices"][3][1] = value
        path.write_text(json.dumps(data))
    return mutate


def set_key(data: dict, key: str, value) -> None:
    data[key] = value


RUN = "--profile smoke --results {root}/results --reports {root}/reports --work {root}/work --jobs {root}/jobs"
DRY = f"table3 {RUN} --dry-run"
WITH_CLUSTER_FILE = f"{DRY} --executor slurm --cluster {{root}}/cluster.yaml"   # the cases write cluster.yaml
SCORE = "score --gt {root}/gt.json --pred {root}/pred.json --flame-dir {flame}"
HUGE = np.full((68, 2), 1e308).tolist()

CASES = [
    # ---- experiments.run: arguments -----------------------------------------------------------------
    Case("run-unknown-table", "run", f"table99 {RUN} --dry-run", 2, ("unknown table", "table9")),
    Case("run-unknown-profile", "run", "table3 --profile smok --dry-run", 2, ("unknown profile", "smoke")),
    Case("run-seeds-zero", "run", f"{DRY} --seeds 0", 2, ("--seeds=0",)),
    Case("run-seeds-not-int", "run", f"{DRY} --seeds two", 2, ("--seeds", "invalid int")),
    Case("run-max-parallel-negative", "run", f"{DRY} --max-parallel -1", 2, ("--max-parallel=-1",)),
    Case("run-max-parallel-zero", "run", f"{DRY} --max-parallel 0", 2, ("--max-parallel=0",)),
    Case("run-only-unknown", "run", f"{DRY} --only trans3dhed", 2, ("--only trans3dhed", "did you mean")),
    Case("run-executor-unknown", "run", f"{DRY} --executor ray", 2, ("--executor", "invalid choice")),
    Case("run-slurm-without-cluster", "run", f"{DRY} --executor slurm", 2, ("--cluster FILE",)),
    Case("run-cluster-without-slurm", "run", f"{DRY} --cluster x.yaml", 2, ("only applies",)),
    Case("run-extra-argument", "run", f"table3 extra {RUN} --dry-run", 2, ("unexpected argument 'extra'",)),
    Case("run-cluster-missing", "run", f"{DRY} --executor slurm --cluster {{root}}/none.yaml", 2,
         ("none.yaml is missing",)),
    Case("run-cluster-not-yaml", "run", WITH_CLUSTER_FILE, 2,
         ("not valid YAML",), cluster_file("partition: [debug\n")),
    Case("run-cluster-a-list", "run", WITH_CLUSTER_FILE, 2,
         ("expected a mapping",), cluster_file("- debug\n")),
    Case("run-cluster-unknown-key", "run", WITH_CLUSTER_FILE, 2,
         ("unknown key 'partiton'", "partition"), cluster_file("partiton: debug\n")),
    Case("run-cluster-memory-text", "run", WITH_CLUSTER_FILE, 2,
         ("mem_gb='lots'",), cluster_file("partition: debug\nmem_gb: lots\n")),
    Case("run-cluster-gpus-negative", "run", WITH_CLUSTER_FILE, 2,
         ("gpus_per_node=-1",), cluster_file("partition: debug\ngpus_per_node: -1\n")),
    Case("run-cluster-setup-not-list", "run", WITH_CLUSTER_FILE, 2,
         ("setup must be a list",), cluster_file("partition: debug\nsetup: module load cuda\n")),
    Case("run-cluster-gpu-device-no-gpus", "run", f"{DRY} --executor slurm --cluster {{root}}/cluster.yaml "
         "--registry {root}/registry", 2, ("train.device is cuda", "gpus_per_node"),
         both(registry_with("profiles", "smoke", "train", {"device": "cuda"}),
              cluster_file("partition: debug\ngpus_per_node: 0\n"))),
    Case("run-set-unknown-key", "run", f"{DRY} --set train.epoch=3", 2, ("train.epoch", "did you mean")),
    Case("run-set-switch", "run", f"{DRY} --set model.qamem=none", 2, ("model.qamem",)),
    Case("run-set-negative-size", "run", f"{DRY} --set data.image_size=-16", 2, ("data.image_size=-16",)),
    # ---- experiments.run: registry values -----------------------------------------------------------
    Case("run-nheads-zero", "run", f"{DRY} --registry {{root}}/registry", 2, ("nheads=0",),
         registry_with("profiles", "smoke", "model", {"nheads": 0})),
    Case("run-unknown-backbone", "run", f"{DRY} --registry {{root}}/registry", 2, ("model.backbone='resnet5'",),
         registry_with("profiles", "smoke", "model", {"backbone": "resnet5"})),
    Case("run-negative-image-size", "run", f"{DRY} --registry {{root}}/registry", 2, ("data.image_size=-64",),
         registry_with("profiles", "smoke", "data", {"image_size": -64})),
    Case("run-zero-render-size", "run", f"{DRY} --registry {{root}}/registry", 2, ("data.render_size=0",),
         registry_with("profiles", "smoke", "data", {"render_size": 0})),
    Case("run-negative-n-train", "run", f"{DRY} --registry {{root}}/registry", 2, ("data.n_train=-5",),
         registry_with("profiles", "smoke", "data", {"n_train": -5})),
    Case("run-size-as-text", "run", f"{DRY} --registry {{root}}/registry", 2, ("data.image_size", "expected an integer"),
         registry_with("profiles", "smoke", "data", {"image_size": "big"})),
    Case("run-dropout-above-one", "run", f"{DRY} --registry {{root}}/registry", 2, ("model.dropout=1.5",),
         registry_with("profiles", "smoke", "model", {"dropout": 1.5})),
    Case("run-negative-d-model", "run", f"{DRY} --registry {{root}}/registry", 2, ("model.d_model=-32",),
         registry_with("profiles", "smoke", "model", {"d_model": -32})),
    Case("run-negative-loss-weight", "run", f"{DRY} --registry {{root}}/registry", 2, ("loss.landmark=-1",),
         registry_with("variants", "baseline", "loss", {"landmark": -1.0})),
    Case("run-zero-eval-every", "run", f"{DRY} --registry {{root}}/registry", 2, ("train.eval_every=0",),
         registry_with("profiles", "smoke", "train", {"eval_every": 0})),
    Case("run-negative-warmup", "run", f"{DRY} --registry {{root}}/registry", 2, ("train.warmup_steps=-3",),
         registry_with("profiles", "smoke", "train", {"warmup_steps": -3})),
    # ---- experiments.run: preflight and output folders ----------------------------------------------
    Case("run-paper-placeholder-paths", "run", "table3 --profile paper --dry-run --results {root}/r", 2,
         ("data.flame_dir /path/to/flame-converted", "profile 'paper'", "nothing was submitted")),
    Case("run-dad-missing-root", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("data.root /nowhere", "train.json is missing", "profile 'smoke'"),
         registry_with("profiles", "smoke", "data", {"benchmark": "dad3dheads", "root": "/nowhere",
                                                     "flame_dir": "/nowhere/flame"})),
    Case("run-dad-flame-not-a-folder", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("data.flame_dir /nowhere/flame is not a folder",),
         registry_with("profiles", "smoke", "data", {"benchmark": "dad3dheads", "root": "/nowhere",
                                                     "flame_dir": "/nowhere/flame"})),
    Case("run-pretrained-offline", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("model.pretrained", "resnet18-", "set model.pretrained: false"),
         registry_with("profiles", "smoke", "model", {"pretrained": True})),
    Case("run-cuda-without-gpu", "run", f"{DRY} --registry {{root}}/registry", 2, ("train.device is cuda",),
         registry_with("profiles", "smoke", "train", {"device": "cuda"}), extra={"needs_no_gpu": True}),
    Case("run-results-is-a-file", "run", "table3 --profile smoke --dry-run --results {root}/file --work {root}/w", 2,
         ("--results", "file is not a folder"), write("file", "x")),
    Case("run-work-under-a-file", "run", "table3 --profile smoke --dry-run --results {root}/r --work {root}/file/w", 2,
         ("--work", "is not a folder"), write("file", "x")),
    Case("run-reports-is-a-file", "run", "report table3 --profile smoke --results {root}/r --reports {root}/file", 2,
         ("--reports", "is not a folder"), write("file", "x")),
    Case("run-report-unknown-table", "run", "report tabel3 --profile smoke --results {root}/r", 2,
         ("unknown table", "table3")),
    Case("run-report-check-nothing", "run", "report --check --profile smoke --results {root}/r --reports {root}/rep", 1,
         ("does not exist",)),
    # ---- experiments.run: broken stored results are named, never a crash ---------------------------
    Case("status-meta-truncated", "run", f"status table3 {RUN}", 0, ("broken", "meta.json is corrupt"),
         stored_run(lambda out: (out / "meta.json").write_text('{"status": "do'))),
    Case("status-meta-a-list", "run", f"status table3 {RUN}", 0, ("broken", "meta.json is corrupt"),
         stored_run(lambda out: (out / "meta.json").write_text("[1, 2]"))),
    Case("status-meta-bad-status", "run", f"status table3 {RUN}", 0, ("broken",),
         stored_run(lambda out: (out / "meta.json").write_text('{"status": 7}'))),
    Case("status-eval-truncated", "run", f"status table3 {RUN}", 0, ("broken", "eval-dad3dheads-val.json"),
         stored_run(lambda out: (out / "eval-dad3dheads-val.json").write_text('{"dataset": "dad3d'))),
    Case("status-eval-string-metric", "run", f"status table3 {RUN}", 0, ("broken", "non-numbers"),
         stored_run(lambda out: (out / "eval-dad3dheads-val.json").write_text(json.dumps(
             {"dataset": "dad3dheads", "split": "val", "aggregate": {"nme": "1.5"}, "efficiency": {}})))),
    Case("status-eval-a-list", "run", f"status table3 {RUN}", 0, ("broken", "expected an object"),
         stored_run(lambda out: (out / "eval-dad3dheads-val.json").write_text("[]"))),
    Case("status-per-sample-truncated", "run", f"status table3 {RUN}", 0, ("broken", "eval-dad3dheads-val.csv"),
         stored_run(lambda out: (out / "eval-dad3dheads-val.csv").write_text('item_id,nme\n"a,1'))),
    Case("status-curve-truncated", "run", f"status table3 {RUN}", 0, ("broken", "curve.csv is corrupt"),
         stored_run(lambda out: (out / "curve.csv").write_text('epoch,step,val_nme\n1,"10'))),
    Case("status-efficiency-truncated", "run", f"status table1 {RUN}", 0, ("broken", "efficiency.json is not valid"),
         stored_run(lambda out: (out / "efficiency.json").write_text('{"efficiency": {"par'))),
    Case("plan-eval-truncated-is-redone", "run", DRY, 0, ("[run ]", "eval-dad3dheads-val.json is not valid JSON"),
         stored_run(lambda out: (out / "eval-dad3dheads-val.json").write_text('{"dataset": "dad3d'))),
    Case("report-eval-aggregate-a-list", "run", f"report table3 {RUN}", 0, ("wrote",),
         stored_run(lambda out: (out / "eval-dad3dheads-val.json").write_text(json.dumps(
             {"dataset": "dad3dheads", "split": "val", "aggregate": [1.5]})))),
    Case("report-curve-truncated", "run", f"report table3 {RUN}", 0, ("wrote",),
         stored_run(lambda out: (out / "curve.csv").write_text('epoch,step,val_nme\n1,"10'))),
    # ---- trans3dhead.scoring score ---------------------------------------------------------------
    Case("score-gt-missing", "scoring", "score --gt {root}/none.json --pred {root}/pred.json", 2,
         ("none.json does not exist",)),
    Case("score-gt-not-json", "scoring", SCORE, 2, ("gt.json is not valid JSON",),
         both(scoring(), write("gt.json", "[{"))),
    Case("score-gt-a-folder", "scoring", "score --gt {root} --pred {root}/pred.json", 2, ("is a folder",),
         scoring()),
    Case("score-gt-an-object", "scoring", SCORE, 2, ("must hold a list",), both(scoring(), write("gt.json", "{}"))),
    Case("score-gt-items-not-objects", "scoring", SCORE, 2, ("position [0, 1]", "gt.json"),
         both(scoring(), write("gt.json", "[1, 2]"))),
    Case("score-pred-a-list", "scoring", SCORE, 2, ("pred.json", "object keyed by item_id"),
         both(scoring(), write("pred.json", "[]"))),
    Case("score-pred-binary", "scoring", SCORE, 2, ("pred.json is not valid JSON",),
         both(scoring(), write("pred.json", b"\xff\xfe\x00"))),
    Case("score-flame-dir-missing", "scoring", "score --gt {root}/gt.json --pred {root}/pred.json "
         "--flame-dir {root}/noflame", 2, ("noflame", "--flame-dir"), scoring()),
    Case("score-landmarks-overflow", "scoring", SCORE, 1, ("val_001: nme not finite", "overflows"),
         scoring(set_in_pred("68_landmarks_2d", HUGE))),
    Case("score-overflow-allowed", "scoring", f"{SCORE} --allow-missing", 0,
         ("items averaged", "nme 2 of 3", "chamfer 3 of 3"), scoring(set_in_pred("68_landmarks_2d", HUGE))),
    Case("score-mesh-overflow", "scoring", SCORE, 1, ("val_002:", "chamfer", "not finite"),
         scoring(lambda p: p["val_002"].__setitem__("N_landmarks_3d", np.full((len(p["val_002"]["N_landmarks_3d"]), 3),
                                                                               1e307).tolist()))),
    Case("score-gt-zero-box", "scoring", SCORE, 1, ("val_000: nme not finite", "has no area"),
         scoring(mutate_gt=lambda gt: gt[0].__setitem__("bbox", [10, 10, 0, 0]))),
    Case("score-gt-box-text", "scoring", SCORE, 1, ("val_000: scoring failed",),
         scoring(mutate_gt=lambda gt: gt[0].__setitem__("bbox", "big"))),
    Case("score-item-missing", "scoring", SCORE, 1, ("val_002: missing from the submission", "--allow-missing"),
         scoring(lambda p: p.pop("val_002"))),
    Case("score-wrong-shape", "scoring", SCORE, 1, ("'rotation_matrix' has shape (2, 2)",),
         scoring(set_in_pred("rotation_matrix", [[1, 0], [0, 1]]))),
    Case("score-nan", "scoring", SCORE, 1, ("holds non-finite numbers",),
         scoring(set_in_pred("rotation_matrix", [[float("nan")] * 3] * 3))),
    Case("score-text-values", "scoring", SCORE, 1, ("'68_landmarks_2d' is not a numeric array",),
         scoring(set_in_pred("68_landmarks_2d", [["a", "b"]] * 68))),
    Case("score-item-not-object", "scoring", SCORE, 1, ("val_001: prediction is str",),
         scoring(lambda p: p.__setitem__("val_001", "x"))),
    Case("score-unknown-item", "scoring", SCORE, 1, ("val_999: not in the ground truth",),
         scoring(lambda p: p.__setitem__("val_999", p["val_000"]))),
    Case("score-out-under-a-file", "scoring", f"{SCORE} --out {{root}}/file/s.json", 1,
         ("cannot write", "file/s.json"), both(scoring(), write("file", "x"))),
    Case("score-z5-mode-unknown", "scoring", f"{SCORE} --z5-mode paper", 2, ("--z5-mode", "invalid choice"),
         scoring()),
    # ---- trans3dhead.scoring make-gt -------------------------------------------------------------
    Case("make-gt-no-split", "scoring", "make-gt --split-dir {root}/none --out {root}/gt.json", 2,
         ("none.json is missing",)),
    Case("make-gt-split-not-json", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val.json is not valid JSON",), split_copy(lambda d: (d / "val.json").write_text("[{"))),
    Case("make-gt-split-an-object", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val.json: expected a list",), split_copy(lambda d: (d / "val.json").write_text("{}"))),
    Case("make-gt-entry-a-number", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val.json entry 0: expected an object",), split_copy(lambda d: (d / "val.json").write_text("[3]"))),
    Case("make-gt-entry-lacks-keys", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val.json entry 1 lacks ['bbox']",),
         split_copy(edit_json("val.json", lambda e: [e[0], {k: v for k, v in e[1].items() if k != "bbox"}]))),
    Case("make-gt-annotation-truncated", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("annotation of item val_001", "val_001.json is not valid JSON"),
         split_copy(lambda d: (d / "annotations" / "val_001.json").write_text('{"vertices": [[0.1, '))),
    Case("make-gt-annotation-lacks-keys", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val_000.json of item val_000 lacks",),
         split_copy(lambda d: (d / "annotations" / "val_000.json").write_text('{"vertices": []}'))),
    Case("make-gt-image-corrupt", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("images/val_002.png of item val_002", "not an image"),
         split_copy(lambda d: (d / "images" / "val_002.png").write_text("not a png"))),
    Case("make-gt-out-a-folder", "scoring", "make-gt --split-dir {root}/split/val --out {root}/split", 1,
         ("cannot write", "split"), split_copy()),
    # ---- trans3dhead.predict -----------------------------------------------------------------------
    Case("predict-checkpoint-missing", "predict", "{root}/none.pt {root}/face.png --out {root}/out", 2,
         ("checkpoint", "none.pt does not exist"), image()),
    Case("predict-image-missing", "predict", "{root}/none.pt {root}/nope.png --out {root}/out", 2,
         ("image", "nope.png does not exist"), image()),
    Case("predict-image-not-an-image", "predict", "{root}/none.pt {root}/notes.png --out {root}/out", 2,
         ("notes.png is not a readable image",), write("notes.png", "hello")),
    Case("predict-image-a-folder", "predict", "{root}/none.pt {root} --out {root}/out", 2, ("it is a folder",)),
    Case("predict-box-zero", "predict", "{root}/none.pt {root}/face.png --out {root}/out --bbox 1 1 0 5", 2,
         ("width and height must be finite and > 0",), image()),
    Case("predict-box-nan", "predict", "{root}/none.pt {root}/face.png --out {root}/out --bbox 1 1 nan 5", 2,
         ("width and height must be finite",), image()),
    Case("predict-box-outside", "predict", "{root}/none.pt {root}/face.png --out {root}/out --bbox 100 100 5 5", 2,
         ("lies outside", "40x30"), image()),
    Case("predict-device-unknown", "predict", "{root}/none.pt {root}/face.png --out {root}/out --device tpu", 2,
         ("--device 'tpu'",), image()),
    Case("predict-device-unavailable", "predict", "{root}/none.pt {root}/face.png --out {root}/out --device cuda:7",
         2, ("--device cuda:7", "CUDA device(s) visible"), image()),
    Case("predict-out-a-file", "predict", "{root}/none.pt {root}/face.png --out {root}/face.png", 2,
         ("--out", "face.png is not a folder"), image()),
    Case("predict-bbox-three-numbers", "predict", "{root}/none.pt {root}/face.png --out {root}/o --bbox 1 2 3", 2,
         ("--bbox", "expected 4 arguments"), image()),
    # ---- head model assets / flame convert --------------------------------------------------------
    Case("head-model-out-a-file", "head_model", "--out {root}/file", 2, ("--out", "file is not a folder"),
         write("file", "x")),
    Case("head-model-seed-negative", "head_model", "--out {root}/a --seed -1", 2, ("--seed=-1",)),
    Case("head-model-out-missing-arg", "head_model", "--seed 1", 2, ("--out", "required")),
    Case("convert-src-missing", "convert", "--src {root}/none.pkl --static-dir {root} --out {root}/o", 2,
         ("--src", "none.pkl is not a file")),
    Case("convert-src-not-a-pickle", "convert", "--src {root}/model.pkl --static-dir {root} --out {root}/o", 2,
         ("model.pkl is not a readable FLAME pickle",), write("model.pkl", "not a pickle")),
    Case("convert-static-missing", "convert", "--src {root}/model.pkl --static-dir {root}/st --out {root}/o", 2,
         ("--static-dir", "st is not a folder"), write("model.pkl", "x")),
    Case("convert-out-a-file", "convert", "--src {root}/model.pkl --static-dir {root} --out {root}/model.pkl", 2,
         ("--out", "model.pkl is not a folder"), write("model.pkl", "x")),
    # ---- SynthHeads generator ---------------------------------------------------------------------
    Case("synth-negative-count", "synth", "--out {root}/s --train -4", 2, ("train count -4",)),
    Case("synth-negative-aflw", "synth", "--out {root}/s --aflw -1", 2, ("aflw count -1",)),
    Case("synth-size-zero", "synth", "--out {root}/s --image-size 0", 2, ("image size 0", "--image-size")),
    Case("synth-workers-zero", "synth", "--out {root}/s --workers 0", 2, ("workers 0",)),
    Case("synth-seed-negative", "synth", "--out {root}/s --seed -2", 2, ("--seed=-2",)),
    Case("synth-out-a-file", "synth", "--out {root}/file", 2, ("--out", "file is not a folder"), write("file", "x")),
    Case("synth-count-text", "synth", "--out {root}/s --train many", 2, ("--train", "invalid int")),
    # ---- experiments.bench --------------------------------------------------------------------------
    Case("bench-no-name", "bench", "", 2, ("usage: python -m experiments.bench",)),
    Case("bench-unknown-name", "bench", "qamen", 2, ("usage: python -m experiments.bench", "qamem")),
    Case("bench-qamem-heads-text", "bench", "qamem --heads eight", 2, ("--heads", "invalid int")),
    # ---- issue 28: a damaged store never shows a number that is not the run's own -------------------
    *[Case(f"{kind}-{name}", "run", f"status table3 {RUN}" if kind == "status" else DRY, 0,
           needles if kind == "status" else ("[run ]", *needles[1:]), setup)
      for kind in ("status", "plan")
      for name, needles, setup in (
          ("foreign-run-id", ("broken", "belongs to run 'feedc0ffee'"), stored(meta={"run_id": "feedc0ffee"})),
          ("per-image-cut-short", ("broken", "has 2 row(s) but", "scored 5 item(s)"),
           stored({"nme": 1.5, "n_items": 5})),
          ("nme-negative", ("broken", "'nme' is -5"), stored({"nme": -5.0})),
          ("z5-above-one", ("broken", "'z5' is 3.0"), stored({"nme": 1.0, "z5": 3.0})),
          ("nme-nan", ("broken", "'nme' is nan"),
           raw_eval('{"dataset": "dad3dheads", "split": "val", "aggregate": {"nme": NaN}}')),
          ("nme-infinite", ("broken", "'nme' is inf"),
           raw_eval('{"dataset": "dad3dheads", "split": "val", "aggregate": {"nme": Infinity}}')),
          ("aggregate-empty", ("broken", "holds none of the metrics"), stored({})),
          ("n-items-text", ("broken", "'n_items'"), stored({"nme": 1.0, "n_items": "two"})),
          ("marr-corrupt", ("broken", "marr-dad3dheads-val.npz is corrupt"),
           stored(files={"marr-dad3dheads-val.npz": b"PK\x03\x04 not a zip"})),
          ("predictions-corrupt", ("broken", "predictions-dad3dheads-val.json is corrupt"),
           stored(files={"predictions-dad3dheads-val.json": '{"i0": {"68_la'})),
          ("images-corrupt", ("broken", "images-dad3dheads-val.json is corrupt"),
           stored(files={"images-dad3dheads-val.json": '{"i0": '})),
          ("images-a-list", ("broken", "images-dad3dheads-val.json is corrupt"),
           stored(files={"images-dad3dheads-val.json": '[1, 2]'})),
          ("predictions-items-not-objects", ("broken", "predictions-dad3dheads-val.json is corrupt"),
           stored(files={"predictions-dad3dheads-val.json": '{"i0": 3}'})),
      )],
    Case("status-log-not-on-this-machine", "run", f"status table3 {RUN}", 0,
         ("/nowhere/work/smoke", "not on this machine"), stored(meta={"log_dir": "/nowhere/work/smoke/x"})),
    Case("status-failed-run-error-line", "run", f"status table3 {RUN}", 0,
         ("failed", "error: DatasetError: image x.png is missing"),
         stored(meta={"status": "failed", "error": "DatasetError: image x.png is missing"})),
    # ---- issue 28: the registry refuses what would silently change a table -------------------------
    Case("registry-duplicate-variant", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("variants.yaml", "duplicate key 'qa'", "remove or rename one"),
         registry_text("variants", "\nqa:\n  base: baseline\n  label: again\n")),
    Case("registry-duplicate-key-inside-entry", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("variants.yaml", "duplicate key 'label'"),
         registry_text("variants", "\nextra:\n  base: baseline\n  label: a\n  label: b\n")),
    Case("registry-duplicate-table", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("tables.yaml", "duplicate key 'table3'"), registry_text("tables", "\ntable3:\n  title: again\n")),
    Case("registry-duplicate-profile", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("profiles.yaml", "duplicate key 'smoke'"), registry_text("profiles", "\nsmoke:\n  description: x\n")),
    *[Case(f"registry-{group}-not-utf8", "run", f"{DRY} --registry {{root}}/registry", 2,
           (f"{group}.yaml is not UTF-8", "save it as UTF-8"), registry_text(group, b"\n# caf\xe9\n"))
      for group in ("variants", "tables", "profiles")],
    Case("registry-duplicate-row-label", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3", "row label 'DAD-3DNet' is used 2 times"),
         first_row(lambda rows: rows[1].__setitem__("label", rows[0]["label"]))),
    *[Case(f"registry-row-label-{name}", "run", f"{DRY} --registry {{root}}/registry", 2,
           ("table3", "row label", "must be text"), first_row(lambda rows, v=value: rows[0].__setitem__("label", v)))
      for name, value in (("a-number", 7), ("a-list", ["a"]), ("empty", ""), ("null", None))],
    Case("registry-row-label-missing", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3", "row label None must be text"), first_row(lambda rows: rows[0].pop("label"))),
    Case("registry-row-variant-a-list", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("row 'DAD-3DNet' variant ['dad3dnet']", "must be a variant name"),
         first_row(lambda rows: rows[0].__setitem__("variant", ["dad3dnet"]))),
    Case("registry-rows-bare-strings", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3", "rows", "is not a list of rows"),
         table3(lambda t: t["sections"][0].__setitem__("rows", ["dad3dnet", "baseline"]))),
    Case("registry-rows-a-number", "run", f"{DRY} --registry {{root}}/registry", 2, ("table3", "is not a list of rows"),
         table3(lambda t: t["sections"][0].__setitem__("rows", 7))),
    *[Case(f"registry-sections-{name}", "run", f"{DRY} --registry {{root}}/registry", 2,
           ("table3: sections", "is not a list of sections"), table3(lambda t, v=value: set_key(t, "sections", v)))
      for name, value in (("a-number", 7), ("text", "main"), ("list-of-text", ["main"]), ("a-mapping", {"a": 1}))],
    Case("registry-section-unknown-key", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3 section", "unknown key 'row'"), table3(lambda t: t["sections"][0].__setitem__("row", []))),
    *[Case(f"registry-metrics-{name}", "run", f"{DRY} --registry {{root}}/registry", 2,
           ("table3: metrics", "must be a list of names"), table3(lambda t, v=value: set_key(t, "metrics", v)))
      for name, value in (("nested-list", [["nme"]]), ("text", "nme"), ("a-number", 3))],
    *[Case(f"registry-paper-{name}", "run", f"{DRY} --registry {{root}}/registry", 2,
           ("row 'DAD-3DNet' paper value nme=", "is not a number"),
           first_row(lambda rows, v=value: rows[0]["paper"].__setitem__("nme", v)))
      for name, value in (("text", "1.9%"), ("value-a-list", [1.9]), ("a-bool", True))],
    Case("registry-paper-a-list", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("row 'DAD-3DNet' paper [1.9]", "must map metrics to numbers"),
         first_row(lambda rows: rows[0].__setitem__("paper", [1.9]))),
    Case("registry-title-a-number", "run", f"{DRY} --registry {{root}}/registry", 2, ("table3: title 3", "must be text"),
         table3(lambda t: set_key(t, "title", 3))),
    Case("registry-split-a-number", "run", f"{DRY} --registry {{root}}/registry", 2, ("table3: split 1", "must be text"),
         table3(lambda t: set_key(t, "split", 1))),
    Case("registry-efficiency-text", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3: efficiency 'yes'", "true or false"), table3(lambda t: set_key(t, "efficiency", "yes"))),
    Case("registry-figures-text", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3: figures", "must be a list of names"), table3(lambda t: set_key(t, "figures", "deltas"))),
    Case("registry-steps-a-mapping", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("table3: steps", "is not a list of"), table3(lambda t: set_key(t, "steps", {"from": "baseline"}))),
    Case("registry-step-metrics-text", "run", f"{DRY} --registry {{root}}/registry", 2,
         ("step metrics", "must be a list of names"), table3(lambda t: t["steps"][0].__setitem__("metrics", "nme"))),
    # ---- issue 28: the command line refuses before anything is submitted ----------------------------
    Case("run-only-empty", "run", f"{DRY} --only=", 2, ("--only ''", "names no variant", "dad3dnet")),
    Case("run-only-commas", "run", f"{DRY} --only=,", 2, ("--only ','", "names no variant")),
    Case("status-seeds-zero", "run", f"status table3 {RUN} --seeds 0", 2, ("--seeds=0",)),
    Case("report-seeds-zero", "run", f"report table3 {RUN} --seeds 0", 2, ("--seeds=0",)),
    Case("run-seeds-huge", "run", f"{DRY} --seeds 100000", 2, ("--seeds=100000", "at most 100", "retrains every row")),
    Case("status-seeds-huge", "run", f"status table3 {RUN} --seeds 100000", 2, ("--seeds=100000", "at most 100")),
    *[Case(f"run-{flag}-empty", "run", f"table3 --profile smoke --dry-run --{flag}=", 2,
           (f"--{flag}", "'' is empty: give a path"))
      for flag in ("results", "reports", "work", "jobs", "registry")],
    Case("run-cluster-empty-path", "run", f"{DRY} --executor slurm --cluster=", 2, ("--cluster", "'' is empty")),
    Case("run-check-on-a-table", "run", f"{DRY} --check", 2, ("--check does nothing with 'table3'", "report")),
    Case("status-only", "run", f"status table3 {RUN} --only dad3dnet", 2, ("--only does nothing with 'status'",)),
    Case("status-force", "run", f"status table3 {RUN} --force", 2, ("--force does nothing with 'status'",)),
    Case("report-dry-run", "run", f"report table3 {RUN} --dry-run", 2, ("--dry-run does nothing with 'report'",)),
    Case("list-estimate", "run", "list --estimate", 2, ("--estimate does nothing with 'list'",)),
    Case("run-cluster-empty-file", "run", WITH_CLUSTER_FILE, 2,
         ("cluster.yaml is empty", "set at least partition"), cluster_file("")),
    Case("run-cluster-only-comments", "run", WITH_CLUSTER_FILE, 2,
         ("cluster.yaml is empty",), cluster_file("# partition: gpu\n")),
    Case("run-cluster-duplicate-key", "run", WITH_CLUSTER_FILE, 2,
         ("duplicate key 'partition'",), cluster_file("partition: a\npartition: b\n")),
    Case("run-cluster-not-utf8", "run", WITH_CLUSTER_FILE, 2,
         ("cluster.yaml is not UTF-8",), write("cluster.yaml", b"partition: caf\xe9\n")),
    Case("run-train-set-below-one-batch", "run", f"{DRY} --set data.n_train=8", 2,
         ("data.n_train=8 is smaller than one batch", "train.batch_size=16", "nothing was submitted")),
    Case("run-image-size-not-divided-by-stride", "run", f"{DRY} --set data.image_size=48 --set model.backbone_stride=32",
         2, ("data.image_size=48 is not a multiple of model.backbone_stride=32", "e.g. 32")),
    Case("run-readme-example-says-the-fix", "run",
         "table3 --dry-run --results {root}/r --set train.epochs=16 --set train.lr=1e-3", 2,
         ("train.lr_drop_epoch=43", "add --set train.lr_drop_epoch=11")),
    Case("run-readme-example-fixed", "run", "table3 --dry-run --results {root}/r --set train.epochs=16 "
         "--set train.lr=1e-3 --set train.lr_drop_epoch=11 --set train.lr_second_drop_epoch=13", 0,
         ("16 epochs", "evaluated on dad3dheads/val")),
    # ---- issue 28: scoring ---------------------------------------------------------------------------
    Case("make-gt-empty-split", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val.json lists no items",), split_copy(lambda d: (d / "val.json").write_text("[]"))),
    Case("make-gt-nan-vertex", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val_001.json of item val_001", "1 non-finite vertex"), split_copy(annotation_vertex(float("nan")))),
    Case("make-gt-text-vertex", "scoring", "make-gt --split-dir {root}/split/val --out {root}/gt.json", 2,
         ("val_001", "not a numeric array"), split_copy(annotation_vertex("0.1"))),
    Case("score-gt-nan-vertex", "scoring", SCORE, 1, ("val_001: the ground-truth vertices hold 1 non-finite",),
         scoring(mutate_gt=gt_vertex(float("nan")))),
    Case("score-gt-vertices-missing", "scoring", SCORE, 1, ("val_001: the ground-truth vertices",),
         scoring(mutate_gt=lambda gt: gt[1].pop("vertices"))),
    Case("score-rotation-text", "scoring", SCORE, 1, ("val_001: 'rotation_matrix' is not a numeric array",),
         scoring(set_in_pred("rotation_matrix", [["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]]))),
    Case("score-rotation-bools", "scoring", SCORE, 1, ("val_001: 'rotation_matrix' is not a numeric array",),
         scoring(set_in_pred("rotation_matrix", [[True, False, False], [False, True, False], [False, False, True]]))),
    Case("score-seven-landmarks-text", "scoring", SCORE, 1, ("val_001: '7_landmarks_3d' is not a numeric array",),
         scoring(set_in_pred("7_landmarks_3d", [["0.1", "0.2", "0.3"]] * 7))),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory, flame_dir):
    """The FLAME folder and a tiny DAD-3DHeads-layout split with its GT, shared by the cases."""
    root = tmp_path_factory.mktemp("bad-inputs")
    split_dir = write_split(root / "dad3dheads", flame_dir)
    return {"flame": flame_dir, "split_dir": split_dir, "gt_items": official_scoring.make_gt(split_dir),
            "topology": load_topology(flame_dir)}


def invoke(cli: str, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = MAINS[cli](argv)
        except SystemExit as exit_:           # argparse's usage errors
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60 and len({case.id for case in CASES}) == len(CASES)
    assert {case.cli for case in CASES} == set(MAINS)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, shared, tmp_path, monkeypatch):
    if case.extra.get("needs_no_gpu"):
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is visible here")
    monkeypatch.chdir(tmp_path)                 # relative defaults (data/, results/) land in the tmp folder
    if case.setup:
        case.setup(tmp_path, shared)
    argv = case.argv.format(root=tmp_path, flame=shared["flame"]).split()
    code, out, err = invoke(case.cli, argv)
    text = out + err
    assert "Traceback" not in text, text
    assert code == case.code, text
    for needle in case.needles:
        assert needle in text, f"{needle!r} not in:\n{text}"


# ---- the DAD-3DHeads reader: every data error names the file and the item --------------------------

DATA_CASES = {
    "image-corrupt": (lambda d: (d / "images" / "val_001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken"),
                      ("images/val_001.png", "item val_001", "cannot be decoded")),
    "image-truncated": (lambda d: (d / "images" / "val_001.png").write_bytes(
        (d / "images" / "val_001.png").read_bytes()[:60]), ("images/val_001.png", "item val_001")),
    "annotation-truncated": (lambda d: (d / "annotations" / "val_001.json").write_text('{"vertices": [[0.1'),
                             ("annotations/val_001.json", "item val_001", "not valid JSON")),
    "split-entry-a-string": (edit_json("val.json", lambda e: [e[0], "val_001"]),
                             ("val.json item 1", "expected an object")),
    "split-bbox-short": (edit_json("val.json", lambda e: [e[0], {**e[1], "bbox": [1, 2]}]),
                         ("val.json item val_001", "bbox [1, 2] is not [x, y, w, h]")),
}


@pytest.mark.parametrize("name", list(DATA_CASES))
def test_data_errors_name_the_file_and_item(name, shared, tmp_path):
    from trans3dhead.data import DAD3DHeadsDataset, DatasetError
    mutate, needles = DATA_CASES[name]
    split_dir = tmp_path / "val"
    shutil.copytree(shared["split_dir"], split_dir)
    mutate(split_dir)
    with pytest.raises(DatasetError) as caught:
        dataset = DAD3DHeadsDataset(split_dir, shared["flame"], 64, train=False)
        dataset[1]
    for needle in needles:
        assert needle in str(caught.value)


# ---- issue 28: images and AFLW annotations read as they are, or refused ----------------------------

def _dataset(split_dir: Path, shared):
    from trans3dhead.data import DAD3DHeadsDataset
    return DAD3DHeadsDataset(split_dir, shared["flame"], 64, train=False)


def test_a_16_bit_grayscale_png_is_decoded_not_white(shared, tmp_path):
    eight, sixteen = tmp_path / "eight" / "val", tmp_path / "sixteen" / "val"
    for split_dir in (eight, sixteen):
        shutil.copytree(shared["split_dir"], split_dir)
    width, height = Image.open(eight / "images" / "val_001.png").size
    # a dark-to-light ramp: the shared split's images are black, which a clipping decoder also leaves black
    gray = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    Image.fromarray(gray).save(eight / "images" / "val_001.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(sixteen / "images" / "val_001.png")
    assert Image.open(sixteen / "images" / "val_001.png").mode.startswith("I")
    wide, narrow = _dataset(sixteen, shared)[1]["image"], _dataset(eight, shared)[1]["image"]
    assert float(narrow[0].std()) > 0.1                   # the crop holds the ramp
    assert float((wide - narrow).abs().max()) < 0.02


def test_an_image_mode_without_an_rgb_reading_is_refused(shared, tmp_path):
    from trans3dhead.data import DatasetError
    split_dir = tmp_path / "val"
    shutil.copytree(shared["split_dir"], split_dir)
    Image.fromarray(np.full((40, 40), 0.5, dtype=np.float32)).save(split_dir / "images" / "val_001.tiff")
    (split_dir / "images" / "val_001.tiff").replace(split_dir / "images" / "val_001.png")
    with pytest.raises(DatasetError, match="val_001.png of item val_001.*mode F"):
        _dataset(split_dir, shared)[1]


@pytest.mark.parametrize("where", ["pose", "landmarks"])
def test_an_aflw_annotation_with_nan_is_named_not_dropped_as_a_profile(tmp_path, where):
    import scipy.io

    from trans3dhead.data import DatasetError
    from trans3dhead.data.aflw2000 import AFLW2000Dataset
    pose, points = np.array([[0.1, 0.2, 0.0, 0, 0, 0, 1.0]]), np.ones((3, 68))
    scipy.io.savemat(tmp_path / "image00002.mat", {"Pose_Para": pose, "pt3d_68": points})
    if where == "pose":
        pose = pose.copy()
        pose[0, 1] = np.nan
    else:
        points = points.copy()
        points[0, 5] = np.nan
    scipy.io.savemat(tmp_path / "image00004.mat", {"Pose_Para": pose, "pt3d_68": points})
    with pytest.raises(DatasetError, match="image00004.mat.*non-finite"):
        AFLW2000Dataset(tmp_path, 64)
