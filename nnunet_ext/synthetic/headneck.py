"""Head-and-neck PET/CT phantom: neck widening into the lower face, subcutaneous and intermuscular fat,
muscles, cervical spine, mandible, airway (larynx to nasopharynx), carotid / jugular vessels, thyroid,
salivary glands, tonsils and the base of the brain. PET is in SUV-like units with physiological uptake
(brain, tonsils, salivary glands) that is NOT labelled, blurred by a ~6 mm FWHM point spread, with noise.

Labels (HECKTOR-like): 1 = GTVp, one primary tumour next to the airway (SUV ~8-15, heterogeneous, CT slightly
hyperdense); 2 = GTVn, 0-4 metastatic lymph nodes lateral in the neck (most cases have at least one).

``ambiguous_rate`` (default 0, the phantom of every earlier release): the probability that the primary has an
*ambiguous neighbour*, a second hot lobe touching it that looks like tumour in PET and CT, and is tumour
(labelled GTVp) or peritumoural inflammation (not labelled) with equal odds, independently of its appearance.
This is the failure condition of real staging PET/CT that interactive refinement exists for: FDG uptake and CT
density do not tell tumour extension from inflamed or physiologically active tissue next to it (the tonsils, the
base of tongue), the clinician knows from endoscopy and examination, and a click carries that knowledge (Chu
et al. 2026, Fig. 3: "a negative click in a non-primary tumour region"). Without it the primary is the only hot
lesion at the airway, the automatic branch finds all of it, and what is left is a one-voxel rim that a click
mends little of (RESULTS.md, issue 18, session 12). The neighbour is drawn from a child generator
(``rng.spawn``), so the rest of a case is drawn from the same stream as without it.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_ext.errors import InputError
from nnunet_ext.synthetic import shapes as S
from nnunet_ext.synthetic.dataset import PhantomCase

DEFAULT_SIZE = (40, 64, 64)
SPACING = (4.0, 3.0, 3.0)  # z, y, x mm: thicker slices, like a clinical PET/CT
CENTRE_XYZ = (0.0, 15.0, -60.0)  # -> origin about (-94.5, -79.5, -138)
PET_FWHM_MM = 6.0
NODE_COUNT_P = (0.12, 0.3, 0.28, 0.18, 0.12)  # P(0..4 nodes)
PRIMARY_SUV = (8.0, 15.0)  # peak SUV range of the primary, and of its ambiguous neighbour
PRIMARY_HU = 58.0  # CT of the primary (muscle 50 HU), and of its ambiguous neighbour
NEIGHBOUR_TUMOUR_P = 0.5  # an ambiguous neighbour is tumour extension with this probability, else inflammation


def validate_options(ambiguous_rate: float = 0.0) -> None:
    """InputError unless ``ambiguous_rate`` is a probability."""
    if isinstance(ambiguous_rate, bool) or not isinstance(ambiguous_rate, (int, float, np.floating)) \
            or not 0.0 <= float(ambiguous_rate) <= 1.0:
        raise InputError(f"--ambiguous-rate must be a number from 0 to 1, got {ambiguous_rate!r}")


def generate_headneck_case(rng: np.random.Generator, size_zyx=DEFAULT_SIZE,
                           ambiguous_rate: float = 0.0) -> PhantomCase:
    """One CT (int16 HU) + PET (float32 SUV) pair with GTVp / GTVn labels and metadata; ``ambiguous_rate``: the
    probability of an ambiguous neighbour of the primary (module docstring)."""
    validate_options(ambiguous_rate)
    grid, scale, iso = S.scaled_grid(size_zyx, DEFAULT_SIZE, SPACING, CENTRE_XYZ)
    axes = grid.axes()
    hu, suv, m = _anatomy(rng, grid, axes, scale)
    label = np.zeros(grid.shape, np.uint8)

    primary = _primary(rng, grid, axes, iso, m)
    label[primary["mask"]] = 1
    lesions = [primary]
    occupied = primary["mask"]
    neighbour = None
    if ambiguous_rate > 0:
        child = rng.spawn(1)[0]  # leaves rng's stream as it is
        if child.random() < ambiguous_rate:
            neighbour = _neighbour(child, grid, axes, m, primary)
    if neighbour is not None:
        if neighbour["tumour"]:
            label[neighbour["mask"] & (label == 0)] = 1
        lesions.append(neighbour)
        occupied = occupied | neighbour["mask"]
    nodes = []
    blocked = ndimage.binary_dilation(occupied, iterations=2) | m["bone"] | m["airway"] | m["vessel"]
    for _ in range(int(rng.choice(len(NODE_COUNT_P), p=NODE_COUNT_P))):
        node = _node(rng, grid, axes, iso, m, blocked, primary["side"])
        if node is not None:
            label[node["mask"]] = 2
            blocked |= ndimage.binary_dilation(node["mask"], iterations=1)
            nodes.append(node)

    for lesion in lesions + nodes:
        mask, frac = lesion.pop("mask"), lesion.pop("frac")
        hu = hu * (1 - frac) + lesion.pop("hu") * frac
        suv = np.where(frac > 0, np.maximum(suv * (1 - frac) + lesion.pop("suv") * frac, suv), suv)
        com = np.asarray(ndimage.center_of_mass(mask))
        volume_ml = round(float(mask.sum() * np.prod(grid.spacing)) / 1000.0, 3)
        lesion.update({**grid.centre_info(com), "volume_ml": volume_ml})

    ct = S.to_int16_hu(S.add_ct_noise(rng, hu, sd=15.0, psf_vox=(0.3, 0.5, 0.5)))
    sigma = PET_FWHM_MM / 2.355
    pet = ndimage.gaussian_filter(suv * rng.uniform(0.85, 1.15), S.sigma_vox(grid.spacing, sigma))
    noise = ndimage.gaussian_filter(rng.standard_normal(grid.shape).astype(np.float32), 0.7)
    noise /= max(float(noise.std()), 1e-6)
    pet = np.clip(pet + 0.12 * np.sqrt(np.maximum(pet, 0)) * noise, 0, None).astype(np.float32)
    info = {"GTVp": primary, "GTVn": nodes}
    if ambiguous_rate > 0:
        info["ambiguous_neighbour"] = neighbour
    return PhantomCase(images=[ct, pet], label=label, geometry=grid.geometry(), info=info)


def _anatomy(rng, grid, axes, scale):
    """CT (HU) and PET (SUV) maps of normal neck anatomy plus masks used for lesion placement."""
    z, y, x = axes
    sz, sy, sx = scale
    shape = grid.shape
    fz = grid.fov[0]
    z_jaw = rng.uniform(0.05, 0.18) * fz  # level of the mandible / oropharynx
    face = 1.0 / (1.0 + np.exp(-(z - z_jaw) / (12.0 * sz)))  # 0 in the neck, 1 in the lower face
    ax_ = (60.0 + 18.0 * face) * sx * rng.uniform(0.9, 1.08)
    ay_ = (56.0 + 26.0 * face) * sy * rng.uniform(0.9, 1.08)
    cy = -8.0 * sy * face
    ell = ((y - cy) / ay_) ** 2 + (x / ax_) ** 2
    body = np.broadcast_to(ell < 1.0, shape).copy()
    fat_t = rng.uniform(4.0, 9.0) / float(np.mean([ax_.mean(), ay_.mean()]))
    inner = np.broadcast_to(np.sqrt(ell) < 1.0 - fat_t, shape)

    hu = np.full(shape, -1000.0, np.float32)
    suv = np.full(shape, 0.02, np.float32)
    hu[body], suv[body] = -90.0, 0.4
    fat_patch = S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 6.0)) > 1.0
    muscle = inner & ~fat_patch
    hu[muscle], suv[muscle] = 50.0, 0.9
    # cervical spine: vertebral body, canal with cord, posterior elements
    vb = S.elliptic_cylinder(axes, (20.0 * sy, 0.0), (11.0 * sy, 13.0 * sx))
    cortex = vb & ~S.elliptic_cylinder(axes, (20.0 * sy, 0.0), (8.0 * sy, 10.0 * sx))
    canal = S.elliptic_cylinder(axes, (38.0 * sy, 0.0), (7.0 * sy, 8.0 * sx))
    post = S.elliptic_cylinder(axes, (52.0 * sy, 0.0), (9.0 * sy, 16.0 * sx)) & ~canal
    hu[vb | post], suv[vb | post] = 350.0, 1.4
    hu[cortex] = 750.0
    hu[canal], suv[canal] = 30.0, 1.0
    # mandible: anterior U-shaped bony arc at the jaw level
    ring = ((y - (5.0 * sy)) / (52.0 * sy)) ** 2 + (x / (46.0 * sx)) ** 2
    arc = (ring < 1.0) & (ring > 0.74) & (y < 8.0 * sy) & (z > z_jaw - 5.0 * sz) & (z < z_jaw + 28.0 * sz)
    hu[arc & body], suv[arc & body] = 900.0, 1.0
    bone = (vb | post | (arc & body))
    # vessels (carotid / jugular), thyroid, salivary glands, tonsils, brain
    vessel = np.zeros(shape, bool)
    for sgn in (-1, 1):
        for dx, dy, r in ((22.0, 2.0, 4.0), (30.0, 8.0, 6.0)):
            vessel |= S.elliptic_cylinder(axes, (dy * sy, sgn * dx * sx), (r * sy, r * sx))
    vessel &= body & ~bone
    hu[vessel], suv[vessel] = 40.0, 1.6
    glands = [((-0.3 * fz, -24.0, 12.0), (18.0, 8.0, 10.0), 80.0, 1.6),  # thyroid lobes
              ((z_jaw + 22.0 * sz, 12.0, 48.0), (16.0, 14.0, 9.0), 0.0, rng.uniform(1.8, 3.0)),  # parotids
              ((z_jaw - 6.0 * sz, -28.0, 30.0), (9.0, 9.0, 9.0), 35.0, rng.uniform(2.0, 3.0)),  # submandibular
              ((z_jaw + 6.0 * sz, -4.0, 14.0), (10.0, 6.0, 6.0), 45.0, rng.uniform(3.0, 5.0))]  # tonsils
    for (cz, cy_, cx), (rz, ry, rx), g_hu, g_suv in glands:
        for sgn in (-1, 1):
            g = S.ellipsoid(axes, (cz, cy_ * sy, sgn * cx * sx), (rz * sz, ry * sy, rx * sx))
            g &= body & ~bone & ~vessel
            hu[g], suv[g] = g_hu, g_suv
    brain = S.ellipsoid(axes, (fz / 2 + 18.0 * sz, 30.0 * sy, 0.0), (40.0 * sz, 40.0 * sy, 50.0 * sx)) & body
    hu[brain], suv[brain] = 35.0, rng.uniform(6.0, 9.0)
    # airway: trachea / larynx (anterior, low) to oropharynx and nasopharynx (higher, more posterior)
    pts = [(-fz, -26.0), (-0.15 * fz, -22.0), (z_jaw, -6.0), (fz, -2.0)]
    segs = [(np.array([z0, y0 * sy, 0.0]), np.array([z1, y1 * sy, 0.0]), r * min(sx, sy))
            for (z0, y0), (z1, y1), r in zip(pts[:-1], pts[1:], (8.0, 8.5, 8.0))]
    airway = (S.render_tubes(grid, segs) > 0.5) & body
    hu[airway], suv[airway] = -1000.0, 0.02
    return hu, suv, {"body": body, "muscle": muscle, "bone": bone, "vessel": vessel, "airway": airway,
                     "brain": brain, "z_jaw": z_jaw, "airway_segments": segs}


def _lesion(rng, grid, axes, centre, radius, suv_peak, hu_val, necrotic, limit):
    """Lobulated lesion: mask, partial-volume fraction, CT values and heterogeneous SUV (optional necrosis)."""
    d = S.lobulated_distance(rng, grid, axes, centre, radius, irregularity=0.15, n_lobes=int(rng.integers(1, 4)))
    frac = S.soft_inside(d, radius, grid.spacing) * limit
    hetero = 1.0 + 0.15 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 4.0))
    profile = 0.65 + 0.35 * np.clip(1.0 - d ** 2, 0, 1)
    suv = suv_peak * profile * hetero
    hu = hu_val + 8.0 * hetero
    if necrotic:
        core = np.clip(1.0 - d / 0.5, 0, 1)  # inner half of the radius
        suv = suv * (1 - 0.7 * core)
        hu = hu - 25.0 * core
    return {"mask": frac >= 0.5, "frac": frac.astype(np.float32), "suv": suv.astype(np.float32),
            "hu": hu.astype(np.float32)}


def _primary(rng, grid, axes, iso, m):
    """GTVp: one lesion abutting the airway wall (oropharynx, larynx or hypopharynx)."""
    limit = m["body"] & ~m["bone"]
    radius = rng.uniform(10.0, 18.0) * iso
    lesion, c = None, np.array([0.0, -10.0 * grid.spacing[1], 0.0])
    for _attempt in range(20):
        seg = m["airway_segments"][int(rng.integers(len(m["airway_segments"])))]
        p = seg[0] + rng.uniform(0.15, 0.85) * (seg[1] - seg[0])
        if abs(p[0]) > grid.fov[0] / 2 - radius * 0.5:
            continue
        ang = rng.uniform(0, 2 * np.pi)
        c = p + np.array([0.0, np.sin(ang), np.cos(ang)]) * (seg[2] + 0.6 * radius)
        lesion = _lesion(rng, grid, axes, c, radius, rng.uniform(*PRIMARY_SUV), PRIMARY_HU, rng.random() < 0.25,
                         limit)
        if lesion["mask"].sum() >= 4:
            break
        radius *= 0.9
    if lesion is None:  # the airway never lay inside the field of view
        lesion = _lesion(rng, grid, axes, c, radius, rng.uniform(*PRIMARY_SUV), PRIMARY_HU, False, limit)
    if not lesion["mask"].any():  # degenerate grids: at least one voxel
        v = tuple(np.clip(np.rint(grid.to_index(c)), 0, np.asarray(grid.shape) - 1).astype(int))
        lesion["mask"][v], lesion["frac"][v] = True, 1.0
    site = "oropharynx" if c[0] > m["z_jaw"] - 10 else ("larynx" if c[1] < -15 else "hypopharynx")
    return {**lesion, "site": site, "side": "right" if c[2] < 0 else "left", "radius_mm": round(float(radius), 2)}


def _neighbour(rng, grid, axes, m, primary):
    """Ambiguous neighbour of the primary: a hot lobe touching it, 55-85 % of its radius, drawn like the primary
    (:data:`PRIMARY_SUV`, :data:`PRIMARY_HU`) whether it is tumour or inflammation; None when no place inside
    the body is found."""
    centre = np.asarray(grid.to_mm(ndimage.center_of_mass(primary["mask"])))
    radius = primary["radius_mm"] * rng.uniform(0.55, 0.85)
    limit = m["body"] & ~m["bone"] & ~m["airway"]
    for _ in range(20):
        ang = rng.uniform(0, 2 * np.pi)
        direction = np.array([rng.uniform(-0.3, 0.3), np.sin(ang), np.cos(ang)])
        c = centre + direction / np.linalg.norm(direction) * primary["radius_mm"] * rng.uniform(0.9, 1.2)
        c_vox = np.rint(grid.to_index(c)).astype(int)
        if np.any(c_vox < 0) or np.any(c_vox >= grid.shape) or not limit[tuple(c_vox)]:
            continue
        lesion = _lesion(rng, grid, axes, c, radius, rng.uniform(*PRIMARY_SUV), PRIMARY_HU, False, limit)
        if (lesion["mask"] & ~primary["mask"]).sum() >= 4:
            return {**lesion, "tumour": bool(rng.random() < NEIGHBOUR_TUMOUR_P), "radius_mm": round(float(radius), 2)}
    return None


def _node(rng, grid, axes, iso, m, blocked, primary_side):
    """GTVn: a hot lymph node lateral in the neck, ipsilateral to the primary in ~75% of nodes."""
    sgn = (-1 if primary_side == "right" else 1) * (1 if rng.random() < 0.75 else -1)
    radius = rng.uniform(5.0, 11.0) * iso
    sz, sy, sx = (np.asarray(grid.shape) / np.asarray(DEFAULT_SIZE))
    for _ in range(15):
        c = np.array([rng.uniform(-0.35, 0.3) * grid.fov[0], rng.uniform(-12.0, 18.0) * sy,
                      sgn * rng.uniform(30.0, 44.0) * sx])
        c_vox = np.clip(np.rint(grid.to_index(c)), 0, np.asarray(grid.shape) - 1).astype(int)
        if not m["body"][tuple(c_vox)] or blocked[tuple(c_vox)]:
            continue
        lesion = _lesion(rng, grid, axes, c, radius, rng.uniform(4.0, 10.0), 40.0, rng.random() < 0.2,
                         m["body"] & ~blocked)
        if lesion["mask"].sum() >= 2:
            return {**lesion, "side": "right" if sgn < 0 else "left", "radius_mm": round(float(radius), 2)}
        radius *= 0.9
    return None
