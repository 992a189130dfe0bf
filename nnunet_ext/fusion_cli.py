"""``nnext fusion-fit``: PSO fit of the 2D / 3D sigmoid fusion per region (Yang et al. 2025, eq. 2).

Inputs per case ``CASE`` (the files ``nnext predict -m spherical`` / ``-m kernel_refine`` write):

* ``--pred2d DIR``: ``CASE_probabilities.nii.gz`` — P2D, 4D float, one volume per region (last NIfTI axis);
* ``--pred3d DIR``: ``CASE_p3d.nii.gz`` — composite P3D (mean over kernels, 0 where uncovered) and
  ``CASE_coverage.nii.gz`` — kernels covering each voxel, both 4D with the same region order;
* ``-ref DIR``: ``CASE.nii.gz`` reference label maps (integer labels; regions from ``dataset.json``).

Fit only on training / validation cases. Output JSON::

    {"regions": {"NAME": {"w2d": .., "w3d": .., "b": .., "dice": .., "dice_2d": .., ...}, ...},
     "region_labels": {"NAME": [labels]}, "cases": [...], "sum_to_one": bool, "particles": P, "iters": I}
"""
from __future__ import annotations

import argparse
import json
import os

from nnunet_ext.cli.argtypes import int_at_least
from nnunet_ext.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred2d", required=True, metavar="DIR", help="folder with CASE_probabilities.nii.gz (P2D)")
    parser.add_argument("--pred3d", required=True, metavar="DIR",
                        help="folder with CASE_p3d.nii.gz and CASE_coverage.nii.gz (composite P3D, kernel count)")
    parser.add_argument("-ref", "--reference", required=True, metavar="DIR", help="reference labels CASE.nii.gz")
    parser.add_argument("-o", "--output", required=True, metavar="PARAMS.json", help="output fusion parameters")
    parser.add_argument("-djfile", "--dataset-json", dest="djfile", metavar="dataset.json",
                        help="regions (label lists) in probability-channel order (default: PRED2D/dataset.json)")
    parser.add_argument("--particles", type=int_at_least(1), default=20, help="PSO particles (default 20)")
    parser.add_argument("--iters", type=int_at_least(1), default=50, help="PSO iterations (default 50)")
    parser.add_argument("--sum-to-one", action="store_true",
                        help="constrain w2D + w3D = 1 (as the paper's fitted weights); default: free w >= 0")
    parser.add_argument("--weight-max", type=float, default=10.0, help="upper bound of w2D, w3D (default 10)")
    parser.add_argument("--bias-max", type=float, default=10.0, help="bias searched in [-B, B] (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _regions(djfile: str) -> list[tuple[str, tuple[int, ...]]]:
    from nnunet_ext.evaluation.metrics import label_key, labels_from_dataset_json

    items, names = labels_from_dataset_json(djfile)
    out = []
    for item in items:
        labels = tuple(int(v) for v in (item if isinstance(item, (tuple, list)) else (item,)))
        out.append((names[label_key(item)], labels))
    return out


def _cases(pred2d: str, pred3d: str, ref: str) -> list[str]:
    suffix = "_probabilities.nii.gz"
    cases = sorted(n[: -len(suffix)] for n in os.listdir(pred2d) if n.endswith(suffix) and not n.startswith("."))
    if not cases:
        raise InputError(f"{pred2d}: no CASE{suffix} files")
    for c in cases:
        for path in (os.path.join(pred3d, f"{c}_p3d.nii.gz"), os.path.join(pred3d, f"{c}_coverage.nii.gz"),
                     os.path.join(ref, f"{c}.nii.gz")):
            if not os.path.isfile(path):
                raise InputError(f"{path}: missing (case {c})")
    return cases


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from nnunet_ext.core.fusion import fit_case, fit_fusion
    from nnunet_ext.imageio import atomic_write_text, read_image, read_probabilities

    if os.path.exists(args.output) and not args.overwrite:
        raise InputError(f"{args.output}: exists; pass --overwrite to replace it")
    for d in (args.pred2d, args.pred3d, args.reference):
        if not os.path.isdir(d):
            raise InputError(f"{d}: folder not found")
    djfile = args.djfile or os.path.join(args.pred2d, "dataset.json")
    regions = _regions(djfile)
    cases = _cases(args.pred2d, args.pred3d, args.reference)
    per_region = {name: [] for name, _ in regions}
    for c in cases:
        p2d, g = read_probabilities(os.path.join(args.pred2d, f"{c}_probabilities.nii.gz"))
        p3d, g3 = read_probabilities(os.path.join(args.pred3d, f"{c}_p3d.nii.gz"))
        cov, _ = read_image(os.path.join(args.pred3d, f"{c}_coverage.nii.gz"))
        ref, gr = read_image(os.path.join(args.reference, f"{c}.nii.gz"))
        for what, arr in (("P2D", p2d), ("P3D", p3d), ("coverage", cov)):
            if arr.shape[0] != len(regions) or arr.shape[1:] != ref.shape:
                raise InputError(f"case {c}: {what} has shape {arr.shape}, expected ({len(regions)}, "
                                 f"{', '.join(map(str, ref.shape))}) for regions {[n for n, _ in regions]}")
        if not (g.matches(gr) and g3.matches(gr)):
            raise InputError(f"case {c}: predictions and reference are on different grids (spacing / origin)")
        for r, (name, labels) in enumerate(regions):
            per_region[name].append(fit_case(p2d[r], p3d[r], cov[r] > 0, np.isin(ref, labels)))
    result = {"regions": {}, "region_labels": {n: list(l) for n, l in regions}, "cases": cases,
              "sum_to_one": bool(args.sum_to_one), "particles": args.particles, "iters": args.iters,
              "seed": args.seed}
    for name, _ in regions:
        params = fit_fusion(per_region[name], args.particles, args.iters, sum_to_one=args.sum_to_one,
                            weight_max=args.weight_max, bias_max=args.bias_max, seed=args.seed)
        result["regions"][name] = params.to_json()
        print(f"{name}: w2D {params.w2d:.4f}  w3D {params.w3d:.4f}  b {params.b:.4f}  "
              f"Dice {params.dice:.4f} (2D alone {params.dice_2d:.4f})")
    atomic_write_text(args.output, json.dumps(result, indent=1) + "\n")
    return 0
