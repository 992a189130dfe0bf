"""``-m interactive``: click-prompted refinement with MC dropout + TTA uncertainty (HN-UISeg, Chu 2026 2.1-2.5).

Needs a model trained by a ``ClickPrompt*Trainer`` (its network takes C image + K prompt channels). Without
``--clicks`` (or for a case the clicks file does not name) the prompts are zero: the automatic branch. With
clicks, each case's clicks are mapped into nnU-Net's preprocessed grid
(:class:`nnunet_ext.methods.interactive.clicks.PreprocessedGrid`: transpose, crop, resampling) and painted with the
radius and
encoding the model was trained with (``checkpoint["nnext"]``; a disc in the click's slice for 2D
configurations) in the layout of the network (2K split channels; K signed ones for a network built that way,
:mod:`nnunet_ext.methods.interactive.clicks`), appended to the preprocessed image, and every pass (``--n-samples``, MC
dropout
active, one random TTA each, the ``tta_mc`` options) sees them; maps as ``tta_mc`` (predictive entropy by
default, as the paper). Prompts are geometry, not intensity: the spatial TTA (flip, rotation) moves them with
the image, the intensity TTA (Gaussian noise) touches the image channels only (``n_image_channels``, read by
:func:`nnunet_ext.core.tta.apply_each`); for the ``ball`` encoding they are rounded back to {0, 1} ({-1, 0, 1}
signed) in every window, so rotation interpolation does not blur them.

A model trained with ``clicks.previous_prediction`` (nnInteractive's previous-segmentation input, beyond the
paper) also takes K channels of the prediction the clicks were placed on: for a case with clicks the method first
predicts the automatic branch (zero prompts, zero previous), then predicts with the clicks and that prediction
(one-hot per foreground class in the preprocessed grid); ``clicks-eval`` feeds each step the previous step's
prediction instead. Without clicks these channels are zero.

Clicks JSON (:mod:`nnunet_ext.methods.interactive.clicks_json`): one file for every case (a list, or a grand-challenge
"Multiple points" object) or one object keyed by case id; ``--point-names tumor=GTVp background=-`` maps
grand-challenge point names. Per case ``CASE_clicks.json`` records the clicks used. ``--prune-unclicked MM``
(beyond the paper) drops, for each class with positive clicks, the segmented components farther than MM from
all of them (:func:`nnunet_ext.methods.interactive.click_simulation.prune_unclicked`; the segmentation only).
"""
from __future__ import annotations

import sys

import numpy as np

from nnunet_ext.errors import InputError, OptionsError
from nnunet_ext.methods.interactive.options import InteractiveOptions
from nnunet_ext.predictors.sampling_options import SamplingOptions
from nnunet_ext.predictors.tta_mc import TTAMCMethod


class InteractiveMethod(TTAMCMethod):
    name = "interactive"
    map_names = ("entropy", "variance", "mi")
    default_uncertainty = "entropy"
    stage_methods = ("tta_mc",)

    clicks = None
    clicks_file = None
    allow_missing_clicks = False
    prompt_layout: str = "split"
    n_image_channels = None
    click_radius: float = 3.0
    click_encoding: str = "ball"

    @classmethod
    def add_arguments(cls, group) -> None:
        InteractiveOptions.add_arguments(None, group=group)

    @classmethod
    def from_args(cls, args, common, model=None):
        from nnunet_ext.methods.interactive.clicks import class_channels, layout_of
        from nnunet_ext.methods.interactive.clicks_json import load_clicks, parse_point_names
        from nnunet_ext.methods.interactive.prompt_channels import PromptChannelNetwork

        try:
            opts = InteractiveOptions.from_args(args)
        except ValueError as e:
            raise InputError(str(e)) from None
        method = super().from_args(args, common, model)
        net = method.engine.network
        if not isinstance(net, PromptChannelNetwork):
            raise InputError(f"-m interactive needs a click-prompt model (ClickPromptTrainer, ClickPromptAutoTrainer, "
                             f"ClickPromptErrorTrainer); {method.engine.trainer_name} has no prompt channels")
        meta = method.engine.training_metadata
        from nnunet_ext.methods.interactive.options import ClickOptions
        from nnunet_ext.trainers.plans_options import checkpoint_options

        try:  # the options it was trained with
            method.click_options = checkpoint_options({"nnext": meta}, ClickOptions)
        except OptionsError as e:
            raise InputError(f"{method.engine.checkpoint_files[0]}: {e}") from None
        method.click_radius = float(meta.get("click_radius", 3.0))
        method.click_encoding = str(meta.get("click_encoding", "ball"))
        method.n_prompt = net.n_prompt_channels
        method.n_previous = getattr(net, "n_previous_channels", 0)
        method.n_image_channels = net.n_image_channels
        n_classes = len([v for k, v in method.labels.items() if v != 0])
        method.prompt_layout = layout_of(net.n_prompt_channels, n_classes)
        method.prune_mm = opts.prune_unclicked
        if opts.clicks is not None:
            names = parse_point_names(list(opts.point_names)) if opts.point_names else None
            method.clicks = load_clicks(opts.clicks, names, opts.gc_space)
            method.clicks_file = opts.clicks
            method.allow_missing_clicks = opts.allow_missing_clicks
            channels = class_channels(method.labels)
            for case, clicks in method.clicks.items():
                for n, c in enumerate(clicks):
                    key = int(c.label) if isinstance(c.label, str) and c.label.isdigit() else c.label
                    if key is not None and key not in channels:
                        where = f"{opts.clicks}: " + (f"{case}[{n}]" if case is not None else f"click {n}")
                        known = ", ".join(k for k in channels if isinstance(k, str))
                        raise InputError(f"{where}: class {c.label!r} is not a foreground class of the dataset "
                                         f"(known: {known})")
        return method

    #: the sampling of the interactive session and clicks-eval: one deterministic pass (latency)
    DETERMINISTIC = SamplingOptions(n_samples=1, tta="none", dropout_p=0.0)

    @classmethod
    def load(cls, dataset, configuration: str, trainer: str = "ClickPromptErrorTrainer", plans: str = "nnUNetPlans",
             folds=None, device: str = "cpu", checkpoint: str = "checkpoint_final.pth",
             sampling: SamplingOptions = DETERMINISTIC,
             options: "InteractiveOptions | None" = None) -> "InteractiveMethod":
        """Build the method from Python with the option dataclasses (what ``nnext predict -m interactive`` builds
        from its flags): ``sampling`` (:class:`SamplingOptions`, default one deterministic pass) and ``options``
        (:class:`InteractiveOptions`, e.g. ``InteractiveOptions(clicks="clicks.json")``)."""
        import argparse

        from nnunet_ext.predictors.method import CommonOptions

        options = options if options is not None else InteractiveOptions()
        model = {"m": cls.name, "d": str(dataset), "c": configuration, "tr": trainer, "p": plans,
                 "prev_stage_predictions": None, "f": None if folds is None else [str(f) for f in folds]}
        args = argparse.Namespace(**sampling.to_dict(), **options.to_dict(), **model)  # the options, as flags give them
        method = cls.from_args(args, CommonOptions(device=device, checkpoint=checkpoint, progress=False))
        method.requested_maps = ("entropy",)
        return method

    @property
    def labels(self) -> dict:
        return {k: v for k, v in self.dataset_json["labels"].items() if k != "ignore"}

    def side_outputs(self):
        return (), (("clicks",) if self.clicks is not None else ())

    def check_cases(self, cases: list) -> None:
        """Clicks keyed to cases that are not among the inputs: refused listing them (a misspelt or renamed case
        would otherwise silently run the automatic branch), unless ``--allow-missing-clicks`` (a warning)."""
        if self.clicks is None or None in self.clicks:
            return
        ids = {c.case_id for c in cases}
        missing = sorted(k for k in self.clicks if k not in ids)
        if not missing:
            return
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        text = (f"{self.clicks_file}: clicks for {len(missing)} case(s) not among the inputs: {shown} "
                f"(inputs: {', '.join(sorted(ids)[:5])}{', ...' if len(ids) > 5 else ''})")
        if not self.allow_missing_clicks:
            raise InputError(text + "; check the case IDs, or pass --allow-missing-clicks to run anyway")
        print(f"warning: {text}; running anyway (--allow-missing-clicks)", file=sys.stderr)

    def case_clicks(self, case_id: str) -> list:
        from nnunet_ext.methods.interactive.clicks_json import clicks_for_case

        return [] if self.clicks is None else clicks_for_case(self.clicks, case_id)

    def prompt_for(self, clicks, data_shape, properties) -> np.ndarray:
        """Prompt channels ``(K, *S)`` in the preprocessed grid of a case (``properties`` from its preprocessing)."""
        from nnunet_ext.methods.interactive.clicks import PreprocessedGrid, rasterize_preprocessed
        from nnunet_ext.predictors.export import geometry_from_properties

        pm = self.engine.plans_manager
        grid = PreprocessedGrid.from_properties(properties, pm.transpose_forward, data_shape)
        shape = tuple(properties["shape_before_cropping"][i] for i in pm.transpose_backward)
        image = (shape, geometry_from_properties(properties))
        return rasterize_preprocessed(clicks, image, self.labels, grid, self.click_radius, self.click_encoding,
                                      stamp_ndim=len(self.engine.configuration_manager.patch_size),
                                      layout=self.prompt_layout)

    n_previous = 0

    def prepare(self, case):
        prepared = super().prepare(case)
        clicks = self.case_clicks(case.case_id)
        prompt = (self.prompt_for(clicks, prepared.data.shape[1:], prepared.properties) if clicks
                  else np.zeros((self.n_prompt, *prepared.data.shape[1:]), np.float32))
        previous = np.zeros((self.n_previous, *prepared.data.shape[1:]), prepared.data.dtype)
        prepared.data = np.concatenate([prepared.data, prompt.astype(prepared.data.dtype), previous], 0)
        prepared.clicks = clicks
        prepared.previous = None  # labels (preprocessed grid) of the prediction the clicks were placed on
        return prepared

    def with_channels(self, data: np.ndarray, prompt: "np.ndarray | None" = None,
                      previous: "np.ndarray | None" = None) -> np.ndarray:
        """``data``'s image channels + ``prompt`` (zeros if None) + the previous-prediction channels of the label
        map ``previous`` (preprocessed grid; zeros if None; only for models that have them)."""
        image = data[:self.n_image_channels]
        shape = image.shape[1:]
        prompt = np.zeros((self.n_prompt, *shape), image.dtype) if prompt is None else prompt.astype(image.dtype)
        parts = [image, prompt]
        if self.n_previous:
            classes = sorted(v for v in self.labels.values() if isinstance(v, int) and v != 0)
            parts.append(np.zeros((self.n_previous, *shape), image.dtype) if previous is None else
                         np.stack([previous == v for v in classes]).astype(image.dtype))
        return np.concatenate(parts, 0)

    def forward(self, batch, window, ctx):
        if self.click_encoding == "ball" or self.n_previous:
            batch = batch.clone()
            low = 0 if self.prompt_layout == "split" else -1
            c, p = self.n_image_channels, self.n_prompt
            if self.click_encoding == "ball":
                batch[:, c:c + p] = batch[:, c:c + p].round().clamp(low, 1)
            batch[:, c + p:] = batch[:, c + p:].round().clamp(0, 1)  # previous prediction: one-hot
        return self.engine.network(batch)

    prune_mm = None

    def predict_network(self, data, ctx):
        result = super().predict_network(data, ctx)
        self.last_labels = result.logits.argmax(0).numpy()  # plain labels: channel index = label value
        return result

    def predict_case(self, prepared, ctx):
        if self.n_previous and prepared.clicks:
            if prepared.previous is None:  # the automatic branch first: the prediction the clicks refine
                self.predict_network(self.with_channels(prepared.data), ctx)
                prepared.previous = self.last_labels
            prompt = prepared.data[self.n_image_channels:self.n_image_channels + self.n_prompt]
            prepared.data = self.with_channels(prepared.data, prompt, prepared.previous)
        result = super().predict_case(prepared, ctx)
        prepared.labels = self.last_labels
        pruned = self.prune(result, prepared.clicks) if self.prune_mm is not None and prepared.clicks else []
        if self.clicks is not None:
            result.jsons["clicks"] = {"clicks": [
                {"point": list(c.position), "space": c.space, "label": c.label, "positive": c.positive}
                for c in prepared.clicks], "radius_voxels": self.click_radius, "encoding": self.click_encoding,
                **({"pruned_components": pruned} if self.prune_mm is not None else {})}
        return result

    def prune(self, result, clicks) -> list:
        """``--prune-unclicked``: drop far components of clicked classes from ``result.segmentation`` (in place;
        probabilities and maps are left as predicted)."""
        from nnunet_ext.methods.interactive.click_simulation import prune_unclicked
        from nnunet_ext.methods.interactive.clicks import class_channels, click_indices

        seg = result.segmentation
        spatial = seg[0] if seg.ndim == len(result.geometry.spacing) + 1 else seg
        channels = class_channels(self.labels)
        values = sorted(v for v in channels if isinstance(v, int))
        positives = [(values[ch[0]], np.floor(zyx + 0.5).astype(int))
                     for ch, zyx, pos in click_indices(clicks, (spatial.shape, result.geometry), self.labels)
                     if pos and len(ch) == 1]
        out, dropped = prune_unclicked(spatial, positives, self.prune_mm, result.geometry.spacing[::-1])
        spatial[...] = out
        return dropped

    def settings(self) -> dict:
        return {**super().settings(), "click_radius": self.click_radius, "click_encoding": self.click_encoding,
                "prompt_layout": self.prompt_layout, "previous_prediction_channels": self.n_previous,
                "clicks_file": None if self.clicks is None else "given", "prune_unclicked_mm": self.prune_mm}
