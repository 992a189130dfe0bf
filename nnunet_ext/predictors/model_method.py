"""Methods that run one trained nnU-Net model (``-d -c -tr -p -f -chk``) through the sliding-window engine.

:class:`ModelMethod` reads and preprocesses a case exactly as ``nnUNetv2_predict`` does (the plans' reader and
preprocessor; for ``3d_cascade_fullres`` the previous stage's segmentation from ``-prev_stage_predictions``
appended as one-hot channels), runs :meth:`SlidingWindowEngine.run` with the method's :class:`Sampling`, applies
a temperature calibration when the model folder has one, and exports through nnU-Net's own resampling, crop
reversal and transpose. Subclasses set the sampling, the dropout state after each fold's weights are loaded,
and optionally ``forward`` (the network on a batch of passes of one window).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.inputs import Case, ModelSpec, fold_ids
from nnunet_ext.predictors.method import CaseContext, CaseResult, CommonOptions, Method


@dataclass
class Prepared:
    """A case read and preprocessed: ``data`` ``(C_in, *S)`` float32, nnU-Net's ``properties``, the raw image."""

    case: Case
    data: np.ndarray
    properties: dict


class ModelMethod(Method):
    """One nnU-Net model + :class:`~nnunet_ext.predictors.engine.Sampling` (module docstring)."""

    map_names = ("entropy",)
    default_uncertainty = "entropy"

    def __init__(self, engine, sampling, model_info: dict, prev_stage: "str | None" = None):
        self.engine, self.sampling, self.model_info, self.prev_stage = engine, sampling, model_info, prev_stage
        self.calibration = None
        self.nan_policy = "refuse"
        self.requested_maps: tuple[str, ...] = self.map_names

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def sampling_from_args(cls, args):
        from nnunet_ext.predictors.engine import Sampling

        return Sampling()

    @classmethod
    def engine_kwargs(cls, args) -> dict:
        """Constructor arguments of :class:`nnUNetPredictor` this method needs (e.g. ``use_mirroring``)."""
        return {"use_mirroring": False}

    @classmethod
    def from_args(cls, args, common: CommonOptions, model: "ModelSpec | None" = None) -> "ModelMethod":
        import torch

        from nnunet_ext.predictors.engine import SlidingWindowEngine

        spec = model or ModelSpec.from_args(args)
        folder, folds = spec.resolve(common.checkpoint)
        sampling = cls.sampling_from_args(args)
        engine = SlidingWindowEngine(tile_step_size=common.step_size, device=torch.device(common.device),
                                     allow_tqdm=common.progress, **cls.engine_kwargs(args))
        engine.accumulator_dtype = getattr(torch, common.accumulator_dtype)
        engine.load(str(folder), fold_ids(folds), common.checkpoint,
                    dropout_kind=getattr(args, "dropout_kind", None))
        info = {"model_folder": str(folder), "folds": folds, "trainer": engine.trainer_name,
                "training_metadata": engine.training_metadata}
        method = cls(engine, sampling, info, getattr(args, "prev_stage_predictions", None))
        method.nan_policy = common.nan_policy
        if engine.configuration_manager.previous_stage_name is not None and method.prev_stage is None:
            raise InputError(f"{folder}: a cascade configuration needs -prev_stage_predictions FOLDER (the "
                             f"{engine.configuration_manager.previous_stage_name} predictions)")
        if common.calibration:
            method.calibration = _load_calibration(folder, engine)
        return method

    # -- accessors -------------------------------------------------------------------------------------------
    @property
    def dataset_json(self) -> dict:
        return self.engine.dataset_json

    @property
    def label_manager(self):
        return self.engine.label_manager

    def settings(self) -> dict:
        s = {**self.model_info, "sampling": {k: (repr(v) if k == "tta" else v) for k, v in vars(self.sampling).items()}}
        if self.calibration is not None:
            s["calibration"] = self.calibration.settings()
        return s

    # -- engine hooks ----------------------------------------------------------------------------------------
    def on_parameters_loaded(self) -> None:
        """Called after each fold's weights are loaded: set the dropout state (default: everything in eval)."""
        self.engine.network.eval()

    def forward(self, batch, window, ctx: CaseContext):
        """Network logits ``(n, K, *patch)`` for a batch of passes ``(n, C_in, *patch)`` of one window."""
        return self.engine.network(batch)

    # -- the case --------------------------------------------------------------------------------------------
    def prepare(self, case: Case) -> Prepared:
        from nnunet_ext.predictors.inputs import read_case_checked

        e = self.engine
        image, properties = read_case_checked(case, e.plans_manager, e.configuration_manager, self.nan_policy)
        seg = None
        if self.prev_stage is not None:
            path = os.path.join(self.prev_stage, case.case_id + e.dataset_json["file_ending"])
            if not os.path.isfile(path):
                raise InputError(f"-prev_stage_predictions: {path} not found")
            seg, _ = e.plans_manager.image_reader_writer_class().read_seg(path)
        pre = e.configuration_manager.preprocessor_class(verbose=False)
        data, seg_pre, props = pre.run_case_npy(image, seg, properties, e.plans_manager, e.configuration_manager,
                                                e.dataset_json)
        if seg is not None:
            from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

            onehot = convert_labelmap_to_one_hot(seg_pre[0], e.label_manager.foreground_labels, data.dtype)
            data = np.vstack((data, onehot))
        return Prepared(case, data, props)

    def predict_network(self, data: np.ndarray, ctx: CaseContext):
        """Preprocessed ``(C_in, *S)`` -> :class:`~nnunet_ext.predictors.engine.VolumeResult` (calibrated)."""
        import torch

        from nnunet_ext.core.uncertainty import entropy, pooled_logits
        from nnunet_ext.predictors.engine import ENGINE_MAPS

        engine_maps = tuple(m for m in self.requested_maps if m in ENGINE_MAPS)
        result = self.engine.run(torch.from_numpy(np.ascontiguousarray(data)), ctx, self, self.sampling, engine_maps)
        if self.calibration is not None:
            sigmoid = self.label_manager.has_regions
            result.probabilities = self.calibration.apply(result.probabilities, sigmoid)
            result.logits = pooled_logits(result.probabilities, sigmoid)
            if "entropy" in result.maps:
                result.maps["entropy"] = entropy(result.probabilities, 0, sigmoid)
        return result

    def predict_case(self, prepared: Prepared, ctx: CaseContext) -> CaseResult:
        from nnunet_ext.predictors.export import geometry_from_properties, to_original

        result = self.predict_network(prepared.data, ctx)
        seg, probs, maps = to_original(result.logits, result.maps, prepared.properties, self.engine,
                                       tuple(result.maps))
        return CaseResult(geometry_from_properties(prepared.properties), seg, probs, maps,
                          properties=prepared.properties, votes=self.export_votes(result, prepared.properties),
                          n_members=result.n_members)

    def export_votes(self, result, properties: dict) -> "dict | None":
        """Vote counts of the foreground labels in the image grid (softmax models; None otherwise)."""
        from nnunet_ext.predictors.export import map_to_original

        e = self.engine
        if result.votes is None or e.label_manager.has_regions:
            return None
        return {int(c): map_to_original(result.votes[i], properties, e.configuration_manager, e.plans_manager)
                for i, c in enumerate(e.label_manager.all_labels) if int(c) != 0}

    def run_image(self, image: np.ndarray, properties: dict, ctx: CaseContext, maps=None):
        """Preprocess an image already in memory ``(C, *spatial)`` with reader ``properties`` (e.g. an ROI crop),
        predict and export to its grid: (segmentation, probabilities, maps). Used by composite methods."""
        from nnunet_ext.predictors.export import to_original

        e = self.engine
        pre = e.configuration_manager.preprocessor_class(verbose=False)
        data, _, props = pre.run_case_npy(image, None, copy.deepcopy(properties), e.plans_manager,
                                          e.configuration_manager, e.dataset_json)
        old = self.requested_maps
        self.requested_maps = tuple(maps) if maps is not None else old
        try:
            result = self.predict_network(data, ctx)
        finally:
            self.requested_maps = old
        return to_original(result.logits, result.maps, props, e, tuple(result.maps))


def _load_calibration(folder, engine):
    """The model folder's ``calibration.json`` (``nnext calibrate``), checked against this model, or None."""
    from nnunet_ext.core.calibration_file import load_calibration

    return load_calibration(str(folder), engine.plans_manager.plans_name, engine.trainer_name,
                            engine.configuration_name)
