"""Prediction methods of ``nnext predict -m``: one line per method (no heavy imports here).

A method is one module with one :class:`~nnunet_ext.predictors.method.Method` subclass; add it here as
``"name": ("module:Class", "one-line description")``.
"""
from __future__ import annotations

import importlib

from nnunet_ext.registry import table

#: method name -> ("module:Class", one-line description): shared methods and every method package's
METHODS: dict[str, tuple[str, str]] = table("PREDICT_METHODS")


def load_method(name: str):
    """The method class registered as ``name``."""
    from nnunet_ext.errors import InputError

    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    module, cls = METHODS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)
