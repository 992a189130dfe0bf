"""Physical placement of a voxel grid (spacing, origin, direction in SimpleITK's x-y-z order)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import SimpleITK as sitk


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


def crop_properties(properties: dict, box) -> dict:
    """nnU-Net reader properties of the sub-grid ``box`` (slices, z-y-x) of an image: spacing unchanged, origin
    moved along the direction cosines (:meth:`Geometry.cropped`)."""
    stuff = properties["sitk_stuff"]
    g = Geometry(tuple(stuff["spacing"]), tuple(stuff["origin"]), tuple(stuff["direction"]))
    c = g.cropped([s.start for s in box])
    return {"spacing": list(properties["spacing"]),
            "sitk_stuff": {"spacing": c.spacing, "origin": c.origin, "direction": c.direction}}
