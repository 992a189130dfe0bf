"""SimpleITK reading with the file checks ITK skips: completeness of the gzip stream and NaN / Inf voxels (ITK's
NIfTI reader silently zeroes them), and SimpleITK's multi-line errors turned into one line."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nnunet_ext.errors import InputError
from nnunet_ext.io.filecheck import check_file_complete, check_nonfinite_file

if TYPE_CHECKING:
    import SimpleITK as sitk


def sitk_error_text(error: Exception) -> str:
    """The informative line of SimpleITK's multi-line RuntimeError (truncation reported as such)."""
    text = str(error).strip()
    lower = text.lower()
    if "not read completely" in lower or ("expected" in lower and "bytes" in lower and "received" in lower):
        return "truncated file: the voxel data ends early"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "unable to determine imageio reader" in ln.lower():
            return "unknown or corrupt image format"
    return lines[-1] if lines else type(error).__name__


def read_sitk(path: str | os.PathLike, nan_policy: str = "refuse") -> "sitk.Image":
    """SimpleITK image of ``path`` after the file-completeness check and the NaN / Inf check of float NIfTI voxels
    (ITK's reader silently zeroes them: ``nan_policy`` "refuse" or "zero"); InputError naming the file otherwise."""
    import SimpleITK as sitk

    path = os.fspath(path)
    check_file_complete(path)
    check_nonfinite_file(path, nan_policy)
    try:
        return sitk.ReadImage(path)
    except RuntimeError as e:  # SimpleITK raises RuntimeError with a multi-line message
        raise InputError(f"{path}: cannot be read as an image ({sitk_error_text(e)})") from None
