"""``nnext demo nodule``: UGS-Net on multi-rater nodule phantoms, end to end (Yang & Wang).

Six numbered steps: [1] synth nodule phantoms (4 simulated raters) -> [2] ``nnext convert raters`` (rater-set
labels) -> [3] ``nnext plan`` (TinyPlanner, 2d) -> [4] plain ``nnUNetv2_train -tr UGSNetTrainer`` -> [5] ``nnext
predict -m mcm`` (X_S, HC, LC, MCM) -> [6] ``nnext evaluate-raters`` + one PNG per test case (the slice with the
largest rater union): CT with every rater's contour, X_S (green contour), predicted high-confidence (red) and
low-confidence (blue) regions. Everything lives in ``-o DIR/nodule`` (nnU-Net's env vars point there).

A re-run reuses a finished step only when its outputs exist and the settings it was made with (recorded by
:class:`nnunet_ext.demos.steps.DemoSteps`) match; otherwise it redoes the step and names the changed settings
(a step's settings include those of the steps before it). ``--overwrite`` deletes the folder first. Every step's
return code is checked (a failure stops the demo with exit 1). ``summary.json`` holds evaluate-raters' numbers
plus ``demo``: the settings, per-step wall ``timings_s`` and ``cpu_s`` (CPU seconds of the demo and its child
processes, which on a shared machine says more than wall time) and the load average at the end.

Speed: UGS-Net's self-attention is the cost on a CPU (three branches; at full resolution a 32x32 patch is 1024
tokens). The demo writes ``ugsnet.max_tokens=256`` into its plans (a 16x16 attention grid, upsampled back; ``nnext plan
--set``), which makes a training step about 4x cheaper; it is recorded with the step settings, and
``UGSNetTrainer`` writes it into the model's plans.json, from which ``-m mcm`` (or ``nnUNetv2_predict``) rebuilds
the network.
Default length ``demos.defaults.KIND_DEFAULTS["nodule"]`` (``--epochs`` / ``--iterations``); measured times in
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

RAW_ID, RATER_ID = 993, 994
N_RATERS = 4
DEMO_MAX_TOKENS = 256
TRAINER, PLANS = "UGSNetTrainer", "nnextTinyPlans"


def overview_png(image: np.ndarray, raters: np.ndarray, xs: np.ndarray, hc: np.ndarray, lc: np.ndarray,
                 path, title: str = "") -> int:
    """Draw the slice with the largest rater union; returns its index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ext.io.atomic_write import save_figure

    z = int(np.argmax(raters.any(0).sum((1, 2))))
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for ax in axes:
        ax.imshow(image[z], cmap="gray", vmin=-1000, vmax=200)
        ax.set_axis_off()
    colours = ["gold", "orange", "magenta", "cyan", "white", "lime"]
    for k, m in enumerate(raters):
        if m[z].any():
            axes[0].contour(m[z], levels=[0.5], colors=colours[k % len(colours)], linewidths=1)
    axes[0].set_title(f"{len(raters)} raters")
    overlay = np.zeros(image[z].shape + (4,))
    overlay[hc[z] > 0] = (1, 0, 0, 0.45)
    overlay[lc[z] > 0] = (0, 0.3, 1, 0.45)
    axes[1].imshow(overlay)
    if xs[z].any():
        axes[1].contour(xs[z], levels=[0.5], colors="lime", linewidths=1.5)
    axes[1].set_title("X_S (green), HC (red), LC (blue)")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90, format="png")
    plt.close(fig)
    return z


def run_nodule(args) -> int:
    """The six steps of the module docstring; ``args`` as resolved by ``nnext demo`` (``-o -n --n-test -c
    --epochs --iterations --seed --overwrite``). Returns the exit code (a failed step: one line on stderr)."""
    from nnunet_ext.demos.steps import guarded

    return guarded("nodule", _run_nodule, args)


def _run_nodule(args) -> int:
    from nnunet_ext.demos.steps import (
        DemoSteps,
        StepFailed,
        cpu_seconds,
        demo_threads,
        made_by_demo,
        plan_settings,
        run_child,
        run_nnext,
        train_command,
        user_options,
    )
    from nnunet_ext.errors import InputError
    from nnunet_ext.io.paths import dataset_folders, use_workspace

    root = (Path(args.o) / "nodule").resolve()
    if not made_by_demo(root):
        raise InputError(f"{root}: folder exists and was not made by nnext demo nodule; choose another -o")
    if getattr(args, "overwrite", False) and root.exists():
        shutil.rmtree(root)
    dirs = use_workspace(root)
    t_all = time.perf_counter()
    steps = DemoSteps(root, total=6, label="nodule")
    config, epochs, iterations = (
        args.c,
        args.epochs,
        args.iterations,
    )  # defaults: demos.defaults.KIND_DEFAULTS["nodule"]
    tokens = DEMO_MAX_TOKENS  # attention grid of the demo's UGS-Net (plans option; module docstring)

    t = steps.start(f"phantoms: {args.n} training + {args.n_test} test cases, {N_RATERS} raters")
    s_synth = {"n": args.n, "n_test": args.n_test, "seed": args.seed, "raters": N_RATERS}
    src = dataset_folders(dirs["nnUNet_raw"]).get(RAW_ID)
    if steps.must_redo("synth", s_synth, src is not None):
        from nnunet_ext.synthetic.dataset import write_dataset

        src = write_dataset("nodule", RAW_ID, args.n, args.n_test, seed=args.seed, name="DemoNodule",
                            progress=False, overwrite=True, raters=N_RATERS)
        steps.done("synth", s_synth)
    steps.stop("synth", t)

    t = steps.start("nnext convert raters (all raters of a case in one rater-set label map)")
    folder = dataset_folders(dirs["nnUNet_raw"]).get(RATER_ID)
    if steps.must_redo("convert", s_synth, folder is not None):
        run_nnext(["convert", "raters", "-i", src, "-d", RATER_ID, "--name", "DemoNoduleRaters", "--overwrite",
                   "--no-progress"])
        folder = dataset_folders(dirs["nnUNet_raw"])[RATER_ID]
        steps.done("convert", s_synth)
    steps.stop("convert", t)

    t = steps.start(f"nnext plan -pl TinyPlanner -c {config} ({epochs} x {iterations} iterations)")
    s_plan = {**s_synth, "config": config, "epochs": epochs, "iterations": iterations, "max_tokens": tokens,
              **plan_settings(args)}
    plans_file = dirs["nnUNet_preprocessed"] / folder.name / f"{PLANS}.json"
    if steps.must_redo("plan", s_plan, plans_file.is_file() and (plans_file.parent / f"{PLANS}_{config}").is_dir()):
        from nnunet_ext.planners.run import plan_and_preprocess

        shutil.rmtree(plans_file.parent, ignore_errors=True)  # no preprocessed cases of an older dataset
        plan_and_preprocess(RATER_ID, "TinyPlanner", [config], num_processes=1,
                            schedule={"num_epochs": epochs, "num_iterations_per_epoch": iterations})
        from nnunet_ext.planners.plans_edit import write_options

        write_options(plans_file, [f"ugsnet.max_tokens={tokens}", *user_options(args)], [config])  # the user's last
        steps.done("plan", s_plan)
    steps.stop("plan", t)

    t = steps.start(f"nnUNetv2_train {RATER_ID} {config} 0 -tr {TRAINER} -p {PLANS} -device cpu")
    model = dirs["nnUNet_results"] / folder.name / f"{TRAINER}__{PLANS}__{config}"
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    if steps.must_redo("train", s_plan, checkpoint.is_file()):
        shutil.rmtree(model, ignore_errors=True)
        cmd = train_command([RATER_ID, config, 0, "-tr", TRAINER, "-p", PLANS, "-device", "cpu"],
                            threads=demo_threads(), seed=args.seed)
        code = run_child(cmd, name="nnUNetv2_train", env=os.environ.copy())
        if code != 0 or not checkpoint.is_file():
            raise StepFailed(f"nnUNetv2_train failed (exit {code}; see its output above)")
        steps.done("train", s_plan)
    steps.stop("train", t)

    t = steps.start("nnext predict -m mcm (X_S, high / low-confidence masks, MCM)")
    pred = root / "prediction"
    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (folder / "imagesTs").glob("*_0000.nii.gz"))
    complete = all((pred / f"{c}{s}.nii.gz").is_file() for c in cases for s in ("", "_hc", "_lc"))
    if steps.must_redo("predict", s_plan, pred.is_dir() and complete):
        shutil.rmtree(pred, ignore_errors=True)
        run_nnext(["predict", "-m", "mcm", "-i", folder / "imagesTs", "-o", pred, "-d", RATER_ID, "-c", config,
                   "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", "--all-maps"])
        steps.done("predict", s_plan)
    steps.stop("predict", t)

    t = steps.start("nnext evaluate-raters + overview PNG per test case")
    run_nnext(["evaluate-raters", "-pred", pred, "-raters", folder / "labelsTs_raters", "-o", root / "summary.json",
               "--mcm", pred, "--images", folder / "imagesTs", "--kde-png", root / "hu_kde.png"])
    summary = json.loads((root / "summary.json").read_text())
    pngs = [_case_png(folder, pred, case, m, root / f"{case}.png") for case, m in summary["cases"].items()]
    steps.stop("evaluate", t)

    summary["demo"] = {**s_plan, "configuration": config, "model": str(model), "pngs": [str(p) for p in pngs],
                       "timings_s": {**steps.timings, "total_s": round(time.perf_counter() - t_all, 1)},
                       "cpu_s": {**steps.cpu, "total_s": round(cpu_seconds(), 1)}, "load_average": os.getloadavg()}
    from nnunet_ext.io.atomic_write import write_json

    write_json(root / "summary.json", summary)
    m = summary["mean"]
    print(f"\nDice vs rater 0 {m['dice_rater0']:.3f}, vs union {m['dice_union']:.3f}, vs intersection "
          f"{m['dice_intersection']:.3f}; HC Dice {m.get('dice_hc', float('nan')):.3f}, LC Dice "
          f"{m.get('dice_lc', float('nan')):.3f} (mean over {len(pngs)} test cases)")
    print(f"nodule demo done in {summary['demo']['timings_s']['total_s']:.0f} s: {root} (PNG per test case, "
          "summary.json, hu_kde.png)")
    return 0


def _case_png(folder: Path, pred: Path, case: str, m: dict, path: Path) -> Path:
    from nnunet_ext.io.imageio import read_image

    image = read_image(folder / "imagesTs" / f"{case}_0000.nii.gz", kind="image")[0]
    raters = np.stack([read_image(p, kind="label")[0] > 0
                       for p in sorted((folder / "labelsTs_raters").glob(f"{case}_rater*.nii.gz"))])
    xs, hc, lc = (read_image(pred / f"{case}{s}.nii.gz", kind="label")[0] for s in ("", "_hc", "_lc"))
    overview_png(image, raters, xs, hc, lc, path, f"{case}: Dice vs rater 0 {m['dice_rater0']:.2f}, "
                 f"HC {m.get('dice_hc', 0):.2f}, LC {m.get('dice_lc', 0):.2f}")
    return path
