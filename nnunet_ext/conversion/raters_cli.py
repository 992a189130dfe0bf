"""Argument parsing for ``nnext convert raters`` and ``nnext convert lidc`` (hooked into conversion/cli.py)."""
from __future__ import annotations

import argparse

from nnunet_ext.errors import InputError


def _triple(text: str) -> tuple[int, int, int]:
    try:
        v = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"need X,Y,Z voxel counts, got {text!r}") from None
    if len(v) != 3 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"need three positive integers X,Y,Z, got {text!r}")
    return v


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"need MIN,MAX in mm, got {text!r}") from None
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 <= MIN <= MAX, got {text!r}")
    return lo, hi


def add_raters(p: argparse.ArgumentParser, common) -> None:
    common(p, "Raters")


def run_raters(args, check_common) -> int:
    check_common(args)
    from nnunet_ext.conversion.raters import convert_raters

    convert_raters(args.input, args.dataset_id, name=args.name, overwrite=args.overwrite,
                   progress=not args.no_progress)
    return 0


def add_lidc(p: argparse.ArgumentParser, common) -> None:
    common(p, "LIDCRaters")
    p.add_argument("--crop", type=_triple, default=(64, 64, 32), metavar="X,Y,Z",
                   help="crop size in voxels around each nodule (default 64,64,32; with --2d only X,Y are used)")
    p.add_argument("--min-raters", type=int, default=2, metavar="K", help="keep nodules with >= K raters (2)")
    p.add_argument("--diameter", type=_range, default=(3.0, 30.0), metavar="MIN,MAX",
                   help="keep nodules whose mean annotated diameter is in this range, mm (3,30)")
    p.add_argument("--2d", dest="two_d", action="store_true",
                   help="one axial slice per nodule (the union's central slice), as in the paper")


def run_lidc(args, check_common) -> int:
    check_common(args)
    if not 1 <= args.min_raters <= 6:
        raise InputError(f"--min-raters must be 1..6, got {args.min_raters}")
    from nnunet_ext.conversion.lidc import convert_lidc

    convert_lidc(args.input, args.dataset_id, name=args.name, crop_xyz=args.crop, min_raters=args.min_raters,
                 diameter=args.diameter, two_d=args.two_d, overwrite=args.overwrite,
                 skip_invalid=args.skip_invalid, progress=not args.no_progress)
    return 0
