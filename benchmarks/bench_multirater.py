"""Multi-annotation learning on nodule phantoms: baseline (rater 0 only) vs MultiAnnotationTrainer vs
UGSNetTrainer, same TinyPlanner backbone (Yang & Wang, Tables I and III protocol, tiny CPU scale).

    python benchmarks/bench_multirater.py [--work DIR] [-n 24] [--n-test 12] [-c 2d] [--epochs 20]
        [--iterations 25] [--seed 0]

Steps: ``nnext synth nodule`` (4 raters; the raw label is rater 0 = the paper's Label_1) -> baseline
``MCDropoutTrainer`` with dropout 0 (= nnU-Net's U-Net with Dice + CE) on rater 0; ``nnext convert raters``
-> ``MultiAnnotationTrainer`` (Φ + Dice) and ``UGSNetTrainer`` (eq. 4) on all raters; predictions with
``nnUNetv2_predict`` (baseline, MA) and ``nnext predict -m mcm`` (UGS-Net); ``nnext evaluate-raters`` for each,
with the baseline as reference of the Complex-Nodule Validation. Prints one table and writes
``DIR/bench_multirater.json``. Every number is one seed of tiny networks: read differences of a few Dice
points as noise.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RAW_ID, RATER_ID = 951, 952
PLANS = "nnextTinyPlans"


def _run(cmd, env=None):
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="bench_multirater_work")
    p.add_argument("-n", type=int, default=24)
    p.add_argument("--n-test", type=int, default=12)
    p.add_argument("-c", default="2d", choices=["2d", "3d_fullres"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--iterations", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.paths import nnunet_command, use_workspace
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    root = Path(args.work).resolve()
    dirs = use_workspace(root)
    env1 = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    schedule = {"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations}
    times = {}
    t = time.perf_counter()
    src = write_dataset("nodule", RAW_ID, args.n, args.n_test, seed=args.seed, progress=False, raters=4,
                        overwrite=True)
    assert nnext(["convert", "raters", "-i", str(src), "-d", str(RATER_ID), "--name", "BenchRaters",
                  "--overwrite", "--no-progress"]) == 0
    rater_folder = next(dirs["nnUNet_raw"].glob(f"Dataset{RATER_ID}_*"))
    for d in (RAW_ID, RATER_ID):
        plan_and_preprocess(d, "TinyPlanner", [args.c], num_processes=1, schedule=schedule)
    times["data_s"] = time.perf_counter() - t

    runs = {"baseline": (RAW_ID, "MCDropoutTrainer", {"NNEXT_DROPOUT_P": "0"}),
            "multi_annotation": (RATER_ID, "MultiAnnotationTrainer", {}),
            "ugsnet": (RATER_ID, "UGSNetTrainer", {})}
    summaries = {}
    for name, (ds, trainer, env) in runs.items():
        t = time.perf_counter()
        _run([nnunet_command("nnUNetv2_train"), str(ds), args.c, "0", "-tr", trainer, "-p", PLANS, "-device", "cpu"],
             {**env1, **env})
        times[f"train_{name}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pred = root / f"pred_{name}"
        images = (src if ds == RAW_ID else rater_folder) / "imagesTs"
        if name == "ugsnet":
            assert nnext(["predict", "-m", "mcm", "-i", str(images), "-o", str(pred), "-d", str(ds), "-c", args.c,
                          "-tr", trainer, "-p", PLANS, "-f", "0", "-device", "cpu", "--overwrite"]) == 0
        else:
            _run([nnunet_command("nnUNetv2_predict"), "-i", str(images), "-o", str(pred), "-d", str(ds), "-c", args.c,
                  "-f", "0", "-tr", trainer, "-p", PLANS, "-device", "cpu"], env1)
        times[f"predict_{name}_s"] = time.perf_counter() - t
        extra = ["--baseline", str(root / "eval_baseline.json")] if name != "baseline" else []
        if name == "ugsnet":
            extra += ["--mcm", str(pred), "--images", str(images), "--kde-png", str(root / "hu_kde_ugsnet.png")]
        assert nnext(["evaluate-raters", "-pred", str(pred), "-raters", str(rater_folder / "labelsTs_raters"),
                      "-o", str(root / f"eval_{name}.json"), *extra]) == 0
        summaries[name] = json.loads((root / f"eval_{name}.json").read_text())

    keys = ["dice_rater0", "iou_rater0", "nsd_rater0", "dice_rater_mean", "dice_union", "dice_intersection"]
    print(f"\n{args.n} training / {args.n_test} test nodule phantoms, {args.c}, {args.epochs} x {args.iterations} it")
    print(f"{'run':<18}" + "".join(f"{k:>18}" for k in keys))
    for name, s in summaries.items():
        print(f"{name:<18}" + "".join(f"{s['mean'][k]:>18.3f}" for k in keys))
    u = summaries["ugsnet"]["mean"]
    print(f"UGS-Net HC Dice {u.get('dice_hc', float('nan')):.3f}, LC Dice {u.get('dice_lc', float('nan')):.3f}")
    for name in ("multi_annotation", "ugsnet"):
        for thr, row in summaries[name]["complex_nodules"].items():
            if row["n"]:
                print(f"complex nodules {thr} ({row['n']} cases): baseline {row['baseline_dice_rater0']:.3f} -> "
                      f"{name} {row['method_dice_rater0']:.3f}")
    out = {"args": vars(args), "times_s": {k: round(v, 1) for k, v in times.items()},
           "mean": {n: s["mean"] for n, s in summaries.items()},
           "complex_nodules": {n: summaries[n]["complex_nodules"] for n in ("multi_annotation", "ugsnet")}}
    (root / "bench_multirater.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out["times_s"]))


if __name__ == "__main__":
    main()
