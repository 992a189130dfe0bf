"""Validation of what ``nnext predict`` is given: model folder, folds, checkpoint, input cases."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_ext.errors import InputError
from nnunet_ext.io.paths import env_dir, find_dataset


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
    """The folds to use: when ``folds`` is None exactly those ``nnUNetPredictor.auto_detect_available_folds`` picks
    (``fold_<int>`` with ``checkpoint``, never ``fold_all``), in numeric order; names a missing fold / file."""
    from nnunet_ext.predictors.engine import detect_folds

    if folds is None:
        available = [str(f) for f in detect_folds(str(folder), checkpoint)]
        if not available:
            extra = " (only fold_all: pass -f all)" if (folder / "fold_all" / checkpoint).is_file() else ""
            raise InputError(f"{folder}: no fold has {checkpoint}{extra} (is training finished? try -chk "
                             "checkpoint_best.pth)")
        return available
    have_any = sorted((p.name[5:] for p in folder.glob("fold_*") if (p / checkpoint).is_file()),
                      key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))
    for f in folds:
        if not (f.isdigit() or f == "all"):
            raise InputError(f"-f {f}: folds are integers or 'all'")
        if not (folder / f"fold_{f}").is_dir():
            raise InputError(f"{folder}: fold {f} not found (folds with {checkpoint}: {', '.join(have_any) or 'none'})")
        if not (folder / f"fold_{f}" / checkpoint).is_file():
            have = sorted(p.name for p in (folder / f"fold_{f}").glob("*.pth"))
            raise InputError(f"{folder / f'fold_{f}' / checkpoint}: checkpoint not found "
                             f"(present: {', '.join(have) or 'none'})")
    return list(dict.fromkeys(folds))


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

    @classmethod
    def from_args(cls, args) -> "ModelSpec":
        """From ``nnext predict -d -c -tr -p -f``."""
        if getattr(args, "d", None) is None or getattr(args, "c", None) is None:
            raise InputError(f"-m {args.m} needs -d DATASET and -c CONFIGURATION")
        return cls(str(args.d), args.c, args.tr, args.p, None if args.f is None else tuple(str(f) for f in args.f))

    def resolve(self, checkpoint: str) -> tuple[Path, list[str]]:
        """(model folder, folds to use), validated like ``nnext predict -d -c -tr -p -f``."""
        folder = model_folder(self.dataset, self.trainer, self.plans, self.configuration)
        return folder, check_folds(folder, None if self.folds is None else list(self.folds), checkpoint)


def read_case_checked(case: Case, plans_manager, configuration_manager, nan_policy: str = "refuse"):
    """Read one case with the plans' reader after the integrity checks of :mod:`nnunet_ext.io.integrity` (complete
    gzip streams, sane spacing, finite values, one scalar image per channel, matching grids, 2D / 3D as the
    configuration needs) -> ``(image (C, *spatial), properties)``; one-line InputError naming the file."""
    from nnunet_ext.io.integrity import check_image_file, check_values

    shapes = []
    for f in case.files:
        shape, geometry = check_image_file(f, ndim=(2, 3), nan_policy=nan_policy)
        shapes.append((f, shape, geometry))
    f0, shape0, g0 = shapes[0]
    for f, shape, g in shapes[1:]:
        if shape != shape0 or not g.matches(g0):
            what = ([f"size (x,y,z) {tuple(shape)[::-1]} vs {tuple(shape0)[::-1]}"] if shape != shape0 else []) \
                + g.differences(g0)
            raise InputError(f"{f}: channel grid differs from {os.path.basename(f0)}: {'; '.join(what)}; all "
                             "channels of a case must share one grid")
    if len(configuration_manager.patch_size) == 3 and len(shape0) != 3:
        raise InputError(f"{f0}: a 2D image of size {shape0[::-1]}, but the model is 3D (patch "
                         f"{tuple(configuration_manager.patch_size)}); use a 2d model or a 3D image")
    reader = plans_manager.image_reader_writer_class()
    try:
        image, properties = reader.read_images(list(case.files))
    except Exception as e:  # nnU-Net readers raise assorted errors on foreign files
        raise InputError(f"{f0}: cannot be read by {type(reader).__name__} ({type(e).__name__}: {e})") from None
    for c, f in enumerate(case.files):
        image[c] = check_values(image[c], f, kind="image", nan_policy=nan_policy)
    return image, properties
