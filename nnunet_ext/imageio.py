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

    def matches(self, other: "Geometry", atol: float = 1e-4) -> bool:
        return (np.allclose(self.spacing, other.spacing, atol=atol)
                and np.allclose(self.origin, other.origin, atol=atol)
                and (not self.direction or not other.direction
                     or np.allclose(self.direction, other.direction, atol=atol)))


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> None:
    """Write ``array`` (z, y, x) with ``geometry`` to ``path`` atomically (temp file + rename)."""
    image = geometry.apply(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    path = os.fspath(path)
    tmp = _tmp_name(path)
    try:
        sitk.WriteImage(image, tmp, True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read an image; raise :class:`InputError` naming the file if it cannot be read."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: file not found")
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as e:  # SimpleITK raises RuntimeError with a multi-line message
        raise InputError(f"{path}: cannot be read as an image ({str(e).strip().splitlines()[-1]})") from e
    return sitk.GetArrayFromImage(image), Geometry.of(image)


def _tmp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".tmp-{os.getpid()}-{tail}")


def strip_ending(filename: str, endings: Sequence[str] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")) -> str:
    """``case_001_0000.nii.gz`` -> ``case_001_0000``."""
    for e in endings:
        if filename.endswith(e):
            return filename[: -len(e)]
    return os.path.splitext(filename)[0]
