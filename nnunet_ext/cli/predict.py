"""``nnext predict``: nnU-Net prediction plus uncertainty maps, with nnUNetv2_predict's flags.

The common flags are nnU-Net's; every method adds its own group (``nnext predict -m METHOD -h`` shows only the
groups that method takes). Method options are registered without defaults, so an option given for a method
that does not take it is refused naming the methods that do; the taking method's defaults are filled in after
parsing (a composite method may override the defaults of its stages, :attr:`Method.option_defaults`).
"""
from __future__ import annotations

import argparse
import sys

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.model_flags import add_device_arguments, add_model_arguments, check_device
from nnunet_ext.predictors.registry import METHODS

_MODEL = "model"  # pseudo-method owning -d -c -tr -p -f -prev_stage_predictions


class _Recorder:
    """An argparse group proxy: adds each option once with ``default=SUPPRESS`` and records who takes it."""

    def __init__(self, group, owner: str, table: dict, added: dict):
        self.group, self.owner, self.table, self.added = group, owner, table, added

    def add_argument(self, *flags, **kwargs):
        default = kwargs.pop("default", False if kwargs.get("action") == "store_true" else None)
        dest = kwargs.get("dest") or next((f for f in flags if f.startswith("--")), flags[0]).lstrip("-").replace(
            "-", "_"
        )
        self.table.setdefault(self.owner, {})[dest] = default
        self.table.setdefault("_flags", {})[dest] = flags[0]
        if dest not in self.added:
            self.added[dest] = self.group.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)
        return self.added[dest]


def _common_arguments(parser) -> None:
    parser.add_argument("-m", default="tta_mc", choices=list(METHODS),
                        help="method: " + "; ".join(f"{k}: {v[1]}" for k, v in METHODS.items()))
    parser.add_argument("-i", required=True, help="input folder (nnU-Net naming CASE_XXXX.nii.gz)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding window step (fraction of the patch)")
    add_device_arguments(parser)
    parser.add_argument("-npp", type=int, default=1, help="background threads reading and preprocessing the next "
                        "cases (0 = none; results are identical)")
    parser.add_argument("-nps", type=int, default=1, help="background threads writing finished cases (0 = none)")
    parser.add_argument("-num_parts", type=int, default=1, help="split the cases into this many parts")
    parser.add_argument("-part_id", type=int, default=0, help="which part this process predicts (0-based)")
    parser.add_argument("--overwrite", action="store_true", help="redo cases whose outputs exist (and accept other "
                        "settings than the folder was written with)")
    parser.add_argument("--continue_prediction", action="store_true",
                        help="nnU-Net's flag; resuming is the default: finished cases are always skipped")
    parser.add_argument("--save_probabilities", "--save-probabilities", dest="save_probabilities",
                        action="store_true", help="also write nnU-Net's CASE.npz + CASE.pkl and CASE_probabilities "
                        "(float32 NIfTI, classes along the 4th axis)")
    parser.add_argument("--uncertainty", default=None, help="map written as CASE_uncertainty (default: the "
                        "method's; see its maps)")
    parser.add_argument("--all-maps", action="store_true", help="also write every map as CASE_<map>")
    parser.add_argument("--maps-dir", default=None, metavar="DIR",
                        help="write uncertainty maps, NIfTI probabilities and side outputs into DIR instead of -o, "
                             "so -o holds exactly what nnUNetv2_predict writes (nnUNetv2_apply_postprocessing "
                             "then reads it as its own)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (per case derived from it)")
    parser.add_argument("--accumulator-dtype", default="float32", choices=("float32", "float16"),
                        help="dtype of the per-voxel accumulators (float16 = nnU-Net's; default float32)")
    parser.add_argument("--nan-policy", default="refuse", choices=("refuse", "zero"),
                        help="NaN / Inf voxels in an input: refuse the case (default) or set them to 0 with a warning")
    parser.add_argument("--no-calibration", action="store_true",
                        help="ignore the model folder's calibration.json (nnext calibrate)")
    parser.add_argument("--png", action="store_true", help="write a per-case PNG report into OUT/png")


def _build(parser, only: "set[str] | None" = None) -> dict:
    """Add the common, model and method groups (``only``: those method names) -> the option table."""
    from nnunet_ext.predictors.registry import load_method

    _common_arguments(parser)
    table, added = {}, {}
    classes = {name: load_method(name) for name in METHODS}
    if only is None or any(classes[m].takes_model for m in only):
        add_model_arguments(_Recorder(parser.add_argument_group("model (methods running one nnU-Net model)"),
                                   _MODEL, table, added))
    for name, cls in classes.items():
        if only is None or name in only:
            cls.add_arguments(_Recorder(parser.add_argument_group(f"-m {name}: {METHODS[name][1]}"), name, table,
                                        added))
    table["_classes"] = classes
    return table


def _taken_by(cls) -> list[str]:
    """The option owners a method takes: itself, its stage methods, the model flags if it runs a model."""
    return [cls.name, *cls.stage_methods] + ([_MODEL] if cls.takes_model else [])


class _MethodHelp(argparse._HelpAction):
    """``-h``: the common options plus only the groups the selected method takes."""

    def __call__(self, parser, namespace, values, option_string=None):
        from nnunet_ext.predictors.registry import load_method

        cls = load_method(getattr(namespace, "m", "tta_mc"))
        p = argparse.ArgumentParser(prog=parser.prog, description=parser.description)
        _build(p, {cls.name, *cls.stage_methods})
        p.print_help()
        parser.exit()


def add_arguments(parser) -> None:
    for action in parser._actions:  # argparse's -h, made method-aware
        if isinstance(action, argparse._HelpAction):
            action.__class__ = _MethodHelp
    parser.set_defaults(_option_table=_build(parser))


def apply_method_options(args, cls, table: dict) -> None:
    """Refuse options of other methods (naming who takes them); fill in the defaults of the method's own (a
    composite's :attr:`~nnunet_ext.predictors.method.Method.option_defaults` win over its stages')."""
    owners = _taken_by(cls)
    flags = table["_flags"]
    given = {dest for dest in flags if hasattr(args, dest)}
    for dest in sorted(given):
        if not any(dest in table.get(o, {}) for o in owners):
            takers = [n for n, c in table["_classes"].items() if any(dest in table.get(o, {}) for o in _taken_by(c))]
            names = ", ".join(f"-m {t}" for t in takers)
            extra = " (it takes its models from --stage1 / --stage2)" if cls.stage_methods and any(
                dest in table.get(_MODEL, {}) for _ in (0,)) else ""
            raise InputError(f"{flags[dest]} is an option of {names}, not of -m {cls.name}{extra}")
    for owner in reversed(owners):  # the method's own defaults win over its stages'
        for dest, default in table.get(owner, {}).items():
            if dest not in given:
                setattr(args, dest, default)
    for dest, default in cls.option_defaults.items():
        if dest not in given:
            setattr(args, dest, default)


def _select_maps(args, method) -> tuple[str, tuple[str, ...]]:
    """(map written as CASE_uncertainty, maps also written as CASE_<name>) from --uncertainty / --all-maps."""
    available = method.map_names
    uncertainty = args.uncertainty or method.default_uncertainty
    if uncertainty not in available:
        raise InputError(f"--uncertainty {uncertainty}: method {method.name} provides {', '.join(available)}")
    extra = (uncertainty, *(n for n in available if n != uncertainty)) if args.all_maps else ()
    return uncertainty, extra


def run(args) -> int:
    from nnunet_ext.io.integrity import check_output_dir
    from nnunet_ext.predictors.inputs import list_cases
    from nnunet_ext.predictors.loop import OutputSpec, predict_cases
    from nnunet_ext.predictors.method import CommonOptions
    from nnunet_ext.predictors.registry import load_method

    table = args._option_table
    cls = load_method(args.m)
    apply_method_options(args, cls, table)
    if args.num_parts < 1 or not 0 <= args.part_id < args.num_parts:
        raise InputError(f"-part_id must be in [0, -num_parts), got {args.part_id} with -num_parts {args.num_parts}")
    check_device(args.device)
    check_output_dir(args.o)
    common = CommonOptions(device=args.device, step_size=args.step_size, checkpoint=args.chk,
                           accumulator_dtype=args.accumulator_dtype, calibration=not args.no_calibration,
                           progress=sys.stderr.isatty(), nan_policy=args.nan_policy)
    method = cls.from_args(args, common)
    uncertainty, extra = _select_maps(args, method)
    method.requested_maps = tuple(dict.fromkeys((uncertainty, *extra)))
    passes = getattr(getattr(method, "sampling", None), "n_passes", None)
    n_folds = len(getattr(getattr(method, "engine", None), "list_of_parameters", ()) or ())
    if passes is not None and passes * max(1, n_folds) == 1 and {"variance", "mi"} & set(method.requested_maps):
        raise InputError("--uncertainty / --all-maps: variance and mutual information need >= 2 passes, this run "
                         "has 1 (raise --n-samples, or use --uncertainty entropy)")
    cases = list_cases(args.i, method.dataset_json)
    method.check_cases(cases)
    images, jsons = method.side_outputs()
    spec = OutputSpec(uncertainty, extra, args.save_probabilities, tuple(images), tuple(jsons), args.maps_dir)
    settings = {k: v for k, v in sorted(vars(args).items()) if not k.startswith("_")}
    settings["method_settings"] = method.settings()
    predict_cases(method, cases, args.o, spec, overwrite=args.overwrite, num_parts=args.num_parts,
                  part_id=args.part_id, seed=args.seed, settings=settings, npp=args.npp, nps=args.nps,
                  progress=common.progress)
    if args.png:
        from nnunet_ext.evaluation.report import report_folder

        report_folder(args.i, args.o, f"{args.o}/png")
    return 0
