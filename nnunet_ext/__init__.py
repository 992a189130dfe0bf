"""nnunet_ext: uncertainty-aware extensions for nnU-Net v2.

This top-level module is imported by the interpreter start-up hook (see :mod:`nnunet_ext._autoregister`),
so it must stay light: no torch, numpy or nnU-Net imports here. Public classes are re-exported lazily.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "MCDropoutTrainer": "nnunet_ext.trainers.mc_dropout",
    "TinyPlanner": "nnunet_ext.planners.tiny",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nnunet_ext' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
