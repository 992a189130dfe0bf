"""Cross-validation splits grouped by source case, for datasets of crops (kernel crops, ROI crops).

A crop dataset holds several training cases per source case (``CASE_k0003``, ``CASE_roi1``), overlapping and
nested. nnU-Net's default split (``generate_crossval_split``: ``KFold(5, shuffle=True, random_state=12345)`` over
the sorted identifiers) would put crops of one source case into both the training and the validation part of a
fold. Here the split is made over the source cases and every crop follows its case:

    val(k) = {crop : source(crop) in val_source(k)},   train(k) = all crops - val(k)

``val_source`` is the source dataset's own split when it has one (``nnUNet_preprocessed/SOURCE/splits_final.json``
covering every source case), else nnU-Net's default split of the sorted source case IDs, i.e. exactly the split
nnU-Net gives the source dataset. So fold k of the crop model and fold k of a model trained on the source dataset
hold out the same cases (what out-of-fold fusion needs).

The crop dataset writes the result as ``splits_final.json`` into its raw folder (the record); ``nnext plan``
installs it into ``nnUNet_preprocessed/DatasetX/``, where nnU-Net's ``do_split`` reads it (nnU-Net 2.8.1's
``ExperimentPlanner`` copies a raw ``splits_final.json`` there too, so ``nnUNetv2_plan_and_preprocess`` honours it,
but it stops on an assert when a different split is already there; ``nnext plan`` replaces that one, saying so).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import atomic_write_text

SPLITS_FILE = "splits_final.json"
#: files of a crop dataset (raw folder) that map each crop to its source case: {"crops": {crop_id: {"case": ..}}}
CROP_INFO_FILES = ("kernel_info.json", "roi_info.json")
#: nnU-Net's defaults (nnUNetTrainer.do_split)
N_SPLITS, SEED = 5, 12345


def default_splits(identifiers, n_splits: int = N_SPLITS, seed: int = SEED) -> list[dict]:
    """nnU-Net's own 5-fold split of ``identifiers`` (sorted first, as ``do_split`` sorts the dataset keys)."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    return generate_crossval_split(sorted(identifiers), seed=seed, n_splits=n_splits)


def grouped_splits(groups: dict, source_splits: "list[dict] | None" = None) -> list[dict]:
    """Splits of the items of ``groups`` (item -> source case) with every source case's items on one side.

    ``source_splits``: the folds of the source cases (``[{"train": [...], "val": [...]}]``); default nnU-Net's
    split of the sorted source cases (``min(5, n)`` folds). ValueError when a source case is in no / several
    validation parts, or there are fewer than two source cases."""
    sources = sorted(set(groups.values()))
    if len(sources) < 2:
        raise ValueError(f"a cross-validation split needs >= 2 source cases, got {len(sources)}")
    if source_splits is None:
        source_splits = default_splits(sources, min(N_SPLITS, len(sources)))
    fold_of: dict = {}
    for k, s in enumerate(source_splits):
        for case in s["val"]:
            if case in fold_of:
                raise ValueError(f"source case {case} is in the validation part of folds {fold_of[case]} and {k}")
            fold_of[case] = k
    missing = [c for c in sources if c not in fold_of]
    if missing:
        raise ValueError(f"source case(s) {', '.join(missing[:5])} in no validation part of the source splits")
    out = []
    for k in range(len(source_splits)):
        out.append({"train": sorted(i for i, g in groups.items() if fold_of[g] != k),
                    "val": sorted(i for i, g in groups.items() if fold_of[g] == k)})
    return out


def leaks(splits: list[dict], groups: dict) -> list[tuple[int, str]]:
    """``[(fold, source case)]`` with items of the case in both the training and the validation part."""
    found = []
    for k, s in enumerate(splits):
        common = {groups[i] for i in s["train"]} & {groups[i] for i in s["val"]}
        found += [(k, c) for c in sorted(common)]
    return found


def _preprocessed(name: str) -> "Path | None":
    import os

    root = os.environ.get("nnUNet_preprocessed")
    return Path(root) / name if root else None


def source_splits(source_name: str, sources) -> "list[dict] | None":
    """The source dataset's ``splits_final.json`` when it exists and its validation parts cover ``sources``."""
    folder = _preprocessed(source_name)
    path = folder / SPLITS_FILE if folder else None
    if path is None or not path.is_file():
        return None
    try:
        splits = json.loads(path.read_text())
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    covered = {c for s in splits for c in s.get("val", ())}
    return splits if set(sources) <= covered else None


def write_crop_splits(folder: Path, groups: dict, source_name: str) -> "dict | None":
    """Write the grouped ``splits_final.json`` of a crop dataset being built in ``folder`` (raw); returns a note
    for the dataset's info file, or None (and writes nothing) with fewer than two source cases."""
    sources = sorted(set(groups.values()))
    if len(sources) < 2:
        print(f"note: crops of {len(sources)} source case: no grouped cross-validation split written "
              "(train fold 'all')")
        return None
    given = source_splits(source_name, sources)
    splits = grouped_splits(groups, given)
    assert not leaks(splits, groups)
    atomic_write_text(folder / SPLITS_FILE, json.dumps(splits, indent=1))
    return {"file": SPLITS_FILE, "grouped_by": "source case", "folds": len(splits),
            "source_splits": f"nnUNet_preprocessed/{source_name}/{SPLITS_FILE}" if given else
            f"nnU-Net's default split of the sorted source cases (KFold, seed {SEED})"}


def crop_sources(raw_folder: Path) -> "dict | None":
    """``{crop_id: source case}`` from a crop dataset's info file, or None for an ordinary dataset."""
    for name in CROP_INFO_FILES:
        path = Path(raw_folder) / name
        if path.is_file():
            try:
                crops = json.loads(path.read_text())["crops"]
                return {cid: c["case"] for cid, c in crops.items()}
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"{path}: cannot read its crops' source cases ({e})") from None
    return None


def install_splits(raw_folder: Path) -> "Path | None":
    """Copy the raw dataset's grouped ``splits_final.json`` to ``nnUNet_preprocessed/<name>/`` (replacing what is
    there: a split nnU-Net made earlier would mix crops of one case); None when the raw folder has none."""
    src = Path(raw_folder) / SPLITS_FILE
    if not src.is_file():
        return None
    target_dir = _preprocessed(Path(raw_folder).name)
    if target_dir is None:
        raise InputError("nnUNet_preprocessed is not set")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / SPLITS_FILE
    if target.is_file() and target.read_bytes() != src.read_bytes():
        print(f"note: {target} replaced by the dataset's own {src}")
    tmp = target.with_name(f".{SPLITS_FILE}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(target)
    if json.loads(target.read_text()) != json.loads(src.read_text()):
        raise InputError(f"{target}: written copy differs from {src}")
    return target
