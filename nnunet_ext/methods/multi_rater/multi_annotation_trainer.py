"""``MultiAnnotationTrainer``: nnU-Net trained on every rater at once with the Multiple Annotation Fusion Loss
(Yang & Wang, sec. III-D, eq. 3) on a rater-set dataset (``nnext convert raters``, ``nnext convert lidc``).

The dataset stores K rater masks per case as one label map (:mod:`nnunet_ext.methods.multi_rater.raters`) and declares
one
nnU-Net region ``nodule`` = every foreground code, so the network has one sigmoid output and plain
``nnUNetv2_predict`` writes 1 = nodule. This trainer keeps the raw codes through the data pipeline (no
region conversion), samples segmentations by nearest neighbour in the spatial augmentation (codes survive
exactly; the default bilinear-argmax would also keep valid codes but not commute with per-rater
resampling), and decodes the mean rater mask m = (1/K) Σ_j GT_j per voxel at every deep-supervision scale:

    L = Φ(X, GT) + w_Dice · SoftDice(σ(X), m),   Φ = mean_j BCE(σ(X), GT_j) = BCE(σ(X), m)

``w_Dice`` = 1 (plans ``multi_annotation.dice_weight``; 0 = the paper's pure fusion BCE) keeps nnU-Net's usual Dice
term.
Deep supervision (every rater-set trainer, so the arms are identical): the full-resolution output has weight 1 and
the lower resolutions nnU-Net's relative weights λ_i / λ_0 (1/2, 1/4, ..., the lowest 0) on top — eq. 3 / 4 hold
exactly at full resolution, the deep-supervision terms are added.

``SingleReaderTrainer`` is the identical-arm baseline (issue 22): the same rater-set dataset, plans,
normalisation, pipeline and loss family, but its target is one reader, decoded from the rater-set label
(plans ``rater_training.reader``, 0 = the paper's Label_1): L = BCE(X, GT_r) + w_Dice · SoftDice(σ(X), GT_r).
Optimiser (plans ``rater_training.optimizer``): nnU-Net's SGD + poly, or ``sgdr`` — the paper's SGD with warm
restarts (:class:`nnunet_ext.methods.multi_rater.options.RaterTrainingOptions`). The online validation Dice is X_S >
0.5 against the majority
(m >= 0.5); nnU-Net's final validation scores against the union (the dataset's region).
"""
from __future__ import annotations

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_ext.methods.multi_rater.fusion_loss import decode_reader, decode_targets, fusion_bce, soft_dice_loss
from nnunet_ext.methods.multi_rater.options import MultiAnnotationOptions, RaterTrainingOptions
from nnunet_ext.methods.multi_rater.raters import ENCODING_NAME
from nnunet_ext.trainers.base import NnextTrainer
from nnunet_ext.trainers.ds_loss import DeepSupervisionLoss

#: dataset.json key written by the rater-set converters
DATASET_KEY = "nnext_raters"


def check_rater_dataset(trainer) -> None:
    """ValueError unless the dataset is a rater-set dataset with one ``nodule`` region (one sigmoid head)."""
    name = type(trainer).__name__
    info = trainer.dataset_json.get(DATASET_KEY)
    if not info or info.get("encoding") != ENCODING_NAME:
        raise ValueError(f"{name} needs a rater-set dataset (dataset.json '{DATASET_KEY}' with encoding "
                         f"'{ENCODING_NAME}'): build one with 'nnext convert raters' or 'nnext convert lidc'")
    lm = trainer.label_manager
    if not lm.has_regions or len(lm.foreground_regions) != 1:
        raise ValueError(f"{name}: the rater-set dataset.json must declare exactly one region over all codes")


def _nearest_seg(transforms):
    """Switch every spatial transform of a batchgeneratorsv2 pipeline to nearest-neighbour segmentation."""
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    for t in getattr(transforms, "transforms", []):
        if isinstance(t, SpatialTransform):
            t.mode_seg = "nearest"
    return transforms


class FusionLoss(DeepSupervisionLoss):
    """Σ_i λ_i [Φ(o_i, GT) + w_Dice · SoftDice(o_i, m_i)] over deep-supervision outputs (module docstring)."""

    def __init__(self, dice_weight: float = 1.0, batch_dice: bool = False, weight_factors=None,
                 reader: "int | None" = None):
        super().__init__(None, weight_factors)
        self.dice_weight, self.batch_dice, self.reader = dice_weight, batch_dice, reader

    def output_loss(self, logits, target, index):
        mean = decode_targets(target)["mean"] if self.reader is None else decode_reader(target, self.reader)
        loss = fusion_bce(logits, mean)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, mean, self.batch_dice)
        return loss


def ds_weights(n_outputs: int) -> np.ndarray:
    """Deep-supervision weights (1, 1/2, ..., 1/2^(n-2), 0): full resolution 1, the lowest resolution unused."""
    w = np.array([1 / (2 ** i) for i in range(n_outputs)])
    w[-1] = 0 if n_outputs > 1 else w[-1]
    return w


class SGDRScheduler(torch.optim.lr_scheduler.CosineAnnealingWarmRestarts):
    """SGD with warm restarts (Loshchilov & Hutter): lr(e) = lr0 · ½ (1 + cos(π (e mod T) / T)), T = period in
    epochs. nnU-Net calls ``step(current_epoch)`` at every epoch start, which this scheduler accepts as is."""

    def __init__(self, optimizer, period: int):
        super().__init__(optimizer, T_0=int(period), T_mult=1, eta_min=0.0)


class RaterSetTrainer(NnextTrainer):
    """Shared plumbing of the rater-set trainers: dataset check, raw codes through the pipeline, deep-supervision
    weights, optimiser, validation."""

    option_families = (RaterTrainingOptions,)

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        check_rater_dataset(self)

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        # regions=None: keep the rater-set codes (the loss decodes them); nearest-neighbour seg sampling
        return _nearest_seg(nnUNetTrainer.get_training_transforms(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded, foreground_labels=foreground_labels,
            regions=None, ignore_label=ignore_label))

    @staticmethod
    def get_validation_transforms(deep_supervision_scales, is_cascaded=False, foreground_labels=None,
                                  regions=None, ignore_label=None):
        return nnUNetTrainer.get_validation_transforms(deep_supervision_scales, is_cascaded=is_cascaded,
                                                       foreground_labels=foreground_labels, regions=None,
                                                       ignore_label=ignore_label)

    def deep_supervision_weights(self):
        """(1, 1/2, 1/4, ..., 0): nnU-Net's deep-supervision weights relative to the full-resolution output, which
        keeps weight 1 (module docstring); None without deep supervision."""
        if not self.enable_deep_supervision:
            return None
        return ds_weights(len(self._get_deep_supervision_scales()))

    def configure_optimizers(self):
        opts = self.options(RaterTrainingOptions)
        if opts.optimizer != "sgdr":
            return super().configure_optimizers()
        optimizer = torch.optim.SGD(self.network.parameters(), opts.sgdr_lr, momentum=opts.sgdr_momentum,
                                    weight_decay=opts.sgdr_weight_decay)
        self.initial_lr = opts.sgdr_lr
        return optimizer, SGDRScheduler(optimizer, opts.sgdr_period)

    @staticmethod
    def segmentation_logits(output):
        """Full-resolution X_S logits from whatever the network returned."""
        if isinstance(output, dict):
            output = output["xs"]
        return output[0] if isinstance(output, (list, tuple)) else output

    def validation_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device) for t in target] if isinstance(target, list) else target.to(self.device)
        with torch.no_grad():
            output = self.network(data)
            loss = self.loss(output, target)
        logits = self.segmentation_logits(output)
        full = target[0] if isinstance(target, list) else target
        pred = torch.sigmoid(logits) > 0.5
        ref = decode_targets(full)["mean"] >= 0.5
        axes = [0] + list(range(2, pred.ndim))
        tp = (pred & ref).sum(axes).cpu().numpy().astype(np.float64)
        fp = (pred & ~ref).sum(axes).cpu().numpy().astype(np.float64)
        fn = (~pred & ref).sum(axes).cpu().numpy().astype(np.float64)
        return {"loss": loss.detach().cpu().numpy(), "tp_hard": tp, "fp_hard": fp, "fn_hard": fn}


class MultiAnnotationTrainer(RaterSetTrainer):
    option_families = (MultiAnnotationOptions,)

    """nnU-Net's U-Net, one sigmoid output, L = Φ + w_Dice · SoftDice against the mean rater mask."""

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        return get_network_from_plans(configuration_manager.network_arch_class_name,
                                      configuration_manager.network_arch_init_kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)

    def _build_loss(self):
        return FusionLoss(
            self.options(MultiAnnotationOptions).dice_weight,
            self.configuration_manager.batch_dice,
            self.deep_supervision_weights(),
        )

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "loss": "fusion_bce + dice",
                "dice_weight": self.options(MultiAnnotationOptions).dice_weight}


class SingleReaderTrainer(MultiAnnotationTrainer):
    """The identical-arm baseline: MultiAnnotationTrainer's network, data and loss family, but the target is one
    reader decoded from the rater-set label (plans ``rater_training.reader``; 0 = Label_1): BCE + w_Dice · Dice."""

    def _build_loss(self):
        return FusionLoss(self.options(MultiAnnotationOptions).dice_weight, self.configuration_manager.batch_dice,
                          self.deep_supervision_weights(), reader=self.options(RaterTrainingOptions).reader)

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "loss": "bce + dice vs one reader",
                "reader": self.options(RaterTrainingOptions).reader}
