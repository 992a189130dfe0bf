"""Click-prompt trainers of HN-UISeg (Chu 2026, sec. 2.1-2.2): MC-dropout nnU-Net with one prompt channel per
foreground class, in three stages.

Network: :class:`MCDropoutTrainer`'s network (dropout p = 0.05; use ResEnc plans, e.g. ``nnext plan -pl
MCDropoutResEncPlannerM``, for the paper's residual-encoder U-Net) built with ``C + 2K`` input channels (C image
channels from dataset.json, K = number of foreground classes = output channels - 1; a positive and a negative
prompt channel per class, the ``split`` layout of :mod:`nnunet_ext.methods.interactive.clicks` -- the paper has one
channel per
class; models trained with the signed K-channel layout still load, exactly converted) inside
:class:`nnunet_ext.methods.interactive.prompt_channels.PromptChannelNetwork`, in ``build_network_architecture``, so
``nnUNetv2_predict`` rebuilds the same network and, feeding only the C image channels, gets the automatic
branch (prompts zero-filled).

Stages (trainer variants; fine-tuning starts from the previous stage through ``nnUNetv2_train ...
-pretrained_weights PREV/fold_F/checkpoint_final.pth``; nnU-Net transfers every weight except the 1x1
segmentation heads, which it re-initialises; the click-prompt trainers carry the heads over too, the stages
sharing one label set -- plans option ``clicks.transfer_heads``, :mod:`nnunet_ext.methods.interactive.stage_chain`):

* ``ClickPromptTrainer`` -- stage 1, pre-training: with probability p_prompt = 0.5 per sample, clicks
  simulated from the reference (:class:`nnunet_ext.methods.interactive.click_transform.SimulateClicksTransform`);
* ``ClickPromptAutoTrainer`` -- stage 2, automatic fine-tuning: all prompt channels zero;
* ``ClickPromptErrorTrainer`` -- stage 3, interactive fine-tuning: per sample (probability p_prompt = 1)
  R rounds, R drawn uniformly from 1..``clicks.error_rounds`` (3). Round 1 (the paper): the current network
  predicts the patch with zero prompts -- the automatic branch (eval mode, no gradient) -- and one click goes to
  each error component of each class (FN -> positive, FP -> negative, at its deepest voxel, largest first or
  ``clicks.error_order = proportional``, at most ``clicks.max_errors`` = 5 per class) of at least the
  ``clicks.min_error_mm3`` minimum (default: the click ball's own volume);
  :func:`nnunet_ext.methods.interactive.click_simulation.error_clicks`. Rounds 2..R: the network predicts again *with*
  the
  clicks so far and one more click per class goes to the largest error component not clicked before (or
  changed since). The training forward pass then sees the clicks of all R rounds. Why rounds: the paper's
  single round trains only corrections of the automatic prediction, whereas a user (and the ``errors``
  evaluation protocol) clicks the errors left *after* earlier clicks; drawing R keeps a third of the samples
  (R = 1) exactly the paper's, and R <= 3 matches the demo's 3-click evaluation at ~2 extra no-gradient
  forward passes per batch on average.

Options (plans ``nnext_training``, :class:`nnunet_ext.methods.interactive.options.ClickOptions` section
``clicks``: p_prompt (stage default), radius (3 voxels), encoding (ball | edt | gaussian), max_errors (5),
error_rounds (3), error_order (largest), min_error_mm3 (null = ball volume), previous_prediction (off; on: K more
input channels with the prediction each stage-3 sample's last click round was placed on, zeros in stages 1-2 and
the automatic branch -- nnInteractive's previous-segmentation input, beyond the paper);
:class:`nnunet_ext.trainers.training_options.OptimizerOptions` section ``optimizer``: ``name = adamw`` switches
nnU-Net's SGD + poly schedule to the paper's AdamW with a cosine schedule and ``warmup_epochs`` (10) linear warm-up
epochs (:func:`nnunet_ext.core.lr_schedule.warmup_cosine_lr`), ``adamw_lr`` (1e-3), ``adamw_wd`` (1e-2; the paper
gives neither). Beyond the paper: ``clicks.pet_dropout = p`` zeroes image channel ``clicks.pet_channel`` (1 = PET)
with probability p
per sample (:class:`~nnunet_ext.methods.interactive.click_transform.ChannelDropoutTransform`), so one model also serves
CT-only input (the PET channel zero-filled).
Label-based (softmax) datasets only, no ignore label.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from torch.optim.lr_scheduler import _LRScheduler

from nnunet_ext.core.lr_schedule import warmup_cosine_lr
from nnunet_ext.methods.interactive.click_simulation import error_clicks, min_error_voxels
from nnunet_ext.methods.interactive.click_transform import ChannelDropoutTransform, SimulateClicksTransform
from nnunet_ext.methods.interactive.clicks import prompt_channel_count, rasterize_voxels
from nnunet_ext.methods.interactive.component_loss import ClickedComponentLoss
from nnunet_ext.methods.interactive.options import ClickOptions
from nnunet_ext.methods.interactive.prompt_channels import PromptChannelNetwork
from nnunet_ext.methods.interactive.stage_chain import install_head_transfer
from nnunet_ext.trainers.ds_loss import require_plain_labels
from nnunet_ext.trainers.mc_dropout import MCDropoutTrainer
from nnunet_ext.trainers.plans_options import manager_options
from nnunet_ext.trainers.training_options import OptimizerOptions


def error_click_prompts(predict_labels, data: torch.Tensor, reference: np.ndarray, classes, rounds,
                        max_first: int = 5, spacing=None, min_voxels: int = 1, order: str = "largest",
                        rng: "np.random.Generator | None" = None, radius: float = 3.0,
                        encoding: str = "ball", previous: bool = False,
                        clicked: "np.ndarray | None" = None) -> torch.Tensor:
    """Stage-3 prompts, round by round (see the module docstring): a copy of ``data`` (B, C + 2K [+ K], *S) whose
    2K prompt channels (split layout) hold the error clicks of ``rounds[b]`` rounds for sample b (0 = none).
    Round r predicts the samples that have a round r with the prompts of rounds < r (``predict_labels(x) ->
    (len(x), *S)`` labels; round 1 = zero prompts = the automatic branch) and clicks, per class, the error
    components of ``reference[b]`` of at least ``min_voxels`` voxels not clicked before (``max_first`` per class
    in round 1, one in later rounds).
    ``previous``: ``data`` also has K previous-prediction channels; each round writes the prediction its clicks
    were placed on into them (class k -> channel k, 0/1), so round r + 1 and the training pass see the clicks
    so far together with the prediction of the last round, as a user's next click sees the current result.
    ``clicked`` (bool, shape of ``reference``): set to the union of the error components that got clicks, each as
    it was when clicked (the voxels :class:`~nnunet_ext.methods.interactive.component_loss.ClickedComponentLoss`
    weighs)."""
    k = len(classes)
    n_image = data.shape[1] - (3 if previous else 2) * k
    x = data.clone()
    x[:, n_image:] = 0
    clicks = [[] for _ in rounds]
    seen = [set() for _ in rounds]
    for r in range(max(rounds, default=0)):
        active = [b for b, n_rounds in enumerate(rounds) if n_rounds > r]
        pred = dict(zip(active, predict_labels(x[active])))  # only the samples with a round r + 1 (per sample
        for b in active:  # the network's output does not depend on the batch: instance norm, eval mode)
            masks = [] if clicked is not None else None
            new = error_clicks(reference[b], pred[b], classes, max_first if r == 0 else 1, spacing, min_voxels,
                               order, rng, seen[b], masks)
            for mask in masks or ():
                clicked[b] |= mask
            if new:
                clicks[b] += new
                prompt = rasterize_voxels(clicks[b], reference.shape[1:], k, radius, encoding, layout="split")
                x[b, n_image:n_image + 2 * k] = torch.from_numpy(prompt).to(x.dtype)
            if previous:
                for ch, value in enumerate(classes):
                    x[b, n_image + 2 * k + ch] = torch.from_numpy(pred[b] == value).to(x.dtype)
    return x


class WarmupCosineLRScheduler(_LRScheduler):
    """nnU-Net-style scheduler (``step(epoch)`` sets the lr) evaluating :func:`warmup_cosine_lr`."""

    def __init__(self, optimizer, initial_lr: float, num_epochs: int, warmup_epochs: int = 10):
        self.initial_lr, self.num_epochs, self.warmup_epochs = initial_lr, num_epochs, warmup_epochs
        self.ctr = 0
        super().__init__(optimizer, -1)

    def step(self, current_step=None):
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        lr = warmup_cosine_lr(int(current_step), self.initial_lr, self.num_epochs, self.warmup_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class ClickPromptTrainer(MCDropoutTrainer):
    """Stage 1: MC-dropout nnU-Net + K prompt channels, clicks simulated from the reference with p = 0.5."""

    stage: int = 1
    default_p_prompt: float = 0.5
    click_source: str = "reference"  # reference (transform) | none | errors (train_step)
    option_families = (ClickOptions, OptimizerOptions)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        install_head_transfer()  # -pretrained_weights keeps the heads of the previous stage (stage_chain)
        clicks, optimizer = self.options(ClickOptions), self.options(OptimizerOptions)
        self.p_prompt = self.default_p_prompt if clicks.p_prompt is None else clicks.p_prompt
        self.click_radius, self.click_encoding = clicks.radius, clicks.encoding
        self.max_error_clicks = clicks.max_errors
        self.error_rounds, self.error_order, self.min_error_mm3 = (clicks.error_rounds, clicks.error_order,
                                                                   clicks.min_error_mm3)
        self.pet_dropout, self.pet_channel = clicks.pet_dropout, clicks.pet_channel
        self.previous_prediction = clicks.previous_prediction
        self.component_loss_weight = clicks.component_loss_weight
        self.optimizer_kind, self.warmup_epochs = optimizer.name, optimizer.warmup_epochs
        self.adamw_lr, self.adamw_wd = optimizer.adamw_lr, optimizer.adamw_wd

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> torch.nn.Module:
        # a positive and a negative channel per foreground class of a softmax (label-based) dataset
        n_prompt = prompt_channel_count(num_output_channels - 1, "split")
        clicks = manager_options(plans_manager, configuration_manager, ClickOptions)
        n_previous = num_output_channels - 1 if clicks.previous_prediction else 0
        net = super().build_network_architecture(plans_manager, configuration_manager,
                                                 num_input_channels + n_prompt + n_previous, num_output_channels,
                                                 enable_deep_supervision)
        wrapped = PromptChannelNetwork(net, num_input_channels, n_prompt, n_previous)
        wrapped.transfer_heads = clicks.transfer_heads  # read by stage_chain when -pretrained_weights loads
        return wrapped

    def initialize(self):
        require_plain_labels(self)
        super().initialize()

    @property
    def prompt_classes(self) -> tuple:
        return tuple(int(v) for v in self.label_manager.foreground_labels)

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's training transforms with :class:`SimulateClicksTransform` inserted before the
        deep-supervision downsampling (prompt probability 0 for stages 2 and 3: zero channels)."""
        compose = super().get_training_transforms(*args, **kwargs)
        p = self.p_prompt if self.click_source == "reference" else 0.0
        n_previous = len(self.prompt_classes) if self.previous_prediction else 0
        clicks = SimulateClicksTransform(self.prompt_classes, p, self.click_radius, self.click_encoding, "split",
                                         n_previous)
        at = next((i for i, t in enumerate(compose.transforms) if isinstance(t, DownsampleSegForDSTransform)),
                  len(compose.transforms))
        compose.transforms.insert(at, clicks)
        if self.pet_dropout > 0:  # before the prompts are appended, on the image channels only
            compose.transforms.insert(at, ChannelDropoutTransform(self.pet_channel, self.pet_dropout))
        return compose

    def configure_optimizers(self):
        if self.optimizer_kind != "adamw":
            return super().configure_optimizers()
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.adamw_lr, weight_decay=self.adamw_wd)
        return optimizer, WarmupCosineLRScheduler(optimizer, self.adamw_lr, self.num_epochs, self.warmup_epochs)

    def on_train_start(self):
        super().on_train_start()
        adamw = (f" (lr {self.adamw_lr}, wd {self.adamw_wd}, warm-up {self.warmup_epochs} epochs, cosine)"
                 if self.optimizer_kind == "adamw" else "")
        self.print_to_log_file(
            f"click prompts: stage {self.stage}, source {self.click_source}, p_prompt {self.p_prompt}, classes "
            f"{self.prompt_classes}, radius {self.click_radius}, encoding {self.click_encoding}, optimizer "
            f"{self.optimizer_kind}{adamw}, PET dropout {self.pet_dropout}, prompt layout split, previous-prediction "
            f"channels {'on' if self.previous_prediction else 'off'}"
            + (f", error rounds 1..{self.error_rounds}, order {self.error_order}, min error component "
               f"{self.min_error_size()} voxels, clicked-component loss weight {self.component_loss_weight}"
               if self.click_source == "errors" else ""))

    def train_step(self, batch: dict) -> dict:
        if not (self.click_source == "errors" and self.p_prompt > 0):
            return super().train_step(batch)
        data = batch["data"]
        weighted = isinstance(self.loss, ClickedComponentLoss)
        clicked = np.zeros((data.shape[0], *data.shape[2:]), bool) if weighted else None
        batch = {**batch, "data": self.error_prompts(data, batch["target"], clicked)}
        if weighted:
            self.loss.mask = torch.from_numpy(clicked)
        try:
            return super().train_step(batch)
        finally:
            if weighted:
                self.loss.mask = None

    def _build_loss(self):
        """nnU-Net's loss; stage 3 with ``clicks.component_loss_weight`` > 0 adds the cross-entropy over the
        clicked error components (:class:`~nnunet_ext.methods.interactive.component_loss.ClickedComponentLoss`)."""
        loss = super()._build_loss()
        if self.click_source == "errors" and self.component_loss_weight > 0:
            return ClickedComponentLoss(loss, self.component_loss_weight)
        return loss

    def min_error_size(self) -> int:
        """Smallest error component (voxels of a training patch) that gets a stage-3 click."""
        spacing = tuple(self.configuration_manager.spacing)
        return min_error_voxels(self.min_error_mm3, spacing, self.click_radius, len(spacing))

    def _predict_labels(self, x: torch.Tensor) -> np.ndarray:
        """argmax of the network on ``x`` (eval mode, no gradient; the training mode is restored)."""
        was_training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                out = self.network(x.to(self.device, non_blocking=True))
        finally:
            self.network.train(was_training)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.argmax(1).cpu().numpy()

    def error_prompts(self, data: torch.Tensor, target, clicked: "np.ndarray | None" = None) -> torch.Tensor:
        """``data`` (B, C + 2K, *patch) with the prompt channels set from error clicks against ``target``
        (full resolution), round by round (:func:`error_click_prompts`); R per sample uniform in
        1..error_rounds (0 = no clicks with probability 1 - p_prompt). ``clicked``: filled with the clicked
        error components."""
        ref = (target[0] if isinstance(target, (list, tuple)) else target)[:, 0].cpu().numpy().astype(np.int64)
        rounds = [int(np.random.randint(1, self.error_rounds + 1)) if np.random.uniform() < self.p_prompt else 0
                  for _ in range(data.shape[0])]
        rng = np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))
        return error_click_prompts(self._predict_labels, data, ref, self.prompt_classes, rounds,
                                   self.max_error_clicks, tuple(self.configuration_manager.spacing),
                                   self.min_error_size(), self.error_order, rng, self.click_radius,
                                   self.click_encoding, self.previous_prediction, clicked)

    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "click_stage": self.stage, "click_source": self.click_source,
                "p_prompt": self.p_prompt, "prompt_classes": list(self.prompt_classes),
                "click_radius": self.click_radius, "click_encoding": self.click_encoding,
                "optimizer": self.optimizer_kind, "pet_dropout": self.pet_dropout, "prompt_layout": "split",
                "n_prompt_channels": prompt_channel_count(len(self.prompt_classes), "split"),
                "n_previous_channels": len(self.prompt_classes) if self.previous_prediction else 0,
                "component_loss_weight": self.component_loss_weight if self.click_source == "errors" else 0.0}


class ClickPromptAutoTrainer(ClickPromptTrainer):
    """Stage 2: automatic fine-tuning, every prompt channel zero."""

    stage = 2
    default_p_prompt = 0.0
    click_source = "none"


class ClickPromptErrorTrainer(ClickPromptTrainer):
    """Stage 3: interactive fine-tuning, clicks in the error components of the network's own prediction."""

    stage = 3
    default_p_prompt = 1.0
    click_source = "errors"
