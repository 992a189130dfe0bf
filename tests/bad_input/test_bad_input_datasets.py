"""Bad-input matrix (issue 13), dataset builders: roi-dataset, synth, plan, convert nsclc, demo (chest).
Harness and conventions: ``tests/bad_input_harness.py``."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from bad_input_harness import (
    DISK_FULL,
    NAN_FLOAT,
    NAN_INT,
    Cell,
    G,
    cell_ids,
    ct_image,
    disk_full,
    file_at,
    interrupt_on_call,
    label_map,
    matrix_cells,
    raw_dataset,
    run_cell,
    spoil,
    unwritable,
    workspace,  # noqa: F401 (a fixture)
    write_nan_image,
)

from nnunet_ext.cli.main import main
from nnunet_ext.demos.steps import STEP_RECORD
from nnunet_ext.io.imageio import Geometry, write_image


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
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.io.crop_dataset as crops  # where roi-dataset's crops are written
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(crops, "write_image", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:-1] + ["4"], r"dataset ID 902 already exists.*--overwrite")
    if klass == "unknown_label":  # a 3 the dataset does not declare was copied into the crops
        lab = label_map()
        lab[3, 5, 5] = 3
        write_image(lab, G, src / "labelsTr" / "c1.nii.gz")
        return Cell(argv, r"labelsTr/c1\.nii\.gz: label value\(s\) \[3\] \(1 voxel\(s\)\) not declared in "
                          r".*dataset\.json \(labels \[0, 1\]\)")
    if klass == "nan_option":
        return Cell(argv[:-1] + ["nan"], r"argument --margin: " + NAN_INT)
    return None


def _cmd_synth(tmp: Path, mp, klass: str) -> Cell | None:
    argv = ["synth", "chest", "-d", "903", "-n", "2", "--size", "16", "24", "24", "--no-progress",
            "--raw", str(tmp / "raw")]
    if klass == "bad_option":
        return Cell(argv[:6] + ["--size", "4", "24", "24"] + argv[10:], r"size must be three integers")
    if klass == "output_is_file":
        return Cell(argv[:-1] + [str(file_at(tmp / "raw"))], r"nnUNet_raw exists but is not a folder")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.synthetic.dataset as ds
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(ds, "write_image", 2)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:5] + ["3"] + argv[6:], r"dataset ID 903 already exists.*--overwrite")
    if klass == "nan_option":
        return Cell(argv[:5] + ["nan"] + argv[6:], r"argument -n/--num-train: " + NAN_INT)
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
    if klass == "disk_full":  # nnU-Net's own writer hits a full disk (ENOSPC)
        return Cell(argv, DISK_FULL, patches=[(api, "extract_fingerprint_dataset", _fake_fingerprint(
            OSError(errno.ENOSPC, "No space left on device",
                    str(tmp / "pre" / "Dataset901_Bad" / "dataset_fingerprint.json"))))])
    if klass == "unwritable_output":
        return Cell(argv, r"Dataset901_Bad: not writable",
                    patches=[(api, "extract_fingerprint_dataset", _fake_fingerprint(
                        PermissionError(errno.EACCES, "Permission denied", str(tmp / "pre" / "Dataset901_Bad"))))])
    if klass == "interrupted":
        return Cell(argv, "interrupted", code=130,
                    patches=[(api, "extract_fingerprint_dataset", _fake_fingerprint(KeyboardInterrupt()))])
    if klass == "unknown_label":  # nnU-Net's fingerprint would take an undeclared 5 as foreground
        write_image(label_map() * 5, G, src / "labelsTr" / "c1.nii.gz")
        return Cell(argv, r"labelsTr/c1\.nii\.gz: label value\(s\) \[5\] \(75 voxel\(s\)\) not declared in "
                          r".*dataset\.json")
    if klass == "nan_option":
        return Cell(argv + ["--dropout-p", "nan"], r"argument --dropout-p: " + NAN_FLOAT)
    return None


def _cmd_convert_nsclc(tmp: Path, mp, klass: str) -> Cell | None:
    pytest.importorskip("pydicom")
    from test_convert_nsclc import one_patient  # the DICOM writers of the converter's own tests

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
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":
        import nnunet_ext.io.imageio as io

        def check():  # the finished case waits in the hidden resume folder; no visible dataset
            assert not list((tmp / "raw").glob("Dataset904_*"))
            assert (tmp / "raw" / ".nnext-resume-Dataset904_NSCLCRadiomics" / "labelsTr" / "LUNG1-001.nii.gz").is_file()
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv, check=check,
                    patches=[interrupt_on_call(io, "write_image", 2)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--roi", "GTV-1", "GTV1"], r"written with other settings \(roi_names: ")
    if klass == "nan_option":
        return Cell(argv[:5] + ["nan"] + argv[6:], r"argument -d/--dataset-id: " + NAN_INT)
    if klass == "dropped_case":  # a CT slice with twice the PixelSpacing of the others was accepted
        import pydicom
        ds = pydicom.dcmread(ct2[5])
        ds.PixelSpacing = [2 * float(v) for v in ds.PixelSpacing]
        ds.save_as(ct2[5])
        return Cell(argv, r"005\.dcm: PixelSpacing \(1\.6, 1\.8\) differs from the other slices' \(0\.8, 0\.9\) "
                          r"\(11 of 12 slices\)", keep=keep)
    return None


def _cmd_demo(tmp: Path, mp, klass: str) -> Cell | None:
    root = tmp / "demo"
    argv = ["demo", "-o", str(root)]
    if klass == "bad_option":
        return Cell(argv + ["--epochs", "0"], r"argument --epochs: '0' must be >= 1")
    if klass == "nan_option":
        return Cell(argv + ["--epochs", "nan"], r"argument --epochs: " + NAN_INT)
    if klass == "output_is_file":
        return Cell(["demo", "-o", str(file_at(tmp / "demo"))], r"demo working folder \(-o\) is an existing file")
    if klass == "disk_full":  # the first write of the first step (the synthesis)
        return Cell(argv + ["-n", "5", "--n-test", "1"], DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(["demo", "-o", str(file_at(tmp / "f.txt") / "demo")], r"f\.txt is a file")
    if klass == "interrupted":  # Ctrl-C during the synthesis: no dataset, nothing recorded
        import nnunet_ext.synthetic.dataset as ds
        def check():
            assert not list((root / "nnUNet_raw").glob("Dataset990_*")) and not list(root.glob(".nnext_demo_*"))
        return Cell(argv + ["-n", "5", "--n-test", "1"], "interrupted", code=130,
                    patches=[interrupt_on_call(ds, "write_image", 3)], check=check)
    if klass == "other_settings":  # a recorded 8-case dataset is not reused for -n 6: it is redone (and said so)
        import nnunet_ext.synthetic.dataset as ds
        from nnunet_ext.io.settings_record import record_settings

        (root / "nnUNet_raw" / "Dataset990_NnextDemoChest").mkdir(parents=True)
        record_settings(root, {"n": 8, "n_test": 3, "seed": 0}, filename=STEP_RECORD.format("synth"))
        return Cell(argv + ["-n", "6"], "interrupted", code=130, patches=[interrupt_on_call(ds, "write_image", 0)])
    return None


COMMANDS = {"roi-dataset": _cmd_roi_dataset, "synth": _cmd_synth, "plan": _cmd_plan,
            "convert nsclc": _cmd_convert_nsclc, "demo": _cmd_demo}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE = {
    **{("synth", k): "no inputs" for k in ("missing", "empty", "corrupt", "truncated", "nan", "wrong_dim",
                                            "wrong_geometry", "malformed_json")},
    ("plan", "other_settings"): "re-planning rewrites the plans, as nnUNetv2_plan_and_preprocess does",
    ("convert nsclc", "nan"): "DICOM pixel data are integers",
    ("convert nsclc", "wrong_dim"): "one-slice series: see wrong_geometry",
    ("convert nsclc", "malformed_json"): "reads no JSON",
    **{("demo", k): "no inputs" for k in ("missing", "empty", "corrupt", "truncated", "nan", "wrong_dim",
                                           "wrong_geometry", "malformed_json", "unknown_label")},
    ("synth", "unknown_label"): "no inputs",
    ("convert nsclc", "unknown_label"): "the label is rasterised from one RTSTRUCT ROI: 0 / 1 by construction",
    **{(c, "dropped_case"): "not a converter: every case is read or the run is refused (see 'missing')"
       for c in ("roi-dataset", "synth", "plan", "demo")},
}
CELLS = matrix_cells(COMMANDS, NOT_APPLICABLE)


@pytest.mark.parametrize("command,klass", CELLS, ids=cell_ids(CELLS))
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys):
    run_cell(COMMANDS[command](workspace, monkeypatch, klass), f"{command} x {klass}", workspace, monkeypatch, capsys)


def test_demo_reuses_a_step_only_with_matching_settings(workspace, monkeypatch, capsys):
    """The 8-case dataset is redone for -n 6 (and said so); with matching settings the step is reused."""
    import nnunet_ext.planners.run as run
    import nnunet_ext.synthetic.dataset as ds
    from nnunet_ext.io.settings_record import record_settings

    root = workspace / "demo"
    (root / "nnUNet_raw" / "Dataset990_NnextDemoChest").mkdir(parents=True)
    record_settings(root, {"n": 8, "n_test": 3, "seed": 0}, filename=STEP_RECORD.format("synth"))
    monkeypatch.setattr(ds, "write_image", interrupt_on_call(ds, "write_image", 0)[2])
    assert main(["demo", "-o", str(root), "-n", "6"]) == 130
    assert "redoing synth (settings changed: n)" in capsys.readouterr().out
    record_settings(root, {"n": 6, "n_test": 3, "seed": 0}, filename=STEP_RECORD.format("synth"))
    monkeypatch.setattr(run, "plan_and_preprocess", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["demo", "-o", str(root), "-n", "6"]) == 130
    out = capsys.readouterr().out
    assert "reusing" in out and "redoing synth" not in out and "redoing plan (no settings record)" not in out


# ---------------------------------------------------------------- issue 19: a dataset name that is not one folder

@pytest.mark.parametrize("command", ["roi-dataset", "synth"])
def test_a_dataset_name_with_a_path_is_refused(command, workspace, monkeypatch, capsys):
    argv = COMMANDS[command](workspace, monkeypatch, "disk_full").argv  # the command's valid argv
    if command == "synth":
        argv = ["synth", "chest", "-d", "950", "-n", "2"]
    run_cell(Cell(argv + ["--name", "../../evil"], r"'\.\./\.\./evil'.*(may only contain letters, digits|a dataset "
                  r"name may only)"), f"{command} x name", workspace, monkeypatch, capsys)
