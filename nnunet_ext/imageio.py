"""Image reading / writing with geometry, on top of SimpleITK.

Arrays are numpy in SimpleITK's index order reversed, i.e. ``(z, y, x)`` for 3D; geometry
(``spacing``, ``origin``, ``direction``) is kept in SimpleITK's ``(x, y, z)`` physical order, exactly as
nnU-Net's ``SimpleITKIO`` does, so files written here round-trip through nnU-Net unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_ext.errors import InputError


@dataclass(frozen=True)
class Geometry:
    """Physical placement of a voxel grid (SimpleITK conventions, x-y-z order)."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...] = field(default=())

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))

    def apply(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing([float(s) for s in self.spacing])
        image.SetOrigin([float(o) for o in self.origin])
        if self.direction:
            image.SetDirection([float(d) for d in self.direction])
        return image

    def cropped(self, start_zyx: Sequence[int]) -> "Geometry":
        """Geometry of the sub-grid whose first voxel is array index ``start_zyx`` (origin moves along the
        direction cosines: ``origin + D · (index_xyz * spacing)``)."""
        d = len(self.spacing)
        direction = np.asarray(self.direction or np.eye(d).ravel(), dtype=float).reshape(d, d)
        offset = direction @ (np.asarray(start_zyx[::-1], dtype=float) * np.asarray(self.spacing, dtype=float))
        return Geometry(self.spacing, tuple(float(v) for v in np.asarray(self.origin) + offset), self.direction)

    def matches(self, other: "Geometry", atol: float = 1e-4) -> bool:
        return (np.allclose(self.spacing, other.spacing, atol=atol)
                and np.allclose(self.origin, other.origin, atol=atol)
                and (not self.direction or not other.direction
                     or np.allclose(self.direction, other.direction, atol=atol)))

    def differences(self, other: "Geometry", atol: float = 1e-4) -> list[str]:
        """What differs from ``other``, e.g. ``["origin (x,y,z) (0, 0, 5) vs (0, 0, 0)"]`` ([] = :meth:`matches`)."""
        def fmt(v):
            return "(" + ", ".join(f"{round(float(x), 6) + 0.0:.6g}" for x in v) + ")"  # + 0.0: no "-0"

        out = []
        for name, a, b in (("spacing", self.spacing, other.spacing), ("origin", self.origin, other.origin),
                           ("direction", self.direction, other.direction)):
            if a and b and (len(a) != len(b) or not np.allclose(a, b, atol=atol)):
                out.append(f"{name}{' (x,y,z)' if name != 'direction' else ''} {fmt(a)} vs {fmt(b)}")
        return out


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write ``array`` (z, y, x) with ``geometry`` to ``path`` atomically (temp file + rename)."""
    from nnunet_ext.io.atomic_write import write_sitk

    write_sitk(geometry.apply(sitk.GetImageFromArray(np.ascontiguousarray(array))), path)


def read_image(path: str | os.PathLike, *, ndim=None, kind: str = "map", nan_policy: str = "refuse",
               min_value: float | None = None, max_value: float | None = None) -> tuple[np.ndarray, Geometry]:
    """Read an image -> ``(array (z, y, x), Geometry)`` through the integrity layer
    (:func:`nnunet_ext.integrity.read_image_checked`): a missing, empty, truncated (gzip stream checked) or
    unreadable file, implausible spacing, NaN / Inf voxels (``nan_policy``), the wrong dimension (``ndim``) and
    values a ``kind`` cannot hold (``"image"``: |v| <= 1e7; ``"label"`` / ``"mask"``: non-negative integers;
    ``"map"`` (default): finite, within ``min_value`` / ``max_value``) raise :class:`InputError` naming the file."""
    from nnunet_ext.integrity import read_image_checked

    return read_image_checked(path, ndim=ndim, kind=kind, nan_policy=nan_policy, min_value=min_value,
                              max_value=max_value)


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


def read_sitk(path: str | os.PathLike, nan_policy: str = "refuse") -> sitk.Image:
    """SimpleITK image of ``path`` after the file-completeness check and the NaN / Inf check of float NIfTI voxels
    (ITK's reader silently zeroes them: ``nan_policy`` "refuse" or "zero"); InputError naming the file otherwise."""
    from nnunet_ext.integrity import check_file_complete, check_nonfinite_file

    path = os.fspath(path)
    check_file_complete(path)
    check_nonfinite_file(path, nan_policy)
    try:
        return sitk.ReadImage(path)
    except RuntimeError as e:  # SimpleITK raises RuntimeError with a multi-line message
        raise InputError(f"{path}: cannot be read as an image ({sitk_error_text(e)})") from None


def read_header(path: str | os.PathLike) -> tuple[tuple[int, ...], Geometry]:
    """``(shape in numpy (z, y, x) order, geometry)`` without reading the voxels (file completeness and spacing
    checked: :func:`nnunet_ext.integrity.read_header_checked`)."""
    from nnunet_ext.integrity import read_header_checked

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
    from nnunet_ext.integrity import check_values

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
