"""``-m cascade``: the lung-aware coarse-to-fine cascade (Isler et al. 2025, sec. III.B-F), one case at a time.

1. **Stage 1** (coarse localisation): the full volume through the stage-1 model with the ``--stage1-method``
   (default ``stock``: nnU-Net's deterministic prediction, mirroring unless ``--disable_tta``).
2. **Lung mask**: a folder of masks (resampled onto the CT grid with nearest neighbour and a warning when the
   grids differ), or computed (:func:`~nnunet_ext.methods.lung_cascade.lungmask.compute_lung_mask`), or none (the lung
   filters are skipped, only Top-K applies).
3. **Component filter** of the binary stage-1 mask (any label > 0):
   :func:`~nnunet_ext.methods.lung_cascade.component_filter.filter_components` (default Top-1, the paper's best,
   Table II).
4. **ROIs**: each kept (merged) component's bounding box grown by ``--margin`` voxels and clipped at the border.
   The margin must be the one the stage-2 model was trained with: it is read from the stage-2 raw dataset's
   ``roi_info.json`` (``nnext roi-dataset``) and a different ``--margin`` is refused unless ``--force-margin``.
5. **Stage 2** on each ROI alone with the ``--stage2-method`` (default ``tta_mc`` with MC dropout alone, as the
   paper: ``--tta none``; variance map = the paper's U): the crop of every input channel, with its exact sub-grid
   geometry, through the stage-2 model's own preprocessing.
6. **Paste-back** (:class:`~nnunet_ext.core.roi.RoiBlend`): probabilities and maps of overlapping ROIs
   are averaged; outside every ROI the segmentation is background and the uncertainty 0.

Side outputs: ``CASE_cascade.json`` (lung-mask source, the filter's component log, ROI boxes and per-ROI stage-2
statistics) and with ``--save-intermediates`` ``CASE_coarse``, ``CASE_coarse_filtered``, ``CASE_lungmask``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.geometry import crop_properties
from nnunet_ext.methods.lung_cascade.options import LUNG_BACKENDS, STAGE_METHODS, CascadeOptions  # noqa: F401
from nnunet_ext.predictors.inputs import Case, ModelSpec
from nnunet_ext.predictors.method import CaseContext, CaseResult, Method, build_stage

#: how the lung mask is obtained, besides a folder of masks
INTERMEDIATES = ("coarse", "coarse_filtered", "lungmask")


@dataclass
class CoarseStage:
    """Input image ``(C, z, y, x)`` with nnU-Net's reader properties, stage-1 segmentation and lung mask."""

    image: np.ndarray
    properties: dict
    geometry: object
    stage1: np.ndarray
    lung: np.ndarray
    lung_log: dict = field(default_factory=dict)


def stage2_margin(spec: ModelSpec) -> "int | None":
    """``margin_vox`` of the stage-2 raw dataset's ``roi_info.json``, or None when it cannot be found."""
    from nnunet_ext.io.paths import find_dataset

    try:
        folder = find_dataset(spec.dataset, "nnUNet_raw")
    except InputError:
        return None
    path = folder / "roi_info.json"
    if not path.is_file():
        return None
    from nnunet_ext.io.integrity import load_json_checked

    return int(load_json_checked(path, ["margin_vox"], what="roi_info.json")["margin_vox"])


class CascadeMethod(Method):
    """Stage-1 method + component filter + stage-2 method on ROIs (module docstring)."""

    name = "cascade"
    map_names = ("entropy", "variance", "mi")
    default_uncertainty = "variance"
    takes_model = False
    stage_methods = STAGE_METHODS
    option_defaults = {"tta": "none"}

    def __init__(self, stage1: Method, stage2: Method, filter_config, margin: int = 0, lung: str = "auto",
                 lungmask_weights: "str | None" = None, save_intermediates: bool = False, info: "dict | None" = None):
        n1, n2 = (len(m.dataset_json.get("channel_names") or m.dataset_json.get("modality")) for m in (stage1, stage2))
        if n1 != n2:
            raise InputError(f"stage 1 expects {n1} input channel(s), stage 2 {n2}: the ROI crops are cut from "
                             "the same images, so both models need the same channels")
        self.stage1, self.stage2, self.filter_config, self.margin = stage1, stage2, filter_config, int(margin)
        self.lung, self.lungmask_weights, self.save_intermediates = lung, lungmask_weights, save_intermediates
        self.info = info or {}
        self.map_names = tuple(m for m in CascadeMethod.map_names if m in stage2.map_names)

    # -- options ---------------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, group) -> None:
        from nnunet_ext.methods.lung_cascade.filter_options import add_filter_arguments

        CascadeOptions.add_arguments(None, group=group)
        add_filter_arguments(group, top_k_default=1)

    @classmethod
    def from_args(cls, args, common, model=None) -> "CascadeMethod":
        from nnunet_ext.methods.lung_cascade.filter_options import DEFAULT_MARGIN, filter_config

        try:
            opts = CascadeOptions.from_args(args)
        except ValueError as e:
            raise InputError(str(e)) from None
        specs = []
        for flag, text in (("--stage1", opts.stage1), ("--stage2", opts.stage2)):
            if not text:
                raise InputError(f"-m cascade needs {flag} D,C,TR,PLANS[,FOLDS]")
            specs.append(ModelSpec.parse(text, flag))
        trained = stage2_margin(specs[1])
        margin = opts.margin if opts.margin is not None else (trained if trained is not None else DEFAULT_MARGIN)
        if trained is not None and margin != trained and not opts.force_margin:
            raise InputError(f"--margin {margin}: the stage-2 model was trained on ROI crops with margin {trained} "
                             f"(roi_info.json of dataset {specs[1].dataset}); pass --force-margin to use another")
        stage1 = build_stage(opts.stage1_method, args, common, specs[0])
        stage2 = build_stage(opts.stage2_method, args, common, specs[1])
        info = {"stage1": {"spec": opts.stage1, "method": opts.stage1_method, **stage1.settings()},
                "stage2": {"spec": opts.stage2, "method": opts.stage2_method, **stage2.settings()},
                "margin_vox": margin, "stage2_training_margin": trained}
        return cls(stage1, stage2, filter_config(args), margin, opts.lung_masks, opts.lungmask_weights,
                   opts.save_intermediates, info)

    @property
    def dataset_json(self) -> dict:
        return self.stage1.dataset_json

    def settings(self) -> dict:
        return self.info

    def side_outputs(self):
        return (INTERMEDIATES if self.save_intermediates else ()), ("cascade",)

    # -- steps -----------------------------------------------------------------------------------------------
    def prepare(self, case: Case):
        from nnunet_ext.predictors.inputs import read_case_checked

        e = self.stage1.engine
        image, properties = read_case_checked(case, e.plans_manager, e.configuration_manager,
                                              getattr(self.stage1, "nan_policy", "refuse"))
        if image.ndim != 4 or len(properties["sitk_stuff"]["spacing"]) != 3:
            raise InputError(f"case {case.case_id}: the cascade needs 3D images, got shape {image.shape[1:]}")
        if os.path.isdir(self.lung):
            path = os.path.join(self.lung, case.case_id + self.dataset_json["file_ending"])
            if not os.path.isfile(path):
                raise InputError(f"--lung-masks {self.lung}: no mask {os.path.basename(path)}")
        return case, image, properties

    def lung_mask(self, case: Case, image: np.ndarray, geometry) -> tuple[np.ndarray, dict]:
        """(uint8 lung mask on the CT grid, log entry)."""
        if self.lung == "none":
            return np.zeros(image.shape[1:], np.uint8), {"source": "none"}
        if self.lung in LUNG_BACKENDS:
            from nnunet_ext.methods.lung_cascade.lungmask import compute_lung_mask

            mask, used = compute_lung_mask(image[0], geometry, backend=self.lung, weights=self.lungmask_weights)
            entry = {"source": f"computed ({used})", "backend": used}
            if used != self.lung and self.lung == "auto":  # auto fell back: say why (console and log)
                from nnunet_ext.methods.lung_cascade.lungmask import lungmask_available

                entry["fallback"] = f"lungmask unusable: {lungmask_available(self.lungmask_weights)[1]}"
            return mask.astype(np.uint8), entry
        import SimpleITK as sitk

        from nnunet_ext.methods.lung_cascade.lung_grid import load_lung_on_grid

        path = os.path.join(self.lung, case.case_id + self.dataset_json["file_ending"])
        reference = geometry.apply(sitk.Image([int(s) for s in image.shape[1:][::-1]], sitk.sitkUInt8))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mask, resampled = load_lung_on_grid(path, reference, case.case_id)
        for w in caught:
            warnings.warn(str(w.message), stacklevel=2)
        entry = {"source": path, "backend": "folder", "resampled": resampled}
        if caught:
            entry["warnings"] = [str(w.message) for w in caught]
        return np.asarray(mask).astype(np.uint8), entry

    def coarse(self, prepared, ctx: CaseContext) -> CoarseStage:
        """Stage 1 and the lung mask of one case (everything the filter and stage 2 start from)."""
        from nnunet_ext.predictors.export import geometry_from_properties

        case, image, properties = prepared
        geometry = geometry_from_properties(properties)
        seg1 = self.stage1.run_image(image, properties, ctx, maps=())[0]
        lung, lung_log = self.lung_mask(case, image, geometry)
        return CoarseStage(image, properties, geometry, seg1.astype(np.uint8), lung, lung_log)

    def refine(self, coarse: CoarseStage, ctx: CaseContext, maps=None) -> CaseResult:
        """Component filter, ROI crops, stage 2 and paste-back (steps 3-6 of the module docstring)."""
        from nnunet_ext.core.roi import RoiBlend, crop, grow_box
        from nnunet_ext.methods.lung_cascade.component_filter import filter_components

        image, geometry, seg1, lung = coarse.image, coarse.geometry, coarse.stage1, coarse.lung
        maps = tuple(self.requested_maps or self.map_names) if maps is None else tuple(maps)
        spacing_zyx = tuple(float(s) for s in geometry.spacing[::-1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filtered, flog = filter_components(seg1 > 0, lung, spacing_zyx, self.filter_config)
        flog.pop("config", None)
        shape = image.shape[1:]
        lm = self.stage2.label_manager
        k = lm.num_segmentation_heads
        blend = RoiBlend(shape, k, maps, outside=None if lm.has_regions else np.eye(k)[0])
        rois = []
        for c in (c for c in flog["components"] if c["kept"]):
            box = grow_box(c["bbox"], self.margin, shape)
            _, probs, roi_maps = self.stage2.run_image(crop(image, box), crop_properties(coarse.properties, box),
                                                       ctx, maps)
            blend.add(box, probs, roi_maps)
            fg = (probs > 0.5).any(0) if lm.has_regions else probs.argmax(0) > 0
            rois.append({"component": c["id"], "box_zyx": [[s.start, s.stop] for s in box],
                         "stage2_voxels": int(fg.sum()), **{f"mean_{n}": float(roi_maps[n].mean()) for n in maps}})
        probs, out_maps, _ = blend.result()
        seg = np.asarray(lm.convert_probabilities_to_segmentation(probs)).astype(np.uint8)
        log = {"stage1_voxels": int((seg1 > 0).sum()), "lung": coarse.lung_log, "margin_vox": self.margin,
               "filter": flog, "rois": rois, "warnings": [str(w.message) for w in caught]}
        images = dict(zip(INTERMEDIATES, (seg1, filtered.astype(np.uint8), lung))) if self.save_intermediates else {}
        return CaseResult(geometry, seg, probs, out_maps, images, {"cascade": log}, coarse.properties)

    def report(self, case_id: str, result: CaseResult) -> None:
        """The console report of one case (:mod:`~nnunet_ext.methods.lung_cascade.cascade_report`): the lung-mask
        backend that ran (first case, and whenever it changes), the stage-1 line, "no tumour predicted"."""
        from nnunet_ext.methods.lung_cascade.cascade_report import lung_backend_line, no_tumour_line, stage1_line

        log = result.jsons["cascade"]
        lung = log["lung"]
        if lung.get("backend") != "folder":
            line = (lung_backend_line(self.lung, lung["backend"], lung.get("fallback")) if "backend" in lung
                    else "lung masks: none (lung filters skipped, only Top-K)")
            if line != getattr(self, "_lung_line", None):
                print(line)
                self._lung_line = line
        print(stage1_line(case_id, log["filter"], len(log["rois"])))
        empty = no_tumour_line(case_id, log["filter"], int(np.count_nonzero(result.segmentation)))
        if empty:
            print(empty)

    def predict_case(self, prepared, ctx: CaseContext) -> CaseResult:
        result = self.refine(self.coarse(prepared, ctx), ctx)
        self.report(ctx.case_id, result)
        return result


__all__ = ["CascadeMethod", "CoarseStage", "LUNG_BACKENDS", "stage2_margin"]
