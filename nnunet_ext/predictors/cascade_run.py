"""``nnext predict -m cascade``: build both stages from ``--stage1`` / ``--stage2``, loop over the cases, write.

Per case, in ``-o``: ``CASE_cascade.json`` (component log of the filter, lung-mask source, ROI boxes, per-ROI
stage-2 statistics), ``CASE_uncertainty`` (stage-2 map, 0 outside the ROIs), optionally ``CASE_<map>``,
``CASE_probabilities`` and, with ``--save-intermediates``, ``CASE_coarse`` (raw stage-1 segmentation; named with
letters only so that ``nnext evaluate`` recognises it as a side output),
``CASE_coarse_filtered`` (the filter's output) and ``CASE_lungmask``; ``CASE<ending>`` (the segmentation) last.
A case counts as done when all its files exist (skipped unless ``--overwrite``), so an interrupted run resumes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from nnunet_ext.errors import InputError
from nnunet_ext.imageio import atomic_write_text, write_image
from nnunet_ext.predictors.export import case_outputs, write_case
from nnunet_ext.predictors.inputs import ModelSpec, fold_ids, list_cases
from nnunet_ext.predictors.runner import case_seed

INTERMEDIATES = ("coarse", "coarse_filtered", "lungmask")


def add_cascade_arguments(parser) -> None:
    from nnunet_ext.postprocessing.cli import add_filter_arguments

    g = parser.add_argument_group("cascade (-m cascade; stage 2 uses the tta_mc options above)")
    g.add_argument("--stage1", metavar="D,C,TR,PLANS[,FOLDS]", help="stage-1 (full volume) model; folds joined "
                   "by '+', e.g. 501,3d_fullres,MCDropoutTrainer,nnextTinyPlans,0")
    g.add_argument("--stage2", metavar="D,C,TR,PLANS[,FOLDS]", help="stage-2 (ROI) model, e.g. "
                   "502,3d_fullres,UncertaintyTrainer,nnextTinyPlans,0")
    g.add_argument("--lung-masks", default="auto", metavar="DIR|auto|threshold|lungmask|none",
                   help="folder of lung masks CASE<ending> (1 right, 2 left), or compute them (auto: lungmask "
                   "when usable, else threshold), or none (skip the lung filters; default auto)")
    g.add_argument("--lungmask-weights", default=None, metavar="PATH", help="local lungmask R231 weights")
    g.add_argument("--margin", type=int, default=0, help="ROI margin in voxels (0 = ROI-0margin, 16 = "
                   "ROI-16margin; use the margin the stage-2 model was trained with; default 0)")
    g.add_argument("--save-intermediates", action="store_true",
                   help="also write CASE_coarse, CASE_coarse_filtered and CASE_lungmask")
    add_filter_arguments(g, top_k_default=1)


def _outputs(out: Path, case_id: str, ending: str, uncertainty: str, extra, save_probabilities, intermediates):
    files = case_outputs(str(out / case_id), ending, uncertainty=uncertainty, extra_maps=extra,
                         save_probabilities=save_probabilities)
    files += [str(out / f"{case_id}_{n}{ending}") for n in (INTERMEDIATES if intermediates else ())]
    return files + [str(out / f"{case_id}_cascade.json")]


def _stage(spec_text: "str | None", flag: str, args, cls_kwargs: dict, cls):
    if not spec_text:
        raise InputError(f"-m cascade needs {flag} D,C,TR,PLANS[,FOLDS]")
    spec = ModelSpec.parse(spec_text, flag)
    folder, folds = spec.resolve(args.chk)
    predictor = cls(**cls_kwargs)
    predictor.initialize_from_trained_model_folder(str(folder), fold_ids(folds), args.chk)
    return predictor, {"spec": spec_text, "model_folder": str(folder), "folds": folds,
                       "training_metadata": predictor.training_metadata}


def build_cascade(args, stage2_kwargs: dict):
    """Validate the cascade options and construct the initialised :class:`CascadePredictor`."""
    import torch

    from nnunet_ext.postprocessing.cli import filter_config
    from nnunet_ext.predictors.cascade import LUNG_BACKENDS, CascadePredictor
    from nnunet_ext.predictors.stock import StockPredictor
    from nnunet_ext.predictors.tta_mc import TTAMCPredictor

    if args.d is not None or args.c is not None:
        raise InputError("-m cascade takes its models from --stage1 / --stage2; do not pass -d / -c")
    if args.lung_masks not in LUNG_BACKENDS and not os.path.isdir(args.lung_masks):
        raise InputError(f"--lung-masks {args.lung_masks}: neither a folder nor one of {', '.join(LUNG_BACKENDS)}")
    if args.lungmask_weights is not None and not os.path.isfile(args.lungmask_weights):
        raise InputError(f"{args.lungmask_weights}: lungmask weights file not found")
    common = dict(tile_step_size=args.step_size, device=torch.device(args.device), allow_tqdm=False)
    stage1, s1 = _stage(args.stage1, "--stage1", args, dict(use_mirroring=not args.disable_tta, **common),
                        StockPredictor)
    stage2, s2 = _stage(args.stage2, "--stage2", args, {**stage2_kwargs, **common}, TTAMCPredictor)
    names = (args.uncertainty, *args.extra_maps)
    cascade = CascadePredictor(stage1, stage2, filter_config(args), args.margin, args.lung_masks,
                               args.lungmask_weights, names)
    return cascade, {"stage1": s1, "stage2": s2}


def run_cascade(args, stage2_kwargs: dict) -> int:
    """The case loop of ``nnext predict -m cascade`` (module docstring)."""
    cascade, models = build_cascade(args, stage2_kwargs)
    dataset_json = cascade.stage1.dataset_json
    ending = dataset_json["file_ending"]
    cases = list_cases(args.i, dataset_json)
    if os.path.isdir(args.lung_masks):
        missing = [c.case_id for c in cases if not os.path.isfile(os.path.join(args.lung_masks, c.case_id + ending))]
        if missing:
            raise InputError(f"--lung-masks {args.lung_masks}: no mask {missing[0]}{ending}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    out = Path(args.o)
    out.mkdir(parents=True, exist_ok=True)
    extra = tuple(args.extra_maps)
    mine = cases[args.part_id::args.num_parts]
    todo = [c for c in mine if args.overwrite or not all(os.path.isfile(f) for f in _outputs(
        out, c.case_id, ending, args.uncertainty, extra, args.save_probabilities, args.save_intermediates))]
    if len(todo) < len(mine):
        print(f"{len(mine) - len(todo)} of {len(mine)} cases already predicted in {out} (use --overwrite to redo)")
    settings = {k: v for k, v in vars(args).items()}
    settings.update(models)
    atomic_write_text(out / "predict_settings.json", json.dumps(settings, indent=2, default=str))
    for case in tqdm(todo, desc="cascade", unit="case"):
        result = cascade.predict_case(case, case_seed(args.seed, case.case_id), ending)
        stem = str(out / case.case_id)
        if args.save_intermediates:
            for name, arr in zip(INTERMEDIATES, (result.stage1, result.filtered, result.lung)):
                write_image(arr.astype("uint8"), result.geometry, f"{stem}_{name}{ending}")
        atomic_write_text(f"{stem}_cascade.json", json.dumps(result.log, indent=1, default=str) + "\n")
        write_case(result.segmentation, result.probabilities if args.save_probabilities else None, result.maps,
                   result.geometry, stem, ending, args.uncertainty, extra)
        log = result.log["filter"]
        print(f"{case.case_id}: stage 1 {log['n_components']} component(s), {len(result.log['rois'])} ROI(s) "
              f"to stage 2")
    return 0
