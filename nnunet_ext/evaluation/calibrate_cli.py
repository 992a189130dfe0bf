"""``nnext calibrate``: temperature scaling (Guo et al. 2017) of a trained nnU-Net model.

Model mode: ``nnext calibrate -d D -c C [-tr TR] [-p PLANS] [-f FOLDS] [--fit-folds ...] [--per-class]`` reads the
cross-validation outputs ``$nnUNet_results/DatasetX/TR__P__C/fold_k/validation/CASE.npz`` (``nnUNetv2_train
--npz``) and the references ``$nnUNet_preprocessed/DatasetX/gt_segmentations`` (original geometry) and writes
``TR__P__C/calibration.json``. Folder mode: ``--probabilities DIR -ref REF_DIR -o calibration.json`` on any
folder of ``CASE.npz`` / ``CASE_probabilities.nii.gz``; add ``-d -c -tr -p`` to tie the file to a model (then it
goes into the model folder unless ``-o``). See :mod:`nnunet_ext.evaluation.calibrate` for what is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import re

from nnunet_ext.argtypes import int_at_least, non_negative
from nnunet_ext.errors import InputError

_MAX_NAMED = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("model (nnU-Net's folders)")
    m.add_argument("-d", dest="dataset", metavar="D", help="dataset ID or name")
    m.add_argument("-c", dest="configuration", metavar="C", help="configuration, e.g. 3d_fullres")
    m.add_argument("-tr", dest="trainer", default="nnUNetTrainer", metavar="TR", help="trainer (nnUNetTrainer)")
    m.add_argument("-p", dest="plans", default="nnUNetPlans", metavar="PLANS", help="plans identifier (nnUNetPlans)")
    m.add_argument("-f", dest="folds", nargs="+", metavar="FOLD",
                   help="folds whose validation outputs are read (default: every fold_N folder, numeric order)")
    m.add_argument("--fit-folds", nargs="+", metavar="FOLD", help="folds the final T is fitted on (default: all -f)")
    f = p.add_argument_group("folder mode")
    f.add_argument("--probabilities", metavar="DIR", help="folder of CASE.npz (nnU-Net) or CASE_probabilities.nii.gz")
    f.add_argument("-ref", "--ref", dest="ref", metavar="REF_DIR",
                   help="reference segmentations (model mode default: nnUNet_preprocessed/.../gt_segmentations)")
    f.add_argument("-djfile", "--dataset-json", dest="djfile", metavar="dataset.json",
                   help="labels / regions and file ending (model mode default: the model's dataset.json)")
    f.add_argument("--regions", nargs="+", metavar="R", help="sigmoid outputs: regions as labels, e.g. '1,2,3 2,3 3'")
    f.add_argument("--file-ending", default=None, metavar="EXT", help="reference file ending (default .nii.gz)")
    f.add_argument("--n-splits", type=int_at_least(2), default=5, metavar="K",
                   help="case splits for the held-out report when there is only one fold / a folder (5)")
    p.add_argument("-o", "--output", metavar="calibration.json", help="output file (model mode: in the model folder)")
    p.add_argument("--per-class", action="store_true", help="one T per class (region) instead of one shared T")
    p.add_argument("--roi", choices=("bbox", "all"), default="bbox",
                   help="voxels: bbox of reference | prediction grown by --margin (default, as nnext evaluate) or all")
    p.add_argument("--margin", type=non_negative, default=10.0, metavar="MM", help="ROI margin in mm (10)")
    p.add_argument("--voxels", type=int_at_least(1000), default=1_000_000, metavar="N",
                   help="voxel sample the fit uses (seeded, uniform over the fit cases' ROI voxels; 1000000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    p.add_argument("--ece-bins", type=int_at_least(1), default=15, metavar="N", help="ECE bins (15)")
    p.add_argument("--ece-pooling", choices=("pooled", "mean"), default="pooled", help="ECE over classes (pooled)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing calibration file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no printed table")


def _fold_id(text: str) -> str:
    if text == "all" or text.isdigit():
        return text
    raise InputError(f"fold {text!r}: expected an integer or 'all'")


def _model_folder(args) -> str:
    from nnunet_ext.io.paths import find_dataset

    if not args.configuration:
        raise InputError("-d needs -c CONFIGURATION (and -tr / -p unless nnUNetTrainer / nnUNetPlans)")
    dataset = find_dataset(args.dataset, "nnUNet_results")
    folder = dataset / f"{args.trainer}__{args.plans}__{args.configuration}"
    if not folder.is_dir():
        known = ", ".join(sorted(p.name for p in dataset.iterdir() if p.is_dir() and "__" in p.name)) or "none"
        raise InputError(f"{folder}: no such model folder (models in {dataset.name}: {known})")
    return str(folder)


def _references_folder(args) -> str:
    from nnunet_ext.io.paths import find_dataset

    if args.ref:
        return args.ref
    gt = find_dataset(args.dataset, "nnUNet_preprocessed") / "gt_segmentations"
    if gt.is_dir():
        return str(gt)
    return str(find_dataset(args.dataset, "nnUNet_raw") / "labelsTr")


def _listed(items) -> str:
    items = list(items)
    more = f", ... ({len(items) - _MAX_NAMED} more)" if len(items) > _MAX_NAMED else ""
    return ", ".join(items[:_MAX_NAMED]) + more


def _validation_sources(args, model: str, ref_dir: str, ending: str) -> tuple[list, list[str]]:
    """``([(case, fold, npz)], folds)`` from ``fold_k/validation``."""
    if args.folds:
        folds = [_fold_id(f) for f in args.folds]
    else:
        folds = sorted((m.group(1) for p in os.listdir(model) if (m := re.fullmatch(r"fold_(\d+)", p))
                        and os.path.isdir(os.path.join(model, p))), key=int)
        if not folds:
            raise InputError(f"{model}: no fold_N folders; train first (nnUNetv2_train ... --npz)")
    hint = (f"nnUNetv2_train {args.dataset} {args.configuration} FOLD -tr {args.trainer} -p {args.plans} --npz "
            "(or add --val --npz to a finished training to rerun only its validation)")
    out = []
    for fold in folds:
        vdir = os.path.join(model, f"fold_{fold}", "validation")
        if not os.path.isdir(vdir):
            raise InputError(f"{vdir}: no validation folder; train with {hint.replace('FOLD', fold)}")
        names = os.listdir(vdir)
        npz = sorted(n[:-4] for n in names if n.endswith(".npz"))
        segs = {n[: -len(ending)] for n in names if n.endswith(ending)}
        if not npz:
            raise InputError(f"{vdir}: no .npz probabilities; train with {hint.replace('FOLD', fold)}")
        missing = sorted(segs - set(npz))
        if missing:
            raise InputError(f"{vdir}: {len(missing)} case(s) without .npz ({_listed(missing)}); rerun validation "
                             f"with {hint.replace('FOLD', fold)}")
        out += [(case, fold, os.path.join(vdir, case + ".npz")) for case in npz]
    return out, folds


def _folder_sources(prob_dir: str) -> list:
    if not os.path.isdir(prob_dir):
        raise InputError(f"--probabilities {prob_dir}: no such folder")
    found = {}
    for name in sorted(os.listdir(prob_dir)):
        m = re.fullmatch(r"(.+)_probabilities(\.nii\.gz|\.nii|\.nrrd|\.mha)", name)
        if m and m.group(1) not in found:
            found[m.group(1)] = os.path.join(prob_dir, name)
    for name in sorted(os.listdir(prob_dir)):
        if name.endswith(".npz"):
            found[name[:-4]] = os.path.join(prob_dir, name)   # nnU-Net's exact float32 output wins
    if not found:
        raise InputError(f"{prob_dir}: no CASE.npz or CASE_probabilities.nii.gz files")
    return [(case, None, path) for case, path in sorted(found.items())]


def run(args) -> int:
    from nnunet_ext import __version__
    from nnunet_ext.core.calibration_file import CALIBRATION_FILE, CALIBRATION_FORMAT, model_identity
    from nnunet_ext.evaluation.calibrate import (
        CalibrationOptions,
        CaseSource,
        LabelSpec,
        calibrate_cases,
        describe_options,
        label_spec_from_dataset_json,
    )
    from nnunet_ext.evaluation.summary_io import json_safe
    from nnunet_ext.io.imageio import atomic_write_text

    if args.dataset is None and args.probabilities is None:
        raise InputError("give a model (-d D -c C [-tr TR] [-p PLANS]) or --probabilities DIR -ref REF_DIR")
    model = _model_folder(args) if args.dataset is not None else None
    djfile = args.djfile or (os.path.join(model, "dataset.json") if model else None)
    dataset_json = {}
    if djfile:
        if not os.path.isfile(djfile):
            raise InputError(f"{djfile}: dataset.json not found")
        spec = label_spec_from_dataset_json(djfile)
        with open(djfile, encoding="utf-8") as f:
            dataset_json = json.load(f)
    else:
        spec = LabelSpec()
    if args.regions:
        try:
            regions = tuple(tuple(int(v) for v in r.split(",") if v.strip()) for r in args.regions)
        except ValueError:
            raise InputError(f"--regions {' '.join(args.regions)}: regions are comma-separated integers") from None
        spec = LabelSpec(regions, spec.ignore_label, None)
    ending = args.file_ending or dataset_json.get("file_ending") or ".nii.gz"
    if args.probabilities:
        if not args.ref:
            raise InputError("--probabilities needs -ref REF_DIR (the reference segmentations)")
        if not args.output and model is None:
            raise InputError("--probabilities without a model (-d -c -tr -p) needs -o calibration.json")
        raw, folds, ref_dir, source = _folder_sources(args.probabilities), None, args.ref, "probabilities_folder"
    else:
        ref_dir = _references_folder(args)
        raw, folds = _validation_sources(args, model, ref_dir, ending)
        source = "nnunet_validation"
    if not os.path.isdir(ref_dir):
        raise InputError(f"-ref {ref_dir}: no such folder")
    output = args.output or os.path.join(model, CALIBRATION_FILE)
    if not output.lower().endswith(".json"):
        raise InputError(f"-o {output}: the output file must end in .json")
    from nnunet_ext.io.integrity import check_output_file

    check_output_file(output, "calibration file (-o)")  # before the fit: a folder, a parent that is a file
    if os.path.exists(output) and not args.overwrite:
        raise InputError(f"{output} exists; pass --overwrite to replace it")
    missing = [case for case, _, _ in raw if not os.path.isfile(os.path.join(ref_dir, case + ending))]
    if missing:
        raise InputError(f"{ref_dir}: no reference for {len(missing)} case(s) ({_listed(missing)}; ending {ending})")
    if folds is not None and len(folds) > 1:
        groups = {}
        for case, fold, _ in raw:
            if case in groups:
                raise InputError(f"case {case} is in the validation of {groups[case]} and fold_{fold}; choose "
                                 "folds with disjoint validation cases (-f)")
            groups[case] = f"fold_{fold}"
        fit_groups = [f"fold_{_fold_id(f)}" for f in args.fit_folds] if args.fit_folds else None
        unknown = sorted(set(fit_groups or []) - set(groups.values()))
        if unknown:
            raise InputError(f"--fit-folds {', '.join(unknown)}: not among the folds read ({', '.join(folds)})")
    else:
        if args.fit_folds and folds is not None and [_fold_id(f) for f in args.fit_folds] != folds:
            raise InputError(f"--fit-folds: only fold {folds[0]} is read; give -f with the folds to use")
        cases = sorted(case for case, _, _ in raw)
        n = min(args.n_splits, len(cases))
        groups = {case: f"split_{i % n}" for i, case in enumerate(cases)}
        fit_groups = None
    sources = [CaseSource(case, groups[case], path, os.path.join(ref_dir, case + ending)) for case, _, path in raw]
    options = CalibrationOptions(per_class=args.per_class, roi=args.roi, margin_mm=args.margin,
                                 voxel_budget=args.voxels, seed=args.seed, n_bins=args.ece_bins,
                                 ece_pooling=args.ece_pooling)
    result = calibrate_cases(sources, spec, options, fit_groups, quiet=args.quiet)
    data = {
        "format": CALIBRATION_FORMAT, "method": "temperature scaling",
        "reference": "Guo, Pleiss, Sun, Weinberger. On Calibration of Modern Neural Networks. ICML 2017 "
                     "(arXiv:1706.04599)",
        "nonlinearity": "sigmoid" if spec.sigmoid else "softmax", "per_class": bool(args.per_class),
        "temperature": result.pop("temperature"), "n_channels": result.pop("n_channels"),
        "channels": list(spec.names) if spec.names else None,
        "regions": [list(r) for r in spec.regions] if spec.sigmoid else None,
        "model": (model_identity(model, args.plans, args.trainer, args.configuration) if model else None),
        "source": {"kind": source, "folds": folds, "folder": os.path.abspath(args.probabilities or model),
                   "references": os.path.abspath(ref_dir),
                   "groups": "folds" if folds is not None and len(folds) > 1 else
                   f"{min(args.n_splits, len(raw))} round-robin splits of the sorted cases"},
        **result, "settings": describe_options(options, spec), "nnunet_ext_version": __version__,
    }
    atomic_write_text(output, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
    if not args.quiet:
        print(_table(data, output))
    return 0


def _fmt_t(t) -> str:
    return f"{t:.3f}" if isinstance(t, (int, float)) else "[" + ", ".join(f"{v:.3f}" for v in t) + "]"


def _table(data: dict, output: str) -> str:
    lines = [f"{'held out':<10} {'T':>18} {'ECE before':>11} {'after':>8} {'Brier before':>13} {'after':>8}"]
    rows = dict(data["held_out"]["per_group"])
    if data["held_out"]["mean"]:
        rows["mean"] = {**data["held_out"]["mean"], "temperature": None}
    for g, v in rows.items():
        t = "" if v["temperature"] is None else _fmt_t(v["temperature"])
        lines.append(f"{g:<10} {t:>18} {v['ece_before']:>11.4f} {v['ece_after']:>8.4f} {v['brier_before']:>13.4f} "
                     f"{v['brier_after']:>8.4f}")
    fit = data["fitted_on"]
    lines.append(f"T = {_fmt_t(data['temperature'])} fitted on {fit['n_cases']} case(s), {fit['voxels']} of "
                 f"{fit['voxels_available']} ROI voxels -> {output}")
    return "\n".join(lines)
