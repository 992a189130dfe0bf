"""Lazy re-exports for package ``__init__`` modules (PEP 562), so importing a package stays cheap."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, mapping: dict[str, str], namespace: dict):
    """Return ``(__getattr__, __dir__)`` resolving ``name`` from module ``mapping[name]`` on first access."""

    def __getattr__(name: str):
        if name in mapping:
            return getattr(importlib.import_module(mapping[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(list(namespace) + list(mapping))

    return __getattr__, __dir__
