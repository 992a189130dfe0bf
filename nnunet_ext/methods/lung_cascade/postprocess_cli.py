"""``nnext postprocess lung``: anatomy-aware component filter (see :mod:`.component_filter`) for a folder of
binary tumour predictions (any label > 0 is tumour) with a folder of lung masks (1 = right, 2 = left).

For every ``CASE{ending}`` in PRED_DIR, ``LUNG_DIR/CASE{ending}`` is read; a lung mask on a different grid
(size, spacing, origin or direction) is resampled onto the prediction's grid with nearest neighbour (warning);
if that leaves it empty while it was not, the case is refused (no overlap between the images). Writes
``OUT/CASE{ending}`` (0/1 uint8, the prediction's geometry) and ``OUT/postprocess_log.json`` (config and per
case the component log). Existing outputs are kept (and their log entries too) unless ``--overwrite``.
Module-level imports stay light.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from nnunet_ext.methods.lung_cascade.filter_options import add_filter_arguments, filter_config, top_k  # noqa: F401
from nnunet_ext.methods.lung_cascade.lung_grid import load_lung_on_grid  # noqa: F401


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="filter", metavar="FILTER", required=True)
    lung = sub.add_parser("lung", help="anatomy-aware component filter with lung masks",
                          description="Anatomy-aware component filter: dilation merge, lung overlap (stricter in "
                          "the central mediastinal zone), distance rescue, optional Top-K. Writes OUT/CASE and "
                          "OUT/postprocess_log.json.")
    lung.add_argument("-i", "--input", required=True, metavar="PRED_DIR", help="folder of tumour predictions")
    lung.add_argument("-l", "--lung", required=True, metavar="LUNG_DIR", help="folder of lung masks (same names)")
    lung.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    add_filter_arguments(lung, top_k_default=None)
    lung.add_argument("--file-ending", default=".nii.gz", help="image file ending (default .nii.gz)")
    lung.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    import numpy as np
    import SimpleITK as sitk

    from nnunet_ext.errors import InputError
    from nnunet_ext.io.imageio import Geometry, atomic_write_text, read_sitk, write_image
    from nnunet_ext.methods.lung_cascade.cascade_report import no_tumour_line, stage1_line
    from nnunet_ext.methods.lung_cascade.component_filter import filter_components

    ending = args.file_ending
    for name, folder in (("prediction", args.input), ("lung mask", args.lung)):
        if not os.path.isdir(folder):
            raise InputError(f"{name} folder {folder} does not exist")
    cases = sorted(f[: -len(ending)] for f in os.listdir(args.input)
                   if f.endswith(ending) and not f.startswith("."))
    if not cases:
        raise InputError(f"no *{ending} files in {args.input}")
    missing = [c for c in cases if not os.path.isfile(os.path.join(args.lung, c + ending))]
    if missing:
        raise InputError(f"lung mask missing for case(s) {', '.join(missing)} in {args.lung}")
    if os.path.abspath(args.output) == os.path.abspath(args.input):
        raise InputError("output folder must differ from the prediction folder")

    from nnunet_ext.io.integrity import check_output_dir, check_values, read_header_checked
    from nnunet_ext.io.resume import output_problem
    from nnunet_ext.io.settings_record import SETTINGS_FILE, check_settings, record_settings

    check_output_dir(args.output, "output folder (-o)")
    for case in cases:  # every input complete, 3D, plausible spacing, before anything is written
        read_header_checked(os.path.join(args.input, case + ending), ndim=3)
        read_header_checked(os.path.join(args.lung, case + ending), ndim=3)
    config = filter_config(args)
    settings = {"filter": "lung", "config": asdict(config), "lung_folder": os.path.abspath(args.lung)}
    recorded = check_settings(args.output, settings, args.overwrite, what="post-processing folder")
    log_path = os.path.join(args.output, "postprocess_log.json")
    previous: dict = {}
    if os.path.isfile(log_path):
        try:
            with open(log_path, encoding="utf-8") as f:
                previous = json.load(f).get("cases", {})
        except (OSError, ValueError, AttributeError):
            previous = {}
    cases_log: dict = {}
    for case in cases:
        out_path = os.path.join(args.output, case + ending)
        pred_path = os.path.join(args.input, case + ending)
        if os.path.exists(out_path) and not args.overwrite:  # a resume keeps only what checks out
            problem = (output_problem(out_path, like=pred_path) if recorded
                       else "no settings record in the folder")
            if problem is None:
                print(f"{case}: {out_path} exists, kept (use --overwrite to replace)")
                if case in previous:
                    cases_log[case] = previous[case]
                continue
            print(f"{case}: recomputing ({problem})")
        pred_img = read_sitk(pred_path)
        if pred_img.GetDimension() != 3:
            raise InputError(f"case {case}: prediction must be 3D, got {pred_img.GetDimension()}D")
        # a float map (probabilities, an image) is not a segmentation: refused, not turned into one component
        pred = check_values(sitk.GetArrayFromImage(pred_img), pred_path, kind="label") > 0
        spacing_zyx = tuple(pred_img.GetSpacing())[::-1]
        # every warning (lung mask resampled, lung mask empty) goes to stderr once per case and into the log
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lung, resampled = load_lung_on_grid(os.path.join(args.lung, case + ending), pred_img, case)
            filtered, log = filter_components(pred, lung, spacing_zyx, config)
        for w in caught:
            print(f"{case}: warning: {w.message}", file=sys.stderr)
        if resampled:
            log["warnings"].insert(0, str(caught[0].message))
        log.pop("config", None)
        log["lung_resampled"] = resampled
        write_image(filtered.astype(np.uint8), Geometry.of(pred_img), out_path)  # verified; the record follows
        if not cases_log or not os.path.isfile(os.path.join(args.output, SETTINGS_FILE)):
            record_settings(args.output, settings, command="nnext postprocess lung")
        cases_log[case] = log
        print(stage1_line(case, log).replace(": stage 1: ", ": ", 1))
        empty = no_tumour_line(case, log, int(filtered.sum()))
        if empty:
            print(empty)
    atomic_write_text(log_path, json.dumps({"filter": "lung", "config": asdict(config), "cases": cases_log},
                                           indent=1) + "\n")
    return 0
