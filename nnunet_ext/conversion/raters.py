"""``nnext convert raters``: images + per-rater mask files -> an nnU-Net raw dataset with rater-set labels.

Input layout (what ``nnext synth nodule`` writes; any nnU-Net-like folder):
``imagesTr/CASE_0000.nii.gz`` (channels ``_0001`` ...), ``labelsTr_raters/CASE_rater{k}.nii.gz`` (binary, one
file per rater, k = 0, 1, ...), optionally ``imagesTs/`` + ``labelsTs_raters/``, optionally ``dataset.json``
(its ``channel_names`` are kept). Output ``$nnUNet_raw/DatasetXXX_NAME``: the images, ``labelsTr/CASE.nii.gz``
= :func:`nnunet_ext.methods.multi_rater.raters.encode_raters` of the raters in order of k, ``labelsTr_raters/`` copied
(the
evaluation reads the raters from there), the same for ``Ts``, and a ``dataset.json`` that nnU-Net accepts:
one region ``nodule`` = every code of up to K_max raters (``regions_class_order [1]``), so the network has
one sigmoid output and nnU-Net's predictions are 1 = nodule; plus ``nnext_raters`` (encoding, max_raters,
per-case K).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import copy_file, write_json
from nnunet_ext.methods.multi_rater.rater_files import FILE_ENDING, RATER_RE, find_rater_files  # noqa: F401
from nnunet_ext.methods.multi_rater.raters import ENCODING_NAME, MAX_RATERS, encode_raters, max_label

DATASET_KEY = "nnext_raters"


def rater_dataset_json(channel_names: dict, n_raters: dict[str, int], num_training: int, name: str,
                       description: str = "") -> dict:
    """dataset.json (v2) of a rater-set dataset; ``n_raters`` maps case -> K (all splits)."""
    k_max = max(n_raters.values()) if n_raters else 1
    return {"channel_names": channel_names,
            "labels": {"background": 0, "nodule": list(range(1, max_label(k_max) + 1))},
            "regions_class_order": [1], "numTraining": num_training, "file_ending": FILE_ENDING,
            "name": name,
            "description": description or "rater-set labels (nnunet_ext): label = offset(K) + rater bit pattern",
            DATASET_KEY: {"encoding": ENCODING_NAME, "max_raters": k_max, "n_raters": dict(sorted(n_raters.items()))}}


def _image_files(folder: Path, case: str) -> list[Path]:
    from nnunet_ext.io.integrity import check_image_file

    files = sorted(folder.glob(f"{case}_[0-9][0-9][0-9][0-9]{FILE_ENDING}"))
    if not files:
        raise InputError(f"{folder / (case + '_0000' + FILE_ENDING)}: image of case {case} not found")
    for p in files:  # the images are copied as they are: check them first (complete, no NaN / Inf voxels)
        check_image_file(p)
    return files


def read_rater_masks(image: Path, raters: dict[int, Path]) -> np.ndarray:
    """(K, z, y, x) bool masks of one case, each checked against the image's grid (one-line InputErrors)."""
    from nnunet_ext.io.imageio import read_header, read_image
    from nnunet_ext.io.label_check import check_binary

    if not raters:
        raise InputError(f"{image}: case has zero raters (no CASE_rater{{k}}{FILE_ENDING} files)")
    if len(raters) > MAX_RATERS:
        raise InputError(f"{image}: {len(raters)} raters, the rater-set encoding supports at most {MAX_RATERS}")
    shape, geometry = read_header(image)
    masks = []
    for k in sorted(raters):
        rshape, rgeom = read_header(raters[k])
        if tuple(rshape) != tuple(shape) or not rgeom.matches(geometry):
            raise InputError(f"{raters[k]}: geometry differs from the image {image.name} "
                             f"(shape {tuple(rshape)} vs {tuple(shape)}, or origin / spacing / direction)")
        arr, _ = read_image(raters[k], kind="label")
        check_binary(arr, raters[k], "rater mask")
        masks.append(arr.astype(bool))
    return np.stack(masks)


def convert_raters(input_dir, dataset_id: int, name: str = "Raters", overwrite: bool = False,
                   progress: bool = True) -> Path:
    """Build the rater-set dataset (module docstring); returns its folder."""
    from tqdm import tqdm

    from nnunet_ext.io.imageio import read_header, write_image
    from nnunet_ext.io.paths import env_dir, staged_dataset

    src = Path(input_dir)
    splits = [s for s in ("Tr", "Ts") if (src / f"labels{s}_raters").is_dir()]
    if "Tr" not in splits:
        raise InputError(f"{src / 'labelsTr_raters'}: folder of CASE_rater{{k}}{FILE_ENDING} files not found")
    channel_names = {"0": "CT"}
    if (src / "dataset.json").is_file():
        from nnunet_ext.io.integrity import load_json_checked

        channel_names = load_json_checked(src / "dataset.json").get("channel_names", channel_names)
    plan = {s: find_rater_files(src / f"labels{s}_raters") for s in splits}
    if not plan["Tr"]:
        raise InputError(f"{src / 'labelsTr_raters'}: no CASE_rater{{k}}{FILE_ENDING} files")
    for split in splits:  # an image without any rater file is a case with zero raters
        for img in sorted((src / f"images{split}").glob(f"*_0000{FILE_ENDING}")):
            case = img.name[: -len(f"_0000{FILE_ENDING}")]
            if case not in plan[split]:
                read_rater_masks(img, {})
    n_raters: dict[str, int] = {}
    with staged_dataset(env_dir("nnUNet_raw"), dataset_id, name, overwrite) as (tmp, final):
        for split in splits:
            img_src = src / f"images{split}"
            (tmp / f"images{split}").mkdir(parents=True)
            (tmp / f"labels{split}").mkdir()
            (tmp / f"labels{split}_raters").mkdir()
            for case, raters in tqdm(plan[split].items(), desc=f"rater sets {split}", disable=not progress):
                images = _image_files(img_src, case)
                masks = read_rater_masks(images[0], raters)
                _, geometry = read_header(images[0])
                write_image(encode_raters(masks), geometry, tmp / f"labels{split}" / f"{case}{FILE_ENDING}")
                for p in images:
                    copy_file(p, tmp / f"images{split}" / p.name)
                for j, k in enumerate(sorted(raters)):
                    copy_file(raters[k], tmp / f"labels{split}_raters" / f"{case}_rater{j}{FILE_ENDING}")
                n_raters[case] = len(raters)
        ds = rater_dataset_json(channel_names, n_raters, len(plan["Tr"]), name)
        write_json(tmp / "dataset.json", ds, indent=2)
    from nnunet_ext.conversion.outcome import report

    report(final, len(n_raters), {})  # every case is converted or the run stops naming the file
    return final
