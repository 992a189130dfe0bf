"""Test-time augmentations (TTA) with exact or interpolation-level inverses (pure torch, no nnU-Net).

Used inside the sliding window of the MC-dropout + TTA predictor (Chu et al. 2026, sec. 2.5): for a patch
``x`` of shape ``(C, *S)`` the N passes are batched, pass i gets its own random transform ``T_i``, and the
network output of pass i is mapped back with ``T_i^-1`` before the N probability maps are averaged::

    xs = apply_each(ts, x)              # (N, C, *S), xs[i] = T_i(x)
    probs = invert_each(ts, net(xs).softmax(1))   # probs[i] = T_i^-1(p_i)

Axes. Transforms address spatial axes counted *from the end* of the tensor (``-1`` = last spatial axis,
x in nnU-Net's (z, y, x) order), so one transform works unchanged on ``(C, *S)`` and ``(B, C, *S)``.

Intensity vs geometry. ``noise`` is an intensity transform (``Transform.intensity``): with ``n_image`` given,
:func:`apply_each` applies it to the first ``n_image`` channels only, so extra input channels that are
geometry rather than intensity -- click prompts (HN-UISeg, chu2026 sec. 2.1) -- are left exactly as they are;
``flip`` and ``rotate`` move every channel, prompts with the image.

Kinds (one per pass, drawn uniformly from ``TTAPolicy.kinds``):

* ``noise``  ``T(x) = x + sigma * eps``, eps ~ N(0, 1) drawn from a torch.Generator on ``x.device`` seeded
  with the transform's seed (reproducible; CPU and CUDA streams differ). ``T^-1 = id`` on the output.
* ``flip``   reverse one spatial axis; ``T^-1 = T`` (exact involution).
* ``rotate`` rotation by ``theta`` in one plane about the patch centre, ``affine_grid`` / ``grid_sample``
  (bilinear, ``padding_mode="border"``, ``align_corners=False``); ``T^-1`` = rotation by ``-theta``
  (exact up to interpolation). A plane rotation of a 3D patch is done as a 2D bilinear rotation of every
  slice along the third axis, which equals the trilinear rotation (that axis is sampled on its grid points).
  Rotation space: with ``spacing=None`` the rotation is rigid in voxel *index* space, i.e. a shear of a few
  percent in mm for anisotropic voxels (harmless at <= 5 degrees); pass the patch spacing to
  :meth:`TTAPolicy.sample` (or ``Rotate(spacing=...)``) to rotate rigidly in millimetres. Either way the
  normalised ``[-1, 1]`` grid coordinates are rescaled by the half-extents, so non-square patches rotate
  rigidly too. Positive ``theta`` moves a point at offset ``(p_a, p_b)`` from the centre in plane
  ``(a, b)`` to ``R(theta) (p_a, p_b)``, ``R = [[cos, -sin], [sin, cos]]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["TTA_KINDS", "TTAPolicy", "Transform", "Identity", "GaussianNoise", "Flip", "Rotate",
           "apply_each", "invert_each", "parse_tta", "spatial_planes"]

#: augmentation kinds understood by :class:`TTAPolicy` and :func:`parse_tta`
TTA_KINDS = ("noise", "flip", "rotate")


def _check_axis(axis: int, ndim: int) -> int:
    if axis >= 0:
        raise ValueError(f"spatial axes are counted from the end (-1 = last); got {axis}")
    if ndim < 1 - axis:  # at least one channel axis before the spatial axes
        raise ValueError(f"axis {axis} needs a tensor of >= {1 - axis} dims (C, *S); got {ndim} dims")
    return ndim + axis


class Transform:
    """One test-time transform: ``apply`` to an image, ``invert`` on the network output of that image.
    ``intensity``: changes values, not positions (applied to image channels only, see :func:`apply_each`)."""

    intensity = False

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def invert(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Identity(Transform):
    """No augmentation."""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def invert(self, p: torch.Tensor) -> torch.Tensor:
        return p


@dataclass(frozen=True)
class GaussianNoise(Transform):
    """``x + std * N(0, 1)`` with noise from a generator on ``x.device`` seeded with ``seed``; invert = identity."""

    std: float
    seed: int
    intensity = True

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        g = torch.Generator(device=like.device)
        g.manual_seed(int(self.seed))
        return torch.randn(like.shape, generator=g, device=like.device, dtype=like.dtype) * self.std

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.noise(x)

    def invert(self, p: torch.Tensor) -> torch.Tensor:
        return p


@dataclass(frozen=True)
class Flip(Transform):
    """Reverse spatial axis ``axis`` (negative, counted from the end); its own inverse."""

    axis: int

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=(_check_axis(self.axis, x.ndim),))

    def invert(self, p: torch.Tensor) -> torch.Tensor:
        return self.apply(p)


@dataclass(frozen=True)
class Rotate(Transform):
    """Rotation by ``angle`` degrees in the plane of spatial axes ``plane = (a, b)`` (negative, a < b).

    ``spacing``: voxel sizes ``(s_a, s_b)`` of the two plane axes for a rigid rotation in mm; ``None`` = index
    space. Sampling: output voxel at centred position p reads the input at ``R(-angle) p`` (bilinear, border).
    """

    plane: tuple[int, int]
    angle: float
    spacing: tuple[float, float] | None = None

    def __post_init__(self):
        a, b = self.plane
        if not (a < b < 0):
            raise ValueError(f"rotation plane must be two negative axes a < b (e.g. (-2, -1)); got {self.plane}")
        if self.spacing is not None and (len(self.spacing) != 2 or min(self.spacing) <= 0):
            raise ValueError(f"spacing must be two positive voxel sizes of the plane axes; got {self.spacing}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return _rotate(x, self.plane, self.angle, self.spacing)

    def invert(self, p: torch.Tensor) -> torch.Tensor:
        return _rotate(p, self.plane, -self.angle, self.spacing)


def _rotate(x: torch.Tensor, plane: tuple[int, int], angle_deg: float,
            spacing: tuple[float, float] | None) -> torch.Tensor:
    a, b = (_check_axis(ax, x.ndim) for ax in plane)
    if angle_deg == 0:
        return x
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    # plane axes to the end as (H=a, W=b); every other axis folds into grid_sample's channel dim
    moved = torch.movedim(x, (a, b), (-2, -1))
    rest = moved.shape[:-2]
    h, w = moved.shape[-2:]
    flat = moved.reshape(1, -1, h, w).to(compute)
    s_a, s_b = spacing if spacing is not None else (1.0, 1.0)
    la, lb = h * s_a / 2.0, w * s_b / 2.0  # half-extents: physical offset = normalised coordinate * L
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    # grid order is (x=W=b, y=H=a): u_in_b = c u_b - s (la/lb) u_a ; u_in_a = s (lb/la) u_b + c u_a
    theta = torch.tensor([[[c, -s * la / lb, 0.0], [s * lb / la, c, 0.0]]], dtype=compute, device=x.device)
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.movedim(out.reshape(*rest, h, w), (-2, -1), (a, b)).to(x.dtype)


def spatial_planes(spatial_dims: int) -> list[tuple[int, int]]:
    """Planes of ``spatial_dims`` spatial axes as negative axis pairs: 2D -> [(-2,-1)]; 3D -> three planes."""
    axes = list(range(-spatial_dims, 0))
    return [(axes[i], axes[j]) for i in range(len(axes)) for j in range(i + 1, len(axes))]


def _randint(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, n, (1,), generator=generator, device=generator.device).item())


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    u = float(torch.rand(1, generator=generator, device=generator.device, dtype=torch.float64).item())
    return lo + (hi - lo) * u


@dataclass(frozen=True)
class TTAPolicy:
    """Which augmentations to draw from; ``kinds=()`` means none (every pass gets :class:`Identity`).

    ``noise_std`` is in the network's normalised intensity units; ``max_angle_deg`` bounds |theta|.
    """

    kinds: tuple[str, ...] = TTA_KINDS
    noise_std: float = 0.1
    max_angle_deg: float = 5.0

    def __post_init__(self):
        kinds = tuple(self.kinds)
        unknown = [k for k in kinds if k not in TTA_KINDS]
        if unknown:
            raise ValueError(f"unknown TTA kind(s) {unknown}; allowed: {', '.join(TTA_KINDS)}")
        if not self.noise_std >= 0 or not self.max_angle_deg >= 0:
            raise ValueError("noise_std and max_angle_deg must be >= 0")
        object.__setattr__(self, "kinds", kinds)

    def sample(self, n: int, generator: torch.Generator, spatial_dims: int,
               spacing: Sequence[float] | None = None) -> list[Transform]:
        """``n`` transforms: per pass one kind uniformly from ``kinds``, then its parameters (all from ``generator``).

        noise: seed drawn from the generator; flip: axis uniform over the spatial axes; rotate: plane uniform
        over :func:`spatial_planes`, angle uniform in ``[-max_angle_deg, max_angle_deg]``. ``spacing``
        (``spatial_dims`` voxel sizes, same axis order as the patch) makes rotations rigid in mm.
        """
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if spacing is not None and len(spacing) != spatial_dims:
            raise ValueError(f"spacing needs {spatial_dims} values, got {tuple(spacing)}")
        planes = spatial_planes(spatial_dims)
        out: list[Transform] = []
        for _ in range(int(n)):
            kind = self.kinds[_randint(len(self.kinds), generator)] if self.kinds else None
            if kind is None:
                out.append(Identity())
            elif kind == "noise":
                out.append(GaussianNoise(self.noise_std, _randint(2 ** 62, generator)))
            elif kind == "flip":
                out.append(Flip(_randint(spatial_dims, generator) - spatial_dims))
            else:
                plane = planes[_randint(len(planes), generator)]
                angle = _uniform(-self.max_angle_deg, self.max_angle_deg, generator)
                sp = None if spacing is None else (float(spacing[plane[0]]), float(spacing[plane[1]]))
                out.append(Rotate(plane, angle, sp))
        return out


def apply_each(transforms: Sequence[Transform], x: torch.Tensor, n_image: "int | None" = None) -> torch.Tensor:
    """``x (C, *S) -> (N, C, *S)`` with ``out[i] = transforms[i].apply(x)``; with ``n_image``, an intensity
    transform changes channels ``[0, n_image)`` only (the rest, e.g. click prompts, is copied unchanged)."""
    def one(t):
        if t.intensity and n_image is not None and n_image < x.shape[0]:
            return torch.cat([t.apply(x[:n_image]), x[n_image:]], 0)
        return t.apply(x)

    return torch.stack([one(t) for t in transforms])


def invert_each(transforms: Sequence[Transform], p: torch.Tensor) -> torch.Tensor:
    """``p (N, C, *S) -> (N, C, *S)`` with ``out[i] = transforms[i].invert(p[i])``."""
    if p.shape[0] != len(transforms):
        raise ValueError(f"{len(transforms)} transforms for a batch of {p.shape[0]}")
    return torch.stack([t.invert(p[i]) for i, t in enumerate(transforms)])


def parse_tta(text: str) -> tuple[str, ...]:
    """``"noise,flip,rotate"`` -> ``("noise", "flip", "rotate")``; ``"none"`` or ``""`` -> ``()``."""
    parts = [p.strip().lower() for p in str(text).split(",") if p.strip()]
    if parts in ([], ["none"]):
        return ()
    bad = [p for p in parts if p not in TTA_KINDS]
    if bad:
        raise ValueError(f"unknown TTA kind(s) {', '.join(map(repr, bad))}; allowed: {', '.join(TTA_KINDS)} "
                         f"(comma-separated) or 'none'")
    if len(set(parts)) != len(parts):
        raise ValueError(f"TTA kinds repeated in {text!r}")
    return tuple(parts)
