"""Raw nnU-Net datasets of crops (the lung cascade's ROI crops, the glioma method's kernel crops): one crop of
every channel and of the label per box, origins kept exactly, and the crop dataset's dataset.json + crop record."""
from __future__ import annotations

import json
from pathlib import Path

from nnunet_ext.core.roi import crop
from nnunet_ext.io.imageio import atomic_write_text, write_image


def write_crop(channels, label, geometry, box, folder: Path, crop_id: str, ending: str) -> None:
    """Write one crop (``box``: a tuple of slices, numpy z, y, x order) of every image channel and of the label
    into ``folder/imagesTr`` / ``folder/labelsTr``, with the crop's origin kept exactly (``Geometry.cropped``)."""
    g = geometry.cropped([s.start for s in box])
    for c, image in enumerate(channels):
        write_image(crop(image, box), g, folder / "imagesTr" / f"{crop_id}_{c:04d}{ending}")
    write_image(crop(label, box), g, folder / "labelsTr" / f"{crop_id}{ending}")


def write_crop_dataset_json(folder: Path, dataset_json: dict, n: int, name: str, info: dict, info_file: str) -> None:
    """The crop dataset's dataset.json (the source's, with ``numTraining`` and ``name`` replaced), its crop
    record ``info_file`` (which case and box each crop came from) and ``splits_final.json`` grouped by source case
    (:mod:`nnunet_ext.io.splits`; ``nnext plan`` installs it where nnU-Net reads it)."""
    from nnunet_ext.io.splits import write_crop_splits

    out_json = {k: v for k, v in dataset_json.items() if k not in ("numTraining", "name")}
    out_json.update(numTraining=n, name=name)
    info["splits"] = write_crop_splits(folder, {cid: c["case"] for cid, c in info["crops"].items()}, info["source"])
    atomic_write_text(folder / "dataset.json", json.dumps(out_json, indent=2))
    atomic_write_text(folder / info_file, json.dumps(info, indent=2))
