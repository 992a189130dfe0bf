"""Chest CT phantom: body, fat, ribs, spine, mediastinum, two lungs with vessel and bronchial trees, a trachea,
1-2 lung tumours (label 1; inside the lung, touching the pleura or crossing it) and 1-3 unlabelled tumour-like
distractor blobs outside the lungs. Also yields the lung mask (1 = right lung, 2 = left lung, as lungmask R231).

Coordinates: LPS, +x = patient left, +y = posterior, +z = superior; the right lung is at low x index.

Options reproducing the conditions under which lung masks fail on real CT (all off by default; the default
case is unchanged): ``fov`` (``chest`` / ``thorax-abdomen`` / ``abdomen``: the scan window moved down so the
lower lungs + upper abdomen, or only the lung bases, are in the field of view), ``slice_mm`` (slice spacing,
e.g. 0.6 or 5 mm, same anatomy), ``n_slices`` + ``slab_level`` (a slab of 1-5 slices at a height of the lungs,
0 = bases, 1 = apices), ``gas`` (``stomach`` / ``colon`` / ``bowel`` gas pockets below the diaphragm; the colon
holds mottled stool, so its air is not pure), ``touching_lungs`` (lungs joined at the anterior junction),
``table`` (patient table, foam mattress and a blanket enclosing air around the body) and ``direction``
(``flipped``: stored with x and y reversed, direction diag(-1, -1, 1); ``oblique``: direction cosines rotated
12 deg about z and 15 deg about x). ``tumour_site`` (``pleura`` / ``hilum``): the case's one tumour is a solid
mass in the left lung attached with a broad base to the posterior costal pleura, or against the mediastinal
surface beside the hilum -- the tumours a threshold lung mask leaves outside (issue 20); the reference lung mask
includes them. See :mod:`nnunet_ext.synthetic.chest_variants`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_ext.synthetic import chest_variants as V
from nnunet_ext.synthetic import shapes as S
from nnunet_ext.synthetic.dataset import PhantomCase

DEFAULT_SIZE = (40, 64, 64)
SPACING = (10.0, 4.5, 4.5)  # z, y, x mm: z about 2.2x the in-plane spacing, like a thick-slice chest CT
CENTRE_XYZ = (0.0, -20.0, -180.0)  # physical position of the grid centre -> origin about (-142, -162, -375)

HU_AIR, HU_FAT, HU_SOFT, HU_BLOOD, HU_LUNG, HU_TUMOUR = -1000.0, -100.0, 40.0, 45.0, -895.0, 30.0
HU_CANCELLOUS, HU_CORTICAL, HU_RIB = 300.0, 700.0, 450.0

LOCATIONS = ("inside", "pleural", "crossing")
LOCATION_P = (0.55, 0.3, 0.15)


def generate_chest_case(rng: np.random.Generator, size_zyx=DEFAULT_SIZE, *, fov: str = "chest",
                        slice_mm: "float | None" = None, n_slices: "int | None" = None, slab_level: float = 0.5,
                        gas=(), touching_lungs: bool = False, table: bool = False,
                        direction: str = "identity", tumour_site: "str | None" = None) -> PhantomCase:
    """One chest CT (int16 HU) with its tumour label, lung mask and metadata (options: module docstring).

    ``size_zyx`` sets the anatomy's scale as before (z extent = size_z x 10 mm); ``slice_mm`` / ``n_slices``
    / ``fov`` only change how that anatomy is sampled. With gas pockets, ``side_maps["gasmasks"]`` holds them.
    """
    V.validate_options(fov=fov, slice_mm=slice_mm, n_slices=n_slices, slab_level=slab_level, gas=gas,
                       direction=direction, tumour_site=tumour_site)
    grid, scale, iso, ref_fz, shift = V.scan_grid(size_zyx, DEFAULT_SIZE, SPACING, CENTRE_XYZ, fov, slice_mm,
                                                  n_slices, slab_level)
    z, y, x = grid.axes()
    anat = _anatomy(rng, grid, (z + shift, y, x), scale, ref_fz, shift, touching_lungs)
    axes = grid.axes()
    extra_maps = {}
    if gas:
        extra_maps["gasmasks"] = V.add_gas(rng, anat, (z + shift, y, x), grid, scale, tuple(gas))
    if table:
        V.add_table(anat, (z + shift, y, x), grid)
    hu, lung = anat["hu"], anat["lung"]

    lung_lr = np.zeros(grid.shape, np.uint8)
    lung_lr[anat["lung_right"]] = 1
    lung_lr[anat["lung_left"]] = 2

    label = np.zeros(grid.shape, np.uint8)
    tumours, distractors = [], []
    lung_dist = ndimage.distance_transform_edt(lung, sampling=grid.spacing)
    if tumour_site is not None:
        mask, info = V.site_tumour(rng, grid, axes, iso, anat, lung_dist, tumour_site,
                                   lambda c, r: _tumour_blob(rng, grid, axes, c, r))
        label[mask] = 1
        tumours.append(info)
    for _ in range(int(rng.integers(1, 3)) if lung.any() and tumour_site is None else 0):
        t = _place_tumour(rng, grid, axes, iso, lung, lung_dist, anat["cavity"], label)
        if t is not None:
            mask, info = t
            label[mask] = 1
            tumours.append(info)
    if not tumours and lung.any() and tumour_site is None:  # tiny grids: one small tumour at the deepest lung point
        mask, info = _deepest_tumour(rng, grid, axes, lung, lung_dist)
        label[mask] = 1
        tumours.append(info)

    blocked = ndimage.binary_dilation(lung | (label > 0), iterations=1) | anat["bone"] | anat["airway"]
    occupied = np.zeros(grid.shape, bool)
    for _ in range(int(rng.integers(1, 4))):
        d = _place_distractor(rng, grid, axes, iso, anat, blocked | occupied)
        if d is not None:
            mask, info = d
            occupied |= mask
            distractors.append(info)

    # tumour-like tissue (tumours and distractors share one intensity model)
    lesion_frac = np.zeros(grid.shape, np.float32)
    for info in tumours + distractors:
        np.maximum(lesion_frac, info.pop("_frac"), out=lesion_frac)
    texture = HU_TUMOUR + 12.0 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 6.0))
    hu = hu * (1 - lesion_frac) + texture * lesion_frac
    # labels follow the 0.5 partial-volume isoline of the tumours only
    for info in tumours:
        _describe(info, grid, label_mask=info.pop("_mask"), lung=lung)
    for info in distractors:
        _describe(info, grid, label_mask=info.pop("_mask"), lung=lung)

    ct = S.to_int16_hu(S.add_ct_noise(rng, hu, sd=20.0, psf_vox=(0.3, 0.5, 0.5)))
    info = {"tumours": tumours, "distractors": distractors}
    options = V.describe_options(fov=fov, slice_mm=slice_mm, n_slices=n_slices, slab_level=slab_level, gas=gas,
                                 touching_lungs=touching_lungs, table=table, direction=direction,
                                 tumour_site=tumour_site)
    if options:
        info["options"] = options
    maps = {"lungmasks": lung_lr, **extra_maps}
    ct, label, maps, geometry = V.apply_direction(direction, ct, label, maps, grid.geometry())
    return PhantomCase(images=[ct], label=label, side_maps=maps, geometry=geometry, info=info)


def _anatomy(rng, grid, axes, scale, fz=None, shift=0.0, touching_lungs=False) -> dict:
    """Body, fat shell, ribs, spine, aorta, heart, lungs with vessels and airways (float HU + masks).

    ``axes`` are anatomical mm (grid axes with z moved by ``shift``); ``fz`` is the anatomy's z extent."""
    z, y, x = axes
    sz, sy, sx = scale
    fz = grid.fov[0] if fz is None else fz
    shape = grid.shape
    ax, ay = 130.0 * sx * rng.uniform(0.92, 1.04), 95.0 * sy * rng.uniform(0.9, 1.06)
    body = S.elliptic_cylinder(axes, (0.0, 0.0), (ay, ax))
    fat_t = rng.uniform(10.0, 20.0) * min(sx, sy)  # subcutaneous fat
    muscle = S.elliptic_cylinder(axes, (0.0, 0.0), (ay - fat_t, ax - fat_t))
    wall = 14.0 * min(sx, sy)  # muscle + ribs
    cav_ax, cav_ay = ax - fat_t - wall, ay - fat_t - wall
    cavity = S.elliptic_cylinder(axes, (4.0 * sy, 0.0), (cav_ay, cav_ax))
    lung_z, lung_hz = 0.08 * fz, 0.37 * fz * rng.uniform(0.92, 1.0)
    thorax = (z > lung_z - 0.75 * lung_hz) & (z < fz / 2)

    hu = np.full(shape, HU_AIR, np.float32)
    hu[body] = HU_FAT
    hu[muscle] = HU_SOFT + 10.0
    hu[cavity] = HU_SOFT + 15.0  # below the lungs: liver / abdomen
    hu[cavity & thorax] = HU_FAT + 10.0  # mediastinal fat around heart, vessels, airways (lymph node land)
    # ribs: an elliptic ring in the chest wall, present in slanted bands along z
    ring = S.elliptic_cylinder(axes, (2.0 * sy, 0.0), (cav_ay + 7.0 * sy, cav_ax + 7.0 * sx)) & ~cavity
    period, phase = 32.0 * sz, rng.uniform(0, 2 * np.pi)
    bands = np.cos(2 * np.pi * (z + 0.35 * y) / period + phase) > 0.35
    ribs = ring & bands & ~((np.abs(x) < 22.0 * sx) & (y < 0)) & muscle
    # heart, descending aorta, spine (vertebral body + canal + posterior elements)
    heart_c = (-0.22 * fz * rng.uniform(0.8, 1.2), -0.2 * cav_ay, 0.22 * cav_ax)
    heart = S.ellipsoid(axes, heart_c, (0.2 * fz, 0.55 * cav_ay, 0.42 * cav_ax)) & cavity
    hu[heart] = HU_BLOOD
    vb_c, vb_r = (cav_ay * 0.72, 0.0), (15.0 * sy, 18.0 * sx)
    aorta = S.elliptic_cylinder(axes, (vb_c[0] - 8.0 * sy, 26.0 * sx), (11.0 * sy, 11.0 * sx)) & cavity
    hu[aorta] = HU_BLOOD
    vertebra = S.elliptic_cylinder(axes, vb_c, vb_r)
    cortex = vertebra & ~S.elliptic_cylinder(axes, vb_c, (vb_r[0] - 3.5 * sy, vb_r[1] - 3.5 * sx))
    canal = S.elliptic_cylinder(axes, (vb_c[0] + 26.0 * sy, 0.0), (8.0 * sy, 8.0 * sx))
    posterior = S.elliptic_cylinder(axes, (vb_c[0] + 30.0 * sy, 0.0), (16.0 * sy, 20.0 * sx)) & ~canal
    bone = ribs | vertebra | posterior
    hu[ribs] = HU_RIB
    hu[vertebra | posterior] = HU_CANCELLOUS
    hu[cortex] = HU_CORTICAL
    hu[canal] = 15.0

    # lungs: ellipsoids in the cavity, deformed, minus mediastinum / heart / spine; right lung (x < 0) larger
    deform = 0.06 * S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 40.0))
    lungs = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        c = (lung_z, 0.08 * cav_ay, sign * 0.5 * cav_ax)
        r = (lung_hz, 0.95 * cav_ay, 0.5 * cav_ax * (1.0 if side == "right" else 0.92))
        ell = (S.ellipsoid_radius(axes, c, r) + deform) < 1.0
        mediastinum = np.abs(x + 6.0 * sx * deform / 0.06) < (13.0 + 10.0 * np.clip(-y / cav_ay, 0, 1)) * sx
        lungs[side] = ell & cavity & ~heart & ~mediastinum & ~vertebra & ~aorta & (sign * x > 0)
    if touching_lungs:
        V.join_at_anterior_junction(lungs, axes, cavity, heart | aorta | vertebra, lung_z, lung_hz, cav_ay, sx)
    lung = lungs["right"] | lungs["left"]
    gradient = 30.0 * np.clip(y / max(cav_ay, 1.0), -1, 1)  # dependent (posterior) lung is denser
    parenchyma = HU_LUNG + gradient + 12.0 * S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 8.0))
    hu[lung] = np.broadcast_to(parenchyma, shape)[lung]

    # airways: trachea down to the carina, main bronchi to the hila, small bronchial trees; vessel trees
    carina = np.array([lung_z + 0.35 * lung_hz, -0.1 * cav_ay, 0.0])
    top = np.array([fz / 2 + 10.0, -0.1 * cav_ay, 0.0])
    hila = {s: np.array([lung_z + 0.05 * lung_hz, 0.05 * cav_ay, sg * 0.28 * cav_ax])
            for s, sg in (("right", -1), ("left", 1))}
    air_segments = [(top, carina, 8.0 * min(sx, sy))]
    vessel_segments = []
    for side, sign in (("right", -1.0), ("left", 1.0)):
        air_segments.append((carina, hila[side], 5.5 * min(sx, sy)))
        for _ in range(2):
            d = np.array([rng.uniform(-1, 1), rng.uniform(-0.4, 0.6), sign])
            air_segments += S.branching_tree(rng, hila[side], d, 30.0 * min(sx, sy), 3.5 * min(sx, sy), 1)
        for _ in range(4):
            d = np.array([rng.uniform(-1.2, 1.2), rng.uniform(-0.8, 0.8), sign * rng.uniform(0.4, 1.0)])
            vessel_segments += S.branching_tree(rng, hila[side], d, 42.0 * min(sx, sy), 4.5 * min(sx, sy), 3)
    to_grid = np.array([shift, 0.0, 0.0])  # segments are in anatomical mm; the renderer wants grid mm
    if shift:
        vessel_segments = [(a - to_grid, b - to_grid, r) for a, b, r in vessel_segments]
        air_segments = [(a - to_grid, b - to_grid, r) for a, b, r in air_segments]
    vessels = S.render_tubes(grid, vessel_segments)
    walls = S.render_tubes(grid, air_segments, extra_radius=2.0)
    lumen = S.render_tubes(grid, air_segments)
    airway = (lumen > 0.5) & (body)
    hu = np.where(lung | cavity, hu * (1 - vessels) + HU_BLOOD * vessels, hu)
    hu = np.where(lung | cavity, hu * (1 - walls) + (HU_SOFT - 20.0) * walls, hu)
    hu = np.where(body, hu * (1 - lumen) + HU_AIR * lumen, hu)
    return {"hu": hu.astype(np.float32), "lung": lung, "lung_right": lungs["right"], "lung_left": lungs["left"],
            "body": body, "cavity": cavity, "bone": bone, "airway": airway, "chest_wall": body & ~muscle,
            "mediastinum": cavity & thorax & ~lung & ~airway & ~heart & ~aorta & ~bone,
            "frame": {"fz": fz, "lung_z": lung_z, "lung_hz": lung_hz, "ax": ax, "ay": ay, "cav_ax": cav_ax,
                      "cav_ay": cav_ay}}


def _tumour_blob(rng, grid, axes, centre, radius):
    d = S.lobulated_distance(rng, grid, axes, centre, radius, irregularity=0.18, n_lobes=int(rng.integers(2, 5)))
    return d, S.soft_inside(d, radius, grid.spacing)


def _place_tumour(rng, grid, axes, iso, lung, lung_dist, cavity, label):
    """A lobulated tumour in the lung: 'inside' (clear of the wall), 'pleural' (clipped flat against the
    wall, so it touches the pleura) or 'crossing' (extends through the pleura into wall / mediastinum)."""
    location = str(rng.choice(LOCATIONS, p=LOCATION_P))
    radius = rng.uniform(15.0, 28.0) * iso
    radius = min(radius, 0.8 * float(lung_dist.max()))
    if radius < 1.5 * min(grid.spacing):
        return None
    tol = max(grid.spacing) / 2.0
    taken = ndimage.binary_dilation(label > 0, iterations=2)
    for _ in range(12):
        if location == "inside":
            cand = lung_dist >= 1.35 * radius + 2.0
        elif location == "pleural":
            cand = np.abs(lung_dist - 0.7 * radius) < tol
        else:
            cand = (lung_dist > 0) & (lung_dist < 0.3 * radius + tol)
        cand &= ~taken
        c = S.sample_voxel(rng, cand)
        if c is None:
            location, radius = "inside", radius * 0.85
            continue
        d, frac = _tumour_blob(rng, grid, axes, grid.to_mm(c), radius)
        limit = lung if location != "crossing" else (lung | cavity | ndimage.binary_dilation(lung, iterations=2))
        frac = frac * limit
        mask = frac >= 0.5
        if mask.sum() < 4 or (mask & taken).any():
            continue
        return mask, {"location": location, "radius_mm": round(float(radius), 2), "_mask": mask, "_frac": frac,
                      "side": "right" if grid.to_mm(c)[2] < 0 else "left"}
    return None


def _deepest_tumour(rng, grid, axes, lung, lung_dist):
    c = np.asarray(np.unravel_index(int(np.argmax(lung_dist)), lung.shape))
    radius = max(0.8 * float(lung_dist.max()), min(grid.spacing))
    d, frac = _tumour_blob(rng, grid, axes, grid.to_mm(c), radius)
    frac = frac * lung
    mask = frac >= 0.5
    mask[tuple(c)] = True
    return mask, {"location": "inside", "radius_mm": round(float(radius), 2), "_mask": mask, "_frac": frac,
                  "side": "right" if grid.to_mm(c)[2] < 0 else "left"}


def _place_distractor(rng, grid, axes, iso, anat, blocked):
    """A tumour-like (but unlabelled) blob in the mediastinum or the chest wall, clear of the lungs."""
    region_name = str(rng.choice(["mediastinum", "chest_wall"]))
    radius = rng.uniform(11.0, 17.0) * iso
    for _attempt in range(16):
        region = anat[region_name] & ~blocked
        if not region.any():
            region_name = "chest_wall" if region_name == "mediastinum" else "mediastinum"
            region = anat[region_name] & ~blocked
        c = S.sample_voxel(rng, region)
        if c is None:
            return None
        d, frac = _tumour_blob(rng, grid, axes, grid.to_mm(c), radius)
        frac = frac * (anat["body"] & ~blocked)
        mask = frac >= 0.5
        if mask.sum() >= 2:
            return mask, {"region": region_name, "radius_mm": round(float(radius), 2), "_mask": mask, "_frac": frac}
        radius *= 0.85
    return None


def _describe(info: dict, grid, label_mask: np.ndarray, lung: np.ndarray) -> None:
    """Add measured centre (voxel and physical mm), volume and its relation to the lung / pleura."""
    com = np.asarray(ndimage.center_of_mass(label_mask))
    ring = ndimage.binary_dilation(label_mask) & ~label_mask
    in_lung = label_mask & lung
    info.update({
        **grid.centre_info(com),
        "volume_ml": round(float(label_mask.sum() * np.prod(grid.spacing) / 1000.0), 3),
        "inside_lung": bool(lung[tuple(np.rint(com).astype(int))]),
        "fraction_in_lung": round(float(in_lung.sum() / max(label_mask.sum(), 1)), 3),
        "touches_pleura": bool((ring & ~lung).any() and in_lung.any()),
        "crosses_pleura": bool(in_lung.any() and (label_mask & ~lung).any()),
    })
