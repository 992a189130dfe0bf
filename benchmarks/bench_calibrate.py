"""Temperature scaling on a tiny chest-phantom model: held-out ECE / Brier / NLL before and after (issue 8, item 7).

    python benchmarks/bench_calibrate.py [-o bench_calibrate_work] [--n-train 10] [--folds 0] [--n-test 10]

Steps (each reused when its output exists): ``nnext synth chest``; TinyPlanner 2d (30 x 50 iterations, as
``nnext demo``); ``nnUNetv2_train D 2d FOLD -tr MCDropoutTrainer -p nnextTinyPlans --npz`` per fold (nnU-Net's
5-fold split); a second, independently seeded phantom set predicted with ``nnUNetv2_predict ... --save_probabilities``
(nnU-Net's npz). Then ``nnext calibrate`` with one T and with ``--per-class``: (a) model mode on the folds'
validation npz (several folds: T fitted on the other folds; one fold: case splits), (b) folder mode on the
predicted test set (``--n-splits`` case splits). Prints the held-out tables and times; on 2 shared CPU cores one
fold of training takes ~40 min, hence one fold by default.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATASET_ID, PLANS, TRAINER, CONFIG = 711, "nnextTinyPlans", "MCDropoutTrainer", "2d"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--work", default="bench_calibrate_work")
    ap.add_argument("--n-train", type=int, default=10)
    ap.add_argument("--folds", nargs="+", default=["0"])
    ap.add_argument("--n-test", type=int, default=10)
    ap.add_argument("--n-splits", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.io.paths import dataset_folders, use_workspace
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    dirs = use_workspace(Path(args.work).resolve())
    raw = dataset_folders(dirs["nnUNet_raw"]).get(DATASET_ID)
    if raw is None:
        raw = write_dataset("chest", DATASET_ID, num_train=args.n_train, num_test=0, seed=args.seed, progress=False)
    if not (dirs["nnUNet_preprocessed"] / raw.name / f"{PLANS}_{CONFIG}").is_dir():
        t = time.perf_counter()
        plan_and_preprocess(DATASET_ID, "TinyPlanner", [CONFIG], num_processes=1,
                            schedule={"num_epochs": 30, "num_iterations_per_epoch": 50})
        print(f"planned + preprocessed in {time.perf_counter() - t:.0f} s", flush=True)
    model = dirs["nnUNet_results"] / raw.name / f"{TRAINER}__{PLANS}__{CONFIG}"
    exe = os.path.join(os.path.dirname(sys.executable), "nnUNetv2_train")
    for fold in args.folds:
        if any((model / f"fold_{fold}" / "validation").glob("*.npz")):
            continue
        t = time.perf_counter()
        cmd = [exe, str(DATASET_ID), CONFIG, fold, "-tr", TRAINER, "-p", PLANS, "-device", "cpu", "--npz"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        dice = json.loads((model / f"fold_{fold}" / "validation" / "summary.json").read_text())["foreground_mean"][
            "Dice"
        ]
        print(f"trained fold {fold} in {time.perf_counter() - t:.0f} s (validation Dice {dice:.3f})", flush=True)
    test = dataset_folders(dirs["nnUNet_raw"]).get(DATASET_ID + 1)
    if test is None:
        test = write_dataset("chest", DATASET_ID + 1, num_train=args.n_test, num_test=0, seed=args.seed + 1000,
                             progress=False)
    pred = Path(args.work).resolve() / "test_predictions"
    if len(list(pred.glob("*.npz"))) < args.n_test:
        t = time.perf_counter()
        cmd = [os.path.join(os.path.dirname(sys.executable), "nnUNetv2_predict"), "-i", str(test / "imagesTr"),
               "-o", str(pred), "-d", str(DATASET_ID), "-c", CONFIG, "-tr", TRAINER, "-p", PLANS, "-f", *args.folds,
               "-device", "cpu", "--save_probabilities", "-npp", "1", "-nps", "1"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        print(f"predicted {args.n_test} test cases in {time.perf_counter() - t:.0f} s", flush=True)
    model_args = ["-d", str(DATASET_ID), "-c", CONFIG, "-tr", TRAINER, "-p", PLANS]
    runs = [
        ("validation", ["-f", *args.folds, "--n-splits", str(args.n_splits)]),
        ("test set", ["--probabilities", str(pred), "-ref", str(test / "labelsTr"), "--n-splits", str(args.n_splits)]),
    ]
    for what, source in runs:
        for kind, extra in (("shared", []), ("per_class", ["--per-class"])):
            out = model / f"calibration_{what.replace(' ', '_')}_{kind}.json"
            t = time.perf_counter()
            rc = nnext(["calibrate", *model_args, *source, "-o", str(out), "--overwrite", "-q", *extra])
            if rc:
                return rc
            _print(what, kind, json.loads(out.read_text()), time.perf_counter() - t)
    return 0


def _print(what: str, kind: str, data: dict, seconds: float) -> None:
    fit = data["fitted_on"]
    print(f"\n{what}, {kind} T = {data['temperature']}: fitted on {fit['voxels']} ROI voxels of {fit['n_cases']} "
          f"cases, {seconds:.1f} s (fit + cross-fitted evaluation)")
    print(
        "| held out | T (fit on the rest) | ECE before | ECE after | Brier before | Brier after "
        "| NLL before | NLL after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = {**data["held_out"]["per_group"], "mean": {**data["held_out"]["mean"], "temperature": None}}
    for g, v in rows.items():
        t = v["temperature"]
        t_text = "" if t is None else f"{t:.3f}" if isinstance(t, float) else ", ".join(f"{x:.3f}" for x in t)
        print(f"| {g} | {t_text} | {v['ece_before']:.4f} | {v['ece_after']:.4f} | {v['brier_before']:.4f} | "
              f"{v['brier_after']:.4f} | {v['nll_before']:.4f} | {v['nll_after']:.4f} |")


if __name__ == "__main__":
    sys.exit(main())
