"""Stage 3 (or stages 2 and 3) on a second cohort of phantoms, as the paper trains them (issue 18, session 9).

HN-UISeg (Chu 2026, sec. 2.2) pre-trains stage 1 on public HECKTOR data and fine-tunes stages 2 and 3 on a
private cohort; ``nnext demo headneck`` trains all three on one dataset, whose phantoms the model memorises, so
stage 3's clicks never land on the errors the model makes on new cases (bench_click_error_kinds.py). This
script takes a finished demo workspace (``-o D`` -> ``D/headneck``), copies it to ``--out``, synthesises ``-n``
new phantoms as dataset 996 (seed 1000 + ``--seed``), preprocesses them with the demo's plans (the plans files
copied, nnU-Net's ``nnUNetv2_preprocess``), trains stage 3 (``--stages 3``: from the demo's stage 2) or stages 2
and 3 (``--stages 23``: from the demo's stage 1) on them with the demo's settings (one torch thread, seeded),
and runs the demo's ``clicks-eval`` of the new stage-3 model on the demo's test phantoms.

    python benchmarks/bench_stage3_cohort.py D --seed 3 -n 8 --stages 3 --out /tmp/cohort_s3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO = "Dataset995_NnextDemoHeadNeck"
COHORT = "Dataset996_NnextCohortB"
STAGES = {"1": ("ClickPromptTrainer", "nnextTinyPlans"), "2": ("ClickPromptAutoTrainer", "nnextTinyPlansStage2"),
          "3": ("ClickPromptErrorTrainer", "nnextTinyPlansStage3")}
CONFIG = "3d_fullres"


def checkpoint(results: Path, dataset: str, stage: str) -> Path:
    trainer, plans = STAGES[stage]
    return results / dataset / f"{trainer}__{plans}__{CONFIG}" / "fold_0" / "checkpoint_final.pth"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo", help="the -o folder of a finished nnext demo headneck (3d_fullres)")
    ap.add_argument("--seed", type=int, required=True, help="the demo's --seed")
    ap.add_argument("-n", type=int, default=8, help="phantoms of the second cohort")
    ap.add_argument("--stages", choices=("3", "23"), default="3")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    src, root = Path(args.demo) / "headneck", Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        shutil.copytree(src / sub / DEMO, root / sub / DEMO)
        os.environ[sub] = str(root / sub)
    from nnunet_ext.cli.main import main as nnext
    from nnunet_ext.demos.steps import train_command
    from nnunet_ext.io.paths import nnunet_command

    if nnext(["synth", "headneck", "-d", "996", "-n", str(args.n), "--seed", str(1000 + args.seed), "--name",
              COHORT.split("_", 1)[1], "--overwrite", "--no-progress"]):
        sys.exit("synth failed")
    pre, results = root / "nnUNet_preprocessed", root / "nnUNet_results"
    (pre / COHORT).mkdir()
    for _, plans_name in STAGES.values():
        plans = json.loads((pre / DEMO / f"{plans_name}.json").read_text())
        plans["dataset_name"] = COHORT
        (pre / COHORT / f"{plans_name}.json").write_text(json.dumps(plans, indent=2))
    shutil.copy(pre / DEMO / "dataset_fingerprint.json", pre / COHORT)
    shutil.copy(root / "nnUNet_raw" / COHORT / "dataset.json", pre / COHORT)
    subprocess.run([nnunet_command("nnUNetv2_preprocess"), "-d", "996", "-plans_name", STAGES["1"][1], "-c", CONFIG,
                    "-np", "1"], check=True)
    previous = checkpoint(results, DEMO, "1" if args.stages == "23" else "2")
    for stage in args.stages:
        trainer, plans_name = STAGES[stage]
        subprocess.run(train_command(["996", CONFIG, "0", "-tr", trainer, "-p", plans_name, "-device", "cpu",
                                      "-pretrained_weights", str(previous)], 1, args.seed), check=True)
        previous = checkpoint(results, COHORT, stage)
    raw = root / "nnUNet_raw" / DEMO
    trainer, plans_name = STAGES["3"]
    if nnext(["clicks-eval", "-i", str(raw / "imagesTs"), "-ref", str(raw / "labelsTs"), "-o", str(root / "eval"),
              "-d", "996", "-c", CONFIG, "-tr", trainer, "-p", plans_name, "-f", "0", "-device", "cpu",
              "--protocol", "errors", "--max-clicks", "3", "--save-steps", "--seed", str(args.seed), "--overwrite"]):
        sys.exit("clicks-eval failed")
    mean = json.loads((root / "eval" / "summary.json").read_text())["mean"]
    print(f"stage 3 on {args.n} new phantoms (stages {args.stages}), seed {args.seed}, Dice after 0..3 clicks:")
    for cls, by_clicks in mean.items():
        print(f"  {cls}: " + " -> ".join(f"{v['dice']:.3f}" for v in by_clicks.values()))


if __name__ == "__main__":
    main()
