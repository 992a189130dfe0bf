"""``-m kernel_refine``: spherical ensemble -> uncertainty kernels -> 3D model on each kernel -> fusion
(Yang et al. 2025, sec. 2.2.1-2.2.3).

Per case: (1) ``-m spherical`` with ``--model2d`` gives P2D and the eq. 1 entropy per region; (2) per region the
kernel search (:mod:`nnunet_ext.methods.glioma.kernels`) on that region's entropy, cube edge ``--kernel-mm`` (default
the
paper's WT = 64 mm, TC = ET = 32 mm; converted with the image spacing); (3) the ``--model3d`` model (``-m stock``
prediction, nnU-Net's own preprocessing of the crop with its exact geometry) on every kernel crop of the 4-channel
image; (4) per region P3D = mean of the 3D probabilities over the kernels covering a voxel, and eq. 2
``p = sigmoid(w2D P2D + w3D P3D + b)`` on covered voxels, P2D elsewhere, with the weights of ``--fusion
PARAMS.json`` (``nnext fusion-fit``) or, without it, ``w2D = w3D = 5, b = -5`` (foreground iff the mean of P2D
and P3D exceeds 0.5); (5) the segmentation from the fused probabilities (``regions_class_order`` of the 2D model).

Regions are matched between the 2D and 3D models by tag (WT / TC / ET,
:func:`nnunet_ext.methods.glioma.fusion.region_tags`);
every 2D region needs one in the 3D model. Side outputs per region TAG: ``p2d_TAG``, ``p3d_TAG`` (0 outside
kernels), ``coverage_TAG`` (kernels per voxel), ``prob_TAG`` (fused), ``entropy_TAG``; ``CASE_kernels.json``.
``nnext fusion-fit --pred2d OUT --pred3d OUT`` reads exactly these files.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.methods.glioma.kernels import kernel_mm_for
from nnunet_ext.methods.glioma.options import KernelRefineOptions, KernelSearchOptions
from nnunet_ext.predictors.method import CaseResult, Method, build_stage

DEFAULT_FUSION = (5.0, 5.0, -5.0)


class KernelRefineMethod(Method):
    name = "kernel_refine"
    map_names = ("entropy", "variance")
    default_uncertainty = "entropy"
    takes_model = False
    stage_methods = ("spherical", "stock")

    def __init__(self, stage2d, stage3d, tags3d, kernel_mm, search, fusion, info):
        self.stage2d, self.stage3d, self.tags3d = stage2d, stage3d, tags3d
        self.kernel_mm, self.search, self.fusion, self.info = kernel_mm, search, fusion, info
        self.tags = stage2d.tags

    @classmethod
    def add_arguments(cls, group) -> None:
        KernelRefineOptions.add_arguments(None, group=group)
        KernelSearchOptions.add_arguments(None, group=group)

    @classmethod
    def from_args(cls, args, common, model=None):
        from nnunet_ext.methods.glioma.fusion import FusionParams, region_tags
        from nnunet_ext.predictors.inputs import ModelSpec

        try:
            opts, kernel_search = KernelRefineOptions.from_args(args), KernelSearchOptions.from_args(args)
        except ValueError as e:
            raise InputError(str(e)) from None
        if not opts.model2d or not opts.model3d:
            raise InputError("-m kernel_refine needs --model2d D,C,TR,PLANS[,FOLDS] and --model3d D,C,TR,PLANS[,FOLDS]")
        kernel_mm = kernel_search.sizes()
        fusion = {}
        if opts.fusion is not None:
            if not os.path.isfile(opts.fusion):
                raise InputError(f"--fusion {opts.fusion}: file not found")
            try:
                fusion = {t: FusionParams.from_json(p) for t, p in json.load(open(opts.fusion))["regions"].items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise InputError(f"--fusion {opts.fusion}: not an nnext fusion-fit file ({e})") from None
        stage2d = build_stage("spherical", args, common, ModelSpec.parse(opts.model2d, "--model2d"))
        stage3d = build_stage("stock", args, common, ModelSpec.parse(opts.model3d, "--model3d"))
        e3 = stage3d.engine
        if len(e3.configuration_manager.patch_size) != 3 or not e3.label_manager.has_regions:
            raise InputError(f"--model3d {opts.model3d}: needs a 3D region-based (sigmoid) model")
        tags3d = [t for t, _, _ in region_tags(e3.dataset_json["labels"])]
        missing = [t for t in stage2d.tags if t not in tags3d]
        if missing:
            raise InputError(f"--model3d {opts.model3d}: has regions {tags3d}, lacks {missing} of the 2D model")
        unknown = [t for t in fusion if t not in stage2d.tags]
        if unknown:
            raise InputError(f"--fusion {opts.fusion}: parameters for regions {unknown} the 2D model lacks "
                             f"(it has {stage2d.tags})")
        search = kernel_search.search()
        info = {"model2d": {"spec": opts.model2d, **stage2d.settings()},
                "model3d": {"spec": opts.model3d, **stage3d.settings()}, "kernel_mm": kernel_mm, "search": search,
                "fusion": {t: p.to_json() for t, p in fusion.items()}, "fusion_file": opts.fusion}
        return cls(stage2d, stage3d, tags3d, kernel_mm, search, fusion, info)

    @property
    def dataset_json(self) -> dict:
        return self.stage2d.dataset_json

    def settings(self) -> dict:
        return self.info

    def side_outputs(self):
        kinds = ("p2d", "p3d", "coverage", "prob", "entropy")
        return tuple(f"{k}_{t}" for k in kinds for t in self.tags), ("kernels",)

    def prepare(self, case):
        from nnunet_ext.predictors.inputs import read_case_checked

        e = self.stage3d.engine
        image, properties = read_case_checked(case, e.plans_manager, e.configuration_manager)
        return self.stage2d.prepare(case), image, properties

    def mm_for(self, tag: str) -> float:
        return kernel_mm_for(self.kernel_mm, tag)

    def predict_case(self, prepared, ctx) -> CaseResult:
        from nnunet_ext.core.roi import crop
        from nnunet_ext.io.geometry import crop_properties
        from nnunet_ext.methods.glioma.fusion import FusionParams, composite_3d, fuse
        from nnunet_ext.methods.glioma.kernels import kernel_size_voxels, search_kernels

        p2, image, properties = prepared
        r2 = self.stage2d.predict_case(p2, ctx)
        spacing_zyx = tuple(float(s) for s in r2.geometry.spacing[::-1])
        shape = image.shape[1:]
        cache, log, images = {}, {}, {}
        fused = np.zeros_like(np.asarray(r2.probabilities, dtype=np.float32))
        for i, tag in enumerate(self.tags):
            size = kernel_size_voxels(self.mm_for(tag), spacing_zyx)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                kernels = search_kernels(r2.images[f"entropy_{tag}"], size, **self.search)
            for k in kernels:
                if (k.start, k.size) not in cache:
                    _, probs3, _ = self.stage3d.run_image(crop(image, k.slicer), crop_properties(properties, k.slicer),
                                                          ctx, maps=())
                    cache[(k.start, k.size)] = np.asarray(probs3, dtype=np.float32)
            j = self.tags3d.index(tag)
            p3d, cover = composite_3d(
                shape, [k.slicer for k in kernels], [cache[(k.start, k.size)][j] for k in kernels]
            )
            params = self.fusion.get(tag, FusionParams(*DEFAULT_FUSION))
            p2d = np.asarray(r2.probabilities[i], dtype=np.float32)
            fused[i] = fuse(p2d, p3d, cover > 0, params)
            images.update({f"p2d_{tag}": p2d, f"p3d_{tag}": p3d, f"coverage_{tag}": cover.astype(np.float32),
                           f"prob_{tag}": fused[i], f"entropy_{tag}": r2.images[f"entropy_{tag}"]})
            log[tag] = {"kernel_mm": self.mm_for(tag), "kernel_voxels": list(size),
                        "kernels": [k.to_json() for k in kernels], "covered_voxels": int((cover > 0).sum()),
                        "fusion": {"w2d": params.w2d, "w3d": params.w3d, "b": params.b},
                        "warnings": [str(w.message) for w in caught]}
        lm = self.stage2d.label_manager
        seg = np.asarray(lm.convert_probabilities_to_segmentation(fused)).astype(np.uint8)
        log["spherical"] = r2.jsons.get("spherical")
        log["n_3d_predictions"] = len(cache)
        return CaseResult(r2.geometry, seg, fused, dict(r2.maps), images, {"kernels": log}, r2.properties)


__all__ = ["KernelRefineMethod", "DEFAULT_FUSION"]
