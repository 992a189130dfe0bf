"""Common base of every nnunet_ext trainer."""
from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ext.trainers.schedule import apply_training_schedule

#: key under which extension trainers store their own metadata inside nnU-Net checkpoints
CHECKPOINT_KEY = "nnext"


class NnextTrainer(nnUNetTrainer):
    """nnUNetTrainer that honours the plans' ``nnext_training`` schedule and records extension metadata.

    Subclasses add entries to :meth:`checkpoint_metadata`; they are saved under ``checkpoint["nnext"]``.
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.nnext_schedule = apply_training_schedule(self, plans, configuration)

    def on_train_start(self):
        super().on_train_start()
        if self.nnext_schedule:
            self.print_to_log_file(f"nnunet_ext training schedule from plans: {self.nnext_schedule}")

    def checkpoint_metadata(self) -> dict:
        return {"trainer": self.__class__.__name__, "schedule": dict(self.nnext_schedule)}

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus ``checkpoint["nnext"]``.

        nnU-Net builds and writes the checkpoint dict in one method with no hook, so we let it write, then
        add our key and rewrite atomically (re-implementing its dict would drift with nnU-Net versions).
        """
        super().save_checkpoint(filename)
        if self.local_rank != 0 or self.disable_checkpointing or not os.path.isfile(filename):
            return
        checkpoint = torch.load(filename, map_location="cpu", weights_only=False)
        checkpoint[CHECKPOINT_KEY] = self.checkpoint_metadata()
        from nnunet_ext.io.atomic_write import torch_save

        torch_save(checkpoint, filename)
