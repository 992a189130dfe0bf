"""Planners known to ``nnext plan`` (names, modules, descriptions; no heavy imports)."""
from __future__ import annotations

import importlib

#: planner class name -> (module, default configurations, one-line description)
PLANNERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "TinyPlanner": ("nnunet_ext.planners.tiny", ("2d", "3d_fullres"),
                    "nnextTinyPlans: 4-32 features, small patches, batch 2, 2x10 iterations (tests, demo)"),
    "MCDropoutResEncPlannerM": ("nnunet_ext.planners.resenc_dropout", ("2d", "3d_fullres", "3d_lowres"),
                                "nnextMCDropoutResEncUNetMPlans: ResEnc M preset + dropout p=0.05"),
    "MCDropoutResEncPlannerL": ("nnunet_ext.planners.resenc_dropout", ("2d", "3d_fullres", "3d_lowres"),
                                "nnextMCDropoutResEncUNetLPlans: ResEnc L preset + dropout p=0.05"),
}


def load_planner(name: str):
    module = PLANNERS[name][0]
    return getattr(importlib.import_module(module), name)
