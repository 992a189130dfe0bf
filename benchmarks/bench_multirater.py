"""Can the nodule phantoms show or refute UGS-Net? Identical arms, cross-validation, paired tests (issue 22;
Yang & Wang Tables I and III protocol at CPU scale).

    OMP_NUM_THREADS=1 python benchmarks/bench_multirater.py [--work DIR] [-n 150] [--folds 5] [--seeds 0 1 2]
        [--regimes exchangeable fixed] [--arms baseline phi ugs_noiucm ugsnet] [-c 2d] [--planner TinyPlanner]
        [--epochs 50]
        [--iterations 50] [--tokens 256] [--dice-weight 0] [--optimizer nnunet|sgdr]

Stated before running (the paper, sec. IV-B / IV-E, five-fold on LIDC-IDRI): UGS-Net improves the Dice against
Label_1 (the first reader) by **+1.39** points over U-Net overall and by **+11.03** points on the nodules U-Net
segments worst (Dice < 60 %). Here the hard subset is defined a priori
(:mod:`nnunet_ext.methods.multi_rater.evaluate_raters`:
mean pairwise reader Dice < 0.7, or a part-solid phantom), never by the baseline's own score.

Per regime (``exchangeable``: LIDC-like readers in random order; ``fixed``: rater k always the same threshold, the
negative control) and seed S: ``nnext synth nodule -n N --seed S --rater-model R`` -> ``nnext convert raters`` ->
TinyPlanner plans with the SAME options for every arm (loss family BCE + ``--dice-weight`` · soft Dice, deep
supervision with the full resolution at weight 1, optimiser ``--optimizer``, ``ugsnet.max_tokens``) -> per arm
an nnU-Net training of every fold (``--folds`` of nnU-Net's 5-fold split; one process per arm, torch / numpy /
random seeded S·1000 + fold) on the SAME rater-set dataset, plans and normalisation:

* ``baseline`` = SingleReaderTrainer (target: reader 0 = Label_1, decoded from the rater-set label),
* ``phi`` = MultiAnnotationTrainer (Φ only, eq. 3), ``ugs_noiucm`` = UGSNetNoIUCMTrainer, ``ugsnet`` = UGSNetTrainer.

Each fold's held-out cases, predicted in the training process (nnU-Net's predictor, X_S for UGS-Net, no
mirroring for any arm), are scored by ``evaluate-raters``
against Label_1, every reader (expected Dice), the majority and the latent truth. Cases are pooled over folds
and seeds (every phantom is held out once per seed and seeds draw new phantoms); each arm - baseline difference
gets a paired Wilcoxon signed-rank test and a 95 % bootstrap CI of the mean (scipy.stats), overall and on the
hard subset. Verdict per comparison: ``reproduced`` (CI above 0), ``refuted at this power`` (CI below the paper's
effect), else ``inconclusive``. A finished (regime, seed, arm) is reused when its settings match.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RAW_ID, RATER_ID = 951, 952
ARMS = {"baseline": "SingleReaderTrainer", "phi": "MultiAnnotationTrainer", "ugs_noiucm": "UGSNetNoIUCMTrainer",
        "ugsnet": "UGSNetTrainer"}
PAPER_EFFECT = {"all": 0.0139, "hard": 0.1103}  # Dice (fraction) vs Label_1, sec. IV-B and IV-E
METRICS = ("dice_rater0", "dice_rater_mean", "dice_majority", "dice_truth")


def _worker(argv) -> None:
    """``--worker DS CONF TRAINER PLANS SEED THREADS OUT FOLD...``: train each fold and predict its held-out cases
    in this one process (nnU-Net's trainer and predictor; no mirroring for any arm), writing ``OUT/CASE.nii.gz``.
    nnU-Net's own final validation is skipped: it spawns export / metric processes that cost more than a tiny
    training on a loaded CPU, and its metrics (vs the union region) are not the ones compared here."""
    ds, conf, trainer_name, plans, seed, threads, out, *folds = argv
    import random

    import numpy as np
    import torch

    torch.set_num_threads(int(threads))
    torch.set_num_threads = lambda _: None  # nnU-Net's CPU path would take every core
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.paths import nnUNet_raw
    from nnunetv2.run.run_training import get_trainer_from_args

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for fold in map(int, folds):
        s = int(seed) * 1000 + fold
        torch.manual_seed(s), np.random.seed(s), random.seed(s)
        trainer = get_trainer_from_args(ds, conf, fold, trainer_name, plans, device=torch.device("cpu"))
        trainer.perform_actual_validation = lambda *a, **k: None
        trainer.run_training()
        trainer.set_deep_supervision_enabled(False)
        trainer.network.eval()
        predictor = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), perform_everything_on_device=False,
                                    allow_tqdm=False)
        predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager,
                                        [trainer.network.state_dict()], trainer.dataset_json, trainer_name, None)
        _, val = trainer.do_split()
        rw = SimpleITKIO()
        images = Path(nnUNet_raw) / trainer.plans_manager.dataset_name / "imagesTr"
        heads = hasattr(trainer.network, "output_head")  # UGS-Net: also its HC / LC masks, as nnext predict -m mcm
        for case in val:
            img, props = rw.read_images([str(images / f"{case}_0000.nii.gz")])
            seg = predictor.predict_single_npy_array(img, props)
            rw.write_seg(np.asarray(seg, np.uint8), str(out / f"{case}.nii.gz"), props)
            if heads:
                masks = {}
                for head in ("inter", "union"):
                    trainer.network.output_head = head
                    masks[head] = np.asarray(predictor.predict_single_npy_array(img, props)) > 0
                trainer.network.output_head = "xs"
                (out.parent / "mcm").mkdir(exist_ok=True)
                rw.write_seg(masks["inter"].astype(np.uint8), str(out.parent / "mcm" / f"{case}_hc.nii.gz"), props)
                rw.write_seg((masks["union"] & ~masks["inter"]).astype(np.uint8),
                             str(out.parent / "mcm" / f"{case}_lc.nii.gz"), props)


def _settings(args) -> dict:
    return {k: getattr(args, k) for k in ("n", "folds", "c", "planner", "epochs", "iterations", "tokens",
                                           "dice_weight", "optimizer", "sgdr_lr", "sgdr_period")}


def _plans(args) -> str:
    """Plans identifier the planner writes (TinyPlanner: nnextTinyPlans; nnext's ResEnc planners: their own)."""
    from nnunet_ext.planners.registry import PLANNERS

    return PLANNERS[args.planner][2].split(":")[0]


def prepare_data(args, regime: str, seed: int, root: Path) -> tuple[Path, Path]:
    """Phantoms, rater-set dataset, plans with every arm's options (reused when the stamp matches)."""
    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.io.paths import use_workspace
    from nnunet_ext.planners.plans_edit import plans_path, write_options
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    dirs = use_workspace(root)
    stamp = {**_settings(args), "regime": regime, "seed": seed}
    done = root / "data_done.json"
    if done.is_file() and json.loads(done.read_text()) == stamp:
        return next(dirs["nnUNet_raw"].glob(f"Dataset{RAW_ID}_*")), next(
            dirs["nnUNet_raw"].glob(f"Dataset{RATER_ID}_*")
        )
    done.unlink(missing_ok=True)
    for old in root.glob("arm_*"):
        shutil.rmtree(old)
    src = write_dataset("nodule", RAW_ID, args.n, 0, seed=seed, progress=False, raters=4, rater_model=regime,
                        overwrite=True)
    assert nnext(["convert", "raters", "-i", str(src), "-d", str(RATER_ID), "--name", "BenchRaters", "--overwrite",
                  "--no-progress"]) == 0
    plans_id = plan_and_preprocess(RATER_ID, args.planner, [args.c], num_processes=1, clean=True,
                                   schedule={"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations})
    assert plans_id == _plans(args), plans_id
    opts = [f"multi_annotation.dice_weight={args.dice_weight}", f"ugsnet.dice_weight={args.dice_weight}",
            f"ugsnet.max_tokens={args.tokens}", f"rater_training.optimizer={args.optimizer}",
            f"rater_training.sgdr_lr={args.sgdr_lr}", f"rater_training.sgdr_period={args.sgdr_period}"]
    write_options(plans_path(RATER_ID, _plans(args)), opts, [args.c])
    done.write_text(json.dumps(stamp))
    return src, next(dirs["nnUNet_raw"].glob(f"Dataset{RATER_ID}_*"))


def run_arm(args, arm: str, seed: int, root: Path, src: Path, rater_folder: Path) -> dict:
    """Train every fold of ``arm``, gather nnU-Net's validation exports, evaluate-raters them."""
    from nnunet_ext.methods.multi_rater.evaluate_raters import evaluate_raters

    out = root / f"arm_{arm}"
    summary_file = out / "eval.json"
    if summary_file.is_file():
        print(f"  reusing {arm}")
        return json.loads(summary_file.read_text())
    t = time.perf_counter()
    pred = out / "pred"
    shutil.rmtree(pred, ignore_errors=True)
    shutil.rmtree(out / "mcm", ignore_errors=True)
    cmd = [sys.executable, __file__, "--worker", str(RATER_ID), args.c, ARMS[arm], _plans(args), str(seed),
           os.environ.get("OMP_NUM_THREADS", "1"), str(pred), *map(str, range(args.folds))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{arm} training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    train_s = time.perf_counter() - t
    mcm = out / "mcm" if (out / "mcm").is_dir() else None
    summary = evaluate_raters(pred, src / "labelsTr_raters", out / "eval_raw.json", truth_dir=src / "truthTr",
                              case_info=src / "phantom_info.json", mcm_dir=mcm,
                              images_dir=src / "imagesTr" if mcm else None)
    summary["train_s"], summary["load_average"] = round(train_s, 1), os.getloadavg()
    summary_file.write_text(json.dumps(summary))
    print(f"  {arm}: {len(summary['cases'])} held-out cases, Dice vs Label_1 {summary['mean']['dice_rater0']:.3f}, "
          f"training {train_s:.0f} s")
    return summary


def paired(diffs, effect: float, seed: int = 0) -> dict:
    """Mean paired difference, 95 % bootstrap CI (percentile), Wilcoxon p and the verdict against ``effect``."""
    import numpy as np
    from scipy.stats import bootstrap, wilcoxon

    d = np.asarray(diffs, float)
    row = {"n": int(d.size), "mean": float(d.mean()) if d.size else None, "ci95": None, "wilcoxon_p": None,
           "paper_effect": effect, "verdict": "no cases"}
    if d.size < 2:
        return row
    if np.ptp(d) > 0:
        ci = bootstrap((d,), np.mean, confidence_level=0.95, method="percentile", n_resamples=10000,
                       random_state=np.random.default_rng(seed)).confidence_interval
        row["ci95"] = [float(ci.low), float(ci.high)]
    else:
        row["ci95"] = [float(d[0])] * 2
    if np.any(d != 0):
        row["wilcoxon_p"] = float(wilcoxon(d).pvalue)
    low, high = row["ci95"]
    row["verdict"] = ("reproduced" if low > 0 else "refuted at this power" if high < effect else "inconclusive")
    return row


def compare(results: dict, arms) -> dict:
    """Per regime, arm vs baseline, metric and subset (all / hard): :func:`paired` over pooled cases."""
    out = {}
    for regime, seeds in results.items():
        for arm in arms:
            if arm == "baseline":
                continue
            for metric in METRICS:
                for subset in ("all", "hard"):
                    diffs = []
                    for s in seeds.values():
                        base, other = s["baseline"], s[arm]
                        cases = sorted(set(base["cases"]) & set(other["cases"]))
                        if subset == "hard":
                            cases = [c for c in cases if c in base["hard"]["cases"]]
                        diffs += [other["cases"][c][metric] - base["cases"][c][metric] for c in cases
                                  if metric in base["cases"][c]]
                    out[f"{regime}/{arm}/{metric}/{subset}"] = paired(diffs, PAPER_EFFECT[subset])
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return _worker(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="bench_multirater_work")
    p.add_argument("-n", type=int, default=150, help="phantoms per seed and regime (all held out once)")
    p.add_argument("--folds", type=int, default=5, choices=range(2, 6), help="folds of nnU-Net's 5-fold split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=["exchangeable", "fixed"], choices=["exchangeable", "fixed"])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("-c", default="2d", choices=["2d", "3d_fullres"])
    p.add_argument("--planner", default="TinyPlanner", help="nnext planner (TinyPlanner: 4-32 features, CPU; "
                   "MCDropoutResEncPlannerM: default-width ResEnc M, for a GPU run)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--tokens", type=int, default=256, help="plans ugsnet.max_tokens (default 256: 16 x 16 grid)")
    p.add_argument("--dice-weight", type=float, default=0.0, help="soft Dice weight of every arm (0 = BCE only)")
    p.add_argument("--optimizer", default="nnunet", choices=["nnunet", "sgdr"])
    p.add_argument("--sgdr-lr", type=float, default=1e-5)
    p.add_argument("--sgdr-period", type=int, default=50)
    args = p.parse_args()
    if "baseline" not in args.arms:
        p.error("--arms must include baseline (every comparison is against it)")
    work = Path(args.work).resolve()
    results: dict = {}
    for regime in args.regimes:
        for seed in args.seeds:
            root = work / f"{regime}_seed{seed}"
            print(f"{regime}, seed {seed}")
            src, rater_folder = prepare_data(args, regime, seed, root)
            results.setdefault(regime, {})[seed] = {arm: run_arm(args, arm, seed, root, src, rater_folder)
                                                    for arm in args.arms}
    stats = compare(results, args.arms)
    means = {f"{r}/{a}/{m}": sum(results[r][s][a]["mean"].get(m, 0) for s in results[r]) / len(results[r])
             for r in results for a in args.arms for m in METRICS}
    print(f"\n{args.n} phantoms x {len(args.seeds)} seeds, {args.folds} folds, {args.c}, {args.epochs} x "
          f"{args.iterations} iterations; difference to baseline, mean [95 % CI] (Wilcoxon p) -> verdict")
    for key, row in stats.items():
        if "/dice_rater0/" in key or "/dice_truth/" in key:
            ci = "[{:+.3f}, {:+.3f}]".format(*row["ci95"]) if row["ci95"] else "-"
            mean = f"{row['mean']:+.3f}" if row["mean"] is not None else "-"
            p = f"{row['wilcoxon_p']:.3g}" if row["wilcoxon_p"] is not None else "-"
            print(f"{key:<45} n={row['n']:<4} {mean} {ci} (p {p}) -> {row['verdict']}")
    out = {"args": vars(args), "settings": _settings(args), "paper_effect": PAPER_EFFECT, "means": means,
           "comparisons": stats, "train_s": {f"{r}/{s}/{a}": results[r][s][a]["train_s"] for r in results
                                               for s in results[r] for a in args.arms},
           "hard_n": {f"{r}/{s}": results[r][s]["baseline"]["hard"]["n"] for r in results for s in results[r]},
           "mcm": {f"{r}/{s}/{a}": {"dice_hc": results[r][s][a]["mean"].get("dice_hc"),
                                    "dice_lc": results[r][s][a]["mean"].get("dice_lc"),
                                    "hu_wasserstein": results[r][s][a].get("hu_wasserstein")}
                   for r in results for s in results[r] for a in args.arms if "hu_wasserstein" in results[r][s][a]},
           "load_average": os.getloadavg()}
    (work / "bench_multirater.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({k: round(v, 3) for k, v in means.items()}, indent=0))


if __name__ == "__main__":
    main()
