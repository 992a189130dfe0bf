"""``nnext`` entry point.

Each sub-command lives in its own module that defines ``add_arguments(parser)`` and ``run(args) -> int``.
Only the module of the requested command is imported, so ``nnext trainers`` does not pay for torch.
Errors of type :class:`nnunet_ext.errors.InputError` are printed as one line and give exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from nnunet_ext import __version__
from nnunet_ext.errors import InputError

#: command -> (module, one-line help). Add new commands here.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("nnunet_ext.synthetic.cli", "write a synthetic phantom dataset (chest, brain, nodule, headneck) to nnUNet_raw"),
    "plan": ("nnunet_ext.planners.cli", "plan and preprocess a dataset with an nnunet_ext planner (e.g. TinyPlanner)"),
    "predict": ("nnunet_ext.predictors.cli", "predict with uncertainty maps (methods: stock, tta_mc, cascade)"),
    "lungmask": ("nnunet_ext.postprocessing.lungmask_cli", "lung masks (1 = right, 2 = left) with lungmask or a classical HU algorithm"),
    "postprocess": ("nnunet_ext.postprocessing.cli", "post-process segmentations (lung: anatomy-aware component filter)"),
    "roi-dataset": ("nnunet_ext.postprocessing.roi_dataset", "nnU-Net raw dataset of ROI crops (stage 2 of the lung cascade)"),
    "trainers": ("nnunet_ext.trainers.cli", "list the extension trainers usable with nnUNetv2_train -tr"),
    "evaluate": ("nnunet_ext.evaluation.cli", "Dice / HD95 / NSD and more between reference and predicted segmentations"),
    "compare": ("nnunet_ext.evaluation.compare_cli", "paired comparison of two evaluation summaries (Wilcoxon, Spearman, Pearson)"),
    "convert": ("nnunet_ext.conversion.cli", "convert public collections to nnU-Net raw datasets (nsclc)"),
    "demo": ("nnunet_ext.demo", "end-to-end demo on a synthetic chest dataset (synth, plan, train, predict, evaluate)"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<12} {helptext}" for name, (_, helptext) in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="nnext", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="nnunet_ext: uncertainty-aware extensions for nnU-Net v2",
        epilog=f"commands:\n{lines}\n\nRun 'nnext COMMAND -h' for the options of a command.")
    p.add_argument("--version", action="version", version=f"nnunet_ext {__version__}")
    p.add_argument("command", nargs="?", help="one of: " + ", ".join(COMMANDS))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["-h"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; known commands: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"nnext {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except InputError as e:
        print(f"nnext {name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
