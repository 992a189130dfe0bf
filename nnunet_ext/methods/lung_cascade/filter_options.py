"""Command-line options of the anatomy-aware component filter, shared by ``nnext postprocess lung`` and the
cascade predictor (``nnext predict -m cascade``), and their translation into a :class:`LungFilterConfig`.

Light module (argparse and the shared validators only): a predictor imports :func:`add_filter_arguments` and
:func:`filter_config` from here, not from a CLI module. The config itself is built by
:meth:`LungFilterConfig.from_options` (``component_filter.py``), usable without argparse.
"""
from __future__ import annotations

import argparse

from nnunet_ext.argtypes import fraction, int_at_least, non_negative
from nnunet_ext.methods.lung_cascade.component_filter import DEFAULT_MIN_SIZE, LungFilterConfig  # noqa: F401

#: ROI margin (voxels) shared by ``nnext roi-dataset`` and the cascade: isler2025 Table I, ROI-0margin (tight
#: crops) gave the best Dice / HD95 of the two settings the paper trains
DEFAULT_MARGIN = 0
#: default ``--min-size`` of the command line: components below it are not valid for any Top-K (All included)
PRESETS = ("paper", "isler-code")


def top_k(text: str) -> "int | None":
    """``--top-k``: an integer >= 1, or ``all`` (no Top-K: every valid component)."""
    if text.strip().lower() == "all":
        return None
    return int_at_least(1)(text)


def add_filter_arguments(parser, top_k_default: "int | None" = None) -> None:
    """The component-filter options (``nnext postprocess lung`` and ``nnext predict -m cascade``)."""
    parser.add_argument("--preset", choices=PRESETS, default="paper",
                        help="paper (default): our reading of isler2025's text; isler-code: the rules of the "
                        "authors' released code (2x2x2 merge kernel, lung dilated 3x3x3, centroid band, rescue "
                        ">= 50 dilated voxels, all dropped on an empty lung mask; needs lung masks that contain "
                        "the tumours: documentation/methods/lung_cascade.md)")
    parser.add_argument("--top-k", type=top_k, default=top_k_default, metavar="K",
                        help="keep only the K largest valid kept components, or 'all' (default: "
                        f"{'all' if top_k_default is None else top_k_default})")
    parser.add_argument("--min-size", type=non_negative, default=DEFAULT_MIN_SIZE, metavar="S",
                        help=f"components smaller than S (--min-size-unit) are not valid for any Top-K, 'all' "
                        f"included (default {DEFAULT_MIN_SIZE:g})")
    parser.add_argument("--min-size-unit", choices=("vox", "mm3"), default="vox", help="unit of --min-size")
    parser.add_argument("--merge-radius", type=int_at_least(0), default=1, metavar="R",
                        help="dilation radius in voxels for merging nearby components (0 = off; default 1; "
                        "preset paper)")
    parser.add_argument("--overlap", type=fraction, default=0.8, help="min lung-overlap fraction (default 0.8)")
    parser.add_argument("--central-overlap", type=fraction, default=0.95,
                        help="min lung-overlap fraction in the central (mediastinal) zone (default 0.95; "
                        "preset paper)")
    parser.add_argument("--rescue-distance", type=non_negative, default=5.0, metavar="D",
                        help="keep low-overlap components within D of the lung (default 5; preset paper)")
    parser.add_argument("--rescue-unit", choices=("vox", "mm"), default="vox", help="unit of --rescue-distance")
    parser.add_argument("--min-voxels", type=int_at_least(0), default=10, metavar="N",
                        help="min component size for the distance rescue (default 10; preset paper)")
    parser.add_argument("--band-axis", choices=("x", "y", "z"), default="x",
                        help="preset isler-code: axis of the central centroid band (default x, left-right)")


def filter_config(args: argparse.Namespace):
    """:class:`LungFilterConfig` from the options of :func:`add_filter_arguments` (missing ones: defaults)."""

    return LungFilterConfig.from_options(**vars(args))
