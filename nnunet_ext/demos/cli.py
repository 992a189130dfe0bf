"""``nnext demo``: the whole cycle on a synthetic chest CT dataset, from nothing but the install.

synth (chest phantoms) -> ``nnext plan`` (TinyPlanner) -> plain ``nnUNetv2_train -tr MCDropoutTrainer`` ->
``nnext predict -m tta_mc`` (MC dropout + TTA, entropy map) -> ``nnext evaluate`` (Dice, HD95, NSD,
calibration) -> an overview PNG per test case and ``summary.json``. Everything lives in ``-o DIR`` (nnU-Net's
env vars point there). Every option is checked before the first step. A finished step is reused when the demo
is run again only if the settings it was made with (recorded in ``DIR/.nnext_demo_<step>.json``; a step's
settings include those of the steps before it) match; otherwise it is redone and the changed settings are
named. ``--overwrite`` starts afresh.

The demo trains the ``2d`` configuration by default: on 2 CPU cores the tiny 2D network segments the
phantoms' tumours (validation Dice ~0.8) after 30 x 50 iterations in about a minute, while the tiny 3D network
still predicts background after 600 iterations (measured; see benchmarks/RESULTS.md). ``-c 3d_fullres``
runs the same demo in 3D (give it far more ``--epochs``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

DATASET_ID = 990
TRAINER, PLANS = "MCDropoutTrainer", "nnextTinyPlans"

from nnunet_ext.demos.defaults import KIND_DEFAULTS, KIND_HELP, MAX_CASES  # noqa: E402
from nnunet_ext.demos.steps import user_options  # noqa: E402


def add_arguments(parser) -> None:
    from nnunet_ext.argtypes import int_at_least

    def default(key):
        return ", ".join(f"{k} {d[key]}" for k, d in KIND_DEFAULTS.items() if d[key] is not None)

    parser.add_argument("kind", nargs="?", default="chest", choices=tuple(KIND_DEFAULTS), help=KIND_HELP)
    parser.add_argument("-o", default="nnext_demo", help="working folder (default ./nnext_demo; kinds other than "
                                                         "chest work in DIR/<kind>)")
    parser.add_argument("-n", type=int_at_least(5), default=None,
                        help=f"training cases (>= 5 for nnU-Net's 5-fold split; default {default('n')})")
    parser.add_argument(
        "--n-test", type=int_at_least(1), default=None, help=f"test cases (default {default('n_test')})"
    )
    parser.add_argument("-c", default=None, choices=["2d", "3d_fullres"],
                        help=f"configuration (default {default('c')}; glioma trains both)")
    parser.add_argument(
        "--epochs", type=int_at_least(1), default=None, help=f"training epochs (default {default('epochs')})"
    )
    parser.add_argument("--iterations", type=int_at_least(1), default=None,
                        help=f"iterations per epoch (default {default('iterations')})")
    parser.add_argument("--n-samples", type=int_at_least(2), default=None,
                        help="MC/TTA passes at prediction (default 8; >= 2, one pass has no spread)")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="training option written into the demo's plans after the demo's own (as nnext plan "
                             "--set), e.g. --set clicks.radius=2; repeatable. Recorded with the plan step's "
                             "settings: a changed --set redoes the plan and every step after it")
    parser.add_argument("--overwrite", action="store_true", help="delete the working folder first")


def resolve_kind_defaults(args):
    """Fill the options left unset with ``args.kind``'s defaults; refuse options the kind has no use for.
    Everything is checked here, before any step runs."""
    from nnunet_ext.errors import InputError

    kind = getattr(args, "kind", "chest") or "chest"
    for key, value in KIND_DEFAULTS[kind].items():
        if value is None and getattr(args, key, None) is not None:
            raise InputError(f"nnext demo {kind}: -{'-' if len(key) > 1 else ''}{key.replace('_', '-')} does not "
                             f"apply ({kind} trains its own configurations)")
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.n > MAX_CASES or args.n_test > MAX_CASES:
        raise InputError(f"-n / --n-test must be <= {MAX_CASES} for the demo, got {args.n} / {args.n_test}")
    return args


def run(args) -> int:
    from nnunet_ext.demos.steps import made_by_demo
    from nnunet_ext.errors import InputError
    from nnunet_ext.io.integrity import check_output_dir

    # every option is checked before the first step (argparse checks the ranges)
    args = resolve_kind_defaults(args)
    from nnunet_ext.planners.plans_edit import check_assignments

    check_assignments(user_options(args))
    kind = args.kind
    root = Path(args.o).resolve()
    check_output_dir(root, "demo working folder (-o)")
    if kind != "chest":
        check_output_dir(root / kind, f"demo {kind} working folder (-o/{kind})")
        if not made_by_demo(root / kind):
            raise InputError(f"{root / kind}: folder exists and was not made by nnext demo {kind}; choose another -o")
        if kind == "nodule":
            from nnunet_ext.demos.nodule import run_nodule as run_kind
        elif kind == "glioma":
            from nnunet_ext.demos.glioma import run_glioma as run_kind
        else:
            from nnunet_ext.demos.headneck import run_headneck as run_kind
        return run_kind(args)
    if not made_by_demo(root):
        raise InputError(f"{root}: folder exists and was not made by nnext demo; choose another -o")
    if args.overwrite and root.exists():
        shutil.rmtree(root)
    from nnunet_ext.demos.steps import guarded

    return guarded("", lambda a: _run_chest(a, root), args)


def _run_chest(args, root: Path) -> int:
    from nnunet_ext.demos.steps import (
        DemoSteps,
        StepFailed,
        demo_threads,
        plan_settings,
        run_child,
        run_nnext,
        train_command,
    )
    from nnunet_ext.io.paths import dataset_folders, use_workspace
    from nnunet_ext.synthetic.dataset import write_dataset

    config = args.c
    dirs = use_workspace(root)
    steps = DemoSteps(root, total=6)

    t = steps.start(f"synthetic chest CT phantoms: {args.n} training + {args.n_test} test cases")
    s_synth = {"n": args.n, "n_test": args.n_test, "seed": args.seed}
    raw = dataset_folders(dirs["nnUNet_raw"]).get(DATASET_ID)
    if steps.must_redo("synth", s_synth, raw is not None):
        raw = write_dataset("chest", DATASET_ID, args.n, args.n_test, seed=args.seed, name="NnextDemoChest",
                            overwrite=True)
        steps.done("synth", s_synth)
    steps.stop("synth", t)

    t = steps.start("plan + preprocess with TinyPlanner (nnext plan)")
    s_plan = {**s_synth, "config": config, "epochs": args.epochs, "iterations": args.iterations,
              **plan_settings(args)}
    plans_file = dirs["nnUNet_preprocessed"] / raw.name / f"{PLANS}.json"
    if steps.must_redo("plan", s_plan, plans_file.is_file() and (plans_file.parent / f"{PLANS}_{config}").is_dir()):
        from nnunet_ext.planners.run import plan_and_preprocess

        shutil.rmtree(plans_file.parent, ignore_errors=True)  # no preprocessed cases of an older dataset
        plan_and_preprocess(DATASET_ID, "TinyPlanner", [config], num_processes=1,
                            schedule={"num_epochs": args.epochs, "num_iterations_per_epoch": args.iterations})
        if user_options(args):
            from nnunet_ext.planners.plans_edit import write_options

            write_options(plans_file, user_options(args), [config])
        steps.done("plan", s_plan)
    steps.stop("plan", t)

    t = steps.start(f"train: nnUNetv2_train {DATASET_ID} {config} 0 -tr {TRAINER} -p {PLANS} -device cpu")
    model = dirs["nnUNet_results"] / raw.name / f"{TRAINER}__{PLANS}__{config}"
    if steps.must_redo("train", s_plan, (model / "fold_0" / "checkpoint_final.pth").is_file()):
        shutil.rmtree(model, ignore_errors=True)  # nnU-Net's training entry point, seeded, OMP_NUM_THREADS threads
        cmd = train_command([DATASET_ID, config, "0", "-tr", TRAINER, "-p", PLANS, "-device", "cpu"],
                            demo_threads(), args.seed)
        if run_child(cmd, name="nnUNetv2_train", env=os.environ.copy()) != 0:
            raise StepFailed("nnUNetv2_train failed (see its output above)")
        steps.done("train", s_plan)
    steps.stop("train", t)

    t = steps.start(f"predict the test cases: nnext predict -m tta_mc --n-samples {args.n_samples}")
    pred = root / "predictions"
    s_pred = {**s_plan, "n_samples": args.n_samples}
    if pred.is_dir() and steps.must_redo("predict", s_pred, True):
        shutil.rmtree(pred)  # predictions of another model / settings: redone (a matching folder resumes)
    steps.done("predict", s_pred)
    run_nnext(["predict", "-m", "tta_mc", "-i", raw / "imagesTs", "-o", pred, "-d", DATASET_ID, "-c", config,
               "-tr", TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", "--n-samples", args.n_samples,
               "--save-probabilities", "--seed", args.seed])
    steps.stop("predict", t)

    t = steps.start("evaluate: Dice, HD95, NSD + uncertainty calibration (nnext evaluate)")
    run_nnext(["evaluate", "-ref", raw / "labelsTs", "-pred", pred, "-o", root / "evaluation.json",
               "--uncertainty", pred, "--probabilities", pred, "-q"])
    evaluation = json.loads((root / "evaluation.json").read_text())
    steps.stop("evaluate", t)

    t = steps.start("figures: image, reference, prediction and uncertainty per test case")
    from nnunet_ext.evaluation.report import report_folder

    pngs = report_folder(raw / "imagesTs", pred, root / "png", ref_dir=raw / "labelsTs", window=(-1000, 400))
    overview = root / "overview.png"
    from nnunet_ext.io.atomic_write import copy_file, write_json

    copy_file(pngs[0], overview)
    steps.stop("figures", t)

    summary = {
        "dataset": raw.name, "model": str(model), "predictions": str(pred), "overview_png": str(overview),
        "case_pngs": [str(p) for p in pngs], "evaluation": str(root / "evaluation.json"),
        "mean": evaluation.get("mean"), "uncertainty": (evaluation.get("uncertainty") or {}).get("mean"),
        "plans_set": user_options(args), "timings_s": steps.timings,
    }
    write_json(root / "summary.json", summary)
    mean = (evaluation.get("mean") or {}).get("1", {})
    print(f"\nDice {mean.get('dice', float('nan')):.3f}  HD95 {mean.get('hd95', float('nan')):.1f} mm  "
          f"(mean over {args.n_test} test cases)")
    print(f"overview: {overview}\nsummary:  {root / 'summary.json'}")
    return 0
