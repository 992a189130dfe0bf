"""Fingerprint, plan and preprocess with an nnunet_ext planner, the way ``nnUNetv2_plan_and_preprocess`` does.

nnU-Net only finds ``-pl`` classes inside its own source tree, so we call its API steps ourselves.
"""
from __future__ import annotations

import contextlib
import os
from typing import Sequence

from nnunet_ext.errors import InputError
from nnunet_ext.io.paths import env_dir, find_dataset
from nnunet_ext.planners.registry import PLANNERS, load_planner


def plan_and_preprocess(dataset: "int | str", planner: str = "TinyPlanner",
                        configurations: "Sequence[str] | None" = None, num_processes: int = 2,
                        verify_dataset_integrity: bool = False, clean: bool = False,
                        gpu_memory_target: "float | None" = None, dropout_p: "float | None" = None,
                        plans_name: "str | None" = None, preprocess: bool = True,
                        verbose: bool = False, schedule: "dict | None" = None,
                        fingerprint_samples: "int | None" = None) -> str:
    """Run fingerprint extraction, planning and preprocessing; return the plans identifier.

    ``fingerprint_samples``: foreground voxels sampled over the whole dataset for the intensity statistics
    (nnU-Net: 1e8, i.e. ``10e7``); ``None`` = the planner's ``fingerprint_foreground_samples`` if it declares one
    (``TinyPlanner``: 1e6), else nnU-Net's.

    ``schedule`` (e.g. ``{"num_epochs": 20}``) is merged into the plans' ``nnext_training`` block that every
    nnunet_ext trainer honours (see :mod:`nnunet_ext.trainers.schedule`).
    """
    import math

    if planner not in PLANNERS:
        raise InputError(f"unknown planner {planner!r}; known planners: {', '.join(PLANNERS)}")
    unknown = [c for c in configurations or () if c not in KNOWN_CONFIGURATIONS]
    if unknown:
        raise InputError(f"-c {' '.join(unknown)}: unknown configuration(s); nnU-Net preprocesses "
                         f"{', '.join(KNOWN_CONFIGURATIONS)}")
    if gpu_memory_target is not None and not (math.isfinite(gpu_memory_target) and 0 < gpu_memory_target <= 1024):
        raise InputError(f"-gpu_memory_target must be a number of GB in (0, 1024], got {gpu_memory_target:g}")
    folder = find_dataset(dataset, "nnUNet_raw")
    check_raw_dataset(folder, full=verify_dataset_integrity)
    from nnunet_ext.io.integrity import check_output_dir

    check_output_dir(env_dir("nnUNet_preprocessed") / folder.name, "preprocessed dataset folder")
    dataset_id = int(folder.name[7:10])
    if schedule:
        from nnunet_ext.trainers.schedule import PLANS_KEY, training_schedule

        try:
            training_schedule({PLANS_KEY: schedule}, "")
        except ValueError as e:
            raise InputError(str(e)) from e
    if num_processes < 1:
        raise InputError(f"-np must be >= 1, got {num_processes}")
    if fingerprint_samples is not None and not 1000 <= fingerprint_samples <= 10**9:
        raise InputError(f"--fingerprint-samples must be in [1000, 1e9], got {fingerprint_samples}")
    planner_cls = load_planner(planner)
    if fingerprint_samples is None:
        fingerprint_samples = getattr(planner_cls, "fingerprint_foreground_samples", None)
    if dropout_p is not None:
        if not hasattr(planner_cls, "dropout_p"):
            raise InputError(f"planner {planner} has no dropout to configure (--dropout-p)")
        if not 0 <= dropout_p < 1:
            raise InputError(f"--dropout-p must be in [0, 1), got {dropout_p}")

    with _remove_new_outputs(env_dir("nnUNet_preprocessed") / folder.name):
        return _plan(dataset_id, folder, planner, planner_cls, configurations, num_processes, verify_dataset_integrity,
                     clean, gpu_memory_target, dropout_p, plans_name, preprocess, verbose, schedule,
                     fingerprint_samples)


#: configurations nnU-Net v2 preprocesses (``-c``); which of them a planner plans is checked after planning
KNOWN_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")


def check_raw_dataset(folder, full: bool = False) -> None:
    """dataset.json with nnU-Net's keys and every image / label file complete (gzip stream checked: truncated
    files are otherwise read as half-zero images); ``full`` (``--verify_dataset_integrity``) decompresses every
    stream to its end and reads every file: images finite with plausible spacing, labels integer-valued. Every label
    file holds only values dataset.json declares, background 0 (:mod:`nnunet_ext.io.label_check`; nnU-Net's
    fingerprint would take an undeclared 5 as foreground without a word)."""
    from nnunet_ext.io.integrity import check_file_complete, load_json_checked, read_image_checked
    from nnunet_ext.io.label_check import check_label_values, declared_label_values

    dj = load_json_checked(folder / "dataset.json", ("labels", "file_ending"))
    declared = declared_label_values(dj["labels"], folder / "dataset.json")
    if not (dj.get("channel_names") or dj.get("modality")):
        raise InputError(f"{folder / 'dataset.json'}: dataset.json lacks required key 'channel_names'")
    ending = dj["file_ending"]
    files = {}
    for sub, kind in (("imagesTr", "image"), ("labelsTr", "label")):
        if not (folder / sub).is_dir():
            raise InputError(f"{folder / sub}: folder not found (nnU-Net raw datasets need imagesTr and labelsTr)")
        files[sub] = sorted(
            p for p in (folder / sub).iterdir() if p.name.endswith(ending) and not p.name.startswith(".")
        )
        if not files[sub]:
            raise InputError(f"{folder / sub}: no '*{ending}' files")
        for p in files[sub]:
            if full or kind == "label":
                arr = read_image_checked(p, kind=kind, full_gzip=full)[0]
                if kind == "label":
                    check_label_values(arr, p, declared, str(folder / "dataset.json"))
            else:
                check_file_complete(p)
    _check_pairs(folder, files, ending)


def _check_pairs(folder, files: dict, ending: str) -> None:
    """Every label has its images and every image its label, on the same grid (size and spacing)."""
    import re

    from nnunet_ext.io.integrity import read_header_checked

    images: dict[str, list] = {}
    for p in files["imagesTr"]:
        m = re.fullmatch(r"(.+)_(\d{4})" + re.escape(ending), p.name)
        if not m:
            raise InputError(f"{p}: image not named CASE_XXXX{ending} (nnU-Net's naming, XXXX = channel)")
        images.setdefault(m.group(1), []).append(p)
    labels = {p.name[: -len(ending)]: p for p in files["labelsTr"]}
    only_images, only_labels = sorted(set(images) - set(labels)), sorted(set(labels) - set(images))
    if only_images or only_labels:
        raise InputError(f"{folder}: " + "; ".join(
            t for t in (f"no label for case(s) {', '.join(only_images[:5])}" if only_images else "",
                        f"no images for label(s) {', '.join(only_labels[:5])}" if only_labels else "") if t))
    for case, label in labels.items():
        shape, g = read_header_checked(label)
        for p in images[case]:
            shape_i, g_i = read_header_checked(p)
            if shape_i != shape or not all(abs(a - b) <= 1e-3 * max(abs(a), 1e-6)
                                           for a, b in zip(g_i.spacing, g.spacing)):
                raise InputError(
                    f"{p}: grid (z,y,x) {shape_i}, spacing {tuple(round(v, 4) for v in g_i.spacing)} does "
                    f"not match its label {label.name}: {shape}, spacing {tuple(round(v, 4) for v in g.spacing)}"
                )


@contextlib.contextmanager
def _remove_new_outputs(out_dir):
    """On failure (or Ctrl-C) delete what this run added to ``out_dir`` (the whole folder if it is new)."""
    import shutil

    existed = out_dir.is_dir()
    before = set(os.listdir(out_dir)) if existed else set()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        elif out_dir.is_dir():
            for name in set(os.listdir(out_dir)) - before:
                p = out_dir / name
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        raise


def _plan(dataset_id, folder, planner, planner_cls, configurations, num_processes, verify_dataset_integrity, clean,
          gpu_memory_target, dropout_p, plans_name, preprocess, verbose, schedule, fingerprint_samples) -> str:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset, preprocess_dataset

    try:
        extract_fingerprint_dataset(dataset_id, _fingerprint_extractor(fingerprint_samples), num_processes,
                                    check_dataset_integrity=verify_dataset_integrity, clean=clean, verbose=verbose)
    except (AssertionError, RuntimeError) as e:  # nnU-Net's integrity check raises these with its findings
        text = " ".join(str(e).split())[:400] or type(e).__name__
        raise InputError(f"{folder}: nnU-Net's dataset check failed: {text}") from None
    kwargs = {}
    if gpu_memory_target is not None:
        kwargs["gpu_memory_target_in_gb"] = gpu_memory_target
    if plans_name is not None:
        kwargs["plans_name"] = plans_name
    from nnunet_ext.io.splits import install_splits

    # a raw splits_final.json (crop datasets: grouped by source case) goes where do_split reads it; nnU-Net's planner
    # copies it too but stops on an assert when a different (e.g. earlier random) split is there: replace that first
    installed = install_splits(folder)
    if installed is not None:
        print(f"cross-validation split from {folder.name}/splits_final.json: {installed}")
    instance = planner_cls(dataset_id, **kwargs)
    if dropout_p is not None:
        instance.dropout_p = dropout_p
    with _positive_torch_threads():
        instance.plan_experiment()
    if schedule:
        _merge_schedule(folder.name, instance.plans_identifier, schedule)
    if preprocess:
        configs = list(configurations or PLANNERS[planner][1])
        planned = list(instance.plans.get("configurations", {})) if isinstance(getattr(instance, "plans", None),
                                                                              dict) else configs
        if configurations is None:  # the planner's defaults: those it planned for this dataset
            configs = [c for c in configs if c in planned]
        missing = [c for c in configs if c not in planned]
        if missing:
            raise InputError(f"-c {' '.join(missing)}: not planned by {planner} for {folder.name} "
                             f"(planned: {', '.join(planned)})")
        preprocess_dataset(dataset_id, instance.plans_identifier, configs, [num_processes] * len(configs),
                           verbose=verbose)
    return instance.plans_identifier


def _fingerprint_extractor(samples: "int | None"):
    """nnU-Net's ``DatasetFingerprintExtractor``, sampling ``samples`` foreground voxels in total for the intensity
    statistics instead of its fixed 1e8 (an attribute nnU-Net sets in ``__init__`` and exposes no option for).
    On a handful of small phantoms 1e8 samples (drawn with replacement, then sorted for the percentiles) cost
    ~5.7 s per case, most of a demo's planning time; 1e6 estimate the same percentiles to well under 1 %."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    if samples is None:
        return DatasetFingerprintExtractor

    class SampledFingerprintExtractor(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = float(samples)

    return SampledFingerprintExtractor


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
    from nnunet_ext.io.atomic_write import write_json

    write_json(path, plans, indent=4)
