"""Do a model folder's ``plans.json`` and its checkpoints belong together? One line naming both and the first
mismatch, instead of PyTorch's multi-line ``Error(s) in loading state_dict``.

The network is rebuilt from the plans (as nnU-Net does), so plans edited or copied from another model give layers of
other shapes. :func:`check_weights_fit` compares the checkpoint's ``network_weights`` with the rebuilt network's
``state_dict`` (keys, then shapes, in the network's order) and names the first layer that differs; when the
checkpoint records the plans it was trained with (nnU-Net's ``init_args["plans"]``) it also names the first plans key
that differs from ``plans.json``.
"""
from __future__ import annotations

import json

from nnunet_ext.errors import InputError


def first_plans_difference(trained: dict, given: dict) -> "str | None":
    """``"KEY: A in the checkpoint, B in plans.json"`` for the first (sorted) differing leaf, None when equal."""
    from nnunet_ext.io.settings_record import normalised_settings, settings_diff

    diff = settings_diff(normalised_settings(trained), normalised_settings(given))
    if not diff:
        return None
    key, a, b = diff[0]
    more = f" (+{len(diff) - 1} more)" if len(diff) > 1 else ""
    return f"{key}: {json.dumps(a)[:80]} in the checkpoint, {json.dumps(b)[:80]} in plans.json{more}"


def _shape(t) -> tuple:
    return tuple(getattr(t, "shape", ()))


def check_weights_fit(network, checkpoint: dict, checkpoint_path: str, plans_path: str, plans: dict) -> None:
    """InputError naming ``plans_path``, ``checkpoint_path``, the first mismatching layer (missing, unexpected or
    of another shape) and the first differing plans key when the weights do not fit ``network``."""
    weights = checkpoint.get("network_weights") or {}
    expected = network.state_dict()
    problem = None
    for key, tensor in expected.items():
        if key not in weights:
            problem = f"layer {key} {_shape(tensor)} is missing from the checkpoint"
        elif _shape(weights[key]) != _shape(tensor):
            problem = (f"layer {key} has shape {_shape(weights[key])} in the checkpoint, {_shape(tensor)} with "
                       "these plans")
        if problem:
            break
    if problem is None:
        extra = [k for k in weights if k not in expected]
        if extra:
            problem = f"the checkpoint has layer {extra[0]} {_shape(weights[extra[0]])} that these plans do not build"
    if problem is None:
        return
    trained = (checkpoint.get("init_args") or {}).get("plans")
    plans_key = first_plans_difference(trained, plans) if isinstance(trained, dict) else None
    raise InputError(f"{plans_path}: plans do not match the checkpoint {checkpoint_path}: {problem}"
                     + (f"; first differing plans key {plans_key}" if plans_key else "")
                     + " (plans copied from another model?)")


__all__ = ["check_weights_fit", "first_plans_difference"]
