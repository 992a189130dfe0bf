"""Chest-phantom variants that reproduce the conditions under which lung masks fail on real CT.

Used by :func:`nnunet_ext.synthetic.chest.generate_chest_case` (options documented there): the scan window
(field of view, slice spacing, few-slice slabs), gas pockets below the diaphragm, lungs touching at the
anterior junction, patient table / mattress / blanket, and flipped or oblique storage. Pure numpy / scipy.
Anatomical coordinates are mm (z, y, x) relative to the default chest window's centre (z = grid z + shift).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry
from nnunet_ext.synthetic import shapes as S

FOVS = ("chest", "thorax-abdomen", "abdomen")
GAS_KINDS = ("stomach", "colon", "bowel")
DIRECTIONS = ("identity", "flipped", "oblique")
TUMOUR_SITES = ("pleura", "hilum")  #: where ``tumour_site`` puts the case's one solid tumour
#: window centre (fraction of the chest window's z extent) per field of view: the default chest window; lower
#: lungs + upper abdomen; the lowest ~8 % of the window's height of lung bases at the top of an abdominal scan
FOV_SHIFT = {"chest": 0.0, "thorax-abdomen": -0.35, "abdomen": -0.71}
LUNG_BOTTOM, LUNG_TOP = -0.29, 0.45  #: approximate lung extent (fraction of the z extent) in the phantom
HU_GAS, HU_STOOL, HU_FLUID, HU_TABLE, HU_FOAM, HU_BLANKET = -1000.0, 10.0, 15.0, 300.0, -900.0, -150.0


def validate_options(fov="chest", slice_mm=None, n_slices=None, slab_level=0.5, gas=(), direction="identity",
                     tumour_site=None):
    if fov not in FOVS:
        raise InputError(f"fov must be one of {', '.join(FOVS)}, got {fov!r}")
    if slice_mm is not None and not 0.1 <= float(slice_mm) <= 20.0:
        raise InputError(f"slice_mm must be in [0.1, 20] mm, got {slice_mm!r}")
    if n_slices is not None and (int(n_slices) != n_slices or n_slices < 1):
        raise InputError(f"n_slices must be an integer >= 1, got {n_slices!r}")
    if not 0.0 <= float(slab_level) <= 1.0:
        raise InputError(f"slab_level must be in [0, 1], got {slab_level!r}")
    bad = [g for g in gas if g not in GAS_KINDS]
    if bad:
        raise InputError(f"gas pockets must be among {', '.join(GAS_KINDS)}, got {', '.join(map(str, bad))}")
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if tumour_site is not None and tumour_site not in TUMOUR_SITES:
        raise InputError(f"tumour_site must be one of {', '.join(TUMOUR_SITES)} (or None), got {tumour_site!r}")


def describe_options(**options) -> dict:
    """The non-default options (for phantom_info.json)."""
    defaults = {"fov": "chest", "slice_mm": None, "n_slices": None, "slab_level": 0.5, "gas": (),
                "touching_lungs": False, "table": False, "direction": "identity", "tumour_site": None}
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items() if v != defaults[k]}
    if "slab_level" in out and options.get("n_slices") is None:
        out.pop("slab_level")
    return out


def scan_grid(size_zyx, default_size, spacing, centre_xyz, fov, slice_mm, n_slices, slab_level):
    """``(grid, scale, iso, ref_fz, shift)``: the sampled window of the anatomy that ``size_zyx`` defines."""
    grid, scale, iso = S.scaled_grid(size_zyx, default_size, spacing, centre_xyz)
    if fov == "chest" and slice_mm is None and n_slices is None:
        return grid, scale, iso, float(grid.fov[0]), 0.0
    ref_fz = float(grid.fov[0])
    sz = float(slice_mm) if slice_mm is not None else float(spacing[0])
    if n_slices is not None:
        shift = (LUNG_BOTTOM + (LUNG_TOP - LUNG_BOTTOM) * float(slab_level)) * ref_fz
        nz = int(n_slices)
    else:
        shift = FOV_SHIFT[fov] * ref_fz
        nz = max(1, int(round(ref_fz / sz)))
    centre = (centre_xyz[0], centre_xyz[1], centre_xyz[2] + shift)
    out = S.Grid((nz, int(size_zyx[1]), int(size_zyx[2])), (sz, float(spacing[1]), float(spacing[2])), centre)
    return out, scale, iso, ref_fz, float(shift)


def join_at_anterior_junction(lungs: dict, axes, cavity, blocked, lung_z, lung_hz, cav_ay, sx) -> None:
    """Grow both lungs across the midline in front of the heart (the anterior junction line) over the middle
    half of the lung height, so they touch (one 6-connected air region, as on many real scans)."""
    z, y, x = axes
    band = (y > -0.86 * cav_ay) & (y < -0.66 * cav_ay) & (np.abs(z - lung_z) < 0.5 * lung_hz)
    reach = np.abs(x) < 40.0 * sx
    bridge = np.broadcast_to(band & reach, cavity.shape) & cavity & ~blocked
    lungs["right"] |= bridge & np.broadcast_to(x < 0, cavity.shape)
    lungs["left"] |= bridge & np.broadcast_to(x >= 0, cavity.shape)


def add_gas(rng, anat: dict, axes, grid, scale, kinds) -> np.ndarray:
    """Gas pockets below the lungs (stomach under the left dome, transverse colon with mottled stool, small
    bowel bubbles); writes HU into ``anat["hu"]`` and returns the gas-pocket mask (uint8: 1 stomach, 2 colon,
    3 bowel)."""
    z, y, x = axes
    f = anat["frame"]
    shape = grid.shape
    sz, sy, sx = scale
    hu = anat["hu"]
    base = f["lung_z"] - f["lung_hz"]  # bottom of the lungs (the diaphragm level of the phantom)
    allowed = anat["cavity"] & ~ndimage.binary_dilation(anat["lung"], iterations=2)
    allowed &= np.broadcast_to(z < base + 0.02 * f["fz"], shape)
    out = np.zeros(shape, np.uint8)
    if "stomach" in kinds:  # fundus under the left dome, anterior; supine: gas anterior, fluid posterior
        r = (28.0 * sz, 30.0 * sy, 34.0 * sx)
        c = (base - 0.7 * r[0], -0.3 * f["cav_ay"], 0.45 * f["cav_ax"])
        stomach = S.ellipsoid(axes, c, r) & allowed
        gas = stomach & np.broadcast_to(y < c[1] + 0.2 * r[1], shape)
        hu[stomach] = HU_FLUID
        hu[gas] = HU_GAS
        out[gas] = 1
    if "colon" in kinds:  # transverse colon: a tube across the anterior abdomen holding air mixed with stool
        p0 = np.array([base - 0.12 * f["fz"], -0.5 * f["cav_ay"], -0.6 * f["cav_ax"]])
        p1 = np.array([base - 0.10 * f["fz"], -0.5 * f["cav_ay"], 0.6 * f["cav_ax"]])
        colon = (S.segment_distance(axes, p0, p1) < 18.0 * min(sx, sy)) & allowed
        mottle = S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 3.0)) > 0.2  # ~40 % gas
        gas = colon & mottle
        hu[colon] = HU_STOOL
        hu[gas] = HU_GAS
        out[gas] = 2
    if "bowel" in kinds:  # small-bowel gas bubbles in the mid abdomen
        for _ in range(8):
            c = (base - rng.uniform(0.08, 0.3) * f["fz"], rng.uniform(-0.6, 0.3) * f["cav_ay"],
                 rng.uniform(-0.6, 0.6) * f["cav_ax"])
            rad = rng.uniform(6.0, 11.0) * min(sx, sy)
            bubble = S.ellipsoid(axes, c, (rad, rad, rad)) & allowed
            hu[bubble] = HU_GAS
            out[bubble] = 3
    return out


def site_tumour(rng, grid, axes, iso: float, anat: dict, lung_dist: np.ndarray, site: str, blob):
    """One solid tumour of radius 12 mm (x the phantom's scale) in the left lung, clipped to the lung, where a
    threshold lung mask loses it: ``pleura`` -- attached with a broad base to the posterior costal pleura at mid
    lung height (centre 0.3 radius inside the pleura: a hemispherical bulge into the lung, like the real
    juxta-pleural mass of RESULTS.md, issue 20); ``hilum`` -- against the mediastinal surface next to the left
    hilum (centre 0.3 radius inside the lung, beside the hilar vessels). ``blob(centre_mm, radius) -> (d, frac)``
    draws the tumour (the phantom's lobulated tumour model); ``iso``: the phantom's lesion scale. Returns
    ``(mask, info)`` like the random tumours."""
    f = anat["frame"]
    lung = anat["lung_left"]
    radius = 12.0 * iso
    tol = max(grid.spacing) / 2.0
    shell = lung & (np.abs(lung_dist - 0.3 * radius) < tol)
    zz, yy, xx = (np.broadcast_to(a, grid.shape) for a in axes)
    if site == "pleura":  # mid height, the posterior third of the lung, away from the spine
        mid = np.abs(zz - f["lung_z"]) < 0.15 * f["lung_hz"]
        cand = shell & mid & (yy > 0.35 * f["cav_ay"]) & (xx > 0.45 * f["cav_ax"])
    else:  # next to the hilum (where the phantom's vessels enter), on the lung's medial side
        hz, hy, hx = f["lung_z"] + 0.05 * f["lung_hz"], 0.05 * f["cav_ay"], 0.28 * f["cav_ax"]
        near = (zz - hz) ** 2 + (yy - hy) ** 2 + (xx - hx) ** 2 < (2.5 * radius) ** 2
        cand = shell & near & (xx < hx + 0.5 * radius)
    c = S.sample_voxel(rng, cand)
    if c is None:
        raise InputError(f"tumour_site={site!r}: no place for the tumour in this phantom (grid too small?)")
    d, frac = blob(grid.to_mm(c), radius)
    frac = frac * lung
    mask = frac >= 0.5
    return mask, {"location": site, "radius_mm": round(float(radius), 2), "_mask": mask, "_frac": frac,
                  "side": "left"}


def add_table(anat: dict, axes, grid) -> None:
    """A flat patient-table plate behind the back, a foam mattress between back and plate, and a thin
    blanket around the body whose gap to the skin holds air enclosed by blanket and table."""
    z, y, x = axes
    hu = anat["hu"]
    shape = grid.shape
    vy, vx = grid.spacing[1], grid.spacing[2]
    ay, ax = anat["frame"]["ay"], anat["frame"]["ax"]
    body = anat["body"]
    plate_y = ay + 1.6 * vy
    plate = np.broadcast_to((y >= plate_y) & (y < plate_y + 1.5 * vy) & (np.abs(x) < ax + 2.5 * vx), shape)
    foam = np.broadcast_to((y > 0.6 * ay) & (y < plate_y) & (np.abs(x) < 0.85 * ax), shape) & ~body
    shell_out = S.elliptic_cylinder(axes, (0.0, 0.0), (ay + 2.2 * vy, ax + 2.2 * vx))
    shell_in = S.elliptic_cylinder(axes, (0.0, 0.0), (ay + 1.2 * vy, ax + 1.2 * vx))
    blanket = shell_out & ~shell_in & np.broadcast_to(y < plate_y, shape) & ~foam
    hu[foam] = HU_FOAM
    hu[blanket] = HU_BLANKET
    hu[plate] = HU_TABLE


def _rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = np.deg2rad(deg_z), np.deg2rad(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def apply_direction(direction: str, ct, label, maps: dict, geometry: Geometry):
    """Store the case ``flipped`` (x and y reversed, direction diag(-1, -1, 1), same physical positions) or
    ``oblique`` (arrays unchanged, direction cosines rotated: a patient rotated in the scanner)."""
    if direction == "identity":
        return ct, label, maps, geometry
    if direction == "flipped":
        flip = (slice(None), slice(None, None, -1), slice(None, None, -1))
        nz, ny, nx = ct.shape
        sp = np.asarray(geometry.spacing, float)
        origin = np.asarray(geometry.origin, float) + np.array([(nx - 1) * sp[0], (ny - 1) * sp[1], 0.0])
        flipped = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
        geo = Geometry(geometry.spacing, tuple(float(v) for v in origin), flipped)
        return (np.ascontiguousarray(ct[flip]), np.ascontiguousarray(label[flip]),
                {k: np.ascontiguousarray(v[flip]) for k, v in maps.items()}, geo)
    d = _rotation(12.0, 15.0) @ np.asarray(geometry.direction, float).reshape(3, 3)
    return ct, label, maps, Geometry(geometry.spacing, geometry.origin, tuple(float(v) for v in d.ravel()))
