"""``nnext fusion-fit``: PSO fit of the 2D / 3D sigmoid fusion per region (Yang et al. 2025, eq. 2), out of fold.

Inputs per case ``CASE`` and region ``TAG`` (WT / TC / ET, else r1, r2, ...:
:func:`nnunet_ext.methods.glioma.fusion.region_tags`),
the files ``nnext predict -m spherical`` / ``-m kernel_refine`` write:

* ``--pred2d DIR [DIR ...]``: ``CASE_p2d_TAG.nii.gz`` (``-m kernel_refine``) or else ``CASE_prob_TAG.nii.gz``
  (``-m spherical``) — P2D, the mean probability of the spherical ensemble;
* ``--pred3d DIR [DIR ...]``: ``CASE_p3d_TAG.nii.gz`` — composite P3D (mean over kernels, 0 where uncovered) and
  ``CASE_coverage_TAG.nii.gz`` — number of kernels covering each voxel;
* ``-ref DIR``: ``CASE.nii.gz`` reference label maps (integer labels; regions from ``dataset.json``).

Several folders: one per cross-validation fold (each holds the cases its fold held out; a case in two folders is
refused). **Out of fold**: the fit refuses, in one line, any case that a model used for its prediction trained on
(the folders' ``predict_settings.json`` name the model folders and folds; the folds' training cases come from
``splits_final.json``, crops mapped to their source case: :mod:`nnunet_ext.methods.glioma.out_of_fold`) unless
``--allow-in-sample``. ``--objective global`` (default, the paper's global DSC) or ``mean`` (mean per-case Dice);
``--p2d mean`` (default) or ``binary``: how P2D enters eq. 2 (:mod:`nnunet_ext.methods.glioma.fusion`). Output JSON::

    {"regions": {"TAG": {"w2d": .., "w3d": .., "b": .., "p2d": .., "dice": .., "dice_2d": .., ...}, ...},
     "region_labels": {"TAG": [labels]}, "region_names": {"TAG": name}, "cases": [...], "sum_to_one": bool,
     "objective": .., "p2d": .., "out_of_fold": bool, "particles": P, "iters": I, "seed": S}
"""
from __future__ import annotations

import argparse
import json
import os

from nnunet_ext.argtypes import int_at_least
from nnunet_ext.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred2d", required=True, nargs="+", metavar="DIR",
                        help="folder(s) with CASE_p2d_TAG / CASE_prob_TAG.nii.gz (P2D), e.g. one per fold")
    parser.add_argument(
        "--pred3d",
        required=True,
        nargs="+",
        metavar="DIR",
        help="folder(s) with CASE_p3d_TAG.nii.gz and CASE_coverage_TAG.nii.gz (composite P3D, kernel count)",
    )
    parser.add_argument("-ref", "--reference", required=True, metavar="DIR", help="reference labels CASE.nii.gz")
    parser.add_argument("-o", "--output", required=True, metavar="PARAMS.json", help="output fusion parameters")
    parser.add_argument("-djfile", "--dataset-json", dest="djfile", metavar="dataset.json",
                        help="regions (label lists) in probability-channel order (default: PRED2D/dataset.json)")
    parser.add_argument("--particles", type=int_at_least(1), default=20, help="PSO particles (default 20)")
    parser.add_argument("--iters", type=int_at_least(1), default=50, help="PSO iterations (default 50)")
    parser.add_argument(
        "--objective",
        choices=("global", "mean"),
        default="global",
        help="global: Dice of the counts pooled over cases (the paper's, default); mean: mean per-case Dice",
    )
    parser.add_argument(
        "--p2d",
        choices=("mean", "binary"),
        default="mean",
        help="P2D in eq. 2: the ensemble's mean probability (default) or its 0/1 mask (paper's wording)",
    )
    parser.add_argument("--allow-in-sample", action="store_true",
                        help="fit even on cases the models trained on (biased weights; default: refused)")
    parser.add_argument("--sum-to-one", action="store_true",
                        help="constrain w2D + w3D = 1 (as the paper's fitted weights); default: free w >= 0")
    parser.add_argument("--weight-max", type=float, default=10.0, help="upper bound of w2D, w3D (default 10)")
    parser.add_argument("--bias-max", type=float, default=10.0, help="bias searched in [-B, B] (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _regions(djfile: str) -> list[tuple[str, str, tuple[int, ...]]]:
    from nnunet_ext.methods.glioma.fusion import region_tags

    if not os.path.isfile(djfile):
        raise InputError(f"{djfile}: dataset.json not found (pass -djfile)")
    try:
        labels = json.loads(open(djfile, encoding="utf-8").read())["labels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{djfile}: cannot read its 'labels' ({type(e).__name__}: {e})") from None
    regions = region_tags(labels)
    if not regions:
        raise InputError(f"{djfile}: no foreground regions in its labels")
    return regions


def _declared(djfile: str) -> set[int]:
    """Label values the dataset.json declares (background 0 checked; :mod:`nnunet_ext.io.label_check`)."""
    from nnunet_ext.io.label_check import declared_label_values

    return declared_label_values(json.loads(open(djfile, encoding="utf-8").read())["labels"], djfile)


def _p2d_kind(pred2d: str, tag: str) -> str:
    names = os.listdir(pred2d)
    return "p2d" if any(n.endswith(f"_p2d_{tag}.nii.gz") for n in names) else "prob"


def _index(folders, suffix_of) -> dict:
    """``{case: folder}`` over ``folders`` (``suffix_of(folder)``: the file suffix naming a case); a case in two
    folders is refused."""
    where: dict = {}
    for d in folders:
        suffix = suffix_of(d)
        for n in sorted(os.listdir(d)):
            if n.endswith(suffix) and not n.startswith("."):
                c = n[: -len(suffix)]
                if c in where:
                    raise InputError(
                        f"case {c} is in both {where[c]} and {d}: give each case once (one folder per fold)"
                    )
                where[c] = d
    return where


def _cases(pred2d, pred3d, ref: str, tags) -> tuple[list[str], dict, dict]:
    """Cases (those of the 2D folders), and case -> 2D folder / 3D folder; every needed file checked."""
    where2 = _index(pred2d, lambda d: f"_{_p2d_kind(d, tags[0])}_{tags[0]}.nii.gz")
    if not where2:
        raise InputError(f"{' '.join(pred2d)}: no CASE_p2d_{tags[0]}.nii.gz / CASE_prob_{tags[0]}.nii.gz files")
    where3 = _index(pred3d, lambda d: f"_p3d_{tags[0]}.nii.gz")
    cases = sorted(where2)
    for c in cases:
        if c not in where3:
            raise InputError(f"{os.path.join(pred3d[0], f'{c}_p3d_{tags[0]}.nii.gz')}: missing (case {c})")
        need = [os.path.join(ref, f"{c}.nii.gz")]
        kind = _p2d_kind(where2[c], tags[0])
        for t in tags:
            need += [os.path.join(where2[c], f"{c}_{kind}_{t}.nii.gz"), os.path.join(where3[c], f"{c}_p3d_{t}.nii.gz"),
                     os.path.join(where3[c], f"{c}_coverage_{t}.nii.gz")]
        for path in need:
            if not os.path.isfile(path):
                raise InputError(f"{path}: missing (case {c})")
    return cases, where2, where3


def _check_out_of_fold(cases, where2, where3) -> None:
    from nnunet_ext.methods.glioma.out_of_fold import in_sample

    found = in_sample({c: [where2[c], where3[c]] for c in cases})
    if found:
        case, model, fold = found[0]
        more = f" (and {len(found) - 1} more case / model pairs)" if len(found) > 1 else ""
        raise InputError(f"case {case} was predicted by {model} fold {fold}, which trained on it{more}: fit the "
                         "fusion out of fold (each case predicted by the fold that held it out) or pass "
                         "--allow-in-sample")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from nnunet_ext.io.imageio import atomic_write_text, read_image
    from nnunet_ext.io.integrity import check_output_file
    from nnunet_ext.methods.glioma.fusion import fit_case, fit_fusion

    check_output_file(args.output, "output file (-o)")  # before any work: a folder, a parent that is a file
    if os.path.exists(args.output) and not args.overwrite:
        raise InputError(f"{args.output}: exists; pass --overwrite to replace it")
    for d in (*args.pred2d, *args.pred3d, args.reference):
        if not os.path.isdir(d):
            raise InputError(f"{d}: folder not found")
    djfile = args.djfile or os.path.join(args.pred2d[0], "dataset.json")
    regions = _regions(djfile)
    declared = _declared(djfile)
    tags = [t for t, _, _ in regions]
    cases, where2, where3 = _cases(args.pred2d, args.pred3d, args.reference, tags)
    if not args.allow_in_sample:
        _check_out_of_fold(cases, where2, where3)
    per_region = {t: [] for t in tags}
    for c in cases:
        ref, gr = read_image(os.path.join(args.reference, f"{c}.nii.gz"), kind="label")
        from nnunet_ext.io.label_check import check_label_values

        check_label_values(ref, os.path.join(args.reference, f"{c}.nii.gz"), declared, djfile)
        kind = _p2d_kind(where2[c], tags[0])
        for t, name, labels in regions:
            arrays = []
            for path in (os.path.join(where2[c], f"{c}_{kind}_{t}.nii.gz"),
                         os.path.join(where3[c], f"{c}_p3d_{t}.nii.gz"),
                         os.path.join(where3[c], f"{c}_coverage_{t}.nii.gz")):
                arr, g = read_image(path, min_value=0.0, max_value=None if "_coverage_" in path else 1.0)
                if arr.shape != ref.shape or not g.matches(gr):
                    raise InputError(
                        f"{path}: not on the grid of the reference {c}.nii.gz ({arr.shape} vs {ref.shape})"
                    )
                arrays.append(arr)
            p2d, p3d, cov = arrays
            per_region[t].append(fit_case(p2d.astype(np.float32), p3d.astype(np.float32), cov > 0,
                                          np.isin(ref, labels), args.p2d))
    result = {"regions": {}, "region_labels": {t: list(l) for t, _, l in regions},
              "region_names": {t: n for t, n, _ in regions}, "cases": cases,
              "sum_to_one": bool(args.sum_to_one), "objective": args.objective, "p2d": args.p2d,
              "out_of_fold": not args.allow_in_sample, "pred2d": list(args.pred2d), "pred3d": list(args.pred3d),
              "particles": args.particles, "iters": args.iters, "seed": args.seed}
    for name, _, _ in regions:
        params = fit_fusion(per_region[name], args.particles, args.iters, sum_to_one=args.sum_to_one,
                            weight_max=args.weight_max, bias_max=args.bias_max, seed=args.seed,
                            objective=args.objective, p2d=args.p2d)
        result["regions"][name] = params.to_json()
        print(f"{name}: w2D {params.w2d:.4f}  w3D {params.w3d:.4f}  b {params.b:.4f}  "
              f"{args.objective} Dice {params.dice:.4f} (2D alone {params.dice_2d:.4f})")
    atomic_write_text(args.output, json.dumps(result, indent=1) + "\n")
    return 0
