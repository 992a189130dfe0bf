"""Image reading / writing with geometry, on top of SimpleITK.

Arrays are numpy in SimpleITK's index order reversed, i.e. ``(z, y, x)`` for 3D; geometry
(``spacing``, ``origin``, ``direction``) is kept in SimpleITK's ``(x, y, z)`` physical order, exactly as
nnU-Net's ``SimpleITKIO`` does, so files written here round-trip through nnU-Net unchanged.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ext.errors import InputError
from nnunet_ext.io.geometry import Geometry
from nnunet_ext.io.sitk_read import read_sitk, sitk_error_text  # noqa: F401 (part of this module's API)


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write ``array`` (z, y, x) with ``geometry`` to ``path`` atomically (temp file + rename)."""
    from nnunet_ext.io.atomic_write import write_sitk

    write_sitk(geometry.apply(sitk.GetImageFromArray(np.ascontiguousarray(array))), path)


def read_image(path: str | os.PathLike, *, ndim=None, kind: str = "map", nan_policy: str = "refuse",
               min_value: float | None = None, max_value: float | None = None) -> tuple[np.ndarray, Geometry]:
    """Read an image -> ``(array (z, y, x), Geometry)`` through the integrity layer
    (:func:`nnunet_ext.io.integrity.read_image_checked`): a missing, empty, truncated (gzip stream checked) or
    unreadable file, implausible spacing, NaN / Inf voxels (``nan_policy``), the wrong dimension (``ndim``) and
    values a ``kind`` cannot hold (``"image"``: |v| <= 1e7; ``"label"`` / ``"mask"``: non-negative integers;
    ``"map"`` (default): finite, within ``min_value`` / ``max_value``) raise :class:`InputError` naming the file."""
    from nnunet_ext.io.integrity import read_image_checked

    return read_image_checked(path, ndim=ndim, kind=kind, nan_policy=nan_policy, min_value=min_value,
                              max_value=max_value)


def read_header(path: str | os.PathLike) -> tuple[tuple[int, ...], Geometry]:
    """``(shape in numpy (z, y, x) order, geometry)`` without reading the voxels (file completeness and spacing
    checked: :func:`nnunet_ext.io.integrity.read_header_checked`)."""
    from nnunet_ext.io.integrity import read_header_checked

    return read_header_checked(path)


def atomic_path(path: str | os.PathLike, **verify):
    """Temporary name beside ``path``, renamed onto it once written and verified
    (:func:`nnunet_ext.io.atomic_write.atomic_path`, looked up at call time)."""
    from nnunet_ext.io import atomic_write

    return atomic_write.atomic_path(path, **verify)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through the verifying writer (:func:`nnunet_ext.io.atomic_write.write_text`)."""
    from nnunet_ext.io import atomic_write

    atomic_write.write_text(path, text)


def strip_ending(filename: str, endings: Sequence[str] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")) -> str:
    """``case_001_0000.nii.gz`` -> ``case_001_0000``."""
    for e in endings:
        if filename.endswith(e):
            return filename[: -len(e)]
    return os.path.splitext(filename)[0]


def write_probabilities(probs_czyx: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write class probabilities ``(C, *spatial)`` (numpy order, e.g. ``(C, z, y, x)``) as one float32 image.

    File format: a (D+1)-dimensional image (4D NIfTI for 3D data) whose first D SimpleITK axes are the
    spatial axes with ``geometry`` and whose LAST SimpleITK axis (numpy axis 0) is the class, with spacing
    1, origin 0 and an identity direction block. Viewers show it as a time series of C volumes.
    """
    probs = np.ascontiguousarray(probs_czyx, dtype=np.float32)
    d = len(geometry.spacing)
    if probs.ndim != d + 1:
        raise ValueError(f"probabilities must be (C, *spatial) with {d} spatial axes; got shape {probs.shape}")
    image = sitk.GetImageFromArray(probs, isVector=False)
    image.SetSpacing([float(s) for s in geometry.spacing] + [1.0])
    image.SetOrigin([float(o) for o in geometry.origin] + [0.0])
    if geometry.direction:
        direction = np.eye(d + 1)
        direction[:d, :d] = np.asarray(geometry.direction, dtype=float).reshape(d, d)
        image.SetDirection(direction.ravel().tolist())
    from nnunet_ext.io.atomic_write import write_sitk

    write_sitk(image, path)


def read_probabilities(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read a file written by :func:`write_probabilities` -> ``(probs (C, *spatial) float32, spatial geometry)``."""
    from nnunet_ext.io.integrity import check_values

    image = read_sitk(path)
    n = image.GetDimension()
    if image.GetNumberOfComponentsPerPixel() != 1 or n < 3:
        raise InputError(f"{path}: expected a {n}D scalar image with classes on the last axis (4D NIfTI for 3D "
                         f"data); got {n}D with {image.GetNumberOfComponentsPerPixel()} component(s)")
    d = n - 1
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(n, n)[:d, :d]
    geometry = Geometry(tuple(image.GetSpacing()[:d]), tuple(image.GetOrigin()[:d]),
                        tuple(float(v) for v in direction.ravel()))
    probs = check_values(sitk.GetArrayFromImage(image), path, kind="map", min_value=-1e-3, max_value=1.0 + 1e-3)
    return probs.astype(np.float32, copy=False), geometry
