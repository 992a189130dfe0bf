"""nnunet_ext: uncertainty-aware extensions for nnU-Net v2.

This top-level module is imported by the interpreter start-up hook (see :mod:`nnunet_ext._autoregister`),
so it must stay light: no torch, numpy or nnU-Net imports here. Public classes are re-exported lazily.
"""
from __future__ import annotations

from nnunet_ext._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "MCDropoutTrainer": "nnunet_ext.trainers.mc_dropout",
    "TinyPlanner": "nnunet_ext.planners.tiny",
    "encode_raters": "nnunet_ext.methods.multi_rater.raters",
    "decode_raters": "nnunet_ext.methods.multi_rater.raters",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
