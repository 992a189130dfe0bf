"""Simulated-click evaluation protocols (HN-UISeg, Chu 2026 sec. 4, appendix B, D.2; autoPET IV).

A protocol turns a reference (and, for ``errors``, the previous prediction) into the *cumulative* clicks of
each refinement step; step 0 is the automatic prediction (no clicks). Clicks are
``(channel | None, zyx, positive)`` in the reference's grid (:mod:`nnunet_ext.methods.interactive.click_simulation`);
:func:`as_clicks` turns them into :class:`nnunet_ext.methods.interactive.clicks.Click` objects (voxel space).

* ``errors`` -- per step and class one click at the deepest voxel of the largest error component of the
  current prediction (positive in a missed region, negative in a false one) of at least ``min_voxels`` voxels,
  added to the previous clicks; a component clicked before is skipped unless the model changed it (then the
  next-largest is clicked), and a click position is never repeated, so every counted click is a distinct one
  (a class without an eligible component gets no click at that step); needs the prediction of the previous
  step (:meth:`ClickProtocol.step`).
* ``autopet`` -- pre-simulated from the reference (autoPET IV interactive track): the deepest interior voxel
  of the k largest lesions of each class at step k (a class with fewer lesions stops gaining clicks) plus k
  background clicks at the largest non-lesion hot spots of ``image`` (PET), cumulative.
* ``each-lesion`` -- one step: one positive click in every lesion of every class (the paper's Table 1
  setting, "one click for each lesion").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.methods.interactive.click_simulation import error_clicks, hotspot_clicks, lesion_clicks
from nnunet_ext.methods.interactive.clicks import Click

PROTOCOLS = ("errors", "autopet", "each-lesion")


def as_clicks(points, classes: Sequence[int]) -> list:
    """``[(channel | None, zyx, positive)]`` -> voxel-space :class:`Click` objects (SimpleITK x, y, z order)."""
    return [Click(tuple(float(v) for v in zyx[::-1]), None if ch is None else int(classes[ch]), bool(pos), "voxel")
            for ch, zyx, pos in points]


class ClickProtocol:
    """Cumulative clicks per refinement step. ``max_clicks`` = steps for ``errors`` / ``autopet`` (clicks per
    class); ``each-lesion`` has one step. ``image`` (e.g. PET) is needed for ``autopet``'s background clicks
    (without it, ``autopet`` has no background clicks)."""

    def __init__(self, name: str, reference: np.ndarray, classes: Sequence[int], max_clicks: int = 5,
                 image: "np.ndarray | None" = None, spacing: "Sequence[float] | None" = None,
                 hotspot_percentile: float = 99.75, min_voxels: int = 1):
        if name not in PROTOCOLS:
            raise InputError(f"unknown click protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
        if max_clicks < 1:
            raise InputError(f"--max-clicks must be >= 1, got {max_clicks}")
        if image is not None and image.shape != reference.shape:
            raise InputError(f"protocol image shape {image.shape} differs from the reference {reference.shape}")
        self.name, self.reference, self.classes = name, np.asarray(reference), tuple(int(c) for c in classes)
        self.max_clicks, self.spacing, self.min_voxels = int(max_clicks), spacing, int(min_voxels)
        self._seen: set = set()
        self.n_steps = 1 if name == "each-lesion" else self.max_clicks
        self.clicks: list = []
        self._done = 0
        self._schedule = None
        if name == "autopet":
            by_class = [[p for p in lesion_clicks(self.reference, self.classes, self.max_clicks, spacing)
                         if p[0] == ch] for ch in range(len(self.classes))]
            background = ([] if image is None else
                          hotspot_clicks(np.asarray(image), self.reference, self.max_clicks, hotspot_percentile,
                                         spacing))
            self._schedule = [sum((c[k:k + 1] for c in by_class), []) + background[k:k + 1]
                              for k in range(self.max_clicks)]

    def step(self, k: int, prediction: "np.ndarray | None" = None) -> list:
        """Cumulative clicks of step ``k`` (1-based); ``errors`` needs the prediction of step ``k - 1`` and must
        be called for k = 1, 2, ... in order."""
        if not 1 <= k <= self.n_steps:
            raise ValueError(f"step {k} outside 1..{self.n_steps} of protocol {self.name}")
        if self.name == "errors" and k != self._done + 1:
            raise ValueError(f"the errors protocol runs its steps in order: expected step {self._done + 1}, got {k}")
        if self.name == "each-lesion":
            self.clicks = lesion_clicks(self.reference, self.classes, None, self.spacing)
        elif self.name == "autopet":
            self.clicks = sum(self._schedule[:k], [])
        else:
            if prediction is None:
                raise ValueError("the errors protocol needs the previous step's prediction")
            self.clicks = self.clicks + error_clicks(self.reference, np.asarray(prediction), self.classes, 1,
                                                     self.spacing, self.min_voxels, seen=self._seen)
        self._done = k
        return list(self.clicks)
