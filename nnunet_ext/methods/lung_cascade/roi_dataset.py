"""Stage-2 training data of the lung cascade (isler2025 III.B): a new nnU-Net raw dataset of ROI crops.

Every connected component of the mask (reference labels, or stage-1 predictions) gives one crop: its bounding
box plus ``margin`` voxels, clipped at the image border (:func:`nnunet_ext.core.roi.roi_boxes`).
All channels and the reference label are cropped with the same box; each crop keeps the physical placement of
its voxels (origin moved along the direction cosines), so it overlays the source image exactly. ``roi_info.json``
records, per crop, the source case and the box, for paste-back. Labels and masks may only hold the values the
source's ``dataset.json`` declares (:mod:`nnunet_ext.io.label_check`; a value 3 used to be copied into the crops).
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from nnunet_ext.core.roi import roi_boxes
from nnunet_ext.errors import InputError
from nnunet_ext.io.crop_dataset import write_crop, write_crop_dataset_json
from nnunet_ext.io.imageio import read_image
from nnunet_ext.io.paths import env_dir, find_dataset, staged_dataset
from nnunet_ext.predictors.inputs import list_cases


def build_roi_dataset(source: "int | str", target_id: int, margin: int = 0, masks_from: str = "gt",
                      name: "str | None" = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``$nnUNet_raw/Dataset{target_id}_{name}`` with one training case per component; return it.

    ``masks_from``: ``"gt"`` (the source's ``labelsTr``) or a folder of stage-1 predictions ``CASE<ending>``.
    """
    if margin < 0:
        raise InputError(f"--margin must be >= 0, got {margin}")
    from nnunet_ext.io.integrity import check_output_dir, load_json_checked, read_header_checked

    src = find_dataset(source, "nnUNet_raw")
    dataset_json = load_json_checked(src / "dataset.json", ("file_ending",))
    if not (dataset_json.get("channel_names") or dataset_json.get("modality")):
        raise InputError(f"{src / 'dataset.json'}: dataset.json lacks required key 'channel_names'")
    ending = dataset_json["file_ending"]
    from nnunet_ext.io.label_check import check_label_values, declared_label_values

    declared = declared_label_values(dataset_json.get("labels"), src / "dataset.json")
    check_output_dir(env_dir("nnUNet_raw"), "nnUNet_raw folder")
    mask_dir = src / "labelsTr" if masks_from == "gt" else Path(masks_from)
    if not mask_dir.is_dir():
        raise InputError(f"mask folder {mask_dir} not found")
    cases = list_cases(src / "imagesTr", dataset_json)
    missing = [c.case_id for c in cases if not (mask_dir / f"{c.case_id}{ending}").is_file()]
    if missing:
        raise InputError(f"{mask_dir}: no mask for case(s) {', '.join(missing[:10])}")
    for case in cases:  # every file complete, 3D, plausible spacing, on the label's grid: before writing anything
        label_file = src / "labelsTr" / f"{case.case_id}{ending}"
        grid = read_header_checked(label_file, ndim=3)
        for f in (mask_dir / f"{case.case_id}{ending}", *case.files):
            shape, g = read_header_checked(f, ndim=3)
            if shape != grid[0] or not g.matches(grid[1]):
                raise InputError(f"{f}: grid {shape} (spacing {tuple(round(v, 4) for v in g.spacing)}) does not match "
                                 f"the label {label_file.name} {grid[0]} (spacing "
                                 f"{tuple(round(v, 4) for v in grid[1].spacing)})")
    name = name or f"{src.name[11:]}ROI{margin}"
    info, n = {"source": src.name, "margin_vox": margin, "masks_from": masks_from, "crops": {}}, 0
    with staged_dataset(env_dir("nnUNet_raw"), target_id, name, overwrite) as (tmp, final):
        for sub in ("imagesTr", "labelsTr"):
            (tmp / sub).mkdir(parents=True)
        for case in tqdm(cases, desc="ROI crops", disable=not progress):
            mask, mask_geometry = read_image(mask_dir / f"{case.case_id}{ending}", kind="mask")
            label, geometry = read_image(src / "labelsTr" / f"{case.case_id}{ending}", kind="label")
            for arr, path in ((label, src / "labelsTr" / f"{case.case_id}{ending}"),
                              (mask, mask_dir / f"{case.case_id}{ending}")):  # copied / cropped as they are
                check_label_values(arr, path, declared, str(src / "dataset.json"))
            if mask.shape != label.shape or not mask_geometry.matches(geometry):
                raise InputError(f"case {case.case_id}: mask {mask.shape} does not match the label grid {label.shape}")
            channels = [read_image(f, kind="image")[0] for f in case.files]
            for k, box in enumerate(roi_boxes(mask > 0, margin, per_component=True)):
                crop_id = f"{case.case_id}_roi{k}"
                write_crop(channels, label, geometry, box, tmp, crop_id, ending)
                info["crops"][crop_id] = {"case": case.case_id, "box_zyx": [[s.start, s.stop] for s in box]}
                n += 1
        if n == 0:
            raise InputError(f"no components in the masks of {mask_dir}: nothing to crop")
        write_crop_dataset_json(tmp, dataset_json, n, f"{name} (ROI crops of {src.name}, margin {margin})",
                                info, "roi_info.json")
    print(f"wrote {n} ROI crops of {len(cases)} cases to {final}")
    return final


def add_arguments(parser) -> None:
    parser.add_argument("-d", required=True, help="source dataset ID or name (in nnUNet_raw)")
    parser.add_argument("-t", type=int, required=True, help="new dataset ID")
    from nnunet_ext.methods.lung_cascade.filter_options import DEFAULT_MARGIN

    parser.add_argument("--margin", type=int, default=DEFAULT_MARGIN,
                        help=f"voxels added around each component (default {DEFAULT_MARGIN}, isler2025's best "
                        "ROI-0margin; the cascade's --margin must match it, roi_info.json records it)")
    parser.add_argument("--from", dest="masks_from", default="gt",
                        help="'gt' (the source labels, default) or a folder of stage-1 predictions")
    parser.add_argument("--name", default=None, help="new dataset name (default <source name>ROI<margin>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset with ID -t")


def run(args) -> int:
    if not 1 <= args.t <= 999:
        raise InputError(f"-t must be a dataset ID in 1..999, got {args.t}")
    build_roi_dataset(args.d, args.t, args.margin, args.masks_from, args.name, args.overwrite)
    return 0


__all__ = ["build_roi_dataset"]
