"""``nnext predict`` bad-input matrix: every class of bad input gives exit 2, one line naming the file and the
problem, and leaves no new file behind; an interrupted run resumes."""
import gzip
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import read_image

MODEL = ["-d", "501", "-c", "3d_fullres", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu"]


def _one_case(chest_dataset, folder, name="bad"):
    """A folder with one test image copied as case ``name``; returns (folder, image path)."""
    folder.mkdir(parents=True, exist_ok=True)
    src = sorted((chest_dataset / "imagesTs").glob("*_0000.nii.gz"))[0]
    dst = folder / f"{name}_0000.nii.gz"
    shutil.copy(src, dst)
    return folder, dst


def _write(array, like: sitk.Image, path, spacing=None):
    img = sitk.GetImageFromArray(array, isVector=False)
    if array.ndim == like.GetDimension():
        img.CopyInformation(like)
    if spacing is not None:
        img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), True)


def _corrupt(kind, path):
    """Turn the image at ``path`` into one of the bad-input classes."""
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "nan":
        arr[5, 10:20, 10:20] = np.nan
        _write(arr, img, path)
    elif kind == "inf":
        arr[3, 0, 0] = np.inf
        _write(arr, img, path)
    elif kind == "two_d":
        _write(arr[arr.shape[0] // 2], img, path, spacing=img.GetSpacing()[:2])
    elif kind == "four_d":
        _write(np.stack([arr, arr]), img, path)  # (2, z, y, x): a 4D image
    elif kind == "tiny_spacing":
        _write(arr, img, path, spacing=(0.05, 0.05, 0.05))
    elif kind == "gzip_garbage_tail":
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # a complete gzip stream of half the voxels
    else:
        raise ValueError(kind)


@pytest.mark.parametrize("kind, message", [
    ("truncated", "bad_0000.nii.gz"),
    ("gzip_garbage_tail", "bad_0000.nii.gz"),
    ("random_bytes", "bad_0000.nii.gz"),
    ("text", "bad_0000.nii.gz"),
    ("empty", "bad_0000.nii.gz"),
    ("nan", "NaN"),
    ("inf", "1 infinite voxel"),
    ("two_d", "the model is 3D"),
    ("four_d", "4D"),
    ("tiny_spacing", "implausible voxel spacing"),
])
def test_bad_images_are_refused_in_one_line(trained_chest_model, chest_dataset, tmp_path, capsys, kind, message):
    images, path = _one_case(chest_dataset, tmp_path / "in")
    _corrupt(kind, path)
    out = tmp_path / "out"
    code = main(["predict", "-m", "tta_mc", "-i", str(images), "-o", str(out), *MODEL, "--n-samples", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists(), "nothing may be written for a run whose first input is bad"


def test_nan_policy_zero_predicts_with_a_warning(trained_chest_model, chest_dataset, tmp_path):
    images, path = _one_case(chest_dataset, tmp_path / "in")
    _corrupt("nan", path)
    with pytest.warns(UserWarning, match="NaN"):
        assert main(["predict", "-m", "stock", "-i", str(images), "-o", str(tmp_path / "out"), *MODEL,
                     "--nan-policy", "zero"]) == 0
    assert (tmp_path / "out" / "bad.nii.gz").is_file()


@pytest.mark.parametrize("target, message", [
    ("file", "is an existing file"),
    ("parent_file", "is a file, not a folder"),
])
def test_bad_output_paths(trained_chest_model, chest_dataset, tmp_path, capsys, target, message):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if target == "file" else blocker / "out"
    code = main(["predict", "-m", "stock", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), *MODEL])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("damage, message", [
    ("dataset_json_malformed", "dataset.json"),
    ("dataset_json_incomplete", "file_ending"),
    ("plans_malformed", "plans.json"),
    ("checkpoint_truncated", "checkpoint_final.pth"),
    ("checkpoint_foreign", "checkpoint_final.pth"),
])
def test_broken_model_folders_are_named(trained_chest_model, chest_dataset, tmp_path, capsys, damage, message):
    plans = f"nnextTinyPlansBroken{damage.title().replace('_', '')}"
    folder = trained_chest_model.parent / f"MCDropoutTrainer__{plans}__3d_fullres"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(trained_chest_model, folder)
    try:
        if damage == "dataset_json_malformed":
            (folder / "dataset.json").write_text('{"labels": {"background": 0,')
        elif damage == "dataset_json_incomplete":
            (folder / "dataset.json").write_text(
                '{"labels": {"background": 0, "tumor": 1}, "channel_names": {"0": "CT"}}'
            )
        elif damage == "plans_malformed":
            (folder / "plans.json").write_text("[1, 2")
        elif damage == "checkpoint_truncated":
            ck = folder / "fold_0" / "checkpoint_final.pth"
            ck.write_bytes(ck.read_bytes()[:1000])
        else:
            (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a checkpoint at all" * 10)
        out = tmp_path / "out"
        code = main(["predict", "-m", "stock", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "-d", "501",
                     "-c", "3d_fullres", "-p", plans, "-f", "0", "-device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert not out.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("extra, message", [
    (["-step_size", "0"], "-step_size must be in (0, 1]"),
    (["-npp", "-1"], "-npp and -nps must be >= 0"),
    (["-num_parts", "2", "-part_id", "2"], "-part_id must be in [0, -num_parts)"),
    (["-device", "cuda"], "no CUDA device"),
])
def test_bad_common_options(trained_chest_model, chest_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    args = [a for a in MODEL if a not in ("-device", "cpu")] if "-device" in extra else MODEL
    code = main(["predict", "-m", "stock", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), *args, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_missing_and_empty_input_folders(trained_chest_model, tmp_path, capsys):
    for folder, message in ((tmp_path / "nope", "not found"), (tmp_path / "empty", "no images named CASE_XXXX")):
        if folder.name == "empty":
            folder.mkdir()
        code = main(["predict", "-m", "stock", "-i", str(folder), "-o", str(tmp_path / "out"), *MODEL])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_run_resumes_with_the_missing_case_only(trained_chest_model, chest_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", "-m", "stock", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), *MODEL]
    assert main(args) == 0
    first, second = sorted(out.glob("chest_test_*[0-9].nii.gz"))
    kept = second.stat().st_mtime_ns
    expected, _ = read_image(first)
    first.unlink()  # killed after the maps but before the segmentation: the case is not done
    capsys.readouterr()
    assert main(args) == 0
    assert "1 of 2 cases already predicted" in capsys.readouterr().out
    assert second.stat().st_mtime_ns == kept and np.array_equal(read_image(first)[0], expected)
