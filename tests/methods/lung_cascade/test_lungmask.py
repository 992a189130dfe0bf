"""Lung masks (1 = right, 2 = left): threshold algorithm on seeded chest phantoms, patient sides from the image
direction, backend selection (lungmask is not installed here) and the ``nnext lungmask`` CLI."""
import importlib.machinery
import importlib.util
import os
import sys
import types

import numpy as np
import pytest

from nnunet_ext.cli.main import main
from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry, read_image, write_image
from nnunet_ext.methods.lung_cascade import lungmask as L
from nnunet_ext.synthetic.chest import generate_chest_case

SEEDS = (0, 1, 2)


def dice(a, b):
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def cases():
    out = []
    for seed in SEEDS:
        case = generate_chest_case(np.random.default_rng(seed))
        out.append((case.images[0], case.side_maps["lungmasks"], case.geometry))
    return out


@pytest.fixture(scope="module")
def masks(cases):
    return [L.threshold_lung_mask(ct, geo) for ct, _, geo in cases]


def test_threshold_dice_per_lung(cases, masks):
    # measured (seeds 0, 1, 2): right 0.999 / 0.999 / 0.961, left 0.998 / 0.995 / 0.996 (seed 2: two pleural
    # tumours at the right lung wall: 420 of the 424 missed voxels, not air-like and not enclosed)
    for (ct, gt, _), m in zip(cases, masks):
        assert m.dtype == np.uint8 and m.shape == ct.shape
        assert set(np.unique(m)) <= {0, 1, 2}
        for label in (1, 2):
            assert dice(m == label, gt == label) >= 0.9, label


def test_labels_on_patient_sides(cases, masks):
    # identity direction, LPS: patient right = -x = low x index
    for (_, gt, _), m in zip(cases, masks):
        x1 = np.argwhere(m == 1)[:, 2].mean()
        x2 = np.argwhere(m == 2)[:, 2].mean()
        assert x1 < m.shape[2] / 2 < x2


def test_flipped_storage_keeps_patient_sides(cases, masks):
    """Same anatomy stored with the x axis reversed (x cosine negated, origin at the other end)."""
    for (ct, gt, geo), m in zip(cases, masks):
        nx = ct.shape[2]
        d = np.asarray(geo.direction, float).reshape(3, 3)
        d[:, 0] *= -1
        origin = np.asarray(geo.origin) + np.eye(3)[0] * geo.spacing[0] * (nx - 1)
        flipped = Geometry(geo.spacing, tuple(origin), tuple(d.ravel()))
        mf = L.threshold_lung_mask(ct[:, :, ::-1].copy(), flipped)
        # identical up to nearest-seed ties at the carina when the lungs are split (measured <= 1 voxel)
        assert (mf[:, :, ::-1] != m).sum() <= 5
        for label in (1, 2):
            assert dice(mf[:, :, ::-1] == label, gt == label) >= 0.9
        assert np.argwhere(mf == 1)[:, 2].mean() > nx / 2  # right lung now at high x index


def test_mirrored_direction_swaps_labels(cases, masks):
    """Same array but a negated x cosine: the patient is mirrored, so right and left swap."""
    ct, _, geo = cases[0]
    d = np.asarray(geo.direction, float).reshape(3, 3)
    d[:, 0] *= -1
    m = L.threshold_lung_mask(ct, Geometry(geo.spacing, geo.origin, tuple(d.ravel())))
    expected = masks[0].copy()
    expected[masks[0] == 1], expected[masks[0] == 2] = 2, 1
    assert (m != expected).sum() <= 5


def test_trachea_and_outside_air_not_labelled(cases, masks):
    for (ct, gt, _), m in zip(cases, masks):
        lung_slices = np.nonzero(gt.any(axis=(1, 2)))[0]
        assert not m[lung_slices.max() + 1:].any()  # above the lungs: only trachea and outside air
        assert not m[:, 0].any() and not m[:, -1].any() and not m[:, :, 0].any() and not m[:, :, -1].any()
        # trachea and extra-pulmonary bronchi: dark voxels outside the lungs in the mediastinal band
        airway = (ct < -900) & (gt == 0)
        mid = ct.shape[2] // 2
        airway[:, :, : mid - 4] = airway[:, :, mid + 5:] = False
        assert airway.sum() > 100
        # the phantom carina lies at ~68 % of the lung height: the top quarter holds the trachea alone
        upper = lung_slices.min() + int(0.75 * (lung_slices.max() - lung_slices.min() + 1))
        assert not m[upper:][airway[upper:]].any()  # trachea beside the upper lungs (above the carina)
        # at most a few carina / hilum voxels (measured 0-5; 25-36 without the trachea step)
        assert (m[airway] > 0).sum() <= 10


def test_trachea_step_separates_the_lungs(cases):
    """Without the trachea step the lungs are one component (joined by the airways) and must be split."""
    for ct, gt, geo in cases:
        m = L.threshold_lung_mask(ct, geo, trachea_max_area_mm2=0)
        for label in (1, 2):
            assert dice(m == label, gt == label) >= 0.9


def test_split_of_touching_lungs(cases):
    """Lungs bridged by lung-density tissue across the anterior midline are split again (erosion and valley)."""
    ct, gt, geo = cases[0]
    ct = ct.copy()
    z = np.nonzero(gt.any(axis=(1, 2)))[0]
    for k in range(z[len(z) // 3], z[2 * len(z) // 3]):
        ys = np.nonzero((gt[k] == 1).any(1) & (gt[k] == 2).any(1))[0]
        if len(ys):
            y = ys[len(ys) // 3]
            ct[k, y - 1: y + 2, np.nonzero(gt[k, y] == 1)[0].max(): np.nonzero(gt[k, y] == 2)[0].min() + 1] = -850
    for options in ({}, {"split_max_erosion_mm": 0.0}):  # erosion split, then the projection-valley fallback
        m = L.threshold_lung_mask(ct, geo, trachea_max_area_mm2=0, **options)
        for label in (1, 2):
            assert dice(m == label, gt == label) >= 0.9, options


def test_no_lungs_gives_empty_mask():
    ct = np.full((8, 32, 32), -1000, np.int16)
    ct[:, 4:28, 4:28] = 40
    m = L.threshold_lung_mask(ct, Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    assert m.dtype == np.uint8 and not m.any()
    with pytest.raises(TypeError):
        L.threshold_lung_mask(ct, Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), air_threshold=-300)


@pytest.mark.skipif(importlib.util.find_spec("lungmask") is not None, reason="lungmask is installed")
def test_backend_selection_without_lungmask(cases, masks):
    ok, reason = L.lungmask_available()
    assert not ok and "not installed" in reason
    ct, _, geo = cases[0]
    m, used = L.compute_lung_mask(ct, geo, backend="auto")
    assert used == "threshold"
    np.testing.assert_array_equal(m, masks[0])
    with pytest.raises(InputError, match="not installed"):
        L.compute_lung_mask(ct, geo, backend="lungmask")
    with pytest.raises(InputError, match="unknown"):
        L.compute_lung_mask(ct, geo, backend="magic")
    with pytest.raises(InputError, match="3D"):
        L.compute_lung_mask(ct[0], geo)


def test_lungmask_backend_uses_local_weights_only(tmp_path, monkeypatch, cases):
    """A stand-in ``lungmask`` module: used only with an existing weights file, never a download."""
    calls = []

    class FakeInferer:
        def __init__(self, modelname, modelpath):
            calls.append((modelname, modelpath))

        def apply(self, image):
            import SimpleITK as sitk
            return np.ones(sitk.GetArrayFromImage(image).shape, np.uint8)

    fake = types.ModuleType("lungmask")
    fake.__spec__ = importlib.machinery.ModuleSpec("lungmask", None)
    fake.LMInferer = FakeInferer
    monkeypatch.setitem(sys.modules, "lungmask", fake)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # empty hub cache
    ct, _, geo = cases[0]
    ok, reason = L.lungmask_available()
    assert not ok and "weights" in reason
    m, used = L.compute_lung_mask(ct, geo, backend="auto")
    assert used == "threshold" and not calls
    with pytest.raises(InputError, match="does not exist"):
        L.compute_lung_mask(ct, geo, backend="lungmask", weights=str(tmp_path / "missing.pth"))
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    m, used = L.compute_lung_mask(ct, geo, backend="auto", weights=str(weights))
    assert used == "lungmask" and calls == [("R231", str(weights))] and m.shape == ct.shape
    def broken(self, image):
        raise RuntimeError("Error(s) in loading state_dict\nunexpected key 'x'")

    monkeypatch.setattr(FakeInferer, "apply", broken)
    with pytest.raises(InputError, match="failed with weights .*unexpected key"):
        L.compute_lung_mask(ct, geo, backend="lungmask", weights=str(weights))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / L.R231_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert L.lungmask_available()[0]


def _write_ct(path, ct, geo):
    write_image(ct, geo, path)


def test_cli_folder_geometry_and_skip(tmp_path, cases, capsys):
    ct, gt, geo = cases[1]
    geo = Geometry(geo.spacing, (12.5, -40.25, 101.0), geo.direction)  # non-identity origin
    inp = tmp_path / "in"
    inp.mkdir()
    _write_ct(inp / "caseA_0000.nii.gz", ct, geo)
    _write_ct(inp / "caseB_0000.nii.gz", ct[:, :, ::-1].copy(), geo)
    _write_ct(inp / "caseA_0001.nii.gz", ct, geo)  # another channel: ignored
    out = tmp_path / "out"
    assert main(["lungmask", "-i", str(inp), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "backend threshold" in text and "not installed" in text
    assert sorted(n for n in os.listdir(out) if not n.startswith(".")) == [
        "caseA.nii.gz",
        "caseB.nii.gz",
    ]  # + settings record
    mask, mgeo = read_image(out / "caseA.nii.gz")
    assert mgeo.matches(geo) and mask.shape == ct.shape and mask.dtype == np.uint8
    assert dice(mask == 1, gt == 1) >= 0.9 and dice(mask == 2, gt == 2) >= 0.9

    before = os.path.getmtime(out / "caseA.nii.gz")
    (out / "caseB.nii.gz").unlink()
    assert main(["lungmask", "-i", str(inp), "-o", str(out), "--backend", "threshold"]) == 0
    assert "skipping 1 existing" in capsys.readouterr().out
    assert os.path.getmtime(out / "caseA.nii.gz") == before and (out / "caseB.nii.gz").exists()
    (out / "caseA.nii.gz").write_bytes(b"stale")
    assert main(["lungmask", "-i", str(inp), "-o", str(out), "--overwrite"]) == 0
    assert read_image(out / "caseA.nii.gz")[0].shape == ct.shape


def test_cli_single_and_plain_files(tmp_path, cases):
    ct, _, geo = cases[2]
    _write_ct(tmp_path / "plain.nii.gz", ct, geo)
    assert main(["lungmask", "-i", str(tmp_path / "plain.nii.gz"), "-o", str(tmp_path / "m.nii.gz")]) == 0
    assert read_image(tmp_path / "m.nii.gz")[1].matches(geo)
    assert main(["lungmask", "-i", str(tmp_path / "plain.nii.gz"), "-o", str(tmp_path / "o")]) == 0
    assert [n for n in os.listdir(tmp_path / "o") if not n.startswith(".")] == ["plain.nii.gz"]  # + settings record


def test_cli_errors(tmp_path, capsys):
    assert main(["lungmask", "-i", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.nii.gz").write_bytes(b"not an image")
    assert main(["lungmask", "-i", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "x.nii.gz" in capsys.readouterr().err
    flat = tmp_path / "flat"
    flat.mkdir()
    write_image(np.zeros((16, 16), np.int16), Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0)),
                flat / "y.nii.gz")
    assert main(["lungmask", "-i", str(flat), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "y.nii.gz" in err and "3D" in err
    assert main(["lungmask", "-i", str(flat), "-o", str(tmp_path / "o"), "--backend", "lungmask"]) == 2
    assert "not installed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def test_non_axial_storage(cases, masks):
    """The same anatomy stored with numpy axes (y, z, x) (coronal slices) gives the transposed mask."""
    ct, _, geo = cases[0]
    d = np.asarray(geo.direction, float).reshape(3, 3)
    # numpy (y, z, x) -> SimpleITK index (x, z, y): index axis 1 runs along physical z, axis 2 along y
    geo_c = Geometry((geo.spacing[0], geo.spacing[2], geo.spacing[1]), geo.origin,
                     tuple(d[:, [0, 2, 1]].ravel()))
    m = L.threshold_lung_mask(np.ascontiguousarray(ct.transpose(1, 0, 2)), geo_c)
    assert (m != masks[0].transpose(1, 0, 2)).sum() == 0


def test_bowel_gas_below_the_lungs_not_labelled(cases):
    """A ~150 ml gas pocket in the upper abdomen (stomach bubble) is dropped by the component rules."""
    ct, gt, geo = cases[0]
    ct = ct.copy()
    z = np.nonzero(gt.any(axis=(1, 2)))[0]
    zz, yy, xx = np.ogrid[: ct.shape[0], : ct.shape[1], : ct.shape[2]]
    zc = max(z.min() - 4, 3)
    gas = ((zz - zc) * 10.0) ** 2 + ((yy - 28) * 4.5) ** 2 + ((xx - 40) * 4.5) ** 2 < 33.0 ** 2
    assert not (gas & (gt > 0)).any() and gas.sum() * 0.2025 > 100  # ml, clear of the lungs
    ct[gas] = -1000
    for options in ({}, {"trachea_max_area_mm2": 0.0}):  # lungs as 2 components, or as 1 (2nd = the gas)
        m = L.threshold_lung_mask(ct, geo, **options)
        assert not m[gas].any(), options
        for label in (1, 2):
            assert dice(m == label, gt == label) >= 0.9
