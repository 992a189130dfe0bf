"""``-m spherical``: spherical-projection ensemble of a 2D region model (Yang et al. 2025, sec. 2.2.1, eq. 1).

Every slice of the preprocessed case (nnU-Net's 2d configuration: crop to non-zero, resample, normalise) is
warped around every origin of a grid of ``--stride`` pixels (only inside the ROI mask: ``auto`` = non-zero
voxels of the image, ``none``, or ``DIR/CASE.nii.gz``), each warped slice is predicted (sigmoid, tiled with
nnU-Net's Gaussian when the slice exceeds the patch), the probabilities are warped back, and per voxel the mean
and a ``--bins`` histogram are streamed (:func:`nnunet_ext.methods.glioma.spherical_ensemble.ensemble_slice`). Slices
without an origin inside the ROI are predicted once without warp (uncertainty 0).

Outputs: ``CASE.nii.gz`` (mean > 0.5 per region, painted with ``regions_class_order``), ``CASE_uncertainty``
(``entropy``: eq. 1 summed over regions, in nats by default like every nnunet_ext map: ``--entropy-base 2``
gives the paper's bits, bits = nats / ln 2; ``variance``), per region ``CASE_prob_<TAG>`` (mean probability) and
``CASE_entropy_<TAG>`` (eq. 1), TAG = WT / TC / ET (else r1, r2, ...), ``CASE_spherical.json`` (origins per
slice). Stride and R are in pixels of the 2d configuration's grid. A model folder's ``calibration.json`` is
not applied (the projections' probabilities are used as predicted). Refused: 3D models, softmax (non-region)
models, anisotropic in-plane spacing (the radial warp assumes square pixels: resample) and plans whose 2D slices
are not the image's z axis (``transpose_forward[0] != 0``).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.methods.glioma.options import SphericalEnsembleOptions
from nnunet_ext.predictors.model_method import ModelMethod


def add_spherical_arguments(group) -> None:
    """The ensemble's flags, from :class:`~nnunet_ext.methods.glioma.options.SphericalEnsembleOptions`."""
    SphericalEnsembleOptions.add_arguments(None, group=group)


def spherical_options(args) -> SphericalEnsembleOptions:
    """The ensemble options given on the command line (one-line InputError naming the flag)."""
    try:
        return SphericalEnsembleOptions.from_args(args)
    except ValueError as e:
        raise InputError(str(e)) from None


class SphericalMethod(ModelMethod):
    name = "spherical"
    map_names = ("entropy", "variance")
    default_uncertainty = "entropy"

    @classmethod
    def add_arguments(cls, group) -> None:
        add_spherical_arguments(group)

    @classmethod
    def from_args(cls, args, common, model=None):
        opts = spherical_options(args)
        method = super().from_args(args, common, model)
        e = method.engine
        folder = method.model_info["model_folder"]
        if len(e.configuration_manager.patch_size) != 2:
            raise InputError(f"{folder}: -m spherical needs a 2d model, this is {e.configuration_name}")
        if not e.label_manager.has_regions:
            raise InputError(f"{folder}: -m spherical needs a region-based (sigmoid) model, e.g. "
                             "SphericalProjectionTrainer on a dataset with regions")
        sp = [float(s) for s in e.configuration_manager.spacing]
        if abs(sp[0] - sp[1]) > 0.01 * max(sp):
            raise InputError(f"{folder}: in-plane spacing {sp} is anisotropic; the spherical warp needs square "
                             "pixels (resample the data isotropically in-plane and retrain)")
        if list(e.plans_manager.transpose_forward)[0] != 0:
            raise InputError(f"{folder}: the plans slice along axis {e.plans_manager.transpose_forward[0]} (not the "
                             "image's z axis); -m spherical predicts axial slices only")
        method.opts = opts.to_dict()
        from nnunet_ext.methods.glioma.fusion import region_tags

        method.tags = [t for t, _, _ in region_tags(e.dataset_json["labels"])]
        method.sampling = None  # projections replace the engine's passes (its N-pass checks do not apply)
        return method

    def side_outputs(self):
        return tuple(f"{k}_{t}" for k in ("prob", "entropy") for t in self.tags), ("spherical",)

    def settings(self) -> dict:
        return {**self.model_info, "spherical": dict(self.opts)}

    # -- ROI mask in the preprocessed grid ---------------------------------------------------------------------
    def roi_mask(self, prepared) -> "np.ndarray | None":
        """Boolean mask ``(Z, H, W)`` of the preprocessed grid, or None (``--roi-mask none``)."""
        from nnunet_ext.io.imageio import read_image

        mode = self.opts["roi_mask"]
        if mode == "none":
            return None
        if mode == "auto":
            mask = None
            for f in prepared.case.files:
                arr, _ = read_image(f)
                mask = (arr != 0) if mask is None else (mask | (arr != 0))
        else:
            path = os.path.join(mode, prepared.case.case_id + ".nii.gz")
            arr, _ = read_image(path)
            mask = arr > 0
        return to_preprocessed_grid(mask, prepared.properties, self.engine.plans_manager,
                                    prepared.data.shape[1:])

    # -- the case ----------------------------------------------------------------------------------------------
    def spherical_volume(self, data: np.ndarray, mask, ctx):
        """Preprocessed ``(C, Z, H, W)`` -> (mean (R, Z, H, W), entropy (R, Z, H, W), variance (Z, H, W), origins
        per slice) as torch tensors on the CPU."""
        import torch
        from acvl_utils.cropping_and_padding.padding import pad_nd_image

        from nnunet_ext.methods.glioma.spherical import origin_grid
        from nnunet_ext.methods.glioma.spherical_ensemble import ensemble_slice

        e, o = self.engine, self.opts
        patch = tuple(int(v) for v in e.configuration_manager.patch_size)
        net = e.network.to(e.device).eval()
        r = e.label_manager.num_segmentation_heads
        zdim = data.shape[1]
        mean = torch.zeros((r, *data.shape[1:]), dtype=torch.float32)
        ent, var, counts = torch.zeros_like(mean), torch.zeros(data.shape[1:], dtype=torch.float32), []
        predict = _tiled_predictor(net, patch, e.device, e.tile_step_size, e.use_gaussian)
        for z in range(zdim):
            x = torch.from_numpy(np.ascontiguousarray(data[:, z])).float()
            xp, revert = pad_nd_image(x, patch, "constant", {"value": 0}, True, None)
            h, w = x.shape[-2:]
            off = [sl.start or 0 for sl in revert[1:]]
            origins = origin_grid((h, w), o["stride"], None if mask is None else mask[z])
            res = ensemble_slice(xp.to(e.device), predict, origins + np.asarray(off), o["radius"], o["bins"],
                                 o["origin_batch"], o["entropy_base"], o["entropy_normalise"])
            crop = (slice(None), *revert[1:])
            mean[:, z], ent[:, z], var[z] = res.mean[crop].cpu(), res.entropy[crop].cpu(), res.variance[crop[1:]].cpu()
            counts.append(int(res.n_origins))
        if mask is not None and sum(counts) == 0:
            raise InputError(f"case {ctx.case_id}: stride {o['stride']} leaves no origin inside the ROI mask "
                             f"({o['roi_mask']}); lower --stride or use --roi-mask none")
        return mean, ent, var, counts

    def predict_case(self, prepared, ctx):
        from nnunet_ext.core.uncertainty import pooled_logits
        from nnunet_ext.predictors.export import geometry_from_properties, to_original
        from nnunet_ext.predictors.method import CaseResult

        mean, ent, var, counts = self.spherical_volume(prepared.data, self.roi_mask(prepared), ctx)
        maps = {"entropy": ent.sum(0), "variance": var, **{f"entropy_{t}": ent[i] for i, t in enumerate(self.tags)}}
        seg, probs, out = to_original(pooled_logits(mean, True), maps, prepared.properties, self.engine, tuple(maps))
        images = {**{f"prob_{t}": probs[i].astype(np.float32) for i, t in enumerate(self.tags)},
                  **{f"entropy_{t}": out[f"entropy_{t}"] for t in self.tags}}
        info = {"origins_per_slice": counts, "n_origins": int(sum(counts)), **self.opts}
        return CaseResult(geometry_from_properties(prepared.properties), seg, probs,
                          {k: out[k] for k in ("entropy", "variance")}, images, {"spherical": info},
                          properties=prepared.properties)


def to_preprocessed_grid(mask: np.ndarray, properties: dict, plans_manager, shape) -> np.ndarray:
    """A mask in the original (z, y, x) grid -> nnU-Net's preprocessed grid: crop to the non-zero bounding box,
    transpose, nearest-neighbour resize to ``shape``."""
    bbox = properties["bbox_used_for_cropping"]
    m = mask[tuple(slice(a, b) for a, b in bbox)].transpose(plans_manager.transpose_forward)
    idx = [np.minimum((np.arange(n) + 0.5) * s / n, s - 1).astype(int) for n, s in zip(shape, m.shape)]
    return m[np.ix_(*idx)]


def _tiled_predictor(net, patch, device, step_size, use_gaussian):
    """``(k, C, H, W)`` (H, W >= patch) -> sigmoid probabilities ``(k, R, H, W)``: nnU-Net's 2D window grid
    and Gaussian-weighted logits when the slice is larger than the patch. On CUDA the network runs under autocast
    (float16), as in nnU-Net's own predictor; logits are accumulated in float32."""
    import torch
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window

    gaussian = (compute_gaussian(patch, sigma_scale=1. / 8, value_scaling_factor=10, device=device).float()
                if use_gaussian else torch.ones(patch, device=device))

    device = torch.device(device)

    @torch.inference_mode()
    def predict(batch):
        with torch.autocast(device.type) if device.type == "cuda" else contextlib.nullcontext():
            return _predict(batch)

    def _predict(batch):
        batch = batch.to(device)
        h, w = batch.shape[-2:]
        if (h, w) == tuple(patch):
            return torch.sigmoid(net(batch).float())
        steps = compute_steps_for_sliding_window((h, w), patch, step_size)
        acc, weight = None, torch.zeros((h, w), device=device)
        for y in steps[0]:
            for x in steps[1]:
                sl = (slice(y, y + patch[0]), slice(x, x + patch[1]))
                logits = net(batch[(slice(None), slice(None), *sl)]).float()
                if acc is None:
                    acc = torch.zeros((batch.shape[0], logits.shape[1], h, w), device=device)
                acc[(slice(None), slice(None), *sl)] += logits * gaussian
                weight[sl] += gaussian
        return torch.sigmoid(acc / weight)

    return predict
