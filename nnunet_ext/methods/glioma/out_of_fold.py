"""Which cases a prediction folder's models trained on: the guard of out-of-fold fusion (``nnext fusion-fit``).

The fusion weights of eq. 2 (Yang et al. 2025) must be fitted on predictions of cases the 2D and the 3D model did
not train on; otherwise P2D / P3D are in-sample (sharper, better than on new cases) and the PSO leans on whichever
model overfits more. The out-of-fold recipe: both models in k-fold cross-validation (the 3D crop model with the
split grouped by source case, :mod:`nnunet_ext.io.splits`, so its fold k holds out the same cases as the 2D model's
fold k), each training case predicted by the fold that held it out (``nnext predict -m kernel_refine --model2d
D,2d,TR,PLANS,k --model3d K,3d_fullres,TR3,PLANS,k`` on fold k's validation cases, one output folder per fold).

:func:`prediction_models` reads the models (model folder, folds) a prediction folder was made with from its
``predict_settings.json``; :func:`trained_cases` gives the source cases a model fold trained on: fold ``all`` =
every case of the model's dataset, fold k = ``splits_final.json`` of ``nnUNet_preprocessed/DATASET`` (the file
nnU-Net's ``do_split`` trained with), crop IDs mapped to their source cases (``kernel_info.json`` /
``roi_info.json`` of the crop dataset).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from nnunet_ext.errors import InputError


def _walk(obj):
    if isinstance(obj, dict):
        if "model_folder" in obj and "folds" in obj:
            yield str(obj["model_folder"]), [str(f) for f in obj["folds"]]
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def prediction_models(folder) -> list[tuple[str, list[str]]]:
    """``[(model_folder, folds)]`` recorded in ``folder/predict_settings.json`` (every stage of the method);
    InputError when the folder does not say (not written by ``nnext predict``)."""
    path = Path(folder) / "predict_settings.json"
    if not path.is_file():
        raise InputError(f"{folder}: no predict_settings.json, so which models (folds) made these predictions is "
                         "unknown; predict with nnext predict, or pass --allow-in-sample")
    try:
        models = list(dict.fromkeys((m, tuple(f)) for m, f in _walk(json.loads(path.read_text()))))
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not models:
        raise InputError(f"{path}: records no model folder; pass --allow-in-sample")
    return [(m, list(f)) for m, f in models]


def _raw_cases(raw: Path) -> list[str]:
    dj = json.loads((raw / "dataset.json").read_text())
    ending = dj["file_ending"]
    names = [p.name for p in (raw / "imagesTr").iterdir() if p.name.endswith(ending)]
    return sorted({n[: -len(ending)].rsplit("_", 1)[0] for n in names})


def trained_cases(model_folder: str, fold: str) -> set[str]:
    """Source case IDs that fold ``fold`` of the model in ``model_folder`` trained on (module docstring)."""
    from nnunet_ext.io.splits import SPLITS_FILE, crop_sources

    dataset = Path(model_folder).parent.name
    raw = Path(os.environ.get("nnUNet_raw", "")) / dataset
    if fold == "all":
        if not (raw / "dataset.json").is_file():
            raise InputError(f"{model_folder} (fold all): its dataset {raw} is not in nnUNet_raw, so its training "
                             "cases are unknown; pass --allow-in-sample")
        items = set(_raw_cases(raw))
    else:
        path = Path(os.environ.get("nnUNet_preprocessed", "")) / dataset / SPLITS_FILE
        if not path.is_file():
            raise InputError(f"{model_folder} (fold {fold}): cannot tell which cases it trained on ({path} not "
                             "found); pass --allow-in-sample")
        splits = json.loads(path.read_text())
        if int(fold) >= len(splits):
            raise InputError(f"{path}: has {len(splits)} folds, the model used fold {fold} (nnU-Net then draws a "
                             "random split); pass --allow-in-sample")
        items = set(splits[int(fold)]["train"])
    sources = crop_sources(raw) if raw.is_dir() else None
    if sources is not None:
        unknown = sorted(items - set(sources))
        if unknown:
            raise InputError(f"{raw}: crops {', '.join(unknown[:3])} of the split have no source case in its info file")
        items = {sources[i] for i in items}
    return items


def in_sample(case_folders: dict) -> list[tuple[str, str, str]]:
    """``[(case, model_folder, fold)]`` for every case whose prediction folder used a model fold that trained on
    it; ``case_folders``: case -> the prediction folders its inputs come from."""
    cache: dict = {}
    found = []
    for case, folders in sorted(case_folders.items()):
        for folder in dict.fromkeys(folders):
            for model, folds in prediction_models(folder):
                for f in folds:
                    if (model, f) not in cache:
                        cache[(model, f)] = trained_cases(model, f)
                    if case in cache[(model, f)]:
                        found.append((case, model, f))
    return found
