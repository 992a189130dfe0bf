"""ResEnc M / L presets (Isensee et al. 2024) with MC dropout configured in the architecture kwargs.

The topology, patch and batch size are exactly nnU-Net's ``nnUNetPlannerResEncM`` / ``L`` (dropout is added
after nnU-Net's VRAM-driven search, which does not model dropout); ``dropout_op`` / ``dropout_op_kwargs`` are
then set for every configuration, so any trainer that builds the network from the plans (including plain
``nnUNetTrainer``) gets dropout, and :class:`~nnunet_ext.trainers.mc_dropout.MCDropoutTrainer` uses the planned p.
"""
from __future__ import annotations

from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    nnUNetPlannerResEncL,
    nnUNetPlannerResEncM,
)

from nnunet_ext.core.mc_dropout import check_dropout_p, dropout_arch_kwargs


class _DropoutPlansMixin:
    dropout_p: float = 0.05
    dropout_kind: str = "channel"

    def get_plans_for_configuration(self, *args, **kwargs):
        plan = super().get_plans_for_configuration(*args, **kwargs)
        arch = plan["architecture"]
        arch["arch_kwargs"], req = dropout_arch_kwargs(arch["arch_kwargs"], arch["_kw_requires_import"],
                                                      check_dropout_p(self.dropout_p), self.dropout_kind)
        arch["_kw_requires_import"] = tuple(req)
        return plan


class MCDropoutResEncPlannerM(_DropoutPlansMixin, nnUNetPlannerResEncM):
    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = "nnextMCDropoutResEncUNetMPlans",
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)


class MCDropoutResEncPlannerL(_DropoutPlansMixin, nnUNetPlannerResEncL):
    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 24,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = "nnextMCDropoutResEncUNetLPlans",
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
