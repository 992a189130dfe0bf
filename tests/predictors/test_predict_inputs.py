"""``nnext predict`` bad input: one-line errors naming the problem, nothing half-written."""
import shutil
import warnings

import numpy as np
import pytest
import torch

from nnunet_ext.cli.main import main

BASE = ["-d", "501", "-c", "3d_fullres", "-p", "nnextTinyPlans", "-device", "cpu"]


def _run(capsys, images, out, *extra):
    code = main(["predict", "-i", str(images), "-o", str(out), *BASE, *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["-f", "3"], "fold 3 not found"),
    (["-f", "0", "-chk", "checkpoint_best_typo.pth"], "checkpoint_best_typo.pth: checkpoint not found"),
    (["-f", "0", "--n-samples", "0"], "--n-samples: must be >= 1, got 0"),
    (["-f", "0", "--dropout-p", "1.0"], "--dropout-p: must be in [0, 1), got 1.0"),
    (["-f", "0", "--tta", "noise,shear"], "--tta"),
    (["-f", "0", "-tr", "NoSuchTrainer"], "model folder"),
    (["-f", "0", "--uncertainty", "variance", "-m", "stock"], "method stock provides entropy"),
])
def test_bad_options(trained_chest_model, chest_dataset, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code, err = _run(capsys, chest_dataset / "imagesTs", out, *extra)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.glob("*.nii.gz"))


def test_wrong_channel_count_names_the_case(trained_chest_model, chest_dataset, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(chest_dataset / "imagesTs", images)
    first = sorted(images.glob("*_0000.nii.gz"))[0]
    shutil.copy(first, images / first.name.replace("_0000", "_0001"))
    case = first.name[: -len("_0000.nii.gz")]
    out = tmp_path / "out"
    code, err = _run(capsys, images, out, "-f", "0")
    assert code == 2
    assert f"case {case}" in err and "expects 1 channel" in err
    assert not out.exists() or not any(out.glob("*.nii.gz"))


def test_trainer_without_dropout_warns_pure_tta():
    from nnunet_ext.predictors.engine import Sampling, SlidingWindowEngine
    from nnunet_ext.predictors.tta_mc import TTAMCMethod

    e = SlidingWindowEngine(device=torch.device("cpu"), allow_tqdm=False)
    e.network = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.InstanceNorm3d(2))
    e.trainer_name = "nnUNetTrainer"
    p = TTAMCMethod(e, Sampling(n_passes=2), {})
    with pytest.warns(UserWarning, match="pure TTA"):
        p.on_parameters_loaded()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.on_parameters_loaded()  # warned once only


@pytest.mark.parametrize("change, message", [
    ({"origin": (-10.0, 5.0, 8.0)}, r"origin \(x,y,z\) \(-10, 5, 8\) vs \(-10, 5, 3\)$"),
    ({"direction": (-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)},
     r"direction \(-1, 0, 0, 0, 1, 0, 0, 0, 1\) vs \(1, 0, 0, 0, 1, 0, 0, 0, 1\)$"),
])
def test_a_channel_of_another_origin_or_direction_is_named(tmp_path, change, message):
    """Equal sizes and spacings, another origin / direction: the message says what differs (issue 19)."""
    import re
    from types import SimpleNamespace

    from nnunet_ext.errors import InputError
    from nnunet_ext.io.imageio import Geometry, write_image
    from nnunet_ext.predictors.inputs import Case, read_case_checked

    g = Geometry((0.8, 0.9, 2.0), (-10.0, 5.0, 3.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    other = Geometry(g.spacing, change.get("origin", g.origin), change.get("direction", g.direction))
    arr = np.zeros((8, 16, 16), np.float32)
    write_image(arr, g, tmp_path / "c_0000.nii.gz")
    write_image(arr, other, tmp_path / "c_0001.nii.gz")
    case = Case("c", (str(tmp_path / "c_0000.nii.gz"), str(tmp_path / "c_0001.nii.gz")))
    with pytest.raises(InputError) as e:
        read_case_checked(case, None, SimpleNamespace(patch_size=(8, 16, 16)))
    text = str(e.value).split("; all channels")[0]
    assert text.startswith(f"{tmp_path / 'c_0001.nii.gz'}: channel grid differs from c_0000.nii.gz: ")
    assert re.search(message, text), text
