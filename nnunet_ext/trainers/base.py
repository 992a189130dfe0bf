"""Common base of every nnunet_ext trainer."""
from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ext.core.options import Options
from nnunet_ext.trainers.plans_options import PLANS_KEY, plans_options, refuse_legacy_environment
from nnunet_ext.trainers.schedule import apply_training_schedule

#: key under which extension trainers store their own metadata inside nnU-Net checkpoints
CHECKPOINT_KEY = "nnext"


class NnextTrainer(nnUNetTrainer):
    """nnUNetTrainer that honours the plans' ``nnext_training`` schedule and records extension metadata.

    Subclasses add entries to :meth:`checkpoint_metadata`; they are saved under ``checkpoint["nnext"]``.
    Subclasses list the option families they read in ``option_families``: each is read from the plans'
    ``nnext_training`` block at construction (:meth:`options`) and recorded in ``checkpoint["nnext"]["options"]``.
    """

    #: option families (:class:`nnunet_ext.core.options.Options` subclasses) this trainer reads from the plans
    option_families: tuple = ()

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        refuse_legacy_environment()
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.nnext_schedule = apply_training_schedule(self, plans, configuration)
        self.nnext_options = {family.SECTION: plans_options(plans, configuration, family)
                              for family in self.all_option_families()}

    @classmethod
    def all_option_families(cls) -> tuple:
        """``option_families`` of this class and its bases, each once, in method resolution order."""
        seen: dict = {}
        for klass in reversed(cls.__mro__):
            for family in klass.__dict__.get("option_families", ()):
                seen.setdefault(family.SECTION, family)
        return tuple(seen.values())

    def options(self, family: "type[Options]"):
        """The plans' options of ``family`` for this trainer's configuration."""
        return self.nnext_options[family.SECTION]

    def on_train_start(self):
        super().on_train_start()
        if self.nnext_schedule:
            self.print_to_log_file(f"nnunet_ext training schedule from plans: {self.nnext_schedule}")
        for section, opts in self.nnext_options.items():
            self.print_to_log_file(f"nnunet_ext options {section} (plans {PLANS_KEY}.{section}): {opts.to_dict()}")

    def on_train_end(self):
        super().on_train_end()
        self.nnext_trained_here = True  # the validation that follows is the one after training

    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's validation, skipped right after training when the plans say ``final_validation: false``
        (schedule); ``nnUNetv2_train ... --val`` (no training in the process) still runs it."""
        if getattr(self, "nnext_trained_here", False) and self.nnext_schedule.get("final_validation", True) is False:
            self.print_to_log_file(f"final validation skipped (plans {PLANS_KEY}.final_validation = false; "
                                   f"nnUNetv2_train ... --val runs it)")
            return None
        return super().perform_actual_validation(save_probabilities)

    def checkpoint_metadata(self) -> dict:
        from nnunet_ext import __version__

        return {"trainer": self.__class__.__name__, "nnunet_ext_version": __version__,
                "schedule": dict(self.nnext_schedule),
                "options": {section: opts.to_dict() for section, opts in self.nnext_options.items()}}

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
