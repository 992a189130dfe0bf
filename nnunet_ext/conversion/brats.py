"""BraTS 2020 / 2021 / 2023 (adult glioma) -> region-based nnU-Net v2 raw dataset, and predictions back.

Layouts (one folder per case, the folder name is the case ID; ``.nii`` or ``.nii.gz``)::

    2020  BraTS20_Training_001/BraTS20_Training_001_{t1,t1ce,t2,flair,seg}.nii    labels 1 NCR/NET, 2 ED, 4 ET
    2021  BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz           labels 1 NCR, 2 ED, 4 ET
    2023  BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz    labels 1 NCR, 2 SNFH, 3 ET

The year is detected from the names when not given. BraTS 2020 ships case 355's label misnamed
(``BraTS20_Training_355/W39_1998.09.19_Segm.nii``): it is used as that case's segmentation and the
conversion says so. Cases without a label file (validation releases) go to ``imagesTs``; a folder of such cases
only (the BraTS 2023 validation / test layout, ``BraTS-GLI-00001-000-{t1c,t1n,t2f,t2w}.nii.gz``, no ``seg``)
becomes a dataset with ``imagesTs`` only and ``numTraining`` 0.

Output channels ``0000`` T1, ``0001`` T1ce, ``0002`` T2, ``0003`` FLAIR (nnU-Net's Dataset137_BraTS21 order);
regions whole tumour (WT), tumour core (TC), enhancing tumour (ET). Two label conventions (``labels=``):

* ``nnunet`` (default; nnU-Net's BraTS conversion and ``nnext synth brain``): 1 = oedema (ED / SNFH),
  2 = necrotic / non-enhancing core, 3 = ET; WT = [1, 2, 3], TC = [2, 3], ET = [3],
  ``regions_class_order = [1, 2, 3]``.
* ``brats``: the year's own meaning kept, only made consecutive (2020 / 2021: 4 -> 3): 1 = NCR, 2 = ED, 3 = ET;
  WT = [1, 2, 3], TC = [1, 3], ET = [3], ``regions_class_order = [2, 1, 3]`` (WT voxels become ED, then TC
  voxels NCR, then ET voxels ET).

``dataset.json`` records ``"nnext_brats": {"year", "labels", "to_dataset"}`` so that :func:`brats_back` maps a
prediction folder back to that year's label values exactly (uint8, geometry kept).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ext.errors import InputError

CHANNELS = ("T1", "T1ce", "T2", "FLAIR")
KNOWN_MISNAMED = {"BraTS20_Training_355": "W39_1998.09.19_Segm.nii"}
CONVENTIONS = ("nnunet", "brats")


@dataclass(frozen=True)
class Layout:
    year: int
    sep: str
    modalities: tuple[str, str, str, str]  # file suffixes of T1, T1ce, T2, FLAIR
    seg: str
    label_values: tuple[int, ...]          # the release's label values (background included)
    folder: str                             # regex of case folder names


LAYOUTS = {
    2020: Layout(2020, "_", ("t1", "t1ce", "t2", "flair"), "seg", (0, 1, 2, 4), r"BraTS20_[A-Za-z]+_\d+"),
    2021: Layout(2021, "_", ("t1", "t1ce", "t2", "flair"), "seg", (0, 1, 2, 4), r"BraTS2021_\d+"),
    2023: Layout(2023, "-", ("t1n", "t1c", "t2w", "t2f"), "seg", (0, 1, 2, 3), r"BraTS-[A-Za-z]+-\d+-\d+"),
}


def label_map(year: int, labels: str = "nnunet") -> dict[int, int]:
    """Release label value -> dataset label value."""
    if labels not in CONVENTIONS:
        raise InputError(f"unknown label convention {labels!r}; choose {' or '.join(CONVENTIONS)}")
    et = 4 if year in (2020, 2021) else 3
    if labels == "nnunet":
        return {0: 0, 2: 1, 1: 2, et: 3}
    return {0: 0, 1: 1, 2: 2, et: 3}


def region_labels(labels: str = "nnunet") -> tuple[dict, list[int]]:
    """``(dataset.json labels dict, regions_class_order)`` of a convention."""
    tc = [2, 3] if labels == "nnunet" else [1, 3]
    order = [1, 2, 3] if labels == "nnunet" else [2, 1, 3]
    return {"background": 0, "whole tumor": [1, 2, 3], "tumor core": tc, "enhancing tumor": [3]}, order


def _nifti(folder: Path, stem: str) -> Path | None:
    for ending in (".nii.gz", ".nii"):
        p = folder / f"{stem}{ending}"
        if p.is_file():
            return p
    return None


def find_cases(root: Path) -> dict[str, Path]:
    """``{case folder name: folder}`` for every folder below ``root`` that holds NIfTI files."""
    cases = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if any(f.endswith((".nii", ".nii.gz")) and not f.startswith(".") for f in filenames):
            name = os.path.basename(dirpath)
            if name in cases:
                raise InputError(f"case {name} found twice: {cases[name]} and {dirpath}")
            cases[name] = Path(dirpath)
    return cases


def detect_year(cases: dict[str, Path]) -> int:
    years = set()
    for name in cases:
        hits = [y for y, lay in LAYOUTS.items() if re.fullmatch(lay.folder, name)]
        if hits:
            years.update(hits)
    if len(years) == 1:
        return years.pop()
    if not years:
        example = next(iter(cases), "none")
        raise InputError(f"cannot tell the BraTS year from the case folders (e.g. {example!r}); pass --year")
    raise InputError(f"case folders of several BraTS years ({sorted(years)}) in one input; pass --year")


def case_files(case: str, folder: Path, layout: Layout) -> tuple[list[Path], Path | None, str | None]:
    """``(image files T1, T1ce, T2, FLAIR, label file or None, note)``; InputError naming a missing modality."""
    images = []
    for channel, suffix in zip(CHANNELS, layout.modalities):
        p = _nifti(folder, f"{case}{layout.sep}{suffix}")
        if p is None:
            raise InputError(f"case {case}: {channel} file {case}{layout.sep}{suffix}.nii[.gz] missing in {folder}")
        images.append(p)
    seg, note = _nifti(folder, f"{case}{layout.sep}{layout.seg}"), None
    if seg is None and case in KNOWN_MISNAMED and (folder / KNOWN_MISNAMED[case]).is_file():
        seg = folder / KNOWN_MISNAMED[case]
        note = (f"label file misnamed in the BraTS 2020 release: {KNOWN_MISNAMED[case]} used as "
                f"{case}_seg.nii")
    return images, seg, note


def _same_grid(a, b) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-4)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4))


def _convert_case(case, folder, layout, mapping, out: Path) -> dict:
    import SimpleITK as sitk

    from nnunet_ext.imageio import read_sitk

    images, seg, note = case_files(case, folder, layout)
    split = "Tr" if seg is not None else "Ts"
    loaded = [read_sitk(p) for p in images]
    for p, img in zip(images[1:], loaded[1:]):
        if not _same_grid(loaded[0], img):
            raise InputError(f"case {case}: {p.name} is not on the grid of {images[0].name}")
    entry = {"folder": str(folder), "split": "train" if seg is not None else "test"}
    if seg is not None:
        lab = read_sitk(seg)
        if not _same_grid(loaded[0], lab):
            raise InputError(f"case {case}: label {seg.name} is not on the grid of {images[0].name}")
        arr = sitk.GetArrayFromImage(lab)
        values = np.unique(arr)
        bad = sorted(set(values.tolist()) - set(layout.label_values))
        if bad:
            raise InputError(f"case {case}: label {seg.name} has values {bad}, BraTS {layout.year} uses "
                             f"{list(layout.label_values)}")
        new = np.zeros(arr.shape, np.uint8)
        for src, dst in mapping.items():
            new[arr == src] = dst
        out_lab = sitk.GetImageFromArray(new)
        out_lab.CopyInformation(lab)
        sitk.WriteImage(out_lab, str(out / "labelsTr" / f"{case}.nii.gz"), True)
        entry["label"] = seg.name
    for c, img in enumerate(loaded):
        sitk.WriteImage(img, str(out / f"images{split}" / f"{case}_{c:04d}.nii.gz"), True)
    if note:
        entry["note"] = note
    return entry


def convert_brats(input_dir, dataset_id: int, year: int | None = None, name: str | None = None,
                  labels: str = "nnunet", overwrite: bool = False, skip_invalid: bool = False,
                  progress: bool = True) -> Path:
    """Convert a BraTS release folder into ``$nnUNet_raw/DatasetXXX_NAME`` (built in a hidden folder and
    swapped in); returns the dataset folder."""
    from tqdm import tqdm

    from nnunet_ext.paths import env_dir, staged_dataset

    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    mapping = label_map(2021 if year is None else year, labels)  # validates `labels` early
    cases = find_cases(root)
    if not cases:
        raise InputError(f"{root}: no NIfTI files found")
    if year is None:
        year = detect_year(cases)
        print(f"BraTS {year} layout detected")
    elif year not in LAYOUTS:
        raise InputError(f"--year must be one of {', '.join(map(str, LAYOUTS))}, got {year}")
    layout = LAYOUTS[year]
    mapping = label_map(year, labels)
    cases = {c: f for c, f in cases.items() if re.fullmatch(layout.folder, c)} or cases
    name = name or f"BraTS{year}"
    log = {"source": str(root.resolve()), "year": year, "labels": labels, "cases": {}}
    with staged_dataset(env_dir("nnUNet_raw"), int(dataset_id), name, overwrite=overwrite) as (tmp, final):
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (tmp / sub).mkdir(parents=True)
        for case in tqdm(sorted(cases), desc=f"BraTS {year} cases", unit="case", disable=not progress):
            try:
                entry = _convert_case(case, cases[case], layout, mapping, tmp)
            except InputError as e:
                if not skip_invalid:
                    raise
                entry = {"folder": str(cases[case]), "status": "skipped", "reason": str(e)}
            if "note" in entry:
                print(f"case {case}: {entry['note']}")
            log["cases"][case] = entry
        n_train = sum(1 for e in log["cases"].values() if e.get("split") == "train")
        n_test = sum(1 for e in log["cases"].values() if e.get("split") == "test")
        if n_train + n_test == 0:
            raise InputError(f"{root}: no case could be converted (BraTS {year} layout)")
        if n_train == 0:  # images only (validation / test releases): a prediction-only dataset, numTraining 0
            print(f"no labels: {n_test} case(s) to imagesTs only (numTraining 0, for nnext predict / nnUNetv2_predict)")
        if not any((tmp / "imagesTs").iterdir()):
            (tmp / "imagesTs").rmdir()
        label_dict, order = region_labels(labels)
        dataset_json = {
            "channel_names": {str(i): c for i, c in enumerate(CHANNELS)}, "labels": label_dict,
            "regions_class_order": order, "numTraining": n_train, "file_ending": ".nii.gz", "name": name,
            "description": f"BraTS {year} adult glioma, multi-parametric MRI; converted by nnext convert brats",
            "reference": "Menze et al., IEEE TMI 34(10):1993-2024 (2015), doi:10.1109/TMI.2014.2377694; "
                         "Bakas et al., Sci Data 4:170117 (2017), doi:10.1038/sdata.2017.117",
            "nnext_brats": {"year": year, "labels": labels,
                            "to_dataset": {str(k): v for k, v in mapping.items()}},
        }
        (tmp / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
        (tmp / "conversion_log.json").write_text(json.dumps(log, indent=2))
    print(f"{final}: {n_train} training cases, "
          f"{sum(1 for e in log['cases'].values() if e.get('split') == 'test')} test cases, "
          f"{sum(1 for e in log['cases'].values() if e.get('status') == 'skipped')} skipped")
    return final


def brats_back(pred_dir, out_dir, year: int, labels: str = "nnunet", overwrite: bool = False) -> list[Path]:
    """Map segmentations ``pred_dir/CASE.nii.gz`` (dataset labels) back to BraTS ``year``'s label values."""
    import SimpleITK as sitk

    from nnunet_ext.imageio import atomic_path, read_sitk

    if year not in LAYOUTS:
        raise InputError(f"--year must be one of {', '.join(map(str, LAYOUTS))}, got {year}")
    back = {v: k for k, v in label_map(year, labels).items()}
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: folder not found")
    # segmentations only: side outputs (CASE_uncertainty, CASE_probabilities, ...) end in _<word>
    files = sorted(p for p in pred_dir.iterdir() if p.name.endswith((".nii.gz", ".nii"))
                   and not p.name.startswith(".") and not re.search(r"_[A-Za-z]+\d*\.nii(\.gz)?$", p.name))
    if not files:
        raise InputError(f"{pred_dir}: no segmentation files CASE.nii.gz")
    from nnunet_ext.integrity import check_output_dir

    check_output_dir(out_dir, "output folder (-o)")
    targets = [out_dir / (p.name if p.name.endswith(".nii.gz") else p.name + ".gz") for p in files]
    for p, target in zip(files, targets):  # every input checked before the first file is written
        if target.exists() and not overwrite:
            raise InputError(f"{target}: exists; pass --overwrite to replace it")
        bad = sorted(set(np.unique(sitk.GetArrayFromImage(read_sitk(p))).tolist()) - set(back))
        if bad:
            raise InputError(f"{p}: label values {bad} are not dataset labels {sorted(back)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p, target in zip(files, targets):
        img = read_sitk(p)
        arr = sitk.GetArrayFromImage(img)
        new = np.zeros(arr.shape, np.uint8)
        for src, dst in back.items():
            new[arr == src] = dst
        out = sitk.GetImageFromArray(new)
        out.CopyInformation(img)
        with atomic_path(target) as tmp:
            sitk.WriteImage(out, tmp, True)
        written.append(target)
    return written


def dataset_convention(dataset_folder: Path) -> tuple[int, str]:
    """``(year, labels)`` recorded by :func:`convert_brats` in a dataset's ``dataset.json``."""
    path = Path(dataset_folder) / "dataset.json"
    try:
        info = json.loads(path.read_text())["nnext_brats"]
        return int(info["year"]), str(info["labels"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: no 'nnext_brats' entry (not written by nnext convert brats?): {e}") from None


__all__ = ["convert_brats", "brats_back", "dataset_convention", "label_map", "region_labels", "LAYOUTS",
           "KNOWN_MISNAMED", "detect_year", "find_cases"]
