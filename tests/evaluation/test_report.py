"""Per-case PNG report: slice chooser, aspect ratios, panels and the folder driver (nnunet_ext.evaluation.report)."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.evaluation.report import (
    choose_slices,
    largest_component_centroid,
    report_folder,
    save_case_report,
    view_specs,
)
from nnunet_ext.io.imageio import Geometry, write_image

SHAPE = (20, 32, 40)


def two_components():
    """Small 3x3x3 cube at (3..5, 3..5, 3..5) and a large box z 10:16, y 20:28, x 24:36 (centroid 12.5, 23.5, 29.5)."""
    m = np.zeros(SHAPE, np.uint8)
    m[3:6, 3:6, 3:6] = 1
    m[10:16, 20:28, 24:36] = 2
    return m


def phantom():
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    body = ((y - 16) / 14) ** 2 + ((x - 20) / 18) ** 2 < 1
    image = np.where(body, 40.0, -1000.0) + rng.normal(0, 20, SHAPE)
    ref = two_components()
    image[ref > 0] = 150.0
    pred = np.roll(ref, 2, axis=2)
    unc = np.abs(ref.astype(float) - pred.astype(float)).astype(np.float32) * 0.6
    return image.astype(np.float32), ref, pred, unc


def test_largest_component_centroid_picks_the_large_component():
    m = two_components()
    assert largest_component_centroid(m) == (12, 24, 30)  # rounded (12.5, 23.5, 29.5): round half to even
    assert largest_component_centroid(m > 0) == (12, 24, 30)  # labels do not matter, size does
    m2 = m.copy()
    m2[m2 == 2] = 0
    m2[0:10, 0:10, 0:10] = 1  # now the cube region is the largest component
    assert largest_component_centroid(m2) == (4, 4, 4)  # (4.5 -> 4, ...)
    assert largest_component_centroid(np.zeros(SHAPE)) is None


def test_choose_slices_prefers_reference_then_prediction_then_centre():
    ref, pred = two_components(), np.zeros(SHAPE, np.uint8)
    pred[2:4, 2:4, 2:4] = 1
    assert choose_slices(SHAPE, ref, pred) == (12, 24, 30)
    assert choose_slices(SHAPE, None, pred) == (2, 2, 2)  # centroid 2.5 -> 2
    assert choose_slices(SHAPE, np.zeros(SHAPE), pred) == (2, 2, 2)
    assert choose_slices(SHAPE) == (10, 16, 20)


def test_view_specs_aspect_from_spacing():
    views = view_specs(SHAPE, (5.0, 0.8, 0.7), (12, 24, 30))
    assert [v[0] for v in views] == ["axial z=12", "coronal y=24", "sagittal x=30"]
    assert [v[2] for v in views] == pytest.approx([0.8 / 0.7, 5.0 / 0.7, 5.0 / 0.8])
    assert views[0][1] == (12, slice(None), slice(None)) and views[2][1] == (slice(None), slice(None), 30)
    assert [v[0] for v in view_specs((1, 32, 40), (1.0, 1.0, 1.0), (0, 16, 20))] == ["axial z=0"]


def _colour_pixels(img, colour):
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    if colour == "green":
        return int(((g > 0.6) & (r < 0.35) & (b < 0.35)).sum())
    return int(((r > 0.8) & (g < 0.3) & (b < 0.3)).sum())


def test_save_case_report_writes_png_with_contours(tmp_path):
    image, ref, pred, unc = phantom()
    full = save_case_report(image, tmp_path / "full.png", spacing_zyx=(3.0, 1.0, 1.0), reference=ref,
                            prediction=pred, uncertainty=unc, title="case_000")
    img = mpimg.imread(full)
    assert img.ndim == 3 and img.shape[0] >= 600 and img.shape[1] >= 900  # 3 views x 3 panels
    assert (
        _colour_pixels(img, "green") > 300 and _colour_pixels(img, "red") > 300
    )  # contours (the legend alone: ~40 px)
    only_image = save_case_report(image, tmp_path / "img.png", spacing_zyx=(3.0, 1.0, 1.0), window=(-200, 200))
    small = mpimg.imread(only_image)
    assert small.shape[1] < img.shape[1] / 2  # one panel column instead of three
    assert _colour_pixels(small, "green") == 0 and _colour_pixels(small, "red") == 0
    pred_only = mpimg.imread(save_case_report(image, tmp_path / "pred.png", spacing_zyx=(3.0, 1.0, 1.0),
                                              prediction=pred))
    assert _colour_pixels(pred_only, "red") > 300 and _colour_pixels(pred_only, "green") == 0


def test_save_case_report_2d_and_shape_errors(tmp_path):
    image, ref, pred, _ = phantom()
    out = save_case_report(image[12], tmp_path / "2d.png", spacing_zyx=(1.0, 1.0), reference=ref[12])
    assert mpimg.imread(out).shape[0] > 200
    with pytest.raises(InputError, match="reference shape"):
        save_case_report(image, tmp_path / "x.png", spacing_zyx=(1.0, 1.0, 1.0), reference=ref[:5])


def test_report_folder_pairs_images_predictions_and_uncertainty(tmp_path):
    image, ref, pred, unc = phantom()
    geom = Geometry(spacing=(1.0, 1.0, 3.0), origin=(0.0, 0.0, 0.0))
    imgs, preds, refs, out = (tmp_path / n for n in ("imagesTs", "pred", "labels", "png"))
    for d in (imgs, preds, refs):
        d.mkdir()
    for case in ("a_001", "a_002"):
        write_image(image, geom, imgs / f"{case}_0000.nii.gz")
        write_image(pred, geom, preds / f"{case}.nii.gz")
        write_image(unc, geom, preds / f"{case}_uncertainty.nii.gz")
    write_image(ref, geom, refs / "a_001.nii.gz")  # a_002 has no reference: drawn without it
    written = report_folder(imgs, preds, out, ref_dir=refs)
    assert [p.rsplit("/", 1)[-1] for p in written] == ["a_001.png", "a_002.png"]  # side outputs are not cases
    with_ref, without_ref = (mpimg.imread(p) for p in written)
    assert _colour_pixels(with_ref, "green") > 300 and _colour_pixels(without_ref, "green") == 0
    (imgs / "a_002_0000.nii.gz").unlink()
    with pytest.raises(InputError, match="a_002: image .*a_002_0000.nii.gz not found"):
        report_folder(imgs, preds, out)
