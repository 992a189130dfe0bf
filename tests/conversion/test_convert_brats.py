"""nnext convert brats / brats-back on tiny fake release folders of each layout (2020, 2021, 2023)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

SHAPE = (5, 6, 7)  # z, y, x
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _img(arr, spacing=(1.0, 1.0, 1.0)):
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing(spacing)
    im.SetOrigin((-10.0, 20.0, 5.5))
    im.SetDirection(DIRECTION)
    return im


def _seg(rng, values):
    return rng.choice(np.array(values, np.uint8), size=SHAPE, p=[0.55, 0.15, 0.15, 0.15])


LAYOUTS = {
    2020: ("BraTS20_Training_{:03d}", "_", ("t1", "t1ce", "t2", "flair"), (0, 1, 2, 4), ".nii"),
    2021: ("BraTS2021_{:05d}", "_", ("t1", "t1ce", "t2", "flair"), (0, 1, 2, 4), ".nii.gz"),
    2023: ("BraTS-GLI-{:05d}-000", "-", ("t1n", "t1c", "t2w", "t2f"), (0, 1, 2, 3), ".nii.gz"),
}


def make_release(root, year, ids=(1, 2), seed=0, misnamed_355=False, unlabelled=()):
    """Fake release: per case 4 modalities (values encode channel and case) and a seg file."""
    pattern, sep, mods, values, ending = LAYOUTS[year]
    rng = np.random.default_rng(seed)
    segs = {}
    for i in (*ids, *unlabelled):
        case = pattern.format(i)
        folder = root / f"MICCAI_BraTS{year}_TrainingData" / case
        folder.mkdir(parents=True)
        for c, m in enumerate(mods):
            arr = (rng.random(SHAPE) * 100 + 1000 * c + i).astype(np.float32)
            sitk.WriteImage(_img(arr), str(folder / f"{case}{sep}{m}{ending}"))
        if i in unlabelled:
            continue
        seg = _seg(rng, values)
        segs[case] = seg
        name = "W39_1998.09.19_Segm.nii" if (misnamed_355 and i == 355) else f"{case}{sep}seg{ending}"
        sitk.WriteImage(_img(seg), str(folder / name))
    return segs


def _nnext(*args):
    return subprocess.run([sys.executable, "-m", "nnunet_ext.cli.main", *args], capture_output=True, text=True)


@pytest.mark.parametrize("year", [2020, 2021, 2023])
@pytest.mark.parametrize("labels", ["nnunet", "brats"])
def test_convert_and_back_round_trip(tmp_path, nnunet_dirs, year, labels):
    from nnunet_ext.conversion.brats import brats_back, convert_brats

    src = tmp_path / "release"
    segs = make_release(src, year, ids=(1, 355) if year == 2020 else (1, 2), misnamed_355=year == 2020,
                        unlabelled=(7,))
    did = {2020: 820, 2021: 821, 2023: 823}[year] + (5 if labels == "brats" else 0)
    out = convert_brats(src, did, labels=labels, overwrite=True, progress=False)  # year detected
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["nnext_brats"]["year"] == year and dj["numTraining"] == len(segs)
    assert dj["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    # channels in T1, T1ce, T2, FLAIR order (the fake values encode the channel in the thousands)
    case = sorted(segs)[0]
    for c in range(4):
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "imagesTr" / f"{case}_{c:04d}.nii.gz")))
        assert int(arr.min()) // 1000 == c
    assert sorted(p.name for p in (out / "imagesTs").iterdir())[0].endswith("_0000.nii.gz")
    back = brats_back(out / "labelsTr", tmp_path / "back", year, labels)
    assert len(back) == len(segs)
    for case, seg in segs.items():
        lab = sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz"))
        assert lab.GetDirection() == pytest.approx(DIRECTION) and lab.GetOrigin() == pytest.approx((-10, 20, 5.5))
        got = sitk.ReadImage(str(tmp_path / "back" / f"{case}.nii.gz"))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got), seg)    # exact round trip
        assert got.GetDirection() == pytest.approx(DIRECTION)
    if year == 2020:
        log = json.loads((out / "conversion_log.json").read_text())
        assert "W39_1998.09.19_Segm.nii" in log["cases"]["BraTS20_Training_355"]["note"]


@pytest.mark.parametrize("labels", ["nnunet", "brats"])
def test_regions_class_order_rebuilds_the_labels_with_nnunet(labels):
    """nnU-Net's LabelManager turns region maps back into labels with our regions_class_order."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunet_ext.conversion.brats import label_map, region_labels

    label_dict, order = region_labels(labels)
    lm = LabelManager(label_dict, order)
    assert lm.has_regions
    rng = np.random.default_rng(0)
    for year in (2021, 2023):
        release = rng.choice(np.array([0, 1, 2, 4 if year == 2021 else 3]), size=(4, 5, 6))
        lab = np.vectorize(label_map(year, labels).get)(release)
        regions = np.stack([np.isin(lab, label_dict[k]) for k in ("whole tumor", "tumor core", "enhancing tumor")])
        # the regions mean what BraTS means: WT = all tumour, TC = NCR + ET, ET = ET
        np.testing.assert_array_equal(regions[0], release > 0)
        np.testing.assert_array_equal(regions[1], np.isin(release, [1, 4 if year == 2021 else 3]))
        np.testing.assert_array_equal(regions[2], release == (4 if year == 2021 else 3))
        seg = lm.convert_probabilities_to_segmentation(regions.astype(np.float32))
        np.testing.assert_array_equal(np.asarray(seg), lab)


def test_cli_year_detection_missing_modality_and_back(tmp_path, nnunet_dirs):
    src = tmp_path / "r2023"
    make_release(src, 2023, ids=(3, 4))
    proc = _nnext("convert", "brats", "-i", str(src), "-d", "830", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "BraTS 2023 layout detected" in proc.stdout
    again = _nnext("convert", "brats", "-i", str(src), "-d", "830", "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    back = _nnext("convert", "brats-back", "-i", str(nnunet_dirs["nnUNet_raw"] / "Dataset830_BraTS2023" / "labelsTr"),
                  "-o", str(tmp_path / "b"), "-d", "830")
    assert back.returncode == 0, back.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["BraTS-GLI-00003-000.nii.gz",
                                                                   "BraTS-GLI-00004-000.nii.gz"]
    # missing modality: one line naming the case and the file; nothing half-written
    (src / "MICCAI_BraTS2023_TrainingData" / "BraTS-GLI-00004-000" / "BraTS-GLI-00004-000-t2f.nii.gz").unlink()
    bad = _nnext("convert", "brats", "-i", str(src), "-d", "831", "--no-progress")
    assert bad.returncode == 2
    assert "BraTS-GLI-00004-000" in bad.stderr and "t2f" in bad.stderr and "FLAIR" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not list(nnunet_dirs["nnUNet_raw"].glob("Dataset831_*"))
    assert not list(nnunet_dirs["nnUNet_raw"].glob(".tmp-*"))
    skip = _nnext("convert", "brats", "-i", str(src), "-d", "831", "--skip-invalid", "--no-progress")
    assert skip.returncode == 0 and "1 skipped" in skip.stdout
    # unknown layout, and labels outside the release's values
    other = tmp_path / "other" / "case1"
    other.mkdir(parents=True)
    sitk.WriteImage(_img(np.zeros(SHAPE, np.float32)), str(other / "x.nii.gz"))
    unk = _nnext("convert", "brats", "-i", str(tmp_path / "other"), "-d", "832")
    assert unk.returncode == 2 and "--year" in unk.stderr


def test_bad_label_values(tmp_path, nnunet_dirs):
    from nnunet_ext.conversion.brats import convert_brats
    from nnunet_ext.errors import InputError

    src = tmp_path / "r"
    make_release(src, 2021, ids=(1,))
    seg = src / "MICCAI_BraTS2021_TrainingData" / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz"
    sitk.WriteImage(_img(np.full(SHAPE, 3, np.uint8)), str(seg))  # 3 is not a BraTS 2021 label
    with pytest.raises(InputError, match=r"BraTS2021_00001.*\[3\]"):
        convert_brats(src, 840, progress=False)


def test_images_only_2023_folder_goes_to_imagesTs(tmp_path, nnunet_dirs):
    """A BraTS 2023 validation / test release (case folders with t1c / t1n / t2f / t2w, no seg): imagesTs only,
    numTraining 0; the channels in nnU-Net's order with the voxels unchanged."""
    src = tmp_path / "val2023"
    make_release(src, 2023, ids=(), unlabelled=(1, 7))
    proc = _nnext("convert", "brats", "-i", str(src), "-d", "850", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "numTraining 0" in proc.stdout and "2 converted, 0 skipped; 0 training, 2 test cases" in proc.stdout
    out = nnunet_dirs["nnUNet_raw"] / "Dataset850_BraTS2023"
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["numTraining"] == 0 and dj["regions_class_order"] == [1, 2, 3]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [
        f"BraTS-GLI-0000{i}-000_{c:04d}.nii.gz" for i in (1, 7) for c in range(4)]
    assert not list((out / "imagesTr").iterdir()) and not list((out / "labelsTr").iterdir())
    folder = src / "MICCAI_BraTS2023_TrainingData" / "BraTS-GLI-00007-000"
    for c, mod in enumerate(("t1n", "t1c", "t2w", "t2f")):  # T1, T1ce, T2, FLAIR
        want = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"BraTS-GLI-00007-000-{mod}.nii.gz")))
        got = sitk.ReadImage(str(out / "imagesTs" / f"BraTS-GLI-00007-000_{c:04d}.nii.gz"))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got), want)
        assert got.GetDirection() == pytest.approx(DIRECTION)
    # mixed: labelled cases to imagesTr / labelsTr, the others to imagesTs (as before)
    mixed = tmp_path / "mixed"
    make_release(mixed, 2023, ids=(2,), unlabelled=(3,))
    assert _nnext("convert", "brats", "-i", str(mixed), "-d", "851", "--no-progress").returncode == 0
    m = nnunet_dirs["nnUNet_raw"] / "Dataset851_BraTS2023"
    assert json.loads((m / "dataset.json").read_text())["numTraining"] == 1
    assert [p.name for p in (m / "labelsTr").iterdir()] == ["BraTS-GLI-00002-000.nii.gz"]
    assert len(list((m / "imagesTs").iterdir())) == 4
    # a folder with no convertible case at all: one line, nothing written
    empty = tmp_path / "bad" / "BraTS-GLI-00009-000"
    empty.mkdir(parents=True)
    sitk.WriteImage(_img(np.zeros(SHAPE, np.float32)), str(empty / "BraTS-GLI-00009-000-t1n.nii.gz"))
    bad = _nnext("convert", "brats", "-i", str(tmp_path / "bad"), "-d", "852", "--skip-invalid", "--no-progress")
    assert bad.returncode == 2 and "no case could be converted" in bad.stderr
    assert not list(nnunet_dirs["nnUNet_raw"].glob("Dataset852_*"))
