"""Moving batches to a device and mapping network outputs back to original-image pixels."""
from __future__ import annotations

import contextlib

import torch
from torch.utils.data import DataLoader, Dataset

TENSOR_KEYS_FOR_TRAINING = ("image", "landmarks_2d", "presence", "projected_vertices", "model_vertices",
                            "rotation", "euler")


def to_device(batch: dict, device: torch.device) -> dict:
    """Moves the tensors a training step reads (``TENSOR_KEYS_FOR_TRAINING``) to ``device``, non-blocking;
    every other entry (crop geometry, bbox, ids) is left as it is."""
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) and k in TENSOR_KEYS_FOR_TRAINING else v)
            for k, v in batch.items()}


def autocast(device: torch.device, bf16: bool):
    """A bf16 ``torch.autocast`` context on ``device`` when ``bf16`` is set (``runtime.use_bf16``), else a no-op."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def crop_units_to_original(points: torch.Tensor, batch: dict, image_size: int) -> torch.Tensor:
    """(B, P, 2) crop units -> original pixels with each sample's crop geometry."""
    scale = batch["crop_scale"].to(points.device, torch.float64)[:, None, None]
    origin = batch["crop_origin"].to(points.device, torch.float64)[:, None, :]
    return points.double() * image_size * scale + origin


def posed_to_original(posed: torch.Tensor, batch: dict, image_size: int) -> torch.Tensor:
    """Image-space (B, P, 3) crop-normalised ([-1, 1] spans the crop) -> original pixel units."""
    xy = crop_units_to_original((posed[..., :2] + 1.0) / 2.0, batch, image_size)
    z = posed[..., 2:].double() * image_size / 2.0 * batch["crop_scale"].to(posed.device, torch.float64)[:, None, None]
    return torch.cat([xy, z], dim=-1)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """An unshuffled loader, last partial batch kept: every item once, in dataset order (``evaluate`` relies
    on that order to find each item's index)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def landmark_nme(pred_crop: torch.Tensor, batch: dict, image_size: int) -> torch.Tensor:
    """Per-sample NME (official normalisation, x100) of crop-unit landmarks against the batch's GT."""
    pred = crop_units_to_original(pred_crop.float(), batch, image_size)
    gt = crop_units_to_original(batch["landmarks_2d"].to(pred_crop.device).float(), batch, image_size)
    bbox = batch["bbox"].to(pred.device, torch.float64)
    return (pred - gt).norm(dim=-1).mean(-1) / torch.sqrt(bbox[:, 2] * bbox[:, 3]) * 100.0
