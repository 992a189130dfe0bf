"""The registries every entry point reads: shared parts here, each method's own in its ``registration`` module.

A method package (``nnunet_ext/methods/NAME/``) declares a string-only table in ``registration.py`` (its option
families, trainers, prediction methods, commands); adding a method is one folder plus one line in
:data:`METHOD_PACKAGES`. Tables hold ``"module:attribute"`` strings and are merged here without importing any
method code (no torch), so ``nnext -h`` stays fast and no shared layer imports a method package.
"""
from __future__ import annotations

import functools
import importlib

#: the method packages under nnunet_ext/methods (one line per method)
METHOD_PACKAGES = ("lung_cascade", "glioma", "multi_rater", "interactive")

#: the shared layers' own entries (same keys as a method's registration table)
SHARED = {
    "OPTION_SECTIONS": {
        "optimizer": "nnunet_ext.trainers.training_options:OptimizerOptions",
        "dropout": "nnunet_ext.trainers.training_options:DropoutOptions",
    },
    "TRAINERS": {
        "MCDropoutTrainer": (
            "nnunet_ext.trainers.mc_dropout",
            "nnU-Net + dropout (p=0.05) in every conv block for Monte-Carlo sampling",
        ),
    },
    "COMMANDS": {
        "synth": (
            "nnunet_ext.synthetic.cli",
            "write a synthetic phantom dataset (chest, brain, nodule, headneck) to nnUNet_raw",
        ),
        "plan": (
            "nnunet_ext.planners.cli",
            "plan and preprocess a dataset with an nnunet_ext planner (e.g. TinyPlanner)",
        ),
        "predict": ("nnunet_ext.cli.predict", "predict with uncertainty maps (methods: {methods})"),
        "trainers": ("nnunet_ext.trainers.cli", "list the extension trainers usable with nnUNetv2_train -tr"),
        "evaluate": (
            "nnunet_ext.evaluation.cli",
            "Dice / HD95 / NSD and more between reference and predicted segmentations",
        ),
        "calibrate": (
            "nnunet_ext.evaluation.calibrate_cli",
            "fit temperature scaling on nnU-Net's cross-validation outputs (calibration.json)",
        ),
        "compare": (
            "nnunet_ext.evaluation.compare_cli",
            "paired comparison of two evaluation summaries (Wilcoxon, Spearman, Pearson)",
        ),
        "convert": ("nnunet_ext.conversion.cli", "convert public collections to nnU-Net raw datasets ({converters})"),
        "demo": (
            "nnunet_ext.demos.cli",
            "end-to-end demos on phantoms: chest (default), nodule, glioma, headneck "
            "(synth, plan, train, predict, evaluate)",
        ),
    },
    "PREDICT_METHODS": {
        "stock": (
            "nnunet_ext.predictors.stock:StockMethod",
            "nnU-Net's prediction (mirroring TTA) + softmax-entropy map",
        ),
        "tta_mc": (
            "nnunet_ext.predictors.tta_mc:TTAMCMethod",
            "N passes of MC dropout + random TTA; entropy / variance / MI (chu2026)",
        ),
        "ensemble": (
            "nnunet_ext.predictors.ensemble:EnsembleMethod",
            "cross-validation folds as a deep ensemble; entropy / MI / variance across folds",
        ),
    },
}


@functools.lru_cache(maxsize=None)
def table(name: str) -> dict:
    """The merged table ``name`` (``OPTION_SECTIONS``, ``TRAINERS``, ``PREDICT_METHODS``, ``COMMANDS``)."""
    merged = dict(SHARED.get(name, {}))
    for package in METHOD_PACKAGES:
        module = importlib.import_module(f"nnunet_ext.methods.{package}.registration")
        for key, value in getattr(module, name, {}).items():
            if key in merged:
                raise RuntimeError(f"{name}: {key!r} registered twice (methods.{package})")
            merged[key] = value
    return merged


def load(target: str):
    """The object named by ``"module:attribute"``."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def option_families() -> dict:
    """``{section: Options class}`` of every registered option family."""
    return {section: load(target) for section, target in table("OPTION_SECTIONS").items()}
