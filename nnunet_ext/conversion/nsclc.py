"""NSCLC-Radiomics (TCIA) -> nnU-Net v2 raw dataset: planning CT + the gross tumour volume ``GTV-1``.

Expected input: the collection as the NBIA Data Retriever writes it (any folder layout works, files are
found by their DICOM headers, non-DICOM files are ignored)::

    NSCLC-Radiomics/LUNG1-001/<study>/<CT series>/1-001.dcm ...
                             /<study>/<RTSTRUCT series>/1-1.dcm
                             /<study>/<SEG series>/1-1.dcm          (ignored)

One case per PatientID (``LUNG1-001``; characters other than ``A-Z a-z 0-9 . _ -`` become ``_``). Per case:
the CT series is read with SimpleITK (HU, geometry from the sorted slices), the RTSTRUCT is matched to it by
its referenced SeriesInstanceUID (else the patient's only CT series), the first ROI whose name equals one of
``roi_names`` (case-insensitive; a later RTSTRUCT of the patient is tried if the first has none) is rasterised
onto the CT grid (convention: :mod:`nnunet_ext.conversion.dicom`). Output under
``$nnUNet_raw/DatasetXXX_NAME``: ``imagesTr/CASE_0000.nii.gz`` (int16 HU, float32 if the rescale gives
fractions), ``labelsTr/CASE.nii.gz`` (uint8, 1 = tumour, the image's geometry), optionally
``lungmasksTr/CASE.nii.gz`` (1 = right, 2 = left lung), ``dataset.json`` (rewritten at the end from the cases
present) and ``conversion_log.json`` (per case: CT series, RTSTRUCT, ROI, voxels, or why it was skipped).

Cases are converted in a hidden resume folder ``$nnUNet_raw/.nnext-resume-DatasetXXX_NAME`` (every file written
atomically, the label last); the visible dataset is swapped in as a whole (``paths.staged_dataset``) only when
the conversion is complete and valid, so a failed or interrupted run never leaves a half-written
``DatasetXXX_NAME`` (a previous complete one stays as it was). The next run resumes: finished cases (of the
resume folder, or of the existing dataset, hard-linked) are kept unless ``overwrite`` (which starts afresh).
A resume with other ROI names is refused (stale-output guard) unless ``overwrite``. Bad cases (no CT, no
RTSTRUCT, no matching ROI, empty mask, contours off the CT grid, uneven slices, a slice whose PixelSpacing /
orientation / size differs from the others) raise :class:`InputError`, or with ``skip_invalid`` are logged and
skipped; the run ends with ``N converted, M skipped`` and one line per skipped case with its reason
(:mod:`nnunet_ext.conversion.outcome`). Nothing is ever downloaded.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Sequence

from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import copy_file

LOG_NAME = "conversion_log.json"
LUNG_MASK_MODES = ("auto", "threshold", "lungmask")
DATASET_INFO = {
    "description": "NSCLC-Radiomics (TCIA): pre-treatment planning CT of 422 non-small cell lung cancer patients "
                   "with the primary gross tumour volume (RTSTRUCT ROI GTV-1) delineated by a radiation "
                   "oncologist; converted by nnext convert nsclc",
    "reference": "Aerts HJWL et al., Decoding tumour phenotype by noninvasive imaging using a quantitative "
                 "radiomics approach, Nat Commun 5:4006 (2014); data: doi:10.7937/K9/TCIA.2015.PF0M9REI",
    "licence": "CC BY-NC 3.0 (TCIA NSCLC-Radiomics data usage policy; check the collection page for changes)",
}


def case_id(patient_id: str) -> str:
    """Filename-safe case identifier of a PatientID (``LUNG1-001`` stays as it is)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id.strip()).strip("._") or "case"


def _check_target(raw: Path, dataset_id: int, name: str, overwrite: bool) -> Path:
    """The final ``raw/DatasetXXX_name``; refuses other datasets with this ID, or a folder of this name not written
    by this converter, unless ``overwrite``. Creates nothing."""
    from nnunet_ext.io.paths import check_dataset_name

    final = raw / f"Dataset{dataset_id:03d}_{name}"
    check_dataset_name(name)
    old = sorted(p for p in raw.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir()) if raw.is_dir() else []
    if not overwrite:
        others = [p for p in old if p != final]
        if others:
            raise InputError(f"dataset ID {dataset_id} already exists as {others[0]}; pass --overwrite to replace "
                             "it or choose another ID")
        if final.is_dir() and any(final.iterdir()) and not (final / LOG_NAME).is_file():
            raise InputError(f"{final} exists and was not written by nnext convert nsclc; pass --overwrite")
    return final


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (same file system: instant, no extra disk, mtime kept), else a copy with its metadata."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        copy_file(src, dst)


def _link_tree(src: Path, dst: Path, skip_existing: bool = False) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file() and not p.name.startswith(".tmp-"):
            target = dst / p.relative_to(src)
            if not (skip_existing and target.exists()):
                _link_or_copy(p, target)


def _work_folder(raw: Path, final: Path, settings: dict, overwrite: bool) -> Path:
    """The hidden resume folder ``raw/.nnext-resume-DatasetXXX_name`` in which cases are converted.

    Staging and resume combined: the visible dataset is only ever replaced as a whole (``paths.staged_dataset``)
    once it is valid, while finished cases of an interrupted or failed run live on here (each file atomic, the
    label last), so the next run keeps them. A finished dataset seeds it by hard links. Refuses a resume with
    other settings (ROI names) unless ``overwrite``, which starts afresh (the old dataset stays visible until the
    new one is complete)."""
    from nnunet_ext.io.settings_record import check_settings, record_settings

    work = raw / f".nnext-resume-{final.name}"
    if overwrite:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for folder in (work, final):
            check_settings(folder, settings, False, what="dataset")
    fresh = not work.is_dir()
    for sub in ("imagesTr", "labelsTr"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if fresh and not overwrite and final.is_dir():
        _link_tree(final, work)
    record_settings(work, settings, command="nnext convert nsclc")
    return work


def _convert_patient(patient, roi_names: Sequence[str], root: Path) -> tuple:
    """``(hu, geometry, label uint8, log entry)`` of one patient; InputError naming the patient / file."""
    import numpy as np

    from nnunet_ext.conversion import dicom
    from nnunet_ext.io.imageio import Geometry

    pid = patient.patient_id
    if not patient.ct:
        raise InputError(f"patient {pid}: no CT series found")
    if not patient.rtstructs:
        raise InputError(f"patient {pid}: no RTSTRUCT found")
    problems = []
    for path in sorted(patient.rtstructs):
        ds = dicom.read_rtstruct(path)
        try:
            number, roi = dicom.find_roi(ds, roi_names, path)
        except InputError as e:
            problems.append(str(e))
            continue
        series, matched_by = dicom.match_ct(ds, patient.ct, path)
        break
    else:
        raise InputError(f"patient {pid}: " + "; ".join(problems))
    frame = dicom.roi_frame_of_reference(ds, number)
    if frame and series.frame_of_reference and frame != str(series.frame_of_reference):
        raise InputError(f"patient {pid}: {path}: geometry mismatch, ROI {roi!r} is in frame of reference {frame}, "
                         f"the CT series {series.uid} in {series.frame_of_reference}")
    hu, image = dicom.read_ct(series)
    mask = dicom.rasterise_roi(ds, number, image, path)
    if not mask.any():
        raise InputError(f"patient {pid}: {path}: ROI {roi!r} has no closed contour voxels on CT series {series.uid}")
    geometry = Geometry.of(image)
    voxels = int(mask.sum())
    entry = {"patient_id": pid, "status": "converted", "ct_series_uid": series.uid,
             "ct_folder": series.files[0].parent.relative_to(root).as_posix(), "ct_slices": len(series.files),
             "rtstruct": Path(path).relative_to(root).as_posix(), "rtstruct_match": matched_by, "roi": roi,
             "roi_number": number, "label_voxels": voxels,
             "label_volume_ml": round(voxels * float(np.prod(geometry.spacing)) / 1000.0, 3),
             "shape_zyx": list(hu.shape), "spacing_xyz": [round(s, 6) for s in geometry.spacing]}
    return hu, geometry, mask.astype(np.uint8), entry


def convert_nsclc(tcia_dir: str | Path, dataset_id: int, name: str = "NSCLCRadiomics", **options) -> Path:
    """Convert the NSCLC-Radiomics DICOM tree (see :func:`_convert_nsclc` for the options); on failure the resume
    folder is removed again unless it holds finished cases or case reasons (a later run resumes from those)."""
    try:
        return _convert_nsclc(tcia_dir, dataset_id, name, **options)
    except BaseException:
        import os as _os

        raw = _os.environ.get("nnUNet_raw")
        try:
            work = Path(raw) / f".nnext-resume-Dataset{int(dataset_id):03d}_{name}" if raw else None
        except (TypeError, ValueError):
            work = None
        if work is not None and work.is_dir() and not any((work / "labelsTr").glob("*.nii.gz")):
            try:
                cases = json.loads((work / LOG_NAME).read_text()).get("cases")
            except (OSError, ValueError, AttributeError):
                cases = None
            if not cases:
                shutil.rmtree(work, ignore_errors=True)
        raise


def _convert_nsclc(tcia_dir: str | Path, dataset_id: int, name: str = "NSCLCRadiomics",
                  roi_names: Sequence[str] = ("GTV-1",), lung_masks: str | None = None,
                  lungmask_weights: str | None = None, overwrite: bool = False, skip_invalid: bool = False,
                  progress: bool = True) -> Path:
    """Convert the NSCLC-Radiomics DICOM tree ``tcia_dir`` into ``$nnUNet_raw/Dataset{dataset_id}_{name}``;
    return that folder. ``lung_masks``: None (off), ``auto`` / ``threshold`` / ``lungmask`` (backends of
    :func:`nnunet_ext.methods.lung_cascade.lungmask.compute_lung_mask`)."""
    from tqdm import tqdm

    from nnunet_ext.conversion.dicom import scan_dicom
    from nnunet_ext.io.imageio import atomic_write_text, read_image, write_image
    from nnunet_ext.io.paths import env_dir
    from nnunet_ext.io.resume import output_problem

    tcia_dir = Path(tcia_dir)
    if not tcia_dir.is_dir():
        raise InputError(f"{tcia_dir}: input folder not found")
    if not 1 <= int(dataset_id) <= 999:
        raise InputError(f"dataset ID must be in 1..999, got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise InputError(f"dataset name {name!r}: use letters, digits, '.', '_' and '-' only")
    roi_names = [r for r in roi_names if r.strip()]
    if not roi_names:
        raise InputError("give at least one ROI name (--roi)")
    if lung_masks is not None:
        from nnunet_ext.methods.lung_cascade.lungmask import compute_lung_mask, lungmask_available

        if lung_masks not in LUNG_MASK_MODES:
            raise InputError(f"unknown lung mask backend {lung_masks!r}; choose one of {', '.join(LUNG_MASK_MODES)}")
        if lungmask_weights is not None and not Path(lungmask_weights).is_file():
            raise InputError(f"{lungmask_weights}: lungmask weights file not found")
        backend = "threshold"
        if lung_masks != "threshold":   # resolve auto once, as nnext lungmask does
            usable, reason = lungmask_available(lungmask_weights)
            if lung_masks == "lungmask" and not usable:
                raise InputError(f"lungmask backend unusable: {reason}")
            backend = "lungmask" if usable else "threshold"
            print(f"lung masks: backend {backend} ({reason if usable else 'lungmask unusable: ' + reason})")
    raw = env_dir("nnUNet_raw")

    patients = scan_dicom(tcia_dir, progress=progress)
    if not patients:
        raise InputError(f"{tcia_dir}: no DICOM files found")
    ids: dict[str, str] = {}
    for pid in sorted(patients):
        if case_id(pid) in ids:
            raise InputError(f"patients {ids[case_id(pid)]!r} and {pid!r} give the same case id {case_id(pid)!r}")
        ids[case_id(pid)] = pid

    from nnunet_ext.io.integrity import check_output_dir

    check_output_dir(raw, "nnUNet_raw folder")
    final = _check_target(raw, int(dataset_id), name, overwrite)
    out = _work_folder(raw, final, {"roi_names": list(roi_names)}, overwrite)
    log_path = out / LOG_NAME
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    log.update(source=str(tcia_dir.resolve()), roi_names=list(roi_names), lung_masks=lung_masks)
    log.setdefault("cases", {})
    ignored = Counter()
    for p in patients.values():
        ignored.update(p.ignored)
    log["ignored_modalities"] = dict(sorted(ignored.items()))
    atomic_write_text(log_path, json.dumps(log, indent=2))
    counts = {"converted": 0, "kept": 0, "skipped": 0}
    for case, pid in tqdm(sorted(ids.items()), desc="NSCLC cases", unit="case", disable=not progress):
        image_path, label_path = out / "imagesTr" / f"{case}_0000.nii.gz", out / "labelsTr" / f"{case}.nii.gz"
        lung_path = out / "lungmasksTr" / f"{case}.nii.gz"
        problem = None
        if image_path.is_file() or label_path.is_file():  # a resume keeps a finished case only if it checks out
            problem = output_problem(image_path) or output_problem(label_path, like=image_path)
            if problem is not None:
                print(f"{case}: converting again ({problem})")
        if image_path.is_file() and label_path.is_file() and problem is None:
            entry = {**log["cases"].get(case, {"patient_id": pid}), "status": "kept"}
            if lung_masks is not None and (not lung_path.is_file() or output_problem(lung_path, like=image_path)):
                hu, geometry = read_image(image_path)
                lung, entry["lung_mask_backend"] = compute_lung_mask(hu, geometry, backend, lungmask_weights)
                write_image(lung, geometry, lung_path)
        else:
            try:
                try:
                    hu, geometry, label, entry = _convert_patient(patients[pid], roi_names, tcia_dir)
                except (ValueError, KeyError, AttributeError, TypeError, RuntimeError) as e:
                    if isinstance(e, InputError):
                        raise
                    raise InputError(f"patient {pid}: unexpected DICOM content ({type(e).__name__}: {e})") from e
                if lung_masks is not None:
                    lung, entry["lung_mask_backend"] = compute_lung_mask(hu, geometry, backend, lungmask_weights)
            except InputError as e:
                if not skip_invalid:
                    raise
                entry = {"patient_id": pid, "status": "skipped", "reason": str(e)}
            else:
                write_image(hu, geometry, image_path)
                if lung_masks is not None:
                    write_image(lung, geometry, lung_path)
                write_image(label, geometry, label_path)
        counts[entry["status"]] += 1
        log["cases"][case] = entry
        atomic_write_text(log_path, json.dumps(log, indent=2))

    present = sorted(p.name[: -len(".nii.gz")] for p in (out / "labelsTr").glob("*.nii.gz")
                     if (out / "imagesTr" / f"{p.name[: -len('.nii.gz')]}_0000.nii.gz").is_file())
    for folder, ending in (("imagesTr", "_0000.nii.gz"), ("lungmasksTr", ".nii.gz")):  # interrupted / skipped
        for p in (out / folder).glob(f"*{ending}"):
            if p.name[: -len(ending)] not in present:
                p.unlink()
    if not present:
        raise InputError(f"no case could be converted from {tcia_dir}; reasons in {log_path}")
    for case in present:  # what goes into the dataset is complete and sane (labels integer, images finite)
        read_image(out / "labelsTr" / f"{case}.nii.gz", kind="label", ndim=3)
    dataset_json = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1},
                    "numTraining": len(present), "file_ending": ".nii.gz", "name": name, **DATASET_INFO,
                    "roi_names": list(roi_names)}
    if lung_masks is not None or (out / "lungmasksTr").is_dir():
        dataset_json["lung_masks"] = "lungmasksTr/CASE.nii.gz: 1 = right lung, 2 = left lung"
    atomic_write_text(out / "dataset.json", json.dumps(dataset_json, indent=2))
    from nnunet_ext.io.paths import staged_dataset

    with staged_dataset(raw, int(dataset_id), name, overwrite=True) as (tmp, final):  # checked by _check_target
        _link_tree(out, tmp)
    shutil.rmtree(out, ignore_errors=True)
    out = final
    from nnunet_ext.conversion.outcome import report

    skipped = {c: e["reason"] for c, e in log["cases"].items() if e.get("status") == "skipped" and c in ids}
    report(out, counts["converted"] + counts["kept"], skipped,
           f"{counts['kept']} of them kept from an earlier run; {len(present)} cases in dataset.json")
    return out


__all__ = ["convert_nsclc", "case_id"]
