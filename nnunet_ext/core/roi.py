"""ROI boxes around connected components (ROI-0margin / ROI-16margin, Isler et al. 2025 sec. III.B).

A box is a tuple of ``slice(start, stop)`` (step None), one per array axis, with ``0 <= start < stop <= size``:
the component's bounding box grown by ``margin_vox`` on every side and clipped at the image border.
:func:`paste` is the exact inverse of :func:`crop` inside the box and leaves everything outside untouched.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["RoiBlend", "crop", "grow_box", "paste", "roi_boxes"]

Box = tuple[slice, ...]


def _check_margin(margin_vox) -> int:
    if int(margin_vox) != margin_vox or margin_vox < 0:
        raise ValueError(f"margin_vox must be an integer >= 0, got {margin_vox!r}")
    return int(margin_vox)


def _grow(lo: Sequence[int], hi: Sequence[int], margin: int, shape: Sequence[int]) -> Box:
    return tuple(slice(max(int(a) - margin, 0), min(int(b) + margin, int(s))) for a, b, s in zip(lo, hi, shape))


def grow_box(bbox: Sequence[Sequence[int]], margin_vox: int, shape: Sequence[int]) -> Box:
    """Box of a ``[[start, stop), ...]`` bounding box (as in the component filter's log) grown by ``margin_vox``
    on every side and clipped at the border of an array of ``shape``."""
    margin = _check_margin(margin_vox)
    if len(bbox) != len(shape):
        raise ValueError(f"bbox has {len(bbox)} axes, shape {tuple(shape)} has {len(shape)}")
    return _grow([b[0] for b in bbox], [b[1] for b in bbox], margin, shape)


def roi_boxes(mask: np.ndarray, margin_vox: int = 0, per_component: bool = True, connectivity: int = 26) -> list[Box]:
    """Bounding boxes (+ ``margin_vox``, clipped) of the connected components of ``mask > 0`` (cc3d,
    ``connectivity`` 26 in 3D / 8 in 2D by default), in cc3d label order (first voxel in C order); with
    ``per_component=False`` one box around all foreground. Empty mask -> ``[]``."""
    mask = np.asarray(mask)
    margin = _check_margin(margin_vox)
    fg = mask > 0
    if not fg.any():
        return []
    if not per_component:
        idx = np.nonzero(fg)
        return [_grow([i.min() for i in idx], [i.max() + 1 for i in idx], margin, mask.shape)]
    import cc3d

    if mask.ndim == 2 and connectivity == 26:
        connectivity = 8
    labels = cc3d.connected_components(fg.view(np.uint8), connectivity=connectivity)
    stats = cc3d.statistics(labels)
    boxes = []
    for bb in stats["bounding_boxes"][1:]:
        if bb is None:
            continue
        boxes.append(_grow([s.start for s in bb], [s.stop for s in bb], margin, mask.shape))
    return boxes


def crop(volume: np.ndarray, box: Box) -> np.ndarray:
    """A copy of ``volume[box]`` (leading non-spatial axes, e.g. channels, are kept if ``box`` is shorter)."""
    volume = np.asarray(volume)
    if len(box) > volume.ndim:
        raise ValueError(f"box has {len(box)} axes, volume only {volume.ndim}")
    return volume[(Ellipsis,) + tuple(box)].copy()


def paste(target: np.ndarray | Sequence[int], patch: np.ndarray, box: Box, fill=0) -> np.ndarray:
    """Write ``patch`` into ``box`` of ``target``.

    ``target`` an array: it is modified IN PLACE and returned (everything outside the box untouched).
    ``target`` a shape: a new array of ``patch``'s dtype filled with ``fill`` is created. Raises ``ValueError``
    if ``patch`` does not have the box's shape.
    """
    if isinstance(target, np.ndarray):
        out = target
    else:
        out = np.full(tuple(int(s) for s in target), fill, dtype=np.asarray(patch).dtype)
    region = out[(Ellipsis,) + tuple(box)]
    if region.shape != np.shape(patch):
        raise ValueError(f"patch shape {np.shape(patch)} does not match box region shape {region.shape}")
    out[(Ellipsis,) + tuple(box)] = patch
    return out


class RoiBlend:
    """Paste-back of per-ROI predictions into the full image when ROIs may overlap (ROI-16margin boxes of
    nearby components do).

    Every ROI adds its class probabilities ``(K, *box)`` and scalar maps ``(*box)``; a voxel covered by n ROIs
    gets the mean of the n values (``sum / count``). Outside every ROI the probabilities are ``outside``
    (background = 1 for softmax outputs, all 0 for sigmoid regions) and the maps are 0. With a single ROI, or
    non-overlapping ROIs, this is exactly :func:`paste` of each ROI's values.
    """

    def __init__(self, shape: Sequence[int], num_classes: int, map_names: Sequence[str] = (),
                 outside: "Sequence[float] | None" = None):
        self.shape = tuple(int(s) for s in shape)
        self.probs = np.zeros((num_classes, *self.shape), np.float32)
        self.maps = {n: np.zeros(self.shape, np.float32) for n in dict.fromkeys(map_names)}
        self.count = np.zeros(self.shape, np.uint16)
        self.outside = np.zeros(num_classes, np.float32) if outside is None else np.asarray(outside, np.float32)

    def add(self, box: Box, probs: np.ndarray, maps: "dict[str, np.ndarray] | None" = None) -> None:
        region = (slice(None),) + tuple(box)
        if self.probs[region].shape != np.shape(probs):
            raise ValueError(f"probabilities {np.shape(probs)} do not match the box {self.probs[region].shape}")
        self.probs[region] += probs
        for name, values in (maps or {}).items():
            self.maps[name][tuple(box)] += values
        self.count[tuple(box)] += 1

    def result(self) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """``(probabilities (K, *shape), {name: map}, covered mask)``."""
        covered = self.count > 0
        n = np.maximum(self.count, 1).astype(np.float32)
        probs = self.probs / n
        probs[:, ~covered] = self.outside[:, None]
        return probs, {k: v / n for k, v in self.maps.items()}, covered
