"""``PromptChannelNetwork``: an nnU-Net network whose input is image channels + click-prompt channels.

HN-UISeg (Chu 2026, sec. 2.1) concatenates CT, PET and one prompt channel per foreground class at the input
("early fusion"). The wrapped network is built with ``n_image + n_prompt`` input channels; the wrapper
zero-fills the prompt channels when it receives only the ``n_image`` image channels, so nnU-Net's own
predictor (``nnUNetv2_predict``), its validation and every nnunet_ext method that does not know about
prompts run the *automatic branch* unchanged. Input ``x``: ``(B, n_image, *S)`` or ``(B, n_image + n_prompt,
*S)``; output: the wrapped network's (logits, or a deep-supervision list).

Prompt layouts (:mod:`nnunet_ext.methods.interactive.clicks`): the click-prompt trainers build ``n_prompt = 2K``
channels
(positives of the K classes, then negatives). A checkpoint of the earlier signed layout (K channels, ``P_k -
N_k``) still loads: :meth:`PromptChannelNetwork.load_state_dict` recognises it by the input-channel count of
the first convolution and expands its prompt weights ``W_k`` to ``[W_k, -W_k]``, which computes exactly what
the signed network computed (``W P - W N = W (P - N)``).

Previous-prediction channels (``n_previous_channels`` = K, plans option ``clicks.previous_prediction``, off by
default; nnInteractive's previous-segmentation input, Isensee et al. 2025): K more input channels after the
prompts, 1 where the prediction the clicks were placed on is class k. Input with the image and prompt channels only
gets them zero-filled (no previous prediction), so every caller that does not know about them still works.

Module-level class (picklable, importable by nnU-Net's workers); parameters live under ``network.`` in the
state dict, which nnU-Net's checkpoints and ``-pretrained_weights`` carry as they are. ``encoder`` /
``decoder`` are the wrapped network's, so nnU-Net's ``set_deep_supervision_enabled`` works.
"""
from __future__ import annotations

import torch
from torch import nn


class PromptChannelNetwork(nn.Module):
    def __init__(self, network: nn.Module, n_image_channels: int, n_prompt_channels: int,
                 n_previous_channels: int = 0):
        super().__init__()
        self.network = network
        self.n_image_channels = int(n_image_channels)
        self.n_prompt_channels = int(n_prompt_channels)
        self.n_previous_channels = int(n_previous_channels)

    @property
    def n_input_channels(self) -> int:
        return self.n_image_channels + self.n_prompt_channels + self.n_previous_channels

    @property
    def encoder(self):
        return self.network.encoder

    @property
    def decoder(self):
        return self.network.decoder

    def forward(self, x: torch.Tensor):
        c, n = x.shape[1], self.n_input_channels
        if c in (self.n_image_channels, self.n_image_channels + self.n_prompt_channels) and c < n:
            x = torch.cat([x, x.new_zeros((x.shape[0], n - c, *x.shape[2:]))], 1)
        elif c != n:
            previous = f" + {self.n_previous_channels} previous-prediction" if self.n_previous_channels else ""
            raise ValueError(f"PromptChannelNetwork expects {self.n_image_channels} image channels (+ "
                             f"{self.n_prompt_channels} prompt{previous} channels), got {c}")
        return self.network(x)

    def _input_weight_keys(self) -> list:
        """State-dict keys of the weights that read the network input (image + prompt channels); one module can
        appear under several keys (nnU-Net's decoder keeps a reference to the encoder, ``all_modules``)."""
        n = self.n_input_channels
        return [k for k, v in self.state_dict().items() if k.endswith("weight") and v.ndim >= 3 and v.shape[1] == n]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module's, plus: a signed-layout state dict (K prompt channels where this network has 2K) is
        expanded exactly (see the module docstring)."""
        k2, c = self.n_prompt_channels, self.n_image_channels
        converted = None
        signed_possible = k2 % 2 == 0 and not self.n_previous_channels  # signed models predate previous channels
        for key in self._input_weight_keys() if signed_possible else ():
            w = state_dict.get(key)
            if w is not None and w.shape[1] == c + k2 // 2:
                converted = dict(state_dict) if converted is None else converted
                converted[key] = torch.cat([w[:, :c], w[:, c:], -w[:, c:]], 1)
        return super().load_state_dict(converted or state_dict, strict=strict, assign=assign)

    def extra_repr(self) -> str:
        return (f"n_image_channels={self.n_image_channels}, n_prompt_channels={self.n_prompt_channels}, "
                f"n_previous_channels={self.n_previous_channels}")
