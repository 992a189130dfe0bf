"""2D nnU-Net trainers with random spherical-projection augmentation (Yang et al. 2025, sec. 2.2.1, 2.2.4).

* ``SphericalProjectionTrainer``: nnU-Net's 2D training, region-based (sigmoid outputs) when the dataset.json
  has regions (BraTS: WT, TC, ET), nnU-Net's default loss (Dice + BCE for regions), plus
  :class:`~nnunet_ext.methods.glioma.spherical_transform.SphericalProjectionTransform` after the spatial transform.
* ``SphericalProjectionBCETrainer``: the paper's training: BCE only (keeps probabilities calibrated for the
  entropy) and Adam with initial lr 1e-5 (nnU-Net's poly decay kept; plans option ``spherical.lr``). The
  paper's batch size 10 is a plans setting; its early stopping on validation Dice corresponds to nnU-Net's
  ``checkpoint_best.pth`` (best EMA pseudo-Dice), use ``-chk checkpoint_best.pth`` at inference.
* ``..._WT`` / ``_TC`` / ``_ET``: one model per region (the paper trains one per region): the dataset.json the
  trainer sees (and writes next to the model) keeps only that region, so the network has one output.
  Regions are found by name ("whole", "core", "enhanc"), else by size (WT = most labels, ET = fewest). A
  one-label region is written as ``[l, l]`` (nnU-Net only treats label lists longer than one as regions).

Options: plans ``nnext_training.spherical`` (:class:`nnunet_ext.methods.glioma.options.SphericalOptions`): ``p``
(probability per sample, default 0.5), ``radius`` ([lo, hi] sphere radius R in pixels, default [32, 128]), ``lr``.
Recorded in the checkpoint under ``nnext``. 2D configurations only.
"""
from __future__ import annotations

import copy

import torch

from nnunet_ext.methods.glioma.options import SphericalOptions
from nnunet_ext.trainers.base import NnextTrainer

REGION_KEYWORDS = {"WT": ("whole",), "TC": ("core",), "ET": ("enhanc",)}


def select_region(dataset_json: dict, which: str) -> dict:
    """Copy of ``dataset_json`` keeping only region ``which`` (WT / TC / ET or a region name)."""
    labels = dataset_json["labels"]
    regions = [(k, v) for k, v in labels.items() if isinstance(v, (list, tuple)) and k != "ignore"]
    if not regions:
        raise ValueError("per-region trainers need a region-based dataset.json (label values as lists)")
    order = list(dataset_json.get("regions_class_order") or range(1, len(regions) + 1))
    keys = REGION_KEYWORDS.get(which.upper())
    match = [i for i, (k, _) in enumerate(regions) if k == which]
    if not match and keys:
        match = [i for i, (k, _) in enumerate(regions) if any(w in k.lower() for w in keys)]
    if len(match) != 1 and which.upper() in ("WT", "ET", "TC") and len(regions) == 3:
        by_size = sorted(range(3), key=lambda i: -len(regions[i][1]))
        match = [by_size[{"WT": 0, "TC": 1, "ET": 2}[which.upper()]]]
    if len(match) != 1:
        raise ValueError(f"region {which!r} not found among {[k for k, _ in regions]}")
    i = match[0]
    out = copy.deepcopy(dataset_json)
    out["labels"] = {k: v for k, v in labels.items() if not isinstance(v, (list, tuple)) and v == 0}
    out["labels"] = out["labels"] or {"background": 0}
    labels_i = list(regions[i][1])
    # nnU-Net 2.8.1's LabelManager is region-based only if some label value lists MORE than one label, so a
    # one-label region (ET = [3]) is written as [3, 3]: the same region, kept sigmoid / region-based
    out["labels"][regions[i][0]] = labels_i if len(set(labels_i)) > 1 else labels_i[:1] * 2
    out["regions_class_order"] = [order[i]]
    return out


class RegionBCELoss(torch.nn.Module):
    """Mean binary cross-entropy over region channels (targets one-hot regions, nnU-Net's region layout; with
    an ignore label the last target channel is the ignore mask, as in nnU-Net's DC_and_BCE_loss)."""

    def __init__(self, use_ignore_label: bool = False):
        super().__init__()
        self.use_ignore_label = use_ignore_label
        self.bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def forward(self, net_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.use_ignore_label:
            mask = ~target[:, -1:].bool()
            loss = self.bce(net_output, target[:, :-1].float())
            return (loss * mask).sum() / torch.clip(mask.sum() * net_output.shape[1], min=1e-8)
        return self.bce(net_output, target.float()).mean()


class SphericalProjectionTrainer(NnextTrainer):
    region: str | None = None  # per-region subclasses set WT / TC / ET
    option_families = (SphericalOptions,)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        if self.region is not None:
            dataset_json = select_region(dataset_json, self.region)
        super().__init__(plans, configuration, fold, dataset_json, device)
        if len(self.configuration_manager.patch_size) != 2:
            raise ValueError(f"{type(self).__name__} trains 2D configurations only (got {configuration!r} with "
                             f"patch {self.configuration_manager.patch_size}); use -c 2d")
        opts = self.options(SphericalOptions)
        self.spherical_p, self.spherical_radius = opts.p, tuple(opts.radius)

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

        from nnunet_ext.methods.glioma.spherical_transform import SphericalProjectionTransform

        pipeline = super().get_training_transforms(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded, foreground_labels=foreground_labels,
            regions=regions, ignore_label=ignore_label)
        steps = pipeline.transforms
        at = next(i for i, t in enumerate(steps) if isinstance(t, SpatialTransform)) + 1
        steps.insert(at, SphericalProjectionTransform(self.spherical_p, self.spherical_radius))
        return pipeline

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(
            f"spherical projection: p = {self.spherical_p}, R in {self.spherical_radius} px; "
            f"regions {self.label_manager.foreground_regions if self.label_manager.has_regions else None}"
        )

    def checkpoint_metadata(self) -> dict:
        meta = super().checkpoint_metadata()
        meta.update(spherical_p=self.spherical_p, spherical_radius=list(self.spherical_radius), region=self.region,
                    loss=type(self.loss).__name__ if hasattr(self, "loss") else None)
        return meta


class SphericalProjectionBCETrainer(SphericalProjectionTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if not self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__} needs a region-based dataset (sigmoid outputs)")
        self.initial_lr = self.options(SphericalOptions).lr

    def _build_loss(self):
        import numpy as np
        from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

        loss = RegionBCELoss(self.label_manager.ignore_label is not None)
        if self.enable_deep_supervision:  # nnU-Net's weights: halved per resolution, the lowest one unused
            weights = np.array([1 / (2 ** i) for i in range(len(self._get_deep_supervision_scales()))])
            weights[-1] = 0
            loss = DeepSupervisionWrapper(loss, weights / weights.sum())
        return loss

    def configure_optimizers(self):
        from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

        optimizer = torch.optim.Adam(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


def _per_region(base: type, region: str) -> type:
    cls = type(f"{base.__name__}_{region}", (base,), {"region": region, "__module__": __name__,
                                                       "__doc__": f"{base.__name__} for region {region} only."})
    return cls


SphericalProjectionTrainer_WT = _per_region(SphericalProjectionTrainer, "WT")
SphericalProjectionTrainer_TC = _per_region(SphericalProjectionTrainer, "TC")
SphericalProjectionTrainer_ET = _per_region(SphericalProjectionTrainer, "ET")
SphericalProjectionBCETrainer_WT = _per_region(SphericalProjectionBCETrainer, "WT")
SphericalProjectionBCETrainer_TC = _per_region(SphericalProjectionBCETrainer, "TC")
SphericalProjectionBCETrainer_ET = _per_region(SphericalProjectionBCETrainer, "ET")
