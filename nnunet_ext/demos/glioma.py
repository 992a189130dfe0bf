"""``nnext demo glioma``: the glioma pipeline of Yang et al. 2025 on brain phantoms, end to end.

[1] synth brain phantoms -> [2] ``nnext plan`` (TinyPlanner, 2d + 3d_fullres, short schedule; 3D patch shrunk,
:func:`tune_plans`) -> [3] plain ``nnUNetv2_train ... 0`` of ``SphericalProjectionTrainer`` (2d, regions WT /
TC / ET) -> [4] ``MCDropoutTrainer`` (3d_fullres; the refinement model, here trained on whole phantoms rather than
on kernel crops to save a dataset, a plan and a training) -> [5] ``nnext predict -m kernel_refine`` on the
training cases (spherical ensemble, kernels, 3D model per kernel) -> [6] ``nnext fusion-fit`` on them -> [7]
``-m kernel_refine --fusion`` on the test cases and ``-m stock`` with the 3D model -> [8] Dice and HD95 per
region of the 2D ensemble, the 3D model and the fused result -> [9] ``overview.png`` (FLAIR with the reference
regions, the fused regions, the WT entropy map with the selected kernels of every region) and ``summary.json``
(metrics, fusion weights, per-step seconds).

Everything lives in ``-o DIR/glioma``. Steps are numbered; a finished step is reused on a re-run only when the
settings it was made with (:class:`nnunet_ext.demos.steps.DemoSteps`; a step's settings include those of the
steps before it) match, otherwise it is redone and the changed settings are named; ``--overwrite`` starts
afresh. Defaults (``nnunet_ext.demos.defaults.KIND_DEFAULTS["glioma"]``: 6 + 2 cases, 15 epochs x 20 iterations) are sized
so that both tiny networks leave the all-background state on the phantoms (measured: benchmarks/RESULTS.md).

Run it as ``nnext demo glioma`` or ``python -m nnunet_ext.demos.glioma [-o DIR]``; ``args.stride`` /
``args.max_kernels``, when present, override :data:`STRIDE` / :data:`MAX_KERNELS` (benchmarks/bench_glioma.py).
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
DATASET_NAME = "NnextDemoBrain"
PLANS = "nnextTinyPlans"
TRAINER_2D, TRAINER_3D = "SphericalProjectionTrainer", "MCDropoutTrainer"
SIZE = (40, 64, 64)  # phantom z, y, x voxels (3.5 x 3 x 3 mm)
STRIDE = 16  # origin grid: 4 x 4 per 64 x 64 slice, inside the brain ROI (the paper: 8 px on 256 x 256)
MAX_KERNELS = 4  # per case and region: keeps the CPU demo short (the paper has no cap)
PATCH_3D = (16, 32, 32)  # 3d_fullres patch (tune_plans)
OVERSAMPLE = 0.33  # foreground oversampling of both configurations (tune_plans; nnU-Net's default)
FOLD = "0"  # nnU-Net's final validation then predicts 2 of 6 training cases, not all (fold "all")
PSO = {"particles": 20, "iters": 30}
REGIONS = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
METHODS = ("2d_ensemble", "3d_model", "fused")
TOTAL_STEPS = 9


def _nnext(*args) -> None:
    from nnunet_ext.demos.steps import run_nnext

    run_nnext(list(args))


def _train(configuration: str, trainer: str, model: Path, seed: "int | None" = None) -> str:
    """``nnUNetv2_train`` (fold :data:`FOLD`; nnU-Net's entry point with :func:`steps.demo_threads` torch threads,
    seeded with ``seed``), output in ``train_CONFIG.log`` next to the model; returns the last pseudo Dice line
    (validation patches)."""
    from nnunet_ext.demos.steps import demo_threads, train_command

    shutil.rmtree(model, ignore_errors=True)
    log = model.parent / f"train_{configuration}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [RAW_ID, configuration, FOLD, "-tr", trainer, "-p", PLANS, "-device", "cpu"]
    cmd = train_command(argv, demo_threads(), seed)
    print(" ".join(["nnUNetv2_train", *map(str, argv)]), f"(log: {log})", flush=True)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy())
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        print(text[-2000:], file=sys.stderr)
        from nnunet_ext.demos.steps import StepFailed

        raise StepFailed(f"nnUNetv2_train {configuration} -tr {trainer} failed (exit {proc.returncode}; log {log})")
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
    from nnunet_ext.demos.steps import DemoSteps
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

    t = steps.start(f"nnext plan -pl TinyPlanner -c 2d 3d_fullres ({args.epochs} epochs x {args.iterations} iterations)")
    s_plan = {**s_synth, "epochs": args.epochs, "iterations": args.iterations, "patch_3d": list(PATCH_3D),
              "oversample": OVERSAMPLE}
    pre = dirs["nnUNet_preprocessed"] / raw.name
    made = all((pre / f"{PLANS}_{c}").is_dir() for c in ("2d", "3d_fullres"))
    if steps.must_redo("plan", s_plan, made, redone):
        redone = True
        from nnunet_ext.planners.run import plan_and_preprocess

        shutil.rmtree(pre, ignore_errors=True)  # no preprocessed cases of an older dataset
        plan_and_preprocess(RAW_ID, "TinyPlanner", ["2d", "3d_fullres"], num_processes=1,
                            schedule={"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations,
                                      "num_val_iterations_per_epoch": 2})
        print(f"plans tuned for the demo: {tune_plans(pre / f'{PLANS}.json')} (tune_plans)")
        steps.done("plan", s_plan)
    steps.stop("plan", t)

    results = dirs["nnUNet_results"] / raw.name
    trained, before_training = {}, redone  # the 2D and 3D trainings do not depend on each other
    for name, config, trainer in (("train_2d", "2d", TRAINER_2D), ("train_3d", "3d_fullres", TRAINER_3D)):
        t = steps.start(f"train {config}: nnUNetv2_train {RAW_ID} {config} {FOLD} -tr {trainer} -p {PLANS} -device cpu")
        model = results / f"{trainer}__{PLANS}__{config}"
        s_train = {**s_plan, "trainer": trainer, "configuration": config, "fold": FOLD}
        if steps.must_redo(name, s_train, (model / f"fold_{FOLD}" / "checkpoint_final.pth").is_file(),
                     before_training):
            redone = True
            _train(config, trainer, model, seed=args.seed)
            steps.done(name, s_train)
        trained[name] = s_train
        steps.stop(name, t)

    m2 = f"{RAW_ID},2d,{TRAINER_2D},{PLANS},{FOLD}"
    m3 = f"{RAW_ID},3d_fullres,{TRAINER_3D},{PLANS},{FOLD}"
    stride, max_kernels = getattr(args, "stride", None) or STRIDE, getattr(args, "max_kernels", None) or MAX_KERNELS
    common = ["--model2d", m2, "--model3d", m3, "--stride", stride, "--max-kernels", max_kernels, "--disable_tta",
              "-device", "cpu", "--overwrite"]
    s_fit = {**trained["train_2d"], **trained["train_3d"], "trainer": [TRAINER_2D, TRAINER_3D],
             "stride": stride, "max_kernels": max_kernels}
    fit, pred, pred3d, fusion = root / "fit", root / "pred", root / "pred3d", root / "fusion.json"

    t = steps.start(f"nnext predict -m kernel_refine on the {args.n} training cases (stride {stride}, "
                    f"<= {max_kernels} kernels per region)")
    if steps.must_redo("refine_train", s_fit, (fit / "dataset.json").is_file(), redone):
        redone = True
        _nnext("predict", "-m", "kernel_refine", "-i", raw / "imagesTr", "-o", fit, *common)
        steps.done("refine_train", s_fit)
    steps.stop("refine_train", t)

    t = steps.start(f"nnext fusion-fit (PSO {PSO['particles']} particles x {PSO['iters']} iterations, "
                    "w2D + w3D = 1) on the training cases")
    s_fusion = {**s_fit, **PSO}
    if steps.must_redo("fusion_fit", s_fusion, fusion.is_file(), redone):
        redone = True
        _nnext("fusion-fit", "--pred2d", fit, "--pred3d", fit, "-ref", raw / "labelsTr", "-o", fusion,
               "--particles", PSO["particles"], "--iters", PSO["iters"], "--sum-to-one", "--seed", args.seed,
               "--overwrite")
        steps.done("fusion_fit", s_fusion)
    steps.stop("fusion_fit", t)

    t = steps.start(f"test cases: -m kernel_refine --fusion {fusion.name}, and -m stock with the 3D model")
    if steps.must_redo("predict_test", s_fusion, (pred / "dataset.json").is_file()
                 and (pred3d / "dataset.json").is_file(), redone):
        _nnext("predict", "-m", "kernel_refine", "-i", raw / "imagesTs", "-o", pred, "--fusion", fusion, *common)
        _nnext("predict", "-m", "stock", "-i", raw / "imagesTs", "-o", pred3d, "-d", RAW_ID, "-c", "3d_fullres",
               "-tr", TRAINER_3D, "-p", PLANS, "-f", FOLD, "-device", "cpu", "--disable_tta", "--overwrite")
        steps.done("predict_test", s_fusion)
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

    summary = {"dataset": raw.name, "settings": s_fusion, "models": {"2d": m2, "3d": m3},
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
    p.add_argument("--overwrite", action="store_true")
    return run_glioma(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
