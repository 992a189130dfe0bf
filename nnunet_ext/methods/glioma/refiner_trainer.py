"""``KernelRefinerBCETrainer``: the paper's 3D refinement model for uncertainty-kernel crops (Yang et al. 2025,
sec. 2.2.3 and 3.1).

The paper trains the 3D nnU-Net on the high-uncertainty subvolumes exactly as the 2D one: binary cross-entropy
(kept for calibrated probabilities; the Dice alignment is left to the PSO fusion), Adam with initial learning rate
1e-5, batch size 10, early stopping on the validation DSC. Here: nnU-Net's 3D training (``3d_fullres`` of a crop
dataset from ``nnext kernel-dataset``), region-based outputs (sigmoid per WT / TC / ET, the dataset.json's
regions), loss :class:`~nnunet_ext.methods.glioma.spherical_trainer.RegionBCELoss` under nnU-Net's deep-supervision
weights,
``torch.optim.Adam`` (lr = plans option ``refiner.lr``, default 1e-5; nnU-Net's weight decay 3e-5 and poly decay
kept), no dropout. Batch size is a plans setting (``batch_size`` of the configuration); early stopping on the
validation Dice corresponds to nnU-Net's ``checkpoint_best.pth`` (best EMA pseudo-Dice on the fold's validation
crops: predict with ``-chk checkpoint_best.pth``). Train it in cross-validation on the grouped split of the crop
dataset (``splits_final.json``, :mod:`nnunet_ext.io.splits`) for out-of-fold fusion.

``MCDropoutTrainer`` (Dice + BCE, SGD 1e-2, dropout) stays usable as the refiner (any 3D region model works with
``-m kernel_refine``); it is not the paper's.
"""
from __future__ import annotations

import torch

from nnunet_ext.methods.glioma.options import RefinerOptions
from nnunet_ext.methods.glioma.spherical_trainer import SphericalProjectionBCETrainer
from nnunet_ext.trainers.base import NnextTrainer


class KernelRefinerBCETrainer(NnextTrainer):
    option_families = (RefinerOptions,)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if len(self.configuration_manager.patch_size) != 3:
            raise ValueError(f"{type(self).__name__} trains 3D configurations only (got {configuration!r}); "
                             "use -c 3d_fullres")
        if not self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__} needs a region-based dataset (sigmoid outputs, e.g. BraTS "
                             "WT / TC / ET as label lists)")
        self.initial_lr = self.options(RefinerOptions).lr

    # the same loss and optimiser as the paper's 2D trainer (one definition)
    _build_loss = SphericalProjectionBCETrainer._build_loss
    configure_optimizers = SphericalProjectionBCETrainer.configure_optimizers

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"kernel refiner: BCE per region {self.label_manager.foreground_regions}, "
                               f"Adam lr {self.initial_lr}")

    def checkpoint_metadata(self) -> dict:
        meta = super().checkpoint_metadata()
        meta.update(loss=type(self.loss).__name__ if hasattr(self, "loss") else None, optimizer="Adam",
                    initial_lr=self.initial_lr)
        return meta
