"""HN-UISeg pieces on head-and-neck phantoms with tiny plans (Chu 2026; issue 12 items 6 and 7).

Workspace ``--root`` (nnU-Net folders inside): ``nnext synth headneck`` (``--n-train`` + ``--n-test`` cases, seed
``--seed``) planned with TinyPlanner ``-c`` (default 2d) for ``--epochs`` x ``--iterations``, and a separate
test set of ``--eval-cases`` phantoms from seed ``--eval-seed`` (its own dataset; only its images / labels are
used). Trainings (plain ``nnUNetv2_train`` entry point, 1 torch thread, seeded with ``--train-seed``; a finished
checkpoint is reused), all with ``--optimizer`` (default the paper's AdamW + cosine, ``--warmup`` epochs): the
automatic baseline ``--baseline`` (default ``ClickPromptAutoTrainer`` trained from scratch: plain nnU-Net +
dropout whose prompt channels are always zero, so it differs from the click model only by the clicks it never
sees), ``ClickPromptTrainer`` (stage 1, clicks from the reference with p = 0.5), ``ClickPromptErrorTrainer``
(stage 3, clicks in its own errors, ``-pretrained_weights`` from stage 2 = ``ClickPromptAutoTrainer`` fine-tuned
from stage 1; the paper's three stages on one dataset; plans copies ``nnextTinyPlansStage2`` / ``Stage3`` with
a quarter / half of ``--epochs``, as the demo; the baseline ``nnextTinyPlansBase`` trains as many epochs as the
three stages together) and
``ClickPromptTrainer`` with the plans option ``clicks.pet_dropout`` = ``--pet-dropout`` (its own plans
``nnextTinyPlansPetDrop``, written by ``write_options`` beside the tiny plans; same preprocessed data).
Parts (``--parts``, default all), written to ``ROOT/results/results.json``:

The three stages also run a second time under the plans copy ``nnextTinyPlansPrev`` (stage 2:
``nnextTinyPlansPrevStage2``) with ``clicks.previous_prediction = true``, the ablation of nnInteractive's
previous-prediction input (``--no-previous`` skips it; ``ClickPromptTrainer+petdrop`` is trained only for the
``petdrop`` part).

* ``auto``: automatic Dice / HD95 per class, ``nnext predict -m stock --disable_tta`` of the baseline and of the
  click-prompt models (prompt channels zero-filled);
* ``clicks``: mean Dice / HD95 per class after 0..``--max-clicks`` simulated clicks, protocols errors / autopet /
  each-lesion (``nnext clicks-eval``), stage-1, stage-3 and stage-3-with-previous-prediction models, and the mean
  lesions per class of the test set (per-case rows in each run's ``clicks_eval.csv``;
  ``benchmarks/bench_interactive_summary.py`` pools several seeds with paired tests);
* ``prune``: the stage-3 model's errors and autopet protocols again with ``--prune-unclicked MM`` (``--prune-mm``);
* ``petdrop``: Dice of the click-prompt models with and without PET dropout on PET/CT input and on CT-only input
  (PET channel zero-filled on the CT grid, as ``nnext convert hecktor --ct-only`` writes it);
* ``latency``: :class:`nnunet_ext.methods.interactive.session.InteractiveSession` after one click, full re-prediction
vs tile-local
  update (best of ``--repeats``), for the ``-c`` model on a test case widened ``--widen`` times along x and for a
  3d_fullres ClickPromptTrainer trained for 1 x 2 iterations (timing does not depend on the weights) on its own
  dataset.

    OMP_NUM_THREADS=1 python benchmarks/bench_interactive.py [--root DIR] [-c 2d] [--epochs 60]
        [--iterations 50] [--parts auto,clicks,prune,petdrop,latency]
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

import numpy as np

TINY = "nnextTinyPlans"
CLASSES = {1: "GTVp", 2: "GTVn"}
PARTS = ("auto", "clicks", "prune", "petdrop", "latency")


def _run(cmd, env=None):
    t = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, cmd[:4]))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return round(time.perf_counter() - t, 1)


def _nnext(argv):
    from nnunet_ext.cli.main import main as nnext

    if nnext([str(a) for a in argv]):
        sys.exit(f"nnext {argv[0]} failed")


def _load():
    return round(os.getloadavg()[0], 2)


def _dice_hd95(ref_dir: Path, pred_dir: Path) -> dict:
    from nnunet_ext.evaluation.metrics import compute_metrics
    from nnunet_ext.io.imageio import read_image

    out = {name: {"dice": [], "hd95": []} for name in CLASSES.values()}
    for ref_file in sorted(ref_dir.glob("*.nii.gz")):
        ref, g = read_image(ref_file, kind="label")
        pred, _ = read_image(pred_dir / ref_file.name, kind="label")
        for v, name in CLASSES.items():
            if not (ref == v).any():
                continue  # a class absent from the case: Dice undefined, left out of the mean
            m = compute_metrics(ref == v, pred == v, g.spacing[::-1])
            out[name]["dice"].append(m["dice"])
            out[name]["hd95"].append(m["hd95"])
    return {name: {k: round(float(np.mean(v)), 4) for k, v in d.items()} | {"n": len(d["dice"])}
            for name, d in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="bench_interactive_ws")
    ap.add_argument("--dataset-id", type=int, default=541)
    ap.add_argument("--name", default="NnextHeadNeck")
    ap.add_argument("-c", default="2d", choices=("2d", "3d_fullres"))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--n-train", type=int, default=8)
    ap.add_argument("--n-test", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="phantom seed of the training dataset")
    ap.add_argument("--eval-cases", type=int, default=10)
    ap.add_argument("--eval-seed", type=int, default=7)
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--max-clicks", type=int, default=5)
    ap.add_argument("--prune-mm", type=float, default=20.0)
    ap.add_argument("--pet-dropout", type=float, default=0.5)
    ap.add_argument("--widen", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--optimizer", default="adamw", choices=("sgd", "adamw"),
                    help="plans option optimizer.name of the trainings (default adamw, the paper's)")
    ap.add_argument("--warmup", type=int, default=6, help="plans option optimizer.warmup_epochs (default 6)")
    ap.add_argument("--baseline", default="ClickPromptAutoTrainer",
                    help="automatic baseline: ClickPromptAutoTrainer trained from scratch = plain nnU-Net with the "
                         "prompt channels always zero and the same optimiser (default); MCDropoutTrainer = nnU-Net's "
                         "SGD")
    ap.add_argument("--radius", type=float, default=3.0,
                    help="plans option clicks.radius in voxels (default 3, the paper's 3 voxels at ~1 mm; the "
                         "phantoms' 3 mm grid gives the same physical size with 1)")
    ap.add_argument("--no-previous", action="store_true",
                    help="skip the second three-stage chain with previous-prediction channels (the ablation)")
    ap.add_argument("--parts", default=",".join(PARTS))
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if set(parts) - set(PARTS):
        sys.exit(f"unknown part(s) {set(parts) - set(PARTS)}; choose from {PARTS}")

    from nnunet_ext.io.paths import use_workspace

    root = Path(args.root).resolve()
    dirs = use_workspace(root)
    raw = dirs["nnUNet_raw"] / f"Dataset{args.dataset_id:03d}_{args.name}"
    if not raw.is_dir():
        _nnext(["synth", "headneck", "-d", args.dataset_id, "-n", args.n_train, "--n-test", args.n_test,
                "--seed", args.seed, "--name", args.name, "--no-progress"])
    if not (dirs["nnUNet_preprocessed"] / raw.name / f"{TINY}.json").is_file():
        _nnext(["plan", "-d", args.dataset_id, "-pl", "TinyPlanner", "-c", args.c, "--epochs", args.epochs,
                "--iterations", args.iterations, "-np", "1", "--set", f"optimizer.name={args.optimizer}",
                "--set", f"optimizer.warmup_epochs={args.warmup}", "--set", f"clicks.radius={args.radius}"])
    base_plans = dirs["nnUNet_preprocessed"] / raw.name / f"{TINY}.json"
    from nnunet_ext.demos.headneck import stage_epochs
    from nnunet_ext.planners.plans_edit import write_options

    # plans copies sharing the preprocessed data, each with its stage's epochs (the demo's split, stage_epochs:
    # stage 2 a quarter, stage 3 half of stage 1's --epochs; the baseline as many as the three stages together)
    e1, e2, e3 = stage_epochs(args.epochs).values()
    previous = ["clicks.previous_prediction=true"]
    for ident, assignments, epochs in (
            (f"{TINY}Base", [], e1 + e2 + e3), (f"{TINY}PetDrop", [f"clicks.pet_dropout={args.pet_dropout}"], e1),
            (f"{TINY}Stage2", [], e2), (f"{TINY}Stage3", [], e3), (f"{TINY}Prev", previous, e1),
            (f"{TINY}PrevStage2", previous, e2), (f"{TINY}PrevStage3", previous, e3)):
        target = base_plans.with_name(f"{ident}.json")
        if not target.is_file():
            write_options(base_plans, assignments, new_identifier=ident)
            plans = json.loads(target.read_text())
            block = plans["configurations"][args.c].setdefault("nnext_training", {})
            block["num_epochs"] = epochs
            block.setdefault("optimizer", {})["warmup_epochs"] = max(1, min(args.warmup, epochs // 10))
            target.write_text(json.dumps(plans, indent=4))
    eval_id = args.dataset_id + 1
    evr = dirs["nnUNet_raw"] / f"Dataset{eval_id:03d}_{args.name}Eval"
    if not evr.is_dir():
        _nnext(["synth", "headneck", "-d", eval_id, "-n", 5, "--n-test", args.eval_cases, "--seed", args.eval_seed,
                "--name", f"{args.name}Eval", "--no-progress"])
    images, labels = evr / "imagesTs", evr / "labelsTs"
    out = root / "results"
    out.mkdir(exist_ok=True)
    res_file = out / "results.json"
    results = json.loads(res_file.read_text()) if res_file.is_file() else {}
    results["setup"] = {"radius": args.radius, "optimizer": args.optimizer, "warmup_epochs": args.warmup,
                        "baseline": args.baseline,
                        "configuration": args.c, "epochs": args.epochs, "iterations": args.iterations,
                        "n_train": args.n_train, "fold": 0, "eval_cases": args.eval_cases,
                        "eval_seed": args.eval_seed, "train_seed": args.train_seed}

    from nnunet_ext.demos.steps import train_command

    # model key -> (trainer, plans identifier, key of the model it starts from); the options live in the plans.
    # The paper's three stages twice: without and with the previous-prediction channels (clicks.previous_prediction,
    # set for the whole chain: every stage's network has the channels, stages 1-2 feed them zeros).
    models = {args.baseline: (args.baseline, f"{TINY}Base", None),
              "ClickPromptTrainer": ("ClickPromptTrainer", TINY, None),
              "ClickPromptAutoTrainer+stage2": ("ClickPromptAutoTrainer", f"{TINY}Stage2", "ClickPromptTrainer"),
              "ClickPromptErrorTrainer": ("ClickPromptErrorTrainer", f"{TINY}Stage3", "ClickPromptAutoTrainer+stage2")}
    if not args.no_previous:
        models.update({
            "ClickPromptTrainer+previous": ("ClickPromptTrainer", f"{TINY}Prev", None),
            "ClickPromptAutoTrainer+previous_stage2": ("ClickPromptAutoTrainer", f"{TINY}PrevStage2",
                                                       "ClickPromptTrainer+previous"),
            "ClickPromptErrorTrainer+previous": ("ClickPromptErrorTrainer", f"{TINY}PrevStage3",
                                                 "ClickPromptAutoTrainer+previous_stage2")})
    if "petdrop" in parts:
        models["ClickPromptTrainer+petdrop"] = ("ClickPromptTrainer", f"{TINY}PetDrop", None)

    def checkpoint(key):
        trainer, plans, _ = models[key]
        return dirs["nnUNet_results"] / raw.name / f"{trainer}__{plans}__{args.c}" / "fold_0" / "checkpoint_final.pth"

    train_s = results.setdefault("train_seconds", {})
    for key, (trainer, plans, start) in models.items():
        ckpt = checkpoint(key)
        extra = [] if start is None else ["-pretrained_weights", checkpoint(start)]
        if not ckpt.is_file():
            load = _load()
            cmd = train_command([args.dataset_id, args.c, "0", "-tr", trainer, "-p", plans, "-device", "cpu", *extra],
                                threads=1, seed=args.train_seed)
            train_s[key] = {"seconds": _run(cmd), "load": [load, _load()]}
            print(key, train_s[key], flush=True)
    model = ["-d", args.dataset_id, "-c", args.c, "-p", TINY, "-f", "0", "-device", "cpu"]

    if "auto" in parts:
        auto = {"load": _load()}
        for key in (args.baseline, "ClickPromptTrainer", "ClickPromptErrorTrainer", "ClickPromptErrorTrainer+previous"):
            if key not in models:
                continue
            trainer, plans, _ = models[key]
            pred = out / f"auto_{key}"
            _nnext(["predict", "-m", "stock", "-i", images, "-o", pred, *model, "-tr", trainer, "-p", plans,
                    "--disable_tta", "--overwrite"])
            auto[key] = _dice_hd95(labels, pred)
        results["auto"] = auto
        print("auto", json.dumps(auto), flush=True)

    if "clicks" in parts or "prune" in parts:
        from nnunet_ext.io.imageio import read_image
        from nnunet_ext.methods.interactive.click_simulation import components

        counts = {name: [] for name in CLASSES.values()}
        for f in sorted(labels.glob("*.nii.gz")):
            ref = read_image(f, kind="label")[0]
            for v, name in CLASSES.items():
                counts[name].append(components(ref == v)[1])
        results["lesions_per_case"] = {k: round(float(np.mean(v)), 2) for k, v in counts.items()}
    runs = []
    if "clicks" in parts:
        runs += [(key, p, None) for key in ("ClickPromptTrainer", "ClickPromptErrorTrainer",
                                            "ClickPromptErrorTrainer+previous") if key in models
                 for p in ("errors", "autopet", "each-lesion")]
    if "prune" in parts:
        runs += [("ClickPromptErrorTrainer", p, args.prune_mm) for p in ("errors", "autopet")]
    for key, protocol, prune in runs:
        trainer, plans, _ = models[key]
        name = f"{key}/{protocol}" + ("" if prune is None else f"_prune{prune:g}mm")
        t, load = time.perf_counter(), _load()
        _nnext(["clicks-eval", "-i", images, "-ref", labels, "-o", out / name, *model, "-tr", trainer, "-p", plans,
                "--protocol", protocol, "--max-clicks", args.max_clicks, "--overwrite",
                *([] if prune is None else ["--prune-unclicked", prune])])
        mean = json.loads((out / name / "summary.json").read_text())["mean"]
        results.setdefault("clicks", {})[name] = {
            "load": load, "seconds": round(time.perf_counter() - t, 1),
            "mean": {c: {s: {k: round(v[k], 4) for k in ("dice", "hd95")} for s, v in d.items()}
                     for c, d in mean.items()}}
        print(name, json.dumps(results["clicks"][name]), flush=True)

    if "petdrop" in parts:
        import SimpleITK as sitk

        ct_only = out / "images_ct_only"
        if not ct_only.is_dir():
            tmp = ct_only.with_name(".ct_only_tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for f in sorted(images.glob("*_0000.nii.gz")):
                shutil.copy(f, tmp / f.name)
                pet = sitk.ReadImage(str(f.with_name(f.name.replace("_0000", "_0001"))))
                zero = sitk.Image(pet.GetSize(), pet.GetPixelID())
                zero.CopyInformation(pet)
                sitk.WriteImage(zero, str(tmp / f.name.replace("_0000", "_0001")))
            tmp.rename(ct_only)
        pd = {"load": _load(), "pet_dropout": args.pet_dropout}
        for key, (_, plans, _) in models.items():
            if key not in ("ClickPromptTrainer", "ClickPromptTrainer+petdrop"):
                continue
            for inp_name, inp in (("pet_ct", images), ("ct_only", ct_only)):
                pred = out / f"petdrop_{key}_{inp_name}"
                _nnext(["predict", "-m", "stock", "-i", inp, "-o", pred, *model, "-p", plans, "-tr",
                        "ClickPromptTrainer", "--disable_tta", "--overwrite"])
                pd[f"{key}/{inp_name}"] = _dice_hd95(labels, pred)
        results["petdrop"] = pd
        print("petdrop", json.dumps(pd), flush=True)

    if "latency" in parts:
        results["latency"] = {args.c: _latency(args.dataset_id, args.c, images, args)}
        if args.c != "3d_fullres":
            lat_id = args.dataset_id + 2
            lr = dirs["nnUNet_raw"] / f"Dataset{lat_id:03d}_{args.name}Latency"
            if not lr.is_dir():
                _nnext(["synth", "headneck", "-d", lat_id, "-n", 5, "--n-test", 1, "--seed", args.seed,
                        "--name", f"{args.name}Latency", "--no-progress"])
                _nnext(["plan", "-d", lat_id, "-pl", "TinyPlanner", "-c", "3d_fullres", "--epochs", 1,
                        "--iterations", 2, "-np", "1"])
            ck = dirs["nnUNet_results"] / lr.name / f"ClickPromptTrainer__{TINY}__3d_fullres" / "fold_0"
            if not (ck / "checkpoint_final.pth").is_file():
                _run(train_command([lat_id, "3d_fullres", "0", "-tr", "ClickPromptTrainer", "-p", TINY, "-device",
                                    "cpu"], threads=1, seed=args.train_seed))
            results["latency"]["3d_fullres"] = _latency(lat_id, "3d_fullres", lr / "imagesTs", args)
        print("latency", json.dumps(results["latency"]), flush=True)
    res_file.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def _latency(dataset_id, config, images: Path, args) -> dict:
    import SimpleITK as sitk
    import torch

    from nnunet_ext.methods.interactive.session import InteractiveSession

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    case = sorted(images.glob("*_0000.nii.gz"))[0].name[:-len("_0000.nii.gz")]
    wide = []
    for ch in (0, 1):
        img = sitk.ReadImage(str(images / f"{case}_{ch:04d}.nii.gz"))
        arr = sitk.GetArrayFromImage(img)
        w = sitk.GetImageFromArray(np.concatenate([arr] * args.widen, -1))
        w.SetSpacing(img.GetSpacing()), w.SetOrigin(img.GetOrigin()), w.SetDirection(img.GetDirection())
        wide.append(w)
    s = InteractiveSession.from_model(dataset_id, config, trainer="ClickPromptTrainer", plans=TINY, folds=(0,),
                                      device="cpu")
    load = _load()
    size = wide[0].GetSize()
    out = time_session(s, wide, (size[0] // 2, size[1] // 2, size[2] // 2), "GTVp", args.repeats)
    return {"image_xyz": list(size), **out, "torch_threads": torch.get_num_threads(), "load": [load, _load()]}


def time_session(s, images, click, label, repeats: int, sync=lambda: None) -> dict:
    """Seconds of ``s.set_image(images)``, then (best of ``repeats``) one click at voxel ``click`` (x, y, z) with
    the tile-local update and the full re-prediction (:meth:`recompute_all`) with the same click."""
    t = time.perf_counter()
    s.set_image(images)
    sync()
    set_image = time.perf_counter() - t
    local, full = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        s.add_point_interaction(click, label)
        sync()
        local.append(time.perf_counter() - t)
        recomputed = s.last_recomputed
        t = time.perf_counter()
        s.recompute_all()
        sync()
        full.append(time.perf_counter() - t)
        s.undo()
    return {"windows": len(s._slicers), "windows_recomputed": recomputed, "set_image_s": round(set_image, 3),
            "tile_local_s": round(min(local), 3), "full_s": round(min(full), 3)}

if __name__ == "__main__":
    main()
