"""Monte-Carlo dropout helpers (Gal & Ghahramani 2016), independent of nnU-Net.

MC dropout keeps dropout *stochastic at inference* while every other layer (notably instance / batch
normalisation) stays in evaluation mode; N such passes sample the approximate posterior predictive.

* :func:`dropout_arch_kwargs` inserts a dropout layer into the convolution blocks of a
  dynamic-network-architectures U-Net (``PlainConvUNet``, ``ResidualEncoderUNet``) by editing the
  architecture kwargs stored in nnU-Net plans (``dropout_op`` / ``dropout_op_kwargs``).
* :func:`set_mc_dropout` switches the dropout modules of a network into (or out of) sampling mode.
"""
from __future__ import annotations

from typing import Iterator

#: dropout flavours: ``channel`` = Dropout2d/3d (whole feature maps, nnU-Net's historical choice),
#: ``element`` = nn.Dropout (independent voxels).
DROPOUT_KINDS = ("channel", "element")


def dropout_op_name(conv_op_name: str, kind: str = "channel") -> str:
    """Dotted name of the dropout class matching a conv op (``torch.nn.Conv3d`` -> ``torch.nn.Dropout3d``)."""
    if kind not in DROPOUT_KINDS:
        raise ValueError(f"dropout kind must be one of {DROPOUT_KINDS}, got {kind!r}")
    if kind == "element":
        return "torch.nn.Dropout"
    dim = "3" if conv_op_name.endswith("Conv3d") else "2" if conv_op_name.endswith("Conv2d") else None
    if dim is None:
        raise ValueError(f"cannot derive a dropout op for conv op {conv_op_name!r}")
    return f"torch.nn.Dropout{dim}d"


def check_dropout_p(p: float) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return p


def dropout_arch_kwargs(arch_kwargs: dict, requires_import: "list[str] | tuple[str, ...]", p: float,
                        kind: str = "channel") -> tuple[dict, list[str]]:
    """Return copies of (arch_kwargs, requires_import) with dropout ``p`` in every conv block.

    dynamic-network-architectures applies ``dropout_op`` after each convolution of the encoder stages and
    (through ``UNetDecoder``, which inherits the encoder's op) of the decoder stages; residual blocks apply
    it after their first convolution.
    """
    p = check_dropout_p(p)
    kwargs = dict(arch_kwargs)
    kwargs["dropout_op"] = dropout_op_name(str(kwargs["conv_op"]), kind)
    kwargs["dropout_op_kwargs"] = {"p": p, "inplace": False}
    req = list(requires_import)
    if "dropout_op" not in req:
        req.append("dropout_op")
    return kwargs, req


def planned_dropout_p(arch_kwargs: dict) -> "float | None":
    """Dropout probability already configured in plans' architecture kwargs, or None."""
    if arch_kwargs.get("dropout_op") is None:
        return None
    return float((arch_kwargs.get("dropout_op_kwargs") or {}).get("p", 0.5))


def dropout_modules(network) -> Iterator:
    """All dropout modules (``torch.nn.modules.dropout._DropoutNd``) of ``network``."""
    from torch.nn.modules.dropout import _DropoutNd

    return (m for m in network.modules() if isinstance(m, _DropoutNd))


def set_mc_dropout(network, active: bool = True, p: "float | None" = None) -> int:
    """Put ``network`` in eval mode, then dropout modules alone in train mode when ``active``.

    Optionally overrides the dropout probability. Returns the number of dropout modules found (0 means
    MC sampling is impossible: the caller should warn that only TTA remains).
    """
    network.eval()
    n = 0
    for m in dropout_modules(network):
        if p is not None:
            m.p = check_dropout_p(p)
        m.train(active)
        n += 1
    return n
