"""``nnext convert lidc``: LIDC-IDRI (TCIA) -> rater-set nodule crops (Yang & Wang sec. IV-A protocol).

Per scan of the pylidc database whose patient folder (``LIDC-IDRI-xxxx``) is in the input tree:

1. nodules = ``scan.cluster_annotations()``; keep those with >= ``min_raters`` annotations (paper: >= 2) and
   a mean annotated diameter (``Annotation.diameter``, mm) within ``diameter`` (paper: 3-30 mm). More than
   :data:`~nnunet_ext.methods.multi_rater.raters.MAX_RATERS` annotations (a clustering error) -> skipped and logged.
2. per-rater boolean masks from ``pylidc.utils.consensus(anns, clevel=0.5, ret_masks=True)`` (the bounding
   box of all raters in pylidc's (row, column, slice) volume order, slices sorted by z);
3. the CT series is found among the DICOM files by its SeriesInstanceUID and read with SimpleITK (HU);
   pylidc slice k is mapped to the CT slice at the same z (``scan.slice_zvals``, 0.1 mm tolerance);
4. a crop of ``crop`` = X,Y,Z voxels (default 64,64,32) centred on the centre of the raters' union bbox, padded
   with -1024 HU outside the scan (geometry kept: origin of the crop's first voxel, the CT's spacing and
   direction); ``--2d``: one axial slice, the union's central slice, X x Y in-plane (the paper's 2D crops).

Cases are named ``LIDC-IDRI-xxxx_nNN`` (NN = nodule index in the scan); raters are in pylidc's annotation
order. A patient folder without the DICOM series of a database scan is an error naming scan and folder
(``--skip-invalid`` logs it). Everything is written through :mod:`nnunet_ext.conversion.raters`'s
dataset.json (one ``nodule`` region over all rater-set codes) plus ``conversion_log.json``. The run ends with
``N converted, M skipped`` and one line per nodule or scan left out, with its reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import write_json
from nnunet_ext.methods.multi_rater.raters import MAX_RATERS, encode_raters

PAD_HU = -1024
Z_TOLERANCE_MM = 0.1


def nodules_of_scan(scan, min_raters: int = 2, diameter=(3.0, 30.0)) -> tuple[list, list[dict]]:
    """(kept annotation clusters, log entries for every cluster) of one pylidc scan."""
    kept, log = [], []
    for i, anns in enumerate(scan.cluster_annotations(verbose=False)):
        d = float(np.mean([a.diameter for a in anns]))
        entry = {"nodule": i, "n_raters": len(anns), "diameter_mm": round(d, 2)}
        if len(anns) < min_raters:
            entry["skipped"] = f"{len(anns)} rater(s) < {min_raters}"
        elif len(anns) > MAX_RATERS:
            entry["skipped"] = f"{len(anns)} annotations > {MAX_RATERS} (clustering error)"
        elif not diameter[0] <= d <= diameter[1]:
            entry["skipped"] = f"diameter {d:.1f} mm outside {diameter[0]}-{diameter[1]} mm"
        else:
            kept.append((i, anns))
        log.append(entry)
    return kept, log


def rater_masks(anns) -> tuple[np.ndarray, tuple[slice, slice, slice]]:
    """((K, rows, cols, slices) bool masks, bbox in pylidc's volume) via ``consensus(..., ret_masks=True)``."""
    from nnunet_ext.conversion.pylidc_compat import import_pylidc

    import_pylidc()
    from pylidc.utils import consensus

    _, bbox, masks = consensus(anns, clevel=0.5, ret_masks=True)
    return np.stack([np.asarray(m, bool) for m in masks]), tuple(slice(int(s.start), int(s.stop)) for s in bbox)


def crop_case(hu: np.ndarray, image, scan, masks: np.ndarray, bbox, crop_xyz=(64, 64, 32), two_d: bool = False):
    """(ct crop (z, y, x) int16, rater masks (K, z, y, x) uint8, crop origin index (z, y, x)) — module doc."""
    zvals = np.asarray(scan.slice_zvals, float)
    ct_z = np.array([image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(hu.shape[0])])
    # pylidc slice k (volume sorted by z) -> CT slice index with the same z; needed for the annotated slices
    kmap = np.full(len(zvals), -1, int)
    for k in range(bbox[2].start, bbox[2].stop):
        nearest = int(np.argmin(np.abs(ct_z - zvals[k])))
        if abs(ct_z[nearest] - zvals[k]) > Z_TOLERANCE_MM:
            raise InputError(f"{scan.patient_id}: CT series {scan.series_instance_uid} has no slice at z = "
                             f"{zvals[k]:.2f} mm, where pylidc has annotations (incomplete series)")
        kmap[k] = nearest
    # union bbox centre in CT (z, y, x) index space
    ks = kmap[[bbox[2].start, bbox[2].stop - 1]]
    centre = np.array([ks.mean(), (bbox[0].start + bbox[0].stop - 1) / 2, (bbox[1].start + bbox[1].stop - 1) / 2])
    cx, cy, cz = crop_xyz
    size = np.array([1 if two_d else cz, cy, cx])
    if two_d:
        union = masks.any(0)
        zs = np.nonzero(union.any((0, 1)))[0]
        centre[0] = kmap[bbox[2].start + int(zs[len(zs) // 2])]
    start = np.rint(centre - (size - 1) / 2).astype(int)
    ct = np.full(tuple(size), PAD_HU, np.int16)
    out_masks = np.zeros((masks.shape[0],) + tuple(size), np.uint8)
    # paste CT
    src_lo, src_hi = np.maximum(start, 0), np.minimum(start + size, hu.shape)
    if np.all(src_hi > src_lo):
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(src_lo, src_hi, start))
        ct[dst] = hu[tuple(slice(a, b) for a, b in zip(src_lo, src_hi))]
    # paste masks voxel by voxel index mapping (pylidc (row, col, k) -> CT (kmap[k], row, col))
    kk, rr, cc = np.nonzero(np.moveaxis(masks, 3, 1).any(0))  # (k, row, col) of union voxels
    for j in range(masks.shape[0]):
        sel = np.moveaxis(masks[j], 2, 0)[kk, rr, cc]
        z = kmap[bbox[2].start + kk[sel]] - start[0]
        y = bbox[0].start + rr[sel] - start[1]
        x = bbox[1].start + cc[sel] - start[2]
        ok = (z >= 0) & (z < size[0]) & (y >= 0) & (y < size[1]) & (x >= 0) & (x < size[2])
        out_masks[j][z[ok], y[ok], x[ok]] = 1
    return ct, out_masks, start


def convert_lidc(lidc_dir, dataset_id: int, name: str = "LIDCRaters", crop_xyz=(64, 64, 32), min_raters: int = 2,
                 diameter=(3.0, 30.0), two_d: bool = False, overwrite: bool = False, skip_invalid: bool = False,
                 progress: bool = True) -> Path:
    """Convert the LIDC-IDRI scans found under ``lidc_dir`` (module docstring); returns the dataset folder."""
    from tqdm import tqdm

    from nnunet_ext.conversion.dicom import read_ct, scan_dicom
    from nnunet_ext.conversion.pylidc_compat import import_pylidc
    from nnunet_ext.conversion.raters import rater_dataset_json
    from nnunet_ext.io.imageio import Geometry, write_image
    from nnunet_ext.io.paths import env_dir, staged_dataset

    pl = import_pylidc()
    root = Path(lidc_dir)
    patients = scan_dicom(root, progress=progress)
    folders = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    wanted = sorted(set(patients) | {f for f in folders if f.startswith("LIDC-IDRI-")})
    scans = [s for s in pl.query(pl.Scan).filter(pl.Scan.patient_id.in_(wanted)).all()] if wanted else []
    if not scans:
        raise InputError(f"{root}: no LIDC-IDRI patient of the pylidc database found (folders / PatientIDs "
                         "LIDC-IDRI-xxxx)")
    n_raters, log = {}, {}
    with staged_dataset(env_dir("nnUNet_raw"), dataset_id, name, overwrite) as (tmp, final):
        for d in ("imagesTr", "labelsTr", "labelsTr_raters"):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        for scan in tqdm(scans, desc="LIDC scans", disable=not progress):
            entry = log.setdefault(scan.patient_id, {})[scan.series_instance_uid] = {}
            series = (patients.get(scan.patient_id).ct.get(scan.series_instance_uid)
                      if scan.patient_id in patients else None)
            if series is None:
                msg = (f"{root / scan.patient_id}: no DICOM files of series {scan.series_instance_uid} "
                       f"(scan {scan.id} of the pylidc database)")
                if not skip_invalid:
                    raise InputError(msg)
                entry["skipped"] = msg
                continue
            kept, entry["nodules"] = nodules_of_scan(scan, min_raters, diameter)
            if not kept:
                continue
            try:
                hu, image = read_ct(series)
                crops = []
                for i, anns in kept:
                    masks, bbox = rater_masks(anns)
                    crops.append((i, crop_case(hu, image, scan, masks, bbox, crop_xyz, two_d)))
            except InputError as e:  # unreadable / irregular series, slices missing under a nodule
                if not skip_invalid:
                    raise
                entry["skipped"] = str(e)
                continue
            geometry = Geometry.of(image)
            for i, (ct, rmasks, start) in crops:
                case = f"{scan.patient_id}_n{i:02d}"
                geom = geometry.cropped(start)
                write_image(ct, geom, tmp / "imagesTr" / f"{case}_0000.nii.gz")
                write_image(encode_raters(rmasks), geom, tmp / "labelsTr" / f"{case}.nii.gz")
                for j, m in enumerate(rmasks):
                    write_image(m, geom, tmp / "labelsTr_raters" / f"{case}_rater{j}.nii.gz")
                n_raters[case] = int(rmasks.shape[0])
        if not n_raters:
            raise InputError(f"{root}: no nodule passed the filters (>= {min_raters} raters, "
                             f"{diameter[0]}-{diameter[1]} mm)")
        ds = rater_dataset_json({"0": "CT"}, n_raters, len(n_raters), name,
                                "LIDC-IDRI nodule crops with every radiologist's mask (nnunet_ext rater-set labels)")
        write_json(tmp / "dataset.json", ds, indent=2)
        write_json(tmp / "conversion_log.json", log, indent=2)
    from nnunet_ext.conversion.outcome import report

    report(final, len(n_raters), skipped_cases(log))
    return final


def skipped_cases(log: dict) -> dict[str, str]:
    """``{case or scan: reason}`` of everything the log says was left out: nodules outside the filters
    (``LIDC-IDRI-xxxx_nNN``) and whole scans (``LIDC-IDRI-xxxx series UID``)."""
    out = {}
    for pid, scans in log.items():
        for uid, entry in scans.items():
            if "skipped" in entry:
                out[f"{pid} series {uid}"] = entry["skipped"]
                continue
            for nodule in entry.get("nodules", []):
                if "skipped" in nodule:
                    out[f"{pid}_n{nodule['nodule']:02d}"] = nodule["skipped"]
    return out
