"""Per-case visual report: axial / coronal / sagittal slices with contours and the uncertainty map (PNG).

Slices pass through the centroid (rounded) of the largest 26-connected foreground component of the reference
(else of the prediction; else the volume centre), ``cc3d.connected_components`` + ``cc3d.statistics``.
Rows are the views, columns the panels: image (grey, window = given ``(lo, hi)`` or the 1st / 99th intensity
percentiles), image + reference contour (green) + prediction contour (red), uncertainty heatmap ("magma",
shared colour scale 0..max, prediction contour in cyan) with a colour bar named for the map and its unit
(``uncertainty_label``, e.g. ``predictive entropy (nats)``; :func:`nnunet_ext.core.uncertainty.map_label`).
Every contour colour has a legend entry; an empty prediction is written on the picture ("nothing predicted").
Pixels are shown with their
physical aspect ratio (``imshow(aspect=row spacing / column spacing)``); coronal and sagittal views have
superior (higher z index) at the top. Matplotlib's Agg backend is selected inside the functions only.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.atomic_write import save_figure

__all__ = ["largest_component_centroid", "choose_slices", "view_specs", "save_case_report", "report_folder"]

REF_COLOUR, PRED_COLOUR, PRED_ON_MAP = "#00e000", "#ff2020", "cyan"


def largest_component_centroid(mask: np.ndarray) -> tuple[int, ...] | None:
    """Rounded voxel centroid (z, y, x) of the largest 26-connected component of ``mask > 0``; None if empty."""
    import cc3d

    fg = np.ascontiguousarray(np.asarray(mask) > 0)
    if not fg.any():
        return None
    labels = cc3d.connected_components(fg.astype(np.uint8), connectivity=26 if fg.ndim == 3 else 8)
    stats = cc3d.statistics(labels)
    counts = np.asarray(stats["voxel_counts"])
    biggest = int(np.argmax(counts[1:])) + 1  # 0 is the background
    centroid = np.asarray(stats["centroids"][biggest], dtype=float)
    return tuple(int(min(max(round(c), 0), n - 1)) for c, n in zip(centroid, fg.shape))


def choose_slices(shape: Sequence[int], reference=None, prediction=None) -> tuple[int, ...]:
    """Slice indices (z, y, x): centroid of the largest component of the reference, else prediction, else centre."""
    for mask in (reference, prediction):
        if mask is not None:
            c = largest_component_centroid(mask)
            if c is not None:
                return c
    return tuple(int(n) // 2 for n in shape)


def view_specs(shape, spacing_zyx, centre) -> list[tuple[str, tuple, float, str]]:
    """``(name, index, aspect, origin)`` per view; views through an axis of length 1 are left out."""
    (nz, ny, nx), (sz, sy, sx), (cz, cy, cx) = shape, spacing_zyx, centre
    views = [("axial", f"z={cz}", (cz, slice(None), slice(None)), sy / sx, "upper", (ny, nx)),
             ("coronal", f"y={cy}", (slice(None), cy, slice(None)), sz / sx, "lower", (nz, nx)),
             ("sagittal", f"x={cx}", (slice(None), slice(None), cx), sz / sy, "lower", (nz, ny))]
    return [(f"{name} {where}", index, float(aspect), origin) for name, where, index, aspect, origin, dims in views
            if min(dims) > 1 or name == "axial"]


def _contours(ax, seg2d, colour, width=1.2):
    for value in np.unique(seg2d):
        if value > 0 and (seg2d == value).any():
            ax.contour((seg2d == value).astype(float), levels=[0.5], colors=[colour], linewidths=width)


def save_case_report(image_zyx: np.ndarray, path: str | os.PathLike, *, spacing_zyx: Sequence[float],
                     reference=None, prediction=None, uncertainty=None, title: str | None = None,
                     window: tuple[float, float] | None = None, uncertainty_label: str = "uncertainty (unit unknown)"
                     ) -> str:
    """Write the report PNG for one case (arrays (z, y, x); 2D (y, x) gives the axial view only); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    image = np.asarray(image_zyx, dtype=np.float32)
    arrays = {"reference": reference, "prediction": prediction, "uncertainty": uncertainty}
    if image.ndim == 2:
        image = image[None]
        spacing_zyx = (1.0, *spacing_zyx[-2:])
        arrays = {k: None if v is None else np.asarray(v)[None] for k, v in arrays.items()}
    if image.ndim != 3 or len(spacing_zyx) != 3:
        raise InputError(f"report needs a 3D (z, y, x) image and 3 spacings; got {image.shape}, {tuple(spacing_zyx)}")
    for name, arr in arrays.items():
        if arr is not None and np.asarray(arr).shape != image.shape:
            raise InputError(f"{name} shape {np.asarray(arr).shape} != image shape {image.shape}")
    ref, pred, unc = (None if v is None else np.asarray(v) for v in arrays.values())
    lo, hi = window if window is not None else np.percentile(image, (1, 99))
    hi = hi if hi > lo else lo + 1.0
    umax = float(np.nanmax(unc)) if unc is not None and np.nanmax(unc) > 0 else 1.0
    centre = choose_slices(image.shape, ref, pred)
    views = view_specs(image.shape, spacing_zyx, centre)
    panels = ["image"] + (["contours"] if ref is not None or pred is not None else []) + (
        ["uncertainty"] if unc is not None else [])
    heights = []
    for _, index, aspect, _ in views:
        rows, cols = image[index].shape
        heights.append(rows * aspect / cols)
    col_w = 3.4
    fig, axes = plt.subplots(len(views), len(panels), squeeze=False, figsize=(
        col_w * len(panels) + (0.6 if unc is not None else 0), col_w * sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights}, layout="constrained")
    try:
        for row, (vname, index, aspect, origin) in enumerate(views):
            sl = image[index]
            for col, panel in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, origin=origin, interpolation="nearest")
                if panel == "contours":
                    if ref is not None:
                        _contours(ax, ref[index], REF_COLOUR)
                    if pred is not None:
                        _contours(ax, pred[index], PRED_COLOUR)
                elif panel == "uncertainty":
                    heat = ax.imshow(unc[index], cmap="magma", vmin=0.0, vmax=umax, aspect=aspect, origin=origin,
                                     interpolation="nearest")
                    if pred is not None:
                        _contours(ax, pred[index], PRED_ON_MAP, width=0.6)
                    fig.colorbar(heat, ax=ax, fraction=0.046, pad=0.02, label=uncertainty_label)
                if panel != "image" and pred is not None and not pred.any():
                    ax.text(0.5, 0.06, "nothing predicted", transform=ax.transAxes, ha="center", va="bottom",
                            color="white", fontsize=9, bbox={"facecolor": "black", "alpha": 0.6, "pad": 2})
                ax.set_xticks([]), ax.set_yticks([])
                if col == 0:
                    ax.set_ylabel(vname)
                if row == 0:
                    ax.set_title({"image": f"image [{lo:.4g}, {hi:.4g}]", "contours": "reference / prediction",
                                  "uncertainty": uncertainty_label}[panel], fontsize=10)
        handles = []
        if "contours" in panels:
            handles = ([Line2D([], [], color=REF_COLOUR, label="reference")] if ref is not None else []) + (
                [Line2D([], [], color=PRED_COLOUR, label="prediction")] if pred is not None else [])
        if "uncertainty" in panels and pred is not None:
            handles.append(Line2D([], [], color=PRED_ON_MAP, label="prediction (on the map)"))
        if handles:
            fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
        if title:
            fig.suptitle(title)
        path = os.fspath(path)
        save_figure(fig, path, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path


def report_folder(image_dir, pred_dir, out_dir, ref_dir=None, channel: int = 0, *,
                  file_ending: str = ".nii.gz", window: tuple[float, float] | None = None) -> list[str]:
    """One ``out_dir/CASE.png`` per prediction ``pred_dir/CASE{E}``, with image ``image_dir/CASE_{channel:04d}{E}``,
    ``pred_dir/CASE_uncertainty{E}`` if present and ``ref_dir/CASE{E}`` if given and present."""
    from nnunet_ext.evaluation.evaluate import find_cases
    from nnunet_ext.evaluation.uncertainty_eval import UNCERTAINTY_SUFFIX, drop_auxiliary
    from nnunet_ext.io.imageio import read_image

    preds = drop_auxiliary(find_cases(pred_dir, file_ending, "PRED_DIR"), {})
    if not preds:
        raise InputError(f"PRED_DIR {pred_dir}: no '*{file_ending}' predictions")
    from nnunet_ext.core.uncertainty import map_label

    label = map_label(_map_name(pred_dir))
    written = []
    for case, pred_file in preds.items():
        image_file = os.path.join(image_dir, f"{case}_{channel:04d}{file_ending}")
        if not os.path.isfile(image_file):
            raise InputError(f"{case}: image {image_file} not found (channel {channel})")
        image, geometry = read_image(image_file)
        pred, _ = read_image(pred_file)
        unc_file = os.path.join(pred_dir, case + UNCERTAINTY_SUFFIX + file_ending)
        unc = read_image(unc_file)[0] if os.path.isfile(unc_file) else None
        ref_file = None if ref_dir is None else os.path.join(ref_dir, case + file_ending)
        ref = read_image(ref_file)[0] if ref_file and os.path.isfile(ref_file) else None
        for name, arr in (("prediction", pred), ("uncertainty", unc), ("reference", ref)):
            if arr is not None and arr.shape != image.shape:
                raise InputError(f"{case}: {name} shape (z,y,x) {arr.shape} != image {image.shape}")
        out = os.path.join(out_dir, f"{case}.png")
        save_case_report(image, out, spacing_zyx=tuple(geometry.spacing[::-1]), reference=ref, prediction=pred,
                         uncertainty=unc, title=case, window=window, uncertainty_label=label)
        written.append(out)
    return written


def _map_name(pred_dir) -> "str | None":
    """The map written as ``CASE_uncertainty`` by ``nnext predict`` (its ``predict_settings.json``), else None."""
    import json

    path = os.path.join(pred_dir, "predict_settings.json")
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError):
        return None
    name = settings.get("uncertainty")
    if name is None:  # the method's default map
        from nnunet_ext.errors import InputError
        from nnunet_ext.predictors.registry import load_method

        try:
            name = load_method(str(settings.get("m"))).default_uncertainty
        except InputError:  # an unknown method name: the label says "unit unknown"
            return None
    return name
