"""``MCDropoutTrainer``: nnU-Net with dropout in every conv block, ready for Monte-Carlo sampling."""
from __future__ import annotations

import contextlib
import contextvars

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunet_ext.core.mc_dropout import check_dropout_p, dropout_arch_kwargs, planned_dropout_p
from nnunet_ext.trainers.base import NnextTrainer
from nnunet_ext.trainers.plans_options import manager_options
from nnunet_ext.trainers.training_options import DropoutOptions

#: (p, kind) a predictor rebuilds the network with: what the checkpoint was trained with (see
#: :func:`prediction_dropout`); ``None`` at training time, where the plans' ``dropout`` section applies
_PREDICTION_DROPOUT: contextvars.ContextVar = contextvars.ContextVar("nnext_prediction_dropout", default=None)


@contextlib.contextmanager
def prediction_dropout(p: "float | None", kind: "str | None"):
    """Within this block :class:`MCDropoutTrainer` builds networks with dropout ``p`` / ``kind`` (``None`` = the
    trainer's default) and ignores the plans' ``dropout`` section: it configures training, while a trained
    checkpoint must be rebuilt exactly as it was trained (its recorded p and kind)."""
    token = _PREDICTION_DROPOUT.set((p, kind))
    try:
        yield
    finally:
        _PREDICTION_DROPOUT.reset(token)


class MCDropoutTrainer(NnextTrainer):
    """nnUNetTrainer with dropout (default p = 0.05) in encoder and decoder conv blocks, for MC sampling.

    Dropout probability, first match wins: plans ``nnext_training.dropout.p``; a dropout already configured in the
    plans' architecture kwargs (e.g. by ``MCDropoutResEncPlannerM``); the class default ``default_dropout_p``
    (0.05, as in HN-UISeg, chu2026 sec. 2.5). Works with PlainConvUNet and ResidualEncoderUNet plans. The
    probability used is written to the training log and to ``checkpoint["nnext"]["dropout_p"]``.
    """

    default_dropout_p: float = 0.05
    default_dropout_kind: str = "channel"
    option_families = (DropoutOptions,)

    @classmethod
    def resolve_dropout(cls, plans_manager: PlansManager,
                        configuration_manager: ConfigurationManager) -> tuple[float, str]:
        """(p, kind) this trainer builds its network with (see the class docstring for precedence)."""
        override = _PREDICTION_DROPOUT.get()
        if override is not None:
            p, kind = override
            planned = planned_dropout_p(configuration_manager.network_arch_init_kwargs)
            return (check_dropout_p(p) if p is not None else planned if planned is not None
                    else cls.default_dropout_p), kind or cls.default_dropout_kind
        opts = manager_options(plans_manager, configuration_manager, DropoutOptions)
        kind = opts.kind
        if opts.p is not None:
            return check_dropout_p(opts.p), kind
        planned = planned_dropout_p(configuration_manager.network_arch_init_kwargs)
        return (planned if planned is not None else cls.default_dropout_p), kind

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> torch.nn.Module:
        p, kind = cls.resolve_dropout(plans_manager, configuration_manager)
        kwargs, req = dropout_arch_kwargs(configuration_manager.network_arch_init_kwargs,
                                          configuration_manager.network_arch_init_kwargs_req_import, p, kind)
        return get_network_from_plans(configuration_manager.network_arch_class_name, kwargs, req,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)

    @property
    def dropout_p(self) -> float:
        return self.resolve_dropout(self.plans_manager, self.configuration_manager)[0]

    def on_train_start(self):
        super().on_train_start()
        p, kind = self.resolve_dropout(self.plans_manager, self.configuration_manager)
        self.print_to_log_file(f"MC dropout: p = {p}, kind = {kind}")

    def checkpoint_metadata(self) -> dict:
        p, kind = self.resolve_dropout(self.plans_manager, self.configuration_manager)
        return {**super().checkpoint_metadata(), "dropout_p": p, "dropout_kind": kind}
