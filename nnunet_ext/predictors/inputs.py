"""Validation of what ``nnext predict`` is given: model folder, folds, checkpoint, input cases."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_ext.errors import InputError
from nnunet_ext.paths import env_dir, find_dataset


@dataclass(frozen=True)
class Case:
    case_id: str
    files: tuple[str, ...]  # one file per channel, in channel order


def model_folder(dataset: "int | str", trainer: str, plans: str, configuration: str) -> Path:
    """``$nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIG`` (must exist)."""
    results = env_dir("nnUNet_results")
    name = find_dataset(dataset, "nnUNet_results").name if str(dataset).isdigit() else str(dataset)
    folder = results / name / f"{trainer}__{plans}__{configuration}"
    if not folder.is_dir():
        known = sorted(p.name for p in (results / name).glob("*__*__*")) if (results / name).is_dir() else []
        raise InputError(f"model folder {folder} not found (trained models of {name}: {', '.join(known) or 'none'})")
    return folder


def check_folds(folder: Path, folds: "list[str] | None", checkpoint: str) -> list[str]:
    """The folds to use (all with ``checkpoint`` when ``folds`` is None); names the missing fold / file."""
    available = sorted(p.name[5:] for p in folder.glob("fold_*") if (p / checkpoint).is_file())
    if folds is None:
        if not available:
            raise InputError(f"{folder}: no fold has {checkpoint} (is training finished? try -chk checkpoint_best.pth)")
        return available
    for f in folds:
        if not (folder / f"fold_{f}").is_dir():
            raise InputError(f"{folder}: fold {f} not found (folds with {checkpoint}: {', '.join(available) or 'none'})")
        if not (folder / f"fold_{f}" / checkpoint).is_file():
            have = sorted(p.name for p in (folder / f"fold_{f}").glob("*.pth"))
            raise InputError(f"{folder / f'fold_{f}' / checkpoint}: checkpoint not found "
                             f"(present: {', '.join(have) or 'none'})")
    return list(folds)


def list_cases(input_dir: "str | os.PathLike", dataset_json: dict) -> list[Case]:
    """Group ``CASE_XXXX<ending>`` files by case; every case must have exactly the dataset's channels."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise InputError(f"input folder {folder} not found")
    ending = dataset_json["file_ending"]
    channels = dataset_json.get("channel_names") or dataset_json.get("modality")
    n = len(channels)
    grouped: dict[str, dict[int, str]] = {}
    for p in sorted(folder.iterdir()):
        m = re.fullmatch(r"(.+)_(\d{4})" + re.escape(ending), p.name)
        if m:
            grouped.setdefault(m.group(1), {})[int(m.group(2))] = str(p)
    if not grouped:
        raise InputError(f"{folder}: no images named CASE_XXXX{ending} (nnU-Net's naming, XXXX = channel)")
    cases = []
    for case_id, by_channel in grouped.items():
        if sorted(by_channel) != list(range(n)):
            found = ", ".join(os.path.basename(f) for f in by_channel.values())
            names = ", ".join(f"{int(k):04d}={v}" for k, v in channels.items())
            raise InputError(f"case {case_id}: found channel file(s) {found}, but dataset.json expects "
                             f"{n} channel(s) ({names})")
        cases.append(Case(case_id, tuple(by_channel[i] for i in range(n))))
    return cases


def fold_ids(folds) -> list:
    """Fold names as nnU-Net's ``initialize_from_trained_model_folder`` takes them (ints, or ``"all"``)."""
    return [f if f == "all" else int(f) for f in folds]


@dataclass(frozen=True)
class ModelSpec:
    """One trained model: ``D,C,TR,PLANS[,FOLDS]`` on the command line (folds joined by ``+``, e.g. ``0+1+2``
    or ``all``; omitted = every fold that has the checkpoint)."""

    dataset: str
    configuration: str
    trainer: str
    plans: str
    folds: "tuple[str, ...] | None" = None

    @classmethod
    def parse(cls, text: str, flag: str = "--model") -> "ModelSpec":
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) not in (4, 5) or not all(parts):
            raise InputError(f"{flag} {text!r}: expected D,C,TR,PLANS[,FOLDS], e.g. "
                             f"501,3d_fullres,MCDropoutTrainer,nnUNetPlans,0+1")
        folds = None
        if len(parts) == 5:
            folds = tuple(f.strip() for f in parts[4].split("+"))
            bad = [f for f in folds if not (f.isdigit() or f == "all")]
            if bad:
                raise InputError(f"{flag} {text!r}: fold(s) {', '.join(bad)} are not integers or 'all'")
        return cls(parts[0], parts[1], parts[2], parts[3], folds)

    def resolve(self, checkpoint: str) -> tuple[Path, list[str]]:
        """(model folder, folds to use), validated like ``nnext predict -d -c -tr -p -f``."""
        folder = model_folder(self.dataset, self.trainer, self.plans, self.configuration)
        return folder, check_folds(folder, None if self.folds is None else list(self.folds), checkpoint)
