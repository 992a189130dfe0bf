"""``nnext predict``: nnU-Net prediction plus uncertainty maps, with nnUNetv2_predict's flags."""
from __future__ import annotations

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.registry import METHODS


def add_arguments(parser) -> None:
    parser.add_argument("-m", default="tta_mc", choices=list(METHODS),
                        help="method: " + "; ".join(f"{k}: {v[1]}" for k, v in METHODS.items()))
    parser.add_argument("-i", required=True, help="input folder (nnU-Net naming CASE_XXXX.nii.gz)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-d", default=None, help="dataset ID or name (stock, tta_mc)")
    parser.add_argument("-c", default=None, help="configuration, e.g. 3d_fullres (stock, tta_mc)")
    parser.add_argument("-tr", default="MCDropoutTrainer", help="trainer (default MCDropoutTrainer)")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-f", nargs="+", default=None, help="folds (default: every fold with the checkpoint)")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding window step (fraction of the patch)")
    parser.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"], help="device (default cuda)")
    parser.add_argument("-npp", type=int, default=1, help="accepted for nnUNetv2_predict compatibility; "
                        "cases are preprocessed sequentially")
    parser.add_argument("-nps", type=int, default=1, help="accepted for compatibility; export is sequential")
    parser.add_argument("-num_parts", type=int, default=1, help="split the cases into this many parts")
    parser.add_argument("-part_id", type=int, default=0, help="which part this process predicts (0-based)")
    parser.add_argument("--overwrite", action="store_true", help="redo cases whose outputs exist")
    parser.add_argument("--save-probabilities", action="store_true", help="also write CASE_probabilities (float32)")
    parser.add_argument("--uncertainty", default=None, help="map written as CASE_uncertainty: "
                        "entropy | variance | mi (tta_mc, default entropy; cascade, default variance); entropy (stock)")
    parser.add_argument("--all-maps", action="store_true", help="also write every map as CASE_<map>")
    parser.add_argument("--seed", type=int, default=0, help="random seed (per case derived from it)")
    parser.add_argument("--disable_tta", action="store_true", help="stock and cascade stage 1: no mirroring")
    parser.add_argument("--png", action="store_true", help="write a per-case PNG report into OUT/png")
    g = parser.add_argument_group("tta_mc (and cascade stage 2)")
    g.add_argument("--n-samples", type=int, default=10, help="stochastic passes per window (default 10)")
    g.add_argument("--dropout-p", type=float, default=None,
                   help="dropout probability at inference (default: the trained one)")
    g.add_argument("--tta", default=None, help="augmentations drawn per pass, or 'none' (default "
                   "noise,flip,rotate for tta_mc; none for cascade: MC dropout alone, as isler2025)")
    g.add_argument("--pass-batch-size", type=int, default=None, help="passes per forward batch (default all)")
    from nnunet_ext.predictors.cascade_run import add_cascade_arguments

    add_cascade_arguments(parser)


#: method -> (default --tta, default --uncertainty)
DEFAULTS = {"stock": ("none", "entropy"), "tta_mc": ("noise,flip,rotate", "entropy"), "cascade": ("none", "variance")}


def tta_mc_kwargs(args) -> dict:
    """Validated constructor arguments of :class:`TTAMCPredictor` from the tta_mc options."""
    from nnunet_ext.core.tta import TTAPolicy, parse_tta

    if args.n_samples < 1:
        raise InputError(f"--n-samples must be >= 1, got {args.n_samples}")
    if args.dropout_p is not None and not 0 <= args.dropout_p < 1:
        raise InputError(f"--dropout-p must be in [0, 1), got {args.dropout_p}")
    try:
        policy = TTAPolicy(kinds=parse_tta(args.tta or DEFAULTS[args.m][0]))
    except ValueError as e:
        raise InputError(f"--tta: {e}") from e
    return dict(n_samples=args.n_samples, dropout_p=args.dropout_p, tta=policy, pass_batch_size=args.pass_batch_size)


def build_predictor(args):
    """Validate the method options and construct the (uninitialised) predictor."""
    import torch

    from nnunet_ext.predictors.registry import load_method

    common = dict(tile_step_size=args.step_size, device=torch.device(args.device), allow_tqdm=True)
    cls = load_method(args.m)
    if args.m == "tta_mc":
        return cls(**tta_mc_kwargs(args), **common)
    return cls(use_mirroring=not args.disable_tta, **common)


def run(args) -> int:
    from nnunet_ext.predictors.inputs import check_folds, fold_ids, list_cases, model_folder
    from nnunet_ext.predictors.runner import predict_cases

    if args.num_parts < 1 or not 0 <= args.part_id < args.num_parts:
        raise InputError(f"-part_id must be in [0, -num_parts), got {args.part_id} with -num_parts {args.num_parts}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("-device cuda requested but no CUDA device is available (use -device cpu)")
    if args.m == "cascade":
        from nnunet_ext.core.uncertainty import MAP_NAMES
        from nnunet_ext.predictors.cascade_run import run_cascade

        args.uncertainty, args.extra_maps = _select_maps(args, MAP_NAMES)
        run_cascade(args, tta_mc_kwargs(args))
        return _png(args)
    if args.d is None or args.c is None:
        raise InputError(f"-m {args.m} needs -d DATASET and -c CONFIGURATION")
    folder = model_folder(args.d, args.tr, args.p, args.c)
    folds = check_folds(folder, args.f, args.chk)
    predictor = build_predictor(args)
    uncertainty, extra = _select_maps(args, predictor.map_names)
    predictor.initialize_from_trained_model_folder(str(folder), fold_ids(folds), args.chk)
    cases = list_cases(args.i, predictor.dataset_json)
    settings = {k: v for k, v in vars(args).items()}
    settings.update(model_folder=str(folder), folds=folds, training_metadata=predictor.training_metadata)
    predict_cases(predictor, cases, args.o, uncertainty=uncertainty, extra_maps=extra,
                  save_probabilities=args.save_probabilities, overwrite=args.overwrite,
                  num_parts=args.num_parts, part_id=args.part_id, seed=args.seed, settings=settings)
    return _png(args)


def _select_maps(args, available) -> tuple[str, tuple[str, ...]]:
    """(map written as CASE_uncertainty, maps also written as CASE_<name>) from --uncertainty / --all-maps."""
    uncertainty = args.uncertainty or DEFAULTS[args.m][1]
    if uncertainty not in available:
        raise InputError(f"--uncertainty {uncertainty}: method {args.m} provides {', '.join(available)}")
    if not args.all_maps:
        return uncertainty, ()
    return uncertainty, (uncertainty, *(n for n in available if n != uncertainty))


def _png(args) -> int:
    if args.png:
        from nnunet_ext.evaluation.report import report_folder

        report_folder(args.i, args.o, f"{args.o}/png")
    return 0
