"""Interactive session for a viewer plug-in (napari / 3D Slicer), shaped like nnInteractive's
``nnInteractiveInferenceSession`` (Isensee et al. 2025), for a click-prompt model (HN-UISeg, Chu 2026)::

    s = InteractiveSession.from_model(531, "3d_fullres", plans="nnextMCDropoutResEncUNetMPlans", device="cuda")
    s.set_image([ct, pet])                        # SimpleITK images (or file paths), one per channel
    box = s.add_point_interaction((x, y, z), "GTVn", include_interaction=True)   # voxel (x, y, z); or space="world"
    s.segmentation, s.probabilities, s.uncertainty    # numpy, the image's (z, y, x) grid
    box = s.undo(); box = s.reset_interactions()

Every call returns the changed region as a numpy slice tuple ``(z, y, x)`` of the image grid (``None`` when
nothing changed). :meth:`set_image` preprocesses the image once (nnU-Net's reader conventions and
preprocessor) and predicts the automatic branch window by window, keeping every window's logits. A click only
changes the prompt channels inside its stamp, so only the sliding windows whose extent meets the stamp are
recomputed; the Gaussian-weighted logit sum is updated by ``- g * old + g * new`` and the result exported
again. With a deterministic model (``n_samples=1``, the default) this equals a full re-prediction exactly
(tested); with ``n_samples > 1`` every window averages N MC-dropout passes (seeded per window: a recomputed
window with unchanged input gives the same passes) and ``uncertainty`` is the predictive entropy. TTA is not
used in the session (latency). The returned box is the union of the recomputed windows mapped back to the image.

A model with previous-prediction channels (``clicks.previous_prediction``, as nnInteractive) gets, with each
click, the segmentation shown before it (one-hot, preprocessed grid) and, as nnInteractive's local refinement,
only the windows meeting the click are recomputed; the result then depends on the order of the clicks, so it is
not a full re-prediction's. ``undo`` replays the remaining interactions from the automatic branch.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from nnunet_ext.errors import InputError


class InteractiveSession:
    def __init__(self, method, n_samples: int = 1, seed: int = 0):
        self.method, self.n_samples, self.seed = method, int(n_samples), int(seed)
        self.engine = method.engine
        if self.n_samples < 1:
            raise InputError(f"n_samples must be >= 1, got {n_samples}")
        self.interactions: list = []
        self.last_recomputed = 0

    @classmethod
    def from_model(cls, dataset, configuration: str, trainer: str = "ClickPromptErrorTrainer",
                   plans: str = "nnUNetPlans", folds=(0,), device: str = "cpu", n_samples: int = 1, seed: int = 0,
                   checkpoint: str = "checkpoint_final.pth") -> "InteractiveSession":
        from nnunet_ext.methods.interactive.interactive_predictor import InteractiveMethod

        sampling = InteractiveMethod.DETERMINISTIC if n_samples == 1 else dataclasses.replace(
            InteractiveMethod.DETERMINISTIC, dropout_p=None)  # the session draws its own passes per window
        method = InteractiveMethod.load(dataset, configuration, trainer, plans, folds, device, checkpoint, sampling)
        if len(method.engine.list_of_parameters) != 1:
            raise InputError("the interactive session uses one fold (folds=(F,))")
        return cls(method, n_samples, seed)

    # -- image -----------------------------------------------------------------------------------------------
    def set_image(self, images: Sequence) -> None:
        """One SimpleITK image or file path per channel (dataset.json order, same grid); predicts the automatic
        branch and forgets previous interactions."""
        import SimpleITK as sitk
        import torch

        from nnunet_ext.io.imageio import Geometry, read_sitk

        imgs = [read_sitk(i) if isinstance(i, (str, bytes)) or hasattr(i, "__fspath__") else i for i in images]
        n_in = self.engine.network.n_image_channels
        if len(imgs) != n_in:
            raise InputError(f"the model takes {n_in} image channel(s), got {len(imgs)}")
        g0 = Geometry.of(imgs[0])
        if any(i.GetSize() != imgs[0].GetSize() or not Geometry.of(i).matches(g0) for i in imgs[1:]):
            raise InputError("the image channels must share one grid (size, spacing, origin, direction)")
        data = np.stack([sitk.GetArrayFromImage(i).astype(np.float32) for i in imgs])
        props = {"spacing": list(imgs[0].GetSpacing())[::-1],
                 "sitk_stuff": {"spacing": imgs[0].GetSpacing(), "origin": imgs[0].GetOrigin(),
                                "direction": imgs[0].GetDirection()}}
        e = self.engine
        pre = e.configuration_manager.preprocessor_class(verbose=False)
        data, _, props = pre.run_case_npy(data, None, props, e.plans_manager, e.configuration_manager, e.dataset_json)
        self.properties, self.shape = props, data.shape[1:]
        self.image_shape, self.geometry = tuple(sitk.GetArrayViewFromImage(imgs[0]).shape), g0
        grid = e.window_grid(data)  # the engine's padding, windows and Gaussian: one sliding window for both
        padded, self._revert, self._slicers, self._gaussian = grid.padded, grid.revert, grid.slicers, grid.gaussian
        self._image = torch.from_numpy(np.ascontiguousarray(padded))
        self._prompt = torch.zeros((self.method.n_prompt, *padded.shape[1:]))
        self._previous = torch.zeros((self.method.n_previous, *padded.shape[1:]))
        k = e.label_manager.num_segmentation_heads
        self._sum = torch.zeros((k, *padded.shape[1:]))
        self._weight = torch.zeros(padded.shape[1:])
        self._window_logits = [None] * len(self._slicers)
        self.interactions = []
        self._load_network()
        self._predict_windows(range(len(self._slicers)))
        self._export()

    def _load_network(self):
        from nnunet_ext.core.mc_dropout import set_mc_dropout

        e = self.engine
        e.network.load_state_dict(e.list_of_parameters[0])
        e.network = e.network.to(e.device)
        e.network.eval()
        if self.n_samples > 1:
            set_mc_dropout(e.network, active=True, p=e.training_metadata.get("dropout_p"))

    def _predict_windows(self, indices) -> None:
        import torch

        from nnunet_ext.core.uncertainty import pooled_logits

        e = self.engine
        g = self._gaussian
        with torch.inference_mode():
            for i in indices:
                sl = self._slicers[i]
                channels = (slice(None), *sl[1:])
                x = torch.cat([self._image[sl], self._prompt[channels], self._previous[channels]], 0)[None]
                x = x.to(e.device)
                if self.n_samples == 1:
                    logits = e.network(x)[0].float().cpu()
                else:
                    torch.manual_seed(self.seed * 1_000_003 + i)
                    probs = torch.softmax(e.network(x.expand(self.n_samples, *x.shape[1:])).float(), 1).mean(0)
                    logits = pooled_logits(probs.cpu(), False)
                old = self._window_logits[i]
                if old is not None:
                    self._sum[sl] -= old * g
                else:
                    self._weight[sl[1:]] += g
                self._sum[sl] += logits * g
                self._window_logits[i] = logits

    def _export(self) -> None:
        from nnunet_ext.core.uncertainty import entropy
        from nnunet_ext.predictors.export import to_original

        crop = (slice(None), *self._revert[1:])
        logits = self.engine.blend(self._sum, self._weight)[crop]
        probs = self.engine.nonlin(logits[None])[0]
        seg, probs_o, maps = to_original(logits, {"entropy": entropy(probs, 0, False)}, self.properties,
                                         self.engine, ("entropy",))
        self.segmentation, self.probabilities, self.uncertainty = seg, probs_o, maps["entropy"]

    # -- interactions ----------------------------------------------------------------------------------------
    def add_point_interaction(self, coords, label, include_interaction: bool = True, space: str = "voxel"):
        """A positive (``include_interaction``) or negative click of class ``label`` (name or value) at ``coords``
        (voxel (x, y, z) index, or world mm with ``space="world"``); returns the changed region."""
        from nnunet_ext.methods.interactive.clicks import Click, click_indices

        if not hasattr(self, "_image"):
            raise InputError("set_image first")
        click = Click(tuple(coords), label, bool(include_interaction), space)
        click_indices([click], (self.image_shape, self.geometry), self.method.labels)  # validates now
        self.interactions.append(click)
        return self._update()

    def undo(self):
        """Remove the last interaction; returns the changed region (None if there was none)."""
        if not self.interactions:
            return None
        self.interactions.pop()
        if self.method.n_previous:
            return self._replay()
        return self._update()

    def _replay(self):
        """Previous-prediction models: the automatic branch, then every interaction in order (each seeing the
        segmentation left by the ones before); returns the whole image as the changed region."""
        kept, self.interactions = self.interactions, []
        self.recompute_all()
        for click in kept:
            self.interactions.append(click)
            self._update()
        self.last_recomputed = len(self._slicers)
        return tuple(slice(0, n) for n in self.image_shape)

    def _current_labels(self):
        """One-hot foreground of the current segmentation in the padded network grid (previous-prediction input)."""
        import torch

        labels = self.engine.blend(self._sum, self._weight).argmax(0)
        return torch.stack([labels == c for c in range(1, self.method.n_previous + 1)]).to(self._previous.dtype)

    def reset_interactions(self):
        """Remove every interaction (back to the automatic branch); returns the changed region."""
        if not self.interactions:
            return None
        self.interactions = []
        return self._update()

    def _update(self):
        import torch

        new = self.method.prompt_for(self.interactions, self.shape, self.properties)
        padded = torch.zeros_like(self._prompt)
        inner = tuple(slice(int(r.start or 0), int(r.start or 0) + s) for r, s in zip(self._revert[1:], self.shape))
        padded[(slice(None), *inner)] = torch.from_numpy(new)
        changed = (padded != self._prompt).any(0)
        if not changed.any():
            return None
        self._prompt = padded
        if self.method.n_previous:  # the segmentation the user saw when clicking
            self._previous = self._current_labels()
        hit = [i for i, sl in enumerate(self._slicers) if changed[sl[1:]].any()]
        self._predict_windows(hit)
        self._export()
        self.last_recomputed = len(hit)
        return self._box(hit)

    def recompute_all(self):
        """Re-predict every window with the current interactions (the full re-prediction the tile-local update
        avoids; for tests and latency benchmarks); returns the whole image as the changed region."""
        import torch

        new = self.method.prompt_for(self.interactions, self.shape, self.properties) if self.interactions else None
        self._prompt.zero_()
        self._previous.zero_()
        if new is not None:
            inner = tuple(slice(int(r.start or 0), int(r.start or 0) + s) for r, s in zip(self._revert[1:], self.shape))
            self._prompt[(slice(None), *inner)] = torch.from_numpy(new)
        self._predict_windows(range(len(self._slicers)))
        self._export()
        self.last_recomputed = len(self._slicers)
        return tuple(slice(0, n) for n in self.image_shape)

    def _box(self, windows):
        """Union of the windows' extents, preprocessed -> image (z, y, x) slices (inverse of PreprocessedGrid)."""
        from nnunet_ext.methods.interactive.clicks import PreprocessedGrid

        pm = self.engine.plans_manager
        grid = PreprocessedGrid.from_properties(self.properties, pm.transpose_forward, self.shape)
        offset = np.array([int(r.start or 0) for r in self._revert[1:]])
        def bounds(sl):  # 2D configurations index their slice with an int
            return [(s.start, s.stop) if isinstance(s, slice) else (s, s + 1) for s in sl[1:]]

        lo = np.min([[a for a, _ in bounds(self._slicers[i])] for i in windows], 0) - offset
        hi = np.max([[b for _, b in bounds(self._slicers[i])] for i in windows], 0) - offset
        scale = grid.scale()
        start = np.array([b[0] for b in grid.bbox])
        lo_t = np.floor((lo + 0.5) / scale - 0.5 + start).astype(int)
        hi_t = np.ceil((hi - 1 + 0.5) / scale - 0.5 + start).astype(int) + 1
        back = list(pm.transpose_backward)
        lo_o, hi_o = lo_t[back], hi_t[back]
        return tuple(slice(max(0, int(a)), min(int(n), int(b))) for a, b, n in zip(lo_o, hi_o, self.image_shape))
