"""The procedural head surface: a signed distance field of anatomical parts and its mesh.

Parts (metres, FLAME frame: y up, z towards the viewer, x to the subject's left): cranium,
face and jaw volumes, chin, cheekbones, nose (bridge, tip, alae), brow ridges, lips, ears,
eye sockets with eyeballs, and a neck. The surface is star-shaped around ``RAY_ORIGIN``, so
it is meshed as a (latitude, longitude) grid of rays, each vertex at the outermost crossing
of the zero level set. The grid is denser on the face; one grid row runs along the lip line
and is cut (its vertices duplicated for the lower lip) so the jaw can open the mouth, and a
small pocket behind the cut closes the mouth cavity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RAY_ORIGIN = np.array([0.0, -0.01, -0.02])
N_COLUMNS = 64          # around the vertical axis
N_ROWS = 42             # from the neck cut to just below the crown pole
ELEVATION_RANGE = (-74.0, 86.0)   # degrees; below -74 the rays leave through the (open) neck
MOUTH_Y = -0.0505       # lip line height at the midline
MOUTH_HALF_WIDTH = 0.022
EYE_CENTRES = np.array([[-0.032, 0.027], [0.032, 0.027]])   # (x, y), subject's right first
EYE_HALF_WIDTH = 0.0135
EYE_HALF_HEIGHT = (0.0058, 0.0045)                            # upper, lower lid
EYEBALL_RADIUS = 0.0125
EYEBALL_Z = 0.066


# ----------------------------------------------------------------------------- SDF primitives
def _ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate signed distance to an ellipsoid (exact on the surface, good near it)."""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _capsule(p: np.ndarray, a, b, radius: float) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1) - radius


def _smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _smooth_subtract(a: np.ndarray, cut: np.ndarray, k: float) -> np.ndarray:
    return -_smooth_union(-a, cut, k)


def _mirror(p: np.ndarray) -> np.ndarray:
    """Fold x so a right-hand part also makes its mirror image."""
    return np.concatenate([np.abs(p[..., :1]), p[..., 1:]], axis=-1)


def head_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of the head at points ``(..., 3)``."""
    m = _mirror(p)
    d = _ellipsoid(p, (0.0, 0.025, -0.015), (0.074, 0.088, 0.098))                 # cranium
    d = _smooth_union(d, _ellipsoid(p, (0.0, 0.01, 0.02), (0.066, 0.075, 0.075)), 0.02)      # face
    d = _smooth_union(d, _ellipsoid(p, (0.0, -0.045, 0.022), (0.056, 0.05, 0.066)), 0.02)    # jaw
    d = _smooth_union(d, _ellipsoid(p, (0.0, -0.077, 0.064), (0.021, 0.018, 0.02)), 0.012)   # chin
    d = _smooth_union(d, _ellipsoid(m, (0.046, 0.004, 0.052), (0.022, 0.018, 0.024)), 0.015)  # cheekbones
    d = _smooth_union(d, _ellipsoid(m, (0.047, -0.05, -0.004), (0.013, 0.024, 0.03)), 0.02)    # jaw angles
    d = _smooth_union(d, _capsule(p, (0.0, -0.32, -0.03), (0.0, -0.02, -0.03), 0.049), 0.012)  # neck
    d = _smooth_union(d, _capsule(m, (0.013, 0.047, 0.088), (0.05, 0.05, 0.072), 0.003), 0.012)  # brow ridges
    nose = _capsule(p, (0.0, 0.03, 0.088), (0.0, -0.006, 0.107), 0.0065)
    nose = _smooth_union(nose, _ellipsoid(p, (0.0, -0.011, 0.106), (0.011, 0.009, 0.011)), 0.008)
    nose = _smooth_union(nose, _ellipsoid(m, (0.0125, -0.017, 0.095), (0.008, 0.0065, 0.008)), 0.006)
    d = _smooth_union(d, nose, 0.008)
    upper_lip = _capsule(m, (0.0, -0.0445, 0.0955), (0.019, -0.0475, 0.088), 0.0052)
    lower_lip = _capsule(m, (0.0, -0.0565, 0.0925), (0.017, -0.0535, 0.086), 0.0058)
    d = _smooth_union(d, _smooth_union(upper_lip, lower_lip, 0.002), 0.007)
    d = _smooth_union(d, _ellipsoid(m, (0.077, 0.004, -0.008), (0.011, 0.031, 0.018)), 0.006)  # ears
    socket = _ellipsoid(m, (0.032, 0.027, 0.083), (0.0165, 0.0078, 0.0125))
    d = _smooth_subtract(d, socket, 0.003)
    eyeball = np.linalg.norm(m - np.array([0.032, 0.027, EYEBALL_Z]), axis=-1) - EYEBALL_RADIUS
    return np.minimum(d, eyeball)


def sdf_normals(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Unit outward normals of the SDF by central differences."""
    grads = [head_sdf(p + eps * e) - head_sdf(p - eps * e) for e in np.eye(3)]
    g = np.stack(grads, axis=-1)
    return g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------- ray casting
def directions(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Unit ray directions; azimuth 0 looks along +z (the face), +90 along +x."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=-1)


def cast(azimuth_deg: np.ndarray, elevation_deg: np.ndarray, t_max: float = 0.4, steps: int = 160,
         refine: int = 30) -> np.ndarray:
    """Outermost surface point along each ray from :data:`RAY_ORIGIN` (shape ``(..., 3)``)."""
    d = directions(np.asarray(azimuth_deg, float), np.asarray(elevation_deg, float))
    shape = d.shape[:-1]
    d = d.reshape(-1, 3)
    t = np.linspace(0.0, t_max, steps)
    inside = head_sdf(RAY_ORIGIN + t[None, :, None] * d[:, None, :]) < 0
    last = steps - 1 - np.argmax(inside[:, ::-1], axis=1)            # last inside sample
    lo, hi = t[last], t[np.minimum(last + 1, steps - 1)]
    for _ in range(refine):                                         # bisection on [inside, outside]
        mid = 0.5 * (lo + hi)
        is_in = head_sdf(RAY_ORIGIN + mid[:, None] * d) < 0
        lo, hi = np.where(is_in, mid, lo), np.where(is_in, hi, mid)
    return (RAY_ORIGIN + (0.5 * (lo + hi))[:, None] * d).reshape(*shape, 3)


def param_of(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) in degrees of points seen from :data:`RAY_ORIGIN`."""
    v = np.asarray(points, float) - RAY_ORIGIN
    az = np.rad2deg(np.arctan2(v[..., 0], v[..., 2]))
    el = np.rad2deg(np.arctan2(v[..., 1], np.hypot(v[..., 0], v[..., 2])))
    return az, el


def frontal_surface_point(xy: np.ndarray) -> np.ndarray:
    """Front-most surface point under each frontal ``(x, y)`` (a ray along -z), ``(..., 3)``."""
    xy = np.asarray(xy, float)
    z = np.linspace(0.2, -0.05, 500)
    p = np.concatenate([np.broadcast_to(xy[..., None, :], (*xy.shape[:-1], z.size, 2)),
                        np.broadcast_to(z[:, None], (*xy.shape[:-1], z.size, 1))], axis=-1)
    first = np.argmax(head_sdf(p) < 0, axis=-1)
    hi, lo = z[np.maximum(first - 1, 0)], z[first]                   # outside, inside
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        is_in = head_sdf(np.concatenate([xy, mid[..., None]], axis=-1)) < 0
        lo, hi = np.where(is_in, mid, lo), np.where(is_in, hi, mid)
    return np.concatenate([xy, (0.5 * (lo + hi))[..., None]], axis=-1)


# ----------------------------------------------------------------------------- the grid
def _warp(s: np.ndarray, a: float) -> np.ndarray:
    """Odd monotone map of [-1, 1] onto itself, ``a`` times denser at 0 than on average."""
    return (s + a * s ** 3) / (1 + a)


def grid_angles() -> tuple[np.ndarray, np.ndarray]:
    """Column azimuths and row elevations (degrees); one row lies exactly on the lip line."""
    s = np.linspace(-1.0, 1.0, N_COLUMNS, endpoint=False)
    azimuth = 180.0 * _warp(s, 2.2)
    lo, hi = ELEVATION_RANGE
    centre = -8.0
    r = np.linspace(-1.0, 1.0, N_ROWS)
    warped = _warp(r, 1.6)
    elevation = np.where(warped < 0, centre + warped * (centre - lo), centre + warped * (hi - centre))
    mouth_el = float(param_of(frontal_surface_point(np.array([0.0, MOUTH_Y])))[1])
    elevation[np.argmin(np.abs(elevation - mouth_el))] = mouth_el
    return azimuth, np.sort(elevation)


@dataclass
class HeadMesh:
    """The procedural head mesh (metres, FLAME frame) and the ray grid it was cast on (:func:`build_mesh`).

    Rows go up in elevation, columns around the vertical axis; the lip row is cut, its lower-lip copies in
    ``lower_row_of_mouth``. ``face_of_quad`` lets ``head_features.embed`` place points by (azimuth, elevation).
    """
    vertices: np.ndarray          # (V, 3)
    faces: np.ndarray             # (F, 3), counter-clockwise seen from outside
    azimuth: np.ndarray           # (V,) degrees; NaN for the mouth pocket
    elevation: np.ndarray         # (V,)
    lower_lip_side: np.ndarray    # (V,) bool: moves with the jaw across the lip cut
    mouth_pocket: np.ndarray      # (V,) bool
    row_of: np.ndarray            # (n_rows, n_cols) vertex index of each grid node (upper side)
    lower_row_of_mouth: np.ndarray  # (n_cols,) vertex index on the lip row seen from below
    mouth_row: int
    face_of_quad: dict            # (row, col, 0|1) -> face index; row = lower row of the quad
    column_azimuth: np.ndarray
    row_elevation: np.ndarray


def build_mesh() -> HeadMesh:
    """Casts the (elevation, azimuth) ray grid onto :func:`head_sdf` and triangulates it: the lip row cut
    (duplicated for the lower lip), a mouth pocket behind the cut, a crown pole, faces wound outwards."""
    azimuth, elevation = grid_angles()
    n_rows, n_cols = elevation.size, azimuth.size
    az_grid, el_grid = np.meshgrid(azimuth, elevation)
    points = cast(az_grid, el_grid).reshape(-1, 3)
    row_of = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    verts = [points]
    az_list, el_list = [az_grid.ravel()], [el_grid.ravel()]
    n = points.shape[0]

    # The lip cut: interior columns of the mouth row get a duplicate for the lower lip.
    mouth_row = int(np.argmin(np.abs(elevation - param_of(frontal_surface_point(np.array([0.0, MOUTH_Y])))[1])))
    mouth_points = points[row_of[mouth_row]]
    in_mouth = np.abs(mouth_points[:, 0]) < MOUTH_HALF_WIDTH
    in_mouth &= mouth_points[:, 2] > 0
    cut_cols = np.flatnonzero(in_mouth)
    lower_row = row_of[mouth_row].copy()
    dup_index = n + np.arange(cut_cols.size)
    lower_row[cut_cols] = dup_index
    verts.append(points[row_of[mouth_row, cut_cols]])
    az_list.append(azimuth[cut_cols]), el_list.append(np.full(cut_cols.size, elevation[mouth_row]))
    n += cut_cols.size

    # Pocket behind the cut: lower inner, back, upper inner rows (ordered upwards).
    ray = directions(azimuth[cut_cols], np.full(cut_cols.size, elevation[mouth_row]))
    lip = points[row_of[mouth_row, cut_cols]]
    depth = 0.012 * np.cos(np.pi / 2 * (mouth_points[cut_cols, 0] / MOUTH_HALF_WIDTH))[:, None]
    pocket_rows = [lip - ray * (0.5 * depth) + np.array([0, -0.004, 0]) * depth / 0.012,
                   lip - ray * depth,
                   lip - ray * (0.5 * depth) + np.array([0, 0.004, 0]) * depth / 0.012]
    pocket_index = []
    for rows in pocket_rows:
        pocket_index.append(n + np.arange(cut_cols.size))
        verts.append(rows)
        az_list.append(np.full(cut_cols.size, np.nan)), el_list.append(np.full(cut_cols.size, np.nan))
        n += cut_cols.size
    pole = n
    top = cast(np.array([0.0]), np.array([90.0]))
    verts.append(top)
    az_list.append(np.array([0.0])), el_list.append(np.array([90.0]))
    n += 1

    faces: list[tuple[int, int, int]] = []
    face_of_quad: dict = {}

    def add_quad(v00, v01, v10, v11, key=None):
        # Quad corners: v00 (row r, col c), v01 (r, c+1), v10 (r+1, c), v11 (r+1, c+1).
        for k, tri in enumerate(((v00, v11, v01), (v00, v10, v11))):
            if len(set(tri)) == 3:
                if key is not None:
                    face_of_quad[(*key, k)] = len(faces)
                faces.append(tri)

    for r in range(n_rows - 1):
        below = lower_row if r + 1 == mouth_row else row_of[r + 1]
        for c in range(n_cols):
            c1 = (c + 1) % n_cols
            add_quad(row_of[r, c], row_of[r, c1], below[c], below[c1], key=(r, c))
    # Pocket strips: lower lip -> lower inner -> back -> upper inner -> upper lip.
    chain = [lower_row] + [None] * 3 + [row_of[mouth_row]]
    full_cols = np.concatenate([[cut_cols[0] - 1], cut_cols, [cut_cols[-1] + 1]]) % n_cols
    strips = []
    for level in range(5):
        if level in (0, 4):
            strips.append(chain[level][full_cols])
        else:
            corner_l, corner_r = row_of[mouth_row, full_cols[0]], row_of[mouth_row, full_cols[-1]]
            strips.append(np.concatenate([[corner_l], pocket_index[level - 1], [corner_r]]))
    for level in range(4):
        for j in range(full_cols.size - 1):
            add_quad(strips[level][j], strips[level][j + 1], strips[level + 1][j], strips[level + 1][j + 1])
    for c in range(n_cols):
        faces.append((row_of[-1, c], pole, row_of[-1, (c + 1) % n_cols]))

    vertices = np.concatenate(verts)
    faces_arr = np.asarray(faces, dtype=np.int64)
    lower_side = np.zeros(n, bool)
    lower_side[row_of[:mouth_row].ravel()] = True
    lower_side[dup_index] = True
    lower_side[pocket_index[0]] = True
    pocket = np.zeros(n, bool)
    for idx in pocket_index:
        pocket[idx] = True
    mesh = HeadMesh(vertices=vertices, faces=faces_arr, azimuth=np.concatenate(az_list),
                    elevation=np.concatenate(el_list), lower_lip_side=lower_side, mouth_pocket=pocket,
                    row_of=row_of, lower_row_of_mouth=lower_row, mouth_row=mouth_row,
                    face_of_quad=face_of_quad, column_azimuth=azimuth, row_elevation=elevation)
    _orient_outwards(mesh)
    return mesh


def _orient_outwards(mesh: HeadMesh) -> None:
    """Flip all faces if the grid winding points inwards (normals should leave the head)."""
    tri = mesh.vertices[mesh.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outward = (tri.mean(axis=1) - RAY_ORIGIN)
    if np.sum(np.einsum("fi,fi->f", normals, outward) > 0) < 0.5 * len(normals):
        mesh.faces = mesh.faces[:, ::-1].copy()
