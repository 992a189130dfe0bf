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


def crop_properties(properties: dict, box) -> dict:
    """nnU-Net reader properties of the sub-grid ``box`` (slices, z-y-x) of an image: spacing unchanged, origin
    moved along the direction cosines (:meth:`Geometry.cropped`)."""
    stuff = properties["sitk_stuff"]
    g = Geometry(tuple(stuff["spacing"]), tuple(stuff["origin"]), tuple(stuff["direction"]))
    c = g.cropped([s.start for s in box])
    return {"spacing": list(properties["spacing"]),
            "sitk_stuff": {"spacing": c.spacing, "origin": c.origin, "direction": c.direction}}
