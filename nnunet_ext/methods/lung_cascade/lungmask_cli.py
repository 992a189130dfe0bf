"""``nnext lungmask``: lung masks (1 = right lung, 2 = left lung) for one CT file or a folder of CTs.

Input naming: a folder of nnU-Net images (``CASE_0000.nii.gz``; other channels are ignored) gives
``OUT/CASE.nii.gz``; a folder of plain images (``NAME.nii.gz``) gives ``OUT/NAME.nii.gz``. A single file gives
``OUT`` itself when OUT has an image extension, else ``OUT/<name as above>``. Masks keep the CT's geometry.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

IMAGE_ENDINGS = (".nii.gz", ".nii", ".mha", ".nrrd")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help="CT file, or folder of CASE_0000.nii.gz / *.nii.gz")
    parser.add_argument("-o", "--output", required=True, help="output folder (or output file for a single CT)")
    parser.add_argument("--backend", choices=("auto", "lungmask", "threshold"), default="auto",
                        help="auto (default): lungmask when installed with local weights, else threshold")
    parser.add_argument("--lungmask-weights", default=None, metavar="PATH",
                        help="local R231 weights file for the lungmask backend (never downloaded)")
    parser.add_argument("--nan-policy", choices=("refuse", "zero"), default="refuse",
                        help="CT voxels that are NaN / Inf: refuse the file (default) or set them to 0")
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute masks that already exist (also needed to change the backend of a folder)")


def _stem(filename: str) -> str:
    for e in IMAGE_ENDINGS:
        if filename.endswith(e):
            return filename[: -len(e)]
    return filename


def _is_image(filename: str) -> bool:
    return any(filename.endswith(e) for e in IMAGE_ENDINGS) and not filename.startswith(".")


def collect_jobs(inp: str, out: str) -> list[tuple[str, str]]:
    """``[(ct path, mask path)]`` for the input file or folder (sorted); InputError when there is nothing."""
    from nnunet_ext.errors import InputError

    if os.path.isfile(inp):
        name = os.path.basename(inp)
        if not _is_image(name):
            raise InputError(f"{inp}: not an image file (expected one of {', '.join(IMAGE_ENDINGS)})")
        if _is_image(os.path.basename(out)):
            return [(inp, out)]
        m = _CHANNEL.match(_stem(name))
        return [(inp, os.path.join(out, (m.group("case") if m else _stem(name)) + ".nii.gz"))]
    if not os.path.isdir(inp):
        raise InputError(f"{inp}: no such file or folder")
    names = sorted(n for n in os.listdir(inp) if _is_image(n) and os.path.isfile(os.path.join(inp, n)))
    if not names:
        raise InputError(f"{inp}: no images ({', '.join(IMAGE_ENDINGS)}) in this folder")
    channel = [n for n in names if _CHANNEL.match(_stem(n))]
    if channel:  # nnU-Net naming: the CT is channel 0000
        return [(os.path.join(inp, n), os.path.join(out, _CHANNEL.match(_stem(n)).group("case") + ".nii.gz"))
                for n in channel if _CHANNEL.match(_stem(n)).group("ch") == "0000"]
    return [(os.path.join(inp, n), os.path.join(out, _stem(n) + ".nii.gz")) for n in names]


def _keep(ct_path: str, mask_path: str, recorded: bool) -> bool:
    """A resume skips an existing mask only under a matching settings record and when it checks out; else a note."""
    if not os.path.exists(mask_path):
        return False
    from nnunet_ext.io.resume import output_problem

    reason = output_problem(mask_path, like=ct_path) if recorded else "no settings record in the folder"
    if reason is not None:
        print(f"lungmask: {os.path.basename(mask_path)}: recomputing ({reason})")
    return reason is None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nnunet_ext.errors import InputError
    from nnunet_ext.io.imageio import read_image, write_image
    from nnunet_ext.io.integrity import check_output_dir, check_output_file, read_header_checked
    from nnunet_ext.io.settings_record import check_settings, record_settings
    from nnunet_ext.methods.lung_cascade.lungmask import compute_lung_mask, lungmask_available

    if args.lungmask_weights is not None and not os.path.isfile(args.lungmask_weights):
        raise InputError(f"{args.lungmask_weights}: lungmask weights file not found")
    jobs = collect_jobs(args.input, args.output)
    if not jobs:
        raise InputError(f"{args.input}: no CASE_0000 images in this folder")
    single_file = len(jobs) == 1 and jobs[0][1] == args.output
    if single_file:
        check_output_file(args.output, "output mask file (-o)")
    else:
        check_output_dir(args.output, "output folder (-o)")

    backend = args.backend
    if backend in ("auto", "lungmask"):
        ok, reason = lungmask_available(args.lungmask_weights)
        if ok:
            backend = "lungmask"
            print(f"lungmask: backend lungmask ({reason})")
        elif backend == "lungmask":
            raise InputError(f"lungmask backend unusable: {reason}")
        else:
            backend = "threshold"
            print(f"lungmask: backend threshold (lungmask unusable: {reason})")
    else:
        print("lungmask: backend threshold")
    for ct_path, _ in jobs:  # every input checked (complete file, 3D, plausible spacing) before any output
        read_header_checked(ct_path, ndim=3)
    settings = {"backend": backend, "lungmask_weights": os.path.abspath(args.lungmask_weights)
                if args.lungmask_weights else None, "nan_policy": args.nan_policy}
    folder = os.path.dirname(os.path.abspath(args.output)) if single_file else args.output
    recorded = True
    if not single_file:  # stale-output guard: masks of another backend are not mixed into this folder
        recorded = check_settings(folder, settings, args.overwrite, what="lung-mask folder")
    todo = [(i, o) for i, o in jobs if args.overwrite or not _keep(i, o, recorded)]
    if len(todo) < len(jobs):
        print(f"lungmask: skipping {len(jobs) - len(todo)} existing mask(s) (use --overwrite to recompute)")

    for ct_path, out_path in tqdm(todo, desc="lung masks", unit="case", disable=not todo, file=sys.stderr):
        ct, geometry = read_image(ct_path, ndim=3, kind="image", nan_policy=args.nan_policy)
        try:
            with warnings.catch_warnings(record=True) as caught:  # e.g. "no lungs found": once per case
                warnings.simplefilter("always")
                mask, _ = compute_lung_mask(ct, geometry, backend=backend, weights=args.lungmask_weights)
        except InputError as e:
            raise InputError(f"{ct_path}: {e}") from None
        for w in caught:
            print(f"{ct_path}: warning: {w.message}", file=sys.stderr)
        write_image(mask.astype("uint8"), geometry, out_path)  # verified before the record that follows it
        if not single_file and todo and ct_path == todo[0][0]:
            record_settings(args.output, settings, command="nnext lungmask")
    print(f"lungmask: wrote {len(todo)} mask(s) to {args.output}")
    return 0
