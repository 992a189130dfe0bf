"""A model folder with a freshly initialised (untrained) network, saved by nnU-Net's own trainer.

For tests of input handling and for benchmarks (timing does not depend on the weights): ``trainer.initialize()``
builds the network exactly as a training would, ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``
sets the mirroring axes a training records, and ``save_checkpoint`` writes ``fold_F/checkpoint_final.pth``. The
result is a valid nnU-Net model folder (``plans.json``, ``dataset.json``, ``fold_F``) that ``nnUNetv2_predict`` and
``nnext predict`` load, built in seconds instead of a training. No preprocessed data is needed: ``initialize()``
only looks at the file type of the preprocessed cases, so a stub folder with one empty ``.npz`` is given.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["save_untrained_model"]


def save_untrained_model(results: "str | os.PathLike", plans: dict, dataset_json: dict, configuration: str,
                         trainer_cls, fold: int = 0, seed: int = 0) -> Path:
    """``results/DATASET/TRAINER__PLANS__CONFIGURATION`` with ``fold_<fold>/checkpoint_final.pth`` of a network
    initialised with ``torch.manual_seed(seed)``; returns the model folder. ``trainer_cls`` is the trainer class
    (nnUNetTrainer or a subclass); the network is built on the CPU (no ``torch.compile``)."""
    import torch

    results = Path(results)
    model = results / plans["dataset_name"] / f"{trainer_cls.__name__}__{plans['plans_name']}__{configuration}"
    (model / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
    (model / "plans.json").write_text(json.dumps(plans, indent=1))
    (model / "dataset.json").write_text(json.dumps(dataset_json, indent=1))
    saved = {k: os.environ.get(k) for k in ("nnUNet_results", "nnUNet_preprocessed")}
    stub = Path(tempfile.mkdtemp(prefix="nnext_untrained_"))
    try:
        os.environ["nnUNet_results"] = str(results)  # the trainer's log folder: the model folder
        os.environ.setdefault("nnUNet_preprocessed", str(stub))
        torch.manual_seed(seed)
        trainer = trainer_cls({**plans, "continue_training": False}, configuration, fold, dataset_json,
                              device=torch.device("cpu"))
        (stub / "case.npz").write_bytes(b"")
        trainer.preprocessed_dataset_folder = str(stub)
        trainer.initialize()
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        trainer.save_checkpoint(str(model / f"fold_{fold}" / "checkpoint_final.pth"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(stub, ignore_errors=True)
    if not (model / f"fold_{fold}" / "checkpoint_final.pth").is_file():
        raise RuntimeError(f"{model}: the trainer wrote no checkpoint")
    return model
