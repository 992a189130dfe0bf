"""``nnext evaluate-raters``: multi-rater evaluation of nodule segmentations (Yang & Wang sec. IV-A..C, E).

Every mask read (prediction, rater masks, HC / LC) must be binary 0/1 (:func:`nnunet_ext.io.label_check.check_binary`;
a rater mask holding 2 used to count as foreground). Per case (raters from ``RATERS/CASE_rater{k}.nii.gz``,
k = 0.. ; rater 0 is the paper's Label_1):

* Dice / IoU / NSD (τ = ``--tau`` mm, default 1) of the prediction against rater 0 (the paper's protocol,
  Label_1), against each rater and their mean E_j[Dice(P, GT_j)] (the expected Dice against a reader drawn at
  random: the fair target when the reader order is arbitrary), against the majority (mean rater mask >= 0.5),
  the union U(GT) and the intersection I(GT); with ``--truth DIR`` (phantoms: ``truthTs``) against the latent truth;
* the hard subset, defined a priori, never by a model's score (issue 22): cases whose mean pairwise reader Dice is
  below ``--hard-agreement`` (default 0.7, about LIDC-IDRI's lower quartile, whose sub-solid nodules have a
  median of 0.68) or, with ``--case-info JSON`` (``phantom_info.json``), whose ``type`` is in ``--hard-types``
  (default part-solid); ``summary["hard"]`` holds the criterion, the cases and their means;
* with ``--mcm DIR`` (``nnext predict -m mcm`` output): Dice of the predicted high-confidence mask ``CASE_hc``
  against the true HC = I(GT) and of the predicted ``CASE_lc`` against the true LC = U(GT) \\ I(GT);
  with ``--images DIR`` also the 1-Wasserstein distance (``scipy.stats.wasserstein_distance``, HU) between the
  HU values under predicted and true HC, and under predicted and true LC, pooled over cases (a number for the
  paper's Fig. 8);
* with ``--images DIR``: HU values under predicted / true HC and LC, pooled over cases, as a kernel-density
  plot (``--kde-png``, scipy's ``gaussian_kde``, Scott's bandwidth; the paper's Fig. 8);
* Complex-Nodule Validation (sec. IV-E) with ``--baseline SUMMARY.json`` (this command's output for the
  baseline, e.g. the same backbone trained on rater 0 only): for thresholds 60 / 70 / 80 %, the cases whose
  *baseline* Dice vs rater 0 is below the threshold, and the mean Dice / IoU of baseline and this prediction
  on them. Selecting by the baseline's own low score favours any challenger (regression to the mean); it is
  kept as the paper's protocol, the a-priori hard subset above is the unbiased one.

Output: ``summary.json`` (``cases``, ``mean``, optional ``complex_nodules``) and a CSV beside it.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from nnunet_ext.errors import InputError

THRESHOLDS = (0.6, 0.7, 0.8)
FILE_ENDING = ".nii.gz"
HARD_AGREEMENT = 0.7
HARD_TYPES = ("part-solid",)


def overlap_scores(ref: np.ndarray, pred: np.ndarray, spacing, tau: float) -> dict[str, float]:
    """Dice, IoU and NSD(τ) of two masks (empty-both -> 1, one empty -> 0 for all three)."""
    from nnunet_ext.core.overlap import confusion_counts, dice, iou
    from nnunet_ext.core.surface import normalized_surface_dice, surface_distances

    ref, pred = np.asarray(ref, bool), np.asarray(pred, bool)
    c = confusion_counts(ref, pred)
    if not ref.any() and not pred.any():
        return {"dice": 1.0, "iou": 1.0, "nsd": 1.0}
    if not ref.any() or not pred.any():
        return {"dice": 0.0, "iou": 0.0, "nsd": 0.0}
    return {"dice": dice(c), "iou": iou(c), "nsd": normalized_surface_dice(surface_distances(ref, pred, spacing), tau)}


def case_metrics(pred: np.ndarray, raters: np.ndarray, spacing, tau: float = 1.0, hc=None, lc=None,
                 truth=None) -> dict:
    """All per-case numbers (module docstring); ``raters`` (K, *shape) bool, spacing in array order."""
    from nnunet_ext.methods.multi_rater.rater_agreement import case_agreement

    union, inter = raters.any(0), raters.all(0)
    majority = raters.mean(0) >= 0.5
    out = {"n_raters": int(raters.shape[0])}
    if raters.shape[0] > 1 and all(r.any() for r in raters):
        out["reader_agreement"] = case_agreement(raters)["mean_pairwise_dice"]
    refs = [("rater0", raters[0]), ("majority", majority), ("union", union), ("intersection", inter)]
    if truth is not None:
        refs.append(("truth", np.asarray(truth, bool)))
    for name, ref in refs:
        out.update({f"{m}_{name}": v for m, v in overlap_scores(ref, pred, spacing, tau).items()})
    each = [overlap_scores(r, pred, spacing, tau) for r in raters]
    for m in ("dice", "iou", "nsd"):
        out[f"{m}_each"] = [s[m] for s in each]
        out[f"{m}_rater_mean"] = float(np.mean(out[f"{m}_each"]))
    if hc is not None:
        out["dice_hc"] = overlap_scores(inter, hc, spacing, tau)["dice"]
    if lc is not None:
        out["dice_lc"] = overlap_scores(union & ~inter, lc, spacing, tau)["dice"]
    return out


def hard_cases(results: dict[str, dict], agreement: "float | None" = HARD_AGREEMENT, info: "dict | None" = None,
               types=HARD_TYPES) -> dict[str, list[str]]:
    """A-priori hard cases -> the reasons (``"disagreement"``: mean pairwise reader Dice < ``agreement``;
    ``"type"``: ``info[case]["type"]`` in ``types``). Uses the readers and case metadata only, never a model."""
    out = {}
    for case, r in results.items():
        why = []
        if agreement is not None and r.get("reader_agreement", 1.0) < agreement:
            why.append("disagreement")
        if info is not None and (info.get(case) or {}).get("type") in types:
            why.append("type")
        if why:
            out[case] = why
    return out


def hu_wasserstein(hu: dict[str, list]) -> dict[str, "float | None"]:
    """1-Wasserstein distance (HU) between pooled predicted and true HC, and LC, HU samples (module docstring)."""
    from scipy.stats import wasserstein_distance

    out = {}
    for part in ("HC", "LC"):
        pred, true = (np.concatenate(hu[f"{w} {part}"]) if hu[f"{w} {part}"] else np.zeros(0) for w in ("pred", "true"))
        out[part.lower()] = float(wasserstein_distance(pred, true)) if pred.size and true.size else None
    return out


def complex_nodule_validation(baseline: dict[str, dict], method: dict[str, dict], thresholds=THRESHOLDS) -> dict:
    """Sec. IV-E: per threshold t, cases with baseline ``dice_rater0 < t`` and both runs' mean Dice / IoU there."""
    common = sorted(set(baseline) & set(method))
    out = {}
    for t in thresholds:
        hard = [c for c in common if baseline[c]["dice_rater0"] < t]
        row = {"n": len(hard), "cases": hard}
        for key in ("dice_rater0", "iou_rater0"):
            row[f"baseline_{key}"] = float(np.mean([baseline[c][key] for c in hard])) if hard else None
            row[f"method_{key}"] = float(np.mean([method[c][key] for c in hard])) if hard else None
        out[f"below_{int(round(t * 100))}"] = row
    return out


def hu_kde_png(samples: dict[str, np.ndarray], path, title: str = "HU kernel density") -> None:
    """Kernel-density curves of HU samples (``{label: values}``) in one PNG (the paper's Fig. 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    from nnunet_ext.io.atomic_write import save_figure

    grid = np.linspace(-1000, 200, 400)
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"true HC": ("tab:red", "-"), "pred HC": ("tab:red", "--"), "true LC": ("tab:blue", "-"),
              "pred LC": ("tab:blue", "--")}
    for label, values in samples.items():
        values = np.asarray(values, float)
        if values.size < 2 or np.ptp(values) == 0:
            continue
        colour, ls = styles.get(label, (None, "-"))
        ax.plot(grid, gaussian_kde(values)(grid), color=colour, linestyle=ls, label=f"{label} (n={values.size})")
    ax.set_xlabel("HU")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100, format="png")
    plt.close(fig)


def _means(results: dict, cases, keys) -> dict:
    return {k: float(np.mean(v)) for k in keys if (v := [results[c][k] for c in cases if k in results[c]])}


def _rater_sets(folder: Path) -> dict[str, list[Path]]:
    from nnunet_ext.methods.multi_rater.rater_files import find_rater_files

    return {c: [r[k] for k in sorted(r)] for c, r in find_rater_files(folder).items()}


def evaluate_raters(pred_dir, raters_dir, out_json, mcm_dir=None, images_dir=None, kde_png=None,
                    baseline=None, tau: float = 1.0, truth_dir=None, case_info=None,
                    hard_agreement: "float | None" = HARD_AGREEMENT, hard_types=HARD_TYPES) -> dict:
    """Evaluate every prediction ``PRED/CASE.nii.gz`` that has raters (module docstring); writes JSON + CSV."""
    from nnunet_ext.io.imageio import atomic_write_text, read_image
    from nnunet_ext.io.label_check import check_binary

    def binary(path: Path, what: str) -> np.ndarray:  # every mask read here is one class: 0 or 1, nothing else
        arr, geometry = read_image(path, kind="label")
        check_binary(arr, path, what)
        return arr > 0, geometry

    pred_dir, raters_dir = Path(pred_dir), Path(raters_dir)
    for d, flag in ((pred_dir, "-pred"), (raters_dir, "-raters")):
        if not d.is_dir():
            raise InputError(f"{d}: {flag} folder not found")
    sets = _rater_sets(raters_dir)
    cases = sorted(c for c in sets if (pred_dir / f"{c}{FILE_ENDING}").is_file())
    if not cases:
        raise InputError(f"{pred_dir}: no prediction CASE{FILE_ENDING} matches a rater set in {raters_dir}")
    results, hu = {}, {"true HC": [], "pred HC": [], "true LC": [], "pred LC": []}
    for case in cases:
        pred, geom = binary(pred_dir / f"{case}{FILE_ENDING}", "nodule prediction")
        raters = []
        for p in sets[case]:
            r, g = binary(p, "rater mask")
            if r.shape != pred.shape or not g.matches(geom):
                raise InputError(f"{p}: geometry differs from the prediction {case}{FILE_ENDING}")
            raters.append(r)
        raters = np.stack(raters)
        hc = lc = None
        if mcm_dir is not None:
            hc = binary(Path(mcm_dir) / f"{case}_hc{FILE_ENDING}", "high-confidence mask")[0]
            lc = binary(Path(mcm_dir) / f"{case}_lc{FILE_ENDING}", "low-confidence mask")[0]
        truth = None
        if truth_dir is not None:
            tpath = Path(truth_dir) / f"{case}{FILE_ENDING}"
            if not tpath.is_file():
                raise InputError(f"{tpath}: latent truth of {case} not found (--truth)")
            truth, tg = read_image(tpath, kind="label")
            if truth.shape != pred.shape or not tg.matches(geom):
                raise InputError(f"{tpath}: geometry differs from the prediction {case}{FILE_ENDING}")
            truth = truth > 0
        spacing = tuple(float(s) for s in geom.spacing[::-1])
        results[case] = case_metrics(pred, raters, spacing, tau, hc, lc, truth)
        if images_dir is not None and hc is not None:
            img = read_image(Path(images_dir) / f"{case}_0000{FILE_ENDING}", kind="image")[0]
            inter, union = raters.all(0), raters.any(0)
            for label, m in (("true HC", inter), ("pred HC", hc), ("true LC", union & ~inter), ("pred LC", lc)):
                hu[label].append(img[m].astype(float))
    keys = list(dict.fromkeys(k for c in cases for k, v in results[c].items() if isinstance(v, float)))
    summary = {"cases": results, "mean": _means(results, cases, keys), "tau_mm": tau}
    info = None
    if case_info is not None:
        from nnunet_ext.io.integrity import load_json_checked

        raw = load_json_checked(case_info, (), "case metadata (--case-info)")
        info = raw.get("cases", raw)
    hard = hard_cases(results, hard_agreement, info, hard_types)
    summary["hard"] = {"agreement_below": hard_agreement, "types": list(hard_types) if info is not None else None,
                       "cases": hard, "n": len(hard), "mean": _means(results, sorted(hard), keys) if hard else None}
    if images_dir is not None and mcm_dir is not None:
        summary["hu_wasserstein"] = hu_wasserstein(hu)
    if baseline is not None:
        from nnunet_ext.io.integrity import load_json_checked

        base = load_json_checked(baseline, ("cases",), "evaluate-raters summary (--baseline)")["cases"]
        summary["complex_nodules"] = complex_nodule_validation(base, results)
    if kde_png is not None and images_dir is not None and mcm_dir is not None:
        hu_kde_png({k: np.concatenate(v) if v else np.zeros(0) for k, v in hu.items()}, kde_png)
        summary["kde_png"] = str(kde_png)
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["case"] + keys)
    for c in cases:
        w.writerow([c] + [results[c].get(k, "") for k in keys])
    atomic_write_text(out_json.with_suffix(".csv"), buf.getvalue())  # verified byte count; the summary last
    atomic_write_text(out_json, json.dumps(summary, indent=2))
    return summary


def add_arguments(p) -> None:
    p.add_argument("-pred", required=True, metavar="DIR", help="predicted segmentations CASE.nii.gz")
    p.add_argument(
        "-raters", required=True, metavar="DIR", help="rater masks CASE_rater{k}.nii.gz (e.g. labelsTs_raters)"
    )
    p.add_argument("-o", required=True, metavar="JSON", help="summary JSON (a CSV is written beside it)")
    p.add_argument("--mcm", metavar="DIR", help="nnext predict -m mcm output (CASE_hc / CASE_lc): HC / LC Dice")
    p.add_argument("--images", metavar="DIR", help="images CASE_0000.nii.gz for the HU kernel-density plot")
    p.add_argument("--kde-png", metavar="PNG", help="write the HU kernel-density plot here (needs --mcm, --images)")
    p.add_argument(
        "--baseline", metavar="JSON", help="evaluate-raters summary of the baseline: Complex-Nodule Validation"
    )
    p.add_argument("--tau", type=float, default=1.0, help="NSD tolerance in mm (default 1)")
    p.add_argument("--truth", metavar="DIR", help="latent truth CASE.nii.gz (phantoms: truthTs): scores vs the truth")
    p.add_argument("--case-info", metavar="JSON", help="case metadata with a 'type' per case (phantom_info.json): "
                                                        "hard subset by type")
    p.add_argument("--hard-types", nargs="+", default=list(HARD_TYPES), metavar="TYPE",
                   help="case types of the a-priori hard subset (with --case-info; default part-solid)")
    p.add_argument("--hard-agreement", type=float, default=HARD_AGREEMENT, metavar="DICE",
                   help="hard subset: mean pairwise reader Dice below this (default 0.7)")


def run(args) -> int:
    if args.kde_png and not (args.mcm and args.images):
        raise InputError("--kde-png needs --mcm and --images")
    if args.baseline and not Path(args.baseline).is_file():
        raise InputError(f"{args.baseline}: --baseline summary not found")
    if not args.tau > 0:  # NaN too (argparse refuses it first: nnunet_ext.argtypes.refuse_nonfinite)
        raise InputError(f"--tau must be > 0, got {args.tau}")
    if not 0 < args.hard_agreement <= 1:
        raise InputError(f"--hard-agreement must be in (0, 1], got {args.hard_agreement}")
    for flag, path, test in (("--truth", args.truth, Path.is_dir), ("--case-info", args.case_info, Path.is_file)):
        if path is not None and not test(Path(path)):
            raise InputError(f"{path}: {flag} not found")
    from nnunet_ext.io.integrity import check_output_file

    check_output_file(args.o, "summary file (-o)")
    s = evaluate_raters(args.pred, args.raters, args.o, args.mcm, args.images, args.kde_png, args.baseline, args.tau,
                        args.truth, args.case_info, args.hard_agreement, tuple(args.hard_types))
    m = s["mean"]
    print(f"{len(s['cases'])} cases: Dice vs rater 0 {m['dice_rater0']:.3f}, expected over readers "
          f"{m['dice_rater_mean']:.3f}, vs majority {m['dice_majority']:.3f}, vs union {m['dice_union']:.3f}, "
          f"vs intersection {m['dice_intersection']:.3f}; hard subset {s['hard']['n']} cases -> {args.o}")
    return 0
