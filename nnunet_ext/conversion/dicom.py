"""DICOM building blocks for the converters: find CT series and RTSTRUCTs in a folder tree, read a CT series in
Hounsfield units with its geometry, and rasterise one RTSTRUCT ROI onto the CT's voxel grid.

Rasterisation is done here (pydicom + the CT's physical -> index transform), not with rt-utils, because
rt-utils 1.2.7 matches contours to slices only through ``ContourImageSequence``, takes ``PixelSpacing`` in
(column, row) order, allocates slice masks as (Columns, Rows) and rounds vertices to whole pixels; each is
harmless on square, isotropic, well-referenced data and silently wrong otherwise. Convention used here:

* every ``CLOSED_PLANAR`` contour is mapped to continuous voxel indices of the SimpleITK image (LPS mm ->
  ``D^-1 (p - origin) / spacing``); its slice is the nearest integer index, which all vertices must lie within
  0.25 slice of (else the RTSTRUCT does not fit the CT's grid: error);
* a voxel belongs to the contour when its centre lies inside the polygon or within 0.01 voxel of its edge
  (contours drawn through boundary voxel centres, as most planning systems and rt-utils write them, so
  keep those voxels); vertices are never rounded;
* several contours on one slice are united (nested contours are not treated as holes: GTVs do not use holes,
  and union is robust to the duplicated / overlapping contours found in clinical exports).

Arrays are in SimpleITK's numpy order ``(z, y, x)``; pydicom is imported inside the functions.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_ext.errors import InputError

CT_MODALITY, RTSTRUCT_MODALITY = "CT", "RTSTRUCT"
SLICE_TOLERANCE = 0.25   # contour vertices may lie this far (in slices) from a slice centre
EDGE_TOLERANCE = 1e-2    # voxel centres this close (in voxels) to a contour edge are inside
_SCAN_TAGS = ["PatientID", "Modality", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID",
              "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"]
PLANE_TOLERANCE = 1e-3   # PixelSpacing (mm) and ImageOrientationPatient (cosines) must agree this closely


@dataclass
class Series:
    """One image series: its files and, per file, the slice position along the slice normal (mm)."""

    uid: str
    modality: str
    frame_of_reference: str | None
    files: list[Path] = field(default_factory=list)
    positions: list[float | None] = field(default_factory=list)
    planes: list[dict] = field(default_factory=list)   # per file: PixelSpacing, ImageOrientationPatient, Rows, Columns


@dataclass
class Patient:
    """What :func:`scan_dicom` found for one PatientID: CT series by UID, RTSTRUCT files, ignored modalities."""

    patient_id: str
    ct: dict[str, Series] = field(default_factory=dict)
    rtstructs: list[Path] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)


def _slice_position(ds) -> float | None:
    try:
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        return float(np.dot(np.cross(iop[:3], iop[3:]), np.asarray(ds.ImagePositionPatient, dtype=float)))
    except (AttributeError, ValueError, TypeError):
        return None


def _plane(ds) -> dict:
    """In-plane geometry of one slice: ``{"PixelSpacing", "ImageOrientationPatient", "Rows", "Columns"}``
    (None where a tag is missing or unreadable)."""
    out = {}
    for tag in ("PixelSpacing", "ImageOrientationPatient"):
        try:
            out[tag] = tuple(float(v) for v in ds.get(tag)) if ds.get(tag) is not None else None
        except (TypeError, ValueError):
            out[tag] = None
    for tag in ("Rows", "Columns"):
        value = ds.get(tag)
        out[tag] = int(value) if value is not None else None
    return out


def check_slice_planes(series: Series) -> None:
    """InputError naming the first slice whose PixelSpacing, ImageOrientationPatient, Rows or Columns differ
    from those of most slices of the series: SimpleITK would take the first slice's and place every other slice
    on that grid (a slice with twice the PixelSpacing was accepted)."""
    from collections import Counter as _Counter

    if not series.planes:
        return
    for tag in ("PixelSpacing", "ImageOrientationPatient", "Rows", "Columns"):
        values = [p.get(tag) for p in series.planes]
        common = _Counter(values).most_common(1)[0][0]
        for path, v in zip(series.files, values):
            same = (v == common if v is None or common is None or isinstance(v, int)
                    else len(v) == len(common) and np.allclose(v, common, atol=PLANE_TOLERANCE, rtol=0))
            if not same:
                n = sum(1 for w in values if w == common)
                raise InputError(f"{path}: {tag} {_fmt(v)} differs from the other slices' {_fmt(common)} "
                                 f"({n} of {len(values)} slices) of CT series {series.uid}; inconsistent series")


def _fmt(v) -> str:
    if v is None:
        return "missing"
    if isinstance(v, tuple):
        return "(" + ", ".join(f"{x:g}" for x in v) + ")"
    return str(v)


def list_files(root: str | os.PathLike) -> list[Path]:
    """All regular, non-hidden files under ``root``, sorted; symbolic links to folders are followed (a link back
    up the tree is visited once), so a collection assembled from links loses no patient."""
    out, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(folder) / f for f in sorted(files)
                   if not f.startswith(".") and os.path.isfile(os.path.join(folder, f)))
    return out


def scan_dicom(root: str | os.PathLike, progress: bool = False) -> dict[str, Patient]:
    """Read the headers (``stop_before_pixels``) of every file under ``root``; non-DICOM files are ignored.

    Groups CT series (Modality CT) by PatientID and SeriesInstanceUID and collects RTSTRUCT files; other
    modalities (SEG, RTDOSE, PT, ...) are counted in ``Patient.ignored``. A file without PatientID is filed
    under its first folder below ``root``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from tqdm import tqdm

    root = Path(root)
    patients: dict[str, Patient] = {}
    for path in tqdm(list_files(root), desc="reading DICOM headers", unit="file", disable=not progress):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_SCAN_TAGS)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
            continue
        modality = str(ds.get("Modality", "") or "").upper()
        if not modality:
            continue
        pid = str(ds.get("PatientID", "") or "").strip() or path.relative_to(root).parts[0]
        patient = patients.setdefault(pid, Patient(pid))
        if modality == RTSTRUCT_MODALITY:
            patient.rtstructs.append(path)
        elif modality == CT_MODALITY and ds.get("SeriesInstanceUID"):
            uid = str(ds.SeriesInstanceUID)
            series = patient.ct.setdefault(uid, Series(uid, modality, ds.get("FrameOfReferenceUID")))
            series.files.append(path)
            series.positions.append(_slice_position(ds))
            series.planes.append(_plane(ds))
        else:
            patient.ignored[modality] += 1
    return patients


def _sorted_files(series: Series) -> list[str]:
    """File names of ``series`` in slice order: GDCM's own sorting (``GetGDCMSeriesFileNames``) when the
    series is alone in its folder, else sorted by position along the slice normal."""
    import SimpleITK as sitk

    folders = {p.parent for p in series.files}
    wanted = {os.path.abspath(p) for p in series.files}
    if len(folders) == 1:
        folder = folders.pop()
        others = [f for f in os.listdir(folder) if not f.startswith(".") and (folder / f).is_file()]
        if len(others) == len(wanted):
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series.uid)
            if {os.path.abspath(n) for n in names} == wanted:
                return list(names)
    if any(p is None for p in series.positions):
        raise InputError(f"CT series {series.uid} ({series.files[0].parent}): slices without "
                         "ImagePositionPatient / ImageOrientationPatient")
    order = np.argsort(series.positions, kind="stable")
    return [str(series.files[i]) for i in order]


def _check_slice_spacing(series: Series, names: Sequence[str]) -> None:
    """InputError when slices are duplicated, missing or unevenly spaced (SimpleITK would average them)."""
    if any(p is None for p in series.positions):
        raise InputError(f"CT series {series.uid} ({series.files[0].parent}): slices without "
                         "ImagePositionPatient / ImageOrientationPatient")
    position = {os.path.abspath(p): z for p, z in zip(series.files, series.positions)}
    z = np.asarray([position[os.path.abspath(n)] for n in names], dtype=float)
    if len(z) < 2:
        raise InputError(f"CT series {series.uid} ({series.files[0].parent}): {len(z)} slice(s), need >= 2")
    steps = np.abs(np.diff(z))
    median = float(np.median(steps))
    if median < 1e-3 or np.any(np.abs(steps - median) > max(0.01, 0.01 * median)):
        raise InputError(f"CT series {series.uid} ({series.files[0].parent}): geometry mismatch, slice spacing "
                         f"not uniform (steps {np.round(np.unique(np.round(steps, 3)), 3).tolist()} mm; "
                         "duplicate or missing slices)")


def read_ct(series: Series):
    """``(hu (z, y, x) int16 or float32, sitk.Image)`` of a CT series read with SimpleITK's
    ``ImageSeriesReader`` (rescale slope / intercept applied by GDCM, origin / spacing / direction from the
    sorted slices); InputError for unreadable or unevenly spaced series, and for slices whose PixelSpacing,
    orientation or size differ from the others (:func:`check_slice_planes`, naming the slice)."""
    import SimpleITK as sitk

    check_slice_planes(series)
    names = _sorted_files(series)
    _check_slice_spacing(series, names)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(f"CT series {series.uid} ({series.files[0].parent}): cannot be read "
                         f"({str(e).strip().splitlines()[-1]})") from None
    hu = sitk.GetArrayFromImage(image)
    if np.all(np.isfinite(hu)) and np.array_equal(hu, np.round(hu)) and hu.min() >= -32768 and hu.max() <= 32767:
        hu = hu.astype(np.int16)
    else:
        hu = hu.astype(np.float32)
    return hu, image


def read_rtstruct(path: str | os.PathLike):
    """The full pydicom dataset of an RTSTRUCT file (InputError if unreadable)."""
    import pydicom

    try:
        return pydicom.dcmread(path)
    except Exception as e:  # noqa: BLE001 - any parse failure is bad input
        raise InputError(f"{path}: cannot be read as DICOM ({e})") from None


def roi_names(ds) -> dict[int, str]:
    """``{ROINumber: ROIName}`` of an RTSTRUCT dataset."""
    return {int(item.ROINumber): str(item.get("ROIName", "") or "")
            for item in ds.get("StructureSetROISequence", []) if "ROINumber" in item}


def find_roi(ds, wanted: Sequence[str], source: str | os.PathLike) -> tuple[int, str]:
    """``(ROINumber, ROIName)`` of the first name in ``wanted`` present in ``ds`` (case-insensitive exact
    match, surrounding blanks ignored); InputError naming ``source`` and the ROI names found otherwise."""
    names = roi_names(ds)
    for w in wanted:
        for number, name in sorted(names.items()):
            if name.strip().casefold() == w.strip().casefold():
                return number, name
    found = ", ".join(repr(n) for n in names.values()) or "none"
    raise InputError(f"{source}: no ROI named {' or '.join(map(repr, wanted))} (case-insensitive); "
                     f"ROIs found: {found}")


def referenced_series(ds) -> list[str]:
    """CT SeriesInstanceUIDs an RTSTRUCT references (ReferencedFrameOfReferenceSequence ->
    RTReferencedStudySequence -> RTReferencedSeriesSequence)."""
    out = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                if series.get("SeriesInstanceUID"):
                    out.append(str(series.SeriesInstanceUID))
    return out


def match_ct(ds, ct: dict[str, Series], source: str | os.PathLike) -> tuple[Series, str]:
    """``(CT series, how)`` an RTSTRUCT belongs to: the series it references, else the patient's only CT
    series (``how`` = ``"reference"`` / ``"only CT series"``); InputError when neither applies."""
    refs = referenced_series(ds)
    for uid in refs:
        if uid in ct:
            return ct[uid], "reference"
    if len(ct) == 1:
        return next(iter(ct.values())), "only CT series"
    wanted = ", ".join(refs) or "none"
    raise InputError(f"{source}: references CT series {wanted}, none of the patient's {len(ct)} CT series "
                     f"({', '.join(ct) or 'none'})")


def physical_to_index(points_lps: np.ndarray, image) -> np.ndarray:
    """Continuous ``(x, y, z)`` voxel indices of LPS points ``(N, 3)`` in mm (as SimpleITK's
    ``TransformPhysicalPointToContinuousIndex``, vectorised)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = direction @ np.diag(np.asarray(image.GetSpacing(), dtype=float))
    return np.linalg.solve(matrix, (np.asarray(points_lps, float) - np.asarray(image.GetOrigin())).T).T


def fill_polygon(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], eps: float = EDGE_TOLERANCE) -> np.ndarray:
    """Boolean ``(rows, cols)`` mask of the pixels whose centre (integer ``(x, y)``) lies inside the closed
    polygon with vertices ``(x, y)`` (continuous pixel indices) or within ``eps`` of its edges; even-odd
    scanline fill plus an explicit pass over the edges for pixel centres on the boundary."""
    ny, nx = shape
    out = np.zeros(shape, dtype=bool)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) == 0:
        return out
    x0, y0, x1, y1 = x, y, np.roll(x, -1), np.roll(y, -1)
    for r in range(max(0, math.ceil(y.min() - eps)), min(ny - 1, math.floor(y.max() + eps)) + 1):
        cross = ((y0 <= r) & (y1 > r)) | ((y1 <= r) & (y0 > r))
        xs = np.sort(x0[cross] + (r - y0[cross]) * (x1[cross] - x0[cross]) / (y1[cross] - y0[cross]))
        for a, b in zip(xs[0::2], xs[1::2]):
            lo, hi = max(0, math.ceil(a - eps)), min(nx - 1, math.floor(b + eps))
            if lo <= hi:
                out[r, lo:hi + 1] = True
    for ax, ay, bx, by in zip(x0, y0, x1, y1):   # pixel centres on the edges (horizontal ones included)
        along_y = abs(by - ay) >= abs(bx - ax)
        (p0, q0, p1, q1) = (ay, ax, by, bx) if along_y else (ax, ay, bx, by)
        steps = np.arange(math.ceil(min(p0, p1) - eps), math.floor(max(p0, p1) + eps) + 1)
        t = np.clip((steps - p0) / (p1 - p0), 0.0, 1.0) if p1 != p0 else np.zeros(len(steps))
        q = q0 + t * (q1 - q0)
        on = np.abs(q - np.round(q)) <= eps
        px, py = (np.round(q[on]), steps[on]) if along_y else (steps[on], np.round(q[on]))
        keep = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        out[py[keep].astype(int), px[keep].astype(int)] = True
    return out


def rasterise_roi(ds, roi_number: int, image, source: str | os.PathLike) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask of ROI ``roi_number`` of RTSTRUCT ``ds`` on the grid of ``image`` (see the
    module docstring for the convention). InputError when a contour is off the CT's slice planes or outside
    its slice range, or when the ROI's frame of reference differs from the CT's."""
    nx, ny, nz = image.GetSize()
    mask = np.zeros((nz, ny, nx), dtype=bool)
    for contour_set in ds.get("ROIContourSequence", []):
        if int(contour_set.get("ReferencedROINumber", -1)) != roi_number:
            continue
        for contour in contour_set.get("ContourSequence", []):
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            data = contour.get("ContourData")
            if kind != "CLOSED_PLANAR" or not data:
                continue
            idx = physical_to_index(np.asarray(data, dtype=float).reshape(-1, 3), image)
            k = int(round(float(np.median(idx[:, 2]))))
            z_mm = float(np.median(np.asarray(data, dtype=float).reshape(-1, 3)[:, 2]))
            if np.any(np.abs(idx[:, 2] - k) > SLICE_TOLERANCE):
                raise InputError(f"{source}: geometry mismatch, a contour of ROI {roi_number} (z = {z_mm:.2f} mm) "
                                 "does not lie on a slice plane of the CT")
            if not 0 <= k < nz:
                raise InputError(f"{source}: geometry mismatch, a contour of ROI {roi_number} (z = {z_mm:.2f} mm) "
                                 f"lies outside the CT's {nz} slices")
            mask[k] |= fill_polygon(idx[:, 0], idx[:, 1], (ny, nx))
    return mask


def roi_frame_of_reference(ds, roi_number: int) -> str | None:
    """ReferencedFrameOfReferenceUID of ROI ``roi_number`` in StructureSetROISequence (None if absent)."""
    for item in ds.get("StructureSetROISequence", []):
        if int(item.get("ROINumber", -1)) == roi_number:
            value = item.get("ReferencedFrameOfReferenceUID")
            return str(value) if value else None
    return None


__all__ = ["Patient", "Series", "scan_dicom", "read_ct", "read_rtstruct", "roi_names", "find_roi",
           "referenced_series", "match_ct", "physical_to_index", "fill_polygon", "rasterise_roi",
           "roi_frame_of_reference"]
