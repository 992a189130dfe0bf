"""``-m cascade``: the lung-aware coarse-to-fine cascade (Isler et al. 2025, sec. III.B-F), one case at a time.

1. **Stage 1** (coarse localisation): the full volume through a stage-1 model with nnU-Net's deterministic
   prediction (:class:`~nnunet_ext.predictors.stock.StockPredictor`: dropout off, mirroring unless disabled).
2. **Lung mask**: a folder of masks (resampled onto the CT grid with nearest neighbour and a warning when the
   grids differ), or computed (:func:`~nnunet_ext.postprocessing.lungmask.compute_lung_mask`), or none (the lung
   filters are skipped, only Top-K applies).
3. **Component filter** of the binary stage-1 mask (any label > 0):
   :func:`~nnunet_ext.postprocessing.component_filter.filter_components` (dilation merge, lung overlap, stricter
   central zone, distance rescue, Top-K; default Top-1, the paper's best, Table II).
4. **ROIs**: each kept component's bounding box (the merged component of step 3) grown by ``margin`` voxels
   (0 = ROI-0margin, 16 = ROI-16margin) and clipped at the border (:func:`~nnunet_ext.postprocessing.roi.grow_box`).
5. **Stage 2** on each ROI alone: the crop of every input channel, with its own geometry (origin moved along the
   direction cosines, so it is exactly the sub-grid the stage-2 training crops of ``nnext roi-dataset`` are),
   goes through the stage-2 model's own nnU-Net preprocessing and the MC-dropout predictor
   (:class:`~nnunet_ext.predictors.tta_mc.TTAMCPredictor`; default no TTA, variance map = the paper's U).
6. **Paste-back** (:class:`~nnunet_ext.postprocessing.roi.RoiBlend`): probabilities and uncertainty maps of
   overlapping ROIs are averaged; outside every ROI the segmentation is background and the uncertainty 0.
   The final segmentation is the stage-2 label manager's conversion of the blended probabilities.

Stage 2 never sees anything outside its ROIs; a case whose filter keeps no component gets an empty
segmentation (not an error).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from nnunet_ext.errors import InputError
from nnunet_ext.imageio import Geometry
from nnunet_ext.postprocessing.component_filter import LungFilterConfig, filter_components
from nnunet_ext.postprocessing.roi import RoiBlend, crop, grow_box
from nnunet_ext.predictors.export import geometry_from_properties, to_original
from nnunet_ext.predictors.inputs import Case

#: how the lung mask is obtained, besides a folder of masks
LUNG_BACKENDS = ("auto", "threshold", "lungmask", "none")


@dataclass
class CascadeResult:
    """Everything the cascade produced for one case (arrays in the input's (z, y, x) grid)."""

    geometry: Geometry
    segmentation: np.ndarray
    probabilities: np.ndarray
    maps: dict[str, np.ndarray]
    stage1: np.ndarray
    filtered: np.ndarray
    lung: np.ndarray
    log: dict = field(default_factory=dict)


@dataclass
class CoarseStage:
    """Input image ``(C, z, y, x)`` with nnU-Net's reader properties, stage-1 segmentation and lung mask."""

    image: np.ndarray
    properties: dict
    geometry: Geometry
    stage1: np.ndarray
    lung: np.ndarray
    lung_log: dict


def _crop_properties(properties: dict, box) -> dict:
    """nnU-Net reader properties of the sub-grid ``box`` of an image (spacing unchanged, origin moved)."""
    stuff = properties["sitk_stuff"]
    g = Geometry(tuple(stuff["spacing"]), tuple(stuff["origin"]), tuple(stuff["direction"]))
    c = g.cropped([s.start for s in box])
    return {"spacing": list(properties["spacing"]),
            "sitk_stuff": {"spacing": c.spacing, "origin": c.origin, "direction": c.direction}}


def _run_model(predictor, image: np.ndarray, properties: dict, map_names=()):
    """Preprocess ``image`` (C, z, y, x) with the model's own preprocessor, predict, export to the input grid."""
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, props = preprocessor.run_case_npy(image, None, copy.deepcopy(properties), predictor.plans_manager,
                                               predictor.configuration_manager, predictor.dataset_json)
    logits, maps = predictor.predict_statistics(torch.from_numpy(data))
    return to_original(logits, maps, props, predictor, map_names)


class CascadePredictor:
    """Stage-1 predictor + component filter + stage-2 MC-dropout predictor on ROIs (module docstring).

    ``stage1`` / ``stage2``: initialised :class:`~nnunet_ext.predictors.sliding_window.StatisticsPredictor`
    instances (stage 2 must provide the maps in ``map_names``). ``lung``: a folder of masks ``CASE<ending>``,
    or one of :data:`LUNG_BACKENDS`.
    """

    def __init__(self, stage1, stage2, filter_config: LungFilterConfig = LungFilterConfig(top_k=1),
                 margin: int = 0, lung: str = "auto", lungmask_weights: "str | None" = None,
                 map_names: "tuple[str, ...]" = ("variance",)):
        if int(margin) != margin or margin < 0:
            raise InputError(f"--margin must be an integer >= 0, got {margin}")
        missing = [n for n in map_names if n not in stage2.map_names]
        if missing:
            raise InputError(f"stage 2 provides {', '.join(stage2.map_names)}, not {', '.join(missing)}")
        n1, n2 = (len(p.dataset_json.get("channel_names") or p.dataset_json.get("modality")) for p in (stage1, stage2))
        if n1 != n2:
            raise InputError(f"stage 1 expects {n1} input channel(s), stage 2 {n2}: the ROI crops are cut from "
                             "the same images, so both models need the same channels")
        self.stage1, self.stage2 = stage1, stage2
        self.filter_config, self.margin = filter_config, int(margin)
        self.lung, self.lungmask_weights = lung, lungmask_weights
        self.map_names = tuple(dict.fromkeys(map_names))

    # -- steps ------------------------------------------------------------------------------------------------
    def lung_mask(self, case: Case, image: np.ndarray, geometry: Geometry, ending: str) -> tuple[np.ndarray, dict]:
        """(uint8 lung mask on the CT grid, log entry)."""
        if self.lung == "none":
            return np.zeros(image.shape[1:], np.uint8), {"source": "none"}
        if self.lung in LUNG_BACKENDS:
            from nnunet_ext.postprocessing.lungmask import compute_lung_mask

            mask, used = compute_lung_mask(image[0], geometry, backend=self.lung, weights=self.lungmask_weights)
            return mask.astype(np.uint8), {"source": f"computed ({used})"}
        import SimpleITK as sitk

        from nnunet_ext.postprocessing.cli import load_lung_on_grid

        path = f"{self.lung}/{case.case_id}{ending}"
        reference = geometry.apply(sitk.Image([int(s) for s in image.shape[1:][::-1]], sitk.sitkUInt8))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mask, resampled = load_lung_on_grid(path, reference, case.case_id)
        for w in caught:
            warnings.warn(str(w.message), stacklevel=2)
        entry = {"source": path, "resampled": resampled}
        if caught:
            entry["warnings"] = [str(w.message) for w in caught]
        return np.asarray(mask).astype(np.uint8), entry

    def coarse(self, case: Case, ending: str = ".nii.gz") -> "CoarseStage":
        """Stage 1 and the lung mask of one case (everything the filter and stage 2 start from)."""
        reader = self.stage1.plans_manager.image_reader_writer_class()
        image, properties = reader.read_images(list(case.files))
        geometry = geometry_from_properties(properties)
        if image.ndim != 4 or len(geometry.spacing) != 3:
            raise InputError(f"case {case.case_id}: the cascade needs 3D images, got shape {image.shape[1:]}")
        seg1 = _run_model(self.stage1, image, properties)[0]
        lung, lung_log = self.lung_mask(case, image, geometry, ending)
        return CoarseStage(image, properties, geometry, seg1.astype(np.uint8), lung, lung_log)

    def refine(self, coarse: "CoarseStage", seed: int = 0) -> CascadeResult:
        """Component filter, ROI crops, stage 2 with MC dropout and paste-back (steps 3-6 of the module docstring)."""
        image, geometry, seg1, lung = coarse.image, coarse.geometry, coarse.stage1, coarse.lung
        spacing_zyx = tuple(float(s) for s in geometry.spacing[::-1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filtered, flog = filter_components(seg1 > 0, lung, spacing_zyx, self.filter_config)
        flog.pop("config", None)
        shape = image.shape[1:]
        kept = [c for c in flog["components"] if c["kept"]]
        sigmoid = self.stage2.label_manager.has_regions
        k = self.stage2.label_manager.num_segmentation_heads
        blend = RoiBlend(shape, k, self.map_names, outside=None if sigmoid else np.eye(k)[0])
        self.stage2.set_seed(seed)
        rois = []
        for c in kept:
            box = grow_box(c["bbox"], self.margin, shape)
            _, probs, maps = _run_model(self.stage2, crop(image, box), _crop_properties(coarse.properties, box),
                                        self.map_names)
            blend.add(box, probs, maps)
            fg = (probs > 0.5).any(0) if sigmoid else probs.argmax(0) > 0
            rois.append({"component": c["id"], "box_zyx": [[s.start, s.stop] for s in box],
                         "stage2_voxels": int(fg.sum()), **{f"mean_{n}": float(maps[n].mean()) for n in self.map_names}})
        probs, maps, _ = blend.result()
        seg = np.asarray(self.stage2.label_manager.convert_probabilities_to_segmentation(probs))  # 0 where ~covered
        log = {"stage1_voxels": int((seg1 > 0).sum()), "lung": coarse.lung_log, "margin_vox": self.margin,
               "filter": flog, "rois": rois, "warnings": [str(w.message) for w in caught]}
        return CascadeResult(geometry, seg.astype(np.uint8), probs, maps, seg1, filtered, lung, log)

    def predict_case(self, case: Case, seed: int = 0, ending: str = ".nii.gz") -> CascadeResult:
        """Run the whole cascade on one case (module docstring). ``seed`` seeds stage 2's MC sampling."""
        return self.refine(self.coarse(case, ending), seed)
