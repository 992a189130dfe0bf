"""``nnext plan``: plan + preprocess with an nnunet_ext planner (nnU-Net cannot find external ``-pl`` classes)."""
from __future__ import annotations

from nnunet_ext.errors import InputError
from nnunet_ext.planners.registry import PLANNERS


def add_arguments(parser) -> None:
    parser.add_argument("-d", required=True, help="dataset ID or name (as in nnUNet_raw)")
    parser.add_argument("-pl", default="TinyPlanner",
                        help="planner: " + "; ".join(f"{k} ({v[2]})" for k, v in PLANNERS.items()))
    parser.add_argument("-c", nargs="+", default=None,
                        help="configurations to preprocess (default: the planner's, e.g. 2d 3d_fullres)")
    parser.add_argument("-np", type=int, default=2, help="processes for fingerprint and preprocessing (default 2)")
    parser.add_argument("-gpu_memory_target", type=float, default=None, help="GPU memory target in GB (ResEnc presets)")
    parser.add_argument("-overwrite_plans_name", default=None, help="custom plans identifier")
    parser.add_argument("--dropout-p", type=float, default=None, help="dropout probability for the MC-dropout planners")
    parser.add_argument("--verify_dataset_integrity", action="store_true", help="run nnU-Net's dataset check first")
    parser.add_argument("--clean", action="store_true", help="recompute the fingerprint even if it exists")
    parser.add_argument("--no_pp", action="store_true", help="plan only, do not preprocess")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training length written into the plans (honoured by every nnunet_ext trainer)")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations per epoch (ditto)")
    parser.add_argument("--fingerprint-samples", type=int, default=None,
                        help="foreground voxels sampled for the intensity statistics (nnU-Net: 1e8; default: the "
                             "planner's, TinyPlanner 1e6)")
    parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="training option written into the plans' nnext_training block of every planned "
                             "configuration (or -c), e.g. --set clicks.radius=5; repeatable. 'nnext plan -h' "
                             "lists nothing more: see documentation/reference/plans_options.md")
    parser.add_argument("-p", dest="plans", default=None,
                        help="existing plans identifier: edit (--set) or print (--show) them instead of planning")
    parser.add_argument("--show", action="store_true",
                        help="print the effective schedule and options of -p PLANS for each configuration (or -c)")
    parser.add_argument("--verbose", action="store_true")


def run(args) -> int:
    from nnunet_ext.planners import plans_edit
    from nnunet_ext.planners.run import plan_and_preprocess

    plans_edit.check_assignments(args.set_options)
    if args.show or args.plans:
        if not args.plans:
            raise InputError("--show needs -p PLANS (the plans identifier to print)")
        path = plans_edit.plans_path(args.d, args.plans)
        if args.set_options:
            path = plans_edit.write_options(path, args.set_options, args.c, args.overwrite_plans_name)
            print(f"options written to {path}  (use -p {path.stem} with nnUNetv2_train)")
        elif not args.show:
            raise InputError("-p PLANS edits or prints existing plans: give --set SECTION.KEY=VALUE or --show")
        if args.show:
            print(plans_edit.show_options(path, args.c))
        return 0

    schedule = {k: v for k, v in (("num_epochs", args.epochs), ("num_iterations_per_epoch", args.iterations))
                if v is not None}
    plans = plan_and_preprocess(args.d, args.pl, args.c, args.np, args.verify_dataset_integrity, args.clean,
                                args.gpu_memory_target, args.dropout_p, args.overwrite_plans_name,
                                preprocess=not args.no_pp, verbose=args.verbose, schedule=schedule,
                                fingerprint_samples=args.fingerprint_samples)
    if args.set_options:
        path = plans_edit.plans_path(args.d, plans)
        plans_edit.write_options(path, args.set_options, args.c)
        print(f"training options {', '.join(args.set_options)} written to {path.name}")
    print(f"plans identifier: {plans}  (use -p {plans} with nnUNetv2_train / nnUNetv2_predict)")
    return 0
