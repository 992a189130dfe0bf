"""Arguments and runners of ``nnext convert brats`` and ``nnext convert brats-back`` (see
:mod:`nnunet_ext.conversion.brats`)."""
from __future__ import annotations

import argparse
import os

from nnunet_ext.errors import InputError


def add_brats(p: argparse.ArgumentParser, common) -> None:
    common(p, "BraTS<YEAR>")
    p.add_argument("--year", type=int, choices=(2020, 2021, 2023), default=None,
                   help="release layout (default: detected from the case folder names)")
    p.add_argument("--labels", choices=("nnunet", "brats"), default="nnunet",
                   help="dataset labels: nnunet = 1 oedema, 2 NCR, 3 ET (default, as nnU-Net's BraTS conversion); "
                        "brats = the release's meaning, consecutive (1 NCR, 2 ED, 3 ET)")
    p.add_argument("--resample-labels", action="store_true",
                   help="resample a label on another grid than its T1 onto the T1 grid (nearest neighbour; refused "
                        "when a class loses every voxel); default: refuse such a label")


def run_brats(args: argparse.Namespace, check_common) -> int:
    check_common(args)
    from nnunet_ext.conversion.brats import convert_brats

    name = None if args.name == "BraTS<YEAR>" else args.name
    convert_brats(args.input, args.dataset_id, year=args.year, name=name, labels=args.labels,
                  overwrite=args.overwrite, skip_invalid=args.skip_invalid, progress=not args.no_progress,
                  resample_labels=args.resample_labels)
    return 0


def add_brats_back(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", required=True, metavar="DIR", help="folder of predicted CASE.nii.gz")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (BraTS label values)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-d", "--dataset-id", metavar="ID",
                     help="dataset converted by nnext convert brats (its dataset.json gives year and labels)")
    src.add_argument("--year", type=int, choices=(2020, 2021, 2023), help="target release (with --labels)")
    p.add_argument("--labels", choices=("nnunet", "brats"), default="nnunet",
                   help="label convention of the predictions when --year is given (default nnunet)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run_brats_back(args: argparse.Namespace) -> int:
    from nnunet_ext.conversion.brats import brats_back, dataset_convention

    if not os.path.isdir(args.input):
        raise InputError(f"{args.input}: input folder not found")
    if args.dataset_id is not None:
        from nnunet_ext.io.paths import find_dataset

        year, labels = dataset_convention(find_dataset(args.dataset_id))
    else:
        year, labels = args.year, args.labels
    written = brats_back(args.input, args.output, year, labels, overwrite=args.overwrite)
    print(f"{len(written)} segmentation(s) with BraTS {year} labels -> {args.output}")
    return 0
