"""With TTA off, the MC maps come from dropout alone: exactly zero with dropout off (p = 0), non-zero with it on.
(The earlier test passed with dropout never switched on, because TTA alone makes U > 0.)"""
import numpy as np

from nnunet_ext.cli.main import main
from nnunet_ext.imageio import read_image


def _predict(chest_dataset, out, p):
    return main(["predict", "-m", "tta_mc", "-i", str(chest_dataset / "imagesTs"), "-o", str(out), "-d", "501",
                 "-c", "3d_fullres", "-tr", "MCDropoutTrainer", "-p", "nnextTinyPlans", "-f", "0", "-device", "cpu",
                 "--n-samples", "3", "--tta", "none", "--dropout-p", str(p), "--uncertainty", "variance",
                 "--all-maps", "--seed", "0"])


def test_mc_maps_zero_without_dropout_and_nonzero_with_it(trained_chest_model, chest_dataset, tmp_path):
    assert _predict(chest_dataset, tmp_path / "off", 0) == 0
    assert _predict(chest_dataset, tmp_path / "on", 0.3) == 0
    cases = sorted(p.name[: -len("_uncertainty.nii.gz")] for p in (tmp_path / "off").glob("*_uncertainty.nii.gz"))
    assert cases
    for case in cases:
        off = read_image(tmp_path / "off" / f"{case}_uncertainty.nii.gz")[0]
        on = read_image(tmp_path / "on" / f"{case}_uncertainty.nii.gz")[0]
        assert np.all(off == 0), float(np.abs(off).max())
        assert float(on.max()) > 0
        for extra in sorted((tmp_path / "off").glob(f"{case}_mi.nii.gz")):  # mutual information too
            assert np.all(read_image(extra)[0] == 0)
