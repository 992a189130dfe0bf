"""``nnext evaluate``: Dice, IoU, sensitivity, specificity, HD, HD95, NSD, boundary Dice, ... per case and label.

Writes ``summary.json`` (per-case metrics, NaN-aware mean / median per label or region) and ``summary.csv``
(one row per case x label / region) beside it; both are replaced atomically. Module-level imports stay light.

``--uncertainty UNC_DIR`` / ``--probabilities PROB_DIR`` add uncertainty scores (AUROC of the uncertainty for
voxel errors, top-uncertainty Dice, classwise ECE, Brier; see :mod:`.uncertainty_eval`) under ``"uncertainty"``
and as ``unc_*`` CSV columns, and (with probabilities) a reliability diagram PNG.

When PRED_DIR holds ``confidence.csv`` (``nnext predict``; or ``--confidence FILE``) the summary gains
``failure_detection`` (AUROC of the confidence for Dice < ``--fail-dice``, AURC, Spearman, true vs false positive
components; :mod:`.failure_eval`) and a risk-coverage PNG beside the summary.
"""
from __future__ import annotations

import argparse
import sys
import warnings

from nnunet_ext.argtypes import non_negative


def _label(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"label {text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"label {text!r} is negative")
    return value


def _region(text: str) -> tuple[int, ...]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"region {text!r} is empty")
    return tuple(_label(p.strip()) for p in parts)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-ref", "--ref", dest="ref", required=True, metavar="REF_DIR",
                   help="folder of reference segmentations")
    p.add_argument("-pred", "--pred", dest="pred", required=True, metavar="PRED_DIR",
                   help="folder of predicted segmentations (same file names)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-l", "--labels", nargs="+", type=_label, metavar="LABEL",
                   help="labels to evaluate (default: from -djfile, else every non-zero label in the references)")
    g.add_argument("--regions", nargs="+", type=_region, metavar="R",
                   help="regions as comma-separated labels, e.g. '1,2,3 2,3 3' (mask = isin(seg, region))")
    p.add_argument("-djfile", "--dataset-json", dest="djfile", metavar="dataset.json",
                   help="nnU-Net dataset.json: labels (regions if its label values are lists), names, file_ending")
    p.add_argument("-o", "--output", metavar="summary.json",
                   help="output JSON (default PRED_DIR/summary.json); summary.csv is written beside it")
    p.add_argument("--tau", type=non_negative, default=2.0, metavar="MM",
                   help="NSD tolerance in mm (default 2)")
    p.add_argument("--boundary-width", type=non_negative, default=None, metavar="MM",
                   help="width of the inner boundary bands for boundary Dice in mm (default: --tau)")
    p.add_argument("--penalty", type=non_negative, default=None, metavar="MM",
                   help="HD / HD95 / ASSD when exactly one of reference and prediction is empty "
                        "(default 374, as BraTS)")
    p.add_argument("-np", "--num-processes", dest="num_processes", type=int, default=1, metavar="N",
                   help="worker processes (default 1)")
    p.add_argument("--file-ending", default=None, metavar="EXT",
                   help="file ending of the segmentations (default: dataset.json's file_ending, else .nii.gz)")
    p.add_argument("--ignore-unknown-labels", action="store_true",
                   help="score label values that dataset.json (or, without it, every reference and -l) does not "
                        "declare as background, with a warning per file (default: refuse them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no printed summary")
    u = p.add_argument_group("uncertainty (maps written by the nnunet_ext predictor)")
    u.add_argument("--uncertainty", metavar="UNC_DIR",
                   help="folder of CASE_uncertainty maps (often PRED_DIR): AUROC for voxel errors, "
                        "top-uncertainty Dice")
    u.add_argument("--probabilities", metavar="PROB_DIR",
                   help="folder of CASE_probabilities (C,z,y,x) files: classwise ECE, Brier, reliability diagram")
    u.add_argument("--unc-roi", choices=("bbox", "all"), default="bbox",
                   help="voxels scored: bounding box of reference | prediction grown by --unc-margin (default), or all")
    u.add_argument("--unc-margin", type=non_negative, default=10.0, metavar="MM",
                   help="margin of the bbox ROI in mm (default 10)")
    u.add_argument("--ece-bins", type=int, default=15, metavar="N", help="equal-width confidence bins (default 15)")
    u.add_argument("--ece-pooling", choices=("pooled", "mean"), default="pooled",
                   help="one histogram for all foreground classes (default) or the mean of per-class ECEs")
    u.add_argument("--calib-margin", type=non_negative, default=5.0, metavar="MM",
                   help="ECE / Brier also inside the union of reference and prediction dilated by MM (default 5)")
    u.add_argument("--top-fraction", type=float, default=None, metavar="F",
                   help="top-uncertainty Dice region = this fraction of the ROI (default: as many voxels as errors)")
    f = p.add_argument_group("failure detection (confidence.csv written by nnext predict)")
    f.add_argument("--confidence", metavar="FILE",
                   help="confidence table (default: PRED_DIR/confidence.csv when present)")
    f.add_argument("--fail-dice", type=float, default=0.5, metavar="TAU",
                   help="a case fails when its Dice < TAU (default 0.5)")
    f.add_argument("--risk-coverage-png", metavar="FILE",
                   help="risk-coverage PNG (default with a confidence table: <summary>_risk_coverage.png beside -o)")
    u.add_argument("--reliability-png", metavar="FILE",
                   help="reliability diagram (default with --probabilities: <summary>_reliability.png beside -o)")


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from nnunet_ext.core.surface import DEFAULT_PENALTY_MM
    from nnunet_ext.errors import InputError
    from nnunet_ext.evaluation.evaluate import evaluate_folders
    from nnunet_ext.evaluation.metrics import labels_from_dataset_json
    from nnunet_ext.evaluation.summary_io import csv_path_for

    if args.num_processes < 1:
        raise InputError(f"-np must be >= 1, got {args.num_processes}")
    labels, names, file_ending = args.labels or args.regions, None, args.file_ending
    declared = None
    if args.djfile:
        from nnunet_ext.io.integrity import load_json_checked
        from nnunet_ext.io.label_check import declared_label_values

        dj_labels, names = labels_from_dataset_json(args.djfile)
        declared = declared_label_values(load_json_checked(args.djfile, ("labels",))["labels"], args.djfile)
        asked = {v for lr in labels or () for v in (lr if isinstance(lr, tuple) else (lr,))}
        if asked - declared:
            raise InputError(f"-l / --regions: label(s) {sorted(asked - declared)} are not declared in "
                             f"{args.djfile} (labels {sorted(declared)})")
        labels = labels or dj_labels
        if file_ending is None:
            try:
                with open(args.djfile, encoding="utf-8") as f:
                    file_ending = json.load(f).get("file_ending")
            except (OSError, ValueError, AttributeError):
                file_ending = None
    output = args.output or os.path.join(args.pred, "summary.json")
    if not output.lower().endswith(".json"):
        raise InputError(f"-o {output}: the output file must end in .json")
    unc_options, reliability_png = None, None
    if args.uncertainty or args.probabilities:
        from nnunet_ext.evaluation.uncertainty_eval import UncertaintyOptions

        unc_options = UncertaintyOptions(args.uncertainty, args.probabilities, roi=args.unc_roi,
                                         margin_mm=args.unc_margin, n_bins=args.ece_bins,
                                         ece_pooling=args.ece_pooling, top_fraction=args.top_fraction,
                                         calib_margin_mm=args.calib_margin)
        if args.probabilities:
            reliability_png = args.reliability_png or os.path.splitext(output)[0] + "_reliability.png"
    if args.reliability_png and not args.probabilities:
        raise InputError("--reliability-png needs --probabilities (the diagram is built from class probabilities)")
    confidence = args.confidence or (os.path.join(args.pred, "confidence.csv")
                                     if os.path.isfile(os.path.join(args.pred, "confidence.csv")) else None)
    if args.confidence and not os.path.isfile(args.confidence):
        raise InputError(f"--confidence {args.confidence}: no such file")
    if not 0 < args.fail_dice <= 1:
        raise InputError(f"--fail-dice must be in (0, 1], got {args.fail_dice}")
    if args.risk_coverage_png and not confidence:
        raise InputError(f"--risk-coverage-png needs a confidence table (none in {args.pred}; see --confidence)")
    risk_png = (args.risk_coverage_png or os.path.splitext(output)[0] + "_risk_coverage.png") if confidence else None
    from nnunet_ext.io.integrity import check_output_file

    for path, what in ((output, "summary file (-o)"), (csv_path_for(output), "summary CSV"),
                       (reliability_png, "reliability diagram (--reliability-png)"),
                       (risk_png, "risk-coverage diagram (--risk-coverage-png)")):
        if path:
            check_output_file(path, what)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = evaluate_folders(args.ref, args.pred, labels, tau=args.tau,
                                   penalty=DEFAULT_PENALTY_MM if args.penalty is None else args.penalty,
                                   num_processes=args.num_processes, boundary_width=args.boundary_width,
                                   file_ending=file_ending or ".nii.gz", output_file=None, label_names=names,
                                   progress=not args.quiet, uncertainty=unc_options, declared_labels=declared,
                                   label_source=args.djfile or "dataset.json",
                                   ignore_unknown_labels=args.ignore_unknown_labels)
    for w in caught:
        print(f"nnext evaluate: warning: {w.message}", file=sys.stderr)
    if confidence:
        from nnunet_ext.evaluation.failure_eval import failure_detection, save_risk_coverage

        summary["failure_detection"] = failure_detection(summary, confidence, args.fail_dice)
        save_risk_coverage(summary["failure_detection"], risk_png,
                           {k: v.get("name") for k, v in summary["labels"].items()})
    if reliability_png:  # the diagram first: if it cannot be written, no summary is left behind either
        from nnunet_ext.evaluation.uncertainty_eval import save_reliability_diagram

        pooled = summary["uncertainty"]["pooled"]
        save_reliability_diagram(pooled["bins_dilated_union"], reliability_png,
                                 title=f"{summary['settings']['num_cases']} case(s), foreground one-vs-rest inside "
                                       f"reference | prediction dilated by {args.calib_margin:g} mm",
                                 ece_name="ece_dilated_union_pooled_over_cases")
    from nnunet_ext.evaluation.summary_io import write_summary

    try:
        write_summary(summary, output)
    except BaseException:
        for png in (reliability_png, risk_png):
            if png and os.path.isfile(png):
                os.remove(png)
        raise
    if summary.get("absent_cases"):
        print("nnext evaluate: note: " + "; ".join(f"label {k} absent from reference and prediction in {n} of "
                                                  f"{len(summary['metric_per_case'])} case(s) (scored as both-empty: "
                                                  "Dice 1, HD 0; see 'absent' per case)"
                                                  for k, n in summary["absent_cases"].items()), file=sys.stderr)
    from nnunet_ext.evaluation.undefined import empty_prediction_notes

    for note in empty_prediction_notes(summary):
        print(f"nnext evaluate: {note}", file=sys.stderr)
    if not args.quiet:
        print(_table(summary))
        if unc_options is not None:
            print(_unc_line(summary["uncertainty"]))
        if confidence:
            print(_failure_line(summary["failure_detection"]))
        print(f"wrote {output} and {csv_path_for(output)}" + (f" and {reliability_png}" if reliability_png else "")
              + (f" and {risk_png}" if risk_png else ""))
    return 0


def _unc_line(unc: dict) -> str:
    from nnunet_ext.evaluation.undefined import metric_text

    m = unc["mean"]
    return (f"uncertainty (mean over cases, ROI {unc['settings']['roi']}): "
            + ", ".join(metric_text(k, m[k]) for k in ("auroc", "top_dice"))
            + "; calibration: " + ", ".join(metric_text(k, v) for k, v in unc["calibration"].items()
                                             if v is None or isinstance(v, float)))


def _failure_line(section: dict) -> str:
    tau = section["settings"]["fail_dice"]
    return "failure detection (confidence.csv): " + "; ".join(
        f"label {k}: AUROC(Dice<{tau:g}) {v['auroc_failure']:.3g}, AURC {v['aurc']:.3g} (oracle "
        f"{v['aurc_optimal']:.3g}), Spearman {v['spearman_confidence_dice']:.3g}, TP/FP components "
        f"{v['components']['n_true_positive']}/{v['components']['n_false_positive']}"
        for k, v in section["per_label"].items())


def _table(summary: dict) -> str:
    from nnunet_ext.evaluation.undefined import undefined

    cols = ("dice", "iou", "hd95", "nsd", "boundary_dice", "sensitivity")
    n = summary["settings"]["num_cases"]
    lines = [f"{n} case(s); mean (median) per label / region; NSD at {summary['settings']['tau_mm']:g} mm",
             f"{'label':<12}" + "".join(f"{c:>20}" for c in cols)]
    for key, info in summary["labels"].items():
        name = f"{key} {info['name']}" if info.get("name") else key
        cells = "".join(_cell(summary['mean'][key][c], summary['median'][key][c]) for c in cols)
        lines.append(f"{name[:12]:<12}{cells}")
        gone = [c for c in cols if undefined(summary["mean"][key][c])]
        if gone:
            lines.append(f"{name}: {', '.join(gone)} not defined in any case (no voxels of it on either side)")
    return "\n".join(lines)


def _cell(mean, median) -> str:
    from nnunet_ext.evaluation.undefined import undefined

    return ("n/a" if undefined(mean) else f"{mean:>11.4g} ({median:.4g})").rjust(20)
