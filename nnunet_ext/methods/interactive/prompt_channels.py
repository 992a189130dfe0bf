"""``PromptChannelNetwork``: an nnU-Net network whose input is image channels + click-prompt channels.

HN-UISeg (Chu 2026, sec. 2.1) concatenates CT, PET and one prompt channel per foreground class at the input
("early fusion"). The wrapped network is built with ``n_image + n_prompt`` input channels; the wrapper
zero-fills the prompt channels when it receives only the ``n_image`` image channels, so nnU-Net's own
predictor (``nnUNetv2_predict``), its validation and every nnunet_ext method that does not know about
prompts run the *automatic branch* unchanged. Input ``x``: ``(B, n_image, *S)`` or ``(B, n_image + n_prompt,
*S)``; output: the wrapped network's (logits, or a deep-supervision list).

Module-level class (picklable, importable by nnU-Net's workers); parameters live under ``network.`` in the
state dict, which nnU-Net's checkpoints and ``-pretrained_weights`` carry as they are. ``encoder`` /
``decoder`` are the wrapped network's, so nnU-Net's ``set_deep_supervision_enabled`` works.
"""
from __future__ import annotations

import torch
from torch import nn


class PromptChannelNetwork(nn.Module):
    def __init__(self, network: nn.Module, n_image_channels: int, n_prompt_channels: int):
        super().__init__()
        self.network = network
        self.n_image_channels = int(n_image_channels)
        self.n_prompt_channels = int(n_prompt_channels)

    @property
    def encoder(self):
        return self.network.encoder

    @property
    def decoder(self):
        return self.network.decoder

    def forward(self, x: torch.Tensor):
        c = x.shape[1]
        if c == self.n_image_channels:
            zeros = x.new_zeros((x.shape[0], self.n_prompt_channels, *x.shape[2:]))
            x = torch.cat([x, zeros], 1)
        elif c != self.n_image_channels + self.n_prompt_channels:
            raise ValueError(f"PromptChannelNetwork expects {self.n_image_channels} image channels (+ "
                             f"{self.n_prompt_channels} prompt channels), got {c}")
        return self.network(x)

    def extra_repr(self) -> str:
        return f"n_image_channels={self.n_image_channels}, n_prompt_channels={self.n_prompt_channels}"
