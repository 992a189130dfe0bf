"""Classical (threshold) lung masks for CT in HU: 0 background, 1 right lung, 2 left lung. No weights.

The algorithm (:func:`threshold_lung_mask`; options in :data:`THRESHOLD_DEFAULTS`; each component's decision
in :func:`lung_mask_log`):

1. **Checks.** The image must look like CT in HU: some voxels below -500 (air); MR-like or normalised
   intensities are refused (:class:`InputError`). A body must exist (tissue > ``body_hu``), else InputError.
2. **Body.** Tissue (> ``body_hu``) is opened in-plane with a square of half-side ``body_opening_mm`` (2 mm,
   at least one voxel) so blankets, the table plate, cables and thin clothing detach from the patient (a
   larger opening cuts thin chest walls, and a slice whose body contour is cut loses its lungs); the largest
   3D component is the body, its holes filled per axial slice (lungs, airways and gut are enclosed by it).
3. **Candidate air.** HU < ``air_hu`` inside the filled body: air outside the patient, in the mattress, and
   between blanket and skin is never a candidate.
4. **Airways.** Trachea and main bronchi are tracked down from the most superior slice (small air
   cross-sections near the midline, :func:`~.lung_geometry.trachea`) and removed, so they do not join the
   lungs; they are kept as evidence. Scans shorter than ``trachea_min_scan_mm`` are not tracked (1-5 slices
   cannot tell a small lung cross-section from an airway; their trachea is pure air and falls under ``gas``);
   tracked air shorter than ``trachea_min_length_mm`` is no trachea and is left alone.
5. **Components** (6-connected 3D). Rejected: ``too_small`` (largest cross-section < ``min_area_mm2``), ``gas``
   (median HU < ``gas_hu``: stomach / bowel / colon gas; parenchyma with its vessels and partial volume lies
   around -850), ``anterior`` (centroid in the anterior ``anterior_limit`` of the body's AP extent in its
   slices: transverse colon, stomach). Accepted only with lung evidence -- "lung-sized" meaning a largest
   cross-section >= ``lung_area_fraction`` of the body's largest:

   * ``airway``: lung-sized and touching the tracked airways;
   * ``thoracic``: lung-sized and >= ``min_lung_height_mm`` tall;
   * ``spans_scan``: lung-sized and present in every slice (a slab shorter than a lung, cut at both ends);
   * ``continues_above``: reaches the top of the scan with >= ``top_area_ratio`` of its largest cross-section
     there (a lung cut by the scan range) and lies posteriorly (centroid behind ``cut_lung_min_ap`` of the AP
     extent: lung bases; in scans shorter than ``trachea_min_scan_mm``, where every component reaches the top,
     instead a cross-section >= ``short_scan_area_fraction`` of the body's: sinus air of a head slice is
     smaller).

   A gas pocket closed inside the scan has none of these (``no_lung_evidence``). The largest accepted
   component is kept with every other accepted one overlapping it in z (>= ``min_pair_z_overlap`` of the
   shorter extent: the other lung, lungs cut into pieces by vessels or the diaphragm dome), provided the
   largest of those has >= ``second_ratio`` of its volume; a lung-sized component without evidence joins when
   it overlaps the first in z by >= ``partner_z_overlap`` (short scans: every component not rejected, once one
   lung is accepted -- lungs cut into pieces by vessels or a tumour). Nothing accepted: empty mask + warning.
6. **Left / right.** One kept component with >= 15 % of its voxels on each side of the body midline holds both
   lungs and is split (:func:`~.lung_geometry.split_lungs`: in-plane erosion, else the projection valley).
   Each lung is labelled by the side of the body's physical x its centroid lies on (LPS: patient right = -x),
   so flipped and oblique directions give the right anatomical labels.
7. **Envelope** (tumour-inclusive masks, issue 20): a solid lesion at the lung border is tissue, not air, and
   not enclosed by air in any axial slice, so steps 3-6 leave it out. Each lung is closed with a 3D rolling ball
   of radius ``envelope_radius_mm`` (20 mm; :mod:`~nnunet_ext.methods.lung_cascade.lung_envelope`): voxels no
   ball avoiding the lung can reach -- the inside of a juxta-pleural or hilar-adjacent mass bulging into the
   lung -- are added when they are body tissue (never air: airways, gas, the other lung) and lie in a z-run of
   added voxels no taller than ``envelope_max_height_mm`` (60 mm: the grooves of aorta, spine and oesophagus run
   the whole chest). Heart, mediastinum and diaphragm dome are broad (the ball rolls over them). Measured on
   real CT (benchmarks/RESULTS.md, issue 20): a 48 ml mass against the posterior pleura 2 % -> 84 % inside;
   soft tissue in the mask 1-2 % -> 4-5 %. ``envelope_radius_mm=0`` gives the air-only mask of before.
8. Holes filled per axial slice, one in-plane closing (``closing_iterations``).

Volumes stored sagittally or coronally are transposed to axial order first (from the direction cosines).
Known limits: lungs touching the image border (field of view cut through the body) are not enclosed by the
body contour; posterior colon gas at the very top of an abdominal scan can pass as a lung base.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from nnunet_ext.errors import InputError
from nnunet_ext.methods.lung_cascade.lung_envelope import lung_envelope
from nnunet_ext.methods.lung_cascade.lung_geometry import (
    as_axial,
    index_to_lps,
    patient_x,
    split_lungs,
    superior_is_high_z,
    trachea,
)

RIGHT, LEFT = 1, 2

#: defaults of :func:`threshold_lung_mask` (all overridable as keyword arguments)
THRESHOLD_DEFAULTS = {
    "air_hu": -320.0,             # voxels below this HU are air-like (lung parenchyma ~ -850, air -1000)
    "body_hu": -500.0,            # tissue above this HU forms the body
    "body_opening_mm": 2.0,       # in-plane opening radius (>= 1 voxel) detaching blanket / table / cables
    "gas_hu": -950.0,             # a component whose median HU is below this is a gas pocket, not lung
    "min_area_mm2": 150.0,        # a lung's largest cross-section is at least this
    "lung_area_fraction": 0.06,   # 'thoracic': largest cross-section >= this fraction of the body's largest ...
    "min_lung_height_mm": 80.0,   # ... and at least this tall (colon / stomach pockets are shorter)
    "anterior_limit": 0.4,        # centroid in the anterior 40 % of the body (AP) -> not lung
    "top_area_ratio": 0.5,        # 'continues above': top-slice area >= this fraction of the largest area ...
    "cut_lung_min_ap": 0.45,      # ... and centroid at least this far back (lung bases lie posteriorly);
    "short_scan_area_fraction": 0.025,  # in scans < trachea_min_scan_mm instead >= this fraction of the body area
    "min_pair_z_overlap": 0.3,    # the second lung overlaps the first in z by this fraction of the shorter
    "second_ratio": 0.05,         # ... and has at least this fraction of the first one's volume
    "partner_z_overlap": 0.8,     # a lung-sized component without evidence is paired when it overlaps this much
    "trachea_max_area_mm2": 800.0,  # 2D airway cross-sections above this area are lung, not trachea / bronchus
    "trachea_midline_mm": 40.0,   # trachea seeds: within this distance of the body midline
    "trachea_min_scan_mm": 30.0,  # no airway tracking in shorter scans (1-5 slices): pure-air trachea is 'gas'
    "trachea_min_length_mm": 20.0,  # a tracked airway shorter than this is not a trachea
    "split_max_erosion_mm": 20.0,  # in-plane erosion depth tried to separate lungs touching at the midline
    "closing_iterations": 1,      # final in-plane closing per lung
    "envelope_radius_mm": 20.0,   # rolling-ball radius putting solid lesions at the lung border back (0: off)
    "envelope_max_height_mm": 60.0,  # ... keeping added voxels in z-runs no taller than this (not vessel grooves)
}


def check_ct_intensities(ct: np.ndarray) -> None:
    """InputError unless ``ct`` looks like CT in HU (air around -1000 somewhere; MR has no negative values)."""
    lo = float(np.min(ct))
    if lo > -500:
        kind = "normalised / MR-like" if lo >= -1.0 else "not HU-like"
        raise InputError(f"intensities look {kind} (minimum {lo:g}, no voxel below -500): lung masks need a CT "
                         "in Hounsfield units (air ~ -1000 HU)")


def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        out[k] = ndimage.binary_fill_holes(mask[k]) if mask[k].any() else mask[k]
    return out


def _closing_2d(mask: np.ndarray, iterations: int) -> np.ndarray:
    if iterations <= 0 or not mask.any():
        return mask
    s = np.zeros((3, 3, 3), bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    p = iterations + 1
    padded = np.pad(mask, ((0, 0), (p, p), (p, p)))
    return ndimage.binary_closing(padded, structure=s, iterations=iterations)[:, p:-p, p:-p]


def _body(ct: np.ndarray, body_hu: float, opening_px: int) -> np.ndarray:
    """Largest 3D component of the in-plane-opened tissue, holes filled per slice (module docstring step 2).
    Square opening by separable min / max filters (fast on 512^2 slices)."""
    import cc3d

    tissue = ct > body_hu
    if opening_px > 0:
        size = (1, 2 * opening_px + 1, 2 * opening_px + 1)
        opened = ndimage.maximum_filter(ndimage.minimum_filter(tissue, size=size, mode="constant", cval=0),
                                        size=size, mode="constant", cval=0)
        if opened.any():
            tissue = opened
    labels, n = cc3d.connected_components(tissue.view(np.uint8), connectivity=6, return_N=True)
    if n == 0:
        return np.zeros(ct.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    return _fill_holes_2d(labels == int(np.argmax(sizes)) + 1)


def _features(comp, box, ct, body, geometry, px_area, top_index, airway_near):
    """Per-component measurements used by the rules (module docstring step 5)."""
    sub = comp[box]
    areas = sub.sum(axis=(1, 2)) * px_area
    z0, z1 = box[0].start, box[0].stop
    idx = np.argwhere(sub)
    if len(idx) > 20000:
        idx = idx[:: len(idx) // 20000 + 1]
    idx = idx + [s.start for s in box]
    y_c = float(index_to_lps(geometry, idx)[:, 1].mean())
    bidx = np.argwhere(body[z0:z1])
    if len(bidx) > 20000:
        bidx = bidx[:: len(bidx) // 20000 + 1]
    by = index_to_lps(geometry, bidx + [z0, 0, 0])[:, 1]
    ymin, ymax = float(by.min()), float(by.max())
    # LPS: +y = posterior; 0 = most anterior, 1 = most posterior body point in these slices
    rel_y = (y_c - ymin) / max(ymax - ymin, 1e-6)
    top_slice = top_index - z0 if z0 <= top_index < z1 else None
    return {
        "voxels": int(sub.sum()), "max_area_mm2": round(float(areas.max()), 1),
        "median_hu": float(np.median(ct[box][sub])), "z_range": [int(z0), int(z1)],
        "anterior_posterior": round(rel_y, 3),
        "top_area_mm2": None if top_slice is None else round(float(areas[top_slice]), 1),
        "touches_airway": bool(airway_near is not None and (airway_near[box] & sub).any()),
    }


def _classify(f: dict, opts: dict, body_max_area: float, short_scan: bool) -> str:
    """'lung:<evidence>' or the rejection reason."""
    if f["max_area_mm2"] < opts["min_area_mm2"]:
        return "too_small"
    if f["median_hu"] < opts["gas_hu"]:
        return "gas"
    if f["anterior_posterior"] < opts["anterior_limit"]:
        return "anterior"
    large = f["max_area_mm2"] >= opts["lung_area_fraction"] * body_max_area
    if large and f["touches_airway"]:
        return "lung:airway"
    if large and f["height_mm"] >= opts["min_lung_height_mm"]:
        return "lung:thoracic"
    if large and f["spans_scan"]:  # a slab shorter than a lung, cut through it at both ends
        return "lung:spans_scan"
    if (f["top_area_mm2"] is not None and f["top_area_mm2"] >= opts["top_area_ratio"] * f["max_area_mm2"]
            and (f["max_area_mm2"] >= opts["short_scan_area_fraction"] * body_max_area if short_scan
                 else f["anterior_posterior"] >= opts["cut_lung_min_ap"])):
        return "lung:continues_above"
    return "no_lung_evidence"


def _z_overlap(a: dict, b: dict) -> float:
    (a0, a1), (b0, b1) = a["z_range"], b["z_range"]
    return max(0, min(a1, b1) - max(a0, b0)) / max(min(a1 - a0, b1 - b0), 1)


def lung_mask_log(ct_hu_zyx: np.ndarray, geometry, **options) -> tuple[np.ndarray, dict]:
    """``(mask, log)``: the threshold lung mask and, per candidate component, its measurements and decision."""
    import cc3d

    opts = dict(THRESHOLD_DEFAULTS)
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown threshold_lung_mask option(s): {', '.join(sorted(unknown))}")
    opts.update(options)
    ct = np.asarray(ct_hu_zyx)
    if ct.ndim != 3:
        raise InputError(f"lung masks need a 3D CT; got an array of shape {ct.shape}")
    check_ct_intensities(ct)
    ct, geometry, back = as_axial(ct, geometry)
    if back is not None:  # sagittal / coronal storage: work axially, return in the input's axis order
        mask, log = lung_mask_log(ct, geometry, **options)
        return np.ascontiguousarray(np.transpose(mask, back)), log
    spacing_zyx = tuple(float(s) for s in geometry.spacing[::-1])
    px_area = spacing_zyx[1] * spacing_zyx[2]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    out = np.zeros(ct.shape, np.uint8)
    log = {"options": opts, "components": [], "lungs": 0, "warnings": []}

    body = _body(ct, opts["body_hu"], max(1, int(round(opts["body_opening_mm"] / min(spacing_zyx[1:])))))  # step 2
    if not body.any():
        raise InputError(f"no body found: no connected tissue above {opts['body_hu']:g} HU in the image")
    xs = np.arange(ct.shape[2])
    counts = body.sum(axis=(1, 2))
    overall = float((body.sum(axis=(0, 1)) * xs).sum() / body.sum())
    midline_x = np.where(counts > 0, (body.sum(axis=1) * xs).sum(axis=1) / np.maximum(counts, 1), overall)

    cand = (ct < opts["air_hu"]) & body                                             # step 3
    superior_high = superior_is_high_z(geometry)
    short_scan = ct.shape[0] * spacing_zyx[0] < opts["trachea_min_scan_mm"]
    if not short_scan:                                                                          # step 4
        airway = trachea(cand, midline_x, spacing_zyx, superior_high, opts["trachea_max_area_mm2"],
                         opts["trachea_midline_mm"])
    else:
        airway = np.zeros_like(cand)
    if airway.any():  # a trachea is pure air and runs >= trachea_min_length_mm down from the top slice
        length = airway.any(axis=(1, 2)).sum() * spacing_zyx[0]
        if length < opts["trachea_min_length_mm"]:
            airway = np.zeros_like(cand)
            log["warnings"].append("no trachea found (tracked airway too short)")
    cand &= ~airway
    airway_near = ndimage.binary_dilation(airway, iterations=2) if airway.any() else None

    labels, n = cc3d.connected_components(cand.view(np.uint8), connectivity=6, return_N=True)   # step 5
    body_max_area = float(counts.max()) * px_area
    top_index = ct.shape[0] - 1 if superior_high else 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    boxes = ndimage.find_objects(labels)
    min_vox = opts["min_area_mm2"] / px_area
    accepted = []
    for i in np.argsort(sizes[1:])[::-1] + 1:
        if sizes[i] < min_vox:  # cannot reach the minimum cross-section: too small, not logged one by one
            break
        comp = labels == i
        f = _features(comp, boxes[i - 1], ct, body, geometry, px_area, top_index, airway_near)
        f["volume_ml"] = round(f["voxels"] * voxel_ml, 2)
        f["height_mm"] = round((f["z_range"][1] - f["z_range"][0]) * spacing_zyx[0], 1)
        f["spans_scan"] = f["z_range"] == [0, ct.shape[0]]
        f["decision"] = _classify(f, opts, body_max_area, short_scan)
        log["components"].append(f)
        if f["decision"].startswith("lung:") or f["decision"] == "no_lung_evidence":
            accepted.append((comp, f))
    log["n_small_skipped"] = int((sizes[1:] < min_vox).sum())
    # a lung-sized component without evidence of its own counts only as the partner of an accepted lung
    large = opts["lung_area_fraction"] * body_max_area
    while accepted and not accepted[0][1]["decision"].startswith("lung:"):
        accepted.pop(0)
    if accepted:
        accepted = [accepted[0]] + [(c, f) for c, f in accepted[1:] if f["decision"].startswith("lung:") or short_scan
                                    or (f["max_area_mm2"] >= large
                                        and _z_overlap(f, accepted[0][1]) >= opts["partner_z_overlap"])]
    if not accepted:
        msg = "no lungs found (no air component with lung evidence): empty lung mask"
        warnings.warn(msg, stacklevel=3)
        log["warnings"].append(msg)
        return out, log

    first, f1 = accepted[0]
    kept = [first]
    right_of_mid = (xs[None, None, :] < midline_x[:, None, None]) & first                       # step 6
    frac = right_of_mid.sum() / first.sum()
    if min(frac, 1 - frac) >= 0.15:  # both lungs in one component: split it
        box = ndimage.find_objects(first.astype(np.uint8))[0]
        halves = split_lungs(first[box], spacing_zyx, midline_x[box[0]] - box[2].start,
                             opts["split_max_erosion_mm"])
        kept = []
        for h in halves:
            if h.any():
                full = np.zeros_like(first)
                full[box] = h
                kept.append(full)
        f1["decision"] += "+split"
    # further accepted pieces beside the first lung in z (the other lung, lungs cut into pieces by vessels in
    # thin slabs or by the diaphragm dome in thick slices); the largest one must be >= second_ratio of it
    pieces = [(c, f) for c, f in accepted[1:] if _z_overlap(f, f1) >= opts["min_pair_z_overlap"]]
    if pieces and pieces[0][1]["voxels"] < opts["second_ratio"] * f1["voxels"]:
        pieces = []
    for comp, f in accepted[1:]:
        if any(comp is c for c, _ in pieces):
            kept.append(comp)
            f["decision"] += "+paired"
        else:
            f["decision"] = "not_paired"
    body_x = patient_x(geometry, body)
    values = tuple(RIGHT if patient_x(geometry, m) <= body_x else LEFT for m in kept)
    if opts["envelope_radius_mm"] > 0:                                                          # step 7
        # the ball may add tissue inside the body, never air (airways, gas, the other lung)
        allowed = body & ~cand & ~airway
        lungs = np.zeros(ct.shape, bool)
        for m in kept:
            lungs |= m
        kept = [lung_envelope(m, spacing_zyx, float(opts["envelope_radius_mm"]), allowed & ~(lungs & ~m),
                              opts["envelope_max_height_mm"]) for m in kept]
    for m, value in zip(kept, values):                                                          # step 8
        m = _closing_2d(_fill_holes_2d(m), int(opts["closing_iterations"]))
        out[m & (out == 0)] = value
    log["lungs"] = len(kept)
    return out, log


def threshold_lung_mask(ct_hu_zyx: np.ndarray, geometry, **options) -> np.ndarray:
    """Classical lung mask of a CT in HU (numpy (z, y, x)) -> uint8 (0, 1 = right, 2 = left lung).
    Steps: module docstring; per-component decisions: :func:`lung_mask_log`."""
    return lung_mask_log(ct_hu_zyx, geometry, **options)[0]
