"""Lung-aware cascade on synthetic chest phantoms: the ablations of Isler et al. 2025 (Tables I, II, III, V, VII).

    python benchmarks/bench_cascade.py [-o bench_cascade_work] [--n-train 16] [--n-test 10] ...

Steps (each reused when its output exists, so the script resumes):
1. ``nnext synth chest`` (tumours in / at / across the lung, plus 1-3 tumour-like distractor blobs outside the
   lungs per case: the false positives the anatomy-aware filter is for).
2. Stage 1: TinyPlanner + ``nnUNetv2_train ... all -tr MCDropoutTrainer`` on the full volumes (``--stage1-config``,
   default 2d: the tiny 3D network does not leave the all-background state in a CPU budget, RESULTS.md).
3. Stage 2: ``nnext roi-dataset --margin 0`` and ``--margin 16`` (crops around the reference tumours), TinyPlanner
   3d_fullres, one model per loss: Dice-CE (``MCDropoutTrainer``: nnU-Net's loss, dropout for MC inference),
   ``UncertaintyTrainer``, ``UncertaintyLovaszTrainer``, ``DistanceTransformTrainer`` (margin 0; Dice-CE and
   UncertaintyTrainer also at margin 16).
4. Inference on the test cases with :class:`~nnunet_ext.methods.lung_cascade.cascade_predictor.CascadeMethod` (lung
masks of the
   phantoms, default filter settings): stage 1 alone vs cascade Top-1 / Top-2 / All, margin 0 vs 16, per loss.
5. Dice / HD95 / boundary Dice (label 1, penalty HD for empty masks as ``nnext evaluate``), and Pearson /
   Spearman correlations between the stage-1 component count (and its reduction by the filter) and the
   stage-1 scores / the cascade's improvement. Prints markdown tables, writes ``results.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STAGE1_ID, ROI_IDS = 701, {0: 702, 16: 703}
TRAINERS = {"dicece": "MCDropoutTrainer", "uncertainty": "UncertaintyTrainer",
            "lovasz": "UncertaintyLovaszTrainer", "distance": "DistanceTransformTrainer"}
PLANS = "nnextTinyPlans"


def _train(dataset_id: int, config: str, trainer: str, results: Path, dataset_name: str) -> Path:
    from nnunet_ext.io.paths import nnunet_command

    model = results / dataset_name / f"{trainer}__{PLANS}__{config}"
    if (model / "fold_all" / "checkpoint_final.pth").is_file():
        return model
    t = time.perf_counter()
    cmd = [
        nnunet_command("nnUNetv2_train"),
        str(dataset_id),
        config,
        "all",
        "-tr",
        trainer,
        "-p",
        PLANS,
        "-device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    print(f"  trained {trainer} on {dataset_name} {config} in {time.perf_counter() - t:.0f} s", flush=True)
    return model


def _plan(dataset_id: int, config: str, epochs: int, iterations: int, pre: Path, name: str) -> None:
    if (pre / name / f"{PLANS}_{config}").is_dir():
        return
    from nnunet_ext.planners.run import plan_and_preprocess

    plan_and_preprocess(dataset_id, "TinyPlanner", [config], num_processes=1,
                        schedule={"num_epochs": epochs, "num_iterations_per_epoch": iterations})


def _predictors(stage1_model: Path, stage2_model: Path, n_samples: int):
    import torch

    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.stock import StockMethod
    from nnunet_ext.predictors.tta_mc import TTAMCMethod

    e1 = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False)
    e1.load(str(stage1_model), ["all"])
    e2 = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False, use_mirroring=False)
    e2.load(str(stage2_model), ["all"])
    return StockMethod(e1, Sampling(), {}), TTAMCMethod(e2, Sampling(n_passes=n_samples, blend="probabilities"), {})


def _scores(ref: np.ndarray, pred: np.ndarray, spacing_zyx) -> dict:
    from nnunet_ext.evaluation.metrics import compute_metrics

    m = compute_metrics(ref > 0, pred > 0, spacing_zyx)
    return {"dice": m["dice"], "hd95": m["hd95"], "boundary_dice": m["boundary_dice"]}


def _calibration(probs, variance, ref, err, covered) -> dict:
    """ECE (15 bins), Brier and the AUROC of the variance for voxel errors, inside the ROIs (NaN without ROI)."""
    from nnunet_ext.core.calibration import auroc, brier_score, expected_calibration_error

    if not covered.any():
        return {"ece_roi": float("nan"), "brier_roi": float("nan"), "auroc_err_roi": float("nan")}
    labels = (ref > 0).astype(np.int64)
    return {"ece_roi": expected_calibration_error(probs, labels, mask=covered)[0],
            "brier_roi": brier_score(probs, labels, mask=covered),
            "auroc_err_roi": auroc(variance[covered], err[covered])}


def _mean(rows: list[dict], key: str) -> str:
    v = np.array([r[key] for r in rows], dtype=float)
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"


def _corr(x, y) -> str:
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return "n/a (constant)"
    r, pr = stats.pearsonr(x, y)
    rho, ps = stats.spearmanr(x, y)
    return f"Pearson r = {r:+.2f} (p = {pr:.3g}); Spearman ρ = {rho:+.2f} (p = {ps:.3g})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", default="bench_cascade_work")
    ap.add_argument("--n-train", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stage1-config", default="2d")
    ap.add_argument("--stage1-epochs", type=int, default=30)
    ap.add_argument("--stage1-iterations", type=int, default=50)
    ap.add_argument("--stage2-config", default="3d_fullres")
    ap.add_argument("--stage2-epochs", type=int, default=20)
    ap.add_argument("--stage2-iterations", type=int, default=50)
    ap.add_argument("--losses", default="dicece,uncertainty,lovasz,distance")
    ap.add_argument("--n-samples", type=int, default=8, help="MC-dropout passes of stage 2")
    args = ap.parse_args()
    losses = args.losses.split(",")
    root = Path(args.o).resolve()
    from nnunet_ext.io.imageio import read_image
    from nnunet_ext.io.paths import dataset_folders, use_workspace

    dirs = use_workspace(root)
    from nnunet_ext.methods.lung_cascade.cascade_predictor import CascadeMethod
    from nnunet_ext.methods.lung_cascade.component_filter import LungFilterConfig
    from nnunet_ext.methods.lung_cascade.roi_dataset import build_roi_dataset
    from nnunet_ext.predictors.inputs import list_cases
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.synthetic.dataset import write_dataset

    t0 = time.perf_counter()
    raw = dataset_folders(dirs["nnUNet_raw"]).get(STAGE1_ID) or write_dataset(
        "chest", STAGE1_ID, args.n_train, args.n_test, seed=args.seed, progress=False)
    print(f"[1] data: {raw}", flush=True)
    _plan(STAGE1_ID, args.stage1_config, args.stage1_epochs, args.stage1_iterations, dirs["nnUNet_preprocessed"],
          raw.name)
    stage1 = _train(STAGE1_ID, args.stage1_config, "MCDropoutTrainer", dirs["nnUNet_results"], raw.name)
    print(f"[2] stage 1: {stage1}", flush=True)
    stage2 = {}
    for margin, rid in ROI_IDS.items():
        roi = dataset_folders(dirs["nnUNet_raw"]).get(rid) or build_roi_dataset(STAGE1_ID, rid, margin, "gt",
                                                                                  progress=False)
        _plan(rid, args.stage2_config, args.stage2_epochs, args.stage2_iterations, dirs["nnUNet_preprocessed"],
              roi.name)
        for loss in losses if margin == 0 else [x for x in losses if x in ("dicece", "uncertainty")]:
            stage2[(margin, loss)] = _train(rid, args.stage2_config, TRAINERS[loss], dirs["nnUNet_results"], roi.name)
    print(f"[3] stage 2: {len(stage2)} models; training total {time.perf_counter() - t0:.0f} s", flush=True)

    dataset_json = json.loads((raw / "dataset.json").read_text())
    cases = list_cases(raw / "imagesTs", dataset_json)
    refs = {c.case_id: read_image(raw / "labelsTs" / f"{c.case_id}.nii.gz") for c in cases}
    runs = [(m, loss, k, "phantom") for (m, loss) in stage2
            for k in ((1, 2, None) if loss in ("uncertainty", "dicece") else (1,))]
    runs += [(m, "uncertainty", 1, "threshold") for m in ROI_IDS if (m, "uncertainty") in stage2]  # Table IV
    rows, stage1_rows, coarse = {}, {}, {}
    t1 = time.perf_counter()
    for margin, loss, top_k, lung in runs:
        s1, s2 = _predictors(stage1, stage2[(margin, loss)], args.n_samples)
        cascade = CascadeMethod(s1, s2, LungFilterConfig(top_k=top_k), margin,
                                str(raw / "lungmasksTs") if lung == "phantom" else lung)
        cascade.requested_maps = ("variance",)
        key = f"margin{margin}/{loss}/top{top_k or 'all'}" + ("" if lung == "phantom" else f"/lung={lung}")
        rows[key] = []
        for case in cases:
            ref, g = refs[case.case_id]
            spacing = g.spacing[::-1]
            if (case.case_id, lung) not in coarse:  # stage 1 and the lung mask do not depend on stage 2
                coarse[(case.case_id, lung)] = cascade.coarse(cascade.prepare(case), CaseContext.for_case(case.case_id,
                                                                                                       args.seed))
            c1 = coarse[(case.case_id, lung)]
            res = cascade.refine(c1, CaseContext.for_case(case.case_id, args.seed))
            res_log = res.jsons["cascade"]
            flog = res_log["filter"]
            if case.case_id not in stage1_rows:
                stage1_rows[case.case_id] = {**_scores(ref, c1.stage1, spacing), "n_components": flog["n_components"]}
            err = (res.segmentation > 0) != (ref > 0)
            inside = res.maps["variance"] > 0
            covered = np.zeros(ref.shape, bool)
            for r in res_log["rois"]:
                covered[tuple(slice(a, b) for a, b in r["box_zyx"])] = True
            rows[key].append({"case": case.case_id, **_scores(ref, res.segmentation, spacing),
                              **_calibration(res.probabilities, res.maps["variance"], ref, err, covered),
                              "n_kept_filter": sum(c["kept"] or c["reason"] == "top_k" for c in flog["components"]),
                              "n_rois": len(res_log["rois"]),
                              "u_in_error": float(res.maps["variance"][err].mean()) if err.any() else float("nan"),
                              "u_in_correct_roi": float(res.maps["variance"][~err & inside].mean())
                              if (~err & inside).any() else float("nan")})
        print(f"  {key}: Dice {_mean(rows[key], 'dice')}, HD95 {_mean(rows[key], 'hd95')}", flush=True)
    print(f"[4] inference {time.perf_counter() - t1:.0f} s", flush=True)

    s1rows = list(stage1_rows.values())
    lines = [f"{len(cases)} test cases; stage 1 = {args.stage1_config} MCDropoutTrainer "
             f"({args.stage1_epochs}x{args.stage1_iterations} it), stage 2 = {args.stage2_config} "
             f"({args.stage2_epochs}x{args.stage2_iterations} it), MC passes {args.n_samples}", "",
             "| system | Dice | HD95 (mm) | boundary Dice | ECE in ROIs | Brier in ROIs | AUROC(variance, error) |",
             "|---|---|---|---|---|---|---|",
             f"| stage 1 alone (full volume) | {_mean(s1rows, 'dice')} | {_mean(s1rows, 'hd95')} | "
             f"{_mean(s1rows, 'boundary_dice')} | | | |"]
    for key, r in rows.items():
        lines.append(f"| cascade {key} | {_mean(r, 'dice')} | {_mean(r, 'hd95')} | {_mean(r, 'boundary_dice')} | "
                     f"{_mean(r, 'ece_roi')} | {_mean(r, 'brier_roi')} | {_mean(r, 'auroc_err_roi')} |")
    n = np.array([r["n_components"] for r in s1rows], float)
    lines += ["", "Stage-1 component count vs stage-1 scores: Dice: " + _corr(n, [r["dice"] for r in s1rows])
              + "; HD95: " + _corr(n, [r["hd95"] for r in s1rows])]
    main_key = "margin0/uncertainty/top1" if "margin0/uncertainty/top1" in rows else next(iter(rows))
    top1 = rows[main_key]
    reduction = n - np.array([r["n_rois"] for r in top1], float)
    d_dice = np.array([c["dice"] for c in top1]) - np.array([s["dice"] for s in s1rows])
    d_hd = np.array([c["hd95"] for c in top1]) - np.array([s["hd95"] for s in s1rows])
    lines += [f"Component reduction (stage-1 components − ROIs, {main_key}) vs Dice gain: " + _corr(reduction, d_dice),
              "Component reduction vs HD95 change: " + _corr(reduction, d_hd)]
    for group, sel in (("1 component", n == 1), ("2 components", n == 2), ("3+ components", n >= 3)):
        if sel.any():
            lines.append(
                f"stage 1 with {group}: {int(sel.sum())} cases, "
                f"Dice {np.mean([r['dice'] for r, s in zip(s1rows, sel) if s]):.3f}, "
                f"HD95 {np.mean([r['hd95'] for r, s in zip(s1rows, sel) if s]):.1f} mm"
            )
    u = np.array([r["u_in_error"] for r in top1]), np.array([r["u_in_correct_roi"] for r in top1])
    lines.append(
        f"stage-2 variance ({main_key}): mean {np.nanmean(u[0]):.4f} on wrong voxels vs {np.nanmean(u[1]):.4f} "
        f"on correct voxels inside the ROIs"
    )
    print("\n".join(lines))
    (root / "results.json").write_text(json.dumps({"stage1": stage1_rows, "cascade": rows, "summary": lines},
                                                  indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
