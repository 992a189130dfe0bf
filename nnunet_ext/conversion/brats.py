"""BraTS 2020 / 2021 / 2023 (adult glioma) -> region-based nnU-Net v2 raw dataset, and predictions back.

Layouts (one folder per case, the folder name is the case ID; ``.nii`` or ``.nii.gz``)::

    2020  BraTS20_Training_001/BraTS20_Training_001_{t1,t1ce,t2,flair,seg}.nii    labels 1 NCR/NET, 2 ED, 4 ET
    2021  BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz           labels 1 NCR, 2 ED, 4 ET
    2023  BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz    labels 1 NCR, 2 SNFH, 3 ET

Cases are found by their FILE names, anywhere below the input (symbolic links to folders are followed): a folder
named differently from the case its files belong to (``patientB/BraTS2021_00002_t1.nii.gz``) is converted as
that case (``BraTS2021_00002``) with a warning; a folder whose NIfTI files carry no BraTS name is taken as a case
of its folder name (and then fails naming the missing modality file). The year is detected from the names when
not given; cases of several years in one input are refused naming a file of each year, or with ``--year`` the
other years' cases are listed as skipped. Every run ends with ``N converted, M skipped`` and one line per skipped
case with its reason (:mod:`nnunet_ext.conversion.outcome`). A label on another grid than the T1 is refused
unless ``--resample-labels`` (:mod:`nnunet_ext.conversion.label_grid`). BraTS 2020 ships case 355's label misnamed
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
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import write_json, write_sitk

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


def _file_pattern(layout: Layout) -> re.Pattern:
    mods = "|".join(re.escape(m) for m in (*layout.modalities, layout.seg))
    return re.compile(rf"(?P<case>{layout.folder}){re.escape(layout.sep)}(?:{mods})\.nii(?:\.gz)?")


_FILE_PATTERNS = {year: _file_pattern(layout) for year, layout in LAYOUTS.items()}


def case_of_file(name: str) -> tuple[int, str] | None:
    """``(year, case ID)`` of a BraTS image / seg file name, None for other names."""
    for year, pattern in _FILE_PATTERNS.items():
        m = pattern.fullmatch(name)
        if m:
            return year, m["case"]
    return None


def _year_of_folder(name: str) -> int | None:
    hits = [y for y, lay in LAYOUTS.items() if re.fullmatch(lay.folder, name)]
    return hits[0] if len(hits) == 1 else None


def scan_release(root: Path) -> tuple[dict[str, tuple[Path, int | None, Path | None]], list[str]]:
    """``({case ID: (folder, year or None, an example file)}, warnings)`` of every folder below ``root`` that
    holds NIfTI files, symbolic links followed (a link loop is visited once).

    The case ID comes from the files' names (several cases may share a folder); a folder whose files carry no
    BraTS name gives one case named after the folder (year from the folder name, else None). A folder named
    differently from its only case gives a warning. A case found in two folders is an InputError."""
    cases: dict[str, tuple[Path, int | None, Path | None]] = {}
    notes, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symbolic link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        niftis = sorted(f for f in filenames if f.endswith((".nii", ".nii.gz")) and not f.startswith("."))
        if not niftis:
            continue
        folder, name = Path(dirpath), os.path.basename(dirpath)
        found: dict[str, tuple[int | None, Path | None]] = {}
        for f in niftis:
            hit = case_of_file(f)
            if hit is not None:
                found.setdefault(hit[1], (hit[0], folder / f))
        if not found:
            found = {name: (_year_of_folder(name), None)}
        elif len(found) == 1 and name not in found:
            case = next(iter(found))
            notes.append(f"case folder {folder} is named differently from its files ({case}_*): converted as "
                         f"case {case}")
        for case, (year, example) in found.items():
            if case in cases:
                raise InputError(f"case {case} found twice: {cases[case][0]} and {folder}")
            cases[case] = (folder, year, example)
    return cases, notes


def find_cases(root: Path) -> dict[str, Path]:
    """``{case ID: folder}`` (see :func:`scan_release`)."""
    return {case: folder for case, (folder, _, _) in scan_release(root)[0].items()}


def detect_year(cases: dict) -> int:
    """The one BraTS year of ``cases`` (``{case: (folder, year, example file)}`` or ``{case: folder}``);
    InputError naming a file of each year when they are mixed, or when no name tells the year."""
    by_year: dict[int, list[str]] = {}
    for case, info in sorted(cases.items()):
        folder, year, example = info if isinstance(info, tuple) else (info, _year_of_folder(case), None)
        if year is not None:
            by_year.setdefault(year, []).append(str(example or folder))
    if len(by_year) == 1:
        return next(iter(by_year))
    if not by_year:
        example = next(iter(cases), "none")
        raise InputError(f"cannot tell the BraTS year from the case folders (e.g. {example!r}); pass --year")
    parts = "; ".join(f"{y}: {len(f)} case(s), e.g. {f[0]}" for y, f in sorted(by_year.items()))
    raise InputError(f"cases of several BraTS years in one input ({parts}); convert one year per dataset "
                     "(pass --year YEAR: the other years' cases are listed as skipped)")


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


def _convert_case(case, folder, layout, mapping, out: Path, resample_labels: bool = False) -> dict:
    import SimpleITK as sitk

    from nnunet_ext.io.imageio import read_sitk

    images, seg, note = case_files(case, folder, layout)
    split = "Tr" if seg is not None else "Ts"
    loaded = [read_sitk(p) for p in images]
    for p, img in zip(images[1:], loaded[1:]):
        if not _same_grid(loaded[0], img):
            raise InputError(f"case {case}: {p.name} is not on the grid of {images[0].name}")
    entry = {"folder": str(folder), "split": "train" if seg is not None else "test"}
    if seg is not None:
        from nnunet_ext.conversion.label_grid import label_on_image_grid

        lab = read_sitk(seg)
        values = np.unique(sitk.GetArrayViewFromImage(lab))
        bad = sorted(set(values.tolist()) - set(layout.label_values))
        if bad:
            raise InputError(f"case {case}: label {seg.name} has values {bad}, BraTS {layout.year} uses "
                             f"{list(layout.label_values)}")
        arr, grid_note, counts = label_on_image_grid(lab, loaded[0], seg, images[0], resample_labels)
        if grid_note:
            note = f"{note}; {grid_note}" if note else grid_note
            entry["label_voxels_before_after"] = counts
        new = np.zeros(arr.shape, np.uint8)
        for src, dst in mapping.items():
            new[arr == src] = dst
        out_lab = sitk.GetImageFromArray(new)
        out_lab.CopyInformation(loaded[0])
        write_sitk(out_lab, out / "labelsTr" / f"{case}.nii.gz")
        entry["label"] = seg.name
    for c, img in enumerate(loaded):
        write_sitk(img, out / f"images{split}" / f"{case}_{c:04d}.nii.gz")
    if note:
        entry["note"] = note
    return entry


def convert_brats(input_dir, dataset_id: int, year: int | None = None, name: str | None = None,
                  labels: str = "nnunet", overwrite: bool = False, skip_invalid: bool = False,
                  progress: bool = True, resample_labels: bool = False) -> Path:
    """Convert a BraTS release folder into ``$nnUNet_raw/DatasetXXX_NAME`` (built in a hidden folder and
    swapped in); returns the dataset folder."""
    from tqdm import tqdm

    from nnunet_ext.io.paths import env_dir, staged_dataset

    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    mapping = label_map(2021 if year is None else year, labels)  # validates `labels` early
    found, notes = scan_release(root)
    if not found:
        raise InputError(f"{root}: no NIfTI files found")
    if year is None:
        year = detect_year(found)
        print(f"BraTS {year} layout detected")
    elif year not in LAYOUTS:
        raise InputError(f"--year must be one of {', '.join(map(str, LAYOUTS))}, got {year}")
    for note in notes:
        print(f"nnext convert brats: warning: {note}", file=sys.stderr)
    layout = LAYOUTS[year]
    mapping = label_map(year, labels)
    other_year = {c: (f"BraTS {y} case ({ex or folder}); --year {year} converts BraTS {year} cases only")
                  for c, (folder, y, ex) in found.items() if y is not None and y != year}
    cases = {c: folder for c, (folder, _, _) in found.items() if c not in other_year}
    if not cases:
        raise InputError(f"{root}: no BraTS {year} case (found {len(other_year)} case(s) of other years, e.g. "
                         f"{next(iter(other_year.values()))})")
    name = name or f"BraTS{year}"
    log = {"source": str(root.resolve()), "year": year, "labels": labels, "cases": {}, "warnings": notes}
    for c, reason in other_year.items():
        log["cases"][c] = {"folder": str(found[c][0]), "status": "skipped", "reason": reason}
    with staged_dataset(env_dir("nnUNet_raw"), int(dataset_id), name, overwrite=overwrite) as (tmp, final):
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (tmp / sub).mkdir(parents=True)
        for case in tqdm(sorted(cases), desc=f"BraTS {year} cases", unit="case", disable=not progress):
            try:
                entry = _convert_case(case, cases[case], layout, mapping, tmp, resample_labels)
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
        write_json(tmp / "dataset.json", dataset_json, indent=2)
        write_json(tmp / "conversion_log.json", log, indent=2)
    from nnunet_ext.conversion.outcome import report

    skipped = {c: e["reason"] for c, e in log["cases"].items() if e.get("status") == "skipped"}
    n_test = sum(1 for e in log["cases"].values() if e.get("split") == "test")
    report(final, n_train + n_test, skipped, f"{n_train} training, {n_test} test cases")
    return final


def brats_back(pred_dir, out_dir, year: int, labels: str = "nnunet", overwrite: bool = False) -> list[Path]:
    """Map segmentations ``pred_dir/CASE.nii.gz`` (dataset labels) back to BraTS ``year``'s label values."""
    import SimpleITK as sitk

    from nnunet_ext.io.imageio import read_sitk

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
    from nnunet_ext.io.integrity import check_output_dir

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
        write_sitk(out, target)
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
           "KNOWN_MISNAMED", "detect_year", "find_cases", "scan_release", "case_of_file"]
