"""Click prompts for interactive segmentation (HN-UISeg, Chu et al. 2026): public entry point.

Re-exports :mod:`nnunet_ext.core.clicks` (clicks, rasterisation, nnU-Net preprocessed-grid mapping) and
:mod:`nnunet_ext.core.clicks_json` (clicks JSON files, grand-challenge "Multiple points").
"""
from nnunet_ext.core.clicks import (  # noqa: F401
    ENCODINGS, Click, PreprocessedGrid, class_channels, click_indices, index_to_world, paint, rasterize,
    rasterize_preprocessed, rasterize_voxels, stamp, world_to_index)
from nnunet_ext.core.clicks_json import (  # noqa: F401
    DEFAULT_POINT_NAMES, clicks_for_case, load_clicks, parse_clicks, parse_point_names)
