"""Prediction methods of ``nnext predict -m`` (names, modules, descriptions; no heavy imports)."""
from __future__ import annotations

import importlib

#: method -> ("module:Class", one-line description)
METHODS: dict[str, tuple[str, str]] = {
    "stock": ("nnunet_ext.predictors.stock:StockPredictor",
              "nnU-Net's prediction (mirroring TTA) + softmax-entropy map"),
    "tta_mc": ("nnunet_ext.predictors.tta_mc:TTAMCPredictor",
               "N passes of MC dropout + one random TTA each; entropy / variance / MI maps (chu2026)"),
    "cascade": ("nnunet_ext.predictors.cascade:CascadePredictor",
                "stage 1 full volume -> lung-aware component filter -> ROI crops -> stage-2 MC dropout (isler2025)"),
}


def load_method(name: str):
    module, cls = METHODS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)
