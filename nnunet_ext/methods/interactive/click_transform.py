"""``SimulateClicksTransform``: batchgeneratorsv2 transform appending click-prompt channels (Chu 2026, sec. 2.2).

Per training sample (nnU-Net applies transforms sample by sample, after the spatial / intensity
augmentations and ``RemoveLabelTansform``, *before* ``DownsampleSegForDSTransform``):

* in:  ``image`` ``(C, *patch)`` float, ``segmentation`` ``(1, *patch)`` integer labels (``-1`` already 0);
* out: ``image`` ``(C + 2K, *patch)`` with K = len(classes): positive channel C + k and negative channel
  C + K + k of class ``classes[k]`` (``layout="split"``; ``"signed"``: K channels ``P - N``), then
  ``n_previous`` zero channels (the previous-prediction input, filled only by stage 3's rounds),
  ``segmentation`` unchanged.

With probability ``p_prompt`` the prompts come from
:func:`nnunet_ext.methods.interactive.click_simulation.training_clicks`
(one positive click per connected component of each class at a random voxel of it, as many negatives at random
voxels outside the class), painted with :func:`nnunet_ext.methods.interactive.clicks.rasterize_voxels` (ball of
``radius``
voxels, ``encoding``); otherwise all K channels are zero (automatic branch). Randomness: numpy's global
generator, as batchgeneratorsv2 transforms use (nnU-Net seeds it per worker).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_ext.methods.interactive.click_simulation import training_clicks
from nnunet_ext.methods.interactive.clicks import prompt_channel_count, rasterize_voxels


class SimulateClicksTransform(BasicTransform):
    def __init__(self, classes: Sequence[int], p_prompt: float = 0.5, radius: float = 3, encoding: str = "ball",
                 layout: str = "split", n_previous: int = 0):
        super().__init__()
        if not 0 <= p_prompt <= 1:
            raise ValueError(f"p_prompt must be in [0, 1], got {p_prompt}")
        self.classes = tuple(int(c) for c in classes)
        self.p_prompt = float(p_prompt)
        self.radius = float(radius)
        self.encoding = encoding
        self.layout = layout
        self.n_prompt = prompt_channel_count(len(self.classes), layout)
        self.n_previous = int(n_previous)

    def get_parameters(self, **data_dict) -> dict:
        return {"prompt": bool(self.p_prompt > 0 and np.random.uniform() < self.p_prompt)}

    def apply(self, data_dict, **params):
        image = data_dict["image"]
        shape = tuple(image.shape[1:])
        if params["prompt"]:
            label = np.asarray(data_dict["segmentation"][0].cpu().numpy(), dtype=np.int64)
            rng = np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))
            clicks = training_clicks(label, self.classes, rng)
            prompt = torch.from_numpy(rasterize_voxels(clicks, shape, len(self.classes), self.radius, self.encoding,
                                                       layout=self.layout))
        else:
            prompt = torch.zeros((self.n_prompt, *shape))
        previous = torch.zeros((self.n_previous, *shape), dtype=image.dtype)
        data_dict["image"] = torch.cat([image, prompt.to(image.dtype), previous], 0)
        return data_dict


class ChannelDropoutTransform(BasicTransform):
    """Beyond the paper: with probability ``p`` set image channel ``channel`` (PET) to 0 -- what a CT-only case
    (PET zero-filled by ``nnext convert hecktor --ct-only``, 0 after nnU-Net's z-score) looks like -- so that one
    model serves PET/CT and CT-only input. ``image`` ``(C, *patch)`` in and out."""

    def __init__(self, channel: int = 1, p: float = 0.0):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"channel dropout p must be in [0, 1], got {p}")
        self.channel, self.p = int(channel), float(p)

    def get_parameters(self, **data_dict) -> dict:
        return {"drop": bool(self.p > 0 and np.random.uniform() < self.p)}

    def apply(self, data_dict, **params):
        if params["drop"]:
            image = data_dict["image"].clone()
            image[self.channel] = 0
            data_dict["image"] = image
        return data_dict
