"""Validity and Top-K selection of the lung filter's components (shared by both presets)."""
from __future__ import annotations


def apply_min_size_and_top_k(comps: list, cfg, spacing) -> None:
    """Valid components (>= ``min_size``; smaller kept ones become ``too_small_for_top_k``), then Top-K by
    voxel count among the valid kept ones (ties: lower id)."""
    min_vox = cfg.min_size_voxels(spacing)
    for e in comps:
        if e["kept"] and e["voxels"] < min_vox:
            e.update(kept=False, reason="below_min_size", detail=f"{e['voxels']} voxels < min_size {cfg.min_size:g} "
                     f"{cfg.min_size_unit}")
    if cfg.top_k is not None:
        kept = sorted((e for e in comps if e["kept"]), key=lambda e: (-e["voxels"], e["id"]))
        for rank, e in enumerate(kept[cfg.top_k:], start=cfg.top_k + 1):
            e.update(kept=False, reason="top_k", detail=f"rank {rank} by volume > top_k {cfg.top_k}")
