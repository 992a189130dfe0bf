"""``nnext predict`` on the tiny chest model: no drift versus nnU-Net, geometry, MC sampling, resume."""
import math
import os
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import read_image
from nnunet_ext.io.paths import nnunet_command

MODEL_ARGS = ["-d", "501", "-c", "3d_fullres", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu"]


def _predict(images, out, *extra):
    assert main(["predict", "-i", str(images), "-o", str(out), *MODEL_ARGS, *extra]) == 0


@pytest.fixture(scope="module")
def mc_outputs(trained_chest_model, chest_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("mc")
    _predict(chest_dataset / "imagesTs", out, "-m", "tta_mc", "--n-samples", "4", "--save-probabilities",
             "--all-maps", "--seed", "1", "--png")
    return out


def _stock_nnunet_predictor(model):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    q = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    q.initialize_from_trained_model_folder(str(model), [0])
    return q


def stock_method(model, mirroring=False):
    """``-m stock`` on ``model`` fold 0 through the Python API: (method, its engine)."""
    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.stock import StockMethod

    e = SlidingWindowEngine(use_mirroring=mirroring, device=torch.device("cpu"), allow_tqdm=False)
    e.load(str(model), [0])
    return StockMethod(e, Sampling(), {}), e


def engine_logits(method, data):
    from nnunet_ext.predictors.method import CaseContext

    return method.predict_network(data, CaseContext.for_case("x", 0)).logits


def test_engine_blend_equals_float64_reference(trained_chest_model, chest_dataset):
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    m, p = stock_method(trained_chest_model)
    files = sorted(str(f) for f in (chest_dataset / "imagesTs").glob("*_0000.nii.gz"))[:1]
    data, _, _ = p.configuration_manager.preprocessor_class().run_case(
        files, None, p.plans_manager, p.configuration_manager, p.dataset_json)
    x = torch.from_numpy(data)
    logits = engine_logits(m, data)
    slicers = p._internal_get_sliding_window_slicers(x.shape[1:])
    assert len(slicers) > 1, "the case must need overlapping windows for this test to mean something"
    g = compute_gaussian(tuple(p.configuration_manager.patch_size), 1 / 8, 10, device="cpu").double()
    acc = torch.zeros((2, *x.shape[1:]), dtype=torch.float64)
    w = torch.zeros(x.shape[1:], dtype=torch.float64)
    p.network.eval()
    with torch.no_grad():
        for sl in slicers:
            acc[sl] += p.network(x[sl][None])[0].double() * g
            w[sl[1:]] += g
    assert torch.allclose(logits.double(), acc / w, atol=1e-4)


def test_tta_mc_without_sampling_reproduces_nnunet_predict(trained_chest_model, chest_dataset, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "nnunet"
    _predict(chest_dataset / "imagesTs", ours, "-m", "tta_mc", "--n-samples", "1", "--dropout-p", "0",
             "--tta", "none", "--blend", "logits")
    proc = subprocess.run([nnunet_command("nnUNetv2_predict"), "-i", str(chest_dataset / "imagesTs"), "-o", str(theirs),
                           "-tr", "MCDropoutTrainer", *MODEL_ARGS, "--disable_tta", "-npp", "1", "-nps", "1"],
                          capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-2000:]
    # nnU-Net accumulates Gaussian-weighted logits in float16; where that rounding exceeds the true logit margin
    # its argmax can flip. Every differing voxel must be such a voxel (checked against nnU-Net's own logits).
    q = _stock_nnunet_predictor(trained_chest_model)
    total = differing = 0
    for image in sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        a, _ = read_image(ours / f"{case}.nii.gz")
        b, _ = read_image(theirs / f"{case}.nii.gz")
        diff = a != b
        total += a.size
        differing += int(diff.sum())
        if diff.any():
            data, _, props = q.configuration_manager.preprocessor_class().run_case(
                [str(image)], None, q.plans_manager, q.configuration_manager, q.dataset_json)
            assert props["shape_before_cropping"] == list(a.shape) or tuple(props["shape_before_cropping"]) == a.shape
            fp16 = q.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float().numpy()
            exact = engine_logits(stock_method(trained_chest_model)[0], data).numpy()
            margin = exact[1] - exact[0]
            rounding = np.abs((fp16[1] - fp16[0]) - margin)
            assert np.all(np.abs(margin[diff]) <= rounding[diff]), "a difference not explained by float16 rounding"
    print(f"segmentation voxels differing from nnUNetv2_predict: {differing} of {total} "
          f"({100 * differing / total:.4f} %)")
    assert differing / total <= 1e-4


def test_outputs_keep_input_geometry(mc_outputs, chest_dataset):
    from nnunet_ext.io.imageio import read_probabilities

    for image in sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        img, g = read_image(image)
        assert not np.allclose(g.origin, 0)
        for suffix in ("", "_uncertainty", "_entropy", "_variance", "_mi"):
            arr, g2 = read_image(mc_outputs / f"{case}{suffix}.nii.gz")
            assert arr.shape == img.shape and g2.matches(g), suffix
        probs, g3 = read_probabilities(mc_outputs / f"{case}_probabilities.nii.gz")
        assert probs.shape == (2, *img.shape) and g3.matches(g)
        assert np.allclose(probs.sum(0), 1, atol=1e-4)
        seg, _ = read_image(mc_outputs / f"{case}.nii.gz")
        assert np.array_equal(seg, probs.argmax(0))


def test_png_report_per_case(mc_outputs, chest_dataset):
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (chest_dataset / "imagesTs").glob("*_0000.nii.gz"))
    pngs = sorted(p.stem for p in (mc_outputs / "png").glob("*.png"))
    assert pngs == cases
    assert all((mc_outputs / "png" / f"{c}.png").stat().st_size > 10_000 for c in cases)


def test_mc_maps_are_consistent_and_nonzero(mc_outputs):
    unc = sitk.GetArrayFromImage(sitk.ReadImage(str(next(mc_outputs.glob("*_uncertainty.nii.gz")))))
    assert unc.dtype == np.float32
    assert unc.max() > 0, "4 MC/TTA passes must disagree somewhere"
    assert unc.min() >= 0 and unc.max() <= math.log(2) + 1e-5
    case = next(mc_outputs.glob("*_mi.nii.gz")).name[: -len("_mi.nii.gz")]
    ent, _ = read_image(mc_outputs / f"{case}_entropy.nii.gz")
    mi, _ = read_image(mc_outputs / f"{case}_mi.nii.gz")
    assert np.all(mi <= ent + 1e-4), "mutual information is a part of the predictive entropy"


def test_seeded_resumable_and_stale_guard(mc_outputs, chest_dataset, tmp_path, capsys):
    out = tmp_path / "again"
    _predict(chest_dataset / "imagesTs", out, "-m", "tta_mc", "--n-samples", "4", "--seed", "1")
    case = next(out.glob("*_uncertainty.nii.gz")).name
    a, _ = read_image(out / case)
    b, _ = read_image(mc_outputs / case)
    assert np.array_equal(a, b), "same seed, same maps"
    mtime = (out / case).stat().st_mtime_ns
    _predict(chest_dataset / "imagesTs", out, "-m", "tta_mc", "--n-samples", "4", "--seed", "1")
    assert "already predicted" in capsys.readouterr().out
    assert (out / case).stat().st_mtime_ns == mtime
    # other settings into the same folder: refused, naming the setting, nothing touched
    code = main(["predict", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), *MODEL_ARGS, "-m", "tta_mc",
                 "--n-samples", "4", "--seed", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "seed: 1 -> 2" in err and len(err.strip().splitlines()) == 1, err
    assert (out / case).stat().st_mtime_ns == mtime
    _predict(chest_dataset / "imagesTs", out, "-m", "tta_mc", "--n-samples", "4", "--seed", "2", "--overwrite")
    c, _ = read_image(out / case)
    assert not np.array_equal(a, c), "another seed gives other samples"
