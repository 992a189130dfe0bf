"""Temperature scaling on a tiny chest-phantom model: held-out ECE / Brier / NLL before and after (issue 8, item 7).

    python benchmarks/bench_calibrate.py [-o bench_calibrate_work] [--n-train 10] [--folds 0 1 2]

Steps (each reused when its output exists): ``nnext synth chest``; TinyPlanner 2d (30 x 50 iterations, as
``nnext demo``); ``nnUNetv2_train D 2d FOLD -tr MCDropoutTrainer -p nnextTinyPlans --npz`` per fold (nnU-Net's
5-fold split); ``nnext calibrate`` with one T and with ``--per-class``. Prints the held-out tables (cross-fitting:
T fitted on the other folds) and the fit time; ``calibration*.json`` stay in the model folder.
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
    ap.add_argument("--folds", nargs="+", default=["0", "1", "2"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.paths import dataset_folders, use_workspace
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
        dice = json.loads((model / f"fold_{fold}" / "validation" / "summary.json").read_text())["foreground_mean"]["Dice"]
        print(f"trained fold {fold} in {time.perf_counter() - t:.0f} s (validation Dice {dice:.3f})", flush=True)
    for name, extra in (("calibration_shared.json", []), ("calibration_per_class.json", ["--per-class"])):
        out = model / name
        t = time.perf_counter()
        rc = nnext(["calibrate", "-d", str(DATASET_ID), "-c", CONFIG, "-tr", TRAINER, "-p", PLANS, "-f", *args.folds,
                    "-o", str(out), "--overwrite", "-q", *extra])
        if rc:
            return rc
        seconds = time.perf_counter() - t
        data = json.loads(out.read_text())
        print(f"\n{name}: T = {data['temperature']}, {data['fitted_on']['voxels']} voxels of "
              f"{data['fitted_on']['n_cases']} cases, {seconds:.1f} s (fit + cross-fitted evaluation)")
        print("| held-out fold | T (fit on the other folds) | ECE before | ECE after | Brier before | Brier after "
              "| NLL before | NLL after |")
        print("|---|---|---|---|---|---|---|---|")
        rows = {**data["held_out"]["per_group"], "mean": {**data["held_out"]["mean"], "temperature": ""}}
        for g, v in rows.items():
            t_text = (f"{v['temperature']:.3f}" if isinstance(v["temperature"], float) else
                      ", ".join(f"{x:.3f}" for x in v["temperature"]) if v["temperature"] else "")
            print(f"| {g} | {t_text} | {v['ece_before']:.4f} | {v['ece_after']:.4f} | {v['brier_before']:.4f} | "
                  f"{v['brier_after']:.4f} | {v['nll_before']:.4f} | {v['nll_after']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
