"""Converters drop nothing silently (issue 19, item 3): the closing "N converted, M skipped" lines, labels on
another grid (refused; --resample-labels; refused when a class vanishes), DICOM slices with another PixelSpacing
or orientation, mixed BraTS years, case folders named differently from their files, symbolic links.
Small synthetic releases are built with the writers of tests/test_convert_{hecktor,brats,nsclc}.py."""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.cli.main import main
from nnunet_ext.errors import InputError


@pytest.fixture
def raw(tmp_path, monkeypatch):
    folder = tmp_path / "nnUNet_raw"
    monkeypatch.setenv("nnUNet_raw", str(folder))
    return folder


# ------------------------------------------------------------------------------------------------ outcome lines

def test_report_lines(capsys):
    from nnunet_ext.conversion.outcome import report

    assert report("/raw/D", 3, {"b": "no PET\n(x)", "a": "other year"}, "2 training") == {"converted": 3, "skipped": 2}
    assert capsys.readouterr().out.splitlines() == ["/raw/D: 3 converted, 2 skipped; 2 training",
                                                    "skipped a: other year", "skipped b: no PET (x)"]


def test_lidc_skipped_cases_lists_nodules_and_scans():
    from nnunet_ext.conversion.lidc import skipped_cases

    log = {
        "LIDC-IDRI-0001": {
            "1.2": {"nodules": [{"nodule": 0, "n_raters": 4}, {"nodule": 1, "skipped": "1 rater(s) < 2"}]}
        },
        "LIDC-IDRI-0002": {"1.3": {"skipped": "no DICOM files of series 1.3"}},
    }
    assert skipped_cases(log) == {"LIDC-IDRI-0001_n01": "1 rater(s) < 2",
                                  "LIDC-IDRI-0002 series 1.3": "no DICOM files of series 1.3"}


# ----------------------------------------------------------------------------------------------------- hecktor

def _fine_label(ct, gtvn_odd: bool):
    """A label on a grid twice as fine as the CT (same origin and direction): label voxel 2k sits on CT voxel k.
    GTVp: label block z 4-7, y 6-11, x 6-13 (192 voxels) -> CT voxels z 2-3, y 3-5, x 3-6 (24). GTVn: 12 voxels at
    odd indices only (never a CT voxel centre: lost by nearest neighbour) or a 2x2x3 block at even ones (kept)."""
    lab = np.zeros((16, 20, 24), np.uint8)
    lab[4:8, 6:12, 6:14] = 1
    if gtvn_odd:
        for z in (11, 13):
            for y in (13, 15, 17):
                for x in (17, 19):
                    lab[z, y, x] = 2
    else:
        lab[10:12, 14:16, 16:19] = 2   # 12 voxels, CT voxels z 5, y 7, x 8-9: 2 survive
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing(tuple(s / 2 for s in ct.GetSpacing()))
    img.SetOrigin(ct.GetOrigin())
    img.SetDirection(ct.GetDirection())
    return img


def test_hecktor_label_grid_refused_resampled_or_refused_when_a_class_vanishes(tmp_path, raw, capsys):
    from test_convert_hecktor import _release

    from nnunet_ext.conversion.hecktor import convert_hecktor

    src = _release(tmp_path / "hecktor", {"CHUM-001": "CHUM-001"})
    ct = sitk.ReadImage(str(src / "imagesTr" / "CHUM-001__CT.nii.gz"))
    label = src / "labelsTr" / "CHUM-001.nii.gz"
    sitk.WriteImage(_fine_label(ct, gtvn_odd=True), str(label))
    with pytest.raises(InputError, match=r"CHUM-001\.nii\.gz: label is not on the grid of its image "
                                         r"CHUM-001__CT\.nii\.gz "
                                         r"\(size \(24, 20, 16\) vs \(12, 10, 8\); "
                                         r"spacing \(1, 1, 1\.5\) vs \(2, 2, 3\)\); "
                                         r"pass --resample-labels"):
        convert_hecktor(src, 551, progress=False)
    with pytest.raises(InputError, match=r"loses every voxel of class 2 \(GTVn\) \(12 -> 0 voxels\)"):
        convert_hecktor(src, 551, progress=False, resample_labels=True)
    assert not list(raw.glob("Dataset551_*"))
    assert main(["convert", "hecktor", "-i", str(src), "-d", "551", "--resample-labels", "--no-progress"]) == 2
    assert "loses every voxel of class 2 (GTVn)" in capsys.readouterr().err

    sitk.WriteImage(_fine_label(ct, gtvn_odd=False), str(label))
    out = convert_hecktor(src, 551, progress=False, resample_labels=True)
    stdout = capsys.readouterr().out
    assert "case CHUM-001: label resampled onto the image grid (nearest neighbour; size" in stdout
    assert f"{out}: 1 converted, 0 skipped" in stdout
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "CHUM-001.nii.gz")))
    assert (got == 1).sum() == 24 and (got == 2).sum() == 2
    assert np.argwhere(got == 1).min(0).tolist() == [2, 3, 3] and np.argwhere(got == 1).max(0).tolist() == [3, 5, 6]
    log = json.loads((out / "conversion_log.json").read_text())
    assert log["cases"]["CHUM-001"]["label_voxels_before_after"] == {"1": [192, 24], "2": [12, 2]}


def test_hecktor_lists_skipped_cases_and_unmatched_files(tmp_path, raw, capsys):
    from test_convert_hecktor import _release

    src = _release(tmp_path / "hecktor", {"CHUM-001": "CHUM-001", "MDA-002": "MDA-002"},
                   shifts={"MDA-002": (0.0, 0.0, 500.0)})
    shutil.copy(src / "labelsTr" / "CHUM-001.nii.gz", src / "labelsTr" / "HGJ-099.nii.gz")   # a label without CT
    assert main(["convert", "hecktor", "-i", str(src), "-d", "552", "--skip-invalid", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-3] == f"{raw / 'Dataset552_HECKTOR2022'}: 1 converted, 2 skipped; 1 training, 0 test cases"
    assert lines[-2].startswith("skipped HGJ-099: ") and "HGJ-099.nii.gz: no image CENTRE-ID__CT.nii.gz" in lines[-2]
    assert lines[-1].startswith("skipped MDA-002: ") and "do not overlap" in lines[-1]


def test_hecktor_follows_symlinked_folders(tmp_path, raw, capsys):
    from test_convert_hecktor import _release

    from nnunet_ext.conversion.hecktor import convert_hecktor

    real = _release(tmp_path / "real", {"CHUM-001": "CHUM-001"})
    src = tmp_path / "linked"
    src.mkdir()
    for sub in ("imagesTr", "labelsTr"):
        os.symlink(real / sub, src / sub)
    out = convert_hecktor(src, 554, progress=False)
    assert f"{out}: 1 converted, 0 skipped" in capsys.readouterr().out
    assert (out / "labelsTr" / "CHUM-001.nii.gz").is_file()


# ------------------------------------------------------------------------------------------------------- DICOM

def test_nsclc_follows_a_symlinked_patient_folder(tmp_path, raw, capsys):
    pytest.importorskip("pydicom")
    from test_convert_nsclc import one_patient

    tcia, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    one_patient(tcia, "LUNG1-001")
    one_patient(elsewhere, "LUNG1-002", seed=2)
    os.symlink(elsewhere / "LUNG1-002", tcia / "LUNG1-002")
    os.symlink(tcia, tcia / "LUNG1-001" / "loop")             # a link back up the tree: visited once
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "555", "--no-progress"]) == 0
    assert f"{raw / 'Dataset555_NSCLCRadiomics'}: 2 converted, 0 skipped" in capsys.readouterr().out


def _respoil(path, **tags):
    import pydicom

    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path)


@pytest.mark.parametrize("tag,value,shown", [
    ("PixelSpacing", [1.6, 1.8], r"PixelSpacing \(1\.6, 1\.8\) differs from the other slices' \(0\.8, 0\.9\)"),
    ("ImageOrientationPatient", [1, 0, 0, 0, 0.8, 0.6],
     r"ImageOrientationPatient \(1, 0, 0, 0, 0\.8, 0\.6\) differs from the other slices' \(1, 0, 0, 0, 1, 0\)"),
    ("Columns", 30, r"Columns 30 differs from the other slices' 32"),
])
def test_nsclc_refuses_a_slice_with_other_plane_geometry(tmp_path, raw, capsys, tag, value, shown):
    pytest.importorskip("pydicom")
    from test_convert_nsclc import one_patient

    tcia = tmp_path / "in"
    one_patient(tcia, "LUNG1-001")
    one_patient(tcia, "LUNG1-002", seed=2)
    slices = sorted((tcia / "LUNG1-002" / "study" / "1.000000-CT-1234").glob("*.dcm"))
    _respoil(slices[7], **{tag: value})
    argv = ["convert", "nsclc", "-i", str(tcia), "-d", "553", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(r"007\.dcm: " + shown + r" \(11 of 12 slices\) of CT series", err), err
    assert main(argv + ["--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert f"{raw / 'Dataset553_NSCLCRadiomics'}: 1 converted, 1 skipped" in out
    assert re.search(r"skipped LUNG1-002: .*007\.dcm: " + shown, out)


# ------------------------------------------------------------------------------------------------------- BraTS

def _brats(tmp_path, ids=(1, 2)):
    from test_convert_brats import make_release

    src = tmp_path / "brats"
    make_release(src, 2021, ids=ids)
    return src, src / "MICCAI_BraTS2021_TrainingData"


def _add_2023_case(tmp_path, into):
    from test_convert_brats import make_release

    make_release(tmp_path / "b23", 2023, ids=(3,))
    shutil.move(str(tmp_path / "b23" / "MICCAI_BraTS2023_TrainingData" / "BraTS-GLI-00003-000"), str(into))


def test_brats_mixed_years_refused_or_listed_as_skipped_with_year(tmp_path, raw, capsys):
    from nnunet_ext.conversion.brats import convert_brats

    src, cases = _brats(tmp_path)
    _add_2023_case(tmp_path, cases)
    with pytest.raises(InputError, match=r"cases of several BraTS years in one input \(2021: 2 case\(s\), e\.g\. "
                                         r".*BraTS2021_00001_\w+\.nii\.gz; 2023: 1 case\(s\), e\.g\. "
                                         r".*BraTS-GLI-00003-000-\w+\.nii\.gz\)"):
        convert_brats(src, 560, progress=False)
    capsys.readouterr()
    out = convert_brats(src, 560, year=2021, progress=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == f"{out}: 2 converted, 1 skipped; 2 training, 0 test cases"
    assert lines[-1].startswith("skipped BraTS-GLI-00003-000: BraTS 2023 case (") and \
        lines[-1].endswith("); --year 2021 converts BraTS 2021 cases only")
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["BraTS2021_00001.nii.gz", "BraTS2021_00002.nii.gz"]
    log = json.loads((out / "conversion_log.json").read_text())
    assert log["cases"]["BraTS-GLI-00003-000"]["status"] == "skipped"


def test_brats_case_folder_named_differently_and_symlinked_folders(tmp_path, raw, capsys):
    from nnunet_ext.conversion.brats import convert_brats

    src, cases = _brats(tmp_path, ids=(1, 2, 3))
    (cases / "BraTS2021_00002").rename(cases / "patientB")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(cases / "BraTS2021_00003"), str(elsewhere / "BraTS2021_00003"))
    os.symlink(elsewhere / "BraTS2021_00003", cases / "BraTS2021_00003")
    os.symlink(src, cases / "loop")                         # a link back up the tree is visited once
    out = convert_brats(src, 561, progress=False)
    captured = capsys.readouterr()
    assert "warning: case folder " in captured.err and "patientB is named differently from its files " \
        "(BraTS2021_00002_*): converted as case BraTS2021_00002" in captured.err
    assert f"{out}: 3 converted, 0 skipped" in captured.out
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [
        "BraTS2021_00001.nii.gz", "BraTS2021_00002.nii.gz", "BraTS2021_00003.nii.gz"]
    src_t1 = sitk.GetArrayFromImage(sitk.ReadImage(str(elsewhere / "BraTS2021_00003" / "BraTS2021_00003_t1.nii.gz")))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "imagesTr" / "BraTS2021_00003_0000.nii.gz"))),
                          src_t1)


def test_brats_label_on_another_grid(tmp_path, raw, capsys):
    from test_convert_brats import DIRECTION

    from nnunet_ext.conversion.brats import convert_brats, label_map

    src, cases = _brats(tmp_path, ids=(1,))
    seg_path = cases / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz"
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(seg_path)))
    fine = sitk.GetImageFromArray(seg.repeat(2, 0).repeat(2, 1).repeat(2, 2))  # voxel 2k of the fine grid = voxel k
    fine.SetSpacing((0.5, 0.5, 0.5))
    fine.SetOrigin((-10.0, 20.0, 5.5))
    fine.SetDirection(DIRECTION)
    sitk.WriteImage(fine, str(seg_path))
    with pytest.raises(InputError, match=r"BraTS2021_00001_seg\.nii\.gz: label is not on the grid of its image "
                                         r"BraTS2021_00001_t1\.nii\.gz .*--resample-labels"):
        convert_brats(src, 562, progress=False)
    out = convert_brats(src, 562, progress=False, resample_labels=True)
    mapping = label_map(2021)
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "BraTS2021_00001.nii.gz")))
    assert np.array_equal(got, np.vectorize(mapping.get)(seg))   # exactly the coarse label, mapped
    assert "label resampled onto the image grid" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------ raters

def test_raters_closing_line_and_misnamed_rater_file(tmp_path, raw, capsys):
    from nnunet_ext.io.imageio import Geometry, write_image

    g = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    src = tmp_path / "src"
    (src / "imagesTr").mkdir(parents=True)
    (src / "labelsTr_raters").mkdir()
    for k in range(2):
        write_image(np.zeros((4, 6, 6), np.float32), g, src / "imagesTr" / f"c{k}_0000.nii.gz")
        for r in range(2):
            m = np.zeros((4, 6, 6), np.uint8)
            m[1:3, 2:4, r:r + 3] = 1
            write_image(m, g, src / "labelsTr_raters" / f"c{k}_rater{r}.nii.gz")
    argv = ["convert", "raters", "-i", str(src), "-d", "563", "--no-progress"]
    assert main(argv) == 0
    assert f"{raw / 'Dataset563_Raters'}: 2 converted, 0 skipped" in capsys.readouterr().out
    shutil.copy(src / "labelsTr_raters" / "c1_rater1.nii.gz", src / "labelsTr_raters" / "c1_rater2.nii")
    assert main(argv[:5] + ["564"] + argv[6:]) == 2
    assert "c1_rater2.nii: not a rater mask name CASE_rater{k}.nii.gz" in capsys.readouterr().err
