"""The flags that name a trained nnU-Net model and the device, as ``nnUNetv2_predict`` spells them: one
declaration shared by ``nnext predict`` and every command that runs a model (``nnext clicks-eval``)."""
from __future__ import annotations

from nnunet_ext.errors import InputError


def add_model_arguments(g, trainer_default: str = "MCDropoutTrainer", required: bool = False) -> None:
    """``-d -c -tr -p -f -prev_stage_predictions`` on the parser / group ``g``."""
    g.add_argument("-d", required=required, help="dataset ID or name")
    g.add_argument("-c", required=required, help="configuration, e.g. 3d_fullres")
    g.add_argument("-tr", default=trainer_default, help=f"trainer (default {trainer_default})")
    g.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    g.add_argument("-f", nargs="+", default=None, help="folds (default: as nnUNetv2_predict, every fold_<int> with "
                   "the checkpoint, never fold_all)")
    g.add_argument("-prev_stage_predictions", default=None,
                   help="3d_cascade_fullres: folder of the previous stage's segmentations (nnU-Net's flag)")


def add_device_arguments(g) -> None:
    """``-chk -device``."""
    g.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    g.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"], help="device (default cuda)")


def check_device(device: str) -> None:
    """One-line InputError when ``-device cuda`` is asked for on a machine without CUDA."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("-device cuda requested but no CUDA device is available (use -device cpu)")
