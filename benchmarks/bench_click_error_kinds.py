"""Which errors do the clicks land on? Class confusions in stage-3 training and in the evaluation (issue 18).

Two reports, for a workspace of ``nnext demo headneck`` (nnUNet_raw / _preprocessed / _results inside):

* ``training``: the round-1 error clicks stage 3 would place on training batches (nnU-Net's data loader and
  augmentation, seeded) with a given model's automatic prediction, counted per class, sign and kind: ``missed``
  (positive click, predicted background), ``background_fp`` (negative click, reference background) or
  ``confusion`` (the click voxel is one foreground class in the reference and another in the prediction, e.g.
  a node segmented as GTVp). ``--dataset`` picks the cohort the batches come from (the model's own training
  cohort, or another one preprocessed with the same plans, see bench_stage3_cohort.py).
* ``steps``: per test case and click step of ``nnext clicks-eval --save-steps``: true-positive, false-positive
  (of which confused with the other class) and false-negative voxels per class, and the voxels that changed.

    python benchmarks/bench_click_error_kinds.py training --root D/headneck \\
        --model ClickPromptAutoTrainer__nnextTinyPlansStage2__3d_fullres --batches 30
    python benchmarks/bench_click_error_kinds.py steps --eval D/headneck/results/clicks_eval_stage3 \\
        --labels D/headneck/nnUNet_raw/Dataset995_NnextDemoHeadNeck/labelsTs
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np


def click_kind(reference: np.ndarray, prediction: np.ndarray, index: tuple, positive: bool) -> str:
    ref, pred = int(reference[index]), int(prediction[index])
    if ref > 0 and pred > 0 and ref != pred:
        return "confusion"
    return "missed" if positive else "background_fp"


def training_report(args) -> None:
    import tempfile

    root = Path(args.root)
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        os.environ[var] = str(root / var)
    # the trainer writes its log and plans copies into nnUNet_results: a scratch folder, never the model's
    os.environ["nnUNet_results"] = tempfile.mkdtemp(prefix="click_error_kinds_")
    os.environ["nnUNet_n_proc_DA"] = "0"  # data augmentation in this process: seeded, repeatable
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunet_ext.methods.interactive.click_simulation import error_clicks

    torch.set_num_threads(1)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    trainer = get_trainer_from_args(str(args.dataset), args.c, 0, "ClickPromptErrorTrainer", args.plans,
                                    device=torch.device("cpu"))
    trainer.initialize()
    model_dataset = args.model_dataset or next((root / "nnUNet_results").glob(f"Dataset{args.d}_*")).name
    checkpoint = root / "nnUNet_results" / model_dataset / args.model / "fold_0" / "checkpoint_final.pth"
    trainer.network.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"])
    trainer.on_train_start()
    classes = trainer.prompt_classes
    counts = Counter()
    for _ in range(args.batches):
        batch = next(trainer.dataloader_train)
        x = batch["data"].clone()
        x[:, x.shape[1] - 2 * len(classes):] = 0  # the automatic branch (round 1)
        pred = trainer._predict_labels(x)
        target = batch["target"][0] if isinstance(batch["target"], (list, tuple)) else batch["target"]
        ref = target[:, 0].numpy().astype(np.int64)
        for b in range(ref.shape[0]):
            for channel, index, positive in error_clicks(ref[b], pred[b], classes, trainer.max_error_clicks,
                                                         tuple(trainer.configuration_manager.spacing),
                                                         trainer.min_error_size()):
                counts[(classes[channel], "positive" if positive else "negative",
                        click_kind(ref[b], pred[b], index, positive))] += 1
    print(f"round-1 error clicks on {args.batches} batches of dataset {args.dataset} with {args.model}:")
    for key, n in sorted(counts.items()):
        print("  class %s %s %s: %d" % (*key, n))
    print(f"  confusion clicks: {sum(n for k, n in counts.items() if k[2] == 'confusion')} of {sum(counts.values())}")


def steps_report(args) -> None:
    from nnunet_ext.io.imageio import read_image

    evald = Path(args.eval)
    steps = evald / "steps" if (evald / "steps").is_dir() else evald
    for clicks_file in sorted(steps.glob("*_clicks.json")):
        case = clicks_file.name[: -len("_clicks.json")]
        ref = read_image(Path(args.labels) / f"{case}.nii.gz", kind="label")[0]
        print(case, "reference voxels per class:", {int(v): int((ref == v).sum()) for v in np.unique(ref) if v})
        previous = None
        for path in sorted(steps.glob(f"{case}_step*.nii.gz"), key=lambda p: int(p.name.split("_step")[1][:-7])):
            seg = read_image(path, kind="label")[0]
            parts = []
            for c in (int(v) for v in np.unique(ref) if v):
                fp = (seg == c) & (ref != c)
                parts.append(f"class {c}: tp {int(((seg == c) & (ref == c)).sum())} fp {int(fp.sum())} "
                             f"(confused {int((fp & (ref > 0)).sum())}) fn {int(((seg != c) & (ref == c)).sum())}")
            changed = "" if previous is None else f"; changed {int((seg != previous).sum())}"
            print(f"  {path.name[len(case) + 1:-7]}: " + "; ".join(parts) + changed)
            previous = seg
        print("  clicks:", json.dumps(json.loads(clicks_file.read_text())))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="report", required=True)
    t = sub.add_parser("training")
    t.add_argument("--root", required=True)
    t.add_argument("-d", default="995", help="dataset of the model (default 995, the demo's)")
    t.add_argument("--dataset", default="995", help="dataset whose training batches are clicked")
    t.add_argument("--model-dataset", default=None, help="results folder of the model (default: dataset -d's)")
    t.add_argument("--model", required=True, metavar="TRAINER__PLANS__CONFIG")
    t.add_argument("--plans", default="nnextTinyPlansStage3")
    t.add_argument("-c", default="3d_fullres")
    t.add_argument("--batches", type=int, default=30)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("steps")
    s.add_argument("--eval", required=True, help="a clicks-eval output folder made with --save-steps")
    s.add_argument("--labels", required=True, help="the reference labels (labelsTs)")
    args = ap.parse_args()
    (training_report if args.report == "training" else steps_report)(args)


if __name__ == "__main__":
    main()
