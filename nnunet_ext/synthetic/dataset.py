"""Writing phantom datasets as nnU-Net v2 raw datasets (``$nnUNet_raw/DatasetXXX_Name``).

Generation (the ``generate_<kind>_case`` functions) is pure numpy; this module does all the IO. A dataset is
built in a hidden temporary sibling folder and renamed into place at the end, so an interrupted run never
leaves a half-written dataset behind.
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry, write_image
from nnunet_ext.io.paths import staged_dataset

FILE_ENDING = ".nii.gz"
INFO_FILE = "phantom_info.json"
MIN_SIZE, MAX_SIZE = 16, 512


@dataclass
class PhantomCase:
    """One generated case: channel images (z, y, x), the label map, extra maps written to side folders
    (``{"lungmasks": arr}`` -> ``lungmasksTr/CASE.nii.gz``), the shared geometry and JSON-able metadata."""

    images: list[np.ndarray]
    label: np.ndarray
    side_maps: dict[str, np.ndarray] = field(default_factory=dict)
    geometry: Geometry | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: per-rater label maps, written as ``labelsTr_raters/CASE_rater{k}.nii.gz`` (nodule phantom)
    rater_labels: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class KindSpec:
    """What a phantom kind generates and how its dataset.json looks."""

    generator: str  # "module:function", imported lazily
    default_name: str
    channel_names: dict[str, str]
    labels: dict[str, Any]
    extra_json: dict[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    description: str = ""

    def module(self):
        return importlib.import_module(self.generator.split(":")[0])

    def generate(self) -> Callable[..., PhantomCase]:
        return getattr(self.module(), self.generator.split(":")[1])


KINDS: dict[str, KindSpec] = {
    "chest": KindSpec("nnunet_ext.synthetic.chest:generate_chest_case", "NnextChest", {"0": "CT"},
                      {"background": 0, "tumor": 1},
                      description="synthetic chest CT with lung tumours, distractor blobs and lung masks"),
    "brain": KindSpec("nnunet_ext.synthetic.brain:generate_brain_case", "NnextBrain",
                      {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
                      {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
                      extra_json={"regions_class_order": [1, 2, 3]},
                      description="synthetic multi-sequence brain MR with BraTS-like glioma labels "
                                  "(1 oedema, 2 necrosis / non-enhancing core, 3 enhancing tumour)"),
    "nodule": KindSpec("nnunet_ext.synthetic.nodule:generate_nodule_case", "NnextNodule", {"0": "CT"},
                       {"background": 0, "nodule": 1}, options=("raters", "rater_model"),
                       description="synthetic lung nodule CT crops with several simulated raters"),
    "headneck": KindSpec("nnunet_ext.synthetic.headneck:generate_headneck_case", "NnextHeadNeck",
                         {"0": "CT", "1": "PET"}, {"background": 0, "GTVp": 1, "GTVn": 2},
                         options=("ambiguous_rate",),
                         description="synthetic head-and-neck PET/CT with primary tumour and lymph nodes"),
}


def resolve_raw_dir(raw_dir: str | os.PathLike | None = None) -> Path:
    """``raw_dir`` if given, else ``$nnUNet_raw``; InputError when neither is set."""
    raw = os.fspath(raw_dir) if raw_dir is not None else os.environ.get("nnUNet_raw", "")
    if not raw:
        raise InputError("nnUNet_raw is not set; set it (e.g. 'export nnUNet_raw=/data/nnUNet_raw') "
                         "or pass --raw DIR")
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: nnUNet_raw exists but is not a folder")
    return path


def case_seeds(seed: int, num_train: int, num_test: int) -> tuple[list, list]:
    """Independent per-case seed sequences: case k of a split never depends on the number of cases."""
    train_root, test_root = np.random.SeedSequence(seed).spawn(2)
    return train_root.spawn(num_train), test_root.spawn(num_test)


def _validate(kind, dataset_id, num_train, num_test, seed, size, name, kind_options) -> tuple[KindSpec, str]:
    if kind not in KINDS:
        raise InputError(f"unknown phantom kind {kind!r}; choose one of: {', '.join(KINDS)}")
    spec = KINDS[kind]
    if not isinstance(dataset_id, (int, np.integer)) or not 1 <= dataset_id <= 999:
        raise InputError(f"dataset ID must be an integer from 1 to 999, got {dataset_id!r}")
    if num_train < 1:
        raise InputError(f"number of training cases must be at least 1, got {num_train}")
    if num_test < 0:
        raise InputError(f"number of test cases must be 0 or more, got {num_test}")
    if seed < 0:
        raise InputError(f"seed must be 0 or more, got {seed}")
    if size is not None and (len(size) != 3 or not all(MIN_SIZE <= int(s) <= MAX_SIZE for s in size)):
        raise InputError(f"size must be three integers Z Y X from {MIN_SIZE} to {MAX_SIZE}, got {list(size)}")
    name = spec.default_name if name is None else name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise InputError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    unknown = sorted(set(kind_options) - set(spec.options))
    if unknown:
        raise InputError(f"option(s) {', '.join(unknown)} do not apply to the {kind} phantom")
    return spec, name


def write_dataset(kind: str, dataset_id: int, num_train: int, num_test: int = 0, seed: int = 0,
                  size: Sequence[int] | None = None, name: str | None = None, overwrite: bool = False,
                  raw_dir: str | os.PathLike | None = None, progress: bool = True, **kind_options) -> Path:
    """Generate ``num_train`` (+ ``num_test``) cases of phantom ``kind`` into ``raw/DatasetXXX_Name`` and
    return that folder. Refuses an existing dataset ID unless ``overwrite``."""
    kind_options = {k: v for k, v in kind_options.items() if v is not None}
    spec, name = _validate(kind, dataset_id, num_train, num_test, seed, size, name, kind_options)
    validate_options = getattr(spec.module(), "validate_options", None)
    if validate_options is not None:
        validate_options(**kind_options)  # raises InputError
    raw = resolve_raw_dir(raw_dir)
    from nnunet_ext.io.integrity import check_output_dir

    check_output_dir(raw, "nnUNet_raw folder")
    with staged_dataset(raw, dataset_id, name, overwrite) as (tmp, final):
        _generate_into(tmp, final.name, kind, spec, num_train, num_test, seed, size, kind_options, progress)
    return final


def _generate_into(folder: Path, dataset_name: str, kind: str, spec: KindSpec, num_train: int, num_test: int,
                   seed: int, size, options: dict, progress: bool) -> None:
    from tqdm import tqdm

    generate = spec.generate()
    size = tuple(int(s) for s in (size or spec.module().DEFAULT_SIZE))
    train_seeds, test_seeds = case_seeds(seed, num_train, num_test)
    digits = max(3, len(str(max(num_train, num_test) - 1)))
    jobs = [("Tr", f"{kind}_{k:0{digits}d}", s) for k, s in enumerate(train_seeds)]
    jobs += [("Ts", f"{kind}_test_{k:0{digits}d}", s) for k, s in enumerate(test_seeds)]
    cases: dict[str, Any] = {}
    geometry = None
    for split, case_id, ss in tqdm(jobs, desc=f"synth {kind}", unit="case", disable=not progress):
        case = generate(np.random.default_rng(ss), size, **options)
        geometry = case.geometry
        _write_case(folder, split, case_id, case)
        cases[case_id] = {"split": "train" if split == "Tr" else "test", **case.info}
    dataset_json = {"channel_names": spec.channel_names, "labels": spec.labels, "numTraining": num_train,
                    "file_ending": FILE_ENDING, **spec.extra_json,
                    "overwrite_image_reader_writer": "SimpleITKIO",
                    "name": dataset_name, "description": spec.description, "reference": "nnunet_ext.synthetic",
                    "licence": "CC0 (synthetic)", "release": "1.0"}
    _write_json(folder / "dataset.json", dataset_json)
    info = {"kind": kind, "seed": seed, "size_zyx": list(size), "num_train": num_train, "num_test": num_test,
            "options": options, "spacing_xyz": list(geometry.spacing), "origin_xyz": list(geometry.origin),
            "direction": list(geometry.direction), "coordinates": "LPS (+x left, +y posterior, +z superior)",
            "cases": cases}
    _write_json(folder / INFO_FILE, info)


def _write_case(folder: Path, split: str, case_id: str, case: PhantomCase) -> None:
    """Write channel images, label, side maps and rater labels of one case."""
    for sub in [f"images{split}", f"labels{split}", *(f"{n}{split}" for n in case.side_maps)]:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for c, image in enumerate(case.images):
        write_image(image, case.geometry, folder / f"images{split}" / f"{case_id}_{c:04d}{FILE_ENDING}")
    write_image(case.label.astype(np.uint8), case.geometry, folder / f"labels{split}" / f"{case_id}{FILE_ENDING}")
    for side, arr in case.side_maps.items():
        write_image(arr.astype(np.uint8), case.geometry, folder / f"{side}{split}" / f"{case_id}{FILE_ENDING}")
    if case.rater_labels:
        rdir = folder / f"labels{split}_raters"
        rdir.mkdir(parents=True, exist_ok=True)
        for k, arr in enumerate(case.rater_labels):
            write_image(arr.astype(np.uint8), case.geometry, rdir / f"{case_id}_rater{k}{FILE_ENDING}")


def _write_json(path: Path, obj) -> None:
    from nnunet_ext.io.atomic_write import write_json

    write_json(path, obj, default=_json_default)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (np.ndarray, tuple)):
        return o.tolist() if isinstance(o, np.ndarray) else list(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
