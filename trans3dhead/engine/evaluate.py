"""Evaluation of a checkpoint on one (dataset, split): official metrics per sample, predictions in the
official submission format and MARR per-layer data (Figures 7-8). Efficiency figures do not depend on the
weights: ``efficiency.measure_config`` measures them without a checkpoint."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trans3dhead import metrics
from trans3dhead.scoring import score
from trans3dhead.config import DataConfig, RunConfig
from trans3dhead.data import build_dataset, flame_dir_for
from trans3dhead.engine.batches import autocast, crop_units_to_original, eval_loader, landmark_nme, posed_to_original
from trans3dhead.engine.checkpoint import load_checkpoint
from trans3dhead.engine.runtime import select_device
from trans3dhead.flame.topology import load_topology
from trans3dhead.geometry import aflw_euler_from_image_rotation
from trans3dhead.models import build_model


@dataclass
class EvalResult:
    """What :func:`evaluate` returns: ``aggregate`` (metric means and counts), ``per_sample`` (one row per
    item), ``predictions`` (official submission format by item id, each with an ``image`` record), ``marr``
    (per-layer residuals and landmarks for Figures 7-8; None without MARR)."""
    aggregate: dict
    per_sample: pd.DataFrame
    predictions: dict
    marr: dict | None = None


def load_model(checkpoint: str | Path, data_cfg: DataConfig | None = None, device: str = "auto"):
    """(model in eval mode, RunConfig, data config, device, bf16: whether the run trained under bf16
    autocast) from a training checkpoint."""
    ckpt = load_checkpoint(checkpoint)
    cfg = RunConfig.from_dict(ckpt["config"])
    data_cfg = data_cfg or cfg.data
    dev = select_device(device)
    model = build_model(cfg.model, flame_dir_for(data_cfg), ckpt["mean_face"])
    model.load_state_dict(ckpt["model"])
    return model.to(dev).eval(), cfg, data_cfg, dev, bool(ckpt.get("bf16", False))


def image_record(ds, index: int, batch: dict, i: int, image_size: int) -> dict:
    """Where an item came from: its image file and the evaluation crop (Figure 7 and the gallery draw the
    network's crop-unit landmarks on it). Not an official submission key; scoring ignores it."""
    image_path = ds.image_path(index) if hasattr(ds, "image_path") else None
    return {"path": None if image_path is None else str(image_path), "crop_origin": batch["crop_origin"][i].tolist(),
            "crop_scale": float(batch["crop_scale"][i]), "input_size": image_size,
            "bbox": batch["bbox"][i].tolist() if "bbox" in batch else None}


def _submission_entries(out: dict, batch: dict, image_size: int) -> dict:
    lmk = crop_units_to_original(out["landmarks_2d"].float(), batch, image_size).cpu().numpy()
    vertices = posed_to_original(out["posed_vertices"].float(), batch, image_size).cpu().numpy()
    seven = posed_to_original(out["landmarks_3d"][:, list(metrics.SEVEN_LANDMARKS)].float(), batch, image_size)
    seven, rotation = seven.cpu().numpy(), out["rotation"].float().cpu().numpy()
    return {item_id: {"68_landmarks_2d": lmk[i], "N_landmarks_3d": vertices[i], "7_landmarks_3d": seven[i],
                      "rotation_matrix": rotation[i]}
            for i, item_id in enumerate(batch["item_id"])}


def _marr_arrays(out: dict, batch: dict, image_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    if not out["residuals_per_layer"]:
        return None
    bbox = batch["bbox"].double()
    per_pixel = batch["crop_scale"].double()[:, None, None] * image_size
    size = bbox[:, None, 2:4]                                           # normalise x by w, y by h
    residuals = torch.stack([r.detach().double().cpu() * per_pixel / size for r in out["residuals_per_layer"]])
    landmarks = torch.stack([p.detach().double().cpu() for p in out["landmarks_per_layer"]])
    return residuals.numpy(), landmarks.numpy()


def aflw_predicted_euler(rotation_image: np.ndarray) -> np.ndarray:
    """The (pitch, yaw, roll) degrees compared with AFLW2000-3D's ``Pose_Para[:3] * 180 / pi``: the predicted
    image-space rotation ``(B, 3, 3)`` taken into 3DDFA's frame (``geometry.aflw_euler_from_image_rotation``)."""
    return aflw_euler_from_image_rotation(rotation_image)


@torch.no_grad()
def evaluate(checkpoint: str | Path, dataset: str, split: str, *, data_cfg: DataConfig | None = None,
             batch_size: int = 32, device: str = "auto") -> EvalResult:
    """Scores ``checkpoint`` on ``dataset`` ('dad3dheads' or 'aflw2000') and ``split`` with the official metrics.

    DAD-3DHeads goes through :func:`trans3dhead.scoring.score` (a split without annotations gets
    predictions only), AFLW2000-3D through pose errors; ``mean_face_nme`` is the NME of always predicting
    the mean face F_a, for reference. ``data_cfg`` replaces the checkpoint's.
    """
    model, cfg, data_cfg, dev, bf16 = load_model(checkpoint, data_cfg, device)
    mean_face = torch.as_tensor(load_checkpoint(checkpoint)["mean_face"], dtype=torch.float32)
    ds = build_dataset(data_cfg, dataset, split, train=False, seed=cfg.train.seed)
    size = data_cfg.image_size
    predictions, eulers, marr_parts, ids, mean_face_nme = {}, [], [], [], []
    for batch in eval_loader(ds, batch_size):
        if "landmarks_2d" in batch and dataset == "dad3dheads":   # the reference: always predict F_a
            mean_face_nme.append(landmark_nme(mean_face.expand(len(batch["item_id"]), -1, -1), batch, size))
        with autocast(dev, bf16):
            out = model(batch["image"].to(dev))
        entries = _submission_entries(out, batch, size)
        for i, item_id in enumerate(batch["item_id"]):
            entries[item_id]["image"] = image_record(ds, len(ids) + i, batch, i, size)
        predictions.update(entries)
        ids.extend(batch["item_id"])
        if dataset == "aflw2000":
            eulers.append((aflw_predicted_euler(out["rotation"].float().cpu().numpy()), batch["euler"].numpy()))
        marr = _marr_arrays(out, batch, size)
        if marr is not None:
            marr_parts.append(marr)

    if dataset == "aflw2000":
        pred_e = np.concatenate([e[0] for e in eulers])
        gt_e = np.concatenate([e[1] for e in eulers])
        per = metrics.pose_errors(pred_e, gt_e)
        per_sample = pd.DataFrame({"item_id": ids, **per})
        aggregate = metrics.aggregate(per)
    elif getattr(ds, "has_annotations", False):
        gt_items = [{"id": e["item_id"], "bbox": e["bbox"], "vertices": ds.annotation(i)["vertices"],
                     "model_view_matrix": ds.annotation(i)["model_view"],
                     "projection_matrix": ds.annotation(i)["projection"],
                     "image_height": _image_height(ds, i)} for i, e in enumerate(ds.entries)]
        result = score(gt_items, predictions, load_topology(flame_dir_for(data_cfg)))
        per_sample, aggregate = result.per_item, result.aggregate
        if not cfg.model.has_landmark_branch:
            # only-3DMM predicts no landmarks: the paper reports its NME as "-". The projected FLAME
            # landmarks' NME is kept under its own name, never as the landmark metric.
            aggregate["nme_projected_3dmm"] = aggregate.pop("nme")
            per_sample = per_sample.drop(columns="nme")
    else:       # a test split without annotations: predictions only
        per_sample, aggregate = pd.DataFrame({"item_id": ids}), {}
    aggregate["n_items"] = len(ids)
    if mean_face_nme:
        aggregate["mean_face_nme"] = float(torch.cat(mean_face_nme).mean())

    marr = None
    if marr_parts:
        marr = {"residuals": np.concatenate([m[0] for m in marr_parts], axis=1),
                "landmarks": np.concatenate([m[1] for m in marr_parts], axis=1),
                "mean_face": model.marr.mean_face.detach().cpu().numpy() if getattr(model, "marr", None) else None,
                "item_ids": np.array(ids)}
    return EvalResult(aggregate, per_sample, predictions, marr)


def _image_height(ds, index: int) -> int:
    from PIL import Image
    with Image.open(ds.image_path(index)) as image:
        return image.height
