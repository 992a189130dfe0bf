"""Training-length overrides carried by the plans, honoured by every extension trainer.

nnU-Net hard-codes 1000 epochs x 250 iterations in ``nnUNetTrainer.__init__``. Plans written by
:class:`nnunet_ext.planners.tiny.TinyPlanner` carry a ``"nnext_training"`` block, at plans level and/or inside
a configuration (the configuration wins), e.g. ``{"num_epochs": 2, "num_iterations_per_epoch": 10}``, so
that the plain ``nnUNetv2_train ... -p nnextTinyPlans`` command trains for seconds, not days.

``final_validation`` (true when absent): false skips nnU-Net's validation of the fold's validation cases after
training (``perform_actual_validation``: a sliding-window prediction of each); the checkpoint is the same, and
``nnUNetv2_train ... --val`` runs the validation later. For runs evaluated elsewhere (``nnext demo headneck``
evaluates its test phantoms with clicks).
"""
from __future__ import annotations

PLANS_KEY = "nnext_training"
ALLOWED = {
    "num_epochs": int,
    "num_iterations_per_epoch": int,
    "num_val_iterations_per_epoch": int,
    "initial_lr": float,
    "save_every": int,
    "oversample_foreground_percent": float,
    "final_validation": bool,
}


def training_schedule(plans: dict, configuration: str) -> dict:
    """Merged, validated ``nnext_training`` block for ``configuration`` (empty dict when absent)."""
    merged = dict(plans.get(PLANS_KEY) or {})
    merged.update((plans.get("configurations", {}).get(configuration, {}) or {}).get(PLANS_KEY) or {})
    out = {}
    for key, value in merged.items():
        if isinstance(value, dict):  # an option family's section (nnunet_ext.trainers.plans_options)
            continue
        if key not in ALLOWED:
            raise ValueError(f"unknown key {key!r} in plans['{PLANS_KEY}']; allowed: {sorted(ALLOWED)} and option "
                             f"sections (objects)")
        if ALLOWED[key] is bool:
            if not isinstance(value, bool):
                raise ValueError(f"plans['{PLANS_KEY}']['{key}'] must be true or false, got {value!r}")
            out[key] = value
            continue
        out[key] = ALLOWED[key](value)
        if out[key] <= 0 or (key == "oversample_foreground_percent" and out[key] > 1):
            raise ValueError(f"plans['{PLANS_KEY}']['{key}'] must be positive"
                             f"{' and <= 1' if key == 'oversample_foreground_percent' else ''}, got {value!r}")
    return out


def apply_training_schedule(trainer, plans: dict, configuration: str) -> dict:
    """Set the schedule attributes on an ``nnUNetTrainer`` instance; returns what was applied."""
    schedule = training_schedule(plans, configuration)
    for key, value in schedule.items():
        setattr(trainer, key, value)
    return schedule
