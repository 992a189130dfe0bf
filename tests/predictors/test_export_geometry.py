"""Export into the original geometry (``nnunet_ext.predictors.export``) against nnU-Net's own
``export_prediction_from_logits``, for an oblique direction and plans whose ``transpose_forward`` is not the
identity (and a target spacing that forces resampling), through nnU-Net's DefaultPreprocessor."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.inference.export_prediction import export_prediction_from_logits
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ext.predictors.export import geometry_from_properties, map_to_original, to_original

DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumor": 1}, "numTraining": 1,
                "file_ending": ".nii.gz"}


def _plans(transpose_forward, spacing):
    resample = {"resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                       "force_separate_z": None}}
    back = [int(i) for i in np.argsort(transpose_forward)]
    return {"dataset_name": "Dataset999_Geo", "plans_name": "geo", "original_median_spacing_after_transp": spacing,
            "original_median_shape_after_transp": [20, 20, 20], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": list(transpose_forward), "transpose_backward": back,
            "configurations": {"3d_fullres": {
                "data_identifier": "geo_3d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
                "patch_size": [16, 16, 16], "median_image_size_in_voxels": [20, 20, 20], "spacing": list(spacing),
                "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False], **resample,
                "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []},
                "batch_dice": False}},
            "experiment_planner_used": "test", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": {"mean": 0.0, "std": 1.0, "percentile_00_5": -1000,
                                                                  "percentile_99_5": 1000}}}


class _Predictor:
    def __init__(self, plans):
        self.plans_manager = PlansManager(plans)
        self.configuration_manager = self.plans_manager.get_configuration("3d_fullres")
        self.label_manager = self.plans_manager.get_label_manager(DATASET_JSON)


def _oblique_image(path):
    rng = np.random.default_rng(0)
    arr = rng.normal(0, 1, (14, 22, 18)).astype(np.float32)
    arr[3:11, 5:15, 4:12] += 5.0  # a bright block the logits follow
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.9, 1.3, 2.5))
    img.SetOrigin((-31.5, 12.25, 101.0))
    a, b = np.deg2rad(17.0), np.deg2rad(11.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    img.SetDirection(tuple((rz @ rx).ravel()))
    sitk.WriteImage(img, str(path))
    return img


@pytest.mark.parametrize("transpose_forward", [(2, 0, 1), (1, 2, 0)])
def test_export_matches_nnunet_for_oblique_direction_and_transpose(tmp_path, transpose_forward):
    src = _oblique_image(tmp_path / "case_0000.nii.gz")
    spacing_t = [src.GetSpacing()[::-1][i] for i in transpose_forward]
    target_spacing = [s * f for s, f in zip(spacing_t, (1.3, 0.8, 1.1))]  # forces resampling on every axis
    plans = _plans(transpose_forward, target_spacing)
    pred = _Predictor(plans)
    data, _, props = DefaultPreprocessor(verbose=False).run_case(
        [str(tmp_path / "case_0000.nii.gz")], None, pred.plans_manager, pred.configuration_manager, DATASET_JSON)
    assert tuple(np.asarray(props["sitk_stuff"]["direction"])) != (1, 0, 0, 0, 1, 0, 0, 0, 1)
    x = torch.from_numpy(np.asarray(data[0], np.float32))
    logits = torch.stack([-x + 1.5, x - 1.5])  # foreground where the (normalised) block is bright
    ours_seg, ours_prob, maps = to_original(logits, {"fg": logits[1] - logits[0]}, props, pred, names=["fg"])
    export_prediction_from_logits(logits, props, pred.configuration_manager, pred.plans_manager, DATASET_JSON,
                                  str(tmp_path / "nnunet"), save_probabilities=True)
    theirs = sitk.ReadImage(str(tmp_path / "nnunet.nii.gz"))
    theirs_seg = sitk.GetArrayFromImage(theirs)
    assert ours_seg.shape == theirs_seg.shape == sitk.GetArrayFromImage(src).shape
    np.testing.assert_array_equal(ours_seg, theirs_seg)
    assert 0 < theirs_seg.sum() < theirs_seg.size
    np.testing.assert_allclose(ours_prob, np.load(tmp_path / "nnunet.npz")["probabilities"], atol=1e-6)
    geo = geometry_from_properties(props)
    np.testing.assert_allclose(geo.spacing, theirs.GetSpacing())
    np.testing.assert_allclose(geo.origin, theirs.GetOrigin())
    np.testing.assert_allclose(geo.direction, theirs.GetDirection(), atol=1e-6)  # NIfTI stores float32
    # the scalar-map route: the logit difference, resampled as a map, has the segmentation as its sign
    assert maps["fg"].shape == theirs_seg.shape
    np.testing.assert_array_equal(maps["fg"] > 0, theirs_seg > 0)
    single = map_to_original(logits[1] - logits[0], props, pred.configuration_manager, pred.plans_manager)
    np.testing.assert_array_equal(single, maps["fg"])
