"""Brain MR phantom (T1, T1ce, T2, FLAIR; arbitrary units, zero outside the head): scalp, skull, CSF, cortex
(grey matter) with sulci, white matter, ventricles and deep grey matter, a smooth multiplicative bias field
and Rician-like noise, and a glioma with necrotic core, enhancing rim and surrounding oedema.

Labels follow nnU-Net's BraTS convention: 1 = oedema, 2 = necrosis / non-enhancing core, 3 = enhancing tumour
(regions: whole tumour {1,2,3} > tumour core {2,3} > enhancing tumour {3}). Also yields the brain mask.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_ext.synthetic import shapes as S
from nnunet_ext.synthetic.dataset import PhantomCase

DEFAULT_SIZE = (40, 64, 64)
SPACING = (3.5, 3.0, 3.0)  # z, y, x mm: near-isotropic
CENTRE_XYZ = (0.0, -18.0, 25.0)  # -> origin about (-94.5, -112.5, -43.25)

BG, SCALP, SKULL, CSF, GM, WM, OEDEMA, NECROSIS, ENHANCING = range(9)
#: tissue -> (T1, T1ce, T2, FLAIR) mean intensity
CONTRAST = np.array([
    [0, 0, 0, 0],            # background (air)
    [800, 800, 550, 500],    # scalp (fat)
    [60, 60, 50, 40],        # skull
    [180, 180, 1000, 120],   # CSF: dark T1 / FLAIR, bright T2
    [480, 490, 560, 520],    # grey matter
    [700, 700, 380, 420],    # white matter: bright T1
    [420, 430, 820, 880],    # oedema: bright T2 / FLAIR
    [250, 230, 900, 450],    # necrosis: dark T1ce
    [520, 1150, 650, 720],   # enhancing tumour: bright T1ce
], np.float32)
CHANNELS = ("T1", "T1ce", "T2", "FLAIR")


def generate_brain_case(rng: np.random.Generator, size_zyx=DEFAULT_SIZE) -> PhantomCase:
    """One 4-channel brain MR (float32) with glioma labels, brain mask and metadata."""
    grid, scale, iso = S.scaled_grid(size_zyx, DEFAULT_SIZE, SPACING, CENTRE_XYZ)
    axes = grid.axes()
    tissue, brain, intracranial, ventricles = _anatomy(rng, grid, axes, scale, iso)
    label, tinfo = _tumour(rng, grid, axes, iso, brain, ventricles)
    tissue[label == 1] = OEDEMA
    tissue[label == 3] = ENHANCING
    tissue[label == 2] = NECROSIS

    head = tissue != BG
    hetero = 1.0 + 0.08 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 5.0)) * (label > 0)
    images = []
    for c in range(len(CHANNELS)):
        img = CONTRAST[tissue, c] * hetero
        img = ndimage.gaussian_filter(img, 0.5)  # partial volume / point spread
        bias = np.exp(0.12 * S.smooth_field(rng, grid.shape, S.sigma_vox(grid.spacing, 60.0)))
        sd = 0.03 * CONTRAST[WM, c]
        noisy = np.sqrt((img * bias + sd * rng.standard_normal(grid.shape)) ** 2
                        + (sd * rng.standard_normal(grid.shape)) ** 2)  # Rician magnitude noise
        images.append((noisy * head).astype(np.float32))
    return PhantomCase(images=images, label=label, side_maps={"brainmasks": intracranial.astype(np.uint8)},
                       geometry=grid.geometry(), info={"tumour": tinfo})


def _anatomy(rng, grid, axes, scale, iso):
    """Tissue class map plus brain (GM+WM), intracranial and ventricle masks."""
    z, y, x = axes
    sz, sy, sx = scale
    shape = grid.shape
    radii = np.array([72.0 * sz, 92.0 * sy, 74.0 * sx]) * rng.uniform(0.93, 1.04, 3)
    centre = np.array([-8.0 * sz, 0.0, 0.0])
    deform = 0.025 * S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 30.0))
    d_head = S.ellipsoid_radius(axes, centre, radii) + deform
    scalp_t, skull_t, csf_t = 5.0 * iso, 6.0 * iso, 2.5 * iso
    r_mean = float(np.mean(radii))
    d_skull, d_csf, d_brain = (1 - scalp_t / r_mean, 1 - (scalp_t + skull_t) / r_mean,
                               1 - (scalp_t + skull_t + csf_t) / r_mean)

    tissue = np.zeros(shape, np.uint8)
    tissue[d_head < 1] = SCALP
    tissue[d_head < d_skull] = SKULL
    intracranial = d_head < d_csf
    tissue[intracranial] = CSF
    brain = d_head < d_brain
    # cortex: a grey-matter band of wavy thickness (gyri), with CSF-filled sulci
    gyri = S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 4.0))
    cortex_t = (5.0 + 2.5 * gyri) * iso / r_mean
    wm = d_head < d_brain - np.maximum(cortex_t, 1.5 * iso / r_mean)
    sulci = brain & ~wm & (gyri > 1.1)
    fissure = (np.abs(x) < 0.5 * grid.spacing[2] + 0.5) & (z > centre[0]) & ~ (d_head < d_brain - 0.25)
    tissue[brain] = GM
    tissue[wm] = WM
    tissue[(sulci | fissure) & brain] = CSF
    # deep grey matter (thalami / basal ganglia) and lateral ventricles
    for sign in (-1.0, 1.0):
        tissue[S.ellipsoid(axes, centre + [2.0 * sz, 8.0 * sy, sign * 13.0 * sx],
                           [9.0 * sz, 12.0 * sy, 9.0 * sx]) & wm] = GM
    vdeform = 0.1 * S.smooth_field(rng, shape, S.sigma_vox(grid.spacing, 10.0))
    v_size = rng.uniform(0.8, 1.3)
    ventricles = np.zeros(shape, bool)
    for sign in (-1.0, 1.0):
        ventricles |= (S.ellipsoid_radius(axes, centre + [12.0 * sz, -4.0 * sy, sign * 8.0 * sx],
                                          np.array([8.0 * sz, 25.0 * sy, 5.5 * sx]) * v_size) + vdeform) < 1
    ventricles &= wm
    tissue[ventricles] = CSF
    brain_tissue = (tissue == GM) | (tissue == WM)
    return tissue, brain_tissue, intracranial, ventricles


def _tumour(rng, grid, axes, iso, brain, ventricles):
    """Glioma: lobulated core (enhancing rim around a necrotic centre) inside a larger oedema blob."""
    depth = ndimage.distance_transform_edt(brain, sampling=grid.spacing)
    r_core = rng.uniform(12.0, 22.0) * iso
    r_core = min(r_core, 0.7 * float(depth.max()))
    z, y, x = axes
    lateral = np.broadcast_to(np.abs(x) > 12.0 * iso, grid.shape)
    cand = (depth > r_core + 4.0 * iso) & lateral & ~ventricles
    if not cand.any():
        cand = depth >= 0.8 * float(depth.max())
    c_vox = S.sample_voxel(rng, cand)
    c = grid.to_mm(c_vox)
    core = S.lobulated_distance(rng, grid, axes, c, r_core, irregularity=0.12, n_lobes=2) < 1
    core &= brain | ventricles
    core[tuple(c_vox)] = True
    inner = ndimage.binary_erosion(core, iterations=1)
    r_nec = r_core * rng.uniform(0.5, 0.75)
    off = S.random_unit_vector(rng) * 0.15 * r_core
    necrosis = (S.lobulated_distance(rng, grid, axes, c + off, r_nec, irregularity=0.15, n_lobes=1) < 1) & inner
    if not necrosis.any():  # small grids: at least the centre voxel is necrotic when the core has an interior
        necrosis[tuple(c_vox)] = bool(inner[tuple(c_vox)])
    r_oed = r_core + rng.uniform(8.0, 20.0) * iso
    oedema = S.lobulated_distance(rng, grid, axes, c, r_oed, irregularity=0.2, n_lobes=3) < 1
    oedema = (oedema & brain) | (ndimage.binary_dilation(core, iterations=1) & (brain | ventricles))
    label = np.zeros(grid.shape, np.uint8)
    label[oedema] = 1
    label[core] = 3
    label[necrosis] = 2
    vml = float(np.prod(grid.spacing)) / 1000.0
    com = np.asarray(ndimage.center_of_mass(core))
    info = {**grid.centre_info(com),
            "hemisphere": "right" if c[2] < 0 else "left", "core_radius_mm": round(float(r_core), 2),
            "volume_ml": {"oedema": round((label == 1).sum() * vml, 3), "necrosis": round((label == 2).sum() * vml, 3),
                          "enhancing": round((label == 3).sum() * vml, 3)}}
    return label, info
