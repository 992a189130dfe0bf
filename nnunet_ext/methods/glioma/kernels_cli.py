"""``nnext kernels``: high-uncertainty kernels of one uncertainty map (Yang et al. 2025, sec. 2.2.2).

Writes a JSON list of kernels in selection order, each ``{"start": [z, y, x], "size": [dz, dy, dx], "sum": s}``
with indices in the numpy order of ``SimpleITK.GetArrayFromImage`` (see :mod:`nnunet_ext.methods.glioma.kernels`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from nnunet_ext.argtypes import fraction, int_at_least, non_negative
from nnunet_ext.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--uncertainty", required=True, metavar="UNC.nii.gz", help="uncertainty map (3D)")
    parser.add_argument("-o", "--output", required=True, metavar="KERNELS.json", help="output JSON")
    parser.add_argument("--kernel-mm", default="32", metavar="D",
                        help="kernel edge in mm, converted to voxels with the map's spacing (default 32; the paper: "
                             "32 for ET / TC, 64 for WT); the same flag as kernel-dataset / -m kernel_refine, which "
                             "also take TAG=D,... per region: this command searches one map, so one size")
    parser.add_argument("--overlap", type=fraction, default=0.4,
                        help="reject a kernel overlapping any selected one by more than this fraction of the "
                             "kernel volume (default 0.4)")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--min-fraction", type=fraction, default=None, metavar="F",
                      help="stop when the best remaining sum is below F x the first kernel's sum (default 0.1)")
    stop.add_argument("--min-sum", type=non_negative, default=None, metavar="S",
                      help="stop when the best remaining sum is below S (absolute)")
    parser.add_argument("--max-kernels", type=int_at_least(1), default=None, metavar="K",
                        help="at most K kernels (default: no limit)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    import warnings

    import numpy as np

    from nnunet_ext.io.imageio import atomic_write_text, read_image
    from nnunet_ext.io.integrity import check_output_file
    from nnunet_ext.methods.glioma.kernels import kernel_size_voxels, search_kernels

    check_output_file(args.output, "output file (-o)")  # before any work: a folder, a parent that is a file
    if os.path.exists(args.output) and not args.overwrite:
        raise InputError(f"{args.output}: exists; pass --overwrite to replace it")
    from nnunet_ext.methods.glioma.kernels import parse_kernel_sizes

    try:
        sizes = parse_kernel_sizes(args.kernel_mm)
    except ValueError as e:
        raise InputError(f"--kernel-mm: {e}") from None
    if set(sizes) != {"*"}:
        raise InputError(f"--kernel-mm {args.kernel_mm}: nnext kernels searches one map: give one size D in mm")
    kernel_mm = sizes["*"]
    u, geometry = read_image(args.uncertainty, min_value=0.0)  # a negative 'uncertainty' is no uncertainty
    if u.ndim != 3:
        raise InputError(f"{args.uncertainty}: expected a 3D uncertainty map, got {u.ndim}D")
    if not np.isfinite(u).all():
        raise InputError(f"{args.uncertainty}: contains NaN or Inf")
    size = kernel_size_voxels(kernel_mm, tuple(geometry.spacing)[::-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernels = search_kernels(u, size, args.overlap, min_fraction=args.min_fraction, min_sum=args.min_sum,
                                 max_kernels=args.max_kernels)
    for w in caught:
        print(f"nnext kernels: warning: {args.uncertainty}: {w.message}", file=sys.stderr)
    atomic_write_text(args.output, json.dumps([k.to_json() for k in kernels], indent=1) + "\n")
    print(f"{len(kernels)} kernel(s) of {size[0]}x{size[1]}x{size[2]} voxels (z, y, x) -> {args.output}")
    return 0
