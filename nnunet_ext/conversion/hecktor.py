"""HECKTOR 2022 (head-and-neck PET/CT) -> nnU-Net v2 raw dataset, pre-processed as in HN-UISeg (Chu 2026 3.2, D.1).

Input: the release folder, any layout (symbolic links to folders followed); files are found by name (``.nii.gz``
or ``.nii``)::

    CENTRE-ID__CT.nii.gz   CENTRE-ID__PT.nii.gz   CENTRE-ID.nii.gz | CENTRE_ID.nii.gz (label, releases differ)

A label matches a case when the names agree with ``-`` and ``_`` treated alike; cases without one go to
``imagesTs``. Per case, on the CT's own grid (the CT spacing is kept, as in the paper):

* channel 0 = CT clipped to [-1024, 3071] HU (int16 when the values are integers, else float32);
* channel 1 = PET (SUVbw, as the HECKTOR 2022 release provides it) resampled onto the CT grid with SimpleITK
  linear interpolation (0 outside the PET field of view), clipped to [0, 50] SUV; with ``ct_only`` the PET
  channel is zero-filled (the paper's CT-only input: one model, the same two channels) and no PET is needed;
* label (1 = GTVp, 2 = GTVn) on the CT grid; a label on another grid is refused unless ``resample_labels``
  (``--resample-labels``: nearest neighbour, refused even then when GTVp or GTVn loses every voxel, voxel counts
  before -> after printed and logged; :mod:`nnunet_ext.conversion.label_grid`); other values are refused.

PET and CT that do not overlap in physical space (no CT voxel centre inside the PET field of view) are
refused, as is a case with no PET (unless ``ct_only``); ``skip_invalid`` logs and skips such cases. The run ends
with ``N converted, M skipped`` and one line per skipped case (:mod:`nnunet_ext.conversion.outcome`).

Normalisation (dataset.json ``channel_names``, which is how nnU-Net chooses it): nnU-Net's ``CT`` scheme
re-clips every CT to the 0.5 / 99.5 percentiles of the dataset's *foreground* intensities -- a narrow,
data-driven window that replaces the paper's wide [-1024, 3071] window. We therefore name both channels
``zscore`` (default; per-image z-score, an affine map that keeps the window and the clipping) or, with
``normalization="none"``, ``noNorm`` (the network sees HU and SUV as they are); ``"ct"`` gives nnU-Net's
standard ``CT`` + ``zscore`` for comparison. The modality names go to ``dataset.json["nnext_hecktor"]``. The
dataset is built in a hidden folder and swapped in (:func:`nnunet_ext.io.paths.staged_dataset`).
"""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import write_json

CT_WINDOW = (-1024.0, 3071.0)
SUV_WINDOW = (0.0, 50.0)
LABELS = {"background": 0, "GTVp": 1, "GTVn": 2}
NORMALIZATIONS = {"zscore": ("zscore", "zscore"), "none": ("noNorm", "noNorm"), "ct": ("CT", "zscore")}
_IMAGE = re.compile(r"(?P<case>.+)__(?P<mod>CT|PT)\.nii(\.gz)?$", re.IGNORECASE)
DATASET_INFO = {
    "description": "HECKTOR 2022: FDG-PET/CT of oropharyngeal cancer, GTVp (1) and GTVn (2); CT clipped to "
                   "[-1024, 3071] HU, PET (SUV) resampled onto the CT grid and clipped to [0, 50]; converted by "
                   "nnext convert hecktor",
    "reference": "Andrearczyk V et al., Overview of the HECKTOR challenge at MICCAI 2022, LNCS 13626 (2023), "
                 "doi:10.1007/978-3-031-27420-6_1",
}


def _key(name: str) -> str:
    return name.replace("_", "-").casefold()


def _strip(name: str) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", name)


def find_cases(root: Path) -> dict:
    """``{case: {"CT": path, "PT": path | None, "label": path | None}}`` from file names under ``root``."""
    from nnunet_ext.conversion.dicom import list_files  # symbolic links to folders followed

    images, others = {}, {}
    for p in list_files(root):
        if not re.search(r"\.nii(\.gz)?$", p.name):
            continue
        m = _IMAGE.fullmatch(p.name)
        if m:
            entry = images.setdefault(m["case"], {"CT": None, "PT": None, "label": None})
            mod = m["mod"].upper()
            if entry[mod] is not None:
                raise InputError(f"{p}: second {mod} file for case {m['case']} (first: {entry[mod]})")
            entry[mod] = p
        else:
            others.setdefault(_key(_strip(p.name)), []).append(p)
    cases = {}
    for case, entry in images.items():
        if entry["CT"] is None:
            raise InputError(f"{entry['PT']}: PET without a CT ({case}__CT.nii.gz not found)")
        labels = others.get(_key(case), [])
        if len(labels) > 1:
            raise InputError(f"case {case}: several label files match: {', '.join(map(str, labels))}")
        entry["label"] = labels[0] if labels else None
        cases[case] = entry
    return cases


def unmatched_files(root: Path, cases: dict) -> dict[str, str]:
    """``{name: reason}`` of the NIfTI files under ``root`` that belong to no case (a label without its CT):
    listed as skipped instead of being left out without a word."""
    from nnunet_ext.conversion.dicom import list_files

    used = {p for entry in cases.values() for p in entry.values() if p is not None}
    return {_strip(p.name): f"{p}: no image CENTRE-ID__CT.nii.gz matches this file (a label without its CT?)"
            for p in list_files(root) if re.search(r"\.nii(\.gz)?$", p.name) and p not in used}


def _overlap_fraction(pet, ct) -> float:
    """Fraction of CT voxel centres inside the PET field of view (nearest-neighbour resampling of ones)."""
    import numpy as np
    import SimpleITK as sitk

    ones = sitk.Image(pet.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(pet)
    cover = sitk.Resample(ones, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return float(np.mean(sitk.GetArrayViewFromImage(cover)))


def convert_case(case: str, files: dict, out: Path, ct_only: bool = False, resample_labels: bool = False) -> dict:
    """Write one case into ``out`` (imagesTr/labelsTr or imagesTs); returns its log entry."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_ext.io.imageio import Geometry, read_sitk, write_image

    ct = read_sitk(files["CT"])
    if ct.GetDimension() != 3 or ct.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{files['CT']}: expected a 3D scalar CT")
    geometry = Geometry.of(ct)
    hu = np.clip(sitk.GetArrayFromImage(ct).astype(np.float32), *CT_WINDOW)
    hu = hu.astype(np.int16) if np.array_equal(hu, np.round(hu)) else hu
    entry = {"ct": str(files["CT"]), "shape_zyx": list(hu.shape), "spacing": list(geometry.spacing)}
    if ct_only:
        suv = np.zeros(hu.shape, np.float32)
        entry["pet"] = "zero-filled (--ct-only)"
    else:
        if files["PT"] is None:
            raise InputError(f"case {case}: no PET ({case}__PT.nii.gz); use --ct-only for CT-only data")
        pet = sitk.Cast(read_sitk(files["PT"]), sitk.sitkFloat32)
        if pet.GetDimension() != 3:
            raise InputError(f"{files['PT']}: expected a 3D PET")
        cover = _overlap_fraction(pet, ct)
        if cover == 0:
            raise InputError(f"{files['PT']}: PET and CT of case {case} do not overlap in physical space "
                             f"(CT origin {tuple(round(v, 1) for v in ct.GetOrigin())}, PET origin "
                             f"{tuple(round(v, 1) for v in pet.GetOrigin())})")
        res = sitk.Resample(pet, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        suv = np.clip(sitk.GetArrayFromImage(res), *SUV_WINDOW).astype(np.float32)
        entry.update(pet=str(files["PT"]), pet_coverage=round(cover, 4))
    split = "Tr" if files["label"] is not None else "Ts"
    if files["label"] is not None:
        from nnunet_ext.conversion.label_grid import label_on_image_grid

        lab = read_sitk(files["label"])
        bad = sorted(set(np.unique(sitk.GetArrayViewFromImage(lab)).tolist()) - {0, 1, 2})
        if bad:
            raise InputError(f"{files['label']}: label values {bad} not in 0 (background), 1 (GTVp), 2 (GTVn)")
        label, note, counts = label_on_image_grid(lab, ct, files["label"], files["CT"], resample_labels,
                                                  {v: k for k, v in LABELS.items()})
        if note:
            entry.update(label_note=note, label_voxels_before_after=counts)
        write_image(label.astype(np.uint8), geometry, out / "labelsTr" / f"{case}.nii.gz")
        entry.update(label=str(files["label"]), voxels={"GTVp": int((label == 1).sum()),
                                                        "GTVn": int((label == 2).sum())})
    write_image(hu, geometry, out / f"images{split}" / f"{case}_0000.nii.gz")
    write_image(suv, geometry, out / f"images{split}" / f"{case}_0001.nii.gz")
    entry["split"] = "train" if split == "Tr" else "test"
    return entry


def convert_hecktor(input_dir, dataset_id: int, name: str = "HECKTOR2022", ct_only: bool = False,
                    normalization: str = "zscore", overwrite: bool = False, skip_invalid: bool = False,
                    progress: bool = True, resample_labels: bool = False) -> Path:
    """Convert a HECKTOR 2022 folder into ``$nnUNet_raw/DatasetXXX_NAME``; returns the dataset folder."""
    from tqdm import tqdm

    from nnunet_ext.io.paths import env_dir, staged_dataset

    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    if normalization not in NORMALIZATIONS:
        raise InputError(f"--normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    cases = find_cases(root)
    if not cases:
        raise InputError(f"{root}: no HECKTOR images (CENTRE-ID__CT.nii.gz) found")
    log = {"source": str(root.resolve()), "ct_only": ct_only, "cases": {}}
    for stray, reason in unmatched_files(root, cases).items():
        log["cases"][stray] = {"status": "skipped", "reason": reason}
    with staged_dataset(env_dir("nnUNet_raw"), int(dataset_id), name, overwrite=overwrite) as (tmp, final):
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (tmp / sub).mkdir(parents=True)
        for case in tqdm(sorted(cases), desc="HECKTOR cases", unit="case", disable=not progress):
            try:
                log["cases"][case] = entry = convert_case(case, cases[case], tmp, ct_only, resample_labels)
            except InputError as e:
                if not skip_invalid:
                    raise
                log["cases"][case] = {"status": "skipped", "reason": str(e)}
                continue
            if "label_note" in entry:
                print(f"case {case}: {entry['label_note']}")
        n_train = sum(1 for e in log["cases"].values() if e.get("split") == "train")
        if n_train == 0:
            raise InputError(f"{root}: no case with a label could be converted")
        if not any((tmp / "imagesTs").iterdir()):
            (tmp / "imagesTs").rmdir()
        ct_name, pet_name = NORMALIZATIONS[normalization]
        dataset_json = {
            "channel_names": {"0": ct_name, "1": pet_name}, "labels": dict(LABELS), "numTraining": n_train,
            "file_ending": ".nii.gz", "name": name, **DATASET_INFO,
            "nnext_hecktor": {"channels": ["CT", "PET (SUV)"], "ct_window_hu": list(CT_WINDOW),
                              "suv_window": list(SUV_WINDOW), "normalization": normalization, "ct_only": ct_only},
        }
        write_json(tmp / "dataset.json", dataset_json, indent=2)
        write_json(tmp / "conversion_log.json", log, indent=2)
    from nnunet_ext.conversion.outcome import report

    skipped = {c: e["reason"] for c, e in log["cases"].items() if e.get("status") == "skipped"}
    report(final, len(log["cases"]) - len(skipped), skipped,
           f"{n_train} training, {len(log['cases']) - len(skipped) - n_train} test cases")
    return final


def add_hecktor(p, common) -> None:
    common(p, "HECKTOR2022")
    p.add_argument("--ct-only", action="store_true",
                   help="zero-fill the PET channel (CT-only model input; PET files are not read)")
    p.add_argument("--normalization", choices=tuple(NORMALIZATIONS), default="zscore",
                   help="nnU-Net normalisation written to dataset.json: zscore (default, per image; keeps the "
                        "clipping windows), none (noNorm: HU / SUV as they are), ct (nnU-Net's CT scheme, which "
                        "re-clips CT at foreground percentiles)")
    p.add_argument("--resample-labels", action="store_true",
                   help="resample a label on another grid than its CT onto the CT grid (nearest neighbour; refused "
                        "when a class loses every voxel); default: refuse such a label")


def run_hecktor(args, check_common) -> int:
    check_common(args)
    convert_hecktor(args.input, args.dataset_id, name=args.name, ct_only=args.ct_only,
                    normalization=args.normalization, overwrite=args.overwrite, skip_invalid=args.skip_invalid,
                    progress=not args.no_progress, resample_labels=args.resample_labels)
    return 0
