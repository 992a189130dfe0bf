"""Geometric building blocks for the phantoms, in millimetres on a voxel grid (pure numpy / scipy).

Arrays are ``(z, y, x)``. Coordinates handed to these functions are millimetres relative to the centre of the
grid, in the same ``(z, y, x)`` order; :class:`Grid` converts between those, voxel indices and the physical
(LPS, SimpleITK ``x, y, z``) coordinates written to the files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from nnunet_ext.io.imageio import Geometry

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Grid:
    """A voxel grid of ``shape`` (z, y, x) with ``spacing`` (z, y, x) mm, centred on ``centre_xyz`` (LPS mm)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    centre_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def fov(self) -> np.ndarray:
        """Field of view in mm, (z, y, x)."""
        return np.asarray(self.shape, float) * np.asarray(self.spacing, float)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open-grid mm coordinates (z, y, x) relative to the grid centre, broadcastable to ``shape``."""
        out = []
        for ax, (n, s) in enumerate(zip(self.shape, self.spacing)):
            c = ((np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * s)
            out.append(c.reshape([-1 if i == ax else 1 for i in range(3)]))
        return tuple(out)

    def geometry(self) -> Geometry:
        """SimpleITK geometry: spacing and origin in x, y, z order, identity (LPS) direction."""
        sp = np.asarray(self.spacing[::-1], float)
        origin = np.asarray(self.centre_xyz, float) - (np.asarray(self.shape[::-1], float) - 1) / 2.0 * sp
        return Geometry(tuple(float(s) for s in sp), tuple(round(float(o), 4) for o in origin), IDENTITY_DIRECTION)

    def to_index(self, point_mm: Sequence[float]) -> np.ndarray:
        """Grid-centred mm (z, y, x) -> fractional voxel index (z, y, x)."""
        return np.asarray(point_mm, float) / np.asarray(self.spacing) + (np.asarray(self.shape) - 1) / 2.0

    def to_mm(self, index: Sequence[float]) -> np.ndarray:
        """Voxel index (z, y, x) -> grid-centred mm (z, y, x)."""
        return (np.asarray(index, float) - (np.asarray(self.shape) - 1) / 2.0) * np.asarray(self.spacing)

    def centre_info(self, index: Sequence[float]) -> dict:
        """``{"centre_voxel_zyx": [...], "centre_mm_xyz": [...]}`` for metadata (mm from the rounded index)."""
        vox = [round(float(v), 2) for v in index]
        return {"centre_voxel_zyx": vox, "centre_mm_xyz": self.physical(vox)}

    def physical(self, index: Sequence[float]) -> list[float]:
        """Voxel index (z, y, x) -> physical LPS point (x, y, z) in mm, as written to the image header."""
        g = self.geometry()
        xyz = np.asarray(g.origin) + np.asarray(index, float)[::-1] * np.asarray(g.spacing)
        return [round(float(v), 3) for v in xyz]


def ellipsoid_radius(axes, centre, radii) -> np.ndarray:
    """Normalised ellipsoidal radius: < 1 inside the ellipsoid ``centre`` +- ``radii`` (mm, z-y-x)."""
    z, y, x = axes
    return np.sqrt(((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                   + ((x - centre[2]) / radii[2]) ** 2)


def ellipsoid(axes, centre, radii) -> np.ndarray:
    """Boolean ellipsoid mask."""
    return ellipsoid_radius(axes, centre, radii) < 1.0


def elliptic_cylinder(axes, centre_yx, radii_yx) -> np.ndarray:
    """Boolean cylinder along z with an elliptic (y, x) cross-section, broadcast to the full grid."""
    z, y, x = axes
    inside = ((y - centre_yx[0]) / radii_yx[0]) ** 2 + ((x - centre_yx[1]) / radii_yx[1]) ** 2 < 1.0
    return np.broadcast_to(inside, np.broadcast_shapes(z.shape, y.shape, x.shape)).copy()


def smooth_field(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    """Zero-mean, unit-std random field, smooth on the scale ``sigma_vox`` voxels (scalar or per axis).
    Very smooth fields are drawn on a coarser grid and interpolated up, which is much cheaper."""
    sig = np.broadcast_to(np.asarray(sigma_vox, float), (len(shape),))
    factor = np.maximum(1, np.floor(sig / 2.0)).astype(int)
    coarse = tuple(int(np.ceil(n / f)) + (1 if f > 1 else 0) for n, f in zip(shape, factor))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sig / factor, mode="reflect")
    if np.any(factor > 1):
        field = ndimage.zoom(field, factor, order=1, grid_mode=False)[tuple(slice(0, n) for n in shape)]
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


def sigma_vox(spacing, sigma_mm: float) -> tuple[float, ...]:
    """Convert an isotropic smoothing scale in mm to per-axis voxels."""
    return tuple(sigma_mm / float(s) for s in spacing)


def random_unit_vector(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed direction in 3D."""
    v = rng.standard_normal(3)
    return v / (np.linalg.norm(v) + 1e-12)


def lobulated_distance(rng: np.random.Generator, grid: Grid, axes, centre, radius: float,
                       irregularity: float = 0.15, n_lobes: int = 3, smooth_mm: float | None = None) -> np.ndarray:
    """Normalised distance of a lobulated blob (< 1 inside): union of a main sphere and ``n_lobes`` offset
    sub-spheres, with its surface perturbed by a smooth random field of relative amplitude ``irregularity``."""
    centre = np.asarray(centre, float)
    d = ellipsoid_radius(axes, centre, (radius, radius, radius))
    for _ in range(n_lobes):
        offset = random_unit_vector(rng) * radius * rng.uniform(0.35, 0.6)
        r = radius * rng.uniform(0.5, 0.75)
        d = np.minimum(d, ellipsoid_radius(axes, centre + offset, (r, r, r)))
    if irregularity > 0:
        smooth_mm = radius * 0.35 if smooth_mm is None else smooth_mm
        d = d - irregularity * smooth_field(rng, grid.shape, sigma_vox(grid.spacing, smooth_mm))
    return d.astype(np.float32)


def soft_inside(distance: np.ndarray, radius: float, spacing) -> np.ndarray:
    """Partial-volume fraction (0..1) of a blob given its normalised ``distance``; 0.5 exactly on the surface."""
    return np.clip(0.5 + (1.0 - distance) * radius / float(min(spacing)), 0.0, 1.0).astype(np.float32)


def segment_distance(axes, p0, p1) -> np.ndarray:
    """Distance (mm) of every point to the line segment p0-p1 (mm, z-y-x)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    length2 = float(d @ d) or 1e-12
    rel = [axes[i] - p0[i] for i in range(3)]
    t = np.clip((rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]) / length2, 0.0, 1.0)
    return np.sqrt(sum((rel[i] - t * d[i]) ** 2 for i in range(3)))


def render_tubes(grid: Grid, segments, out: np.ndarray | None = None, extra_radius: float = 0.0) -> np.ndarray:
    """Partial-volume occupancy (0..1) of tubes ``segments`` = [(p0, p1, radius_mm), ...], max-combined
    into ``out``. Each segment is evaluated only in its bounding box, so long trees stay cheap."""
    out = np.zeros(grid.shape, np.float32) if out is None else out
    axes = grid.axes()
    vox = float(min(grid.spacing))
    for p0, p1, r in segments:
        r = r + extra_radius
        lo = np.floor(grid.to_index(np.minimum(p0, p1) - r - vox)).astype(int)
        hi = np.ceil(grid.to_index(np.maximum(p0, p1) + r + vox)).astype(int) + 1
        lo, hi = np.clip(lo, 0, grid.shape), np.clip(hi, 0, grid.shape)
        if np.any(hi <= lo):
            continue
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub = tuple(axes[i][tuple(sl[i] if j == i else slice(None) for j in range(3))] for i in range(3))
        occ = np.clip(0.5 + (r - segment_distance(sub, p0, p1)) / vox, 0.0, 1.0)
        np.maximum(out[sl], occ, out=out[sl])
    return out


def branching_tree(rng: np.random.Generator, start, direction, length: float, radius: float, depth: int,
                   spread: float = 0.55, shrink: float = 0.72) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Segments of a randomly bifurcating tube tree (vessels, bronchi): every branch splits in two children
    deviating by about ``spread`` rad, with length and radius multiplied by ``shrink``."""
    segments = []
    stack = [(np.asarray(start, float), np.asarray(direction, float), length, radius, depth)]
    while stack:
        p0, d, ln, r, k = stack.pop()
        d = d / (np.linalg.norm(d) + 1e-12)
        p1 = p0 + d * ln * rng.uniform(0.8, 1.2)
        segments.append((p0, p1, r))
        if k > 0:
            for _ in range(2):
                child = d + spread * random_unit_vector(rng)
                stack.append((p1, child, ln * shrink, r * shrink, k - 1))
    return segments


def sample_voxel(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray | None:
    """A uniformly random voxel index (z, y, x) of ``mask``, or None when it is empty."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    return np.asarray(np.unravel_index(idx[rng.integers(idx.size)], mask.shape))


def add_ct_noise(rng: np.random.Generator, hu: np.ndarray, sd: float, psf_vox=0.6) -> np.ndarray:
    """Blur with a small point-spread function and add slightly correlated noise of std ``sd``."""
    blurred = ndimage.gaussian_filter(hu, psf_vox)
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), 0.5)
    noise *= sd / max(float(noise.std()), 1e-6)
    return blurred + noise


def to_int16_hu(hu: np.ndarray) -> np.ndarray:
    """Round to integer HU in the usual CT range."""
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def scaled_grid(shape, default_shape, default_spacing, centre_xyz) -> tuple[Grid, np.ndarray, float]:
    """The grid for ``shape`` at the default spacing, with the per-axis anatomy scale (z, y, x) relative to the
    default field of view and one isotropic scale (geometric mean) for lesion sizes."""
    grid = Grid(tuple(int(s) for s in shape), tuple(float(s) for s in default_spacing), centre_xyz)
    scale = np.asarray(shape, float) / np.asarray(default_shape, float)
    return grid, scale, float(np.prod(scale) ** (1.0 / 3.0))
