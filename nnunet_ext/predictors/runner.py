"""The case loop of ``nnext predict``: skip finished cases, preprocess, predict, export, report progress."""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import torch
from tqdm import tqdm

from nnunet_ext.imageio import atomic_write_text
from nnunet_ext.predictors.export import case_done, export_case
from nnunet_ext.predictors.inputs import Case


def case_seed(seed: int, case_id: str) -> int:
    """Per-case seed: results do not depend on the order, on -num_parts / -part_id or on skipped cases."""
    return (int(seed) * 1_000_003 + zlib.crc32(case_id.encode())) % (2 ** 63)


def predict_cases(predictor, cases: list[Case], output_dir: "str | os.PathLike", *, uncertainty: "str | None",
                  extra_maps: tuple[str, ...] = (), save_probabilities: bool = False, overwrite: bool = False,
                  num_parts: int = 1, part_id: int = 0, seed: int = 0, settings: "dict | None" = None) -> list[str]:
    """Predict ``cases[part_id::num_parts]`` into ``output_dir``; returns the ids predicted now.

    A case counts as done when all of its output files exist; done cases are skipped unless ``overwrite``.
    Each file is written atomically and the segmentation last, so an interrupted run resumes cleanly.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ending = predictor.dataset_json["file_ending"]
    outputs = dict(uncertainty=uncertainty, extra_maps=extra_maps, save_probabilities=save_probabilities)
    mine = cases[part_id::num_parts]
    todo = [c for c in mine if overwrite or not case_done(str(out / c.case_id), ending, **outputs)]
    if len(todo) < len(mine):
        print(f"{len(mine) - len(todo)} of {len(mine)} cases already predicted in {out} (use --overwrite to redo)")
    if settings is not None:
        _write_json(out / "predict_settings.json", settings)
        _write_json(out / "dataset.json", predictor.dataset_json)
        _write_json(out / "plans.json", predictor.plans_manager.plans)
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    done = []
    for case in tqdm(todo, desc="cases", unit="case"):
        data, _, properties = preprocessor.run_case(list(case.files), None, predictor.plans_manager,
                                                    predictor.configuration_manager, predictor.dataset_json)
        predictor.set_seed(case_seed(seed, case.case_id))
        logits, maps = predictor.predict_statistics(torch.from_numpy(data))
        export_case(logits, maps, properties, predictor, str(out / case.case_id), ending, uncertainty, extra_maps,
                    save_probabilities)
        done.append(case.case_id)
    return done


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))
