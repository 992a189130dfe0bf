"""``nnext demo glioma``: the glioma pipeline of Yang et al. 2025 on brain phantoms, end to end, out of fold.

[1] synth brain phantoms -> [2] ``nnext plan`` (TinyPlanner, 2d + 3d_fullres, short schedule; the whole-volume 3D
baseline's own patch :data:`PATCH_3D`, :func:`tune_plans`) and a :data:`FOLDS`-fold split of the training cases
(nnU-Net's ``splits_final.json``) -> [3] plain ``nnUNetv2_train`` of ``SphericalProjectionTrainer`` (2d, regions
WT / TC / ET) in every fold -> [4] ``nnext kernel-dataset`` (uncertainty kernels of the training cases, the 2D
fold ensemble) and ``nnext plan`` of the crops (their split grouped by source case, following the source split)
-> [5] the refiner ``KernelRefinerBCETrainer`` (3D, BCE, Adam) on the kernel crops in every fold -> [6] the
whole-volume 3D baseline (the same trainer on whole phantoms, fold ``all``, its own patch) -> [7] ``nnext predict
-m kernel_refine`` per fold on the cases that fold held out (out of fold) -> [8] ``nnext fusion-fit`` on them
(global DSC, the paper's objective; refuses in-sample cases) -> [9] test cases: ``-m kernel_refine --fusion`` with
the fold ensembles, ``-m stock`` with the 3D baseline -> [10] Dice and HD95 per region of the 2D ensemble, the 3D
baseline and the fused result -> [11] ``overview.png`` and ``summary.json`` (metrics, fusion weights, per-step
seconds).

The refiner and the baseline train with ``refiner.lr`` = :data:`REFINER_LR` (plans option): the paper's 1e-5 leaves
the demo's few hundred iterations at the initialisation. Everything lives in ``-o DIR/glioma``. Steps are numbered;
a finished step is reused on a re-run only when the settings it was made with
(:class:`nnunet_ext.demos.steps.DemoSteps`; a step's settings include those of the steps before it) match,
otherwise it is redone and the changed settings are named; ``--overwrite`` starts afresh.

Run it as ``nnext demo glioma`` or ``python -m nnunet_ext.demos.glioma [-o DIR]``; ``args.stride`` /
``args.max_kernels`` / ``args.folds`` / ``args.crop_kernels``, when present, override :data:`STRIDE` /
:data:`MAX_KERNELS` / :data:`FOLDS` / :data:`CROP_KERNELS` (benchmarks/bench_glioma.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

RAW_ID = 996
CROP_ID = 997
DATASET_NAME = "NnextDemoBrain"
PLANS = "nnextTinyPlans"
TRAINER_2D, TRAINER_3D = "SphericalProjectionTrainer", "KernelRefinerBCETrainer"
SIZE = (40, 64, 64)  # phantom z, y, x voxels (3.5 x 3 x 3 mm)
STRIDE = 16  # origin grid: 4 x 4 per 64 x 64 slice, inside the brain ROI (the paper: 8 px on 256 x 256)
MAX_KERNELS = 4  # per case and region at inference: keeps the CPU demo short (the paper has no cap)
CROP_KERNELS = 4  # per case and region for the refiner's training crops
PATCH_3D = (24, 48, 48)  # the whole-volume 3D baseline's 3d_fullres patch (tune_plans); the refiner plans its own
OVERSAMPLE = 0.33  # foreground oversampling of both configurations (tune_plans; nnU-Net's default)
FOLDS = 2  # cross-validation folds of the 2D model and the refiner (out-of-fold fusion); the paper's is 5
REFINER_LR = 1e-3  # refiner.lr of the 3D trainings (module docstring)
PSO = {"particles": 20, "iters": 30}
REGIONS = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
METHODS = ("2d_ensemble", "3d_model", "fused")
TOTAL_STEPS = 11


def _nnext(*args) -> None:
    from nnunet_ext.demos.steps import run_nnext

    run_nnext(list(args))


def _train(dataset_id, configuration: str, trainer: str, model: Path, fold, seed: "int | None" = None) -> str:
    """``nnUNetv2_train DATASET CONFIG FOLD`` (nnU-Net's entry point with :func:`steps.demo_threads` torch threads,
    seeded with ``seed``), output in ``train_CONFIG_FOLD.log`` next to the model; returns the last pseudo Dice line
    (validation patches)."""
    from nnunet_ext.demos.steps import demo_threads, run_child, train_command

    shutil.rmtree(model / f"fold_{fold}", ignore_errors=True)
    log = model.parent / f"train_{model.name}_{fold}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [dataset_id, configuration, fold, "-tr", trainer, "-p", PLANS, "-device", "cpu"]
    cmd = train_command(argv, demo_threads(), seed)
    print(" ".join(["nnUNetv2_train", *map(str, argv)]), f"(log: {log})", flush=True)
    with open(log, "w") as fh:
        code = run_child(cmd, name="nnUNetv2_train", stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy())
    text = log.read_text(errors="replace")
    if code != 0:
        print(text[-2000:], file=sys.stderr)
        from nnunet_ext.demos.steps import StepFailed

        raise StepFailed(f"nnUNetv2_train {configuration} -tr {trainer} failed (exit {code}; log {log})")
    dice = [ln.split("Pseudo dice")[-1].strip() for ln in text.splitlines() if "Pseudo dice" in ln]
    val = [ln.split("Mean Validation Dice:")[-1].strip() for ln in text.splitlines() if "Mean Validation Dice" in ln]
    summary = f"last pseudo Dice {dice[-1] if dice else '?'}, mean validation Dice {val[-1] if val else '?'}"
    print(summary.replace("np.float32(", "").replace(")", ""))
    return summary


def tune_plans(plans_file: Path, patch=None, oversample: float | None = None) -> dict:
    """Demo-sized plans: the 3d_fullres patch set to ``patch`` (default :data:`PATCH_3D`) and, per configuration,
    ``oversample_foreground_percent`` = ``oversample`` (default :data:`OVERSAMPLE`) in its ``nnext_training`` block
    (the configuration's block wins over TinyPlanner's plans-level 1.0). Returns what was set.

    Why: TinyPlanner's 32 x 64 x 56 patch on these phantoms costs ~4 s per 3D training iteration on 2 loaded CPU
    cores (most of it nnU-Net's 3D augmentation), 16 x 32 x 32 about 7x less (nnU-Net predicts any image with it,
    sliding window). With every patch centred on foreground (TinyPlanner's 1.0) both networks, whose patches cover
    a whole slice / most of the head, never saw a tumour-free slice and predicted whole tumour on every slice of the
    test phantoms (measured: WT Dice 0.5, HD95 ~75 mm); nnU-Net's own 0.33 lets them see healthy tissue."""
    patch = list(patch or PATCH_3D)
    oversample = OVERSAMPLE if oversample is None else oversample
    plans = json.loads(plans_file.read_text())
    conf = plans["configurations"]["3d_fullres"]
    strides = np.prod(np.asarray(conf["architecture"]["arch_kwargs"]["strides"]), 0)
    if any(p % int(s) for p, s in zip(patch, strides)):
        raise ValueError(f"3D patch {patch} must be divisible by the network's total strides {strides.tolist()}")
    conf["patch_size"] = patch
    for c in ("2d", "3d_fullres"):
        block = plans["configurations"][c].setdefault("nnext_training", {})
        block["oversample_foreground_percent"] = oversample
    from nnunet_ext.io.atomic_write import write_json

    write_json(plans_file, plans, indent=4)
    return {"patch_3d": patch, "oversample_foreground_percent": oversample}


def region_metrics(ref: np.ndarray, seg_masks: dict, spacing_zyx) -> dict:
    """``{region: {"dice", "hd95"}}`` of boolean masks against the reference label map (HD95 in mm; an empty
    prediction against a non-empty reference gets the evaluation module's penalty distance)."""
    from nnunet_ext.evaluation.metrics import compute_metrics

    out = {}
    for tag, labels in REGIONS.items():
        m = compute_metrics(np.isin(ref, labels), seg_masks[tag], spacing_zyx)
        out[tag] = {"dice": float(m["dice"]), "hd95": float(m["hd95"])}
    return out


def overview_png(image, ref, fused, entropy, kernels: dict, path, title: str = "") -> int:
    """Three panels on the slice crossed by most kernels: FLAIR with the reference WT / TC / ET contours, FLAIR with
    the fused regions, the WT entropy (eq. 1, nats) with the kernels of every region crossing that slice.
    ``fused``: ``{tag: bool volume}``; ``kernels``: ``{tag: [{"start", "size"}, ...]}``. Returns the slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    from nnunet_ext.io.atomic_write import save_figure

    every = [k for ks in kernels.values() for k in ks]
    counts = [sum(k["start"][0] <= s < k["start"][0] + k["size"][0] for k in every) for s in range(image.shape[0])]
    z = int(np.argmax(counts)) if every else int(np.argmax(np.isin(ref, REGIONS["WT"]).sum((1, 2))))
    colours = {"WT": "yellow", "TC": "deepskyblue", "ET": "red"}
    fig, ax = plt.subplots(1, 3, figsize=(13, 4.5))
    for a, (name, masks) in zip(ax[:2], (("reference", {t: np.isin(ref, l) for t, l in REGIONS.items()}),
                                         ("fused prediction", fused))):
        a.imshow(image[z], cmap="gray")
        for tag, colour in colours.items():
            if masks[tag][z].any():
                a.contour(masks[tag][z], levels=[0.5], colors=colour, linewidths=1.2)
        a.set_title(f"{title}: {name} (slice {z})" if title and name == "reference" else
                    f"FLAIR, {name}{'' if title else f' (slice {z})'}", fontsize=9)
    im = ax[2].imshow(entropy[z], cmap="magma")
    for tag, ks in kernels.items():
        for k in ks:
            if k["start"][0] <= z < k["start"][0] + k["size"][0]:
                ax[2].add_patch(patches.Rectangle((k["start"][2] - 0.5, k["start"][1] - 0.5), k["size"][2],
                                                  k["size"][1], fill=False, edgecolor=colours.get(tag, "cyan"),
                                                  linewidth=1.5))
    ax[2].set_title("WT entropy of the projections (eq. 1) + kernels")
    fig.colorbar(im, ax=ax[2], fraction=0.046, label="WT projection entropy (nats)")
    if not any(m.any() for m in fused.values()):
        ax[1].text(0.5, 0.05, "nothing predicted", transform=ax[1].transAxes, ha="center", color="white",
                   bbox={"facecolor": "black", "alpha": 0.6, "pad": 2})
    for a in ax:
        a.axis("off")
    from matplotlib.lines import Line2D

    fig.legend(handles=[Line2D([], [], color=c, label=f"{t} (contour; kernel box on the map)")
                        for t, c in colours.items()], loc="lower center", ncols=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path, dpi=90, format="png")
    plt.close(fig)
    return z


def evaluate(raw: Path, pred: Path, pred3d: Path) -> dict:
    """Per-case and mean Dice / HD95 per region of the three methods on the test cases."""
    from nnunet_ext.io.imageio import read_image

    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (raw / "imagesTs").glob("*_0000.nii.gz"))
    per_case = {m: {} for m in METHODS}
    for c in cases:
        ref, geometry = read_image(raw / "labelsTs" / f"{c}.nii.gz")
        spacing = tuple(float(s) for s in geometry.spacing[::-1])
        seg3 = read_image(pred3d / f"{c}.nii.gz")[0]
        masks = {"2d_ensemble": {t: read_image(pred / f"{c}_p2d_{t}.nii.gz")[0] > 0.5 for t in REGIONS},
                 "3d_model": {t: np.isin(seg3, l) for t, l in REGIONS.items()},
                 "fused": {t: read_image(pred / f"{c}_prob_{t}.nii.gz")[0] > 0.5 for t in REGIONS}}
        for m in METHODS:
            per_case[m][c] = region_metrics(ref, masks[m], spacing)
    mean = {m: {t: {k: float(np.mean([per_case[m][c][t][k] for c in cases])) for k in ("dice", "hd95")}
                for t in REGIONS} for m in METHODS}
    return {"cases": cases, "mean": mean, "per_case": per_case}


def print_table(mean: dict) -> None:
    print(f"{'':12s}" + "".join(f"{t + ' Dice':>9s}{t + ' HD95':>9s}" for t in REGIONS))
    for m in METHODS:
        print(f"{m:12s}" + "".join(f"{mean[m][t]['dice']:9.3f}{mean[m][t]['hd95']:9.1f}" for t in REGIONS))
    print("(mean over the test cases; HD95 in mm)")


def run_glioma(args) -> int:
    """The demo (module docstring); 0 on success, else one line on stderr and the failing step's exit status."""
    from nnunet_ext.demos.steps import guarded

    return guarded("glioma", _run_glioma, args)


def _run_glioma(args) -> int:
    from nnunet_ext.demos.steps import DemoSteps, plan_settings, user_options
    from nnunet_ext.io.imageio import atomic_write_text, read_image
    from nnunet_ext.io.paths import dataset_folders, use_workspace

    root = (Path(args.o) / "glioma").resolve()
    if getattr(args, "overwrite", False) and root.exists():
        shutil.rmtree(root)
    dirs = use_workspace(root)
    steps = DemoSteps(root, TOTAL_STEPS, label="glioma")
    redone = False  # once a step is redone, every later step that uses it is redone too

    t = steps.start(f"brain phantoms: {args.n} training + {args.n_test} test cases, {SIZE[0]} x {SIZE[1]} x {SIZE[2]}")
    s_synth = {"n": args.n, "n_test": args.n_test, "seed": args.seed, "size": list(SIZE)}
    raw = dataset_folders(dirs["nnUNet_raw"]).get(RAW_ID)
    if steps.must_redo("synth", s_synth, raw is not None, redone):
        redone = True
        from nnunet_ext.synthetic.dataset import write_dataset

        raw = write_dataset("brain", RAW_ID, args.n, args.n_test, seed=args.seed, size=SIZE, name=DATASET_NAME,
                            overwrite=True, progress=False)
        steps.done("synth", s_synth)
    steps.stop("synth", t)

    folds = int(getattr(args, "folds", None) or FOLDS)
    stride, max_kernels = getattr(args, "stride", None) or STRIDE, getattr(args, "max_kernels", None) or MAX_KERNELS
    crop_kernels = getattr(args, "crop_kernels", None) or CROP_KERNELS
    schedule = {"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations,
                "num_val_iterations_per_epoch": 2}
    t = steps.start(f"nnext plan -pl TinyPlanner -c 2d 3d_fullres ({args.epochs} epochs x {args.iterations} "
                    f"iterations), {folds}-fold split")
    s_plan = {**s_synth, "epochs": args.epochs, "iterations": args.iterations, "patch_3d": list(PATCH_3D),
              "oversample": OVERSAMPLE, "folds": folds, "refiner_lr": REFINER_LR, **plan_settings(args)}
    pre = dirs["nnUNet_preprocessed"] / raw.name
    made = all((pre / f"{PLANS}_{c}").is_dir() for c in ("2d", "3d_fullres")) and (pre / "splits_final.json").is_file()
    if steps.must_redo("plan", s_plan, made, redone):
        redone = True
        from nnunet_ext.io.splits import default_splits
        from nnunet_ext.planners.plans_edit import write_options
        from nnunet_ext.planners.run import plan_and_preprocess

        shutil.rmtree(pre, ignore_errors=True)  # no preprocessed cases of an older dataset
        plan_and_preprocess(RAW_ID, "TinyPlanner", ["2d", "3d_fullres"], num_processes=1, schedule=schedule)
        print(f"plans tuned for the demo: {tune_plans(pre / f'{PLANS}.json')} (tune_plans)")
        write_options(pre / f"{PLANS}.json", [f"refiner.lr={REFINER_LR}"], ["3d_fullres"])
        if user_options(args):  # the user's --set, every configuration, after the demo's own
            write_options(pre / f"{PLANS}.json", user_options(args))
        cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTr").glob("*_0000.nii.gz"))
        atomic_write_text(pre / "splits_final.json", json.dumps(default_splits(cases, folds), indent=1))
        steps.done("plan", s_plan)
    steps.stop("plan", t)
    splits = json.loads((pre / "splits_final.json").read_text())
    results = dirs["nnUNet_results"]
    ens = "+".join(str(k) for k in range(folds))

    def train_step(name, dataset_id, dataset_name, config, trainer, fold_list, settings, earlier):
        nonlocal redone
        t = steps.start(f"{name}: nnUNetv2_train {dataset_id} {config} {{{','.join(map(str, fold_list))}}} -tr "
                        f"{trainer} -p {PLANS}")
        model = results / dataset_name / f"{trainer}__{PLANS}__{config}"
        s_train = {**settings, "trainer": trainer, "configuration": config, "folds": list(map(str, fold_list))}
        made = all((model / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in fold_list)
        if steps.must_redo(name, s_train, made, earlier):
            redone = True
            for f in fold_list:
                _train(dataset_id, config, trainer, model, f, seed=args.seed)
            steps.done(name, s_train)
        steps.stop(name, t)
        return s_train

    s_2d = train_step("train_2d", RAW_ID, raw.name, "2d", TRAINER_2D, list(range(folds)), s_plan, redone)
    m2_all = f"{RAW_ID},2d,{TRAINER_2D},{PLANS},{ens}"

    t = steps.start(f"nnext kernel-dataset (<= {crop_kernels} kernels per case and region, 2D fold ensemble) + "
                    "nnext plan of the crops (split grouped by source case)")
    s_crops = {**s_2d, "stride": stride, "crop_kernels": crop_kernels}
    crops = dataset_folders(dirs["nnUNet_raw"]).get(CROP_ID)
    crop_pre = dirs["nnUNet_preprocessed"] / crops.name if crops is not None else None
    if steps.must_redo("crops", s_crops, crop_pre is not None and (crop_pre / f"{PLANS}_3d_fullres").is_dir(), redone):
        redone = True
        from nnunet_ext.planners.plans_edit import write_options
        from nnunet_ext.planners.run import plan_and_preprocess

        _nnext("kernel-dataset", "-d", RAW_ID, "-t", CROP_ID, "--uncertainty-from", m2_all, "--stride", stride,
               "--max-kernels", crop_kernels, "-device", "cpu", "--overwrite", "--no-progress")
        crops = dataset_folders(dirs["nnUNet_raw"])[CROP_ID]
        crop_pre = dirs["nnUNet_preprocessed"] / crops.name
        shutil.rmtree(crop_pre, ignore_errors=True)
        plan_and_preprocess(CROP_ID, "TinyPlanner", ["3d_fullres"], num_processes=1, schedule=schedule)
        write_options(crop_pre / f"{PLANS}.json", [f"refiner.lr={REFINER_LR}"], ["3d_fullres"])
        steps.done("crops", s_crops)
    steps.stop("crops", t)

    s_ref = train_step("train_refiner", CROP_ID, crops.name, "3d_fullres", TRAINER_3D, list(range(folds)), s_crops,
                       redone)
    s_base = train_step("train_3d_baseline", RAW_ID, raw.name, "3d_fullres", TRAINER_3D, ["all"], s_plan, redone)
    m3_base = f"{RAW_ID},3d_fullres,{TRAINER_3D},{PLANS},all"

    common = ["--stride", stride, "--max-kernels", max_kernels, "--disable_tta", "-device", "cpu", "--overwrite"]
    s_oof = {**s_ref, **s_2d, "trainer": [TRAINER_2D, TRAINER_3D], "max_kernels": max_kernels}
    oof = [root / "oof" / f"fold_{k}" for k in range(folds)]
    t = steps.start(f"nnext predict -m kernel_refine per fold on the cases it held out (out of fold, {folds} folds)")
    if steps.must_redo("refine_oof", s_oof, all((d / "dataset.json").is_file() for d in oof), redone):
        redone = True
        for k, out in enumerate(oof):
            inputs = root / "oof" / f"input_{k}"
            shutil.rmtree(inputs, ignore_errors=True)
            inputs.mkdir(parents=True)
            for case in splits[k]["val"]:
                for f in (raw / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz"):
                    os.symlink(f, inputs / f.name)
            _nnext("predict", "-m", "kernel_refine", "-i", inputs, "-o", out, "--model2d",
                   f"{RAW_ID},2d,{TRAINER_2D},{PLANS},{k}", "--model3d",
                   f"{CROP_ID},3d_fullres,{TRAINER_3D},{PLANS},{k}", *common)
        steps.done("refine_oof", s_oof)
    steps.stop("refine_oof", t)

    fusion, pred, pred3d = root / "fusion.json", root / "pred", root / "pred3d"
    t = steps.start(f"nnext fusion-fit (PSO {PSO['particles']} particles x {PSO['iters']} iterations, "
                    "w2D + w3D = 1, global DSC) on the out-of-fold predictions")
    s_fusion = {**s_oof, **PSO}
    if steps.must_redo("fusion_fit", s_fusion, fusion.is_file(), redone):
        redone = True
        _nnext("fusion-fit", "--pred2d", *oof, "--pred3d", *oof, "-ref", raw / "labelsTr", "-o", fusion,
               "--particles", PSO["particles"], "--iters", PSO["iters"], "--sum-to-one", "--objective", "global",
               "--seed", args.seed, "--overwrite")
        steps.done("fusion_fit", s_fusion)
    steps.stop("fusion_fit", t)

    m3_ens = f"{CROP_ID},3d_fullres,{TRAINER_3D},{PLANS},{ens}"
    t = steps.start(f"test cases: -m kernel_refine --fusion {fusion.name} (fold ensembles), -m stock with the "
                    "whole-volume 3D baseline")
    s_test = {**s_fusion, **s_base}
    if steps.must_redo("predict_test", s_test, (pred / "dataset.json").is_file()
                       and (pred3d / "dataset.json").is_file(), redone):
        _nnext("predict", "-m", "kernel_refine", "-i", raw / "imagesTs", "-o", pred, "--fusion", fusion,
               "--model2d", m2_all, "--model3d", m3_ens, *common)
        _nnext("predict", "-m", "stock", "-i", raw / "imagesTs", "-o", pred3d, "-d", RAW_ID, "-c", "3d_fullres",
               "-tr", TRAINER_3D, "-p", PLANS, "-f", "all", "-device", "cpu", "--disable_tta", "--overwrite")
        steps.done("predict_test", s_test)
    steps.stop("predict_test", t)

    t = steps.start("evaluate: Dice and HD95 per region (2D spherical ensemble / 3D model / fused)")
    ev = evaluate(raw, pred, pred3d)
    print_table(ev["mean"])
    steps.stop("evaluate", t)

    t = steps.start("figure: FLAIR + regions, WT entropy, selected kernels")
    c = ev["cases"][0]
    flair = read_image(raw / "imagesTs" / f"{c}_0003.nii.gz")[0]
    ref = read_image(raw / "labelsTs" / f"{c}.nii.gz")[0]
    ent = read_image(pred / f"{c}_entropy_WT.nii.gz")[0]
    fused = {tg: read_image(pred / f"{c}_prob_{tg}.nii.gz")[0] > 0.5 for tg in REGIONS}
    log = json.loads((pred / f"{c}_kernels.json").read_text())
    kernels = {tg: log[tg]["kernels"] for tg in REGIONS if tg in log}
    wt = ev["per_case"]["fused"][c]["WT"]["dice"]
    z = overview_png(flair, ref, fused, ent, kernels, root / "overview.png", f"{c} (fused WT Dice {wt:.2f})")
    steps.stop("figure", t)

    summary = {"dataset": raw.name, "settings": s_test, "models": {"2d": m2_all, "refiner": m3_ens, "3d": m3_base},
               "mean": ev["mean"], "per_case": ev["per_case"], "cases": ev["cases"],
               "fusion": json.loads(fusion.read_text())["regions"], "overview_png": str(root / "overview.png"),
               "overview_slice": z, "timings_s": {**steps.timings, "total_s": round(sum(steps.timings.values()), 1)}}
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"\nglioma demo done in {summary['timings_s']['total_s']:.0f} s: "
          + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in steps.timings.items()))
    print(f"overview: {root / 'overview.png'}\nsummary:  {root / 'summary.json'}")
    return 0


def main(argv=None) -> int:
    from nnunet_ext.demos.defaults import KIND_DEFAULTS

    d = KIND_DEFAULTS["glioma"]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", default="nnext_demo")
    p.add_argument("-n", type=int, default=d["n"], help=f"training cases (default {d['n']})")
    p.add_argument("--n-test", type=int, default=d["n_test"])
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--iterations", type=int, default=d["iterations"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=FOLDS, help=f"cross-validation folds (default {FOLDS})")
    p.add_argument("--overwrite", action="store_true")
    return run_glioma(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
