"""Click prompts: positions, classes, signs -> prompt channels (HN-UISeg, Chu et al. 2026, sec. 2.1-2.2).

A :class:`Click` is ``(position, label, positive)`` with the position either in world coordinates (mm, LPS,
SimpleITK's physical space, x-y-z order) or as a voxel index in SimpleITK's (x, y, z) index order (the order
nibabel and the autoPET IV click files use; fractional indices are allowed). Each click paints a stamp around
its nearest voxel (``floor(i + 0.5)``); with K foreground classes (class k = k-th foreground label value in
ascending order, e.g. GTVp, GTVn) and ``P_k`` / ``N_k`` = the maximum over the positive / negative stamps of
class k, the prompt tensor has one of two layouts (``layout``):

* ``split`` (2K channels, the click-prompt models since issue 18, as nnInteractive keeps positive and negative
  interactions apart): ``prompt[k] = P_k``, ``prompt[K + k] = N_k``, values in [0, 1]; a positive and a
  negative click of one class never cancel;
* ``signed`` (K channels, the models trained before): ``prompt[k] = P_k - N_k`` in [-1, 1]; overlapping stamps
  of opposite sign cancel (13 % of the stamped pixels of stage-3 batches did). A signed model is the split
  model whose first-layer weights on ``N_k`` are minus those on ``P_k`` (exactly), which is how
  :class:`nnunet_ext.methods.interactive.prompt_channels.PromptChannelNetwork` loads old checkpoints.

The HN-UISeg paper (sec. 2.1) has one prompt channel per class and does not say how negatives are encoded.
Stamps (``encoding``), with d = Euclidean distance to the centre voxel in *voxel units of
the painted grid* and r = ``radius`` (paper default 3 voxels, "circles with a radius of three voxels"):

* ``ball``      1 for d <= r, else 0 (the paper's circular mask; 123 voxels for r = 3 in 3D);
* ``edt``       distance ramp as nnInteractive (Isensee et al. 2025, ``interaction/point.py``): the Euclidean
                distance transform of the ball (distance to the nearest voxel outside it) divided by its
                value at the centre: 1 at the centre, ``1/sqrt(10)`` at the rim voxel (r, 0, 0) for r = 3;
* ``gaussian``  ``exp(-d^2 / (2 sigma^2))`` with ``sigma = r``, cut at d > 3 sigma (autoPET IV baselines
                smooth a delta with ``scipy.ndimage.gaussian_filter(sigma=3)``; we normalise the peak to 1 so
                the sign convention of the other encodings holds).

A click whose nearest voxel lies outside the image is rejected (:class:`InputError`); stamps are clipped at
the border. :class:`PreprocessedGrid` maps image indices into nnU-Net's preprocessed grid (transpose_forward,
crop to the non-zero bounding box, resampling), so prompts can be painted in the grid the network sees, with
the radius in network voxels as during training. A click with ``label=None`` (negative only) applies to every
class channel (grand-challenge "background" points).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

from nnunet_ext.errors import InputError

__all__ = [
    "Click",
    "ENCODINGS",
    "LAYOUTS",
    "prompt_channel_count",
    "layout_of",
    "class_channels",
    "world_to_index",
    "index_to_world",
    "click_indices",
    "stamp",
    "paint",
    "rasterize_voxels",
    "rasterize",
    "PreprocessedGrid",
    "rasterize_preprocessed",
]

ENCODINGS = ("ball", "edt", "gaussian")
LAYOUTS = ("split", "signed")


def prompt_channel_count(n_classes: int, layout: str = "split") -> int:
    """Prompt channels of ``n_classes`` foreground classes: 2K (``split``) or K (``signed``)."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown prompt layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return 2 * int(n_classes) if layout == "split" else int(n_classes)


def layout_of(n_prompt_channels: int, n_classes: int) -> str:
    """The layout a network's prompt-channel count says: 2K -> ``split``, K -> ``signed``."""
    if int(n_prompt_channels) == 2 * int(n_classes):
        return "split"
    if int(n_prompt_channels) == int(n_classes):
        return "signed"
    raise InputError(f"{n_prompt_channels} prompt channels fit neither layout of {n_classes} classes "
                     f"({2 * n_classes} split or {n_classes} signed)")
SPACES = ("world", "voxel")


@dataclass(frozen=True)
class Click:
    """One click. ``position``: (x, y, z) mm (``space="world"``) or SimpleITK (x, y, z) voxel index
    (``space="voxel"``). ``label``: class value (int) or name (str, resolved against the dataset's labels);
    ``None`` = every class (negative clicks only)."""

    position: tuple
    label: "int | str | None"
    positive: bool = True
    space: str = "world"

    def __post_init__(self):
        if self.space not in SPACES:
            raise InputError(f"click space must be one of {SPACES}, got {self.space!r}")
        if self.label is None and self.positive:
            raise InputError("a click without a class must be negative (background)")
        object.__setattr__(self, "position", tuple(float(v) for v in self.position))


def class_channels(classes: "Mapping[str, int] | Sequence[int]") -> dict:
    """``{label value: channel}`` and ``{name: channel}`` for the foreground classes (ascending values).

    ``classes``: dataset.json ``labels`` (name -> value; background 0 and region lists are not allowed) or a
    sequence of foreground values."""
    if isinstance(classes, Mapping):
        pairs = []
        for name, value in classes.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise InputError(f"click prompts need integer labels; class {name!r} is {value!r} (regions are "
                                 "not supported)")
            if value != 0:
                pairs.append((int(value), str(name)))
    else:
        pairs = [(int(v), str(int(v))) for v in classes if int(v) != 0]
    pairs.sort()
    out: dict = {}
    for channel, (value, name) in enumerate(pairs):
        out[value] = channel
        out[name] = channel
    return out


def _channel_of(click: Click, channels: dict, what: str) -> "list[int]":
    if click.label is None:
        return sorted({c for c in channels.values()})
    key = click.label
    if isinstance(key, str) and key not in channels and key.strip().lstrip("-").isdigit():
        key = int(key)
    if key not in channels:
        known = ", ".join(k for k in channels if isinstance(k, str))
        raise InputError(f"{what}: class {click.label!r} is not a foreground class of the dataset (known: {known})")
    return [channels[key]]


def _matrix(direction, ndim: int) -> np.ndarray:
    d = np.asarray(direction if direction is not None and len(direction) else np.eye(ndim).ravel(), float)
    return d.reshape(ndim, ndim)


def world_to_index(points_xyz, origin, spacing, direction=None) -> np.ndarray:
    """Continuous SimpleITK index (x, y, z) of physical points: ``i = S^-1 D^-1 (p - o)`` (SimpleITK's
    ``TransformPhysicalPointToContinuousIndex``)."""
    p = np.atleast_2d(np.asarray(points_xyz, float))
    n = p.shape[1]
    m = _matrix(direction, n) * np.asarray(spacing, float)[None, :]
    return np.linalg.solve(m, (p - np.asarray(origin, float)).T).T


def index_to_world(index_xyz, origin, spacing, direction=None) -> np.ndarray:
    """Physical point of a (continuous) SimpleITK index: ``p = o + D S i``."""
    i = np.atleast_2d(np.asarray(index_xyz, float))
    n = i.shape[1]
    m = _matrix(direction, n) * np.asarray(spacing, float)[None, :]
    return (m @ i.T).T + np.asarray(origin, float)


def _geometry(image):
    """(shape zyx, origin, spacing, direction) of a SimpleITK image or an ``(shape_zyx, Geometry)`` pair."""
    if isinstance(image, tuple):
        shape, geometry = image
        return tuple(int(s) for s in shape), geometry.origin, geometry.spacing, geometry.direction
    return tuple(image.GetSize())[::-1], image.GetOrigin(), image.GetSpacing(), image.GetDirection()


def click_indices(clicks: Iterable[Click], image, classes, source: str = "click") -> list:
    """``[(channels, continuous zyx index, positive)]`` in the image grid; InputError for a click outside the
    image or of an unknown class (message names ``source`` and the click number)."""
    shape, origin, spacing, direction = _geometry(image)
    channels = class_channels(classes)
    out = []
    for n, click in enumerate(clicks):
        what = f"{source} {n} ({click.space} {list(click.position)})"
        if len(click.position) != len(shape):
            raise InputError(f"{what}: needs {len(shape)} coordinates for a {len(shape)}D image")
        bad = [f"{'xyz'[i]} = {v}" for i, v in enumerate(click.position) if not np.isfinite(float(v))]
        if bad:
            raise InputError(f"{what}: coordinate {', '.join(bad)} is not a finite number (NaN or infinite)")
        xyz = (world_to_index(click.position, origin, spacing, direction)[0] if click.space == "world"
               else np.asarray(click.position, float))
        nearest = np.floor(xyz + 0.5).astype(int)
        size_xyz = np.asarray(shape[::-1])
        if np.any(nearest < 0) or np.any(nearest >= size_xyz):
            raise InputError(f"{what}: outside the image (voxel index {nearest.tolist()} not in "
                             f"[0, {(size_xyz - 1).tolist()}])")
        out.append((_channel_of(click, channels, what), xyz[::-1].copy(), bool(click.positive)))
    return out


@functools.lru_cache(maxsize=32)
def stamp(radius: float, encoding: str = "ball", ndim: int = 3) -> np.ndarray:
    """The stamp painted around a click centre, shape ``(2w + 1,) * ndim`` (see the module docstring)."""
    if encoding not in ENCODINGS:
        raise InputError(f"unknown click encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    if not radius > 0:
        raise InputError(f"click radius must be > 0 voxels, got {radius}")
    w = int(np.ceil(3 * radius)) if encoding == "gaussian" else int(np.floor(radius))
    axes = np.meshgrid(*([np.arange(-w, w + 1)] * ndim), indexing="ij")
    d2 = sum(a.astype(float) ** 2 for a in axes)
    if encoding == "gaussian":
        out = np.where(d2 <= (3 * radius) ** 2, np.exp(-d2 / (2.0 * radius ** 2)), 0.0)
    else:
        ball = d2 <= radius ** 2 + 1e-9
        if encoding == "ball":
            out = ball.astype(float)
        else:
            edt = ndimage.distance_transform_edt(np.pad(ball, 1))[(slice(1, -1),) * ndim]
            out = edt / edt[(w,) * ndim]
    out = out.astype(np.float32)
    out.setflags(write=False)
    return out


def paint(target: np.ndarray, centre_zyx, kernel: np.ndarray) -> None:
    """``target = max(target, kernel)`` with ``kernel`` centred on the voxel ``centre_zyx``, clipped at the
    border (nothing happens when the stamp misses ``target``)."""
    c = np.floor(np.asarray(centre_zyx, float) + 0.5).astype(int)
    w = np.asarray(kernel.shape) // 2
    lo, hi = c - w, c + w + 1
    t_lo, t_hi = np.maximum(lo, 0), np.minimum(hi, target.shape)
    if np.any(t_hi <= t_lo):
        return
    dst = tuple(slice(a, b) for a, b in zip(t_lo, t_hi))
    src = tuple(slice(a - l0, b - l0) for a, b, l0 in zip(t_lo, t_hi, lo))
    np.maximum(target[dst], kernel[src], out=target[dst])


def rasterize_voxels(points, shape, n_channels: int, radius: float = 3, encoding: str = "ball",
                     stamp_ndim: "int | None" = None, layout: str = "signed") -> np.ndarray:
    """Prompt from ``[(channels, zyx, positive)]`` (see module docstring): ``n_channels`` = K classes;
    ``(K, *shape)`` float32 for ``layout="signed"``, ``(2K, *shape)`` (positives, then negatives) for ``split``.
    ``stamp_ndim`` < ``len(shape)``: a lower-dimensional stamp in the last axes (a disc in the click's slice for
    2D configurations, whose training clicks are 2D)."""
    nd = len(shape) if stamp_ndim is None else int(stamp_ndim)
    kernel = stamp(float(radius), encoding, nd)
    kernel = kernel.reshape((1,) * (len(shape) - nd) + kernel.shape)
    pos = np.zeros((n_channels, *shape), np.float32)
    neg = np.zeros_like(pos)
    for chans, zyx, positive in points:
        for ch in ([chans] if isinstance(chans, (int, np.integer)) else chans):
            paint((pos if positive else neg)[ch], zyx, kernel)
    if layout == "split":
        return np.concatenate([pos, neg], 0)
    if layout != "signed":
        raise InputError(f"unknown prompt layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return pos - neg


def rasterize(clicks: Iterable[Click], image, classes, radius: float = 3, encoding: str = "ball",
              layout: str = "signed") -> np.ndarray:
    """Prompt channels ``(K or 2K, z, y, x)`` float32 in ``image``'s own grid (SimpleITK image, or a
    ``(shape_zyx, Geometry)`` pair). ``classes``: dataset.json labels or foreground values."""
    shape = _geometry(image)[0]
    n = len(set(class_channels(classes).values()))
    return rasterize_voxels(click_indices(clicks, image, classes), shape, n, radius, encoding, layout=layout)


@dataclass(frozen=True)
class PreprocessedGrid:
    """nnU-Net's image -> preprocessed index map (DefaultPreprocessor: transpose -> crop -> resample).

    For image index ``i`` (numpy zyx order): ``t = i[transpose_forward]``; ``c = t - bbox_start``; resampling
    to ``shape`` follows skimage ``resize`` / nnU-Net's separate-z ``map_coordinates`` convention
    ``c = (p + 0.5) * cropped / shape - 0.5``, hence ``p = (c + 0.5) * shape / cropped - 0.5`` per axis.
    """

    transpose_forward: tuple
    bbox: tuple  # ((start, stop), ...) in transposed axes, nnU-Net's bbox_used_for_cropping
    cropped_shape: tuple  # shape_after_cropping_and_before_resampling
    shape: tuple  # preprocessed spatial shape

    @classmethod
    def from_properties(cls, properties: Mapping, transpose_forward, preprocessed_shape) -> "PreprocessedGrid":
        return cls(tuple(int(a) for a in transpose_forward),
                   tuple((int(a), int(b)) for a, b in properties["bbox_used_for_cropping"]),
                   tuple(int(s) for s in properties["shape_after_cropping_and_before_resampling"]),
                   tuple(int(s) for s in preprocessed_shape))

    def map_index(self, zyx) -> np.ndarray:
        """Continuous preprocessed index (transposed axes) of continuous image index ``zyx`` (..., ndim)."""
        i = np.asarray(zyx, float)
        t = i[..., list(self.transpose_forward)]
        c = t - np.asarray([b[0] for b in self.bbox], float)
        return (c + 0.5) * np.asarray(self.shape, float) / np.asarray(self.cropped_shape, float) - 0.5

    def scale(self) -> np.ndarray:
        """Preprocessed voxels per image voxel along each transposed axis."""
        return np.asarray(self.shape, float) / np.asarray(self.cropped_shape, float)


def rasterize_preprocessed(clicks: Iterable[Click], image, classes, grid: PreprocessedGrid, radius: float = 3,
                           encoding: str = "ball", stamp_ndim: "int | None" = None,
                           layout: str = "signed") -> np.ndarray:
    """Prompt channels ``(K or 2K, *grid.shape)`` in nnU-Net's preprocessed grid (what the network sees);
    the stamp radius is in preprocessed voxels, as for clicks simulated on training patches. A click inside
    the image but outside the non-zero crop paints only the part of its stamp that reaches the crop."""
    points = [(ch, grid.map_index(zyx), pos) for ch, zyx, pos in click_indices(clicks, image, classes)]
    n = len(set(class_channels(classes).values()))
    return rasterize_voxels(points, grid.shape, n, radius, encoding, stamp_ndim, layout)
