"""Random spherical-projection augmentation as a batchgeneratorsv2 transform (Yang et al. 2025, sec. 2.2.1).

Applied per training sample after nnU-Net's ``SpatialTransform``, on 2D patches only:

* ``data_dict["image"]``: float tensor ``(C, H, W)`` -> ``(C, H, W)``, bilinear;
* ``data_dict["segmentation"]``: tensor ``(S, H, W)`` (integer labels, -1 = padding) -> ``(S, H, W)``, same
  dtype, nearest neighbour (labels are never mixed).

With probability ``p`` one origin is drawn uniformly in the patch (continuous (row, col) in
``[0, H-1] x [0, W-1]``) and one sphere radius R uniformly in ``radius_range`` (pixels); the warp is
:func:`nnunet_ext.methods.glioma.spherical.forward_warp` (gnomonic projection, the patch border maps to itself), the
same
that ``nnext predict -m spherical`` applies at inference. Randomness comes from torch's global generator, as in
batchgeneratorsv2's own transforms (nnU-Net seeds its workers).
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_ext.methods.glioma.spherical import forward_warp


class SphericalProjectionTransform(BasicTransform):
    def __init__(self, p: float = 0.5, radius_range: tuple[float, float] = (32.0, 128.0)):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"spherical projection probability must be in [0, 1], got {p}")
        lo, hi = (float(v) for v in radius_range)
        if not 0 < lo <= hi:
            raise ValueError(f"radius range must satisfy 0 < low <= high (pixels), got {radius_range}")
        self.p = float(p)
        self.radius_range = (lo, hi)

    def get_parameters(self, **data_dict) -> dict:
        img = data_dict["image"]
        if img.ndim != 3:
            raise ValueError(f"SphericalProjectionTransform is 2D only: image must be (C, H, W), got "
                             f"{tuple(img.shape)}")
        if torch.rand(1).item() >= self.p:
            return {"origin": None}
        h, w = img.shape[-2:]
        origin = torch.rand(2, dtype=torch.float64) * torch.tensor([h - 1, w - 1], dtype=torch.float64)
        lo, hi = self.radius_range
        radius = lo + (hi - lo) * torch.rand(1).item()
        return {"origin": origin[None], "radius": radius}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        if params["origin"] is None:
            return img
        return forward_warp(img, params["origin"], params["radius"], mode="bilinear")[0]

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        if params["origin"] is None:
            return segmentation
        return forward_warp(segmentation, params["origin"], params["radius"], mode="nearest")[0]

    def _apply_to_regr_target(self, regression_target, **params):
        return self._apply_to_image(regression_target, **params)
