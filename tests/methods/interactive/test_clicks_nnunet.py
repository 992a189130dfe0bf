"""Clicks mapped into nnU-Net's preprocessed grid land where nnU-Net's own preprocessor puts the clicked voxel.

An image (oblique direction with a flip, zero border so crop_to_nonzero crops) carries one bright voxel;
``DefaultPreprocessor.run_case`` (transpose_forward non-identity, resampling to another spacing) moves it to
some preprocessed voxel; a world click at that voxel's centre, mapped by :class:`PreprocessedGrid`, must hit
the same voxel. Two resampling regimes: isotropic-ish (3D cubic) and anisotropic (separate z, nearest along z).
"""
import copy

import numpy as np
import pytest
import SimpleITK as sitk
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from test_clicks import _rotation

from nnunet_ext.methods.interactive.clicks import Click, PreprocessedGrid, click_indices, rasterize_preprocessed

LABELS = {"background": 0, "GTVp": 1, "GTVn": 2}


def _plans(transpose, target_spacing_transposed):
    conf = {
        "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [16, 16, 16], "median_image_size_in_voxels": [16, 16, 16],
        "spacing": list(target_spacing_transposed), "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []},
        "batch_dice": False}
    inverse = list(np.argsort(transpose))
    return {"dataset_name": "Dataset999_X", "plans_name": "p", "original_median_spacing_after_transp": [1, 1, 1],
            "original_median_shape_after_transp": [16, 16, 16], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": list(transpose), "transpose_backward": [int(i) for i in inverse],
            "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": {}},
            "configurations": {"3d_fullres": copy.deepcopy(conf)}}


CASES = {
    # spacing (x, y, z) mm, transpose_forward, target spacing in transposed order
    "cubic": ((1.5, 1.2, 2.0), (1, 2, 0), (0.9, 1.1, 1.3)),
    "separate_z": ((1.0, 0.9, 4.0), (2, 0, 1), (1.4, 0.7, 0.8)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("bright_zyx", [(5, 9, 7), (8, 4, 12)])
def test_click_lands_on_nnunet_preprocessed_voxel(tmp_path, case, bright_zyx):
    spacing, transpose, target = CASES[case]
    arr = np.zeros((12, 16, 18), np.float32)
    arr[2:11, 2:14, 3:17] = 1.0 + np.random.default_rng(0).uniform(0, 0.01, (9, 12, 14))
    arr[bright_zyx] = 1000.0
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((12.0, -40.0, 7.5))
    img.SetDirection(_rotation().ravel().tolist())
    path = tmp_path / "case_0000.nii.gz"
    sitk.WriteImage(img, str(path))

    pm = PlansManager(_plans(transpose, target))
    cm = pm.get_configuration("3d_fullres")
    data, _, props = DefaultPreprocessor(verbose=False).run_case([str(path)], None, pm, cm,
                                                                 {"channel_names": {"0": "CT"}, "labels": LABELS,
                                                                  "file_ending": ".nii.gz"})
    brightest = data[0] == data[0].max()  # one voxel, or a run of slices along a nearest-neighbour (separate z) axis
    runs = [np.flatnonzero(brightest.any(axis=tuple(j for j in range(3) if j != i))) for i in range(3)]
    assert all(np.array_equal(r, np.arange(r[0], r[-1] + 1)) for r in runs)
    centre = np.array([(r[0] + r[-1]) / 2 for r in runs])
    assert tuple(props["shape_after_cropping_and_before_resampling"]) != data.shape[1:], "must resample"
    assert props["bbox_used_for_cropping"][0][0] > 0 or props["bbox_used_for_cropping"][1][0] > 0, "must crop"

    grid = PreprocessedGrid.from_properties(props, pm.transpose_forward, data.shape[1:])
    world = img.TransformIndexToPhysicalPoint(tuple(int(i) for i in bright_zyx[::-1]))
    clicks = [Click(world, "GTVn")]
    mapped = grid.map_index(click_indices(clicks, img, LABELS)[0][1])
    expected = tuple(np.floor(mapped + 0.5).astype(int))
    assert brightest[expected], (mapped, centre)
    assert np.all(np.abs(mapped - centre) <= 0.5), (mapped, centre)  # the middle of a nearest-neighbour run

    prompt = rasterize_preprocessed(clicks, img, LABELS, grid, radius=3)
    assert prompt.shape == (2, *data.shape[1:])
    assert prompt[1][tuple(expected)] == 1.0 and not prompt[0].any()
    peak = rasterize_preprocessed(clicks, img, LABELS, grid, radius=1.5, encoding="gaussian")[1]
    assert np.unravel_index(int(np.argmax(peak)), peak.shape) == expected
    if case == "separate_z":
        assert len(runs[1]) > 1, "the anisotropic axis must be resampled with nearest neighbour (a run of slices)"
