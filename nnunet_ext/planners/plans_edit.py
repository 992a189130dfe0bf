"""``nnext plan --set SECTION.KEY=VALUE`` / ``--show``: write and print the training options held by the plans.

An experiment is trainer + plans: the option families of :mod:`nnunet_ext.trainers.plans_options` live in each
configuration's ``nnext_training`` block. ``--set`` writes them after planning, or into existing plans
(``-p PLANS``, no re-planning: the preprocessed data are shared through the configurations' ``data_identifier``),
under a new plans identifier with ``-overwrite_plans_name``; ``--show`` prints what a trainer would read.
"""
from __future__ import annotations

import json

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import atomic_write_text
from nnunet_ext.io.paths import env_dir, find_dataset
from nnunet_ext.trainers.plans_options import PLANS_KEY, effective_options, set_options
from nnunet_ext.trainers.schedule import training_schedule


def _families() -> dict:
    from nnunet_ext.registry import option_families

    return option_families()


def check_assignments(assignments) -> None:
    """Refuse a bad ``--set`` before any planning work (unknown section / key, bad value)."""
    if assignments:
        try:
            set_options({"configurations": {"any": {}}}, ["any"], assignments, _families())
        except ValueError as e:
            raise InputError(str(e)) from None


def plans_path(dataset, plans_identifier: str):
    folder = env_dir("nnUNet_preprocessed") / find_dataset(dataset, "nnUNet_raw").name
    path = folder / f"{plans_identifier}.json"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json") if p.stem not in ("dataset", "dataset_fingerprint"))
        raise InputError(f"{path}: no such plans; plans of this dataset: {', '.join(known) or 'none (run nnext plan)'}")
    return path


def _load(path) -> dict:
    try:
        plans = json.loads(path.read_text())
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(plans.get("configurations"), dict):
        raise InputError(f"{path}: not nnU-Net plans (no 'configurations')")
    return plans


def write_options(path, assignments, configurations=None, new_identifier: "str | None" = None):
    """Apply ``assignments`` to the plans at ``path`` (every configuration unless ``configurations``); write them
    to ``path`` or, with ``new_identifier``, to a new plans file beside it. Returns the written path."""
    plans = _load(path)
    confs = list(configurations or plans["configurations"])
    try:
        plans = set_options(plans, confs, assignments, _families())
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None
    target = path
    if new_identifier:
        plans["plans_name"] = new_identifier
        target = path.with_name(f"{new_identifier}.json")
    atomic_write_text(target, json.dumps(plans, indent=4))
    return target


def show_options(path, configurations=None) -> str:
    """The effective schedule and options of each configuration, as JSON text."""
    plans = _load(path)
    confs = list(configurations or plans["configurations"])
    out = {}
    for conf in confs:
        if conf not in plans["configurations"]:
            raise InputError(f"{path}: no configuration {conf!r}; the plans have {', '.join(plans['configurations'])}")
        try:
            out[conf] = {"schedule": training_schedule(plans, conf), **effective_options(plans, conf, _families())}
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None
    return json.dumps({f"{PLANS_KEY} ({path.stem})": out}, indent=2)
