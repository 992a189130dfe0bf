"""Threshold lung masks under the conditions that broke them on real CT, each reproduced by a chest-phantom option
(field of view, number of slices, thin / thick slices, gas below the diaphragm, touching lungs, table and
blanket, flipped / oblique directions), plus the bad-input rules (no lungs, MR-like intensities, no body).

Measured on the rework (seed 3; the previous algorithm in brackets): abdomen + gas: Dice 1.0 / 1.0 (right 1.0,
left 0.0, the colon labelled as left lung); 1 slice at the bases: 0.76 / 0.99 (0 / 0, dropped by the volume
threshold); every other variant >= 0.98.
"""

import numpy as np
import pytest
from scipy import ndimage

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry
from nnunet_ext.methods.lung_cascade.lungmask import compute_lung_mask, lung_mask_log, threshold_lung_mask
from nnunet_ext.synthetic.chest import generate_chest_case

SEED = 3


def dice(a, b):
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def case(**options):
    c = generate_chest_case(np.random.default_rng(SEED), **options)
    return c.images[0], c.side_maps["lungmasks"], c.geometry, c.side_maps.get("gasmasks")


def assert_lungs(m, gt, min_dice=0.9, ct=None):
    """Dice per lung; with ``ct``, recall on the aerated lung (a tumour filling a lung base in a thin slab is not
    air-like and not enclosed by air: no threshold method finds it) and precision."""
    assert m.dtype == np.uint8 and m.shape == gt.shape
    for label in (1, 2):
        assert (gt == label).any(), "the phantom must show both lungs"
        if ct is None:
            assert dice(m == label, gt == label) >= min_dice, (label, dice(m == label, gt == label))
        else:
            aerated = (gt == label) & (ct < -320)
            assert (m[aerated] == label).mean() >= min_dice, (label, (m[aerated] == label).mean())
            assert (gt[m == label] == label).mean() >= min_dice, label


@pytest.mark.parametrize("fov", ["chest", "thorax-abdomen", "abdomen"])
def test_field_of_view_with_gas_below_the_diaphragm(fov):
    """Stomach (pure gas), transverse colon (air mixed with stool: its median HU passes the gas test) and bowel
    bubbles below the lungs are never labelled; both lungs are found, also when only their bases are in view."""
    ct, gt, geo, gas = case(fov=fov, gas=("stomach", "colon", "bowel"))
    assert gas.any() and not (gas & (gt > 0)).any()
    m, log = lung_mask_log(ct, geo)
    assert not m[gas > 0].any()
    assert_lungs(m, gt)
    if fov == "abdomen":  # only the bases: a few slices at the top of the scan
        assert gt.any(axis=(1, 2)).sum() <= 6
        decisions = {c["decision"].split("+")[0] for c in log["components"]}
        assert "lung:continues_above" in decisions and "no_lung_evidence" in decisions  # the colon


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("level", [0.15, 0.5, 0.8])
def test_scans_of_one_to_five_thin_slices(n, level):
    """0.625 mm slices (the real 2-slice scan that lost its left lung): volume thresholds no longer apply."""
    ct, gt, geo, _ = case(n_slices=n, slab_level=level, slice_mm=0.625)
    assert ct.shape[0] == n
    assert_lungs(threshold_lung_mask(ct, geo), gt, ct=ct)


@pytest.mark.parametrize("slice_mm,n_slices", [(0.6, 60), (5.0, None)])
def test_thin_and_thick_slices(slice_mm, n_slices):
    ct, gt, geo, _ = case(slice_mm=slice_mm, n_slices=n_slices)
    assert geo.spacing[2] == slice_mm
    assert_lungs(threshold_lung_mask(ct, geo), gt)


def test_lungs_touching_at_the_anterior_junction():
    ct, gt, geo, _ = case(touching_lungs=True)
    assert ((gt[:, :, :-1] == 1) & (gt[:, :, 1:] == 2)).sum() > 10  # the phantom's lungs really touch
    m, log = lung_mask_log(ct, geo)
    assert "split" in log["components"][0]["decision"]
    assert_lungs(m, gt)


def test_table_mattress_and_blanket():
    """Air enclosed between blanket, table and skin (and the foam mattress) is outside the body: the mask is
    the one of the same patient without them."""
    ct, gt, geo, _ = case(table=True)
    plain_ct, _, _, _ = case()
    def filled(a):
        return np.stack([ndimage.binary_fill_holes(s > -500) for s in a])
    enclosed = (ct < -320) & filled(ct) & ~filled(plain_ct)
    assert enclosed.sum() > 500  # the blanket really encloses air around the body
    m = threshold_lung_mask(ct, geo)
    assert not m[enclosed].any()
    assert (m != threshold_lung_mask(plain_ct, geo)).sum() <= 5
    assert_lungs(m, gt)


@pytest.mark.parametrize("direction", ["flipped", "oblique"])
def test_flipped_and_oblique_directions(direction):
    ct, gt, geo, _ = case(direction=direction)
    d = np.asarray(geo.direction).reshape(3, 3)
    assert not np.allclose(d, np.eye(3))
    m = threshold_lung_mask(ct, geo)
    assert_lungs(m, gt)  # gt is stored the same way: label 1 = the patient's right lung


def test_scan_without_lungs_gives_empty_mask_and_warning():
    ct, gt, geo, gas = case(fov="abdomen", gas=("stomach", "colon", "bowel"))
    below = int(np.nonzero(gt.any(axis=(1, 2)))[0].min()) - 1  # slices 0..below: no lung (z up = superior)
    assert below > 5 and gas[: below].any()
    with pytest.warns(UserWarning, match="no lungs found"):
        m = threshold_lung_mask(np.ascontiguousarray(ct[:below]), geo)
    assert not m.any()


def test_mr_like_intensities_are_refused():
    ct, _, geo, _ = case()
    mr = ((ct.astype(np.float32) + 1024) * 0.8).astype(np.int16)  # MR-like: non-negative, no air at -1000
    with pytest.raises(InputError, match="MR-like"):
        threshold_lung_mask(mr, geo)
    with pytest.raises(InputError, match="MR-like"):
        compute_lung_mask(mr, geo, backend="threshold")
    with pytest.raises(InputError, match="MR-like"):
        threshold_lung_mask((mr / mr.max()).astype(np.float32), geo)


def test_no_body_is_refused():
    with pytest.raises(InputError, match="no body found"):
        threshold_lung_mask(np.full((4, 16, 16), -1000, np.int16), Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))


def test_default_phantom_is_unchanged_by_the_options():
    """The options only change what they name: with none set the case is the historical one (seeded)."""
    a = generate_chest_case(np.random.default_rng(SEED))
    b = generate_chest_case(np.random.default_rng(SEED), fov="chest", gas=(), direction="identity")
    np.testing.assert_array_equal(a.images[0], b.images[0])
    assert "options" not in a.info
    with pytest.raises(InputError, match="fov"):
        generate_chest_case(np.random.default_rng(0), fov="pelvis")
    with pytest.raises(InputError, match="gas"):
        generate_chest_case(np.random.default_rng(0), gas=("lung",))


def test_cli_warns_per_case_without_lungs(tmp_path, capsys):
    from nnunet_ext.cli.main import main
    from nnunet_ext.io.imageio import write_image

    ct, gt, geo, _ = case(fov="abdomen", gas=("stomach", "colon", "bowel"))
    below = int(np.nonzero(gt.any(axis=(1, 2)))[0].min()) - 1
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        write_image(np.ascontiguousarray(ct[:below]), geo, tmp_path / "in" / f"{name}_0000.nii.gz")
    assert main(["lungmask", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--backend", "threshold"]) == 0
    err = capsys.readouterr().err
    assert err.count("no lungs found") == 2 and "a_0000.nii.gz" in err and "b_0000.nii.gz" in err
    mr = ((ct.astype(np.float32) + 1024) * 0.8).astype(np.int16)
    write_image(mr, geo, tmp_path / "mr.nii.gz")
    assert main(["lungmask", "-i", str(tmp_path / "mr.nii.gz"), "-o", str(tmp_path / "m.nii.gz")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # one line naming the file (after the progress bar)
    assert "mr.nii.gz" in last and "MR-like" in last
