"""Spherical-projection warp of 2D images around projection origins (Yang et al. 2025, sec. 2.2.1).

The paper projects every axial slice "onto a virtual spherical surface" around each of many origins, which
magnifies the anatomy near the origin while keeping the whole field of view; it gives no formula (it refers
to the authors' SPU-Net, Med Phys 2024, doi:10.1002/mp.16695). Our choice is the **gnomonic projection onto
a sphere of radius R viewed orthographically**, rescaled so that the field of view is kept. Along every ray
from the origin ``o`` at angle ``theta`` a point at distance ``r`` moves to distance ``r'``::

    r' = T(r)      = r A / sqrt(R^2 + r^2),    A = sqrt(R^2 + r_max^2)
    r  = T^-1(r')  = R r' / sqrt(A^2 - r'^2)

``r_max = r_max(o, theta)`` is the distance from ``o`` to the image border (the rectangle through the
border pixel *centres*) along that ray, so ``T(r_max) = r_max``: the border maps to itself and the image
onto itself. T is strictly increasing (dT/dr = A R^2 / (R^2 + r^2)^1.5 > 0), the angle is kept, and the
local magnification at the origin along a ray is ``dT/dr(0) = A / R = sqrt(1 + (r_max / R)^2)`` (> 1,
decreasing outwards: it falls below 1, i.e. the image is compressed, beyond r = sqrt((A R^2)^(2/3) - R^2)). Because
r_max depends on the
direction, the magnification at the origin is direction dependent (more along the longer rays); a smaller R
magnifies more. R is in pixels; ``radius=None`` uses half the larger image side.

Array conventions: images ``(C, H, W)`` (rows, columns), origins ``(K, 2)`` in pixel ``(row, col)``;
``forward_warp`` samples ``x`` at ``T^-1`` (output pixel p' shows what was at T^-1(p')), ``inverse_warp``
samples at ``T``; both use ``torch.nn.functional.grid_sample`` with ``align_corners=True`` (pixel centres
at -1 and +1), bilinear for images and ``mode="nearest"`` for label maps, on the device of the input. All
K origins are warped as one batch, cut into chunks that fit ``memory_budget`` bytes (512 MiB on a GPU, 16 MiB
on a CPU, where larger chunks fall out of the cache and run slower than one origin at a time).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["forward_radius", "inverse_radius", "ray_length", "sampling_grid", "forward_warp", "inverse_warp",
           "origin_grid", "center_magnification", "DEFAULT_MEMORY_BUDGET", "CPU_MEMORY_BUDGET"]

#: bytes of sampling grid + output per chunk (grids are float32 (k, H, W, 2)) on a GPU
DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20
#: ... and on a CPU, where chunks must stay cache-sized: 64 origins on 4 x 256 x 256 took 1.35 s in 512 MiB
#: chunks, 0.49 s in 16 MiB chunks, 0.66 s one origin per call (benchmarks/bench_spherical.py, RESULTS.md)
CPU_MEMORY_BUDGET = 16 * 2 ** 20
_EPS = 1e-12


def forward_radius(r, r_max, radius):
    """``T(r) = r A / sqrt(R^2 + r^2)``, ``A = sqrt(R^2 + r_max^2)`` (torch or numpy, broadcasting)."""
    lib = torch if isinstance(r, torch.Tensor) else np
    a = lib.sqrt(radius ** 2 + r_max ** 2)
    return r * a / lib.sqrt(radius ** 2 + r ** 2)


def inverse_radius(rp, r_max, radius):
    """``T^-1(r') = R r' / sqrt(A^2 - r'^2)``; ``r'`` is clipped to ``[0, r_max]`` (the field of view)."""
    lib = torch if isinstance(rp, torch.Tensor) else np
    rp = lib.minimum(rp, r_max)
    a2 = radius ** 2 + r_max ** 2
    return radius * rp / lib.sqrt(a2 - rp ** 2)


def center_magnification(r_max: float, radius: float) -> float:
    """Local magnification at the origin along a ray of length ``r_max``: ``sqrt(1 + (r_max / R)^2)``."""
    return math.sqrt(1.0 + (r_max / radius) ** 2)


def ray_length(origin_rc: torch.Tensor, dir_rc: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Distance from ``origin_rc`` (..., 2) along unit directions ``dir_rc`` (..., 2) to the border of the
    rectangle ``[0, H-1] x [0, W-1]`` (pixel centres). Broadcasting over leading dims."""
    hi = torch.tensor([shape[0] - 1, shape[1] - 1], dtype=dir_rc.dtype, device=dir_rc.device)
    o = origin_rc.to(dir_rc.dtype)
    pos = torch.where(dir_rc > _EPS, (hi - o) / dir_rc.clamp_min(_EPS), torch.full_like(dir_rc, math.inf))
    neg = torch.where(dir_rc < -_EPS, o / (-dir_rc).clamp_min(_EPS), torch.full_like(dir_rc, math.inf))
    return torch.minimum(pos, neg).amin(-1).clamp_min(0.0)


def _as_radius(radius, k: int, shape, device) -> torch.Tensor:
    if radius is None:
        radius = max(shape) / 2.0
    r = torch.as_tensor(radius, dtype=torch.float64, device=device).reshape(-1)
    if r.numel() not in (1, k):
        raise ValueError(f"radius must be a scalar or have one value per origin ({k}), got {r.numel()}")
    if not bool((r > 0).all()):
        raise ValueError(f"radius must be > 0 pixels, got {r.tolist()}")
    return r.expand(k)


def _check_origins(origins, shape, device) -> torch.Tensor:
    o = torch.as_tensor(origins, dtype=torch.float64, device=device)
    if o.ndim != 2 or o.shape[1] != 2:
        raise ValueError(f"origins must have shape (K, 2) (row, col), got {tuple(o.shape)}")
    if o.shape[0] and (bool((o < 0).any()) or bool((o[:, 0] > shape[0] - 1).any())
                       or bool((o[:, 1] > shape[1] - 1).any())):
        raise ValueError(f"origins must lie inside the image {tuple(shape)} (row in [0, H-1], col in [0, W-1])")
    return o


def sampling_grid(origins, shape: Sequence[int], radius=None, inverse: bool = False,
                  device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``grid_sample`` grid (K, H, W, 2) in normalised (x, y) order for every origin.

    ``inverse=False`` gives the grid of :func:`forward_warp` (source radius ``T^-1(r')``), ``inverse=True``
    that of :func:`inverse_warp` (source radius ``T(r)``). Computed and returned in ``dtype`` (float32: errors
    of ~1e-5 pixel at 256 px; pass float64 for exact coordinate checks).
    """
    h, w = int(shape[0]), int(shape[1])
    o = _check_origins(origins, (h, w), device).to(dtype)
    k = o.shape[0]
    rad = _as_radius(radius, k, (h, w), o.device).to(dtype)[:, None, None]
    rows = torch.arange(h, dtype=o.dtype, device=o.device)[None, :, None]
    cols = torch.arange(w, dtype=o.dtype, device=o.device)[None, None, :]
    dr = rows - o[:, 0, None, None]
    dc = cols - o[:, 1, None, None]
    r_out = torch.sqrt(dr ** 2 + dc ** 2)  # (K, H, W) distance of the output pixel from the origin
    safe = r_out.clamp_min(_EPS)
    unit = torch.stack([dr / safe, dc / safe], -1)
    r_max = ray_length(o[:, None, None, :], unit, (h, w))
    r_src = forward_radius(r_out, r_max, rad) if inverse else inverse_radius(r_out, r_max, rad)
    scale = torch.where(r_out > _EPS, r_src / safe, torch.zeros_like(r_out))
    src_r = o[:, 0, None, None] + dr * scale
    src_c = o[:, 1, None, None] + dc * scale
    gx = 2.0 * src_c / max(w - 1, 1) - 1.0
    gy = 2.0 * src_r / max(h - 1, 1) - 1.0
    return torch.stack([gx, gy], -1)


def _chunk_size(k: int, c: int, h: int, w: int, itemsize: int, memory_budget: int) -> int:
    per_origin = h * w * (12 * 4 + c * itemsize)  # float32 grid and temporaries, output
    return max(1, min(k, int(memory_budget // max(per_origin, 1))))


def _warp(x: torch.Tensor, origins, radius, inverse: bool, mode: str, memory_budget: int,
          per_origin_input: bool) -> torch.Tensor:
    h, w = x.shape[-2:]
    o = _check_origins(origins, (h, w), x.device)
    k = o.shape[0]
    rad = _as_radius(radius, k, (h, w), x.device)
    c = x.shape[-3]
    if memory_budget is None:
        memory_budget = CPU_MEMORY_BUDGET if x.device.type == "cpu" else DEFAULT_MEMORY_BUDGET
    xf = x if x.is_floating_point() else x.float()
    out = torch.empty((k, c, h, w), dtype=xf.dtype, device=x.device)
    step = _chunk_size(k, c, h, w, xf.element_size(), memory_budget)
    for s in range(0, k, step):
        e = min(k, s + step)
        grid = sampling_grid(o[s:e], (h, w), rad[s:e], inverse=inverse, device=x.device).to(xf.dtype)
        src = xf[s:e] if per_origin_input else xf.unsqueeze(0).expand(e - s, c, h, w)
        out[s:e] = F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)
    return out if x.is_floating_point() else out.to(x.dtype)


def forward_warp(x: torch.Tensor, origins, radius=None, mode: str = "bilinear",
                 memory_budget: int | None = None) -> torch.Tensor:
    """Spherical projection of ``x`` (C, H, W) around each origin (K, 2) -> (K, C, H, W).

    ``radius``: R in pixels, scalar or one per origin (None: max(H, W) / 2). ``mode``: ``"bilinear"`` for
    images, ``"nearest"`` for label maps (integer inputs come back in their dtype). ``memory_budget``: bytes per
    chunk (None: :data:`CPU_MEMORY_BUDGET` on a CPU, :data:`DEFAULT_MEMORY_BUDGET` elsewhere).
    """
    if x.ndim != 3:
        raise ValueError(f"forward_warp expects x of shape (C, H, W), got {tuple(x.shape)}")
    return _warp(x, origins, radius, False, mode, memory_budget, per_origin_input=False)


def inverse_warp(y: torch.Tensor, origins, radius=None, mode: str = "bilinear",
                 memory_budget: int | None = None) -> torch.Tensor:
    """Map warped images back: ``y`` (K, C', H, W), ``y[k]`` warped around ``origins[k]`` -> (K, C', H, W)."""
    if y.ndim != 4:
        raise ValueError(f"inverse_warp expects y of shape (K, C, H, W), got {tuple(y.shape)}")
    if y.shape[0] != len(origins):
        raise ValueError(f"inverse_warp: {y.shape[0]} images but {len(origins)} origins")
    return _warp(y, origins, radius, True, mode, memory_budget, per_origin_input=True)


def origin_grid(shape: Sequence[int], stride: int, mask: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
    """Projection origins on a regular grid of ``stride`` pixels, (K, 2) int64 (row, col), row-major.

    Positions ``stride // 2, stride // 2 + stride, ...`` along each axis (256 px, stride 8 -> 32 x 32 = 1024,
    the paper's setting); with ``mask`` (H, W) only origins on nonzero mask pixels are kept (the paper's brain
    ROI). May return zero origins; callers decide whether that is an error.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1 pixel, got {stride}")
    h, w = int(shape[0]), int(shape[1])
    rr, cc = np.meshgrid(np.arange(stride // 2, h, stride), np.arange(stride // 2, w, stride), indexing="ij")
    pts = np.stack([rr.ravel(), cc.ravel()], 1).astype(np.int64)
    if mask is not None:
        m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
        if m.shape != (h, w):
            raise ValueError(f"origin mask has shape {m.shape}, image is {(h, w)}")
        pts = pts[m[pts[:, 0], pts[:, 1]] != 0]
    return pts
