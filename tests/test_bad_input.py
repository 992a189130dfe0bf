"""The bad-input matrix: every ``nnext`` command x every class of bad input (issue 13).

Each cell builds valid inputs in a fresh ``tmp_path`` (nnU-Net's folders point there too), spoils one thing,
runs the command in-process through ``nnunet_ext.cli.main.main`` and asserts
  * the exit status (2 for bad input / operational errors, 130 for Ctrl-C),
  * exactly one error line ``nnext CMD: error: ...`` (or ``... interrupted``) matching the expected text, and no
    ``Traceback``,
  * no new file left behind (the tree under ``tmp_path`` is unchanged; for interrupted resumable commands only
    finished, complete outputs remain and a re-run finishes the job).

Adding a command: write ``_cmd_<name>(tmp, mp, klass) -> Cell`` that returns the argv (and expectations) for each
class it supports, and add it to :data:`COMMANDS`. Classes a command has no input for are listed in
:data:`NOT_APPLICABLE` with the reason (the README reports the counts).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.imageio import Geometry, read_image, write_image

CLASSES = ("missing", "empty", "corrupt", "truncated", "nan", "wrong_dim", "wrong_geometry", "malformed_json",
           "bad_option", "output_is_file", "unwritable_output", "interrupted", "other_settings")
G = Geometry((0.8, 0.9, 2.0), (-10.0, 5.0, 3.0))


@dataclass
class Cell:
    argv: list[str]
    match: str                      # regex the error line must match
    code: int = 2
    resumable: bool = False         # interrupted: finished outputs may stay; `rerun` must then succeed
    rerun: list[str] | None = None
    check: Callable[[], None] | None = None   # extra assertions after the failing run
    patches: list = field(default_factory=list)  # (target, name, value) applied just before the run
    keep: str | None = None         # regex of new paths that may stay: finished, complete outputs kept for resume


# ----------------------------------------------------------------------------------------------- helpers

def label_map(shape=(8, 16, 16), at=(2, 4, 4)):
    lab = np.zeros(shape, np.uint8)
    lab[at[0]:at[0] + 3, at[1]:at[1] + 5, at[2]:at[2] + 5] = 1
    return lab


def ct_image(shape=(8, 16, 16), seed=0):
    return (np.random.default_rng(seed).normal(0, 50, shape)).astype(np.float32)


def chest_ct(shape=(14, 48, 48)):
    """Chest-like HU volume (7 mm pixels, 10 mm slices): body ellipse with two air-filled lungs."""
    k, r, c = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(float)
    x, y, z = (c - 23.5) * 7.0, (r - 23.5) * 7.0, (k - 6.5) * 10.0
    hu = np.full(shape, -1000, np.int16)
    hu[(x / 150) ** 2 + (y / 110) ** 2 <= 1] = 40
    for cx in (-70.0, 70.0):
        hu[((x - cx) / 45) ** 2 + (y / 70) ** 2 + (z / 60) ** 2 <= 1] = -850
    return hu


CHEST_G = Geometry((7.0, 7.0, 10.0), (0.0, 0.0, 0.0))


def spoil(path: Path, klass: str) -> None:
    """Turn a valid image file into the bad-input class ``klass``."""
    if klass == "missing":
        path.unlink()
    elif klass == "empty":
        path.write_bytes(b"")
    elif klass == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif klass == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    else:
        raise ValueError(klass)


def raw_dataset(raw: Path, dataset_id=901, n=2, ending=".nii.gz") -> Path:
    folder = raw / f"Dataset{dataset_id}_Bad"
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    for k in range(n):
        write_image(ct_image(seed=k), G, folder / "imagesTr" / f"c{k}_0000{ending}")
        write_image(label_map(at=(2, 3 + k, 4)), G, folder / "labelsTr" / f"c{k}{ending}")
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                         "tumor": 1}, "numTraining": n, "file_ending": ending}))
    return folder


def interrupt_on_call(module, name: str, after: int = 1):
    """A replacement for ``module.name`` that works ``after`` times, then raises KeyboardInterrupt (Ctrl-C)."""
    real = getattr(module, name)
    calls = {"n": 0}

    def fake(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*a, **k)
    return (module, name, fake)


@contextlib.contextmanager
def _denied(path):
    raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
    yield  # pragma: no cover


def unwritable():
    """Every atomic write (images, JSON, CSV: all go through imageio.atomic_path) fails with EACCES."""
    import nnunet_ext.imageio as io
    return (io, "atomic_path", _denied)


def file_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("I am a file\n")
    return path


def write_nan_image(path: Path, shape=(8, 16, 16), geometry=G):
    arr = ct_image(shape)
    arr[1, 2, 3] = np.nan
    arr[2, 2, 3] = np.inf
    write_image(arr, geometry, path)


# ----------------------------------------------------------------------------------------------- commands

def _cmd_evaluate(tmp: Path, mp, klass: str) -> Cell | None:
    ref, pred = tmp / "ref", tmp / "pred"
    ref.mkdir()
    pred.mkdir()
    for k in range(2):
        write_image(label_map(at=(2, 4 + k, 4)), G, ref / f"c{k}.nii.gz")
        write_image(label_map(at=(2, 5 + k, 4)), G, pred / f"c{k}.nii.gz")
    out = tmp / "out" / "summary.json"
    argv = ["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(out), "-q"]
    bad = pred / "c1.nii.gz"
    if klass in ("empty", "corrupt", "truncated"):
        spoil(bad, klass)
        return Cell(argv, {"empty": r"c1\.nii\.gz: empty file", "corrupt": r"c1\.nii\.gz: (not a gzip|corrupt)",
                           "truncated": r"c1\.nii\.gz: truncated"}[klass])
    if klass == "missing":
        return Cell(argv[:4] + [str(tmp / "nope")] + argv[5:], r"PRED_DIR .*nope: no such folder")
    if klass == "nan":
        arr = label_map().astype(np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, G, bad)
        return Cell(argv, r"pred/c1\.nii\.gz: 1 NaN and 0 infinite voxel")
    if klass == "wrong_dim":
        write_image(label_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), bad)
        return Cell(argv, r"c1: size \(x,y,z\) differs")
    if klass == "wrong_geometry":
        write_image(label_map(), Geometry((0.8, 0.9, 3.0), G.origin), bad)
        return Cell(argv, r"c1: spacing \(x,y,z\) differs")
    if klass == "malformed_json":
        (tmp / "dataset.json").write_text('{"labels": {"background": 0,, }')
        return Cell(argv + ["-djfile", str(tmp / "dataset.json")], r"dataset\.json.*(malformed|line 1)")
    if klass == "bad_option":  # a float prediction: the prediction is blamed, not the reference
        write_image(label_map().astype(np.float32) * 0.5, G, bad)
        return Cell(argv, r"pred/c1\.nii\.gz: .*non-integer")
    if klass == "output_is_file":
        return Cell(argv[:-3] + ["-o", str(file_at(tmp / "f.txt") / "summary.json"), "-q"],
                    r"f\.txt: folder of the summary file \(-o\) is an existing file")
    if klass == "unwritable_output":
        return Cell(argv, r"summary\.json: not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.evaluation.evaluate as ev
        return Cell(argv, r"interrupted", code=130, patches=[interrupt_on_call(ev, "compute_metrics", 1)],
                    rerun=argv)
    return None


def _summary(cases: dict) -> dict:
    return {"metric_per_case": [{"case": c, "metrics": {"1": {"dice": d, "hd95": 3.0, "nsd": 0.5}}}
                                for c, d in cases.items()]}


def _cmd_compare(tmp: Path, mp, klass: str) -> Cell | None:
    a, b = tmp / "a.json", tmp / "b.json"
    a.write_text(json.dumps(_summary({"x": 0.5, "y": 0.6, "z": 0.7})))
    b.write_text(json.dumps(_summary({"x": 0.6, "y": 0.65, "z": 0.9})))
    argv = ["compare", "-a", str(a), "-b", str(b), "-o", str(tmp / "out" / "cmp.json")]
    if klass == "missing":
        a.unlink()
        return Cell(argv, r"a\.json: evaluation summary not found")
    if klass == "empty":
        a.write_text("")
        return Cell(argv, r"a\.json: evaluation summary is empty")
    if klass == "corrupt":
        return Cell(["compare", "-a", "/dev/null", "-b", str(b)], r"/dev/null: not a regular file")
    if klass == "truncated":
        text = a.read_text()
        a.write_text(text[: len(text) // 2])
        return Cell(argv, r"a\.json: malformed evaluation summary \(line \d+")
    if klass == "malformed_json":
        a.write_text('{"metric_per_case": [}')
        return Cell(argv, r"a\.json: malformed evaluation summary \(line 1, column")
    if klass == "bad_option":  # a non-numeric metric value
        data = _summary({"x": 0.5, "y": 0.6, "z": 0.7})
        data["metric_per_case"][1]["metrics"]["1"]["dice"] = "n/a"
        a.write_text(json.dumps(data))
        return Cell(argv, r"a\.json: case 'y', label '1': non-numeric value\(s\) for dice")
    if klass == "output_is_file":
        return Cell(argv[:-1] + [str(file_at(tmp / "f.txt") / "cmp.json")], r"f\.txt: folder of the output file")
    if klass == "unwritable_output":
        return Cell(argv, r"cmp\.json: not writable", patches=[unwritable()])
    return None


def _lung_inputs(tmp: Path, n=2) -> tuple[Path, Path]:
    inp = tmp / "ct"
    inp.mkdir()
    for k in range(n):
        write_image(chest_ct(), CHEST_G, inp / f"c{k}_0000.nii.gz")
    return inp, tmp / "masks"


def _cmd_lungmask(tmp: Path, mp, klass: str) -> Cell | None:
    inp, out = _lung_inputs(tmp)
    argv = ["lungmask", "-i", str(inp), "-o", str(out), "--backend", "threshold"]
    bad = inp / "c1_0000.nii.gz"  # header-level problems: the LAST case (all headers are checked before writing)
    if klass == "missing":
        return Cell(["lungmask", "-i", str(tmp / "nope"), "-o", str(out)], r"nope: no such file or folder")
    if klass in ("empty", "corrupt", "truncated"):
        spoil(bad, klass)
        return Cell(argv, {"empty": "empty file", "corrupt": "(not a gzip|corrupt)", "truncated": "truncated"}[klass])
    if klass == "nan":
        arr = chest_ct().astype(np.float32)  # voxel-level problems are found when a case is read: the first
        arr[3, 3, 3] = np.nan
        write_image(arr, CHEST_G, inp / "c0_0000.nii.gz")
        return Cell(argv, r"c0_0000\.nii\.gz: 1 NaN and 0 infinite voxel.*--nan-policy zero")
    if klass == "wrong_dim":
        write_image(chest_ct()[5], Geometry((7.0, 7.0), (0.0, 0.0)), bad)
        return Cell(argv, r"c1_0000\.nii\.gz: a 2D image of size \(48, 48\); expected 3D")
    if klass == "wrong_geometry":
        write_image(chest_ct(), Geometry((0.01, 0.01, 10.0), (0.0, 0.0, 0.0)), bad)
        return Cell(argv, r"c1_0000\.nii\.gz: implausible voxel spacing")
    if klass == "bad_option":
        return Cell(argv + ["--lungmask-weights", str(tmp / "w.pth")], r"w\.pth: lungmask weights file not found")
    if klass == "output_is_file":
        return Cell(argv[:4] + [str(file_at(tmp / "masks"))] + argv[5:], r"masks: output folder \(-o\) is an existing file")
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.imageio as io
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv,
                    patches=[interrupt_on_call(io, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--nan-policy", "zero"], r"written with other settings \(nan_policy: \"refuse\" -> \"zero\"\)")
    return None


def _pp_inputs(tmp: Path) -> tuple[Path, Path]:
    pred, lung = tmp / "pred", tmp / "lung"
    pred.mkdir()
    lung.mkdir()
    for k in range(2):
        lab = np.zeros((14, 48, 48), np.uint8)
        lab[5:8, 20:25, 10:14] = 1
        write_image(lab, CHEST_G, pred / f"c{k}.nii.gz")
        lm = np.zeros_like(lab)
        lm[2:12, 10:38, 5:20], lm[2:12, 10:38, 28:43] = 1, 2
        write_image(lm, CHEST_G, lung / f"c{k}.nii.gz")
    return pred, lung


def _cmd_postprocess(tmp: Path, mp, klass: str) -> Cell | None:
    pred, lung = _pp_inputs(tmp)
    out = tmp / "out"
    argv = ["postprocess", "lung", "-i", str(pred), "-l", str(lung), "-o", str(out)]
    if klass == "missing":
        (lung / "c1.nii.gz").unlink()
        return Cell(argv, r"lung mask missing for case\(s\) c1")
    if klass in ("empty", "corrupt", "truncated"):
        spoil(lung / "c1.nii.gz", klass)
        return Cell(argv, {"empty": "empty file", "corrupt": "(not a gzip|corrupt)", "truncated": "truncated"}[klass])
    if klass == "nan":
        arr = np.zeros((14, 48, 48), np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, CHEST_G, pred / "c0.nii.gz")
        return Cell(argv, r"pred/c0\.nii\.gz: 1 NaN")
    if klass == "wrong_dim":
        write_image(np.zeros((48, 48), np.uint8), Geometry((7.0, 7.0), (0.0, 0.0)), pred / "c1.nii.gz")
        return Cell(argv, r"c1\.nii\.gz: a 2D image .*expected 3D")
    if klass == "wrong_geometry":  # lung mask placed far away: no overlap with the prediction's grid
        write_image(read_image(lung / "c0.nii.gz")[0], Geometry((7.0, 7.0, 10.0), (5000.0, 0.0, 0.0)),
                    lung / "c0.nii.gz")
        return Cell(argv, r"case c0: lung mask does not overlap the prediction's grid")
    if klass == "bad_option":  # a float label map (probabilities) is not a segmentation
        write_image(np.full((14, 48, 48), 0.3, np.float32), CHEST_G, pred / "c0.nii.gz")
        return Cell(argv, r"pred/c0\.nii\.gz: \d+ non-integer voxel value")
    if klass == "output_is_file":
        return Cell(argv[:-1] + [str(file_at(tmp / "out"))], r"out: output folder \(-o\) is an existing file")
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.imageio as io
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv,
                    patches=[interrupt_on_call(io, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--top-k", "1"], r"written with other settings \(config\.top_k: null -> 1\)")
    return None


def _cmd_roi_dataset(tmp: Path, mp, klass: str) -> Cell | None:
    src = raw_dataset(tmp / "raw")
    argv = ["roi-dataset", "-d", "901", "-t", "902", "--margin", "2"]
    if klass == "missing":
        (src / "labelsTr" / "c1.nii.gz").unlink()
        return Cell(argv, r"labelsTr: no mask for case\(s\) c1")
    if klass in ("empty", "corrupt", "truncated"):
        spoil(src / "imagesTr" / "c1_0000.nii.gz", klass)
        return Cell(argv, {"empty": "c1_0000.nii.gz: empty file", "corrupt": "c1_0000.nii.gz: (not a gzip|corrupt)",
                           "truncated": "c1_0000.nii.gz: truncated"}[klass])
    if klass == "nan":
        write_nan_image(src / "imagesTr" / "c1_0000.nii.gz")
        return Cell(argv, r"c1_0000\.nii\.gz: 1 NaN and 1 infinite voxel")
    if klass == "wrong_dim":
        write_image(label_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), src / "labelsTr" / "c1.nii.gz")
        return Cell(argv, r"labelsTr/c1\.nii\.gz: a 2D image .*expected 3D")
    if klass == "wrong_geometry":
        write_image(ct_image(), Geometry((0.8, 0.9, 3.0), G.origin), src / "imagesTr" / "c1_0000.nii.gz")
        return Cell(argv, r"c1_0000\.nii\.gz: grid .* does not match the label c1\.nii\.gz")
    if klass == "malformed_json":
        (src / "dataset.json").write_text('{"channel_names": {"0": "CT"}}')
        return Cell(argv, r"dataset\.json: dataset\.json lacks required key\(s\) 'file_ending'")
    if klass == "bad_option":
        return Cell(argv[:-1] + ["-3"], r"--margin must be >= 0")
    if klass == "output_is_file":  # the final dataset path is taken by a file: the swap fails, nothing is left
        file_at(tmp / "raw" / "Dataset902_BadROI2")
        return Cell(argv, r"Dataset902_BadROI2: is a file, expected a folder")
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.postprocessing.roi_dataset as rd
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(rd, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:-1] + ["4"], r"dataset ID 902 already exists.*--overwrite")
    return None


def _cmd_synth(tmp: Path, mp, klass: str) -> Cell | None:
    argv = ["synth", "chest", "-d", "903", "-n", "2", "--size", "16", "24", "24", "--no-progress",
            "--raw", str(tmp / "raw")]
    if klass == "bad_option":
        return Cell(argv[:6] + ["--size", "4", "24", "24"] + argv[10:], r"size must be three integers")
    if klass == "output_is_file":
        return Cell(argv[:-1] + [str(file_at(tmp / "raw"))], r"nnUNet_raw exists but is not a folder")
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.synthetic.dataset as ds
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(ds, "write_image", 2)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:5] + ["3"] + argv[6:], r"dataset ID 903 already exists.*--overwrite")
    return None


def _fake_fingerprint(exc):
    """nnU-Net's fingerprint step made to write into nnUNet_preprocessed and then fail with ``exc``."""
    def fake(dataset_id, *a, **k):
        folder = Path(os.environ["nnUNet_preprocessed"]) / "Dataset901_Bad"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dataset_fingerprint.json").write_text("{}")
        raise exc
    return fake


def _cmd_plan(tmp: Path, mp, klass: str) -> Cell | None:
    src = raw_dataset(tmp / "raw")
    argv = ["plan", "-d", "901", "-c", "3d_fullres", "-np", "1"]
    if klass == "missing":
        (src / "labelsTr" / "c1.nii.gz").unlink()
        return Cell(argv, r"no label for case\(s\) c1")
    if klass in ("empty", "corrupt", "truncated"):
        spoil(src / "imagesTr" / "c1_0000.nii.gz", klass)
        return Cell(argv, {"empty": "c1_0000.nii.gz: empty file", "corrupt": "c1_0000.nii.gz: (not a gzip|corrupt)",
                           "truncated": "c1_0000.nii.gz: truncated"}[klass])
    if klass == "nan":
        write_nan_image(src / "imagesTr" / "c1_0000.nii.gz")
        return Cell(argv + ["--verify_dataset_integrity"], r"c1_0000\.nii\.gz: 1 NaN and 1 infinite")
    if klass == "wrong_dim":
        write_image(ct_image()[0], Geometry((0.8, 0.9), (0.0, 0.0)), src / "imagesTr" / "c1_0000.nii.gz")
        return Cell(argv, r"c1_0000\.nii\.gz: grid .* does not match its label")
    if klass == "wrong_geometry":
        write_image(label_map(), Geometry((0.8, 0.9, 3.0), G.origin), src / "labelsTr" / "c1.nii.gz")
        return Cell(argv, r"c1_0000\.nii\.gz: grid .* does not match its label")
    if klass == "malformed_json":
        (src / "dataset.json").write_text('{"labels": {"background": 0}, "file_ending": ".nii.gz",\n}')
        return Cell(argv, r"dataset\.json: malformed dataset\.json \(line 2, column 1")
    if klass == "bad_option":
        return Cell(argv[:4] + ["5d"] + argv[5:], r"-c 5d: unknown configuration")
    if klass == "output_is_file":
        file_at(tmp / "pre" / "Dataset901_Bad")
        return Cell(argv, r"Dataset901_Bad: preprocessed dataset folder is an existing file")
    import nnunetv2.experiment_planning.plan_and_preprocess_api as api
    if klass == "unwritable_output":
        return Cell(argv, r"Dataset901_Bad: not writable",
                    patches=[(api, "extract_fingerprint_dataset", _fake_fingerprint(
                        PermissionError(errno.EACCES, "Permission denied", str(tmp / "pre" / "Dataset901_Bad"))))])
    if klass == "interrupted":
        return Cell(argv, "interrupted", code=130,
                    patches=[(api, "extract_fingerprint_dataset", _fake_fingerprint(KeyboardInterrupt()))])
    return None


def _cmd_convert_nsclc(tmp: Path, mp, klass: str) -> Cell | None:
    pytest.importorskip("pydicom")
    from test_convert_nsclc import GTV, one_patient  # the DICOM writers of the converter's own tests

    tcia = tmp / "tcia"
    one_patient(tcia, "LUNG1-001")
    one_patient(tcia, "LUNG1-002", seed=2)
    argv = ["convert", "nsclc", "-i", str(tcia), "-d", "904", "--no-progress"]
    keep = r"raw/\.nnext-resume-Dataset904_NSCLCRadiomics/"  # LUNG1-001, finished before LUNG1-002 fails: resumable
    ct2 = sorted((tcia / "LUNG1-002" / "study" / "1.000000-CT-1234").glob("*.dcm"))
    rt2 = tcia / "LUNG1-002" / "study" / "1.000000-RTSTRUCT-5678" / "1-1.dcm"
    if klass == "missing":  # the patient's RTSTRUCT is missing
        rt2.unlink()
        return Cell(argv, r"patient LUNG1-002: no RTSTRUCT found", keep=keep)
    if klass == "empty":
        empty = tmp / "empty"
        empty.mkdir()
        return Cell(argv[:3] + [str(empty)] + argv[4:], r"empty: no DICOM files found")
    if klass == "corrupt":  # an RTSTRUCT whose contour data is garbage
        import pydicom
        ds = pydicom.dcmread(rt2)
        ds.ROIContourSequence[0].ContourSequence[0].ContourData = [1.0, 2.0]
        ds.save_as(rt2)
        return Cell(argv, r"patient LUNG1-002", keep=keep)
    if klass == "truncated":  # a CT slice cut short
        data = ct2[3].read_bytes()
        ct2[3].write_bytes(data[: len(data) // 2])
        return Cell(argv, r"LUNG1-002", keep=keep)
    if klass == "wrong_geometry":  # the contours lie below the CT
        import shutil
        shutil.rmtree(tcia / "LUNG1-002")
        from test_convert_nsclc import rect
        one_patient(tcia, "LUNG1-002", rois={"GTV-1": [(20, rect(1, 3, 1, 3))]}, seed=2)
        return Cell(argv, r"LUNG1-002.*outside the CT", keep=keep)
    if klass == "bad_option":
        return Cell(argv + ["--roi", "GTV-9"], r"LUNG1-001.*'GTV-9'")
    if klass == "output_is_file":
        file_at(tmp / "rawfile")
        mp.setenv("nnUNet_raw", str(tmp / "rawfile"))
        return Cell(argv, r"rawfile: nnUNet_raw folder is an existing file")
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.imageio as io

        def check():  # the finished case waits in the hidden resume folder; no visible dataset
            assert not list((tmp / "raw").glob("Dataset904_*"))
            assert (tmp / "raw" / ".nnext-resume-Dataset904_NSCLCRadiomics" / "labelsTr" / "LUNG1-001.nii.gz").is_file()
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv, check=check,
                    patches=[interrupt_on_call(io, "write_image", 2)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--roi", "GTV-1", "GTV1"], r"written with other settings \(roi_names: ")
    return None


def _cmd_demo(tmp: Path, mp, klass: str) -> Cell | None:
    root = tmp / "demo"
    argv = ["demo", "-o", str(root)]
    if klass == "bad_option":
        return Cell(argv + ["--epochs", "0"], r"argument --epochs: '0' must be >= 1")
    if klass == "output_is_file":
        return Cell(["demo", "-o", str(file_at(tmp / "demo"))], r"demo working folder \(-o\) is an existing file")
    if klass == "unwritable_output":
        return Cell(["demo", "-o", str(file_at(tmp / "f.txt") / "demo")], r"f\.txt is a file")
    if klass == "interrupted":  # Ctrl-C during the synthesis: no dataset, nothing recorded
        import nnunet_ext.synthetic.dataset as ds
        def check():
            assert not list((root / "nnUNet_raw").glob("Dataset990_*")) and not list(root.glob(".nnext_demo_*"))
        return Cell(argv + ["-n", "5", "--n-test", "1"], "interrupted", code=130,
                    patches=[interrupt_on_call(ds, "write_image", 3)], check=check)
    if klass == "other_settings":  # a recorded 8-case dataset is not reused for -n 6: it is redone (and said so)
        from nnunet_ext import demo
        from nnunet_ext.integrity import record_settings
        import nnunet_ext.synthetic.dataset as ds

        (root / "nnUNet_raw" / "Dataset990_NnextDemoChest").mkdir(parents=True)
        record_settings(root, {"n": 8, "n_test": 3, "seed": 0}, filename=demo.STEP_RECORD.format("synth"))
        return Cell(argv + ["-n", "6"], "interrupted", code=130, patches=[interrupt_on_call(ds, "write_image", 0)])
    return None


COMMANDS: dict[str, Callable] = {
    "evaluate": _cmd_evaluate, "compare": _cmd_compare, "lungmask": _cmd_lungmask, "postprocess": _cmd_postprocess,
    "roi-dataset": _cmd_roi_dataset, "synth": _cmd_synth, "plan": _cmd_plan, "convert": _cmd_convert_nsclc,
    "demo": _cmd_demo,
}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE = {
    ("evaluate", "other_settings"): "the output is one summary file, recomputed from its inputs on every run",
    ("compare", "nan"): "JSON null is the documented NaN of a summary", ("compare", "wrong_dim"): "no images",
    ("compare", "wrong_geometry"): "no images", ("compare", "interrupted"): "one short step, writes one file",
    ("compare", "other_settings"): "the output is one file, recomputed on every run",
    ("lungmask", "malformed_json"): "reads no JSON", ("postprocess", "malformed_json"): "reads no JSON",
    ("synth", "missing"): "no inputs", ("synth", "empty"): "no inputs", ("synth", "corrupt"): "no inputs",
    ("synth", "truncated"): "no inputs", ("synth", "nan"): "no inputs", ("synth", "wrong_dim"): "no inputs",
    ("synth", "wrong_geometry"): "no inputs", ("synth", "malformed_json"): "no inputs",
    ("plan", "other_settings"): "re-planning rewrites the plans, as nnUNetv2_plan_and_preprocess does",
    ("convert", "nan"): "DICOM pixel data are integers", ("convert", "wrong_dim"): "one-slice series: see wrong_geometry",
    ("convert", "malformed_json"): "reads no JSON",
    ("demo", "missing"): "no inputs", ("demo", "empty"): "no inputs", ("demo", "corrupt"): "no inputs",
    ("demo", "truncated"): "no inputs", ("demo", "nan"): "no inputs", ("demo", "wrong_dim"): "no inputs",
    ("demo", "wrong_geometry"): "no inputs", ("demo", "malformed_json"): "no inputs",
}
CELLS = [(c, k) for c in COMMANDS for k in CLASSES if (c, k) not in NOT_APPLICABLE]


def _tree(root: Path) -> set[str]:
    """Files, and dataset folders (a visible ``Dataset*`` folder is an output even when empty)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.name.startswith("Dataset")}


def _one_error_line(err: str, cmd: str, match: str, code: int) -> None:
    assert "Traceback" not in err, err
    tag = "interrupted" if code == 130 else ": error:"
    assert err.count(tag) == 1, err
    line = [ln for ln in re.split(r"[\r\n]", err) if tag in ln][0]
    line = line[line.index(f"nnext {cmd}"):]
    assert re.search(match, line), (match, line)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "res")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.delenv("NNEXT_DEBUG", raising=False)
    return tmp_path


@pytest.mark.parametrize("command,klass", CELLS, ids=[f"{c}-{k}" for c, k in CELLS])
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys):
    cell = COMMANDS[command](workspace, monkeypatch, klass)
    assert cell is not None, f"cell {command} x {klass} is neither built nor listed in NOT_APPLICABLE"
    before = _tree(workspace)
    capsys.readouterr()
    with monkeypatch.context() as m:
        for target, name, value in cell.patches:
            m.setattr(target, name, value)
        try:
            code = main(cell.argv)
        except SystemExit as e:  # argparse's own range checks: usage + one error line, exit status 2
            code = e.code
    err = capsys.readouterr().err
    assert code == cell.code, err
    _one_error_line(err, cell.argv[0], cell.match, cell.code)
    new = _tree(workspace) - before
    assert not any(".tmp-" in p for p in new), new     # never a half-written file
    if cell.resumable or cell.keep:                      # only finished, complete outputs stay
        assert cell.resumable or all(re.match(cell.keep, p) for p in new), sorted(new)
        for p in new:
            if p.endswith(".nii.gz"):
                read_image(workspace / p)
    else:
        assert not new, f"left behind: {sorted(new)}"
    if cell.check is not None:
        cell.check()
    if cell.rerun is not None:                           # an interrupted run resumes / can be redone
        assert main(cell.rerun) == 0, capsys.readouterr().err


def test_demo_reuses_a_step_only_with_matching_settings(workspace, monkeypatch, capsys):
    """The 8-case dataset is redone for -n 6 (and said so); with matching settings the step is reused."""
    from nnunet_ext import demo
    from nnunet_ext.integrity import record_settings
    import nnunet_ext.planners.run as run
    import nnunet_ext.synthetic.dataset as ds

    root = workspace / "demo"
    (root / "nnUNet_raw" / "Dataset990_NnextDemoChest").mkdir(parents=True)
    record_settings(root, {"n": 8, "n_test": 3, "seed": 0}, filename=demo.STEP_RECORD.format("synth"))
    monkeypatch.setattr(ds, "write_image", interrupt_on_call(ds, "write_image", 0)[2])
    assert main(["demo", "-o", str(root), "-n", "6"]) == 130
    assert "redoing synth (settings changed: n)" in capsys.readouterr().out
    record_settings(root, {"n": 6, "n_test": 3, "seed": 0}, filename=demo.STEP_RECORD.format("synth"))
    monkeypatch.setattr(run, "plan_and_preprocess", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["demo", "-o", str(root), "-n", "6"]) == 130
    out = capsys.readouterr().out
    assert "reusing" in out and "redoing synth" not in out and "redoing plan (no settings record)" not in out


def test_unexpected_error_one_line_traceback_with_debug(workspace, monkeypatch, capsys):
    import nnunet_ext.evaluation.compare_cli as cc

    a = workspace / "a.json"
    a.write_text(json.dumps(_summary({"x": 0.5, "y": 0.6})))
    monkeypatch.setattr(cc, "compare_summaries", lambda *a, **k: 1 / 0)
    assert main(["compare", "-a", str(a), "-b", str(a)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error: ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["compare", "-a", str(a), "-b", str(a), "--debug"])
    monkeypatch.setenv("NNEXT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["compare", "-a", str(a), "-b", str(a)])


def test_matrix_counts():
    """The counts the README reports (commands x classes, applicable cells)."""
    assert len(COMMANDS) == 9 and len(CLASSES) == 13
    assert len(CELLS) + len(NOT_APPLICABLE) == len(COMMANDS) * len(CLASSES)
