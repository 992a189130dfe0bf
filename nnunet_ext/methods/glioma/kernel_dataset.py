"""``nnext kernel-dataset``: training data of the 3D refinement model (Yang et al. 2025, sec. 2.2.2-2.2.3).

For every training case of the source dataset: the eq. 1 uncertainty per region, either computed by the
spherical ensemble of a 2D model (``--uncertainty-from D,C,TR,PLANS[,FOLDS]``, the options of ``nnext predict -m
spherical``: ``--stride 8 --radius R --roi-mask auto``) or read from a folder of earlier predictions
(``--uncertainty-from DIR`` with ``CASE_entropy_TAG.nii.gz``); the kernel search on it per region (``--region``
one of WT / TC / ET, default all regions, kernels deduplicated), cube edge ``--kernel-mm`` (default the paper's
WT = 64, TC = ET = 32 mm); then one training case per kernel: all channels and the label cropped with the kernel
box, geometry kept exactly (the crop overlays the source). ``dataset.json`` keeps the source's channels, labels and
regions (a 3D region model), ``kernel_info.json`` records source case, region, box and sum per crop. Labels may
only hold the values the source's ``dataset.json`` declares (:mod:`nnunet_ext.io.label_check`).
"""
from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

from nnunet_ext.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", required=True, help="source dataset ID or name (nnUNet_raw)")
    parser.add_argument("-t", type=int, required=True, help="new dataset ID")
    parser.add_argument("--uncertainty-from", required=True, metavar="MODEL_SPEC|DIR",
                        help="2D spherical model D,C,TR,PLANS[,FOLDS], or a folder with CASE_entropy_TAG.nii.gz")
    from nnunet_ext.methods.glioma.options import KernelSearchOptions

    KernelSearchOptions.add_arguments(parser, "kernel search (as -m kernel_refine)")
    parser.add_argument("--region", default=None, help="only this region's uncertainty (WT, TC, ET; default all)")
    parser.add_argument("--name", default=None, help="new dataset name (default <source>Kernels)")
    parser.add_argument("-device", default="cpu", help="device of the spherical ensemble (cpu, cuda)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset with ID -t")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from nnunet_ext.methods.glioma.spherical_predictor import add_spherical_arguments

    add_spherical_arguments(parser.add_argument_group("spherical ensemble (with a model spec)"))


def _spherical_stage(args, spec_text: str):
    from nnunet_ext.predictors.inputs import ModelSpec
    from nnunet_ext.predictors.method import CommonOptions, build_stage

    return build_stage("spherical", args, CommonOptions(device=args.device, progress=False),
                       ModelSpec.parse(spec_text, "--uncertainty-from"))


def build_kernel_dataset(args) -> Path:
    import numpy as np
    from tqdm import tqdm

    from nnunet_ext.io.crop_dataset import write_crop, write_crop_dataset_json
    from nnunet_ext.io.imageio import read_image
    from nnunet_ext.io.paths import env_dir, find_dataset, staged_dataset
    from nnunet_ext.methods.glioma.fusion import region_tags
    from nnunet_ext.methods.glioma.kernels import kernel_mm_for, kernel_size_voxels, search_kernels
    from nnunet_ext.predictors.inputs import list_cases
    from nnunet_ext.predictors.method import CaseContext

    if not 1 <= args.t <= 999:
        raise InputError(f"-t must be a dataset ID in 1..999, got {args.t}")
    from nnunet_ext.methods.glioma.options import KernelSearchOptions

    try:
        kernel_search = KernelSearchOptions.from_args(args)
    except ValueError as e:
        raise InputError(str(e)) from None
    kernel_mm = kernel_search.sizes()
    src = find_dataset(args.d, "nnUNet_raw")
    from nnunet_ext.io.integrity import load_json_checked

    dataset_json = load_json_checked(src / "dataset.json", ("labels", "file_ending"))
    ending = dataset_json["file_ending"]
    from nnunet_ext.io.label_check import check_label_values, declared_label_values

    declared = declared_label_values(dataset_json["labels"], src / "dataset.json")
    tags = [t for t, _, _ in region_tags(dataset_json["labels"])]
    if args.region is not None:
        if args.region.upper() not in tags:
            raise InputError(f"--region {args.region}: the dataset has regions {tags}")
        tags = [args.region.upper()]
    cases = list_cases(src / "imagesTr", dataset_json)
    from_dir = os.path.isdir(args.uncertainty_from)
    stage = None if from_dir else _spherical_stage(args, args.uncertainty_from)
    if stage is not None:
        missing = [t for t in tags if t not in stage.tags]
        if missing:
            raise InputError(f"--uncertainty-from {args.uncertainty_from}: the model lacks regions {missing}")
    else:
        for c in cases:
            for t in tags:
                p = Path(args.uncertainty_from) / f"{c.case_id}_entropy_{t}{ending}"
                if not p.is_file():
                    raise InputError(f"{p}: missing (uncertainty of case {c.case_id}, region {t})")
    name = args.name or f"{src.name[11:]}Kernels"
    search = kernel_search.search()
    info = {"source": src.name, "uncertainty_from": args.uncertainty_from, "regions": tags,
            "kernel_mm": kernel_mm, "search": search, "crops": {}}
    with staged_dataset(env_dir("nnUNet_raw"), args.t, name, args.overwrite) as (tmp, final):
        for sub in ("imagesTr", "labelsTr"):
            (tmp / sub).mkdir(parents=True)
        for case in tqdm(cases, desc="kernel crops", disable=args.no_progress):
            label, geometry = read_image(src / "labelsTr" / f"{case.case_id}{ending}", kind="label")
            check_label_values(label, src / "labelsTr" / f"{case.case_id}{ending}", declared,
                               str(src / "dataset.json"))
            channels = [read_image(f)[0] for f in case.files]
            unc = {}
            if stage is not None:
                result = stage.predict_case(stage.prepare(case), CaseContext.for_case(case.case_id, 0))
                unc = {t: result.images[f"entropy_{t}"] for t in tags}
            else:
                for t in tags:
                    path = Path(args.uncertainty_from) / f"{case.case_id}_entropy_{t}{ending}"
                    u, g = read_image(path, min_value=0.0)
                    if u.shape != label.shape or not g.matches(geometry):
                        raise InputError(f"{path}: not on the grid of the label {case.case_id}{ending} "
                                         f"(shape {u.shape} vs {label.shape}, or spacing / origin / direction)")
                    unc[t] = u
            seen = set()
            for t in tags:
                mm = kernel_mm_for(kernel_mm, t)
                size = kernel_size_voxels(mm, tuple(geometry.spacing)[::-1])
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    kernels = search_kernels(np.asarray(unc[t], np.float32), size, **search)
                for w in caught:
                    print(f"case {case.case_id} ({t}): {w.message}")
                for k in kernels:
                    if (k.start, k.size) in seen:
                        continue
                    seen.add((k.start, k.size))
                    crop_id = f"{case.case_id}_k{len(info['crops']):04d}"
                    write_crop(channels, label, geometry, k.slicer, tmp, crop_id, ending)
                    info["crops"][crop_id] = {"case": case.case_id, "region": t, **k.to_json()}
        n = len(info["crops"])
        if n == 0:
            raise InputError(f"no kernel selected in any case of {src.name} (uncertainty all zero?)")
        write_crop_dataset_json(tmp, dataset_json, n, f"{name} (uncertainty kernels of {src.name})", info,
                                "kernel_info.json")
    print(f"wrote {n} kernel crops of {len(cases)} cases to {final}")
    return final


def run(args) -> int:
    build_kernel_dataset(args)
    return 0
