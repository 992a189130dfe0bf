"""With TTA off, the MC maps come from dropout alone: non-zero with dropout on, exactly zero with it off (p = 0).
(The earlier test passed with dropout never switched on, because TTA alone makes U > 0.)"""
import numpy as np

from nnunet_ext.cli.main import main
from nnunet_ext.io.imageio import read_image


def _predict(chest_dataset, out, p):
    return main(["predict", "-m", "tta_mc", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "-d", "501",
                 "-c", "3d_fullres", "-tr", "MCDropoutTrainer", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu",
                 "--n-samples", "3", "--tta", "none", "--dropout-p", str(p), "--uncertainty", "variance",
                 "--all-maps", "--seed", "0"])


def _maps(folder, suffix="uncertainty"):
    files = sorted(folder.glob(f"*_{suffix}.nii.gz"))
    assert files, folder
    return [read_image(f)[0] for f in files]


def test_mc_maps_nonzero_with_dropout_and_tta_off(trained_chest_model, chest_dataset, tmp_path):
    assert _predict(chest_dataset, tmp_path / "on", 0.3) == 0
    # volume scope (the default): each pass is one blended whole-volume prediction, so overlapping windows
    # average part of the dropout noise; the variance is still far above the <= 1e-6 of identical passes
    assert all(float(m.max()) > 1e-4 for m in _maps(tmp_path / "on"))


def test_mc_maps_zero_without_dropout_and_tta(trained_chest_model, chest_dataset, tmp_path):
    assert _predict(chest_dataset, tmp_path / "off", 0) == 0
    for m in _maps(tmp_path / "off") + _maps(tmp_path / "off", "mi"):
        assert float(np.abs(m).max()) <= 1e-6  # zero up to float rounding of identical passes
