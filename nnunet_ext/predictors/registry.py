"""Prediction methods of ``nnext predict -m``: one line per method (no heavy imports here).

A method is one module with one :class:`~nnunet_ext.predictors.method.Method` subclass; add it here as
``"name": ("module:Class", "one-line description")``.
"""
from __future__ import annotations

import importlib

METHODS: dict[str, tuple[str, str]] = {
    "stock": ("nnunet_ext.predictors.stock:StockMethod", "nnU-Net's prediction (mirroring TTA) + softmax-entropy map"),
    "tta_mc": ("nnunet_ext.predictors.tta_mc:TTAMCMethod", "N passes of MC dropout + random TTA; entropy / variance / MI (chu2026)"),
    "ensemble": ("nnunet_ext.predictors.ensemble:EnsembleMethod", "cross-validation folds as a deep ensemble; entropy / MI / variance across folds"),
    "cascade": ("nnunet_ext.predictors.cascade:CascadeMethod", "stage 1 -> lung-aware component filter -> ROI crops -> stage-2 MC dropout (isler2025)"),
    "spherical": ("nnunet_ext.predictors.spherical:SphericalMethod", "2D spherical-projection ensemble (origins on a stride grid): mean, histogram entropy per region (yang2025)"),
    "kernel_refine": ("nnunet_ext.predictors.kernel_refine:KernelRefineMethod", "spherical ensemble -> uncertainty kernels -> 3D model per kernel -> sigmoid 2D/3D fusion (yang2025)"),
    "interactive": ("nnunet_ext.predictors.interactive:InteractiveMethod", "click-prompt model: clicks JSON -> prompt channels, MC dropout + TTA entropy; no clicks = automatic branch (chu2026)"),
    "mcm": ("nnunet_ext.predictors.mcm:MCMMethod", "UGS-Net model: X_S + high / low-confidence masks, MCM map, LC probability (yang-wang)"),
}


def load_method(name: str):
    """The method class registered as ``name``."""
    from nnunet_ext.errors import InputError

    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    module, cls = METHODS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)
