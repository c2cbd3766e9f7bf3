"""Where the features of the procedural head are: the 68 landmarks and per-vertex regions.

Landmarks are anatomical points given in the frontal plane (x, y) and dropped onto the
surface along -z, except the 17 contour points, which follow the jaw edge (where the surface
turns to face down) and run up the jaw ramus to ear level. Each point is embedded
barycentrically into the grid triangle that contains it in (azimuth, elevation), so it lies
exactly on the mesh. Region labels use the same feature geometry, so rendered features
(eye corners, lip corners, brows, nostrils) coincide with their landmarks.
Order: the official 68 (iBUG): contour 0-16 (subject's right to left), brows 17-26, nose
27-35, eyes 36-47, outer lips 48-59, inner lips 60-67; subject's right is x < 0.
"""
from __future__ import annotations

import numpy as np

from trans3dhead.data.synth import head_shape as hs

REGIONS = {"skin": 0, "lips": 1, "brows": 2, "eye_white": 3, "iris": 4, "nostril": 5,
           "ear": 6, "neck": 7, "scalp": 8, "mouth": 9}

# Brow centre lines (subject's left; mirrored for the right), outer end last.
BROW_LINE = np.array([[0.013, 0.046], [0.024, 0.0515], [0.036, 0.0535], [0.047, 0.0515], [0.056, 0.047]])
NOSTRILS = np.array([[0.0068, -0.0205]])
OUTER_LIP_HALF_WIDTH = 0.0215


def _eye_outline(side: int, u: np.ndarray, upper: bool) -> np.ndarray:
    """Lid line of eye ``side`` (0 right, 1 left) at ``u`` in [-1, 1] across the eye (x grows with u)."""
    ex, ey = hs.EYE_CENTRES[side]
    height = hs.EYE_HALF_HEIGHT[0] if upper else -hs.EYE_HALF_HEIGHT[1]
    return np.stack([ex + u * hs.EYE_HALF_WIDTH, ey + height * (1 - u ** 2)], axis=-1)


def _frontal_targets() -> np.ndarray:
    """(51, 2) frontal (x, y) of landmarks 17-67 (inner-lip ones are refined on the lip row)."""
    right_brow = BROW_LINE[::-1] * [-1, 1]                       # 17 (outer) .. 21 (inner)
    left_brow = BROW_LINE                                        # 22 (inner) .. 26 (outer)
    nose_bridge = np.array([[0.0, 0.030], [0.0, 0.017], [0.0, 0.004], [0.0, -0.0095]])
    nostril_base = np.array([[-0.0125, -0.0195], [-0.0065, -0.0215], [0.0, -0.0225],
                             [0.0065, -0.0215], [0.0125, -0.0195]])
    third = np.array([-1.0, -1 / 3, 1 / 3, 1.0])
    right_eye = np.concatenate([_eye_outline(0, third, True),                    # 36 outer .. 39 inner
                                _eye_outline(0, third[1:3][::-1], False)])       # 40, 41
    left_eye = np.concatenate([_eye_outline(1, -third, True)[::-1],              # 42 inner .. 45 outer
                               _eye_outline(1, -third[1:3][::-1], False)[::-1]])  # 46, 47
    w = OUTER_LIP_HALF_WIDTH
    y = hs.MOUTH_Y
    outer_lips = np.array([[-w, y], [-0.0135, y + 0.0065], [-0.0055, y + 0.0095], [0.0, y + 0.0088],
                           [0.0055, y + 0.0095], [0.0135, y + 0.0065], [w, y],
                           [0.0135, y - 0.0085], [0.0055, y - 0.0113], [0.0, y - 0.0117],
                           [-0.0055, y - 0.0113], [-0.0135, y - 0.0085]])
    inner_lips = np.array([[-0.0185, y], [-0.0075, y], [0.0, y], [0.0075, y],
                           [0.0185, y], [0.0075, y], [0.0, y], [-0.0075, y]])
    return np.concatenate([right_brow, left_brow, nose_bridge, nostril_base, right_eye, left_eye,
                           outer_lips, inner_lips])


def jaw_edge_elevation(azimuth: np.ndarray) -> np.ndarray:
    """Elevation (deg) of the jaw edge: climbing from the neck, where the under-jaw surface
    (normal y < -0.5) turns to face forward again."""
    elevation = np.linspace(-62.0, -5.0, 115)
    az, el = np.meshgrid(np.asarray(azimuth, float), elevation, indexing="ij")
    points = hs.cast(az, el, steps=120, refine=20)
    facing_down = hs.sdf_normals(points)[..., 1] < -0.5
    entered = np.maximum.accumulate(facing_down, axis=1)
    edge = np.argmax(entered & ~facing_down, axis=1)
    return elevation[np.maximum(edge - 1, 0)]


def contour_params() -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) of the 17 contour landmarks: up the right ramus, along the jaw, up the left."""
    s = np.linspace(-1.0, 1.0, 17)
    jaw_span, ramus_az = 66.0, np.array([84.0, 81.0, 76.0])
    azimuth = np.empty(17)
    azimuth[3:14] = jaw_span * s[3:14] / np.abs(s[3])
    azimuth[:3], azimuth[14:] = -ramus_az, ramus_az[::-1]
    elevation = jaw_edge_elevation(azimuth)
    # The ramus points climb from the jaw angle towards ear level, as the iBUG contour does.
    angle_el = jaw_edge_elevation(np.array([jaw_span]))[0]
    climb = angle_el + (np.array([-4.0, -16.0, -28.0]) - angle_el) * np.array([1.0, 0.62, 0.3])
    elevation[:3], elevation[14:] = climb, climb[::-1]
    return azimuth, elevation


def landmark_params() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(azimuth, elevation, side) of the 68 landmarks; side -1 = lower lip across the cut."""
    contour_az, contour_el = contour_params()
    points = hs.frontal_surface_point(_frontal_targets())
    az, el = hs.param_of(points)
    azimuth = np.concatenate([contour_az, az])
    elevation = np.concatenate([contour_el, el])
    side = np.zeros(68, dtype=int)
    side[[65, 66, 67]] = -1
    return azimuth, elevation, side


def embed(mesh: hs.HeadMesh, azimuth: np.ndarray, elevation: np.ndarray,
          side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid triangle and barycentric weights of each (azimuth, elevation) point."""
    cols, rows = mesh.column_azimuth, mesh.row_elevation
    face_idx, bary = [], []
    for az, el, sd in zip(azimuth, elevation, side):
        c = int(np.clip(np.searchsorted(cols, az) - 1, 0, cols.size - 1))
        c_next = cols[c + 1] if c + 1 < cols.size else cols[0] + 360.0
        x = (az - cols[c]) / (c_next - cols[c])
        r = int(np.clip(np.searchsorted(rows, el) - 1, 0, rows.size - 2))
        y = (el - rows[r]) / (rows[r + 1] - rows[r])
        on_lip_row = r + 1 == mesh.mouth_row and np.isclose(y, 1.0) or r == mesh.mouth_row and np.isclose(y, 0.0)
        if on_lip_row:  # exactly on the cut: choose the upper or lower lip's triangle
            r, y = (mesh.mouth_row - 1, 1.0) if sd < 0 else (mesh.mouth_row, 0.0)
        x, y = float(np.clip(x, 0, 1)), float(np.clip(y, 0, 1))
        # Quad corners in row r (bottom) and r + 1 (top); matches build_mesh's triangles.
        c1 = (c + 1) % cols.size
        top = mesh.lower_row_of_mouth if r + 1 == mesh.mouth_row else mesh.row_of[r + 1]
        v00, v01, v10, v11 = mesh.row_of[r, c], mesh.row_of[r, c1], top[c], top[c1]
        if x >= y:
            k, weights = 0, {v00: 1 - x, v01: x - y, v11: y}
        else:
            k, weights = 1, {v00: 1 - y, v10: y - x, v11: x}
        f = mesh.face_of_quad[(r, c, k)]
        face_idx.append(f)
        bary.append([weights[v] for v in mesh.faces[f]])
    return np.asarray(face_idx, dtype=np.int64), np.asarray(bary, dtype=np.float64)


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as PolygonPath  # matplotlib is a project dependency
    return PolygonPath(polygon).contains_points(points)


def region_labels(mesh: hs.HeadMesh, landmarks: np.ndarray) -> np.ndarray:
    """Per-vertex region id (:data:`REGIONS`) from the feature geometry and the landmarks (68, 3)."""
    v = mesh.vertices
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    normals = hs.sdf_normals(v)
    labels = np.full(len(v), REGIONS["skin"], dtype=np.int64)
    front = z > 0.04
    az = np.abs(np.nan_to_num(mesh.azimuth))
    hairline = np.interp(az, [0, 45, 70, 95, 125, 180], [0.074, 0.068, 0.05, 0.042, -0.035, -0.065])
    labels[y > hairline] = REGIONS["scalp"]
    contour_az, contour_el = contour_params()
    below_jaw = mesh.elevation < np.interp(np.nan_to_num(mesh.azimuth), contour_az, contour_el) - 1.0
    labels[(below_jaw & (az < 84)) | ((az >= 84) & (y < -0.055))] = REGIONS["neck"]
    ear = hs._ellipsoid(hs._mirror(v), (0.077, 0.004, -0.008), (0.011, 0.031, 0.018))
    labels[(np.abs(x) > 0.066) & (ear < 0.004) & (y < 0.04)] = REGIONS["ear"]
    xy = np.stack([np.abs(x), y], axis=-1)
    brow_d = np.min([_segment_distance(xy, a, b) for a, b in zip(BROW_LINE[:-1], BROW_LINE[1:])], axis=0)
    labels[front & (brow_d < 0.0042)] = REGIONS["brows"]
    for side in range(2):
        u = (x - hs.EYE_CENTRES[side, 0]) / hs.EYE_HALF_WIDTH
        dy = y - hs.EYE_CENTRES[side, 1]
        inside = (np.abs(u) < 1) & (dy < hs.EYE_HALF_HEIGHT[0] * (1 - u ** 2)) & \
                 (dy > -hs.EYE_HALF_HEIGHT[1] * (1 - u ** 2)) & front
        labels[inside] = REGIONS["eye_white"]
        iris = inside & (np.hypot(x - hs.EYE_CENTRES[side, 0], dy) < 0.0058)
        labels[iris] = REGIONS["iris"]
    nostril = (((np.abs(x) - NOSTRILS[0, 0]) / 0.0038) ** 2 + ((y - NOSTRILS[0, 1]) / 0.0028) ** 2 < 1) & \
              (normals[:, 1] < -0.2) & front
    labels[nostril] = REGIONS["nostril"]
    lips = _inside_polygon(v[:, :2], landmarks[48:60, :2]) & front
    labels[lips] = REGIONS["lips"]
    labels[mesh.mouth_pocket] = REGIONS["mouth"]
    return labels


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=-1)
