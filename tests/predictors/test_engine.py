"""Predictor engine v2: plug-in methods, streaming statistics, TTA scope, fold selection, dropout from the
checkpoint, nnU-Net's npz/pkl (consumed by nnUNetv2_ensemble), -npp/-nps, fold ensembles, OOM fallback."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import read_image, read_probabilities, write_image
from nnunet_ext.io.paths import nnunet_command
from nnunet_ext.predictors.method import CaseResult, Method

MODEL_ARGS = ["-d", "501", "-c", "3d_fullres", "-p", "nnextTinyPlans", "-device", "cpu"]


# --------------------------------------------------------------------------------------------- a toy plug-in

class ToyMethod(Method):
    """Thresholds the first channel; its 'brightness' map is the image scaled to [0, 1]."""

    name = "toy"
    map_names = ("brightness",)
    default_uncertainty = "brightness"
    takes_model = False

    def __init__(self, threshold):
        self.threshold = threshold

    @classmethod
    def add_arguments(cls, group):
        group.add_argument("--toy-threshold", type=float, default=0.0, help="HU threshold of the toy method")

    @classmethod
    def from_args(cls, args, common, model=None):
        return cls(args.toy_threshold)

    @property
    def dataset_json(self):
        return {"file_ending": ".nii.gz", "channel_names": {"0": "CT"}}

    def predict_case(self, case, ctx):
        image, geometry = read_image(case.files[0])
        span = float(image.max() - image.min()) or 1.0
        return CaseResult(geometry, (image > self.threshold).astype(np.uint8),
                          maps={"brightness": ((image - image.min()) / span).astype(np.float32)})

    def settings(self):
        return {"toy_threshold": self.threshold}


@pytest.fixture
def toy_registered(monkeypatch):
    from nnunet_ext.predictors.registry import METHODS

    monkeypatch.setitem(METHODS, "toy", (f"{__name__}:ToyMethod", "thresholds the image (test plug-in)"))


def test_a_toy_method_registered_in_one_line_runs_through_nnext_predict(toy_registered, chest_dataset, tmp_path,
                                                                         capsys):
    out = tmp_path / "toy"
    images = chest_dataset / "imagesTs"
    assert main(["predict", "-m", "toy", "-i", str(images), "-o", str(out), "--toy-threshold", "-500",
                 "-device", "cpu"]) == 0
    for image in sorted(images.glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        img, g = read_image(image)
        seg, g2 = read_image(out / f"{case}.nii.gz")
        unc, _ = read_image(out / f"{case}_uncertainty.nii.gz")
        assert np.array_equal(seg, img > -500) and g2.matches(g)
        assert unc.min() == 0 and unc.max() == pytest.approx(1)
    settings = json.loads((out / "predict_settings.json").read_text())
    assert settings["toy_threshold"] == -500 and settings["method_settings"] == {"toy_threshold": -500}
    try:
        code = main(["predict", "-m", "toy", "-h"])
    except SystemExit as e:  # argparse's help exits
        code = e.code
    assert code == 0
    shown = capsys.readouterr().out
    assert "--toy-threshold" in shown and "--n-samples" not in shown and "-tr TR" not in shown
    code = main(["predict", "-m", "stock", "-i", str(images), "-o", str(tmp_path / "x"), *MODEL_ARGS,
                 "--toy-threshold", "3"])
    assert code == 2 and "--toy-threshold is an option of -m toy, not of -m stock" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["-m", "stock", "--tta-scope", "window"], "--tta-scope is an option of -m tta_mc, -m cascade"),
    (["-m", "cascade", "-d", "501"], "-d is an option of"),
    (["-m", "tta_mc", "-f", "0", "--n-samples", "1", "--uncertainty", "variance"], "need >= 2 passes"),
    (["-m", "ensemble", "-f", "0"], "-m ensemble needs >= 2 folds"),
    (["-m", "tta_mc", "-f", "0", "--pass-batch-size", "0"], "--pass-batch-size: must be >= 1, got 0"),
])
def test_method_options_are_checked(trained_chest_model, chest_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    base = [a for a in MODEL_ARGS] if "cascade" not in extra else ["-device", "cpu"]
    code = main(["predict", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), *base, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# --------------------------------------------------------------------------------- streaming statistics (core)

def test_streaming_statistics_equal_the_stacked_computation():
    from nnunet_ext.core.streaming import StreamingStats
    from nnunet_ext.core.uncertainty import ensemble_maps

    g = torch.Generator().manual_seed(0)
    for sigmoid in (False, True):
        logits = torch.randn(37, 3, 6, 7, 5, generator=g, dtype=torch.float64) * 3
        p = (torch.sigmoid(logits) if sigmoid else torch.softmax(logits, 1)).float()
        s = StreamingStats((6, 7, 5), 3, sigmoid=sigmoid, bins=100)
        for start, n in ((0, 1), (1, 8), (9, 20), (29, 8)):  # passes arrive in chunks of any size
            s.update(p[start:start + n])
        ref = {k: v.double() for k, v in ensemble_maps(p, sigmoid).items()}
        assert torch.allclose(s.mean().double(), ref["mean"], atol=1e-6)
        assert torch.allclose(s.variance().double(), ref["variance"], atol=1e-6)
        assert torch.allclose(s.mutual_information().double(), ref["mi"], atol=1e-6)
        assert torch.allclose(s.expected_entropy().double(), ref["expected_entropy"], atol=1e-6)
        idx = (p * 100).long().clamp(0, 99)  # (N, C, *S)
        hist = torch.nn.functional.one_hot(idx, 100).double().mean(0).movedim(-1, 1)  # (C, B, *S)
        assert torch.allclose(s.histogram().double(), hist, atol=1e-6)


def test_2d_windows_of_a_3d_volume_index_their_slice():
    """2D configurations predict (y, x) windows of one slice of the (z, y, x) volume: the region has an int."""
    from nnunet_ext.core.streaming import StreamingStats

    g = torch.Generator().manual_seed(2)
    s = StreamingStats((3, 4, 5), 2, bins=10)
    p = torch.softmax(torch.randn(6, 2, 4, 5, generator=g), 1)
    s.update(p[:3], torch.ones(4, 5), (1, slice(None), slice(None)))
    s.update(p[3:], torch.ones(4, 5), (1, slice(None), slice(None)))
    assert torch.allclose(s.mean()[:, 1], p.mean(0), atol=1e-6) and float(s.weight[0].sum()) == 0
    assert torch.allclose(s.histogram()[:, :, 1].sum(1), torch.ones(2, 4, 5))
    with pytest.raises(ValueError):
        s.update(p[:, :, :3], None, (1, slice(None), slice(None)))


def test_weighted_window_statistics_equal_the_weighted_stacked_computation():
    """Gaussian-weighted windows: the running statistics are the weighted moments over windows x passes."""
    from nnunet_ext.core.streaming import StreamingStats

    g = torch.Generator().manual_seed(1)
    s = StreamingStats((10,), 2, bins=0)
    rows = []  # (voxel, weight, probability)
    for start in (0, 3, 5):
        p = torch.softmax(torch.randn(4, 2, 5, generator=g), 1)
        w = torch.rand(5, generator=g) + 0.1
        s.update(p, w, (slice(start, start + 5),))
        rows += [(start + v, float(w[v]), p[i, :, v]) for i in range(4) for v in range(5)]
    for v in range(10):
        ws = torch.tensor([r[1] for r in rows if r[0] == v], dtype=torch.float64)
        ps = torch.stack([r[2] for r in rows if r[0] == v]).double()
        mean = (ws[:, None] * ps).sum(0) / ws.sum()
        var = ((ws[:, None] * (ps - mean) ** 2).sum(0) / ws.sum()).mean()
        assert torch.allclose(s.mean()[:, v].double(), mean, atol=1e-6)
        assert float(s.variance()[v]) == pytest.approx(float(var), abs=1e-6)


# ------------------------------------------------------------------------------------------ nnU-Net parity

def test_fold_selection_equals_nnunet(tmp_path):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_ext.predictors.engine import detect_folds
    from nnunet_ext.predictors.inputs import check_folds

    for f in ("0", "1", "10", "2", "all"):
        (tmp_path / f"fold_{f}").mkdir()
        (tmp_path / f"fold_{f}" / "checkpoint_final.pth").write_bytes(b"x")
    (tmp_path / "fold_3").mkdir()  # no checkpoint: not a candidate
    theirs = nnUNetPredictor.auto_detect_available_folds(str(tmp_path), "checkpoint_final.pth")
    ours = detect_folds(str(tmp_path), "checkpoint_final.pth")
    assert sorted(theirs) == ours == [0, 1, 2, 10]  # the same set, numeric order, no fold_all
    assert check_folds(tmp_path, None, "checkpoint_final.pth") == ["0", "1", "2", "10"]
    assert check_folds(tmp_path, ["all"], "checkpoint_final.pth") == ["all"]  # only when asked


def test_dropout_kind_and_p_come_from_the_checkpoint(trained_chest_model, monkeypatch):
    from nnunet_ext.core.mc_dropout import dropout_modules
    from nnunet_ext.predictors.engine import SlidingWindowEngine

    monkeypatch.setenv("NNEXT_DROPOUT_KIND", "element")  # a legacy variable: never read at prediction
    monkeypatch.setenv("NNEXT_DROPOUT_P", "0.3")
    e = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False)
    e.load(str(trained_chest_model), [0])
    mods = list(dropout_modules(e.network))
    assert mods and all(type(m) is torch.nn.Dropout3d and m.p == 0.05 for m in mods)  # as trained
    e.load(str(trained_chest_model), [0], dropout_kind="element")  # an explicit override
    assert all(type(m) is torch.nn.Dropout for m in dropout_modules(e.network))


def _engine_and_data(model, chest_dataset):
    from nnunet_ext.predictors.engine import SlidingWindowEngine

    e = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False, use_mirroring=False)
    e.load(str(model), [0])
    files = [str(sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz"))[0])]
    data, _, _ = e.configuration_manager.preprocessor_class().run_case(
        files, None, e.plans_manager, e.configuration_manager, e.dataset_json)
    return e, torch.from_numpy(data)


def test_volume_scope_flip_equals_flipping_the_volume_and_the_prediction_back(trained_chest_model, chest_dataset):
    from nnunet_ext.core.tta import TTAPolicy
    from nnunet_ext.predictors.engine import Sampling
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.predictors.stock import StockMethod

    e, x = _engine_and_data(trained_chest_model, chest_dataset)
    m = StockMethod(e, Sampling(), {})  # deterministic network, no mirroring
    flips = Sampling(n_passes=1, tta=TTAPolicy(kinds=("flip",)), tta_scope="volume", blend="logits")
    ctx = CaseContext.for_case("c", 3)
    ours = e.run(x, ctx, m, flips, ("entropy",)).probabilities
    axis = int(ctx.log["tta_transforms"][0].split("axis=")[1].rstrip(")"))
    plain = e.run(torch.flip(x, (axis,)), CaseContext.for_case("c", 3), m, Sampling(), ("entropy",)).probabilities
    assert len(e._internal_get_sliding_window_slicers(x.shape[1:])) > 1
    assert torch.allclose(ours, torch.flip(plain, (axis,)), atol=1e-5)
    window = e.run(x, CaseContext.for_case("c", 3), m, Sampling(n_passes=1, tta=TTAPolicy(kinds=("flip",)),
                                                               tta_scope="window"), ("entropy",)).probabilities
    assert not torch.allclose(window, ours, atol=1e-3), "window scope flips each window on its own"


def test_volume_scope_rotations_are_drawn_in_millimetres(trained_chest_model, chest_dataset):
    from nnunet_ext.core.tta import TTAPolicy
    from nnunet_ext.predictors.engine import Sampling
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.predictors.stock import StockMethod

    e, x = _engine_and_data(trained_chest_model, chest_dataset)
    ctx = CaseContext.for_case("c", 0)
    e.run(x, ctx, StockMethod(e, Sampling(), {}), Sampling(n_passes=3, tta=TTAPolicy(kinds=("rotate",)),
                                                          tta_scope="volume"), ())
    spacing = [float(s) for s in e.configuration_manager.spacing]  # (10, 4.5, 4.5) mm: anisotropic
    assert len(ctx.log["tta_transforms"]) == 3
    for t in ctx.log["tta_transforms"]:
        plane = eval(t.split("plane=")[1].split("), ")[0] + ")")
        assert f"spacing=({spacing[plane[0]]}, {spacing[plane[1]]})" in t, t


def test_physical_rotation_moves_a_point_by_the_right_millimetres():
    """5 degrees about the centre in the z-x plane of 5 x 0.7 mm voxels: a point 21 mm from the centre along x
    moves by 2 * 21 * sin(2.5 deg) = 1.83 mm (index-space rotation would move it by ~13 mm)."""
    from nnunet_ext.core.tta import Rotate

    spacing = (5.0, 0.7)  # (z, x) mm
    shape = (41, 121)
    zz, xx = torch.meshgrid(torch.arange(shape[0]) - 20.0, torch.arange(shape[1]) - 60.0, indexing="ij")
    r_vox = 21.0 / spacing[1]  # 30 voxels along x
    blob = torch.exp(-((zz * spacing[0]) ** 2 + ((xx - r_vox) * spacing[1]) ** 2) / (2 * 2.0 ** 2))[None]
    out = Rotate((-2, -1), 5.0, spacing=spacing).apply(blob)[0]
    w = out / out.sum()
    cz_mm, cx_mm = float((w * zz).sum()) * spacing[0], float((w * xx).sum()) * spacing[1]
    moved = float(np.hypot(cz_mm, cx_mm - 21.0))
    assert moved == pytest.approx(2 * 21.0 * np.sin(np.radians(2.5)), abs=0.15)


def test_oom_on_the_device_falls_back_to_cpu_accumulation(trained_chest_model, chest_dataset, monkeypatch):
    from nnunet_ext.predictors import engine as engine_mod
    from nnunet_ext.predictors.engine import Sampling
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.predictors.stock import StockMethod

    e, x = _engine_and_data(trained_chest_model, chest_dataset)
    m = StockMethod(e, Sampling(), {})
    ref = e.run(x, CaseContext.for_case("c", 0), m, Sampling(), ("entropy",))
    devices, real = [], engine_mod.SlidingWindowEngine._run

    def run(self, data, ctx, method, sampling, maps, results_device):
        devices.append(results_device)
        if len(devices) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        self.device = torch.device("cpu")  # the real work runs on this machine's CPU
        return real(self, data, ctx, method, sampling, maps, results_device)

    monkeypatch.setattr(engine_mod.SlidingWindowEngine, "_run", run)
    monkeypatch.setattr(engine_mod, "empty_cache", lambda device: None)
    e.perform_everything_on_device, e.device = True, torch.device("meta")  # pretend to sit on an accelerator
    e.network.to = lambda *a, **k: e.network
    with pytest.warns(UserWarning, match="accumulating on the CPU"):
        got = e.run(x, CaseContext.for_case("c", 0), m, Sampling(), ("entropy",))
    assert devices == [torch.device("meta"), torch.device("cpu")]
    assert torch.equal(got.probabilities, ref.probabilities)


# ------------------------------------------------------------------------- npz / pkl, ensembles, -npp / -nps

@pytest.fixture(scope="module")
def two_fold_model(trained_chest_model):
    """The tiny chest model with a second fold (fold 0 with its weights perturbed) to make an ensemble."""
    folder = trained_chest_model.parent / "MCDropoutTrainer__nnextTinyPlansTwoFolds__3d_fullres"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(trained_chest_model, folder)
    shutil.copytree(folder / "fold_0", folder / "fold_1")
    path = folder / "fold_1" / "checkpoint_final.pth"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    g = torch.Generator().manual_seed(0)
    for k, v in ckpt["network_weights"].items():
        if v.is_floating_point() and k.endswith("weight"):
            v += 0.2 * v.std() * torch.randn(v.shape, generator=g)
    torch.save(ckpt, path)
    return folder


def test_save_probabilities_writes_nnunet_files_that_nnunetv2_ensemble_reads(trained_chest_model, chest_dataset,
                                                                            tmp_path):
    images = chest_dataset / "imagesTs"
    runs = []
    for seed in (1, 2):
        out = tmp_path / f"s{seed}"
        assert main(["predict", "-m", "tta_mc", "-i", str(images), "-o", str(out), *MODEL_ARGS, "-f", "0",
                     "--n-samples", "2", "--seed", str(seed), "--save_probabilities", "--maps-dir",
                     str(tmp_path / f"maps{seed}")]) == 0
        runs.append(out)
    # -o holds what nnUNetv2_predict writes; the maps and the NIfTI probabilities went to --maps-dir
    assert sorted(p.name for p in runs[0].glob("*.nii.gz")) == ["chest_test_000.nii.gz", "chest_test_001.nii.gz"]
    ens = tmp_path / "ens"
    proc = subprocess.run([nnunet_command("nnUNetv2_ensemble"), "-i", *map(str, runs), "-o", str(ens), "-np", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for image in sorted(images.glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        npz = [np.load(r / f"{case}.npz")["probabilities"] for r in runs]
        nifti, g = read_probabilities(tmp_path / "maps1" / f"{case}_probabilities.nii.gz")
        assert (tmp_path / "maps1" / f"{case}_uncertainty.nii.gz").is_file()
        assert np.allclose(npz[0], nifti, atol=1e-6)  # the same probabilities in both formats
        seg, g_seg = read_image(ens / f"{case}.nii.gz")
        img, g_img = read_image(image)
        assert g_seg.matches(g_img) and np.array_equal(seg, ((npz[0] + npz[1]) / 2).argmax(0))
    # nnUNetv2_apply_postprocessing reads our folder (plans.json, dataset.json, segmentations) as its own
    import pickle

    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation as largest,
    )

    pp = tmp_path / "pp.pkl"
    pp.write_bytes(pickle.dumps(([largest], [{"labels_or_regions": [1]}])))
    proc = subprocess.run([nnunet_command("nnUNetv2_apply_postprocessing"), "-i", str(runs[0]), "-o",
                           str(tmp_path / "pp"), "-pp_pkl_file", str(pp), "-np", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for f in sorted(runs[0].glob("chest_test_*[0-9].nii.gz")):
        ours, _ = read_image(f)
        assert np.array_equal(read_image(tmp_path / "pp" / f.name)[0], largest(ours, [1]))


def test_ensemble_method_uses_the_folds_as_members(two_fold_model, chest_dataset, tmp_path):
    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.method import CaseContext
    from nnunet_ext.predictors.stock import StockMethod

    out = tmp_path / "ens"
    plans = "nnextTinyPlansTwoFolds"
    assert main(["predict", "-m", "ensemble", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "-d", "501",
                 "-c", "3d_fullres", "-p", plans, "-device", "cpu", "--all-maps", "--save_probabilities"]) == 0
    image = sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz"))[0]
    case = image.name[: -len("_0000.nii.gz")]
    members = []
    for fold in (0, 1):
        e = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False, use_mirroring=False)
        e.load(str(two_fold_model), [fold])
        data, _, props = e.configuration_manager.preprocessor_class().run_case(
            [str(image)], None, e.plans_manager, e.configuration_manager, e.dataset_json)
        members.append(StockMethod(e, Sampling(blend="probabilities"), {}).predict_network(
            data, CaseContext.for_case(case, 0)).probabilities)
    mean = (members[0] + members[1]) / 2
    var = (((members[0] - mean) ** 2 + (members[1] - mean) ** 2) / 2).mean(0)
    from nnunet_ext.predictors.export import map_to_original

    expected_var = map_to_original(var, props, e.configuration_manager, e.plans_manager)
    got_var, _ = read_image(out / f"{case}_variance.nii.gz")
    assert got_var.max() > 1e-4 and np.allclose(got_var, expected_var, atol=1e-5)
    mi, _ = read_image(out / f"{case}_mi.nii.gz")
    unc, _ = read_image(out / f"{case}_uncertainty.nii.gz")
    assert np.array_equal(mi, unc) and mi.max() > 0  # default map: the members' disagreement
    # side by side with tta_mc on the same cases: nnext evaluate both, nnext compare pairs them
    mc = tmp_path / "mc"
    assert main(["predict", "-m", "tta_mc", "-i", str(chest_dataset / "imagesTs"), "-o", str(mc), "-d", "501",
                 "-c", "3d_fullres", "-p", plans, "-f", "0", "-device", "cpu", "--n-samples", "2"]) == 0
    for folder in (out, mc):
        assert main(["evaluate", "-ref", str(chest_dataset / "labelsTs"), "-pred", str(folder), "-o",
                     str(folder / "summary.json"), "--uncertainty", str(folder), "-q"]) == 0
    assert main(["compare", "-a", str(mc / "summary.json"), "-b", str(out / "summary.json"), "-m", "dice",
                 "-o", str(tmp_path / "cmp.json")]) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["n_common_cases"] == 2 and cmp["results"][0]["metric"] == "dice"


def test_background_workers_give_identical_results(trained_chest_model, chest_dataset, tmp_path):
    outs = []
    for npp, nps in ((0, 0), (2, 2)):
        out = tmp_path / f"w{npp}"
        assert main(["predict", "-m", "tta_mc", "-i", str(chest_dataset / "imagesTs"), "-o", str(out),
                     *MODEL_ARGS, "-f", "0", "--n-samples", "2", "-npp", str(npp), "-nps", str(nps)]) == 0
        outs.append(out)
    files = sorted(p.name for p in outs[0].glob("*.nii.gz"))
    assert files == sorted(p.name for p in outs[1].glob("*.nii.gz")) and len(files) == 4
    for name in files:
        assert np.array_equal(read_image(outs[0] / name)[0], read_image(outs[1] / name)[0]), name


def test_prev_stage_predictions_are_appended_like_nnunet(trained_chest_model, chest_dataset, tmp_path):
    """3d_cascade_fullres input: the image plus the one-hot previous-stage segmentation, exactly as nnU-Net's
    own data iterator builds it."""
    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.inputs import Case
    from nnunet_ext.predictors.stock import StockMethod

    e = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False)
    e.load(str(trained_chest_model), [0])
    image = sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz"))[0]
    case = image.name[: -len("_0000.nii.gz")]
    img, g = read_image(image)
    prev = tmp_path / "prev"
    prev.mkdir()
    write_image((img > 0).astype(np.uint8), g, prev / f"{case}.nii.gz")
    ours = StockMethod(e, Sampling(), {}, prev_stage=str(prev)).prepare(Case(case, (str(image),))).data
    it = e._internal_get_data_iterator_from_lists_of_filenames([[str(image)]], [str(prev / f"{case}.nii.gz")],
                                                               None, 1)
    theirs = next(iter(it))["data"]
    theirs = theirs.numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape[0] == 2 and np.allclose(ours, theirs)


def _write_calibration(folder, temperature, trainer="MCDropoutTrainer"):
    from nnunet_ext.core.calibration_file import CALIBRATION_FILE, CALIBRATION_FORMAT, model_identity

    body = {"format": CALIBRATION_FORMAT, "temperature": temperature, "n_channels": 2, "per_class": False,
            "nonlinearity": "softmax", "model": model_identity(folder, "nnextTinyPlans", trainer, "3d_fullres")}
    # (the copied folder's plans.json keeps plans_name nnextTinyPlans: that is the model's plans identifier)
    (folder / CALIBRATION_FILE).write_text(json.dumps(body))


TINY_TWO = "nnextTinyPlansTwoFolds"


def test_predict_applies_the_model_calibration(two_fold_model, chest_dataset, tmp_path, capsys):
    """calibration.json in the model folder: the exported probabilities are p ** (1/T) renormalised, the settings
    record it, --no-calibration skips it, a file written for another trainer is refused in one line."""
    from nnunet_ext.core.temperature import apply_temperature

    args = ["-m", "stock", "-i", str(chest_dataset / "imagesTs"), "-d", "501", "-c", "3d_fullres", "-p", TINY_TWO,
            "-f", "0", "-device", "cpu", "--save_probabilities", "--disable_tta"]
    plain, calibrated = tmp_path / "plain", tmp_path / "cal"
    try:
        _write_calibration(two_fold_model, 2.5)
        assert main(["predict", *args, "-o", str(calibrated)]) == 0
        assert main(["predict", *args, "-o", str(plain), "--no-calibration"]) == 0
        settings = json.loads((calibrated / "predict_settings.json").read_text())["method_settings"]
        assert settings["calibration"]["temperature"] == 2.5
        for f in sorted(plain.glob("*.npz")):
            p = np.load(f)["probabilities"]
            q = np.load(calibrated / f.name)["probabilities"]
            assert not np.allclose(p, q, atol=1e-3)
            # temperature applied at network resolution, then resampled: equal up to interpolation of both
            assert np.allclose(q, apply_temperature(p, np.array([2.5, 2.5])), atol=2e-2)
        _write_calibration(two_fold_model, 2.5, trainer="nnUNetTrainer")
        code = main(["predict", *args, "-o", str(tmp_path / "foreign")])
        err = capsys.readouterr().err
        assert code == 2 and "written for another model" in err and len(err.strip().splitlines()) == 1
    finally:
        (two_fold_model / "calibration.json").unlink(missing_ok=True)
