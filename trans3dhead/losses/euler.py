"""Euler Angles Loss (paper section 3.4.1, eq. 7): L_euler = SmoothL1(E_p - E_t).

E_p comes from the predicted rotation, E_t from the GT model-view matrix, both in the official
(pitch, yaw, roll) convention in degrees. The difference is wrapped to [-180, 180) so that a
prediction of 179 deg for a target of -179 deg costs 2 deg, not 358.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trans3dhead.geometry import euler_from_rotation


def euler_angles_loss(pred_rotation: torch.Tensor, target_euler: torch.Tensor) -> torch.Tensor:
    """``pred_rotation`` (B, 3, 3) image space; ``target_euler`` (B, 3) degrees."""
    difference = euler_from_rotation(pred_rotation.float()) - target_euler.float()
    wrapped = torch.remainder(difference + 180.0, 360.0) - 180.0
    return F.smooth_l1_loss(wrapped, torch.zeros_like(wrapped))
