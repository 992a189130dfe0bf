"""``nnext roi-dataset``: stage-2 dataset of ROI crops with exact geometry."""
import json

import cc3d
import numpy as np
import SimpleITK as sitk

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import read_image


def test_roi_crops_match_source_voxels_and_geometry(chest_dataset, nnunet_dirs):
    assert main(["roi-dataset", "-d", "501", "-t", "601", "--margin", "0"]) == 0
    out = next(nnunet_dirs["nnUNet_raw"].glob("Dataset601_*"))
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)
    info = json.loads((out / "roi_info.json").read_text())
    expected = sum(cc3d.connected_components(read_image(p)[0] > 0, connectivity=26).max()
                   for p in (chest_dataset / "labelsTr").glob("*.nii.gz"))
    assert len(info["crops"]) == expected == json.loads((out / "dataset.json").read_text())["numTraining"]
    for crop_id, entry in info["crops"].items():
        box = tuple(slice(a, b) for a, b in entry["box_zyx"])
        src_img = sitk.ReadImage(str(chest_dataset / "imagesTr" / f"{entry['case']}_0000.nii.gz"))
        src_lab, _ = read_image(chest_dataset / "labelsTr" / f"{entry['case']}.nii.gz")
        img = sitk.ReadImage(str(out / "imagesTr" / f"{crop_id}_0000.nii.gz"))
        lab, _ = read_image(out / "labelsTr" / f"{crop_id}.nii.gz")
        assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(src_img)[box])
        assert np.array_equal(lab, src_lab[box]) and lab.any()
        start_xyz = [s.start for s in box][::-1]
        assert np.allclose(img.GetOrigin(), src_img.TransformIndexToPhysicalPoint(start_xyz))
        assert img.GetSpacing() == src_img.GetSpacing() and img.GetDirection() == src_img.GetDirection()


def test_margin_is_clipped_and_existing_id_refused(chest_dataset, nnunet_dirs, capsys):
    assert main(["roi-dataset", "-d", "501", "-t", "602", "--margin", "16"]) == 0
    out = next(nnunet_dirs["nnUNet_raw"].glob("Dataset602_*"))
    info = json.loads((out / "roi_info.json").read_text())
    for entry in info["crops"].values():
        shape = read_image(chest_dataset / "labelsTr" / f"{entry['case']}.nii.gz")[0].shape
        assert all(0 <= a < b <= n for (a, b), n in zip(entry["box_zyx"], shape))
    assert main(["roi-dataset", "-d", "501", "-t", "602"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["roi-dataset", "-d", "501", "-t", "603", "--from", str(out / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not list(nnunet_dirs["nnUNet_raw"].glob("Dataset603_*"))
