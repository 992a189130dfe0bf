"""Chaining the click-prompt stages with nnU-Net's ``-pretrained_weights``, segmentation heads included.

nnU-Net's ``load_pretrained_weights`` (``nnunetv2.run.load_pretrained_weights``) transfers every weight except the
segmentation heads (keys containing ``.seg_layers.``), which stay randomly initialised: it is meant for transfer
to another label set. HN-UISeg's stages fine-tune one model on one label set (Chu 2026, sec. 2.2: stage 2
fine-tunes the pre-trained model, stage 3 the stage-2 model), so the heads must carry over; re-initialised, every
stage first re-learns its output layer, which costs the short stages of the demo and the benchmarks most of their
epochs (measured in benchmarks/RESULTS.md, issue 18: the stage-3 automatic Dice fell below stage 1's).

nnU-Net has no hook for this, so the click-prompt trainers wrap the loader that ``nnunetv2.run.run_training`` calls
(its module global ``load_pretrained_weights``; ``nnUNetv2_train -pretrained_weights`` and the Python
``run_training(..., pretrained_weights=...)`` both go through it): nnU-Net's function runs unchanged, then, for a
:class:`~nnunet_ext.methods.interactive.prompt_channels.PromptChannelNetwork` whose ``transfer_heads`` is set
(plans option ``clicks.transfer_heads``, default true), the checkpoint's ``.seg_layers.`` tensors are copied where
key and shape match. Every other network loads exactly as nnU-Net loads it.
"""
from __future__ import annotations

import torch


def copy_heads(network, fname) -> int:
    """Copy the ``.seg_layers.`` tensors of checkpoint ``fname`` into ``network`` (a PromptChannelNetwork with
    ``transfer_heads``; DDP / compiled wrappers unwrapped) where key and shape match; returns how many."""
    mod = getattr(network, "module", network)
    mod = getattr(mod, "_orig_mod", mod)
    if not getattr(mod, "transfer_heads", False):
        return 0
    saved = torch.load(fname, map_location="cpu", weights_only=False)["network_weights"]
    state = mod.state_dict()
    heads = {k: v for k, v in saved.items() if ".seg_layers." in k and k in state and state[k].shape == v.shape}
    if heads:
        state.update(heads)
        mod.load_state_dict(state)
    return len(heads)


def install_head_transfer() -> None:
    """Wrap ``nnunetv2.run.run_training.load_pretrained_weights`` once (see the module docstring)."""
    import nnunetv2.run.run_training as run_training

    original = run_training.load_pretrained_weights
    if getattr(original, "nnext_head_transfer", False):
        return

    def load_pretrained_weights(network, fname, verbose=False):
        original(network, fname, verbose=verbose)
        n = copy_heads(network, fname)
        if n and verbose:
            print(f"clicks.transfer_heads: also copied {n} segmentation-head tensors from {fname} (same label set)")

    load_pretrained_weights.nnext_head_transfer = True
    run_training.load_pretrained_weights = load_pretrained_weights
