"""Lung nodule CT crops with several simulated raters.

A smooth *density* map (0 = aerated lung, 1 = solid tissue) describes the nodule: solid (lobulated, soft edge),
part-solid (solid core inside a ground-glass halo of density 0.3-0.5, i.e. about -600..-400 HU) or spiculated
(solid core with thin tapering spikes). CT = lung parenchyma (~ -850 HU) blended with soft tissue by the
density, plus vessels, sometimes a pleural wall, blur and noise. Each rater thresholds the density at their own
HU level plus a smooth boundary perturbation, so raters agree on solid cores and disagree on ground-glass
rims, soft edges and spikes.

Readers (``rater_model``, :mod:`nnunet_ext.synthetic.readers`): ``exchangeable`` (default) draws K reader styles
per case from a fixed population calibrated on LIDC-IDRI's reader agreement, in random order (rater 0 = the
paper's Label_1 is just the first reader of that order); ``fixed`` keeps the original personal thresholds
(rater k at ``RATER_HU[k]``, nearly nested, the index decides the size), the negative control. Both models give
the same CT for the same seed. The latent truth (the nodule as designed: the lobulated surface(s) and the
spicules' axes at half occupancy) goes to the side folder ``truthTr`` / ``truthTs``.
"""
from __future__ import annotations

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.synthetic import shapes as S
from nnunet_ext.synthetic.dataset import PhantomCase
from nnunet_ext.synthetic.readers import RATER_MODELS, exchangeable_readers, largest_at_centre

DEFAULT_SIZE = (32, 32, 32)
SPACING = (0.8, 0.7, 0.7)  # z, y, x mm: near-isotropic thin-slice CT
CENTRE_XYZ = (-85.0, -30.0, -120.0)  # a crop in the right lung -> origin about (-95.9, -40.9, -132.4)

HU_LUNG, HU_SOLID, HU_VESSEL, HU_WALL = -850.0, 30.0, 40.0, 40.0
#: each rater's personal HU threshold (rater k uses RATER_HU[k]); per case jittered by ~25 HU
RATER_HU = (-450.0, -650.0, -300.0, -550.0)
TYPES = ("solid", "part-solid", "spiculated")
TYPE_P = (0.4, 0.3, 0.3)
MIN_RATERS, MAX_RATERS = 2, 4


def validate_options(raters: int = 4, rater_model: str = "exchangeable") -> None:
    """InputError unless ``raters`` is 2, 3 or 4 and ``rater_model`` is one of :data:`RATER_MODELS`."""
    if not isinstance(raters, (int, np.integer)) or not MIN_RATERS <= raters <= MAX_RATERS:
        raise InputError(f"--raters must be an integer from {MIN_RATERS} to {MAX_RATERS}, got {raters!r}")
    if rater_model not in RATER_MODELS:
        raise InputError(f"--rater-model must be one of {', '.join(RATER_MODELS)}, got {rater_model!r}")


def generate_nodule_case(rng: np.random.Generator, size_zyx=DEFAULT_SIZE, raters: int = 4,
                         rater_model: str = "exchangeable") -> PhantomCase:
    """One nodule crop (int16 HU); ``label`` is rater 0, ``rater_labels`` all ``raters`` masks, side map
    ``truth`` the latent nodule (module docstring)."""
    validate_options(raters, rater_model)
    grid, scale, iso = S.scaled_grid(size_zyx, DEFAULT_SIZE, SPACING, CENTRE_XYZ)
    axes = grid.axes()
    kind = str(rng.choice(TYPES, p=TYPE_P))
    radius = rng.uniform(3.0, 7.0) * iso
    radius = min(radius, 0.32 * float(grid.fov.min()))
    centre = rng.uniform(-1.5, 1.5, 3) * iso
    density, extra, parts = _density(rng, grid, axes, kind, centre, radius)

    hu = HU_LUNG + 20.0 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 2.0))
    hu = hu + density * (HU_SOLID - hu)
    vessels, attached = _vessels(rng, grid, axes, centre, radius, iso)
    hu = hu * (1 - vessels) + HU_VESSEL * vessels
    pleura = rng.random() < 0.25
    if pleura:
        normal = S.random_unit_vector(rng)
        dist = rng.uniform(1.5, 4.0) * iso + radius * 1.4
        z, y, x = axes
        wall = ((z - centre[0]) * normal[0] + (y - centre[1]) * normal[1] + (x - centre[2]) * normal[2]) > dist
        hu = np.where(wall, HU_WALL, hu)
    ct = S.to_int16_hu(S.add_ct_noise(rng, hu.astype(np.float32), sd=25.0, psf_vox=0.6))

    c_vox = tuple(int(v) for v in np.clip(np.rint(grid.to_index(centre)), 0, np.asarray(grid.shape) - 1))
    if rater_model == "fixed":
        masks, thresholds = [], []
        for k in range(raters):
            level = RATER_HU[k] + rng.normal(0.0, 25.0)
            t = (level - HU_LUNG) / (HU_SOLID - HU_LUNG)
            wobble = 0.06 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 1.0))
            masks.append(largest_at_centre(density + wobble, t, c_vox, density))
            thresholds.append(round(float(level), 1))
        reader_info = {"rater_threshold_hu": thresholds}
    else:
        masks, reader_info = exchangeable_readers(rng, grid, {**parts, "full": density, "kind": kind}, c_vox, raters,
                                                  HU_LUNG, HU_SOLID, S.smooth_field, S.sigma_vox)
    vml = float(np.prod(grid.spacing))
    info = {"type": kind, "diameter_mm": round(2 * float(radius), 2),
            **grid.centre_info(grid.to_index(centre)), "pleura": bool(pleura),
            "attached_vessel": bool(attached), "rater_model": rater_model, **reader_info,
            "rater_volume_mm3": [round(float(m.sum()) * vml, 1) for m in masks], **extra}
    return PhantomCase(images=[ct], label=masks[0].copy(), geometry=grid.geometry(), info=info,
                       rater_labels=masks, side_maps={"truth": parts["truth"].astype(np.uint8)})


def _density(rng, grid, axes, kind, centre, radius):
    """Nodule density map (0..1) for ``kind``, a few descriptors of it and its parts: ``truth`` (the latent
    nodule: inside the lobulated surface(s) or a spicule at half occupancy) and, for part-solid / spiculated
    nodules, ``core`` (the density of the solid core alone: no halo, no spicules)."""
    def soft(d, r, edge_mm):
        return np.clip(0.5 + (1.0 - d) * r / edge_mm, 0.0, 1.0)

    extra = {}
    if kind == "solid":
        d = S.lobulated_distance(rng, grid, axes, centre, radius, irregularity=0.1, n_lobes=int(rng.integers(1, 4)))
        density = soft(d, radius, 1.2)
        parts = {"truth": d <= 1.0}
    elif kind == "part-solid":
        halo_value = rng.uniform(0.3, 0.5)
        d = S.lobulated_distance(rng, grid, axes, centre, radius, irregularity=0.15, n_lobes=3)
        texture = 1.0 + 0.15 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 1.0))
        r_core = radius * rng.uniform(0.35, 0.6)
        off = S.random_unit_vector(rng) * 0.2 * radius
        dc = S.lobulated_distance(rng, grid, axes, centre + off, r_core, irregularity=0.1, n_lobes=1)
        core = soft(dc, r_core, 1.0)
        density = np.maximum(halo_value * texture * soft(d, radius, 1.5), core)
        parts = {"truth": (d <= 1.0) | (dc <= 1.0), "core": core.astype(np.float32)}
        extra = {"halo_hu": round(HU_LUNG + halo_value * (HU_SOLID - HU_LUNG), 1),
                 "core_diameter_mm": round(2 * float(r_core), 2)}
    else:
        r_core = radius * rng.uniform(0.6, 0.85)
        d = S.lobulated_distance(rng, grid, axes, centre, r_core, irregularity=0.12, n_lobes=2)
        density = soft(d, r_core, 1.0)
        parts = {"truth": d <= 1.0, "core": density.astype(np.float32)}
        n_spikes = int(rng.integers(6, 14))
        for _ in range(n_spikes):
            u = S.random_unit_vector(rng)
            length = radius * rng.uniform(0.6, 1.4)
            pts = [centre + u * (r_core * 0.8 + length * f) for f in (0.0, 0.35, 0.7, 1.0)]
            for (p0, p1), r, w in zip(zip(pts[:-1], pts[1:]), (0.9, 0.65, 0.45), (0.9, 0.7, 0.5)):
                occ = S.render_tubes(grid, [(p0, p1, r)])
                density = np.maximum(density, w * occ)
                parts["truth"] = parts["truth"] | (occ >= 0.5)
        extra = {"n_spikes": n_spikes, "core_diameter_mm": round(2 * float(r_core), 2)}
    return density.astype(np.float32), extra, parts


def _vessels(rng, grid, axes, centre, radius, iso):
    """2-4 straight vessels crossing the crop; sometimes one touches the nodule."""
    segments, attached = [], False
    half = grid.fov / 2.0
    for _ in range(int(rng.integers(2, 5))):
        u = S.random_unit_vector(rng)
        touch = rng.random() < 0.3
        offset_dir = np.cross(u, S.random_unit_vector(rng))
        offset_dir /= np.linalg.norm(offset_dir) + 1e-12
        r = rng.uniform(0.6, 1.4) * iso
        gap = radius + r - 0.5 if touch else radius + r + rng.uniform(1.5, float(half.min()))
        p = centre + offset_dir * gap
        segments.append((p - u * 2 * half.max(), p + u * 2 * half.max(), r))
        attached |= touch
    return S.render_tubes(grid, segments), attached
