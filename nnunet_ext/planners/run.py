"""Fingerprint, plan and preprocess with an nnunet_ext planner, the way ``nnUNetv2_plan_and_preprocess`` does.

nnU-Net only finds ``-pl`` classes inside its own source tree, so we call its API steps ourselves.
"""
from __future__ import annotations

import contextlib
import os
from typing import Sequence

from nnunet_ext.errors import InputError
from nnunet_ext.paths import env_dir, find_dataset
from nnunet_ext.planners.registry import PLANNERS, load_planner


def plan_and_preprocess(dataset: "int | str", planner: str = "TinyPlanner",
                        configurations: "Sequence[str] | None" = None, num_processes: int = 2,
                        verify_dataset_integrity: bool = False, clean: bool = False,
                        gpu_memory_target: "float | None" = None, dropout_p: "float | None" = None,
                        plans_name: "str | None" = None, preprocess: bool = True,
                        verbose: bool = False, schedule: "dict | None" = None) -> str:
    """Run fingerprint extraction, planning and preprocessing; return the plans identifier.

    ``schedule`` (e.g. ``{"num_epochs": 20}``) is merged into the plans' ``nnext_training`` block that every
    nnunet_ext trainer honours (see :mod:`nnunet_ext.trainers.schedule`).
    """
    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; known planners: {', '.join(PLANNERS)}")
    folder = find_dataset(dataset, "nnUNet_raw")
    env_dir("nnUNet_preprocessed")
    dataset_id = int(folder.name[7:10])
    if schedule:
        from nnunet_ext.trainers.schedule import PLANS_KEY, training_schedule

        try:
            training_schedule({PLANS_KEY: schedule}, "")
        except ValueError as e:
            raise InputError(str(e)) from e
    if num_processes < 1:
        raise InputError(f"-np must be >= 1, got {num_processes}")
    planner_cls = load_planner(planner)
    if dropout_p is not None:
        if not hasattr(planner_cls, "dropout_p"):
            raise InputError(f"planner {planner} has no dropout to configure (--dropout-p)")
        if not 0 <= dropout_p < 1:
            raise InputError(f"--dropout-p must be in [0, 1), got {dropout_p}")

    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset, preprocess_dataset

    extract_fingerprint_dataset(dataset_id, DatasetFingerprintExtractor, num_processes,
                                check_dataset_integrity=verify_dataset_integrity, clean=clean, verbose=verbose)
    kwargs = {}
    if gpu_memory_target is not None:
        kwargs["gpu_memory_target_in_gb"] = gpu_memory_target
    if plans_name is not None:
        kwargs["plans_name"] = plans_name
    instance = planner_cls(dataset_id, **kwargs)
    if dropout_p is not None:
        instance.dropout_p = dropout_p
    with _positive_torch_threads():
        instance.plan_experiment()
    if schedule:
        _merge_schedule(folder.name, instance.plans_identifier, schedule)
    if preprocess:
        configs = list(configurations or PLANNERS[planner][1])
        preprocess_dataset(dataset_id, instance.plans_identifier, configs, [num_processes] * len(configs),
                           verbose=verbose)
    return instance.plans_identifier


@contextlib.contextmanager
def _positive_torch_threads():
    """nnU-Net's VRAM estimate calls ``torch.set_num_threads(get_allowed_n_proc_DA())``, which crashes when
    ``nnUNet_n_proc_DA=0`` (a common setting for single-threaded data loading); plan with 1 in that case."""
    old = os.environ.get("nnUNet_n_proc_DA")
    if old is not None and old.strip() == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        yield
    finally:
        if old is not None:
            os.environ["nnUNet_n_proc_DA"] = old


def _merge_schedule(dataset_name: str, plans_identifier: str, schedule: dict) -> None:
    import json

    from nnunet_ext.trainers.schedule import PLANS_KEY

    path = env_dir("nnUNet_preprocessed") / dataset_name / f"{plans_identifier}.json"
    plans = json.loads(path.read_text())
    plans[PLANS_KEY] = {**(plans.get(PLANS_KEY) or {}), **schedule}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plans, indent=4))
    os.replace(tmp, path)
