"""``nnext demo``: the whole cycle on a synthetic chest CT dataset, from nothing but the install.

synth (chest phantoms) -> ``nnext plan`` (TinyPlanner) -> plain ``nnUNetv2_train -tr MCDropoutTrainer`` ->
``nnext predict -m tta_mc`` (MC dropout + TTA, entropy map) -> ``nnext evaluate`` (Dice, HD95, NSD,
calibration) -> an overview PNG per test case and ``summary.json``. Everything lives in ``-o DIR`` (nnU-Net's
env vars point there); finished steps are reused when the demo is run again (``--overwrite`` starts afresh).

The demo trains the ``2d`` configuration by default: on 2 CPU cores the tiny 2D network segments the
phantoms' tumours (validation Dice ~0.8) after 30 x 50 iterations in about a minute, while the tiny 3D network
still predicts background after 600 iterations (measured; see benchmarks/RESULTS.md). ``-c 3d_fullres``
runs the same demo in 3D (give it far more ``--epochs``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATASET_ID = 990
TRAINER, PLANS = "MCDropoutTrainer", "nnextTinyPlans"


def add_arguments(parser) -> None:
    parser.add_argument("-o", default="nnext_demo", help="working folder (default ./nnext_demo)")
    parser.add_argument("-n", type=int, default=8, help="training cases (default 8; nnU-Net's 5-fold split needs >= 5)")
    parser.add_argument("--n-test", type=int, default=3, help="test cases (default 3)")
    parser.add_argument("-c", default="2d", choices=["2d", "3d_fullres"], help="configuration (default 2d)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per epoch (default 50)")
    parser.add_argument("--n-samples", type=int, default=8, help="MC/TTA passes at prediction (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="delete the working folder first")


def _step(i: int, text: str) -> float:
    print(f"\n[{i}/6] {text}", flush=True)
    return time.perf_counter()


def run(args) -> int:
    from nnunet_ext.errors import InputError

    if args.n < 5:
        raise InputError(f"-n must be >= 5 (nnU-Net's 5-fold cross-validation), got {args.n}")
    config = args.c
    if args.n_test < 1:
        raise InputError(f"--n-test must be >= 1, got {args.n_test}")
    root = Path(args.o).resolve()
    if args.overwrite and root.exists():
        shutil.rmtree(root)
    from nnunet_ext.paths import use_workspace

    dirs = use_workspace(root)
    timings = {}

    from nnunet_ext.paths import dataset_folders
    from nnunet_ext.synthetic.dataset import write_dataset

    t = _step(1, f"synthetic chest CT phantoms: {args.n} training + {args.n_test} test cases")
    raw = dataset_folders(dirs["nnUNet_raw"]).get(DATASET_ID)
    if raw is None:
        raw = write_dataset("chest", DATASET_ID, args.n, args.n_test, seed=args.seed, name="NnextDemoChest")
    else:
        print(f"reusing {raw}")
    timings["synth_s"] = time.perf_counter() - t

    t = _step(2, "plan + preprocess with TinyPlanner (nnext plan)")
    plans_file = dirs["nnUNet_preprocessed"] / raw.name / f"{PLANS}.json"
    if not (plans_file.is_file() and (plans_file.parent / f"{PLANS}_{config}").is_dir()):
        from nnunet_ext.planners.run import plan_and_preprocess

        plan_and_preprocess(DATASET_ID, "TinyPlanner", [config], num_processes=1,
                            schedule={"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations})
    else:
        print(f"reusing {plans_file}")
    timings["plan_s"] = time.perf_counter() - t

    t = _step(3, f"train: nnUNetv2_train {DATASET_ID} {config} 0 -tr {TRAINER} -p {PLANS} -device cpu")
    model = dirs["nnUNet_results"] / raw.name / f"{TRAINER}__{PLANS}__{config}"
    if not (model / "fold_0" / "checkpoint_final.pth").is_file():
        from nnunet_ext.paths import nnunet_command

        cmd = [nnunet_command("nnUNetv2_train"), str(DATASET_ID), config, "0", "-tr", TRAINER,
               "-p", PLANS, "-device", "cpu"]
        if subprocess.run(cmd, env=os.environ.copy()).returncode != 0:
            print("nnext demo: error: nnUNetv2_train failed (see its output above)", file=sys.stderr)
            return 1
    else:
        print(f"reusing {model / 'fold_0' / 'checkpoint_final.pth'}")
    timings["train_s"] = time.perf_counter() - t

    t = _step(4, f"predict the test cases: nnext predict -m tta_mc --n-samples {args.n_samples}")
    pred = root / "predictions"
    from nnunet_ext.cli.main import main as nnext

    code = nnext(["predict", "-m", "tta_mc", "-i", str(raw / "imagesTs"), "-o", str(pred), "-d", str(DATASET_ID),
                  "-c", config, "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", "--n-samples",
                  str(args.n_samples), "--save-probabilities", "--seed", str(args.seed)])
    if code:
        return code
    timings["predict_s"] = time.perf_counter() - t

    t = _step(5, "evaluate: Dice, HD95, NSD + uncertainty calibration (nnext evaluate)")
    code = nnext(["evaluate", "-ref", str(raw / "labelsTs"), "-pred", str(pred), "-o", str(root / "evaluation.json"),
                  "--uncertainty", str(pred), "--probabilities", str(pred), "-q"])
    if code:
        return code
    evaluation = json.loads((root / "evaluation.json").read_text())
    timings["evaluate_s"] = time.perf_counter() - t

    t = _step(6, "figures: image, reference, prediction and uncertainty per test case")
    from nnunet_ext.evaluation.report import report_folder

    pngs = report_folder(raw / "imagesTs", pred, root / "png", ref_dir=raw / "labelsTs", window=(-1000, 400))
    overview = root / "overview.png"
    shutil.copyfile(pngs[0], overview)
    timings["figures_s"] = time.perf_counter() - t

    summary = {
        "dataset": raw.name, "model": str(model), "predictions": str(pred), "overview_png": str(overview),
        "case_pngs": [str(p) for p in pngs], "evaluation": str(root / "evaluation.json"),
        "mean": evaluation.get("mean"), "uncertainty": (evaluation.get("uncertainty") or {}).get("mean"),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    mean = (evaluation.get("mean") or {}).get("1", {})
    print(f"\nDice {mean.get('dice', float('nan')):.3f}  HD95 {mean.get('hd95', float('nan')):.1f} mm  "
          f"(mean over {args.n_test} test cases)")
    print(f"overview: {overview}\nsummary:  {root / 'summary.json'}")
    return 0
