"""Lung masks for chest CT: label 1 = right lung, 2 = left lung (the convention of lungmask's U-net R231).

Two backends:

``lungmask``
    The pre-trained U-net R231 of the ``lungmask`` package (Hofmanninger et al. 2020). Used only when the
    package is importable AND its weights are already on this machine: an explicit ``weights`` file, or the
    file torch hub would have cached (``<torch hub dir>/checkpoints/unet_r231-d5d2fc3d.pth``). Nothing is
    ever downloaded.

``threshold``
    A classical HU algorithm (no learning, no weights) in :mod:`.lung_threshold` (steps there).

``auto`` picks ``lungmask`` when usable, else ``threshold``.

Patient sides come from the image direction (SimpleITK / ITK physical space is LPS: +x = patient left), so
a volume stored with its x axis flipped and the x direction cosine negated gets the same anatomical labels.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.methods.lung_cascade.lung_threshold import (  # noqa: F401 (re-export)
    LEFT,
    RIGHT,
    THRESHOLD_DEFAULTS,
    check_ct_intensities,
    lung_mask_log,
    threshold_lung_mask,
)

BACKENDS = ("auto", "lungmask", "threshold")
R231_FILE = "unet_r231-d5d2fc3d.pth"  # file name torch hub gives the R231 weights of lungmask


# ------------------------------------------------------------------------------------- lungmask backend

def _hub_weights() -> str | None:
    """Where torch hub caches the R231 weights (without importing torch when TORCH_HOME says it)."""
    if os.environ.get("TORCH_HOME"):
        hub = os.path.join(os.environ["TORCH_HOME"], "hub")
    else:
        try:
            import torch.hub
            hub = torch.hub.get_dir()
        except Exception:  # noqa: BLE001 - torch missing or broken: no cache to look in
            return None
    return os.path.join(hub, "checkpoints", R231_FILE)


def lungmask_available(weights: str | None = None) -> tuple[bool, str]:
    """``(usable, reason)`` for the lungmask backend; never downloads anything."""
    if importlib.util.find_spec("lungmask") is None:
        return False, "the 'lungmask' package is not installed (pip install lungmask)"
    if weights is not None:
        if not os.path.isfile(weights):
            return False, f"lungmask weights file {weights} does not exist"
        return True, f"lungmask R231 with weights {weights}"
    cached = _hub_weights()
    if cached and os.path.isfile(cached):
        return True, f"lungmask R231 with cached weights {cached}"
    return False, (f"no lungmask R231 weights on this machine (looked for {cached or R231_FILE} in the torch hub "
                   f"cache; pass --lungmask-weights PATH; nothing is downloaded)")


def _lungmask_predict(ct: np.ndarray, geometry, weights: str) -> np.ndarray:
    import SimpleITK as sitk

    image = geometry.apply(sitk.GetImageFromArray(np.ascontiguousarray(ct).astype(np.int16)))
    try:
        try:
            from lungmask import LMInferer  # lungmask >= 0.2.14
        except ImportError:
            from lungmask import mask as lm  # older releases
            mask = lm.apply(image, lm.get_model("unet", "R231", modelpath=weights))
        else:
            mask = LMInferer(modelname="R231", modelpath=weights).apply(image)
    except (ImportError, OSError, RuntimeError, ValueError, KeyError) as e:  # e.g. a corrupt weights file
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputError(f"lungmask backend failed with weights {weights}: {msg}") from None
    mask = np.asarray(mask).astype(np.uint8)
    if mask.shape != ct.shape:
        raise InputError(f"lungmask returned shape {mask.shape} for a CT of shape {ct.shape}")
    return mask


def compute_lung_mask(ct: np.ndarray, geometry, backend: str = "auto", weights: str | None = None,
                      **threshold_options) -> tuple[np.ndarray, str]:
    """``(uint8 mask with 1 = right / 2 = left lung, backend used)``; ``backend`` in auto | lungmask | threshold.

    Asking for ``lungmask`` when it cannot be used raises :class:`InputError` with the reason.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown lung mask backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if np.asarray(ct).ndim != 3:
        raise InputError(f"lung masks need a 3D CT; got an array of shape {np.asarray(ct).shape}")
    check_ct_intensities(np.asarray(ct))  # MR-like / normalised intensities: refused for every backend
    if backend in ("auto", "lungmask"):
        ok, reason = lungmask_available(weights)
        if ok:
            return _lungmask_predict(ct, geometry, weights or _hub_weights()), "lungmask"
        if backend == "lungmask":
            raise InputError(f"lungmask backend unusable: {reason}")
    return threshold_lung_mask(ct, geometry, **threshold_options), "threshold"
