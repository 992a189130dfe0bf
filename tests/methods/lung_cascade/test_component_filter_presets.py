"""Component filter: ``min_size`` (valid components for every Top-K, All included), the light option module the
cascade uses, and ``preset="isler-code"`` against a straightforward re-implementation of the released rules
on random configurations."""
import argparse

import numpy as np
import pytest
from scipy import ndimage

from nnunet_ext.methods.lung_cascade.component_filter import LungFilterConfig, filter_components
from nnunet_ext.methods.lung_cascade.filter_options import DEFAULT_MARGIN, add_filter_arguments, filter_config

SP = (2.0, 1.0, 1.0)


def _lung(shape=(12, 24, 24)):
    lung = np.zeros(shape, np.uint8)
    lung[2:10, 4:20, 2:10] = 1
    lung[2:10, 4:20, 14:22] = 2
    return lung


def test_min_size_defines_valid_components_for_top_k_all():
    lung = _lung()
    pred = np.zeros(lung.shape, bool)
    pred[4:8, 8:12, 4:8] = True       # 64 voxels inside the right lung
    pred[5, 15, 17] = True            # a 1-voxel speck inside the left lung
    out, log = filter_components(pred, lung, SP, LungFilterConfig(top_k=None, min_size=0))
    assert out.sum() == 65  # without a minimum size the speck is a valid component
    for cfg in (LungFilterConfig(top_k=None, min_size=10), LungFilterConfig(top_k=None, min_size=10.0,
                                                                            min_size_unit="mm3")):
        out, log = filter_components(pred, lung, SP, cfg)
        assert out.sum() == 64
        assert sorted(c["reason"] for c in log["components"]) == ["below_min_size", "lung_overlap"]
    # mm^3: 64 voxels x 2 mm^3 = 128 mm^3 < 130 mm^3 -> nothing valid; 64 voxels < 65 voxels likewise
    assert filter_components(pred, lung, SP, LungFilterConfig(min_size=130, min_size_unit="mm3"))[0].sum() == 0
    # Top-1 ranks only valid components
    out, _ = filter_components(pred, lung, SP, LungFilterConfig(top_k=1, min_size=100))
    assert out.sum() == 0


def test_options_module_builds_the_config():
    p = argparse.ArgumentParser()
    add_filter_arguments(p, top_k_default=1)
    args = p.parse_args(["--min-size", "20", "--min-size-unit", "mm3", "--overlap", "0.7", "--preset", "isler-code",
                         "--band-axis", "y", "--top-k", "all"])
    cfg = filter_config(args)
    assert (cfg.min_size, cfg.min_size_unit, cfg.overlap_threshold, cfg.preset, cfg.band_axis, cfg.top_k) == (
        20.0, "mm3", 0.7, "isler-code", "y", None)
    defaults = filter_config(p.parse_args([]))
    assert defaults.top_k == 1 and defaults.min_size == 10 and defaults.preset == "paper"
    assert LungFilterConfig.from_options(top_k=2, unrelated=1) == LungFilterConfig(top_k=2, min_size=10)
    assert DEFAULT_MARGIN == 0
    with pytest.raises(ValueError, match="preset"):
        LungFilterConfig(preset="other")


def reference_isler(pred, lung, overlap, axis, min_size, top_k):
    """The released rules written out plainly (per component, scipy only)."""
    k2 = np.ones((2, 2, 2), bool)
    fg = pred > 0
    lab, n = ndimage.label(ndimage.binary_dilation(fg, structure=k2))
    lab[~fg] = 0
    keep = []
    if lung.any():
        lung_dil = ndimage.binary_dilation(lung > 0, structure=np.ones((3, 3, 3), bool))
        c = np.nonzero(lung > 0)[axis]
        lo, hi = c.min(), c.max()
        for i in range(1, n + 1):
            comp = lab == i
            if not comp.any():
                continue
            ov = lung_dil[comp].sum() / comp.sum()
            cen = np.argwhere(comp).mean(axis=0)[axis]
            central = lo + 0.25 * (hi - lo) <= cen <= lo + 0.75 * (hi - lo)
            if ov >= overlap or (not central and (ndimage.binary_dilation(comp, structure=k2) & lung_dil).sum() >= 50):
                if comp.sum() >= min_size:
                    keep.append((comp.sum(), i))
    keep.sort(key=lambda t: -t[0])
    if top_k is not None:
        keep = keep[:top_k]
    out = np.zeros(pred.shape, np.uint8)
    for _, i in keep:
        out[lab == i] = 1
    return out


def test_isler_code_preset_matches_a_plain_reimplementation():
    """20 random configurations (lung blobs split into right / left, every 6th lung mask empty; random overlap
    threshold, band axis, Top-K and min_size); every decision path is exercised."""
    reasons = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        shape = (14, 28, 28)
        lung = np.zeros(shape, np.uint8)
        if seed % 6:  # every 6th configuration: an empty lung mask (everything dropped)
            lung[ndimage.gaussian_filter(rng.standard_normal(shape), 2.5) > 0.0] = 1
            lung[:, :, 14:][lung[:, :, 14:] > 0] = 2
        pred = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0) > 0.3
        overlap = float(rng.choice([0.5, 0.8, 0.95]))
        axis = int(rng.integers(0, 3))
        top_k = [None, 1, 2][seed % 3]
        min_size = float(rng.choice([0, 5, 20]))
        cfg = LungFilterConfig(preset="isler-code", overlap_threshold=overlap, band_axis="zyx"[axis], top_k=top_k,
                               min_size=min_size)
        with pytest.warns(UserWarning) if not lung.any() else _nullcontext():
            out, log = filter_components(pred, lung, SP, cfg)
        expected = reference_isler(pred, lung, overlap, axis, min_size, top_k)
        np.testing.assert_array_equal(out, expected, err_msg=f"seed {seed}")
        assert out.sum() == sum(c["voxels"] for c in log["components"] if c["kept"])
        if not lung.any():
            assert {c["reason"] for c in log["components"]} == {"empty_lung"}
        reasons |= {c["reason"] for c in log["components"]}
    assert reasons == {"lung_overlap", "rescued", "low_overlap_central", "too_few_dilated", "empty_lung",
                       "below_min_size", "top_k"}


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_roi_dataset_and_cascade_share_the_default_margin():
    import inspect

    from nnunet_ext.methods.lung_cascade import roi_dataset

    p = argparse.ArgumentParser()
    roi_dataset.add_arguments(p)
    assert p.parse_args(["-d", "1", "-t", "2"]).margin == DEFAULT_MARGIN == 0
    assert inspect.signature(roi_dataset.build_roi_dataset).parameters["margin"].default == DEFAULT_MARGIN
