"""The sliding-window engine of every nnunet_ext predictor: nnU-Net's windows, N passes, streaming statistics.

:class:`SlidingWindowEngine` loads a trained nnU-Net model folder like ``nnUNetPredictor`` does (same fold
auto-detection, same network reconstruction through the trainer class; the dropout kind and p the checkpoint was
trained with) and runs nnU-Net's window grid, padding and Gaussian. A method supplies ``forward(batch, window,
ctx)`` (the network on a batch of passes of one window; it sees the window's position and the per-case context)
and ``on_parameters_loaded()``; the engine does everything else:

* **passes**: ``n_passes`` per fold, in chunks of ``pass_batch_size`` (one forward batch), every pass's
  probabilities go straight into :class:`~nnunet_ext.core.streaming.StreamingStats` (memory flat in N);
* **TTA** (:mod:`nnunet_ext.core.tta`, rotations rigid in mm through the configuration's spacing):
  ``tta_scope="volume"`` (chu2026 sec. 2.5: one transform per pass of the whole case, applied to the volume,
  every window predicted on the transformed volume, the blended pass mapped back by the inverse) or
  ``"window"`` (one transform per pass *and window*: cheaper in memory, not the paper's protocol);
* **blending** of windows: ``blend="logits"`` (nnU-Net: Gaussian-weighted mean of logits; with one pass and no
  TTA these are the network's own logits, otherwise pooled logits ``log P̄``) or ``"probabilities"`` (the
  paper's Gaussian-weighted mean of softmax);
* **maps**: ``entropy`` of the final blended probabilities (so the exported entropy is that of the exported
  probabilities), ``variance`` / ``mi`` / ``expected_entropy`` from the blended per-pass statistics;
* **votes**: with >= 2 members (passes x folds) the per-voxel vote counts of every class
  (:meth:`StreamingStats.votes`, flat in N) for the pooled pairwise Dice of ``confidence.csv`` (issue 23);
* **memory**: accumulators on the device (float32, or float16 as nnU-Net) with nnU-Net's fallback to CPU
  accumulation when the device runs out of memory.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from os.path import join

import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian
from nnunetv2.utilities.helpers import dummy_context, empty_cache

from nnunet_ext.core.streaming import StreamingStats
from nnunet_ext.core.tta import TTAPolicy, apply_each, invert_each
from nnunet_ext.core.uncertainty import entropy, pooled_logits
from nnunet_ext.errors import InputError, OptionsError

TTA_SCOPES = ("volume", "window")
BLENDS = ("logits", "probabilities")
#: maps the engine can compute (a method names the ones it offers)
ENGINE_MAPS = ("entropy", "variance", "mi", "expected_entropy")


@dataclass(frozen=True)
class Sampling:
    """How many passes, which TTA, how windows are blended (module docstring)."""

    n_passes: int = 1
    pass_batch_size: "int | None" = None
    tta: TTAPolicy = field(default_factory=lambda: TTAPolicy(kinds=()))
    tta_scope: str = "window"
    blend: str = "logits"
    bins: int = 0

    def __post_init__(self):
        if int(self.n_passes) < 1:
            raise InputError(f"--n-samples must be >= 1, got {self.n_passes}")
        if self.pass_batch_size is not None and int(self.pass_batch_size) < 1:
            raise InputError(f"--pass-batch-size must be >= 1, got {self.pass_batch_size}")
        if self.tta_scope not in TTA_SCOPES:
            raise InputError(f"--tta-scope must be one of {', '.join(TTA_SCOPES)}, got {self.tta_scope!r}")
        if self.blend not in BLENDS:
            raise InputError(f"--blend must be one of {', '.join(BLENDS)}, got {self.blend!r}")

    @property
    def chunk(self) -> int:
        return int(self.pass_batch_size or self.n_passes)


@dataclass(frozen=True)
class Window:
    """One sliding window: ``slicer`` into the padded preprocessed volume ``(C, *S)`` (channel slice first;
    2D configurations index the slice with an int), its number and the fold it is predicted with."""

    slicer: tuple
    index: int
    fold: int


@dataclass
class VolumeResult:
    """Outputs at network resolution (float32, CPU): logits for nnU-Net's export, probabilities, maps."""

    logits: torch.Tensor
    probabilities: torch.Tensor
    maps: dict
    #: vote counts ``(K, *S)`` of ``n_members`` passes x folds (None for a single member)
    votes: "torch.Tensor | None" = None
    n_members: int = 1


@dataclass
class WindowGrid:
    """A case on nnU-Net's sliding-window grid (:meth:`SlidingWindowEngine.window_grid`)."""

    padded: torch.Tensor
    revert: tuple
    slicers: list
    gaussian: torch.Tensor


def detect_folds(model_folder: str, checkpoint_name: str) -> list[int]:
    """Folds exactly as ``nnUNetPredictor.auto_detect_available_folds`` picks them (``fold_<int>`` with the
    checkpoint, never ``fold_all``), in numeric order."""
    names = [d for d in os.listdir(model_folder) if d.startswith("fold_") and d != "fold_all"
             and os.path.isdir(join(model_folder, d)) and os.path.isfile(join(model_folder, d, checkpoint_name))]
    return sorted(int(d.split("_")[-1]) for d in names)


class SlidingWindowEngine(nnUNetPredictor):
    """nnUNetPredictor with N-pass streaming statistics (module docstring). Build, then :meth:`load`."""

    #: float16 reproduces nnU-Net's accumulator; float32 (default) is exact to 1e-6
    accumulator_dtype: torch.dtype = torch.float32
    training_metadata: dict = {}
    #: the loaded folds' checkpoint files, in fold order (error messages name them)
    checkpoint_files: list = []
    #: bytes per voxel of the accumulators of the last :meth:`run` (benchmarks)
    last_accumulator_bytes_per_voxel: float = 0.0

    def load(self, model_folder: str, folds: "list | None", checkpoint_name: str = "checkpoint_final.pth",
             dropout_p: "float | None" = None, dropout_kind: "str | None" = None) -> None:
        """Load ``model_folder`` (folds ``None`` = :func:`detect_folds`). The network is rebuilt with the dropout
        kind and p recorded in the checkpoint (``checkpoint["nnext"]``) unless overridden here; environment
        variables act at training time only."""
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        from nnunet_ext.io.integrity import check_checkpoint, load_json_checked
        from nnunet_ext.predictors.model_match import check_weights_fit

        folds = detect_folds(model_folder, checkpoint_name) if folds is None else list(folds)
        dataset_json = load_json_checked(join(model_folder, "dataset.json"), ("file_ending", "labels"), "dataset.json")
        if not (dataset_json.get("channel_names") or dataset_json.get("modality")):
            raise InputError(f"{join(model_folder, 'dataset.json')}: dataset.json lacks channel_names")
        plans = load_json_checked(join(model_folder, "plans.json"), ("plans_name", "configurations",
                                                                      "transpose_forward", "transpose_backward"),
                                  "plans.json")
        plans_manager = PlansManager(plans)
        parameters, first, ckpts = [], None, []
        for f in folds:
            path = join(model_folder, f"fold_{f}", checkpoint_name)
            ckpt = check_checkpoint(path, load=True)
            parameters.append(ckpt["network_weights"])
            ckpts.append((path, ckpt))
            first = first or ckpt
        meta = dict(first.get("nnext") or {})
        configuration = first["init_args"]["configuration"]
        if configuration not in plans.get("configurations", {}):
            raise InputError(f"{join(model_folder, 'plans.json')}: has no configuration {configuration!r}, which the "
                             f"checkpoint {ckpts[0][0]} was trained with (plans: {', '.join(plans['configurations'])})")
        configuration_manager = plans_manager.get_configuration(configuration)
        trainer_class = recursive_find_trainer_class_by_name(first["trainer_name"])
        if trainer_class is None:
            raise InputError(f"{model_folder}: trainer {first['trainer_name']} not found (is its package installed?)")
        n_in = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
        n_out = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
        kind = dropout_kind or meta.get("dropout_kind")
        p = dropout_p if dropout_p is not None else meta.get("dropout_p")
        from nnunet_ext.trainers.mc_dropout import prediction_dropout
        from nnunet_ext.trainers.plans_options import version_note

        try:
            with prediction_dropout(p, kind):  # the checkpoint's dropout, not the training-time env vars
                network = trainer_class.build_network_architecture(plans_manager, configuration_manager, n_in, n_out,
                                                                   enable_deep_supervision=False)
        except OptionsError as e:  # the model's plans hold an option this version does not know or accept
            raise InputError(f"{join(model_folder, 'plans.json')}: {e}{version_note(first)}") from None
        for path, ckpt in ckpts:
            check_weights_fit(network, ckpt, path, join(model_folder, "plans.json"), plans)
        network.load_state_dict(parameters[0])
        self.plans_manager, self.configuration_manager = plans_manager, configuration_manager
        self.list_of_parameters, self.network, self.dataset_json = parameters, network, dataset_json
        self.trainer_name = first["trainer_name"]
        self.allowed_mirroring_axes = first.get("inference_allowed_mirroring_axes")
        self.label_manager = plans_manager.get_label_manager(dataset_json)
        self.training_metadata, self.folds, self.model_folder = meta, folds, str(model_folder)
        self.checkpoint_files = [path for path, _ in ckpts]
        self.configuration_name = first["init_args"]["configuration"]

    def _load_parameters(self, params: dict, method) -> None:
        self.network.load_state_dict(params)
        method.on_parameters_loaded()

    def nonlin(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over classes (dim 1 of a batch) or sigmoid (region-based plans)."""
        return torch.sigmoid(logits) if self.label_manager.has_regions else torch.softmax(logits, 1)

    # -- the volume ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, data: torch.Tensor, ctx, method, sampling: Sampling, maps=("entropy",)) -> VolumeResult:
        """Preprocessed image ``(C_in, *S)`` -> :class:`VolumeResult` (``maps`` of :data:`ENGINE_MAPS`)."""
        unknown = [m for m in maps if m not in ENGINE_MAPS]
        if unknown:
            raise ValueError(f"the engine computes {ENGINE_MAPS}, not {unknown}")
        self.network = self.network.to(self.device)
        on_device = self.perform_everything_on_device and self.device.type != "cpu"
        try:
            return self._run(
                data, ctx, method, sampling, tuple(maps), self.device if on_device else torch.device("cpu")
            )
        except torch.OutOfMemoryError:
            if not on_device:
                raise
            empty_cache(self.device)
            warnings.warn("device out of memory: accumulating on the CPU instead (as nnU-Net does)")
            return self._run(data, ctx, method, sampling, tuple(maps), torch.device("cpu"))

    def window_grid(self, data, device=None) -> "WindowGrid":
        """nnU-Net's sliding-window setup of one preprocessed case ``data`` (C, *S): the case padded to at least
        one patch, the slice that reverts the padding, the window slicers (``-step_size``) and the Gaussian window
        weight (nnU-Net's sigma = patch / 8, or ones without ``use_gaussian``) on ``device``. The engine and the
        interactive session both blend windows on this grid."""
        patch = tuple(self.configuration_manager.patch_size)
        device = device if device is not None else torch.device("cpu")
        padded, revert = pad_nd_image(data, patch, "constant", {"value": 0}, True, None)
        slicers = self._internal_get_sliding_window_slicers(padded.shape[1:])
        gaussian = (compute_gaussian(patch, sigma_scale=1. / 8, value_scaling_factor=10, device=device)
                    .float() if self.use_gaussian else torch.ones(patch, device=device))
        return WindowGrid(padded, tuple(revert), list(slicers), gaussian)

    @staticmethod
    def blend(logit_sum: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Gaussian-weighted mean of the windows' logits: ``sum_w g_w * l_w / sum_w g_w`` (0-weight voxels: 0)."""
        return logit_sum.float() / weight.clamp_min(1e-30)[None]

    def _run(self, data, ctx, method, sampling: Sampling, maps, results_device) -> VolumeResult:
        patch = tuple(self.configuration_manager.patch_size)
        grid = self.window_grid(data, results_device)
        padded, revert, slicers, gaussian = grid.padded, grid.revert, grid.slicers, grid.gaussian
        spatial = tuple(padded.shape[1:])
        k, sigmoid = self.label_manager.num_segmentation_heads, self.label_manager.has_regions
        # volume scope: every pass (and fold) is one blended prediction of the whole volume; a single deterministic
        # pass is the same either way and takes the window path (the network's own logits, nnU-Net's export)
        by_volume = sampling.tta_scope == "volume" and (bool(sampling.tta.kinds) or sampling.n_passes > 1
                                                         or len(self.list_of_parameters) > 1)
        logit_sum = (None if by_volume or sampling.blend != "logits"
                     else torch.zeros((k, *spatial), dtype=self.accumulator_dtype, device=results_device))
        # float16 accumulators do nnU-Net's arithmetic exactly: weight sum and division in float16 too
        half_weight = (torch.zeros(spatial, dtype=torch.float16, device=results_device)
                       if logit_sum is not None and logit_sum.dtype == torch.float16 else None)
        # with blended logits the probability mean is only needed for the variance and the MI
        n_members = sampling.n_passes * len(self.list_of_parameters)
        stats = StreamingStats(spatial, k, sigmoid=sigmoid, variance="variance" in maps, votes=n_members >= 2,
                               expected_entropy=bool({"mi", "expected_entropy"} & set(maps)), bins=sampling.bins,
                               dtype=self.accumulator_dtype, device=results_device,
                               mean=logit_sum is None or bool({"variance", "mi"} & set(maps)))
        n_vox = float(torch.tensor(spatial).prod())
        self.last_accumulator_bytes_per_voxel = stats.bytes_per_voxel + (
            0 if logit_sum is None else logit_sum.numel() * logit_sum.element_size() / n_vox) + (
            # volume scope holds one chunk of transformed volumes and per-pass blends
            (sampling.chunk * ((padded.shape[0] if sampling.tta.kinds else 0) + k) * 4 + 4) if by_volume else 0)
        padded = padded.to(self.device)
        spacing = [float(s) for s in self.configuration_manager.spacing][-len(patch):]
        autocast = torch.autocast(self.device.type) if self.device.type == "cuda" else dummy_context()
        with autocast:
            for fold, params in enumerate(self.list_of_parameters):
                self._load_parameters(params, method)
                if by_volume:
                    self._volume_passes(padded, slicers, gaussian, stats, ctx, method, sampling, fold, spacing,
                                        results_device)
                else:
                    self._window_passes(padded, slicers, gaussian, stats, logit_sum, ctx, method, sampling, fold,
                                        spacing, results_device, half_weight)
        if half_weight is not None:
            logits = torch.div(logit_sum, half_weight).float()
            probs = self.nonlin(logits[None])[0]
        elif logit_sum is not None:
            logits = self.blend(logit_sum, stats.weight)
            probs = self.nonlin(logits[None])[0]
        else:
            probs = stats.mean()
            logits = pooled_logits(probs, sigmoid)
        out = {}
        for name in dict.fromkeys(maps):
            out[name] = (entropy(probs, 0, sigmoid) if name == "entropy" else stats.variance() if name == "variance"
                         else stats.mutual_information() if name == "mi" else stats.expected_entropy())
        crop = (slice(None), *revert[1:])
        result = VolumeResult(logits[crop].cpu(), probs[crop].cpu(), {n: m[crop[1:]].cpu() for n, m in out.items()},
                              stats.votes(n_members)[crop].cpu() if n_members >= 2 else None, n_members)
        ctx.extras["statistics"] = stats if sampling.bins else None
        empty_cache(self.device)
        return result

    def _chunks(self, sampling: Sampling):
        left = sampling.n_passes
        while left > 0:
            yield min(left, sampling.chunk)
            left -= sampling.chunk

    def _window_passes(self, padded, slicers, gaussian, stats, logit_sum, ctx, method, sampling, fold, spacing, dev,
                       half_weight=None):
        raw = sampling.n_passes == 1 and not sampling.tta.kinds  # the network's own logits (nnU-Net parity)
        dims = len(gaussian.shape)
        for i, sl in enumerate(self._progress(slicers, fold)):
            window = Window(sl, i, fold)
            x = padded[sl]
            mean_sum = None
            for n in self._chunks(sampling):
                transforms = sampling.tta.sample(n, ctx.generator, dims, spacing) if sampling.tta.kinds else None
                batch = (apply_each(transforms, x, getattr(method, "n_image_channels", None)) if transforms
                         else x[None].expand(n, *x.shape))
                out = method.forward(batch, window, ctx)
                logits = out.float()
                probs = self.nonlin(logits)
                if transforms:
                    probs = invert_each(transforms, probs)
                stats.update(probs, gaussian, sl[1:])
                if logit_sum is not None:
                    if raw and half_weight is not None:  # nnU-Net's arithmetic: product in the network's dtype
                        logit_sum[sl] += out[0].to(dev) * gaussian.to(out.dtype)
                    elif raw:
                        logit_sum[sl] += logits[0].to(dev) * gaussian
                    else:
                        mean_sum = probs.sum(0) if mean_sum is None else mean_sum + probs.sum(0)
            if logit_sum is not None and not raw:
                pooled = pooled_logits(mean_sum / sampling.n_passes, self.label_manager.has_regions)
                logit_sum[sl] += pooled.to(dev) * gaussian
            if half_weight is not None:
                half_weight[sl[1:]] += gaussian

    def _volume_passes(self, padded, slicers, gaussian, stats, ctx, method, sampling, fold, spacing, dev):
        k = self.label_manager.num_segmentation_heads
        dims = len(gaussian.shape)
        for n in self._chunks(sampling):
            transforms = sampling.tta.sample(n, ctx.generator, dims, spacing) if sampling.tta.kinds else None
            # (n, C, *S): pass i sees the whole case under T_i (a broadcast view when there is no TTA)
            volumes = (apply_each(transforms, padded, getattr(method, "n_image_channels", None)) if transforms
                       else padded[None].expand(n, *padded.shape))
            acc = torch.zeros((n, k, *padded.shape[1:]), dtype=torch.float32, device=dev)
            weight = torch.zeros(padded.shape[1:], dtype=torch.float32, device=dev)
            for i, sl in enumerate(self._progress(slicers, fold)):
                logits = method.forward(volumes[(slice(None), *sl)], Window(sl, i, fold), ctx).float()
                values = logits if sampling.blend == "logits" else self.nonlin(logits)
                acc[(slice(None), *sl)] += values.to(dev) * gaussian
                weight[sl[1:]] += gaussian
            acc /= weight
            probs = self.nonlin(acc) if sampling.blend == "logits" else acc
            stats.update(invert_each(transforms, probs) if transforms else probs)
            if transforms:
                ctx.log.setdefault("tta_transforms", []).extend(repr(t) for t in transforms)

    def _progress(self, slicers, fold):
        if not self.allow_tqdm or len(slicers) < 2:
            return slicers
        from tqdm import tqdm

        return tqdm(slicers, desc=f"windows (fold {fold})", leave=False)
