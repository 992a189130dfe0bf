"""A lung mask read onto another image's grid (nearest neighbour, with a warning when the grids differ).

Shared by ``nnext postprocess lung`` and the cascade predictor (which must not import a CLI module).
"""
from __future__ import annotations

import warnings


def load_lung_on_grid(lung_path: str, pred_img, case: str):
    """Lung mask as a numpy array on the prediction's grid; (array, resampled: bool)."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_ext.errors import InputError
    from nnunet_ext.io.imageio import Geometry, read_sitk

    lung_img = read_sitk(lung_path)
    if lung_img.GetDimension() != pred_img.GetDimension():
        raise InputError(f"case {case}: lung mask is {lung_img.GetDimension()}D, prediction "
                         f"{pred_img.GetDimension()}D")
    same = (lung_img.GetSize() == pred_img.GetSize()
            and Geometry.of(lung_img).matches(Geometry.of(pred_img)))
    from nnunet_ext.io.integrity import check_values

    check_values(sitk.GetArrayViewFromImage(lung_img), lung_path, kind="mask")
    from nnunet_ext.io.label_check import check_label_values

    check_label_values(sitk.GetArrayViewFromImage(lung_img), lung_path, (0, 1, 2),
                       "a lung mask (1 = right, 2 = left lung)")
    if same:
        return sitk.GetArrayFromImage(lung_img), False
    before = bool(np.any(sitk.GetArrayViewFromImage(lung_img)))
    resampled = sitk.Resample(lung_img, pred_img, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                              lung_img.GetPixelID())
    arr = sitk.GetArrayFromImage(resampled)
    if before and not arr.any():
        raise InputError(f"case {case}: lung mask does not overlap the prediction's grid (empty after resampling "
                         f"it onto the prediction)")
    warnings.warn(f"case {case}: lung mask grid (size {lung_img.GetSize()}, spacing {lung_img.GetSpacing()}, "
                  f"origin {lung_img.GetOrigin()}) differs from the prediction's (size {pred_img.GetSize()}, "
                  f"spacing {pred_img.GetSpacing()}, origin {pred_img.GetOrigin()}); resampled with nearest "
                  f"neighbour", stacklevel=2)
    return arr, True
