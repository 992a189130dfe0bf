"""UGS-Net head on an nnU-Net U-Net (Yang & Wang, sec. III-A..C), 2D and 3D.

* Feature Extracting Module: nnU-Net's own ``PlainConvUNet`` / ``ResidualEncoderUNet`` (any class with
  ``encoder`` + ``UNetDecoder``); R = the last decoder stage's feature map (the backbone's full-resolution
  width, 32 in nnU-Net's default plans; the paper's Attention U-Net has 64).
* Uncertainty-Aware Module: three conv blocks R -> R_LC, R_HC, R_Uni (conv-norm-nonlin, the backbone's ops);
  1x1 heads -> ∪(GT)' (from R_LC), ∩(GT)' (from R_HC), GT'_uni (from R_Uni) logits.
* IUCM: a Feature-Aware Attention Block per branch, R'_z = Concat(R_z, Γ(A(R_z))) (eq. 1, "⊕ ... is concatenated
  with R_z") followed by a 1x1 conv back to C channels and the backbone's norm + nonlin (so that R'_z and R share
  a space and can be compared; the norm also keeps training stable);
  A = single-head scaled dot-product self-attention (Vaswani et al.) over voxels with a learned residual gain
  tanh(γ) (bounded; γ init 0); Γ = fixed Gabor bank + learned 1x1 mixing (Uni, LC) or the soft Otsu filter (HC).
  S_z = per-voxel relative L2 distance ||R'_z − R||₂ / (||R'_z||₂ + ||R||₂) ∈ [0, 1] (bounded: the raw distance
  makes S_z·R'_z quadratic in the features and training diverged); R_Aug = Concat(S_Uni·R'_Uni, S_LC·R'_LC, S_HC·R'_HC);
  X_S = 1x1 conv(Concat(R, R_Aug)) (the paper's "a convolutional layer").
* Memory: attention runs on an average-pooled grid with at most ``max_tokens`` voxels (pool factor 2 per
  axis until it fits, i.e. 32³ -> 16³ = 4096 tokens; 2D patches <= 64x64 at full resolution) and is
  upsampled back (linear) before Γ.

Outputs (logits, 1 channel each, sigmoid): eval mode (nnU-Net inference) returns X_S only, so plain
``nnUNetv2_predict`` gives X_S (``output_head`` = ``union`` / ``inter`` / ``uni`` returns that UAM head
instead, for ``nnext predict -m mcm``); training mode (or ``return_heads = True``) returns a dict ``xs``, ``union``,
``inter``, ``uni``; with deep supervision ``xs`` is a list [X_S, backbone logits at 1/2, 1/4, ...] as in
nnU-Net. Buildable by dotted path through nnU-Net's ``get_network_from_plans``:
``network_class_name = "nnunet_ext.methods.multi_rater.ugsnet_network.UGSNet"`` with ``backbone_class_name`` in the
kwargs.
"""
from __future__ import annotations

import math
import pydoc

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ext.methods.multi_rater.gabor import GaborBank
from nnunet_ext.methods.multi_rater.otsu import OtsuFilter

DEFAULT_BACKBONE = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
DEFAULT_MAX_TOKENS = 4096


def _ndim(conv_op) -> int:
    return 3 if issubclass(conv_op, nn.Conv3d) else 2


def distance_weight(rz: torch.Tensor, r: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """S_z per voxel: ||R'_z − R||₂ / (||R'_z||₂ + ||R||₂ + ε) over channels, in [0, 1] (module docstring).

    Relative, not the raw distance: S_z·R'_z with an unbounded S_z is quadratic in the features, and that feedback
    made training diverge (loss 1e18 after ~200 iterations at TinyPlanner's lr 0.05, benchmarks/RESULTS.md)."""
    norm = torch.linalg.vector_norm
    return norm(rz - r, dim=1, keepdim=True) / (norm(rz, dim=1, keepdim=True) + norm(r, dim=1, keepdim=True) + eps)


def _norm_nonlin(enc, c: int) -> nn.Module:
    """The backbone's norm -> nonlin (whichever it has)."""
    layers = []
    if enc.norm_op is not None:
        layers.append(enc.norm_op(c, **(enc.norm_op_kwargs or {})))
    if enc.nonlin is not None:
        layers.append(enc.nonlin(**(enc.nonlin_kwargs or {})))
    return nn.Sequential(*layers)


class ConvBlock(nn.Sequential):
    """conv(k=3) -> norm -> nonlin with the backbone's ops."""

    def __init__(self, enc, c_in: int, c_out: int):
        ndim = _ndim(enc.conv_op)
        super().__init__(enc.conv_op(c_in, c_out, 3, 1, 1, bias=True), *_norm_nonlin(enc, c_out))
        self.ndim = ndim


class SelfAttention(nn.Module):
    """A(R): single-head scaled dot-product self-attention over voxels, on a pooled grid (<= max_tokens)."""

    def __init__(self, channels: int, ndim: int, max_tokens: int = DEFAULT_MAX_TOKENS):
        super().__init__()
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.q, self.k, self.v = (conv(channels, channels, 1) for _ in range(3))
        self.gamma = nn.Parameter(torch.zeros(1))
        self.ndim, self.max_tokens = ndim, max_tokens

    def pool_factor(self, spatial) -> int:
        f = 1
        while math.prod(max(1, s // f) for s in spatial) > self.max_tokens:
            f *= 2
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        f = self.pool_factor(spatial)
        pool = F.avg_pool3d if self.ndim == 3 else F.avg_pool2d
        xs = pool(x, f, f, ceil_mode=True) if f > 1 else x
        b, c = xs.shape[:2]
        q, k, v = (m(xs).reshape(b, 1, c, -1).transpose(-1, -2) for m in (self.q, self.k, self.v))
        att = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(xs.shape)
        if f > 1:
            att = F.interpolate(att, size=spatial, mode="trilinear" if self.ndim == 3 else "bilinear",
                                align_corners=False)
        # bounded residual gain tanh(γ) ∈ (−1, 1): a raw scalar γ (its gradient sums over every voxel) ran away
        # together with v and the branch norm (γ ≈ 6000 when UGSNetTrainer diverged, benchmarks/RESULTS.md)
        return x + torch.tanh(self.gamma) * att


class FeatureAwareAttentionBlock(nn.Module):
    """R'_z = 1x1conv(Concat(R_z, Γ(A(R_z)))) with Γ = ``gabor`` (bank + 1x1 mix) or ``otsu`` (eq. 1)."""

    def __init__(self, channels: int, ndim: int, kind: str, max_tokens: int = DEFAULT_MAX_TOKENS,
                 post: "nn.Module | None" = None):
        super().__init__()
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.attention = SelfAttention(channels, ndim, max_tokens)
        self.kind = kind
        if kind == "gabor":
            bank = GaborBank(channels, ndim)
            self.filter = nn.Sequential(bank, conv(bank.out_channels, channels, 1))
        elif kind == "otsu":
            self.filter = OtsuFilter()
        else:
            raise ValueError(f"unknown feature-aware filter {kind!r} (gabor | otsu)")
        self.fuse = conv(2 * channels, channels, 1)
        #: norm + nonlin after the 1x1 fuse (UGSNet passes the backbone's ops): without it v -> Gabor mix -> fuse ->
        #: X_S layer is a chain of four unnormalised linear maps, and UGSNetTrainer diverged at lr 0.05
        self.post = post if post is not None else nn.Identity()

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.post(self.fuse(torch.cat([r, self.filter(self.attention(r))], 1)))


class UGSNet(nn.Module):
    """nnU-Net backbone (Feature Extracting Module) + UAM + IUCM -> X_S (module docstring)."""

    def __init__(self, input_channels: int, num_classes: int = 1, deep_supervision: bool = False,
                 backbone_class_name: str = DEFAULT_BACKBONE, max_tokens: int = DEFAULT_MAX_TOKENS,
                 iucm: bool = True, **backbone_kwargs):
        super().__init__()
        if num_classes != 1:
            raise ValueError(f"UGSNet predicts one sigmoid nodule map per head, got num_classes={num_classes} "
                             "(use a rater-set dataset, whose dataset.json has one 'nodule' region)")
        backbone_cls = pydoc.locate(backbone_class_name)
        if backbone_cls is None:
            raise ValueError(f"backbone class {backbone_class_name!r} not found")
        self.backbone = backbone_cls(input_channels=input_channels, num_classes=1,
                                     deep_supervision=deep_supervision, **backbone_kwargs)
        enc = self.backbone.encoder
        c = enc.output_channels[0]
        ndim = _ndim(enc.conv_op)
        conv = enc.conv_op
        self.ndim, self.channels, self.return_heads = ndim, c, False
        #: eval-mode output: "xs" (X_S, nnU-Net inference) or one UAM head, "union" / "inter" / "uni" (-m mcm)
        self.output_head = "xs"
        self.branch = nn.ModuleDict({z: ConvBlock(enc, c, c) for z in ("lc", "hc", "uni")})
        self.head = nn.ModuleDict({z: conv(c, 1, 1, 1, 0, bias=True) for z in ("lc", "hc", "uni")})
        #: False = the ablation "UGS-Net without IUCM": X_S from Concat(R, R_Uni, R_LC, R_HC) directly
        self.iucm = bool(iucm)
        if self.iucm:
            self.faab = nn.ModuleDict({z: FeatureAwareAttentionBlock(c, ndim, kind, max_tokens, _norm_nonlin(enc, c))
                                       for z, kind in (("uni", "gabor"), ("lc", "gabor"), ("hc", "otsu"))})
        self.final = conv(4 * c, 1, 1, 1, 0, bias=True)

    @staticmethod
    def initialize(module):
        """nnU-Net's He initialisation (what ``get_network_from_plans`` applies to its own U-Nets)."""
        from dynamic_network_architectures.initialization.weight_init import InitWeights_He

        InitWeights_He(1e-2)(module)

    @property
    def decoder(self):
        """The backbone's decoder (nnU-Net toggles ``network.decoder.deep_supervision``)."""
        return self.backbone.decoder

    @property
    def encoder(self):
        return self.backbone.encoder

    def features(self, x: torch.Tensor):
        """(R, backbone logits per decoder stage, highest resolution first) — UNetDecoder.forward unrolled."""
        dec = self.backbone.decoder
        skips = self.backbone.encoder(x)
        lres, logits = skips[-1], []
        for s in range(len(dec.stages)):
            h = dec.transpconvs[s](lres)
            h = dec.stages[s](torch.cat((h, skips[-(s + 2)]), 1))
            if dec.deep_supervision and s < len(dec.stages) - 1:
                logits.append(dec.seg_layers[s](h))
            lres = h
        return lres, logits[::-1]

    def forward(self, x: torch.Tensor):
        r, aux = self.features(x)
        feats = {z: self.branch[z](r) for z in ("lc", "hc", "uni")}
        heads = {"union": "lc", "inter": "hc", "uni": "uni"}
        if not (self.training or self.return_heads) and self.output_head in heads:
            z = heads[self.output_head]
            return self.head[z](feats[z])
        aug = []
        for z in ("uni", "lc", "hc"):
            if not self.iucm:
                aug.append(feats[z])
                continue
            rz = self.faab[z](feats[z])
            s = distance_weight(rz, r)
            aug.append(s * rz)
        xs = self.final(torch.cat([r] + aug, 1))
        if self.decoder.deep_supervision:
            xs = [xs] + aux
        if not (self.training or self.return_heads):
            return xs
        return {"xs": xs, "union": self.head["lc"](feats["lc"]), "inter": self.head["hc"](feats["hc"]),
                "uni": self.head["uni"](feats["uni"])}

    def compute_conv_feature_map_size(self, input_size):
        return self.backbone.compute_conv_feature_map_size(input_size)
