"""Sampling one SynthHeads scene (head, pose, camera, light, background, occluders) and rendering it.

The camera is a pinhole written as the official pair of matrices: ``model_view`` (OpenGL camera
looking along -z) and ``projection``, such that the official projection (homogeneous v -> MV -> P,
x/w and y/w in pixels, y = H - y) gives exactly the pixels the rasteriser draws: ground truth is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trans3dhead.data.synth.appearance import draw_occluder, region_albedo, shade, textured_background
from trans3dhead.data.synth.render import interpolate, rasterize, vertex_normals
from trans3dhead.flame.decoder import FlameDecoder
from trans3dhead.geometry import model_view_from_rotation, project_official, rotation_from_euler

NEAR, FAR = 0.05, 10.0
HEAD_HEIGHT_M = 0.25       # rough crown-to-chin+neck extent used to frame the camera


@dataclass
class Scene:
    """One rendered SynthHeads image with its exact ground truth: the model-space vertices (metres), the
    official camera pair (``model_view``, ``projection``) and the pose; ``occluded`` and ``expression``
    become the item's attributes."""
    image: np.ndarray           # (H, W, 3) uint8
    vertices: np.ndarray        # (V, 3) model space
    model_view: np.ndarray      # (4, 4)
    projection: np.ndarray      # (4, 4)
    euler: np.ndarray           # (pitch, yaw, roll) degrees, official convention
    occluded: bool
    expression: bool


def projection_matrix(focal: float, size: int) -> np.ndarray:
    """Pinhole with the principal point at the image centre, in OpenGL clip form (w = -z)."""
    c = size / 2.0
    return np.array([
        [focal, 0.0, -c, 0.0],
        [0.0, focal, -c, 0.0],
        [0.0, 0.0, -(FAR + NEAR) / (FAR - NEAR), -2 * FAR * NEAR / (FAR - NEAR)],
        [0.0, 0.0, -1.0, 0.0],
    ])


def sample_pose(rng: np.random.Generator) -> np.ndarray:
    """(pitch, yaw, roll) degrees: yaw over +-90, pitch and roll mostly moderate, 15% atypical."""
    yaw = rng.uniform(-90, 90)
    if rng.random() < 0.15:
        pitch, roll = rng.uniform(-60, 60), rng.uniform(-60, 60)
    else:
        pitch, roll = rng.normal(0, 12), rng.normal(0, 10)
    return np.array([pitch, yaw, roll])


def sample_scene(decoder: FlameDecoder, regions: np.ndarray, size: int, rng: np.random.Generator) -> Scene:
    """Draws a head (shape, expression, jaw), a pose (:func:`sample_pose`) and a camera from ``rng``, and renders it.

    The focal length is 1.5-3x the image size and the distance makes the head 45-70% of the image
    height, off centre by up to 12% of the image; the same ``rng`` state gives the same scene.
    """
    layout = decoder.layout
    shape = rng.normal(0, 1, layout.n_shape)
    expressive = rng.random() < 0.5
    expression = rng.normal(0, 1.0 if expressive else 0.3, layout.n_expression)
    jaw = np.array([rng.uniform(0, 0.3) if expressive else rng.uniform(0, 0.05), 0, 0])
    with torch.no_grad():
        vertices = decoder.model_vertices_from(torch.tensor(shape[None], dtype=torch.float32),
                                               torch.tensor(expression[None], dtype=torch.float32),
                                               torch.tensor(jaw[None], dtype=torch.float32))[0].double().numpy()

    euler = sample_pose(rng)
    focal = size * rng.uniform(1.5, 3.0)
    fraction = rng.uniform(0.45, 0.7)                       # head height / image height
    distance = focal * HEAD_HEIGHT_M / (fraction * size)
    centre = vertices.mean(0)
    shift = rng.uniform(-0.12, 0.12, 2) * HEAD_HEIGHT_M / fraction
    rotation_image = rotation_from_euler(euler)
    rotation_camera = np.diag([1.0, -1.0, -1.0]) @ rotation_image
    translation = np.array([shift[0], shift[1], -distance]) - rotation_camera @ centre
    model_view = model_view_from_rotation(rotation_image, translation)
    projection = projection_matrix(focal, size)

    image, occluded = render_scene(vertices, decoder.faces.numpy(), regions, model_view, projection, size, rng)
    return Scene(image, vertices, model_view, projection, euler, occluded, expressive)


def render_scene(vertices: np.ndarray, faces: np.ndarray, regions: np.ndarray, model_view: np.ndarray,
                 projection: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Rasterises the mesh through the official camera and shades it (region albedo, one random light) over
    a textured background, adds an occluder 30% of the time, then pixel noise.
    Returns the ``(size, size, 3)`` uint8 image and whether an occluder was drawn."""
    pixels = torch.as_tensor(project_official(vertices, model_view, projection, size), dtype=torch.float32)
    camera = vertices @ model_view[:3, :3].T + model_view[:3, 3]
    depth = torch.as_tensor(-camera[:, 2], dtype=torch.float32)
    faces_t = torch.as_tensor(faces, dtype=torch.long)
    fragments = rasterize(pixels, depth, faces_t, size, size)

    normals = vertex_normals(torch.as_tensor(camera, dtype=torch.float32), faces_t)
    pixel_normals = interpolate(fragments, faces_t, normals)
    pixel_normals = pixel_normals / pixel_normals.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    albedo = interpolate(fragments, faces_t, region_albedo(regions, rng))
    light = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 1), rng.uniform(0.3, 1.5)])
    head = shade(albedo, pixel_normals, light, ambient=rng.uniform(0.25, 0.6))

    image = textured_background(size, rng)
    image = torch.where(fragments.mask[..., None], head, image)
    occluded = False
    if rng.random() < 0.3:
        face_px = pixels.numpy()
        anchor = face_px[rng.integers(len(face_px))]
        radii = rng.uniform(0.06, 0.2, 2) * size
        draw_occluder(image, anchor, radii, rng.uniform(0, np.pi), rng)
        occluded = True
    image = image + torch.as_tensor(rng.normal(0, 0.015, image.shape), dtype=torch.float32)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), occluded
