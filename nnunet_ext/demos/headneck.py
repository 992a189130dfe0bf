"""``nnext demo headneck``: click-prompt model on head-and-neck PET/CT phantoms, end to end (HN-UISeg, Chu 2026).

Eight numbered steps (:class:`nnunet_ext.demos.steps.DemoSteps`), everything in ``-o DIR/headneck`` (nnU-Net's env
vars point there):

1. ``nnext synth headneck`` (``-n`` training + ``--n-test`` test cases, CT + PET, GTVp / GTVn);
2. ``nnext plan -pl TinyPlanner -c C`` with ``--iterations`` per epoch and the paper's AdamW + cosine schedule
   (:func:`training_options`), plus one plans file per stage with that stage's epochs (:func:`stage_epochs`:
   ``--epochs`` for stage 1, a quarter for stage 2, half for stage 3; :func:`write_stage_plans`);
3.-5. the paper's three stages (Chu 2026 sec. 2.2), plain ``nnUNetv2_train``, each started from the previous one
   with ``-pretrained_weights``: stage 1 ``ClickPromptTrainer`` (clicks simulated from the reference, p = 0.5),
   stage 2 ``ClickPromptAutoTrainer`` (automatic, prompts zero; one dataset here, the paper's private cohort is
   not separate), stage 3 ``ClickPromptErrorTrainer`` (clicks in its own errors, round by round);
6. ``nnext clicks-eval --protocol errors --max-clicks 3`` of each stage's model on the test cases: the automatic
   prediction, then per step one click in the largest not-yet-clicked error component of each class;
   ``dice_vs_clicks_stages.png`` draws the stage-3 curve beside stage 1's (and stage 2's);
7. ``nnext predict -m interactive --n-samples N`` (MC dropout + TTA) of the first test case with the stage-3
   model without and with the clicks the errors protocol placed for it;
8. ``before_after.png`` (CT with reference / predicted contours and the clicks, and the entropy map, before and
   after the clicks) and ``summary.json`` (``dice_vs_clicks`` = ``{class: {clicks: Dice}}`` of the final,
   stage-3 model, ``dice_vs_clicks_per_stage`` the same per stage, per-step seconds, load average).

A step is reused on a re-run only when its outputs exist and the settings it was made with (hidden records,
including the settings of the steps before it) match; otherwise it is redone and the changed settings are
named. ``--overwrite`` starts afresh. A failing nnext command or ``nnUNetv2_train`` stops the demo with one
line (exit 1).

Configuration: ``3d_fullres`` by default (``nnunet_ext.demos.defaults.KIND_DEFAULTS["headneck"]``), 40 training
phantoms, 10 x 50 iterations for stage 1 (then 2 x 50 and 5 x 50; 305 s on 2 idle cores, seed 0), with the plans
options of :func:`training_options` (click radius 1.5 voxels of the phantoms' 4 x 3 x 3 mm grid, AdamW lr 3e-3). Why
3D: a 2D network sees one slice, so a click corrects at most one slice of a lesion (a phantom node spans 3-6 slices)
and the 3D Dice barely moves (2d demo, radius 1, seeds 0 / 1: GTVn +0.011 / +0.010 after 3 clicks); the 3D stage-3
model corrects whole nodes (seed 0 with the default threads: GTVn 0.638 -> 0.737 after 3 clicks; seeds 0-4, one
thread but seed 2's two: +0.205 / +0.056 / +0.042 / 0.000 / +0.200, with 8 training phantoms). Why 40 phantoms: a
model memorises 8, so its errors on them contain no class confusion (a node segmented as GTVp: 0 of 222 stage-3
training clicks, 12 of 157 on unseen phantoms) and stage 3 never trains the click that corrects one; at test time
that click made GTVp worse. With 40 the automatic model confuses less and after 3 clicks the models end higher (mean
of seeds 0-4: GTVp 0.886 against 0.829, GTVn 0.731 against 0.569; gains pooled GTVp +0.021, GTVn +0.092, no drop in
any seed), for ~10 s more. Why radius 1.5 (session 11, seeds 0-7): it gains more from GTVn clicks than radius 1
(pooled +0.171 against +0.084 after 3 clicks, paired difference +0.087, p 0.001), drops in 1 seed of 8 against 3,
and the Dice after 1-3 clicks is equal or higher; its automatic GTVn (no clicks) is lower (-0.080, p 0.016). ``-c
2d`` still runs (``--epochs 40`` suits it). See benchmarks/RESULTS.md, issue 18, "Session 8", "Session 9" and
"Session 11".

Training is started through nnU-Net's training entry point (:func:`train_command`) with torch, numpy and random
seeded from ``--seed`` (nnU-Net seeds nothing; tiny runs either learn or stay at background by chance, a seeded
CPU run is repeatable) with ``OMP_NUM_THREADS`` torch threads, 2 when unset (:data:`TRAIN_THREADS`, at most the
usable CPUs; :func:`nnunet_ext.demos.steps.demo_threads`): ``nnUNetv2_train -device cpu`` sets torch to every CPU
core regardless, which on a shared machine is ~15x slower per operation (measured).

``run_headneck(args)`` takes ``nnext demo``'s resolved arguments (``-o -n --n-test -c --epochs --iterations
--n-samples --seed --overwrite``); ``python -m nnunet_ext.demos.headneck [-o DIR]`` runs it with the same
defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

RAW_ID = 995
RAW_NAME = "NnextDemoHeadNeck"
PLANS = "nnextTinyPlans"
#: the paper's three stages: (name, trainer)
STAGES = (("stage1", "ClickPromptTrainer"), ("stage2", "ClickPromptAutoTrainer"), ("stage3", "ClickPromptErrorTrainer"))
TRAINER = STAGES[-1][1]  # the final model
MAX_CLICKS = 3
PROTOCOL = "errors"
CLASSES = {1: "GTVp", 2: "GTVn"}
#: torch threads of the trainings when ``OMP_NUM_THREADS`` is unset (at most the usable CPUs): the 3D patches gain
#: from a second core (:func:`nnunet_ext.demos.steps.demo_threads`)
TRAIN_THREADS = 2

from nnunet_ext.demos.headneck_figures import before_after_png, stages_png  # noqa: E402
from nnunet_ext.demos.steps import StepFailed, user_options  # noqa: E402  (StepFailed: a step failed, one line)
from nnunet_ext.demos.steps import run_nnext as _nnext  # noqa: E402


def _train(argv: list, seed: "int | None" = None) -> None:
    """``nnUNetv2_train ARGV`` (``OMP_NUM_THREADS`` torch threads when that is set, else :data:`TRAIN_THREADS`,
    seeded with ``seed``); a non-zero exit status -> :class:`StepFailed`."""
    from nnunet_ext.demos.steps import demo_threads, run_child, train_command

    cmd = train_command(argv, demo_threads(TRAIN_THREADS), seed)
    code = run_child(cmd, name="nnUNetv2_train", env=os.environ.copy())
    if code:
        raise StepFailed(f"nnUNetv2_train failed (exit {code}; see its output above)")


#: click stamp radius of the demo, in voxels of the network grid (the phantoms' 4 x 3 x 3 mm grid): a ball of 19
#: voxels (4.5 mm in-plane). The paper's "radius of three voxels" (~3 mm at HECKTOR's ~1 mm CT spacing) would be
#: 9 mm here, larger than a phantom node (18-144 voxels against the ball's 123), and node errors were then rarely
#: clicked in 2D and, but for the largest node, never in 3D (session 8). Radius 1 (7 voxels, 3 mm) was the default
#: until session 11; 1.5 gains more from GTVn clicks (seeds 0-7) with fewer drops and the same or higher Dice after
#: each click, at a lower automatic GTVn (benchmarks/RESULTS.md, issue 18, "Session 11"). Radius 2 (33 voxels)
#: gains more still, but overshoots (a drop, false nodes).
CLICK_RADIUS = 1.5
#: smallest error component that gets a click, mm^3 (``clicks.min_error_mm3``): 6 voxels of 36 mm^3, about the
#: radius-1 ball, so that errors on the smallest nodes (18 voxels) still get clicks; the option's default (the
#: ball's own volume, 19 voxels) would leave them out
MIN_ERROR_MM3 = 216.0
#: AdamW learning rate of the demo (the paper gives none; the option's default is 1e-3)
ADAMW_LR = 0.003


def training_options(epochs: int) -> list:
    """The demo's plans options (``nnext plan --set``): the paper's AdamW + cosine schedule with a warm-up of a
    tenth of the epochs (at least 1; the paper's 10 warm-up epochs would be the demo's whole stage 1), lr
    :data:`ADAMW_LR`, the click radius :data:`CLICK_RADIUS` and the smallest clicked error
    :data:`MIN_ERROR_MM3`. Why 3e-3 (not a controlled comparison): with the option's 1e-3 the tiny 3D network's
    stage 1 reached GTVp 0.28 after 12 x 50 iterations in ``bench_interactive`` (3 seeds); with 3e-3 the demo's
    stage 1 reaches 0.59-0.87 after 10 x 50 (seeds 0-2, other phantoms of the same generator). nnU-Net's SGD (lr
    0.05 in the tiny plans) left the tiny 2D network at background after 30 x 50 iterations in 2 of 3 runs; AdamW
    segmented GTVp."""
    return ["optimizer.name=adamw", f"optimizer.warmup_epochs={max(1, int(epochs) // 10)}",
            f"optimizer.adamw_lr={ADAMW_LR}", f"clicks.radius={CLICK_RADIUS}",
            f"clicks.min_error_mm3={MIN_ERROR_MM3}"]


def stage_epochs(epochs: int) -> dict:
    """Epochs per stage: stage 1 (pre-training with reference clicks) ``epochs``, stage 2 (automatic fine-tuning)
    a quarter, stage 3 (interactive fine-tuning, ~1.6 x the cost per iteration: its click rounds) half, each at
    least 1. The paper trains every stage 300 epochs; the demo shortens the stages, not their number."""
    return {"stage1": int(epochs), "stage2": max(1, int(epochs) // 4), "stage3": max(1, int(epochs) // 2)}


def stage_plans_name(stage: str) -> str:
    return PLANS if stage == "stage1" else f"{PLANS}{stage.capitalize()}"


def write_stage_plans(plans_file: Path, config: str, epochs: int) -> None:
    """Beside ``plans_file`` (stage 1's), the plans of stages 2 and 3: the same plans and preprocessed data with
    that stage's ``num_epochs`` and AdamW warm-up (a tenth of its epochs) in ``nnext_training``. Every stage's
    plans say ``final_validation: false``: the demo evaluates its test phantoms (step 6), and nnU-Net's
    validation of the fold's 8 validation phantoms after each stage took ~70 s of the 6 minutes."""
    from nnunet_ext.io.imageio import atomic_write_text

    base = json.loads(plans_file.read_text())
    base["configurations"][config].setdefault("nnext_training", {})["final_validation"] = False
    atomic_write_text(plans_file, json.dumps(base, indent=4))
    for stage, n in stage_epochs(epochs).items():
        if stage == "stage1":
            continue
        plans = json.loads(json.dumps(base))
        plans["plans_name"] = stage_plans_name(stage)
        block = plans["configurations"][config].setdefault("nnext_training", {})
        block["num_epochs"] = n
        block.setdefault("optimizer", {})["warmup_epochs"] = max(1, n // 10)
        atomic_write_text(plans_file.with_name(f"{stage_plans_name(stage)}.json"), json.dumps(plans, indent=4))


def _load_average() -> "float | None":
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_headneck(args) -> int:
    """The demo (see the module docstring); 0 on success, 1 with one line on stderr when a step fails."""
    from nnunet_ext.demos.steps import guarded

    return guarded("headneck", _run, args)


def _run(args) -> int:
    from nnunet_ext.demos.steps import DemoSteps, demo_threads
    from nnunet_ext.io.paths import use_workspace

    root = (Path(args.o) / "headneck").resolve()
    if args.overwrite and root.exists():
        shutil.rmtree(root)
    dirs = use_workspace(root)
    steps = DemoSteps(root, total=8, label="headneck")
    t0, load0 = time.perf_counter(), _load_average()
    raw = dirs["nnUNet_raw"] / f"Dataset{RAW_ID}_{RAW_NAME}"
    out = root / "results"
    config = args.c

    s_synth = {"n": args.n, "n_test": args.n_test, "seed": args.seed}
    t = steps.start(f"head-and-neck PET/CT phantoms: {args.n} training + {args.n_test} test cases (nnext synth)")
    if steps.must_redo("synth", s_synth, (raw / "dataset.json").is_file()):
        _nnext(["synth", "headneck", "-d", RAW_ID, "-n", args.n, "--n-test", args.n_test, "--seed", args.seed,
                "--name", RAW_NAME, "--overwrite", "--no-progress"])
        steps.done("synth", s_synth)
    steps.stop("synth", t)

    options = training_options(args.epochs) + user_options(args)  # a user's --set after the demo's: it wins
    s_plan = {**s_synth, "config": config, "epochs": args.epochs, "iterations": args.iterations,
              "options": options}
    t = steps.start(f"nnext plan -pl TinyPlanner -c {config} ({args.epochs} x {args.iterations} iterations, "
                    f"--set {' --set '.join(options)})")
    plans_file = dirs["nnUNet_preprocessed"] / raw.name / f"{PLANS}.json"
    if steps.must_redo("plan", s_plan, plans_file.is_file() and (plans_file.parent / f"{PLANS}_{config}").is_dir()):
        shutil.rmtree(plans_file.parent, ignore_errors=True)  # no preprocessed cases of an older dataset
        # as many preprocessing processes as training threads (2 on 2 idle cores: 10.8 s against 11.5-13.4 s)
        _nnext(["plan", "-d", RAW_ID, "-pl", "TinyPlanner", "-c", config, "--epochs", args.epochs,
                "--iterations", args.iterations, "-np", demo_threads(TRAIN_THREADS),
                *[a for o in options for a in ("--set", o)]])
        write_stage_plans(plans_file, config, args.epochs)
        steps.done("plan", s_plan)
    steps.stop("plan", t)

    s_prev = dict(s_plan)
    results = dirs["nnUNet_results"] / raw.name
    epochs = stage_epochs(args.epochs)
    previous, redone = None, False
    for stage, trainer in STAGES:
        plans = stage_plans_name(stage)
        s_stage = {**s_prev, "stage": stage, "stage_epochs": epochs[stage]}
        model_dir = results / f"{trainer}__{plans}__{config}"
        extra = [] if previous is None else ["-pretrained_weights", previous]
        t = steps.start(f"nnUNetv2_train {RAW_ID} {config} 0 -tr {trainer} -p {plans} -device cpu ({stage}, "
                        f"{epochs[stage]} x {args.iterations}{', from the previous stage' if extra else ''})")
        if steps.must_redo(f"train_{stage}", s_stage, (model_dir / "fold_0" / "checkpoint_final.pth").is_file(),
                           earlier_redone=redone):  # a retrained stage retrains the stages after it
            redone = True
            shutil.rmtree(model_dir, ignore_errors=True)
            _train([RAW_ID, config, "0", "-tr", trainer, "-p", plans, "-device", "cpu", *extra], seed=args.seed)
            steps.done(f"train_{stage}", s_stage)
        steps.stop(f"train_{stage}", t)
        previous, s_prev = model_dir / "fold_0" / "checkpoint_final.pth", s_stage

    s_eval = {**s_prev, "protocol": PROTOCOL, "max_clicks": MAX_CLICKS}
    t = steps.start(f"nnext clicks-eval --protocol {PROTOCOL} --max-clicks {MAX_CLICKS} of each stage "
                    f"({args.n_test} test cases)")
    if steps.must_redo("clicks_eval", s_eval, all((out / f"clicks_eval_{st}" / "summary.json").is_file()
                                                  for st, _ in STAGES), earlier_redone=redone):
        redone = True
        for stage, trainer in STAGES:
            _nnext(["clicks-eval", "-i", raw / "imagesTs", "-ref", raw / "labelsTs", "-o", out / f"clicks_eval_{stage}",
                    "-d", RAW_ID, "-c", config, "-tr", trainer, "-p", stage_plans_name(stage), "-f", "0",
                    "-device", "cpu", "--protocol", PROTOCOL, "--max-clicks", MAX_CLICKS, "--save-steps",
                    "--seed", args.seed, "--overwrite"])
        steps.done("clicks_eval", s_eval)
    steps.stop("clicks_eval", t)
    evald = out / "clicks_eval_stage3"
    model = ["-d", RAW_ID, "-c", config, "-tr", TRAINER, "-p", stage_plans_name("stage3"), "-f", "0", "-device",
             "cpu"]

    case = sorted(p.name for p in (raw / "labelsTs").glob("*.nii.gz"))[0][: -len(".nii.gz")]
    s_pred = {**s_eval, "n_samples": args.n_samples, "case": case}
    single = out / "single"
    t = steps.start(f"nnext predict -m interactive --n-samples {args.n_samples} of {case}: before / after its clicks")
    done = all((single / s / f"{case}{e}").is_file() for s in ("before", "after")
               for e in (".nii.gz", "_uncertainty.nii.gz"))
    if steps.must_redo("predict", s_pred, done and (out / "clicks.json").is_file(), earlier_redone=redone):
        shutil.rmtree(single, ignore_errors=True)
        clicks = _demo_clicks(raw, evald, case)
        from nnunet_ext.io.atomic_write import copy_file, write_json

        write_json(out / "clicks.json", {case: clicks}, indent=1)
        (single / "in").mkdir(parents=True)
        for f in (raw / "imagesTs").glob(f"{case}_*.nii.gz"):
            copy_file(f, single / "in" / f.name)
        n = ["--n-samples", args.n_samples, "--seed", args.seed]
        _nnext(["predict", "-m", "interactive", "-i", single / "in", "-o", single / "before", *model, *n])
        _nnext(["predict", "-m", "interactive", "-i", single / "in", "-o", single / "after", *model, *n,
                "--clicks", out / "clicks.json"])
        steps.done("predict", s_pred)
    steps.stop("predict", t)

    t = steps.start("before_after.png (contours, clicks, entropy) + summary.json")
    result = _figure_and_summary(raw, out, evald, single, case, args)
    steps.stop("figure", t)
    result["plans_set"] = user_options(args)
    result["timings_s"] = {**steps.timings, "total_s": round(time.perf_counter() - t0, 1)}
    result["load_average_1min"] = {"start": load0, "end": _load_average()}
    from nnunet_ext.io.imageio import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("dice_vs_clicks", "timings_s", "load_average_1min")}, indent=2))
    print(f"\nheadneck demo done in {result['timings_s']['total_s']:.0f} s: {out / 'before_after.png'}, "
          f"{out / 'dice_vs_clicks_stages.png'}, {out / 'summary.json'}")
    return 0


def _demo_clicks(raw: Path, evald: Path, case: str) -> list:
    """The clicks the errors protocol placed for ``case`` in step 6 (``clicks-eval --save-steps`` writes them), as
    clicks JSON entries (voxel x, y, z)."""
    path = evald / "steps" / f"{case}_clicks.json"
    if not path.is_file():
        raise StepFailed(f"{path}: clicks of the evaluation missing (rerun with --overwrite)")
    return json.loads(path.read_text())


def _figure_and_summary(raw: Path, out: Path, evald: Path, single: Path, case: str, args) -> dict:
    from nnunet_ext.evaluation.metrics import compute_metrics
    from nnunet_ext.io.imageio import read_image

    ref, geometry = read_image(raw / "labelsTs" / f"{case}.nii.gz", kind="label")
    ct, _ = read_image(single / "in" / f"{case}_0000.nii.gz", kind="image")
    seg = {s: read_image(single / s / f"{case}.nii.gz", kind="label")[0] for s in ("before", "after")}
    unc = {s: read_image(single / s / f"{case}_uncertainty.nii.gz")[0] for s in ("before", "after")}
    clicks = json.loads((out / "clicks.json").read_text())[case]
    zyx = [(c["point"][2], c["point"][1], c["point"][0], c["positive"]) for c in clicks]
    dice = {s: {name: round(float(compute_metrics(ref == v, seg[s] == v, geometry.spacing[::-1])["dice"]), 4)
                for v, name in CLASSES.items()} for s in seg}
    z = before_after_png(ct, ref, seg["before"], seg["after"], unc["before"], unc["after"], zyx,
                         out / "before_after.png",
                         f"{case}: {len(clicks)} simulated clicks ({PROTOCOL} protocol), "
                         f"{args.n_samples} MC/TTA passes")
    per_stage = {}
    for stage, _ in STAGES:
        mean = json.loads((out / f"clicks_eval_{stage}" / "summary.json").read_text())["mean"]
        per_stage[stage] = {c: {s: round(v["dice"], 4) for s, v in d.items()} for c, d in mean.items()}
    stages_png(per_stage, out / "dice_vs_clicks_stages.png")
    return {"configuration": args.c, "epochs": args.epochs, "iterations": args.iterations,
            "stage_epochs": stage_epochs(args.epochs),
            "dice_vs_clicks": per_stage["stage3"], "dice_vs_clicks_per_stage": per_stage,
            "before_after": {"case": case, "slice": z, "clicks": len(clicks), "dice": dice,
                             "mean_entropy": {s: round(float(np.mean(u)), 5) for s, u in unc.items()}},
            "outputs": [str(out / "dice_vs_clicks_stages.png"), str(out / "before_after.png"),
                        str(evald / "clicks_eval.csv")]}


def _parser() -> argparse.ArgumentParser:
    from nnunet_ext.demos.defaults import KIND_DEFAULTS

    d = KIND_DEFAULTS["headneck"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", default="nnext_demo")
    p.add_argument("-n", type=int, default=d["n"])
    p.add_argument("--n-test", type=int, default=d["n_test"])
    p.add_argument("-c", default=d["c"], choices=("2d", "3d_fullres"))
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--iterations", type=int, default=d["iterations"])
    p.add_argument("--n-samples", type=int, default=d["n_samples"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    return p


if __name__ == "__main__":
    raise SystemExit(run_headneck(_parser().parse_args()))
