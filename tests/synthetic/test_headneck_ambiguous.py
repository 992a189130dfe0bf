"""The head-and-neck phantom's ambiguous neighbour (``ambiguous_rate``, nnunet_ext.synthetic.headneck): a hot,
tumour-like lobe at the primary that is labelled GTVp or left unlabelled by a coin, not by how it looks; the rest
of the case is drawn as without it; the option is validated on every path in."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.synthetic.dataset import write_dataset
from nnunet_ext.synthetic.headneck import generate_headneck_case, validate_options

SEEDS = range(40)


@pytest.fixture(scope="module")
def pairs():
    """(case without, case with a neighbour for sure) per seed."""
    return [(generate_headneck_case(np.random.default_rng(s)),
             generate_headneck_case(np.random.default_rng(s), ambiguous_rate=1.0)) for s in SEEDS]


def _centre(case) -> tuple:
    return tuple(int(round(v)) for v in case.info["ambiguous_neighbour"]["centre_voxel_zyx"])


def test_the_neighbour_is_hot_and_labelled_by_its_draw(pairs):
    tumour, pet = [], {True: [], False: []}
    for plain, amb in pairs:
        n = amb.info["ambiguous_neighbour"]
        assert n is not None and "ambiguous_neighbour" not in plain.info
        primary = plain.label == 1
        assert np.array_equal(primary & (amb.label == 1), primary)  # the primary itself is unchanged
        added = (amb.label == 1) & ~primary
        if n["tumour"]:  # tumour extension: labelled GTVp (at least its own 4 voxels beyond the primary)
            assert added.sum() >= 4 and amb.label[_centre(amb)] == 1
        else:  # inflammation: nothing added to the label
            assert not added.any()
        value = float(amb.images[1][_centre(amb)])
        assert value > 5.0  # hot in PET either way (tonsils 3-5, muscle ~1)
        tumour.append(n["tumour"])
        pet[n["tumour"]].append(value)
    assert 12 <= sum(tumour) <= 28  # Binomial(40, 1/2): outside with p < 0.01
    # the look does not give the label away: the same uptake whether tumour or inflammation
    assert 0.75 < np.mean(pet[True]) / np.mean(pet[False]) < 1.33


def test_the_rest_of_the_case_is_drawn_as_without_it(pairs):
    """The neighbour comes from a child generator: the nodes after it are the same (they move only where the
    neighbour takes their place); drawn from the case's own stream they would differ in most cases."""
    same = sum(np.array_equal(plain.label == 2, amb.label == 2) for plain, amb in pairs)
    assert same >= 35
    plain, amb = pairs[0]
    assert plain.info["GTVp"]["radius_mm"] == amb.info["GTVp"]["radius_mm"]


def test_rate_is_a_probability():
    cases = [generate_headneck_case(np.random.default_rng(s), ambiguous_rate=0.5) for s in SEEDS]
    with_one = sum(c.info["ambiguous_neighbour"] is not None for c in cases)
    assert 12 <= with_one <= 28
    plain = generate_headneck_case(np.random.default_rng(3), ambiguous_rate=0.0)
    assert "ambiguous_neighbour" not in plain.info  # rate 0: the phantom of earlier releases
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(InputError, match="--ambiguous-rate"):
            validate_options(bad)


def test_write_dataset_and_cli(tmp_path, capsys):
    from nnunet_ext.cli.main import main

    folder = write_dataset("headneck", 604, 2, num_test=1, seed=1, raw_dir=tmp_path, progress=False,
                           ambiguous_rate=1.0)
    info = json.loads((folder / "phantom_info.json").read_text())
    assert info["options"] == {"ambiguous_rate": 1.0}
    assert all(c["ambiguous_neighbour"]["tumour"] in (True, False) for c in info["cases"].values())
    with pytest.raises(InputError, match="do not apply to the chest"):
        write_dataset("chest", 605, 1, raw_dir=tmp_path, progress=False, ambiguous_rate=0.5)
    capsys.readouterr()
    assert main(["synth", "headneck", "-d", "606", "-n", "1", "--ambiguous-rate", "2", "--raw", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ambiguous-rate" in err[0] and "got 2.0" in err[0], err
    assert not list(tmp_path.glob("Dataset606_*"))
    assert main(["synth", "headneck", "-d", "606", "-n", "1", "--ambiguous-rate", "0.25", "--raw", str(tmp_path),
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "Dataset606_NnextHeadNeck" / "phantom_info.json").read_text())["options"] == {
        "ambiguous_rate": 0.25}
