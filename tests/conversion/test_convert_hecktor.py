"""nnext convert hecktor on tiny fake releases whose CT and PET grids differ (spacing, origin, direction).

PET holds an affine function of the physical position, f(p) = 10 + 3 x + 2 (z - 100): linear interpolation
reproduces it exactly at CT voxel centres inside the hull of PET voxel centres, so the converted PET channel
must equal clip(f, 0, 50) there and 0 outside the PET field of view.
"""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.cli.main import main
from nnunet_ext.conversion.hecktor import convert_hecktor, find_cases
from nnunet_ext.errors import InputError

CT_DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90 degrees about z
PET_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # 180 degrees about z


def f(p):
    return 10 + 3 * p[0] + 2 * (p[2] - 100)


def _image(arr, spacing, origin, direction):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def _ct(seed):
    arr = np.random.default_rng(seed).integers(-3000, 5000, size=(8, 10, 12)).astype(np.int16)
    return _image(arr, (2.0, 2.0, 3.0), (10.0, -5.0, 100.0), CT_DIRECTION)


def _pet_for(ct, shift=(0.0, 0.0, 0.0)):
    """A coarser, rotated PET grid covering the CT in x and y and only its lower z part; voxels hold f."""
    size, spacing = (8, 8, 3), (4.0, 5.0, 6.0)
    origin = (14.0 + shift[0], 20.0 + shift[1], 98.0 + shift[2])  # x and y decrease with the index
    pet = _image(np.zeros(size[::-1], np.float32), spacing, origin, PET_DIRECTION)
    arr = np.zeros(size[::-1], np.float32)
    for idx in np.ndindex(*size):
        arr[idx[::-1]] = f(pet.TransformIndexToPhysicalPoint(idx))
    return _image(arr, spacing, origin, PET_DIRECTION)


def _release(root, cases, no_pet=(), shifts=None):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for n, (case, label_name) in enumerate(cases.items()):
        ct = _ct(n)
        sitk.WriteImage(ct, str(root / "imagesTr" / f"{case}__CT.nii.gz"))
        if case not in no_pet:
            pet = _pet_for(ct, (shifts or {}).get(case, (0, 0, 0)))
            sitk.WriteImage(pet, str(root / "imagesTr" / f"{case}__PT.nii.gz"))
        if label_name:
            lab = np.zeros((8, 10, 12), np.uint8)
            lab[2:4, 3:6, 3:7] = 1
            lab[5:7, 6:9, 1:3] = 2
            img = sitk.GetImageFromArray(lab)
            img.CopyInformation(ct)
            sitk.WriteImage(img, str(root / "labelsTr" / f"{label_name}.nii.gz"))
    return root


CASES = {"CHUM-001": "CHUM_001", "MDA-002": "MDA-002", "HGJ-003": None}


def test_convert_grids_windows_and_labels(tmp_path, nnunet_dirs):
    src = _release(tmp_path / "hecktor", CASES)
    assert {c: (e["label"].name if e["label"] else None) for c, e in find_cases(src).items()} == {
        "CHUM-001": "CHUM_001.nii.gz", "HGJ-003": None, "MDA-002": "MDA-002.nii.gz"}
    out = convert_hecktor(src, 531, progress=False)
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [
        "CHUM-001_0000.nii.gz", "CHUM-001_0001.nii.gz", "MDA-002_0000.nii.gz", "MDA-002_0001.nii.gz"]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["HGJ-003_0000.nii.gz", "HGJ-003_0001.nii.gz"]

    ct_src = sitk.ReadImage(str(src / "imagesTr" / "CHUM-001__CT.nii.gz"))
    ct = sitk.ReadImage(str(out / "imagesTr" / "CHUM-001_0000.nii.gz"))
    pet = sitk.ReadImage(str(out / "imagesTr" / "CHUM-001_0001.nii.gz"))
    assert ct.GetPixelID() == sitk.sitkInt16 and pet.GetPixelID() == sitk.sitkFloat32
    for img in (ct, pet):  # the CT's grid, untouched
        assert img.GetSize() == ct_src.GetSize() and img.GetSpacing() == ct_src.GetSpacing()
        assert np.allclose(img.GetOrigin(), ct_src.GetOrigin()) and np.allclose(img.GetDirection(), CT_DIRECTION)
    assert np.array_equal(sitk.GetArrayFromImage(ct), np.clip(sitk.GetArrayFromImage(ct_src), -1024, 3071))

    pet_src = sitk.ReadImage(str(src / "imagesTr" / "CHUM-001__PT.nii.gz"))
    got = sitk.GetArrayFromImage(pet)
    size = np.array(pet_src.GetSize())
    inside = outside = 0
    for idx in np.ndindex(*ct.GetSize()):
        p = ct.TransformIndexToPhysicalPoint(idx)
        c = np.array(pet_src.TransformPhysicalPointToContinuousIndex(p))
        if np.all(c >= 0) and np.all(c <= size - 1):
            assert got[idx[::-1]] == pytest.approx(np.clip(f(p), 0, 50), abs=1e-3)
            inside += 1
        elif np.any(c < -0.5) or np.any(c > size - 0.5):
            assert got[idx[::-1]] == 0
            outside += 1
    assert inside > 200 and outside > 200 and got.max() == 50 and got.min() == 0

    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "CHUM-001.nii.gz")))
    assert (lab == 1).sum() == 24 and (lab == 2).sum() == 12
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "GTVp": 1, "GTVn": 2} and meta["numTraining"] == 2
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import ZScoreNormalization
    from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import get_normalization_scheme
    assert all(get_normalization_scheme(n) is ZScoreNormalization for n in meta["channel_names"].values())
    log = json.loads((out / "conversion_log.json").read_text())
    assert 0 < log["cases"]["CHUM-001"]["pet_coverage"] < 1
    with pytest.raises(InputError, match="already exists"):
        convert_hecktor(src, 531, progress=False)
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    verify_dataset_integrity(str(out), num_processes=1)  # nnU-Net's own checks (raises on a problem)


def test_ct_only_and_normalization_choice(tmp_path, nnunet_dirs):
    src = _release(tmp_path / "hecktor", {"CHUM-001": "CHUM-001"}, no_pet=("CHUM-001",))
    with pytest.raises(InputError, match=r"CHUM-001: no PET .*--ct-only"):
        convert_hecktor(src, 532, progress=False)
    out = convert_hecktor(src, 532, ct_only=True, normalization="none", progress=False)
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(out / "imagesTr" / "CHUM-001_0001.nii.gz"))).any()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "noNorm", "1": "noNorm"} and meta["nnext_hecktor"]["ct_only"] is True


def test_refuses_pet_without_overlap_and_bad_labels(tmp_path, nnunet_dirs, capsys):
    src = _release(tmp_path / "hecktor", {"CHUM-001": "CHUM-001", "MDA-002": "MDA-002"},
                   shifts={"MDA-002": (0.0, 0.0, 500.0)})
    with pytest.raises(InputError, match=r"MDA-002__PT.nii.gz: PET and CT of case MDA-002 do not overlap"):
        convert_hecktor(src, 533, progress=False)
    assert not list(nnunet_dirs["nnUNet_raw"].glob("Dataset533_*")), "nothing half-written"
    assert main(["convert", "hecktor", "-i", str(src), "-d", "533", "--no-progress"]) == 2
    assert "do not overlap" in capsys.readouterr().err
    out = convert_hecktor(src, 533, skip_invalid=True, progress=False)
    log = json.loads((out / "conversion_log.json").read_text())
    assert log["cases"]["MDA-002"]["status"] == "skipped" and log["cases"]["CHUM-001"]["split"] == "train"

    bad = tmp_path / "bad"
    _release(bad, {"CHUM-001": "CHUM-001"})
    lab = sitk.ReadImage(str(bad / "labelsTr" / "CHUM-001.nii.gz"))
    arr = sitk.GetArrayFromImage(lab)
    arr[0, 0, 0] = 4
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(lab)
    sitk.WriteImage(img, str(bad / "labelsTr" / "CHUM-001.nii.gz"))
    with pytest.raises(InputError, match=r"label values \[4\]"):
        convert_hecktor(bad, 534, progress=False)
    os.remove(bad / "imagesTr" / "CHUM-001__CT.nii.gz")
    with pytest.raises(InputError, match="PET without a CT"):
        convert_hecktor(bad, 534, progress=False)
