"""``nnext synth``: write a seeded synthetic phantom dataset into nnUNet_raw.

Module-level imports stay light (argparse only); numpy / scipy / SimpleITK are imported in :func:`run`.
"""
from __future__ import annotations

import argparse

KINDS = ("chest", "brain", "nodule", "headneck")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "phantoms:\n"
        "  chest     CT, labels tumor; side folder lungmasksTr/Ts (1 = right lung, 2 = left lung)\n"
        "  brain     T1/T1ce/T2/FLAIR, BraTS-like regions; side folder brainmasksTr/Ts\n"
        "  nodule    CT crops, label = rater 0; all raters in labelsTr_raters/CASE_rater{k}; latent truth in\n"
        "            truthTr/Ts; --rater-model exchangeable (LIDC-like readers, random order) or fixed\n"
        "  headneck  CT + PET, labels GTVp / GTVn; --ambiguous-rate P gives the primary, with probability P, a\n"
        "            tumour-like hot neighbour that is tumour or inflammation with equal odds\n"
        "Per-case metadata (lesion centres in voxels and LPS mm, ...) goes to phantom_info.json.\n"
        "example: nnext synth chest -d 501 -n 20 --n-test 5 --seed 1")
    parser.add_argument("kind", choices=KINDS, help="phantom type")
    parser.add_argument("-d", "--dataset-id", type=int, required=True, metavar="ID",
                        help="nnU-Net dataset ID (1-999); the folder is DatasetXXX_Name")
    parser.add_argument("-n", "--num-train", type=int, required=True, metavar="N", help="number of training cases")
    parser.add_argument("--n-test", type=int, default=0, metavar="M",
                        help="number of test cases written to imagesTs / labelsTs (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same data")
    parser.add_argument("--size", type=int, nargs=3, metavar=("Z", "Y", "X"),
                        help="voxels per axis (default: 40 64 64; nodule 32 32 32); the spacing stays fixed "
                             "and the anatomy is scaled to the field of view")
    parser.add_argument("--name", help="dataset name (default NnextChest, NnextBrain, NnextNodule, NnextHeadNeck)")
    parser.add_argument("--raters", type=int, metavar="K", help="nodule only: number of simulated raters, 2-4 "
                                                               "(default 4)")
    parser.add_argument("--rater-model", choices=("exchangeable", "fixed"),
                        help="nodule only: exchangeable = K readers per case drawn from a reader-style population "
                             "calibrated on LIDC-IDRI, in random order (default); fixed = rater k always uses "
                             "the same HU threshold (nearly nested; the negative control)")
    parser.add_argument("--ambiguous-rate", type=float, metavar="P",
                        help="headneck only: probability (0-1) that the primary has an ambiguous neighbour, a hot "
                             "lobe that looks like tumour and is tumour (GTVp) or inflammation (unlabelled) with "
                             "equal odds: what a click has to tell the model (default 0)")
    parser.add_argument("--raw", metavar="DIR", help="nnUNet_raw folder (default: $nnUNet_raw)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset with the same ID")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from nnunet_ext.synthetic.dataset import write_dataset

    folder = write_dataset(args.kind, args.dataset_id, args.num_train, num_test=args.n_test, seed=args.seed,
                           size=args.size, name=args.name, overwrite=args.overwrite, raw_dir=args.raw,
                           progress=not args.no_progress, raters=args.raters,
                           rater_model=args.rater_model, ambiguous_rate=args.ambiguous_rate)
    print(f"wrote {args.num_train} training + {args.n_test} test {args.kind} cases to {folder}")
    return 0
