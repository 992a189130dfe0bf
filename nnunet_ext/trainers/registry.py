"""The extension trainers known to ``nnUNetv2_train -tr`` (through the shim) and ``nnext trainers``.

Kept free of torch imports: names, modules and one-line descriptions only.
"""
from __future__ import annotations

import importlib

from nnunet_ext.registry import table

#: trainer class name -> (module, one-line description)
#: trainer class name -> (module, one-line description): shared trainers and every method's (nnunet_ext.registry)
TRAINERS: dict[str, tuple[str, str]] = table("TRAINERS")


def load_trainer(name: str):
    module, _ = TRAINERS[name]
    return getattr(importlib.import_module(module), name)


def load_all() -> dict:
    """``{name: class}`` for every registered trainer (imports torch and nnU-Net)."""
    return {name: load_trainer(name) for name in TRAINERS}
